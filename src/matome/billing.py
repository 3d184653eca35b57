"""The billing run: issue every bill of the closed months, once (rules §7).

``issue_bills`` closes a month (a decision of the calendar, :mod:`matome.aggregates.ledger`);
the billing run then records each line's bill of each closed month as a ``BillIssued`` event
on its own (line, month) stream, so a bill is issued once however often — or by however many
workers — the run is repeated, and an interrupted run is completed by running it again.  The
bills are composed by :mod:`matome.documents` from the charges the views hold.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime
from uuid import UUID

from eventsourcing.persistence import IntegrityError

from matome.aggregates.catalog import provider_id
from matome.aggregates.ledger import (
    BILLING_RUN_ID,
    BillingRun,
    bill_id,
    project_billing_run,
)
from matome.aggregates.line import line_id
from matome.aggregates.subscription import subscription_id
from matome.application.eventstore import EventStoreApplication
from matome.documents import Bill, BillStatus, Charge, entry_in_force
from matome.events.bill import BillIssued
from matome.events.ledger import BillingRunCompleted
from matome.projections.documents import Documents
from matome.projections.runner import Projection
from matome.values import CustomerId, YearMonth
from matome.wire import canonical_text, text_digest

__all__ = ["bill_id", "bill_sources", "chain_hashes", "events_digest", "run_billing"]


def bill_sources(bill: Bill, account_version: int) -> tuple[str, ...]:
    """The events a bill is computed from, as ``<stream>@<version>``: its charges' purchases,
    cancellations and refunds, the line event that set the billing account in force, and the
    registration of each provider it names."""
    refs = {f"{line_id(bill.customer_id)}@{account_version}"}
    for charge in bill.charges:
        for source in charge.sources:
            receipt, _, version = source.rpartition("@")
            refs.add(f"{subscription_id(receipt)}@{version}")
    refs |= {f"{provider_id(row.provider)}@1" for row in bill.rows}
    return tuple(sorted(refs))


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


#: Bills recorded per transaction.
_CHUNK = 500


def _completed(store: EventStoreApplication) -> BillingRun | None:
    state: BillingRun | None = project_billing_run(None, store.events.get(BILLING_RUN_ID))
    return state


def run_billing(
    store: EventStoreApplication,
    projection: Projection,
    documents: Documents,
    through: YearMonth,
    at: datetime,
) -> int:
    """Issue every bill of a closed month up to ``through`` not issued yet; return how many.

    The run starts after the last month every bill of which was issued (it records that month
    when it has issued them all: ``BillingRunCompleted``), so it costs the months it issues,
    not the whole history; a run cut short starts again at its first unfinished month, and
    skips the bills already issued there.
    """
    completed = _completed(store)
    if completed is not None and completed.completed_through >= through:
        return 0
    projection.catch_up()
    month = (
        completed.completed_through.next()
        if completed is not None
        else documents.first_charge_month()
    )
    issued = 0
    now = datetime.now(UTC)
    while month is not None and month <= through:
        issued += _issue_month(store, documents, month, at, now)
        month = month.next()
    _complete(store, through, at, now)
    projection.catch_up()
    return issued


def _issue_month(
    store: EventStoreApplication,
    documents: Documents,
    month: YearMonth,
    at: datetime,
    now: datetime,
) -> int:
    done = documents.issued_bills(month)
    by_line: dict[CustomerId, list[Charge]] = {}
    for c in documents.charges(month):
        by_line.setdefault(c.customer_id, []).append(c.charge)
    lines = [c for c in sorted(by_line, key=lambda c: c.value) if c.value not in done]
    # Read once for the whole run, not once per bill (a round trip each on PostgreSQL).
    histories = documents.billing_histories(lines)
    names = documents.provider_names()
    bills = []
    for customer_id in lines:
        bill = documents.compose_bill(
            customer_id,
            month,
            by_line[customer_id],
            BillStatus.ISSUED,
            histories=histories,
            provider_names=names,
        )
        account = entry_in_force(histories[customer_id], month)
        # Serialised once: the same text is stored and digested (BillIssued v4).
        bills.append((bill.customer_id, canonical_text(bill), bill_sources(bill, account[1])))
    hashes = chain_hashes(store, {ref for _, _, sources in bills for ref in sources})
    events = [
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
            events_digest=events_digest(sources, hashes),
        )
        for customer_id, text, sources in bills
    ]
    issued = 0
    for start in range(0, len(events), _CHUNK):
        chunk = events[start : start + _CHUNK]
        try:
            store.record(chunk)
            issued += len(chunk)
        except IntegrityError:
            # Another run issued some of these meanwhile: issue the rest one by one.
            for event in chunk:
                try:
                    store.record([event])
                    issued += 1
                except IntegrityError:
                    pass
    return issued


def _complete(
    store: EventStoreApplication, through: YearMonth, at: datetime, now: datetime
) -> None:
    """Record that every bill through ``through`` is issued (unless a run got further)."""
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
            store.record([event])
            return
        except IntegrityError:
            continue  # another run recorded its completion meanwhile: look again
