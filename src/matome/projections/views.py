"""The billing views: each table declared once, and what each event changes in them.

A ``when`` function reads one event (as :class:`Raw`: its stream, version and stored JSON
state) and returns the row changes it makes, as data (:mod:`matome.projections.tables`).  It
touches no database: what it must know of rows written before — which purchase a stream is,
which line — it asks a :class:`Lookups`, which the SQL runner answers from the view tables and
the audit from its in-memory tables.  So the views and the audit cannot read the same events
differently.

Every registered event topic is either handled (:data:`WHEN`) or declared ignored
(:data:`IGNORED`); a test checks that together they are every topic, and a reader meeting a
topic that is neither fails.  A ``when`` function is registered by the :func:`when` decorator
on it.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import Any, NamedTuple, Protocol, TypeVar

from matome.charging import last_charged_month
from matome.events import bill as bill_ev
from matome.events import catalog as catalog_ev
from matome.events import ledger as ledger_ev
from matome.events import line as line_ev
from matome.events import passport as passport_ev
from matome.events import subscription as sub_ev
from matome.events.base import DomainEvent
from matome.projections.tables import Change, Index, Insert, Table, Update, Upsert
from matome.values import Pricing, tokyo_date
from matome.wire import dumps, loads

__all__ = [
    "HANDLED",
    "IGNORED",
    "TABLES",
    "WHEN",
    "Lookups",
    "Raw",
    "parse_utc",
    "utc_text",
    "when",
]

# ---------------------------------------------------------------------------------------------
# Time as the views store it


_UTC_FORMAT = "%Y-%m-%dT%H:%M:%S.%fZ"


def utc_text(at: datetime) -> str:
    """A fixed-width UTC text form: sorts as time does, in SQL and in Python."""
    utc = at.astimezone(UTC)
    if utc.year < 1000:  # strftime's %Y does not pad these; keep its form
        return utc.strftime(_UTC_FORMAT)
    # The same text as strftime(_UTC_FORMAT), several times faster.
    return utc.isoformat(timespec="microseconds")[:26] + "Z"


def parse_utc(text: str) -> datetime:
    """The instant of a :func:`utc_text`."""
    try:
        return datetime.fromisoformat(text)  # the "Z" of UTC: Python 3.11 reads it
    except ValueError:
        return datetime.strptime(text, _UTC_FORMAT).replace(tzinfo=UTC)


def _month_text(at: datetime) -> str:
    """``str(YearMonth.of(at))`` without building the value."""
    day = tokyo_date(at)
    return f"{day.year:04d}-{day.month:02d}"


# ---------------------------------------------------------------------------------------------
# The tables (times are utc_text, months YYYY-MM, JSON values canonical JSON text)


class LineRow(NamedTuple):
    customer_id: str
    stream: str
    operator: str
    kind: str
    opened_at: str
    predecessor: str | None
    successor: str | None = None
    ended_at: str | None = None


class BillingRow(NamedTuple):
    """A billing account of a line (``billing_to_json``), from its stream ``version``."""

    customer_id: str
    version: int
    at: str
    billing: str


class ProviderRow(NamedTuple):
    provider: str
    name: str
    contact: str
    goods: str


class PassportRow(NamedTuple):
    passport_id: str
    stream: str
    customer_id: str
    registered_at: str
    deleted_at: str | None = None


class SubRow(NamedTuple):
    """A purchase; ``cancelled_*`` is also a monthly subscription's period end (§11)."""

    receipt: str
    stream: str
    customer_id: str
    passport_id: str
    provider: str
    service: str
    service_name: str
    pricing: str
    price: int
    purchased_at: str
    purchased_month: str
    cancelled_at: str | None
    cancelled_month: str | None
    cancel_reason: str | None
    cancel_version: int | None
    quantity: int
    period_ends_at: str | None


class RefundRow(NamedTuple):
    receipt: str
    version: int
    at: str
    month: str
    amount: int
    reason: str


class ContinuityRow(NamedTuple):
    """A line change (§6); ``cancelled`` and ``deleted`` are JSON lists."""

    customer_id: str
    version: int
    at: str
    change: str
    new_customer_id: str | None
    kept: int
    cancelled: str
    deleted: str


class BillRow(NamedTuple):
    """An issued bill: its document (the contract's JSON) and digest."""

    customer_id: str
    month: str
    document: str
    digest: str


class CalendarRow(NamedTuple):
    id: int
    closed_through: str | None
    billed_through: str | None


class FeeRow(NamedTuple):
    operator: str
    version: int
    effective_from: str
    flat_fee: int


class BillAmountRow(NamedTuple):
    """One row of an issued bill: what one line pays one provider in a month."""

    customer_id: str
    month: str
    provider: str
    amount: int


class ProviderMonthRow(NamedTuple):
    """The issued bills' rows of a month summed per provider and operator."""

    month: str
    provider: str
    operator: str
    amount: int
    lines: int


# ``fixed``: what the lookups read (a line's customer ID and operator by its stream, a purchase's
# receipt and time by its stream) never changes once written.
LINES = Table(
    "lines", LineRow, key=("customer_id",), unique=("stream",), fixed=("operator", "opened_at")
)
BILLING = Table("billing", BillingRow, key=("customer_id", "version"))
PROVIDERS = Table("providers", ProviderRow, key=("provider",))
PASSPORTS = Table("passports", PassportRow, key=("passport_id",), unique=("stream",))
SUBS = Table(
    "subs",
    SubRow,
    key=("receipt",),
    unique=("stream",),
    fixed=("purchased_at",),
    indexes=(
        Index("mv_subs_line", ("customer_id", "purchased_month")),
        # A month's purchases of a range of lines (the billing run's chunk) are found by a
        # seek, not by reading every purchase of the month or every purchase of the lines.
        Index("mv_subs_month", ("purchased_month", "customer_id")),
        # The monthly subscriptions of a range of lines, with what says whether one is still
        # charged, in the index: the billing run fetches only those still charged, not every
        # purchase of the lines' history (a bill's cost flat in the months of history).
        Index("mv_subs_open", ("pricing", "customer_id", "cancelled_month", "purchased_month")),
    ),
)
REFUNDS = Table(
    "refunds",
    RefundRow,
    key=("receipt", "version"),
    indexes=(Index("mv_refunds_month", ("month",)),),
)
CONTINUITY = Table("continuity", ContinuityRow, key=("customer_id", "version"))
BILLS = Table("bills", BillRow, key=("customer_id", "month"))
CALENDAR = Table("calendar", CalendarRow, key=("id",))
FEES = Table("fees", FeeRow, key=("operator", "version"))
BILL_ROWS = Table("bill_rows", BillAmountRow, key=("month", "provider", "customer_id"))
PROVIDER_MONTHS = Table("provider_months", ProviderMonthRow, key=("month", "provider", "operator"))

#: Every view table, in the order their inserts are applied.
TABLES: tuple[Table[Any], ...] = (
    PROVIDERS,
    LINES,
    BILLING,
    CONTINUITY,
    PASSPORTS,
    SUBS,
    REFUNDS,
    BILLS,
    BILL_ROWS,
    PROVIDER_MONTHS,
    CALENDAR,
    FEES,
)

# ---------------------------------------------------------------------------------------------
# Events as the views read them


class Raw:
    """An event as the views read it: its stream, version and stored JSON state (brought up to
    the current class version), without building the typed event.

    Decoding into typed events (cattrs, every value type validated again) was most of a
    rebuild's time; the views need a few fields of each event, as text and numbers.
    """

    __slots__ = ("state", "stream", "version")

    def __init__(self, stream: str, version: int, state: dict[str, Any]) -> None:
        self.stream = stream
        self.version = version
        self.state = state

    @property
    def at(self) -> datetime:
        at: datetime = datetime.fromisoformat(self.state["at"])
        if at.utcoffset() is None:
            raise ValueError(f"stored time {self.state['at']!r} has no offset")
        return at

    @property
    def month(self) -> str:
        """The Tokyo billing month of ``at`` as ``YYYY-MM``."""
        text: str = self.state["at"]
        if text.endswith("+09:00") and len(text) >= 19:
            return text[:7]  # written in Tokyo time (the usual case): its own month
        return _month_text(self.at)


class Lookups(Protocol):
    """What the view functions ask of rows written before (by earlier events)."""

    def purchase(self, stream: str) -> tuple[str, datetime] | None:
        """The receipt and purchase time of the purchase on ``stream``, if any."""

    def customer(self, stream: str) -> str | None:
        """The customer ID of the line on ``stream``, if any."""

    def operator(self, customer_id: str) -> str | None:
        """The operator of the line ``customer_id``, if any."""


Changes = Sequence[Change]
When = Callable[[Raw, Lookups], Changes]
W = TypeVar("W", bound=When)

#: What each event the views read changes in them (filled by :func:`when`).
WHEN: dict[type[DomainEvent], When] = {}


def when(event_class: type[DomainEvent]) -> Callable[[W], W]:
    """Register the decorated function as what ``event_class`` changes in the views: the
    function and its registry entry are one place (a second one for an event fails at import).
    The order of registration does not matter: each event has one function."""

    def register(function: W) -> W:
        if event_class in WHEN:
            raise RuntimeError(f"{event_class.__name__} has two view functions")
        WHEN[event_class] = function
        return function

    return register


# ---------------------------------------------------------------------------------------------
# What each event changes


@when(sub_ev.Purchased)
def _purchased(e: Raw, _: Lookups) -> Changes:
    s = e.state
    at = e.at
    # §11: a monthly subscription's period end is its cancellation, fixed at purchase (a
    # customer's cancellation, always earlier, replaces it); no Cancelled event is dated ahead.
    ends = s.get("period_ends_at")
    end = None if ends is None else datetime.fromisoformat(ends)
    scheduled = end if end is not None and s["pricing"] == Pricing.MONTHLY.value else None
    row = SubRow(
        s["receipt"],
        e.stream,
        s["customer_id"],
        s["passport_id"],
        s["provider"],
        s["service"],
        s["service_name"],
        s["pricing"],
        int(s["price"]),
        utc_text(at),
        e.month,
        None if scheduled is None else utc_text(scheduled),
        None if scheduled is None else str(last_charged_month(at, scheduled)),
        None if scheduled is None else sub_ev.CancelReason.PERIOD_ENDED.value,
        None,
        int(s["quantity"]),
        None if end is None else utc_text(end),
    )
    return (Insert(SUBS, row),)


_CANCEL_COLUMNS = ("cancelled_at", "cancelled_month", "cancel_reason", "cancel_version")


@when(sub_ev.Cancelled)
def _cancelled(e: Raw, look: Lookups) -> Changes:
    # The view keeps the last charged month beside the cancellation so that month queries can
    # select by range; the rule itself is matome.charging's.
    sub = look.purchase(e.stream)
    if sub is None:
        raise LookupError(f"Cancelled for unknown subscription stream {e.stream}")
    at = e.at
    values = (utc_text(at), str(last_charged_month(sub[1], at)), e.state["reason"], e.version)
    return (Update(SUBS, "stream", e.stream, _CANCEL_COLUMNS, values),)


@when(sub_ev.Refunded)
def _refunded(e: Raw, look: Lookups) -> Changes:
    sub = look.purchase(e.stream)
    if sub is None:
        return ()  # as ever: a refund of an unknown purchase adds no row
    s = e.state
    row = RefundRow(sub[0], e.version, utc_text(e.at), e.month, int(s["amount"]), s["reason"])
    return (Insert(REFUNDS, row),)


def _billing(customer_id: str, e: Raw) -> Insert:
    # The billing object is stored in the contract's JSON form (billing_to_json).
    row = BillingRow(customer_id, e.version, utc_text(e.at), dumps(e.state["billing"]))
    return Insert(BILLING, row)


@when(line_ev.LineOpened)
def _line_opened(e: Raw, _: Lookups) -> Changes:
    s = e.state
    row = LineRow(
        s["customer_id"], e.stream, s["operator"], s["kind"], utc_text(e.at), s["predecessor"]
    )
    return (Insert(LINES, row), _billing(s["customer_id"], e))


def _customer_of(look: Lookups, stream: str) -> str:
    found = look.customer(stream)
    if found is None:
        raise LookupError(f"event for unknown line stream {stream}")
    return found


@when(line_ev.BillingChanged)
def _billing_changed(e: Raw, look: Lookups) -> Changes:
    return (_billing(_customer_of(look, e.stream), e),)


@when(line_ev.LineMoved)
def _line_moved(e: Raw, look: Lookups) -> Changes:
    s = e.state
    customer_id = _customer_of(look, e.stream)
    at = utc_text(e.at)
    out: list[Change] = [
        Insert(
            CONTINUITY,
            ContinuityRow(
                customer_id,
                e.version,
                at,
                s["change"],
                s["new_customer_id"],
                int(bool(s["kept"])),
                dumps(list(s["cancelled"])),
                dumps(list(s["deleted"])),
            ),
        )
    ]
    if s["new_kind"] is not None:
        out.append(Update(LINES, "customer_id", customer_id, ("kind",), (s["new_kind"],)))
    if s["ended"]:
        out.append(
            Update(
                LINES,
                "customer_id",
                customer_id,
                ("ended_at", "successor"),
                (at, s["new_customer_id"]),
            )
        )
    return out


@when(catalog_ev.ProviderRegistered)
def _provider_registered(e: Raw, _: Lookups) -> Changes:
    s = e.state
    return (Insert(PROVIDERS, ProviderRow(s["provider"], s["name"], s["contact"], s["goods"])),)


@when(passport_ev.Registered)
def _passport_registered(e: Raw, _: Lookups) -> Changes:
    s = e.state
    row = PassportRow(s["passport_id"], e.stream, s["customer_id"], utc_text(e.at))
    return (Insert(PASSPORTS, row),)


@when(passport_ev.PassportDeleted)
def _passport_deleted(e: Raw, _: Lookups) -> Changes:
    return (Update(PASSPORTS, "stream", e.stream, ("deleted_at",), (utc_text(e.at),)),)


def _issued_document(state: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    """The issued bill's document in a ``BillIssued``'s state: its canonical JSON text, exactly
    as stored (the bytes its digest covers), and that text parsed."""
    text: str = state["document"]
    document: dict[str, Any] = loads(text)
    return text, document


@when(bill_ev.BillIssued)
def _bill_issued(e: Raw, look: Lookups) -> Changes:
    s = e.state
    text, bill = _issued_document(s)
    customer_id, month = s["customer_id"], s["month"]
    # The view keeps the stored text itself: what verify hashes is what the views show.
    out: list[Change] = [Insert(BILLS, BillRow(customer_id, month, text, s["digest"]))]
    # The month's totals per provider, read by provider totals and settlement once the
    # month's billing run completed (instead of recomputing every charge of every line) ...
    rows = [(r["provider"], int(r["amount"])) for r in bill["rows"]]
    out += [Insert(BILL_ROWS, BillAmountRow(customer_id, month, p, a)) for p, a in rows]
    # ... and kept summed per month, provider and operator as the bills are issued (a bill has
    # one row per provider: each row is one more line billed for that provider).
    operator = look.operator(customer_id)
    if operator is not None:  # as ever: a bill of an unknown line adds to no total
        out += [
            Upsert(PROVIDER_MONTHS, _PROVIDER_MONTH, (month, p, operator, a, 1), _ADDED)
            for p, a in rows
        ]
    return out


_PROVIDER_MONTH = PROVIDER_MONTHS.column_names
_ADDED = ("amount", "lines")


def _calendar(column: str, e: Raw) -> Changes:
    return (Upsert(CALENDAR, ("id", column), (1, e.state["through"])),)


@when(ledger_ev.MonthsClosed)
def _months_closed(e: Raw, _: Lookups) -> Changes:
    return _calendar("closed_through", e)


@when(ledger_ev.BillingRunCompleted)
def _billing_run_completed(e: Raw, _: Lookups) -> Changes:
    return _calendar("billed_through", e)


@when(ledger_ev.FeeSet)
def _fee_set(e: Raw, _: Lookups) -> Changes:
    s = e.state
    row = FeeRow(s["operator"], e.version, s["effective_from"], int(s["flat_fee"]))
    return (Insert(FEES, row),)


#: Events that change nothing the views show (limits, notifications, passwords, personal
#: data, idempotency keys, services listed, the links between lines and Passport IDs: the
#: purchases carry their line and Passport ID themselves).
IGNORED: frozenset[type[DomainEvent]] = frozenset(
    (
        catalog_ev.ServiceListed,
        ledger_ev.KeyBound,
        line_ev.LineLimitChanged,
        line_ev.NotificationSet,
        line_ev.PassportAttached,
        line_ev.PassportDetached,
        line_ev.PassportLimitChanged,
        line_ev.Regulated,
        line_ev.RegulationLifted,
        passport_ev.DetailsChanged,
        passport_ev.HoldingAdded,
        passport_ev.HoldingEnded,
        passport_ev.LimitChanged,
        passport_ev.PasswordRehashed,
        line_ev.AccessKeyRehashed,
        passport_ev.PasswordAccepted,
        passport_ev.PasswordRejected,
        passport_ev.PasswordReset,
        passport_ev.PersonalDataErased,
        sub_ev.PurchaseReferenced,
    )
)
#: The topics the views handle.
HANDLED: frozenset[type[DomainEvent]] = frozenset(WHEN)
