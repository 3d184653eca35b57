"""The billing run: issue every bill of the closed months, once (rules §7).

``issue_bills`` closes a month (a decision of the calendar, :mod:`matome.aggregates.ledger`:
a ``MonthsClosed`` event); the billing run is a process that follows those events
(:class:`BillingProcess`) and records each line's bill of each closed month as a
``BillIssued`` event on its own (line, month) stream, so a bill is issued once however often
— or by however many workers — the run is repeated, and an interrupted run is completed by
running it again from its tracking position.  The bills are composed by
:mod:`matome.documents` from the charges the views hold.

A month is billed a chunk of lines at a time (:data:`_CHUNK`): the chunk's facts are read by
its range of customer IDs, with the chain hash of every event a charge or an account came
from joined in the same queries (where the store's chain table is beside the views); its
bills are composed, serialised once (the stored text is the digested text), recorded in one
transaction and applied to the bill views from memory at the positions they were recorded at
(:meth:`~matome.projections.runner.Projection.apply_recorded`, exactly once with the views'
tracking position).  Memory is bounded by a chunk, and nothing just written is read back.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Iterator, Mapping, Sequence
from datetime import UTC, datetime
from uuid import UUID

import attrs
from eventsourcing.persistence import IntegrityError

from matome.aggregates.catalog import provider_id
from matome.aggregates.ledger import (
    BILLING_RUN_ID,
    CALENDAR_ID,
    BillingRun,
    Calendar,
    bill_id,
    project_billing_run,
    project_calendar,
)
from matome.aggregates.line import line_id
from matome.aggregates.subscription import subscription_id
from matome.application.eventstore import (
    CHAIN_TABLE,
    EventStoreApplication,
    LogPosition,
    LogPositionTaken,
)
from matome.commands import BILLING_PROCESS
from matome.documents import Bill, BillStatus, entry_in_force
from matome.events.bill import BillIssued
from matome.events.ledger import BillingRunCompleted, MonthsClosed
from matome.projections.bills import month_charges
from matome.projections.documents import Documents, LinesFacts
from matome.projections.runner import Projection
from matome.values import CustomerId, ProviderCode, YearMonth
from matome.wire import canonical_text, text_digest

__all__ = [
    "TRACKING_ID",
    "BillingProcess",
    "bill_id",
    "bill_sources",
    "billing_behind",
    "chain_hashes",
    "events_digest",
    "run_billing",
]


def bill_sources(
    bill: Bill, account_version: int, streams: Mapping[str, str] | None = None
) -> tuple[str, ...]:
    """The events a bill is computed from, as ``<stream>@<version>``: its charges' purchases,
    cancellations and refunds, the line event that set the billing account in force, and the
    registration of each provider it names.  ``streams``: purchases' stream ids by receipt,
    where known (each is ``subscription_id(receipt)``, derived when not given)."""
    refs = {f"{line_id(bill.customer_id)}@{account_version}"}
    known = streams or {}
    for charge in bill.charges:
        for source in charge.sources:
            receipt, _, version = source.rpartition("@")
            stream = known.get(receipt) or str(subscription_id(receipt))
            refs.add(f"{stream}@{version}")
    refs |= {f"{_provider_stream(row.provider)}@1" for row in bill.rows}
    return tuple(sorted(refs))


#: Providers' stream ids by code (a uuid5 each: derived once per process, not once per bill).
_PROVIDER_STREAMS: dict[ProviderCode, str] = {}


def _provider_stream(code: ProviderCode) -> str:
    found = _PROVIDER_STREAMS.get(code)
    if found is None:
        found = _PROVIDER_STREAMS[code] = str(provider_id(code))
    return found


def _parse(ref: str) -> tuple[UUID, int]:
    stream, _, version = ref.rpartition("@")
    return UUID(stream), int(version)


def chain_hashes(store: EventStoreApplication, sources: Iterable[str]) -> dict[str, str]:
    """The chain hash of each event named in ``sources`` (an event written before matome 0.2
    has none recorded: the hash of its stream's history up to it stands in)."""
    keys = {ref: _parse(ref) for ref in sources}
    recorded = store.matome_recorder.chain_hashes(list(keys.values()))
    out = {}
    for ref, key in keys.items():
        found = recorded.get(key)
        out[ref] = found if found is not None else store.fold(key[0], lte=key[1])
    return out


def events_digest(sources: Sequence[str], hashes: dict[str, str]) -> str:
    """SHA-256 over the chain hashes of the events a bill was computed from, in order."""
    lines = [f"{ref}:{hashes.get(ref, 'missing')}" for ref in sorted(sources)]
    return hashlib.sha256("\n".join(lines).encode()).hexdigest()


#: Lines whose bills are composed, recorded and applied to the views at a time (so bills
#: per transaction, at most).
_CHUNK = 500
#: Chain hashes kept from one chunk to the next (the providers' registrations, mostly).
_LOOKED_UP = 10_000
#: ``MonthsClosed`` notifications read at a time.
_PAGE = 100

#: The billing process's tracking record, in the store's table of log positions (a command
#: log's identity is a SHA-256 digest: this name is never one).  Its ``line`` is the
#: notification id of the last ``MonthsClosed`` every bill of which is issued; it is recorded
#: in the transaction of the ``BillingRunCompleted`` that says so.
TRACKING_ID = f"process:{BILLING_PROCESS}"


def _completed(store: EventStoreApplication) -> BillingRun | None:
    state: BillingRun | None = project_billing_run(None, store.events.get(BILLING_RUN_ID))
    return state


def billing_behind(store: EventStoreApplication) -> bool:
    """Whether a closed month has bills the billing process has not issued yet — an
    ``issue_bills`` whose run was cut short (two short stream reads: cheap)."""
    calendar: Calendar | None = project_calendar(None, store.events.get(CALENDAR_ID))
    if calendar is None or calendar.closed_through is None:
        return False
    completed = _completed(store)
    return completed is None or completed.completed_through < calendar.closed_through


@attrs.frozen
class _Closing:
    """One ``MonthsClosed`` of the log: where it is, the month it closed through, and its
    business time (the bills of the months it closed carry it)."""

    position: int
    through: YearMonth
    at: datetime


class BillingProcess:
    """The billing run as a process following ``MonthsClosed`` (eventsourcing's process
    application: a policy applied to the notifications of the log, from a tracked position).

    For each ``MonthsClosed`` after its tracking position it issues the bills of the months
    that event closed and records ``BillingRunCompleted`` together with its new position, in
    one transaction.  A run killed half-way has recorded neither: the next run starts again
    at that ``MonthsClosed`` and skips the bills already issued (a ``BillIssued`` stream per
    (line, month) makes issuing one twice impossible anyway).
    """

    def __init__(
        self, store: EventStoreApplication, projection: Projection, documents: Documents
    ) -> None:
        self._store = store
        self._projection = projection
        self._documents = documents

    def position(self) -> int:
        """The notification id of the last ``MonthsClosed`` the process completed (0: none)."""
        tracked = self._store.matome_recorder.log_position(TRACKING_ID)
        return 0 if tracked is None else tracked.line

    def behind(self) -> bool:
        """Whether a closed month has bills to issue (:func:`billing_behind`)."""
        return billing_behind(self._store)

    def run(self, *, through: YearMonth | None = None, at: datetime | None = None) -> int:
        """Issue the bills of every ``MonthsClosed`` not processed yet; return how many.

        ``through`` stops at that month (the months after it stay to a later run); ``at``
        gives every bill that business time instead of its ``MonthsClosed``'s.
        """
        completed = _completed(self._store)
        if through is not None and completed is not None and completed.completed_through >= through:
            return 0
        if not self.behind():
            return 0
        self._projection.catch_up()
        issued = 0
        now = datetime.now(UTC)
        for closing in self._closings():
            done = None if completed is None else completed.completed_through
            last = closing.through if through is None else min(closing.through, through)
            if done is None or done < last:
                month = done.next() if done is not None else self._documents.first_charge_month()
                while month is not None and month <= last:
                    issued += _issue_month(
                        self._store,
                        self._projection,
                        self._documents,
                        month,
                        at or closing.at,
                        now,
                    )
                    month = month.next()
            whole = last == closing.through
            _complete(self._store, last, at or closing.at, now, closing.position if whole else None)
            completed = _completed(self._store)
            if not whole:
                break
        self._projection.catch_up()
        return issued

    def _closings(self) -> Iterator[_Closing]:
        """The ``MonthsClosed`` notifications after the tracking position, in log order."""
        start = self.position() + 1
        while True:
            page = self._store.recorder.select_notifications(
                start=start, limit=_PAGE, topics=[MonthsClosed.TOPIC]
            )
            for notification in page:
                event = self._store.mapper.to_domain_event(notification)
                if isinstance(event, MonthsClosed):
                    yield _Closing(notification.id, event.through, event.at)
            if len(page) < _PAGE:
                return
            start = page[-1].id + 1


def run_billing(
    store: EventStoreApplication,
    projection: Projection,
    documents: Documents,
    through: YearMonth,
    at: datetime,
) -> int:
    """Issue every bill of a closed month up to ``through`` not issued yet, at business time
    ``at``; return how many (:class:`BillingProcess` run up to ``through``)."""
    return BillingProcess(store, projection, documents).run(through=through, at=at)


def _issue_month(
    store: EventStoreApplication,
    projection: Projection,
    documents: Documents,
    month: YearMonth,
    at: datetime,
    now: datetime,
) -> int:
    """Issue the bills of ``month`` not issued yet, a chunk of lines at a time: each chunk's
    facts read (with the chain hashes of the events they came from, where the store's chain
    table is beside the views), its bills composed, recorded in one transaction and applied
    to the views from memory (:meth:`Projection.apply_recorded`), so memory is bounded by a
    chunk and nothing just written is read back."""
    beside = getattr(projection.store, "beside_events", False)
    chain_table = CHAIN_TABLE if beside else None
    names = documents.provider_names()
    #: Chain hashes found by lookup (the providers' registrations: the same in every chunk).
    looked_up: dict[str, str] = {}
    issued = 0
    after = ""
    while True:
        line_ids = documents.line_ids(after, _CHUNK)
        if not line_ids:
            return issued
        after = line_ids[-1]
        span = (line_ids[0], line_ids[-1])
        done = documents.issued_bills(month, line_ids, span=span)
        todo = [c for c in line_ids if c not in done]
        if todo:
            facts = documents.lines_facts(month, todo, chain_table=chain_table, span=span)
            events = _bills(store, documents, facts, todo, month, at, now, names, looked_up)
            issued += _record(store, projection, events)
        if len(line_ids) < _CHUNK:
            return issued


def _bills(
    store: EventStoreApplication,
    documents: Documents,
    facts: LinesFacts,
    lines: Sequence[str],
    month: YearMonth,
    at: datetime,
    now: datetime,
    names: Mapping[ProviderCode, str],
    looked_up: dict[str, str],
) -> list[BillIssued]:
    """The ``BillIssued`` of each of ``lines`` with a charge in ``month``."""
    bills = []
    for line in lines:
        charges = [c.charge for c in month_charges(facts, month, line, documents.policy)]
        if not charges:
            continue  # nothing to bill: no bill is issued (as ever)
        customer_id = CustomerId(line)
        bill = documents.compose_bill(
            customer_id,
            month,
            charges,
            BillStatus.ISSUED,
            histories=facts.histories,
            provider_names=names,
        )
        account = entry_in_force(facts.histories[customer_id], month)
        # Serialised once: the same text is stored and digested (BillIssued v4).
        bills.append(
            (customer_id, canonical_text(bill), bill_sources(bill, account[1], facts.streams))
        )
    hashes = facts.hashes
    missing = {ref for _, _, sources in bills for ref in sources} - hashes.keys()
    missing -= looked_up.keys()
    # Events written before matome 0.2 (no chain row: folded), the providers' registrations,
    # and every source when the chain table is not beside the views (an in-memory store).
    if len(looked_up) > _LOOKED_UP:
        looked_up.clear()  # bounded (an old store's events are looked up chunk by chunk)
    looked_up.update(chain_hashes(store, missing))
    return [
        BillIssued(
            originator_id=bill_id(customer_id, month),
            originator_version=1,
            timestamp=now,
            at=at,
            customer_id=customer_id,
            month=month,
            document=text,
            digest=text_digest(text),
            sources=sources,
            events_digest=events_digest(
                sources, {ref: hashes.get(ref) or looked_up[ref] for ref in sources}
            ),
        )
        for customer_id, text, sources in bills
    ]


def _record(
    store: EventStoreApplication, projection: Projection, events: Sequence[BillIssued]
) -> int:
    """Record a chunk's bills in one transaction and apply them to the views from memory;
    return how many were recorded (a bill another run issued meanwhile is skipped)."""
    if not events:
        return 0
    try:
        ids = store.record(events)
    except IntegrityError:
        # Another run issued some of these meanwhile: issue the rest one by one (the views
        # catch them up by reading them, as any other events).
        issued = 0
        for event in events:
            try:
                store.record([event])
                issued += 1
            except IntegrityError:
                pass
        return issued
    if ids is not None:
        projection.apply_recorded(ids, events)
    return len(events)


def _complete(
    store: EventStoreApplication,
    through: YearMonth,
    at: datetime,
    now: datetime,
    position: int | None = None,
) -> None:
    """Record that every bill through ``through`` is issued (unless a run got further) and,
    with it, the process's tracking ``position`` (the ``MonthsClosed`` it completed)."""
    tracking = None if position is None else LogPosition(TRACKING_ID, position, "")
    for _ in range(10):
        completed = _completed(store)
        if completed is not None and completed.completed_through >= through:
            return
        event = BillingRunCompleted(
            originator_id=BILLING_RUN_ID,
            originator_version=(completed.version if completed else 0) + 1,
            timestamp=now,
            at=at,
            through=through,
        )
        try:
            store.record([event], position=tracking)
            return
        except LogPositionTaken:
            return  # another run of the process completed this MonthsClosed
        except IntegrityError:
            continue  # another run recorded its completion meanwhile: look again
