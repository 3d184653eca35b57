"""The projection runner: keeps the view tables up to date with the log, exactly once.

There is no subscription on SQLite (eventsourcing's ``ProjectionRunner`` needs one), so the
runner *polls*: it reads the notification log from its tracked position, applies a batch of
events, and writes the batch's view changes and the new position in one transaction.  Queries
call :meth:`Projection.catch_up` first, so they see every command that returned before them.

Two catch-ups never apply the same events: the tracking row is read and advanced inside the
writing transaction (``BEGIN IMMEDIATE`` on SQLite, ``SELECT ... FOR UPDATE`` on PostgreSQL).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from matome.charging import last_charged_month
from matome.events import bill as bill_ev
from matome.events import catalog as catalog_ev
from matome.events import ledger as ledger_ev
from matome.events import line as line_ev
from matome.events import passport as passport_ev
from matome.events import subscription as sub_ev
from matome.events.base import DomainEvent
from matome.projections.viewstore import SCHEMA_VERSION, Cursor, ViewStore
from matome.values import YearMonth, billing_to_json
from matome.wire import dumps

if TYPE_CHECKING:
    from matome.engine import Engine

__all__ = ["VIEW_NAME", "Progress", "Projection", "utc_text"]

VIEW_NAME = "billing"
#: Events per transaction while catching up.
BATCH = 2_000

Progress = Callable[[int, int], None]
"""Called with (events processed so far, events to process in all) during long catch-ups."""


def utc_text(at: datetime) -> str:
    """A fixed-width UTC text form: sorts as time does, in SQL and in Python."""
    return at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _sub_purchased(cur: Cursor, e: sub_ev.Purchased) -> None:
    cur.execute(
        "INSERT INTO mv_subs (receipt, stream, customer_id, passport_id, provider, service, "
        "service_name, pricing, price, purchased_at, purchased_month) "
        "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        (
            e.receipt,
            str(e.originator_id),
            e.customer_id.value,
            e.passport_id.value,
            e.provider.value,
            e.service.value,
            e.service_name,
            e.pricing.value,
            e.price.amount,
            utc_text(e.at),
            str(YearMonth.of(e.at)),
        ),
    )


def _sub_cancelled(cur: Cursor, e: sub_ev.Cancelled) -> None:
    # The view keeps the last charged month beside the cancellation so that month queries can
    # select by range; the rule itself is matome.charging's.
    cur.execute("SELECT purchased_at FROM mv_subs WHERE stream = ?", (str(e.originator_id),))
    row = cur.fetchone()
    if row is None:
        raise LookupError(f"Cancelled for unknown subscription stream {e.originator_id}")
    purchased_at = datetime.strptime(row[0], "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=UTC)
    last = last_charged_month(purchased_at, e.at)
    cur.execute(
        "UPDATE mv_subs SET cancelled_at = ?, cancelled_month = ?, cancel_reason = ?, "
        "cancel_version = ? WHERE stream = ?",
        (utc_text(e.at), str(last), e.reason.value, e.originator_version, str(e.originator_id)),
    )


def _sub_refunded(cur: Cursor, e: sub_ev.Refunded) -> None:
    cur.execute(
        "INSERT INTO mv_refunds (receipt, version, at, month, amount, reason) "
        "SELECT receipt, ?, ?, ?, ?, ? FROM mv_subs WHERE stream = ?",
        (
            e.originator_version,
            utc_text(e.at),
            str(YearMonth.of(e.at)),
            e.amount.amount,
            e.reason,
            str(e.originator_id),
        ),
    )


def _line_opened(cur: Cursor, e: line_ev.LineOpened) -> None:
    cur.execute(
        "INSERT INTO mv_lines (customer_id, stream, operator, kind, opened_at, predecessor) "
        "VALUES (?, ?, ?, ?, ?, ?)",
        (
            e.customer_id.value,
            str(e.originator_id),
            e.operator.value,
            e.kind.value,
            utc_text(e.at),
            e.predecessor.value if e.predecessor else None,
        ),
    )
    _billing(cur, e.customer_id.value, e)


def _billing(cur: Cursor, customer_id: str, e: line_ev.LineOpened | line_ev.BillingChanged) -> None:
    cur.execute(
        "INSERT INTO mv_billing (customer_id, version, at, billing) VALUES (?, ?, ?, ?)",
        (customer_id, e.originator_version, utc_text(e.at), dumps(billing_to_json(e.billing))),
    )


def _customer_of(cur: Cursor, stream: Any) -> str:
    cur.execute("SELECT customer_id FROM mv_lines WHERE stream = ?", (str(stream),))
    row = cur.fetchone()
    if row is None:
        raise LookupError(f"event for unknown line stream {stream}")
    return str(row[0])


def _billing_changed(cur: Cursor, e: line_ev.BillingChanged) -> None:
    _billing(cur, _customer_of(cur, e.originator_id), e)


def _line_moved(cur: Cursor, e: line_ev.LineMoved) -> None:
    customer_id = _customer_of(cur, e.originator_id)
    cur.execute(
        "INSERT INTO mv_continuity (customer_id, version, at, change, new_customer_id, kept, "
        "cancelled, deleted) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
        (
            customer_id,
            e.originator_version,
            utc_text(e.at),
            e.change.value,
            e.new_customer_id.value if e.new_customer_id else None,
            int(e.kept),
            dumps(list(e.cancelled)),
            dumps([p.value for p in e.deleted]),
        ),
    )
    if e.new_kind is not None:
        cur.execute(
            "UPDATE mv_lines SET kind = ? WHERE customer_id = ?", (e.new_kind.value, customer_id)
        )
    if e.ended:
        cur.execute(
            "UPDATE mv_lines SET ended_at = ?, successor = ? WHERE customer_id = ?",
            (
                utc_text(e.at),
                e.new_customer_id.value if e.new_customer_id else None,
                customer_id,
            ),
        )


def _provider_registered(cur: Cursor, e: catalog_ev.ProviderRegistered) -> None:
    cur.execute(
        "INSERT INTO mv_providers (provider, name, contact, goods) VALUES (?, ?, ?, ?)",
        (e.provider.value, e.name, e.contact, e.goods.value),
    )


def _passport_registered(cur: Cursor, e: passport_ev.Registered) -> None:
    cur.execute(
        "INSERT INTO mv_passports (passport_id, stream, customer_id, registered_at) "
        "VALUES (?, ?, ?, ?)",
        (e.passport_id.value, str(e.originator_id), e.customer_id.value, utc_text(e.at)),
    )


def _passport_deleted(cur: Cursor, e: passport_ev.PassportDeleted) -> None:
    cur.execute(
        "UPDATE mv_passports SET deleted_at = ? WHERE stream = ?",
        (utc_text(e.at), str(e.originator_id)),
    )


def _bill_issued(cur: Cursor, e: bill_ev.BillIssued) -> None:
    cur.execute(
        "INSERT INTO mv_bills (customer_id, month, document, digest) VALUES (?, ?, ?, ?)",
        (e.customer_id.value, str(e.month), dumps(e.document), e.digest),
    )


def _months_closed(cur: Cursor, e: ledger_ev.MonthsClosed) -> None:
    cur.execute("DELETE FROM mv_calendar")
    cur.execute("INSERT INTO mv_calendar (id, closed_through) VALUES (1, ?)", (str(e.through),))


HANDLERS: dict[type[DomainEvent], Callable[[Cursor, Any], None]] = {
    sub_ev.Purchased: _sub_purchased,
    sub_ev.Cancelled: _sub_cancelled,
    sub_ev.Refunded: _sub_refunded,
    line_ev.LineOpened: _line_opened,
    line_ev.BillingChanged: _billing_changed,
    line_ev.LineMoved: _line_moved,
    catalog_ev.ProviderRegistered: _provider_registered,
    passport_ev.Registered: _passport_registered,
    passport_ev.PassportDeleted: _passport_deleted,
    bill_ev.BillIssued: _bill_issued,
    ledger_ev.MonthsClosed: _months_closed,
}
#: Only these topics are read from the log: the others do not change the views.
TOPICS = tuple(sorted(cls.TOPIC for cls in HANDLERS))


class Projection:
    """The billing read model of one engine's store."""

    def __init__(self, engine: Engine, store: ViewStore) -> None:
        self.engine = engine
        self.store = store
        self._checked = False

    # Tracking

    def _position(self, cur: Cursor, *, lock: bool) -> tuple[int, int] | None:
        sql = "SELECT position, schema_version FROM mv_tracking WHERE view = ?"
        if lock and self.store.dialect == "postgres":
            sql += " FOR UPDATE"
        cur.execute(sql, (VIEW_NAME,))
        row = cur.fetchone()
        return None if row is None else (int(row[0]), int(row[1]))

    def position(self) -> int:
        """The last notification id the views include."""
        with self.store.transaction(write=False) as cur:
            tracked = self._position(cur, lock=False)
        return 0 if tracked is None else tracked[0]

    def _set_position(self, cur: Cursor, position: int) -> None:
        if self.store.dialect == "postgres":
            cur.execute(
                "INSERT INTO mv_tracking (view, position, schema_version) VALUES (?, ?, ?) "
                "ON CONFLICT (view) DO UPDATE SET position = EXCLUDED.position, "
                "schema_version = EXCLUDED.schema_version",
                (VIEW_NAME, position, SCHEMA_VERSION),
            )
        else:
            cur.execute(
                "INSERT OR REPLACE INTO mv_tracking (view, position, schema_version) "
                "VALUES (?, ?, ?)",
                (VIEW_NAME, position, SCHEMA_VERSION),
            )

    # Catching up

    def catch_up(self, progress: Progress | None = None) -> int:
        """Apply every event recorded so far that the views do not include; return how many."""
        if not self._checked:
            self._check_schema()
        recorder = self.engine.recorder
        stop = recorder.max_notification_id() or 0
        done = 0
        total: int | None = None
        while True:
            with self.store.transaction(write=True) as cur:
                tracked = self._position(cur, lock=True)
                position = 0 if tracked is None else tracked[0]
                if position >= stop:
                    break
                if total is None:
                    total = stop - position
                batch = recorder.select_notifications(
                    start=position + 1, limit=BATCH, stop=stop, topics=TOPICS
                )
                to_event = self.engine.mapper.to_domain_event
                for notification in batch:
                    event = to_event(notification)
                    assert isinstance(event, DomainEvent)
                    HANDLERS[type(event)](cur, event)
                # A short batch means nothing else of interest up to ``stop``.
                new_position = batch[-1].id if len(batch) == BATCH else stop
                self._set_position(cur, new_position)
            done += new_position - position
            if progress is not None and total:
                progress(done, total)
        return done

    def _check_schema(self) -> None:
        with self.store.transaction(write=False) as cur:
            tracked = self._position(cur, lock=False)
        if tracked is not None and tracked[1] != SCHEMA_VERSION:
            self.reset()
        self._checked = True

    def reset(self) -> None:
        """Drop the views and their position; the next catch-up replays the whole log."""
        with self.store.transaction(write=True) as cur:
            self.store.drop_views(cur)
            cur.execute("DELETE FROM mv_tracking WHERE view = ?", (VIEW_NAME,))

    def rebuild(self, progress: Progress | None = None) -> int:
        """Drop the views and replay the whole log into them; return the events processed.

        Batches commit as they go: an interrupted rebuild resumes from where it stopped.
        """
        self.reset()
        self._checked = True
        return self.catch_up(progress)

    # Reading

    def query(self, sql: str, params: tuple[Any, ...] = ()) -> list[Any]:
        with self.store.transaction(write=False) as cur:
            cur.execute(sql, params)
            return cur.fetchall()

    def dump(self) -> dict[str, list[Any]]:
        """Every view row, sorted: for comparing an incremental view with a rebuilt one."""
        tables = (
            "lines",
            "billing",
            "providers",
            "passports",
            "subs",
            "refunds",
            "continuity",
            "bills",
            "calendar",
        )
        out: dict[str, list[Any]] = {}
        for table in tables:
            rows = self.query(f"SELECT * FROM mv_{table}")
            out[table] = sorted(tuple(r) for r in rows)
        return out


def loads_json(text: str) -> Any:
    return json.loads(text)
