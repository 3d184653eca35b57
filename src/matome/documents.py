"""The documents of the interchange contract (docs/contract.md, "Documents out") as typed values.

Each document is a frozen attrs class built by a pure ``compose_*`` function from facts the
caller gathered (from the views, or from the events of one line).  Only the one cattrs
converter (:mod:`matome.wire`) turns them into the contract's JSON (:func:`matome.wire.to_json`),
so a document's shape is written once, here.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import date, datetime
from enum import StrEnum
from fractions import Fraction

import attrs

from matome.charging import Rule
from matome.errors import FeeNotConfigured, InvalidInput
from matome.fees import Fee
from matome.values import (
    BillingAccount,
    ChangeKind,
    Consolidated,
    CustomerId,
    CustomerNumber,
    Operator,
    PassportId,
    Pricing,
    ProviderCode,
    ServiceCode,
    YearMonth,
    Yen,
)

__all__ = [
    "LABEL",
    "Audit",
    "AuditEvent",
    "Bill",
    "BillRow",
    "BillStatus",
    "Break",
    "BreakKind",
    "Charge",
    "ChargeKind",
    "Contact",
    "ContinuityRow",
    "Difference",
    "Explanation",
    "LaterEvent",
    "LineCharge",
    "LineMark",
    "MonthMark",
    "PassportStatus",
    "ProviderTotal",
    "SealCheck",
    "SettlementLine",
    "SettlementStatus",
    "Statement",
    "StatementRow",
    "Timeline",
    "TimelineRow",
    "UsageStatus",
    "Verification",
    "account_in_force",
    "bill_status",
    "check_page",
    "compose_bill",
    "compose_provider_totals",
    "compose_settlement",
    "compose_settlement_from_totals",
    "compose_statement",
    "compose_usage_status",
    "entry_in_force",
    "issue_date",
    "sort_charges",
]

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


# ---------------------------------------------------------------------------------------------
# Composition


def sort_charges(charges: Iterable[LineCharge]) -> list[LineCharge]:
    """The order charges are listed in: by line, provider, start date, receipt, kind, sources."""
    return sorted(
        charges,
        key=lambda c: (
            c.customer_id.value,
            c.charge.provider.value,
            c.charge.started_on,
            c.charge.receipt,
            c.charge.kind.value,
            c.charge.sources,
        ),
    )


AccountEntry = tuple[datetime, int, BillingAccount]


def entry_in_force(history: Sequence[AccountEntry], month: YearMonth) -> AccountEntry:
    """The entry of the line's account history in force at the end of ``month``.

    ``history`` is the line's accounts as ``(business time, stream version, account)``; a line
    opened after the month is billed to its first account.
    """
    if not history:
        raise ValueError("a line always has a billing account")
    end = month.end()
    before = [h for h in history if h[0] < end]
    if not before:
        return min(history, key=lambda h: h[1])
    return max(before, key=lambda h: (h[0], h[1]))


def account_in_force(history: Sequence[AccountEntry], month: YearMonth) -> BillingAccount:
    """The billing account in force at the end of ``month`` (Decision of §7)."""
    return entry_in_force(history, month)[2]


def issue_date(
    customer_id: CustomerId,
    month: YearMonth,
    account_of: Callable[[CustomerId, YearMonth], BillingAccount],
) -> date:
    """When month M's bill is issued (§7): the 22nd of M+1 with the phone bill, the 17th of
    M+1 with a "00" customer number; a consolidated line follows its representative (a cycle
    of representatives falls back to the phone-bill schedule)."""
    account = account_of(customer_id, month)
    seen = {customer_id}
    while isinstance(account, Consolidated):
        representative = account.representative
        if representative in seen:
            break
        seen.add(representative)
        account = account_of(representative, month)
    day = 17 if isinstance(account, CustomerNumber) else 22
    following = month.next()
    return date(following.year, following.month, day)


def bill_status(
    month: YearMonth,
    closed_through: YearMonth | None,
    *,
    issued: bool = False,
    charged: bool = False,
) -> BillStatus:
    """A bill's status (§7): ``issued`` once its ``BillIssued`` is recorded; a line with
    nothing ``charged`` in a closed month gets no ``BillIssued`` (the billing run records
    none) and can gain no charge there, so its empty bill is final and reads as issued; any
    other bill is a ``preview``.  A closed month alone is not enough: a billing run cut short
    has closed the month and issued only some of its bills.

    With neither ``issued`` nor ``charged`` it says whether the month is final at all (a
    settlement is a preview until its month is closed)."""
    if issued:
        return BillStatus.ISSUED
    closed = closed_through is not None and month <= closed_through
    return BillStatus.ISSUED if closed and not charged else BillStatus.PREVIEW


def compose_bill(
    *,
    customer_id: CustomerId,
    month: YearMonth,
    billing_account: BillingAccount,
    issue_date: date,
    status: BillStatus,
    charges: Sequence[Charge],
    provider_names: Mapping[ProviderCode, str],
) -> Bill:
    """One row per provider with the sum of its charges, rows sorted by provider code, and the
    subtotal the sum of the rows (§7; the guide's A 525 / B 600 example)."""
    totals: dict[ProviderCode, int] = defaultdict(int)
    for charge in charges:
        totals[charge.provider] += charge.amount.amount
    rows = tuple(
        BillRow(
            provider=code,
            provider_name=provider_names.get(code, code.value),
            label=LABEL,
            amount=Yen(amount),
        )
        for code, amount in sorted(totals.items())
    )
    return Bill(
        customer_id=customer_id,
        month=month,
        billing_account=billing_account,
        issue_date=issue_date,
        status=status,
        rows=rows,
        subtotal=Yen(sum(r.amount.amount for r in rows)),
        charges=tuple(charges),
    )


def check_page(page: int, per_page: int) -> None:
    """A statement page is a positive number; a page holds 1–500 rows."""
    if type(page) is not int or page < 1:
        raise InvalidInput(f"page must be a positive integer, got {page!r}")
    if type(per_page) is not int or not 1 <= per_page <= 500:
        raise InvalidInput(f"per_page must be 1–500, got {per_page!r}")


def compose_statement(
    bill: Bill,
    provider_names: Mapping[ProviderCode, str],
    passport_id: PassportId | None = None,
    page: int = 1,
    per_page: int = 50,
) -> Statement:
    """The usage statement [ご利用明細] (§7): the bill's charges, optionally of one ID, paged."""
    check_page(page, per_page)
    rows = [
        StatementRow(
            receipt=c.receipt,
            passport_id=c.passport_id,
            provider=c.provider,
            provider_name=provider_names.get(c.provider, c.provider.value),
            service_name=c.service_name,
            unit_price=c.unit_price,
            quantity=c.quantity,
            amount=c.amount,
            started_on=c.started_on,
            kind=c.kind,
            ends_on=c.ends_on,
        )
        for c in bill.charges
        if passport_id is None or c.passport_id == passport_id
    ]
    start = (page - 1) * per_page
    return Statement(
        customer_id=bill.customer_id,
        month=bill.month,
        total=len(rows),
        page=page,
        per_page=per_page,
        rows=tuple(rows[start : start + per_page]),
        passport_id=passport_id,
    )


def compose_provider_totals(charges: Iterable[LineCharge]) -> list[ProviderTotal]:
    """Per provider: the lines billed for it and the amount, across every line."""
    amounts: dict[ProviderCode, int] = defaultdict(int)
    lines: dict[ProviderCode, set[CustomerId]] = defaultdict(set)
    for c in charges:
        amounts[c.charge.provider] += c.charge.amount.amount
        lines[c.charge.provider].add(c.customer_id)
    return [
        ProviderTotal(provider=code, lines=len(lines[code]), amount=Yen(amounts[code]))
        for code in sorted(amounts)
    ]


def compose_settlement(
    charges: Iterable[LineCharge],
    month: YearMonth,
    fee_of: Callable[[Operator, int, int], Fee],
) -> list[SettlementLine]:
    """Per provider and operator (East and West lines settle apart): gross, lines billed,
    average per line, fee, tax and net (§8), sorted by provider then operator.

    ``fee_of(operator, gross, lines)`` is the fee schedule in force for ``month``
    (:func:`matome.fees.fee_for`); it raises ``FeeNotConfigured`` for a tier without an amount.
    ``average_per_line`` is a decimal string with two places, rounded down (never a float).
    """
    amounts: dict[tuple[ProviderCode, Operator], int] = defaultdict(int)
    lines: dict[tuple[ProviderCode, Operator], set[CustomerId]] = defaultdict(set)
    for c in charges:
        key = (c.charge.provider, c.operator)
        amounts[key] += c.charge.amount.amount
        lines[key].add(c.customer_id)
    return compose_settlement_from_totals(
        [(p, o, amounts[p, o], len(lines[p, o])) for p, o in amounts], fee_of
    )


def compose_settlement_from_totals(
    totals: Iterable[tuple[ProviderCode, Operator, int, int]],
    fee_of: Callable[[Operator, int, int], Fee],
) -> list[SettlementLine]:
    """The settlement from each (provider, operator)'s gross and lines billed (§8)."""
    out = []
    for provider, operator, gross, count in sorted(totals, key=lambda t: (t[0].value, t[1].value)):
        average = Fraction(gross, count) if count else Fraction(0)
        try:
            fee = fee_of(operator, gross, count)
        except FeeNotConfigured:
            out.append(
                SettlementLine(
                    provider=provider,
                    operator=operator,
                    gross=Yen(gross),
                    lines=count,
                    average_per_line=_two_places(average),
                    fee=None,
                    tax=None,
                    net=None,
                    status=SettlementStatus.FEE_NOT_CONFIGURED,
                )
            )
            continue
        out.append(
            SettlementLine(
                provider=provider,
                operator=operator,
                gross=Yen(gross),
                lines=count,
                average_per_line=_two_places(fee.average),
                fee=Yen(fee.fee),
                tax=Yen(fee.tax),
                net=Yen(gross - fee.fee - fee.tax),
                status=SettlementStatus.SETTLED,
            )
        )
    return out


def _two_places(value: Fraction) -> str:
    """``value`` as a decimal string with two places, truncated toward zero (never a float)."""
    cents = abs(value.numerator) * 100 // value.denominator
    sign = "-" if value < 0 and cents else ""
    return f"{sign}{cents // 100}.{cents % 100:02d}"


def compose_usage_status(
    customer_id: CustomerId,
    regulated: bool,
    passports: Mapping[PassportId, tuple[Yen, bool, bool]],
) -> UsageStatus:
    """The line's Passport IDs as the service page lists them (rules §2).

    ``passports`` maps each current ID to (limit, locked, line authentication).  Each is listed
    with its status — ``regulated`` [規制中] while the line is regulated, else ``locked`` after
    ten wrong passwords (§10), else ``in_use`` [利用中] — its limit and its line-authentication
    setting; deleted IDs are gone from the list, and a line with no IDs shows ``not_used``
    [未利用].  (Registration takes effect at once in matome, so ``registering`` [登録中] is
    never shown.)
    """
    listed = tuple(
        PassportStatus(
            passport_id=pid,
            status="regulated" if regulated else "locked" if locked else "in_use",
            limit=limit,
            line_auth=line_auth,
        )
        for pid, (limit, locked, line_auth) in sorted(passports.items())
    )
    line_status = "not_used" if not listed else "regulated" if regulated else "in_use"
    return UsageStatus(customer_id=customer_id, status=line_status, passports=listed)
