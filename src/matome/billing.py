"""The billing run: issue every bill of the closed months, once (DOMAIN.md §7).

``issue_bills`` closes a month (a decision of the calendar, :mod:`matome.aggregates.ledger`);
the billing run then records each line's bill of each closed month as a ``BillIssued`` event
on its own (line, month) stream, so a bill is issued once however often — or by however many
workers — the run is repeated, and an interrupted run is completed by running it again.  The
bills are composed by :mod:`matome.documents` from the charges the views hold.
"""

from __future__ import annotations

from datetime import UTC, datetime
from uuid import UUID, uuid5

from eventsourcing.persistence import IntegrityError

from matome.aggregates.base import NAMESPACE
from matome.application.eventstore import EventStoreApplication
from matome.documents import BillStatus, Charge
from matome.events.bill import BillIssued
from matome.projections.documents import Documents, bill_digest
from matome.projections.runner import Projection
from matome.values import CustomerId, YearMonth

__all__ = ["bill_id", "run_billing"]

#: Bills recorded per transaction.
_CHUNK = 500


def bill_id(customer_id: CustomerId | str, month: YearMonth) -> UUID:
    """The stream of one issued bill."""
    cid = customer_id.value if isinstance(customer_id, CustomerId) else customer_id
    return uuid5(NAMESPACE, f"bill:{cid}:{month}")


def run_billing(
    store: EventStoreApplication,
    projection: Projection,
    documents: Documents,
    through: YearMonth,
    at: datetime,
) -> int:
    """Issue every bill of a closed month up to ``through`` not issued yet; return how many."""
    projection.catch_up()
    month = documents.first_charge_month()
    issued = 0
    now = datetime.now(UTC)
    while month is not None and month <= through:
        done = documents.issued_bills(month)
        by_line: dict[CustomerId, list[Charge]] = {}
        for c in documents.charges(month):
            by_line.setdefault(c.customer_id, []).append(c.charge)
        events = []
        for customer_id in sorted(by_line, key=lambda c: c.value):
            if customer_id.value in done:
                continue
            bill = documents.compose_bill(
                customer_id, month, by_line[customer_id], BillStatus.ISSUED
            )
            events.append(
                BillIssued(
                    originator_id=bill_id(customer_id, month),
                    originator_version=1,
                    timestamp=now,
                    at=at,
                    customer_id=customer_id,
                    month=month,
                    bill=bill,
                    digest=bill_digest(bill),
                )
            )
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
        month = month.next()
    projection.catch_up()
    return issued
