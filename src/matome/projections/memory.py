"""The views of a few streams, held in memory: the same view functions
(:data:`~matome.projections.views.WHEN`) applied to typed events, into tables of the same
declarations, answering the same :class:`~matome.projections.bills.BillFacts` as the SQL views
(the audit replays one line's streams through them)."""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from datetime import datetime

from matome.application.eventstore import event_to_json
from matome.documents import AccountEntry, Bill
from matome.events.base import DomainEvent
from matome.projections.bills import Purchase, account_entry
from matome.projections.tables import MemoryTables
from matome.projections.views import (
    BILLING,
    BILLS,
    CALENDAR,
    IGNORED,
    LINES,
    PROVIDERS,
    REFUNDS,
    SUBS,
    TABLES,
    WHEN,
    Raw,
    RefundRow,
    SubRow,
    parse_utc,
)
from matome.values import CustomerId, ProviderCode, YearMonth
from matome.wire import from_json

__all__ = ["MemoryViews"]


class MemoryViews:
    """View tables in memory, fed typed events stream by stream.

    Feed a stream after the streams its view functions look up: lines before the bills that
    read their operator; a purchase's own stream holds what its cancellations and refunds
    look up.
    """

    def __init__(self) -> None:
        self.tables = MemoryTables(TABLES)

    def apply(self, events: Iterable[DomainEvent]) -> None:
        """Apply ``events`` (each stream's in its order); an event the views neither handle
        nor ignore fails (:data:`~matome.projections.views.IGNORED`)."""
        for event in events:
            cls = type(event)
            when = WHEN.get(cls)
            if when is None:
                if cls in IGNORED:
                    continue
                raise LookupError(f"the views neither handle nor ignore {cls.TOPIC!r}")
            raw = Raw(str(event.originator_id), event.originator_version, event_to_json(event))
            self.tables.apply(when(raw, self))

    # Lookups

    def purchase(self, stream: str) -> tuple[str, datetime] | None:
        row = self.tables.find(SUBS, "stream", stream)
        return None if row is None else (row.receipt, parse_utc(row.purchased_at))

    def customer(self, stream: str) -> str | None:
        row = self.tables.find(LINES, "stream", stream)
        return None if row is None else row.customer_id

    def operator(self, customer_id: str) -> str | None:
        row = self.tables.find(LINES, "customer_id", customer_id)
        return None if row is None else row.operator

    # BillFacts

    def purchases(self, month: YearMonth, customer_id: str | None) -> list[Purchase]:
        # Every purchase of the line (or lines) held up to the month: the charging rules decide.
        subs = [
            s
            for s in self.tables.rows(SUBS)
            if (customer_id is None or s.customer_id == customer_id)
            and s.purchased_month <= str(month)
        ]
        subs.sort(key=lambda s: (s.purchased_at, s.receipt))
        return [p for p in map(self._purchase, subs) if p is not None]

    def _purchase(self, row: SubRow | None) -> Purchase | None:
        operator = None if row is None else self.operator(row.customer_id)
        return None if row is None or operator is None else Purchase.of(row, operator)

    def refunds(
        self, month: YearMonth, customer_id: str | None
    ) -> list[tuple[Purchase, RefundRow]]:
        out = []
        for refund in self.tables.rows(REFUNDS):
            if refund.month != str(month):
                continue
            purchase = self._purchase(self.tables.find(SUBS, "receipt", refund.receipt))
            if purchase is not None and customer_id in (None, purchase.row.customer_id):
                out.append((purchase, refund))
        return out

    def billing_history(self, customer_id: CustomerId) -> list[AccountEntry]:
        return [
            account_entry(row)
            for row in self.tables.rows(BILLING)
            if row.customer_id == customer_id.value
        ]

    def provider_names(self) -> Mapping[ProviderCode, str]:
        return {ProviderCode(r.provider): r.name for r in self.tables.rows(PROVIDERS)}

    def closed_through(self) -> YearMonth | None:
        row = self.tables.find(CALENDAR, "id", 1)
        through = None if row is None else row.closed_through
        return None if through is None else YearMonth.parse(through)

    def issued_bill(self, customer_id: CustomerId, month: YearMonth) -> Bill | None:
        """The bill as issued, if its ``BillIssued`` was applied."""
        for row in self.tables.rows(BILLS):
            if row.customer_id == customer_id.value and row.month == str(month):
                return from_json(json.loads(row.document), Bill)
        return None
