"""The documents' shapes: the frozen attrs classes and enums of the interchange contract's
documents (docs/contract.md, "Documents out"), each written once, here.

Re-exported by :mod:`matome.documents`, whose pure ``compose_*`` functions build them.
"""

from __future__ import annotations

from datetime import date, datetime
from enum import StrEnum

import attrs

from matome.charging import Rule
from matome.values import (
    BillingAccount,
    ChangeKind,
    CustomerId,
    Operator,
    PassportId,
    Pricing,
    ProviderCode,
    ServiceCode,
    YearMonth,
    Yen,
)

#: The bill row label of rules §7 [フレッツ・まとめて支払い料金].
LABEL = "フレッツ・まとめて支払い料金"


class BillStatus(StrEnum):
    """A bill is a ``preview`` while its month is open and ``issued`` once it is closed (§7)."""

    PREVIEW = "preview"
    ISSUED = "issued"


class ChargeKind(StrEnum):
    """A charge, or a provider's refund charged negatively in the month it is recorded (§4)."""

    CHARGE = "charge"
    REFUND = "refund"


@attrs.frozen(kw_only=True)
class Charge:
    """One charge of a bill (the contract's ``charges`` entry).

    ``kind``, ``service_name``, ``sources`` (the events it came from, ``<receipt>@<version>``)
    and a refund's ``reason`` are additions the contract allows.
    """

    receipt: str
    passport_id: PassportId
    provider: ProviderCode
    service: ServiceCode
    service_name: str
    pricing: Pricing
    unit_price: Yen
    quantity: int
    amount: Yen
    started_on: date
    kind: ChargeKind
    sources: tuple[str, ...]
    reason: str | None = None
    #: The Tokyo day its service period [サービス利用期間] ends (docs/rules.md §11, contract 3): a
    #: monthly-flat subscription ends at 00:00 that day, a per-purchase item's access ends
    #: that day.  Shown only for a purchase with a period.
    ends_on: date | None = None


@attrs.frozen(kw_only=True)
class LineCharge:
    """A charge with the line it is billed to and that line's operator (charges across lines:
    totals, settlement, the billing run)."""

    customer_id: CustomerId
    operator: Operator
    charge: Charge


@attrs.frozen(kw_only=True)
class BillRow:
    """One row per provider under "collect-on-behalf services" [料金回収代行サービスご利用分]."""

    provider: ProviderCode
    provider_name: str
    label: str
    amount: Yen


@attrs.frozen(kw_only=True)
class Bill:
    """The bill of one line for one month (docs/contract.md, "Bill of one line for one month")."""

    customer_id: CustomerId
    month: YearMonth
    billing_account: BillingAccount
    issue_date: date
    status: BillStatus
    rows: tuple[BillRow, ...]
    subtotal: Yen
    charges: tuple[Charge, ...]


@attrs.frozen(kw_only=True)
class StatementRow:
    """A row of the usage statement [ご利用明細] with the columns of rules §7."""

    receipt: str
    passport_id: PassportId
    provider: ProviderCode
    provider_name: str
    service_name: str
    unit_price: Yen
    quantity: int
    amount: Yen
    started_on: date
    kind: ChargeKind
    #: As :attr:`Charge.ends_on`: a per-purchase item's access end, a monthly-flat service's
    #: period end (§11); shown only for a purchase with a period.
    ends_on: date | None = None


@attrs.frozen(kw_only=True)
class Statement:
    """The usage statement of a line for a month, one page of it (§7)."""

    customer_id: CustomerId
    month: YearMonth
    total: int
    page: int
    per_page: int
    rows: tuple[StatementRow, ...]
    passport_id: PassportId | None = None


@attrs.frozen(kw_only=True)
class Contact:
    """A provider the line bought from, with its contact [お問合せ先一覧] (§7)."""

    provider: ProviderCode
    name: str
    contact: str


@attrs.frozen(kw_only=True)
class ProviderTotal:
    """One provider's billed amount for a month across every line, and how many lines."""

    provider: ProviderCode
    lines: int
    amount: Yen


class SettlementStatus(StrEnum):
    """``settled``, or ``fee_not_configured`` when the provider's tier needs an amount nobody
    has set (its fee, tax and net are then null; the other providers still settle, §8)."""

    SETTLED = "settled"
    FEE_NOT_CONFIGURED = "fee_not_configured"


@attrs.frozen(kw_only=True)
class SettlementLine:
    """What the carrier pays one provider for a month on one operator's lines, less its fee
    and the consumption tax on it (§8)."""

    provider: ProviderCode
    operator: Operator
    gross: Yen
    lines: int
    average_per_line: str
    fee: Yen | None
    tax: Yen | None
    net: Yen | None
    status: SettlementStatus


@attrs.frozen(kw_only=True)
class ContinuityRow:
    """One line change actually applied: a row of the line-move continuity table (§6)."""

    customer_id: CustomerId
    at: datetime
    change: ChangeKind
    new_customer_id: CustomerId | None
    kept: bool
    cancelled: tuple[str, ...]
    deleted: tuple[PassportId, ...]


@attrs.frozen(kw_only=True)
class PassportStatus:
    """One Passport ID as the service page lists it (§2): ``in_use`` [利用中], ``locked`` after
    ten wrong passwords (§10), or ``regulated`` [規制中] while its line is."""

    passport_id: PassportId
    status: str
    limit: Yen
    line_auth: bool


@attrs.frozen(kw_only=True)
class UsageStatus:
    """The usage status of a line and its Passport IDs (§2)."""

    customer_id: CustomerId
    status: str
    passports: tuple[PassportStatus, ...]


@attrs.frozen(kw_only=True)
class AuditEvent:
    """One stored event behind an explanation: its stream and version, what it is, its
    business time in Tokyo and the time the store recorded it."""

    stream: str
    version: int
    type: str
    at: datetime
    recorded_at: datetime


@attrs.frozen(kw_only=True)
class Explanation:
    """Why one subscription or purchase was — or was not — charged in the audited month."""

    receipt: str
    passport_id: PassportId
    provider: ProviderCode
    service: ServiceCode
    pricing: Pricing
    charged: bool
    amount: Yen
    rule: Rule
    why: str
    events: tuple[AuditEvent, ...]


@attrs.frozen(kw_only=True)
class Difference:
    """A charge on which the issued bill and the bill recomputed from the events differ."""

    receipt: str
    kind: ChargeKind
    issued: Yen | None
    now: Yen | None
    why: str
    events: tuple[AuditEvent, ...]


@attrs.frozen(kw_only=True)
class LaterEvent:
    """An event recorded after the bill was issued that concerns one of its purchases, and
    where it is billed instead (issued bills never change)."""

    receipt: str
    why: str
    event: AuditEvent


@attrs.frozen(kw_only=True)
class MonthMark:
    """Whether a subscription was charged in one month (the timeline's cells)."""

    month: YearMonth
    charged: bool
    rule: Rule | None


@attrs.frozen(kw_only=True)
class TimelineRow:
    """One subscription across the months around the audited one."""

    receipt: str
    provider: ProviderCode
    service: ServiceCode
    pricing: Pricing
    purchased_at: datetime
    cancelled_at: datetime | None
    cancelled_by: str | None
    months: tuple[MonthMark, ...]
    refunded_at: tuple[datetime, ...] = ()


@attrs.frozen(kw_only=True)
class LineMark:
    """An instant in the line's history that changes what is charged (regulation, a line
    change, a deletion), drawn across the timeline."""

    at: datetime
    kind: str
    label: str


@attrs.frozen(kw_only=True)
class Timeline:
    """The subscriptions of the line across the months around the audited one."""

    months: tuple[YearMonth, ...]
    rows: tuple[TimelineRow, ...]
    marks: tuple[LineMark, ...]


@attrs.frozen(kw_only=True)
class Audit:
    """A bill explained from the events behind it (docs/contract.md, ``matome audit``).

    ``as_of`` / ``recorded_as_of``: the business time and the recorded time the history was
    cut at (``None``: now).  ``bill`` is the bill recomputed from the line's own streams as of
    then; ``issued`` the bill as issued, if it was; ``differences`` every charge on which they
    differ, with the events that explain it; ``explanations`` one per subscription or purchase
    that touches the month, charged or not; ``after_issue`` the events recorded after the
    issue that concern the bill's purchases.
    """

    customer_id: CustomerId
    month: YearMonth
    as_of: datetime | None
    recorded_as_of: datetime | None
    bill: Bill
    issued: Bill | None
    differences: tuple[Difference, ...]
    explanations: tuple[Explanation, ...]
    after_issue: tuple[LaterEvent, ...] = ()
    timeline: Timeline | None = None


class BreakKind(StrEnum):
    """What ``matome verify`` found wrong with the stored history."""

    #: An event's content no longer matches the hash recorded for it.
    CHANGED = "changed"
    #: A version of a stream is missing (its event was deleted).
    MISSING = "missing"
    #: A stream's versions were recorded out of order (versions moved between events).
    REORDERED = "reordered"
    #: A personal value no longer matches the digest its event holds.
    PERSONAL_CHANGED = "personal_changed"
    #: An issued bill no longer matches its digest, or the events it was computed from.
    BILL_CHANGED = "bill_changed"
    #: An event cannot be read at all.
    UNREADABLE = "unreadable"
    #: An event has no entry in its stream's chain or in the global chain (its entry was
    #: deleted, or it was slipped in without one).
    UNCHAINED = "unchained"
    #: The global chain over the whole log breaks at a position: an event before it was
    #: deleted, edited or moved, or its entry was changed.
    GLOBAL_CHAIN = "global_chain"
    #: What the read models (views) show of an issued bill differs from the issued bill.
    VIEW_CHANGED = "view_changed"
    #: The store does not extend the checkpoint it was verified against (``--against``).
    SEAL = "seal"


@attrs.frozen(kw_only=True)
class Break:
    """One broken link: where (stream, version, position in the log) and what."""

    kind: BreakKind
    stream: str
    version: int | None
    position: int | None
    topic: str | None
    message: str


@attrs.frozen(kw_only=True)
class SealCheck:
    """What ``matome verify --against SEAL`` found: the checkpoint's ``position`` and
    ``head`` (global chain hash), when it was ``recorded_at``, and whether the store still
    extends it (``ok``), with the reason when not."""

    position: int
    head: str
    recorded_at: str
    ok: bool
    message: str


@attrs.frozen(kw_only=True)
class Verification:
    """What ``matome verify`` checked and found (docs/contract.md, ``matome verify``).

    ``events`` read, ``streams`` checked, ``chained`` events with a recorded hash (events
    written before matome 0.2 have none: they are sealed by the first later event of their
    stream), ``bills`` issued bills checked; ``first_break`` is the earliest break in the log,
    ``breaks`` all of them; ``seal`` is a digest of every stream's latest hash, to keep outside
    the store and compare later.

    Contract 3: ``head`` is the global chain's hash at ``position``, the last log position
    (both computed from the events as they are now; ``matome seal`` signs them);
    ``problems`` the breaks in words, first one first; ``adopted_through`` and
    ``adopted_at`` say which events were recorded before the store had a global chain and
    when a writer adopted them (``None``: never adopted); ``against`` the result of
    ``--against SEAL``.
    """

    ok: bool
    events: int
    streams: int
    chained: int
    bills: int
    first_break: Break | None
    breaks: tuple[Break, ...]
    seal: str
    head: str = ""
    position: int = 0
    problems: tuple[str, ...] = ()
    adopted_through: int | None = None
    adopted_at: str | None = None
    against: SealCheck | None = None
