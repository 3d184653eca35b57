"""Audit replays of disputed bills: one line's bill rebuilt from that line's own streams and
explained charge by charge (docs/contract.md, ``matome audit``).

The replay reads only the streams of the line (its line stream, its Passport IDs, their
subscriptions, the providers they bought from, the billing calendar, the issued bill and — for
a consolidated line — the representative's line), never the whole log, so auditing one line
costs the same however large the store grows.  The history can be cut at a business time
(``as_of``: what had happened by then) or at a recorded time (``recorded_as_of``: what the
store knew then).  The streams are applied in memory by the views' own functions
(:class:`~matome.projections.memory.MemoryViews`), and the bill is composed from those rows by
the function the documents use (:func:`~matome.projections.bills.line_bill`), so "recomputed
equals issued" compares the output of one function; what was charged and why is decided by
:mod:`matome.charging`, so the audit cannot tell a different story from the bill.

Every event topic is either handled here (:data:`HANDLED`) or ignored (:data:`IGNORED`); an
event of any other topic in a line's streams fails the audit.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any

import attrs

from matome import charging
from matome.aggregates.catalog import provider_id
from matome.aggregates.ledger import CALENDAR_ID, bill_id
from matome.aggregates.line import line_id
from matome.aggregates.passport import passport_id_stream
from matome.aggregates.subscription import subscription_id
from matome.application.eventstore import EventStoreApplication
from matome.documents import (
    AccountEntry,
    Audit,
    AuditEvent,
    Bill,
    Charge,
    ChargeKind,
    Difference,
    Explanation,
    LaterEvent,
    LineMark,
    MonthMark,
    Timeline,
    TimelineRow,
)
from matome.errors import UnknownLine
from matome.events import bill as bill_ev
from matome.events import line as line_ev
from matome.events import passport as passport_ev
from matome.events import subscription as sub_ev
from matome.events.base import DomainEvent
from matome.policy import Policy
from matome.projections.bills import line_bill, month_charges
from matome.projections.memory import MemoryViews
from matome.projections.views import IGNORED as VIEWS_IGNORED
from matome.projections.views import WHEN
from matome.values import (
    TOKYO,
    CustomerId,
    Operator,
    PassportId,
    Pricing,
    ProviderCode,
    ServiceCode,
    YearMonth,
    Yen,
)

__all__ = ["HANDLED", "IGNORED", "LineHistory", "Purchase", "audit_line", "read_line"]


@attrs.frozen
class Cutoff:
    """Where a history is cut: by business time, by recorded time, or not at all."""

    as_of: datetime | None = None
    recorded_as_of: datetime | None = None

    def keeps(self, event: DomainEvent) -> bool:
        return (self.as_of is None or event.at <= self.as_of) and (
            self.recorded_as_of is None or event.timestamp <= self.recorded_as_of
        )


@attrs.define
class Purchase:
    """One purchase of the line as its own stream tells it (what the charging rules read)."""

    receipt: str
    customer_id: CustomerId
    passport_id: PassportId
    provider: ProviderCode
    service: ServiceCode
    service_name: str
    pricing: Pricing
    price: Yen
    quantity: int
    purchased_at: datetime
    events: list[DomainEvent]
    cancelled: sub_ev.Cancelled | None = None
    #: When it ended: its cancellation, or its service period's end if that came first (§11).
    cancelled_at: datetime | None = None
    refunds: list[sub_ev.Refunded] = attrs.field(factory=list)
    period_ends_at: datetime | None = None

    @property
    def cancelled_by(self) -> str | None:
        """What ended it: the cancellation's cause, or ``period_ended`` (§11)."""
        if self.cancelled is not None and self.cancelled.at == self.cancelled_at:
            return self.cancelled.reason.value
        return None if self.cancelled_at is None else sub_ev.CancelReason.PERIOD_ENDED.value

    @property
    def amount(self) -> int:
        return self.price.amount * self.quantity


@attrs.frozen
class LineHistory:
    """Everything one line's bills depend on, read from its own streams up to a cutoff."""

    customer_id: CustomerId
    operator: Operator
    line_events: tuple[DomainEvent, ...]
    passport_events: dict[PassportId, tuple[DomainEvent, ...]]
    purchases: tuple[Purchase, ...]
    provider_names: dict[ProviderCode, str]
    closed_through: YearMonth | None
    cutoff: Cutoff
    store: EventStoreApplication
    #: The line's streams (and the calendar's, its providers', its bills') applied by the
    #: views' functions, in memory: what its bills are composed from.
    views: _LineViews


class _LineViews(MemoryViews):
    """The views of one line's streams; a representative's line stream is read (and applied)
    when its billing account is first asked for (§7: the issue date follows it)."""

    def __init__(self, store: EventStoreApplication, cutoff: Cutoff) -> None:
        super().__init__()
        self._store = store
        self._cutoff = cutoff
        self._lines: set[CustomerId] = set()

    def line(self, customer_id: CustomerId, events: Sequence[DomainEvent]) -> None:
        self._lines.add(customer_id)
        self.apply(events)

    def billing_history(self, customer_id: CustomerId) -> list[AccountEntry]:
        if customer_id not in self._lines:
            self.line(customer_id, _read(self._store, line_id(customer_id), self._cutoff))
        return super().billing_history(customer_id)


#: The topics the audit reads: what the views' functions read (applied in memory), and the
#: line and Passport ID events it explains charges with.
HANDLED: frozenset[type[DomainEvent]] = frozenset(
    (
        *WHEN,
        line_ev.PassportAttached,
        line_ev.Regulated,
        line_ev.RegulationLifted,
        passport_ev.HoldingAdded,
    )
)
#: The topics the audit meets in a line's streams and leaves alone.
IGNORED: frozenset[type[DomainEvent]] = VIEWS_IGNORED - HANDLED


def _read(store: EventStoreApplication, stream: Any, cutoff: Cutoff) -> tuple[DomainEvent, ...]:
    out = []
    for e in store.events.get(stream):
        if not isinstance(e, DomainEvent) or not (type(e) in HANDLED or type(e) in IGNORED):
            raise LookupError(f"the audit neither handles nor ignores {type(e).__name__}")
        if cutoff.keeps(e):
            out.append(e)
    return tuple(out)


def read_line(
    store: EventStoreApplication,
    customer_id: CustomerId,
    *,
    as_of: datetime | None = None,
    recorded_as_of: datetime | None = None,
) -> LineHistory:
    """Read one line's history from its own streams, cut at ``as_of`` / ``recorded_as_of``."""
    cutoff = Cutoff(as_of, recorded_as_of)
    line_events = _read(store, line_id(customer_id), cutoff)
    opened = next((e for e in line_events if isinstance(e, line_ev.LineOpened)), None)
    if opened is None:
        raise UnknownLine(f"no access line {customer_id}" + (" as of then" if line_events else ""))
    # Applied stream by stream, each after those its view functions look up: the calendar,
    # the line, its Passport IDs, their purchases, the providers (the bills: by audit_line).
    views = _LineViews(store, cutoff)
    calendar = _read(store, CALENDAR_ID, cutoff)
    views.apply(calendar)
    views.line(customer_id, line_events)
    passport_ids = [e.passport_id for e in line_events if isinstance(e, line_ev.PassportAttached)]
    passport_events: dict[PassportId, tuple[DomainEvent, ...]] = {}
    purchases: list[Purchase] = []
    for pid in dict.fromkeys(passport_ids):
        events = _read(store, passport_id_stream(pid), cutoff)
        passport_events[pid] = events
        views.apply(events)
        for held in (e for e in events if isinstance(e, passport_ev.HoldingAdded)):
            stream = _read(store, subscription_id(held.receipt), cutoff)
            purchase = _purchase(stream)
            if purchase is not None and purchase.customer_id == customer_id:
                purchases.append(purchase)
                views.apply(stream)
    for code in sorted({p.provider for p in purchases}):
        views.apply(_read(store, provider_id(code), cutoff))
    purchases.sort(key=lambda p: (p.purchased_at, p.receipt))
    return LineHistory(
        customer_id=customer_id,
        operator=opened.operator,
        line_events=line_events,
        passport_events=passport_events,
        purchases=tuple(purchases),
        provider_names=dict(views.provider_names()),
        closed_through=views.closed_through(),
        cutoff=cutoff,
        store=store,
        views=views,
    )


def _purchase(events: Sequence[DomainEvent]) -> Purchase | None:
    if not events or not isinstance(events[0], sub_ev.Purchased):
        return None
    bought = events[0]
    purchase = Purchase(
        receipt=bought.receipt,
        customer_id=bought.customer_id,
        passport_id=bought.passport_id,
        provider=bought.provider,
        service=bought.service,
        service_name=bought.service_name,
        pricing=bought.pricing,
        price=bought.price,
        quantity=bought.quantity,
        purchased_at=bought.at,
        events=list(events),
        period_ends_at=bought.period_ends_at,
    )
    for e in events[1:]:
        if isinstance(e, sub_ev.Cancelled):
            purchase.cancelled, purchase.cancelled_at = e, e.at
        elif isinstance(e, sub_ev.Refunded):
            purchase.refunds.append(e)
    if bought.pricing is Pricing.MONTHLY:
        # §11: the period's end is a cancellation fixed at purchase; an earlier one overrides.
        purchase.cancelled_at = charging.until(purchase.cancelled_at, bought.period_ends_at)
    return purchase


# ---------------------------------------------------------------------------------------------
# The bill and its explanation


def _audit_event(e: DomainEvent) -> AuditEvent:
    return AuditEvent(
        stream=str(e.originator_id),
        version=e.originator_version,
        type=type(e).__name__,
        at=e.at.astimezone(TOKYO),
        recorded_at=e.timestamp,
    )


def charges(history: LineHistory, month: YearMonth, policy: Policy) -> list[Charge]:
    """The line's charges of ``month`` as its streams tell them (the function the documents
    use, over the views of the line's streams)."""
    return [
        c.charge for c in month_charges(history.views, month, history.customer_id.value, policy)
    ]


def bill(history: LineHistory, month: YearMonth, policy: Policy) -> Bill:
    """The line's bill of ``month`` recomputed from its streams: the documents' own
    composition (:func:`~matome.projections.bills.line_bill`), its status the documents' too
    (issued once the history holds its ``BillIssued``)."""
    issued = _issued(history, month) is not None
    return line_bill(history.views, history.customer_id, month, policy, issued=issued)


def _cause(history: LineHistory, p: Purchase) -> list[DomainEvent]:
    """The line or Passport ID event that cancelled ``p`` when the customer did not."""
    if p.cancelled is None or p.cancelled.reason is sub_ev.CancelReason.CUSTOMER:
        return []
    at = p.cancelled.at
    candidates: Iterable[DomainEvent] = (
        history.passport_events.get(p.passport_id, ())
        if p.cancelled.reason is sub_ev.CancelReason.PASSPORT_DELETED
        else history.line_events
    )
    return [
        e
        for e in candidates
        if e.at == at
        and isinstance(e, line_ev.Regulated | line_ev.LineMoved | passport_ev.PassportDeleted)
    ]


def explain(history: LineHistory, month: YearMonth, policy: Policy) -> list[Explanation]:
    """One explanation per subscription or purchase that touches ``month``, charged or not,
    and one per refund recorded in it — in the words of :func:`matome.charging.why`."""
    out: list[Explanation] = []
    once = policy.monthly_once_per_month
    for p, rule, charged in charging.assess_month(history.purchases, month, once_per_month=once):
        events = [p.events[0]]
        if p.cancelled is not None and p.cancelled_by == p.cancelled.reason.value:
            events += [p.cancelled, *_cause(history, p)]
        rule = charging.ended_rule(rule, p.cancelled_by)
        out.append(
            Explanation(
                receipt=p.receipt,
                passport_id=p.passport_id,
                provider=p.provider,
                service=p.service,
                pricing=p.pricing,
                charged=charged,
                amount=Yen(p.amount if charged else 0),
                rule=rule,
                why=charging.why(
                    rule,
                    month,
                    p.purchased_at,
                    p.cancelled_at,
                    cancelled_by=p.cancelled_by,
                    unit_price=p.price.amount,
                    quantity=p.quantity,
                ),
                events=tuple(_audit_event(e) for e in events),
            )
        )
    for p in history.purchases:
        for r in p.refunds:
            if YearMonth.of(r.at) == month:
                out.append(
                    Explanation(
                        receipt=p.receipt,
                        passport_id=p.passport_id,
                        provider=p.provider,
                        service=p.service,
                        pricing=p.pricing,
                        charged=True,
                        amount=-r.amount,
                        rule=charging.Rule.REFUND,
                        why=charging.why(
                            charging.Rule.REFUND, month, p.purchased_at, amount=-r.amount.amount
                        )
                        + f" ({r.reason})",
                        events=(_audit_event(p.events[0]), _audit_event(r)),
                    )
                )
    return out


#: Months shown before the audited one on the timeline.
_BEFORE = 5


def timeline(history: LineHistory, month: YearMonth, policy: Policy) -> Timeline:
    """Each subscription of the line across the months around ``month``, charged or not, with
    the instants that changed what was charged (regulation, lifting, line changes)."""
    first = min((YearMonth.of(p.purchased_at) for p in history.purchases), default=month)
    start = month
    for _ in range(_BEFORE):
        if start <= first:
            break
        start = start.previous()
    months = [start]
    while months[-1] < month.next():
        months.append(months[-1].next())
    once = policy.monthly_once_per_month
    marks: dict[str, dict[YearMonth, tuple[bool, charging.Rule]]] = {
        p.receipt: {}
        for p in history.purchases
        if any(YearMonth.of(r.at) in months for r in p.refunds)
    }
    for m in months:
        for p, rule, charged in charging.assess_month(history.purchases, m, once_per_month=once):
            marks.setdefault(p.receipt, {})[m] = (
                charged,
                charging.ended_rule(rule, p.cancelled_by),
            )
    rows = tuple(
        TimelineRow(
            receipt=p.receipt,
            provider=p.provider,
            service=p.service,
            pricing=p.pricing,
            purchased_at=p.purchased_at.astimezone(TOKYO),
            cancelled_at=None if p.cancelled_at is None else p.cancelled_at.astimezone(TOKYO),
            cancelled_by=p.cancelled_by,
            months=tuple(
                MonthMark(
                    month=m,
                    charged=marks[p.receipt].get(m, (False, None))[0],
                    rule=marks[p.receipt].get(m, (False, None))[1],
                )
                for m in months
            ),
            refunded_at=tuple(r.at.astimezone(TOKYO) for r in p.refunds),
        )
        for p in history.purchases
        if p.receipt in marks or any(YearMonth.of(r.at) in months for r in p.refunds)
    )
    line_marks = []
    for e in history.line_events:
        if not months[0].start() <= e.at < months[-1].end():
            continue
        if isinstance(e, line_ev.Regulated):
            line_marks.append(
                LineMark(at=e.at.astimezone(TOKYO), kind="regulated", label="regulated")
            )
        elif isinstance(e, line_ev.RegulationLifted):
            line_marks.append(
                LineMark(at=e.at.astimezone(TOKYO), kind="lifted", label="regulation lifted")
            )
        elif isinstance(e, line_ev.LineMoved):
            line_marks.append(
                LineMark(at=e.at.astimezone(TOKYO), kind="line_change", label=e.change.value)
            )
    return Timeline(months=tuple(months), rows=rows, marks=tuple(line_marks))


def _issued(history: LineHistory, month: YearMonth) -> bill_ev.BillIssued | None:
    """The line's ``BillIssued`` of ``month`` in the history (applied to its views)."""
    events = _read(history.store, bill_id(history.customer_id, month), history.cutoff)
    issued = [e for e in events if isinstance(e, bill_ev.BillIssued)]
    if issued and history.views.issued_bill(history.customer_id, month) is None:
        history.views.apply(issued[:1])
    return issued[0] if issued else None


def _differences(issued: Bill, now: Bill, later: Sequence[DomainEvent]) -> list[Difference]:
    def amounts(b: Bill) -> dict[tuple[str, ChargeKind, tuple[str, ...]], Yen]:
        # A charge is named by its receipt and kind; a refund also by its own event.
        return {
            (c.receipt, c.kind, c.sources if c.kind is ChargeKind.REFUND else ()): c.amount
            for c in b.charges
        }

    was, is_ = amounts(issued), amounts(now)
    out = []
    for key in sorted(set(was) | set(is_), key=lambda k: (k[0], k[1].value, k[2])):
        if was.get(key) == is_.get(key):
            continue
        receipt, kind, _ = key
        explaining = [e for e in later if _receipt_of(e) == receipt]
        why = (
            "changed by events recorded after the bill was issued"
            if explaining
            else "no event recorded after the issue explains it: the stored history differs "
            "from what was billed (run matome verify)"
        )
        out.append(
            Difference(
                receipt=receipt,
                kind=kind,
                issued=was.get(key),
                now=is_.get(key),
                why=why,
                events=tuple(_audit_event(e) for e in explaining),
            )
        )
    return out


def _receipt_of(e: DomainEvent) -> str | None:
    return getattr(e, "receipt", None)


def audit_line(
    store: EventStoreApplication,
    customer_id: CustomerId,
    month: YearMonth,
    policy: Policy,
    *,
    as_of: datetime | None = None,
    recorded_as_of: datetime | None = None,
) -> Audit:
    """The audit document of one line for one month (see :class:`matome.documents.Audit`)."""
    history = read_line(store, customer_id, as_of=as_of, recorded_as_of=recorded_as_of)
    recomputed = bill(history, month, policy)
    issued_event = _issued(history, month)
    # The bill as issued, as the views hold it (its document as stored).
    issued = history.views.issued_bill(customer_id, month)
    differences: list[Difference] = []
    later: list[LaterEvent] = []
    if issued_event is not None:
        issued_at = issued_event.timestamp
        after = [e for p in history.purchases for e in p.events[1:] if e.timestamp > issued_at]
        for p in history.purchases:
            for e in p.events[1:]:
                if e.timestamp > issued_at:
                    stub = f"recorded on {e.timestamp.astimezone(TOKYO).date()}, after the bill "
                    stub += f"was issued: it belongs to {YearMonth.of(e.at)}, the month of its "
                    stub += "business time; issued bills never change (§7)"
                    later.append(LaterEvent(receipt=p.receipt, why=stub, event=_audit_event(e)))
        if issued is not None:
            differences = _differences(issued, recomputed, after)
    return Audit(
        customer_id=customer_id,
        month=month,
        as_of=as_of,
        recorded_as_of=recorded_as_of,
        bill=recomputed,
        issued=issued,
        differences=tuple(differences),
        explanations=tuple(explain(history, month, policy)),
        after_issue=tuple(later),
        timeline=timeline(history, month, policy),
    )
