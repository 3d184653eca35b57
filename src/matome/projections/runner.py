"""The projection runner: keeps the view tables up to date with the log, exactly once.

There is no subscription on SQLite (eventsourcing's ``ProjectionRunner`` needs one), so the
runner *polls*: it reads the notification log from its tracked position, applies a batch of
events, and writes the batch's view changes and the new position in one transaction.  Queries
call :meth:`Projection.catch_up` first, so they see every command that returned before them.

Two catch-ups never apply the same events: the tracking row is read and advanced inside the
writing transaction (``BEGIN IMMEDIATE`` on SQLite, ``SELECT ... FOR UPDATE`` on PostgreSQL).

Speed (a rebuild replays the whole log): a batch is large (one transaction rewrites every
index page it touched, so fewer transactions write fewer pages) and is applied a chunk at a
time.  The handlers write through a :class:`_BatchCursor`, which runs the frequent inserts and
updates of a chunk with ``executemany``, in an order that gives the same rows (see its
docstring), and answers the handlers' "which purchase (line) is this stream" lookups from the
chunk itself or from one query per chunk instead of one per event.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import Any, Protocol
from uuid import UUID

from eventsourcing.persistence import (
    ApplicationRecorder,
    Mapper,
    MapperDeserialisationError,
    StoredEvent,
)

from matome.application.eventstore import event_to_json, upcast
from matome.charging import last_charged_month
from matome.events import bill as bill_ev
from matome.events import catalog as catalog_ev
from matome.events import ledger as ledger_ev
from matome.events import line as line_ev
from matome.events import passport as passport_ev
from matome.events import subscription as sub_ev
from matome.events.base import DomainEvent
from matome.projections.viewstore import SCHEMA_VERSION, Cursor, ViewStore
from matome.values import Pricing, tokyo_date
from matome.wire import dumps, loads

__all__ = ["VIEW_NAME", "EventLog", "Progress", "Projection", "utc_text"]

VIEW_NAME = "billing"
#: Events per transaction while catching up.  Large, because each transaction writes every
#: index page it touched: inserts at random places in an index (receipts, stream ids) touch
#: fewer pages per event when more of them share a transaction.
BATCH = 50_000
#: Events read, decoded and applied at a time within a transaction (bounds memory).
CHUNK = 5_000

Progress = Callable[[int, int], None]
"""Called with (events processed so far, events to process in all) during long catch-ups."""


_UTC_FORMAT = "%Y-%m-%dT%H:%M:%S.%fZ"


def utc_text(at: datetime) -> str:
    """A fixed-width UTC text form: sorts as time does, in SQL and in Python."""
    utc = at.astimezone(UTC)
    if utc.year < 1000:  # strftime's %Y does not pad these; keep its form
        return utc.strftime(_UTC_FORMAT)
    # The same text as strftime(_UTC_FORMAT), several times faster.
    return utc.isoformat(timespec="microseconds")[:26] + "Z"


def _parse_utc(text: str) -> datetime:
    """The instant of a :func:`utc_text`."""
    try:
        return datetime.fromisoformat(text[:-1]).replace(tzinfo=UTC)
    except ValueError:
        return datetime.strptime(text, _UTC_FORMAT).replace(tzinfo=UTC)


def _month_text(at: datetime) -> str:
    """``str(YearMonth.of(at))`` without building the value."""
    day = tokyo_date(at)
    return f"{day.year:04d}-{day.month:02d}"


# Statements that a _BatchCursor defers to the end of the batch, in the order it runs them.
_INSERT_LINE = (
    "INSERT INTO mv_lines (customer_id, stream, operator, kind, opened_at, predecessor) "
    "VALUES (?, ?, ?, ?, ?, ?)"
)
_INSERT_BILLING = "INSERT INTO mv_billing (customer_id, version, at, billing) VALUES (?, ?, ?, ?)"
_INSERT_PASSPORT = (
    "INSERT INTO mv_passports (passport_id, stream, customer_id, registered_at) VALUES (?, ?, ?, ?)"
)
_INSERT_SUB = (
    "INSERT INTO mv_subs (receipt, stream, customer_id, passport_id, provider, service, "
    "service_name, pricing, price, purchased_at, purchased_month, quantity, period_ends_at, "
    "cancelled_at, cancelled_month, cancel_reason) "
    "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
)
_CANCEL_SUB = (
    "UPDATE mv_subs SET cancelled_at = ?, cancelled_month = ?, cancel_reason = ?, "
    "cancel_version = ? WHERE stream = ?"
)
_INSERT_REFUND = (
    "INSERT INTO mv_refunds (receipt, version, at, month, amount, reason) VALUES (?, ?, ?, ?, ?, ?)"
)
_LINE_KIND = "UPDATE mv_lines SET kind = ? WHERE customer_id = ?"
_LINE_ENDED = "UPDATE mv_lines SET ended_at = ?, successor = ? WHERE customer_id = ?"
_INSERT_CONTINUITY = (
    "INSERT INTO mv_continuity (customer_id, version, at, change, new_customer_id, kept, "
    "cancelled, deleted) VALUES (?, ?, ?, ?, ?, ?, ?, ?)"
)
_INSERT_PROVIDER = "INSERT INTO mv_providers (provider, name, contact, goods) VALUES (?, ?, ?, ?)"
_INSERT_BILL = "INSERT INTO mv_bills (customer_id, month, document, digest) VALUES (?, ?, ?, ?)"
_INSERT_BILL_ROW = (
    "INSERT INTO mv_bill_rows (customer_id, month, provider, amount) VALUES (?, ?, ?, ?)"
)
#: Adds one issued bill's row to its month's total for the provider and the line's operator.
_ADD_PROVIDER_MONTH = (
    "INSERT INTO mv_provider_months (month, provider, operator, amount, lines) "
    "SELECT ?, ?, operator, ?, 1 FROM mv_lines WHERE customer_id = ? "
    "ON CONFLICT (month, provider, operator) DO UPDATE SET "
    "amount = mv_provider_months.amount + excluded.amount, "
    "lines = mv_provider_months.lines + 1"
)
_DEFERRED = {
    sql: rank
    for rank, sql in enumerate(
        (
            _INSERT_PROVIDER,
            _INSERT_LINE,
            _INSERT_BILLING,
            _INSERT_CONTINUITY,
            _LINE_KIND,
            _LINE_ENDED,
            _INSERT_PASSPORT,
            _INSERT_SUB,
            _CANCEL_SUB,
            _INSERT_REFUND,
            _INSERT_BILL,
            _INSERT_BILL_ROW,
            _ADD_PROVIDER_MONTH,
        )
    )
}
_SUB_BY_STREAM = "SELECT receipt, purchased_at FROM mv_subs WHERE stream = ?"
_LINE_BY_STREAM = "SELECT customer_id FROM mv_lines WHERE stream = ?"
#: Streams per prefetching query (below every SQL engine's limit on parameters).
_PREFETCH = 500
_SUBS_BY_STREAMS = (
    "SELECT stream, receipt, purchased_at FROM mv_subs "
    f"WHERE stream IN ({', '.join('?' * _PREFETCH)})"
)


class _BatchCursor:
    """The cursor the handlers of one batch write through.

    The statements of :data:`_DEFERRED` are buffered and run with ``executemany`` when a chunk
    of the batch ends (:meth:`flush`), grouped by statement in the order of ``_DEFERRED``;
    within a statement, in the order of the log.  That gives the same rows as running every
    statement at once, in the order of the log, because:

    * the deferred statements only insert rows, or update a row whose handler has checked
      first that it was inserted before (a purchase by its stream, a line by its customer
      ID; else the handler raises, as it always did), and updates come after inserts; two
      updates of one column keep their order, updates of different columns commute;
    * they read nothing: what a handler needs to know about a purchase (its receipt and time)
      or a line (its customer ID) comes from :meth:`subscription` and :meth:`customer`,
      which know the rows inserted earlier in the chunk, and otherwise read columns that no
      statement ever changes (so the buffered writes need not run before those reads);
    * any other statement — a read, a rare event's write — first runs everything buffered,
      so it sees, and comes after, every earlier write, exactly as before.

    A failing statement fails the batch's transaction, as before: nothing of it is kept.
    """

    def __init__(self, cur: Cursor) -> None:
        self._cur = cur
        self._pending: dict[int, list[Sequence[Any]]] = {}
        #: Purchases by stream: inserted earlier in this chunk, or read for it.
        self._subs: dict[str, tuple[str, datetime]] = {}
        self._known: dict[str, tuple[str, datetime]] = {}
        #: Customer IDs of lines by stream: opened earlier in this chunk, or read for it.
        self._lines: dict[str, str] = {}

    # The Cursor protocol

    def execute(self, sql: str, params: Sequence[Any] = ()) -> Any:
        rank = _DEFERRED.get(sql)
        if rank is not None:
            self._pending.setdefault(rank, []).append(params)
            return None
        self.flush()
        return self._cur.execute(sql, params)

    def executemany(self, sql: str, params: Sequence[Sequence[Any]]) -> Any:
        rank = _DEFERRED.get(sql)
        if rank is not None:
            self._pending.setdefault(rank, []).extend(params)
            return None
        self.flush()
        return self._cur.executemany(sql, params)

    def fetchone(self) -> Any:
        return self._cur.fetchone()

    def fetchall(self) -> list[Any]:
        return self._cur.fetchall()

    def forget(self) -> None:
        """Drop what the lookups remember (after a :meth:`flush`, the rows answer them)."""
        self._subs.clear()
        self._known.clear()
        self._lines.clear()

    def flush(self) -> None:
        """Run every buffered statement."""
        if not self._pending:
            return
        pending, self._pending = self._pending, {}
        statements = list(_DEFERRED)
        for rank in sorted(pending):
            self._cur.executemany(statements[rank], pending[rank])

    # Purchases by stream

    def purchased(self, stream: str, receipt: str, at: datetime) -> None:
        self._subs[stream] = (receipt, at)

    def prefetch(self, streams: Sequence[str]) -> None:
        """Read the purchases of ``streams`` made before this chunk, with few queries."""
        todo = [s for s in dict.fromkeys(streams) if s not in self._known]
        for start in range(0, len(todo), _PREFETCH):
            chunk = todo[start : start + _PREFETCH]
            # Always _PREFETCH parameters (the last one repeated): one statement to prepare
            # and cache, not one per length.
            chunk += chunk[-1:] * (_PREFETCH - len(chunk))
            # Reads columns no statement changes: the buffered writes need not run first.
            self._cur.execute(_SUBS_BY_STREAMS, chunk)
            for stream, receipt, purchased_at in self._cur.fetchall():
                self._known[stream] = (receipt, _parse_utc(purchased_at))

    def subscription(self, stream: str) -> tuple[str, datetime] | None:
        """The receipt and purchase time of the purchase on ``stream`` made so far, if any."""
        found = self._subs.get(stream) or self._known.get(stream)
        if found is not None:
            return found
        self._cur.execute(_SUB_BY_STREAM, (stream,))  # unchanging columns: no flush needed
        row = self._cur.fetchone()
        if row is None:
            return None
        found = (row[0], _parse_utc(row[1]))
        self._known[stream] = found
        return found

    # Lines by stream

    def opened(self, stream: str, customer_id: str) -> None:
        self._lines[stream] = customer_id

    def customer(self, stream: str) -> str | None:
        """The customer ID of the line on ``stream`` opened so far, if any."""
        found = self._lines.get(stream)
        if found is not None:
            return found
        self._cur.execute(_LINE_BY_STREAM, (stream,))  # an unchanging column: no flush
        row = self._cur.fetchone()
        if row is None:
            return None
        self._lines[stream] = found = str(row[0])
        return found


class Raw:
    """An event as the projection reads it: its stream, version and stored JSON state
    (brought up to the current class version), without building the typed event.

    Decoding into typed events (cattrs, every value type validated again) was most of a
    rebuild's time; the handlers need a few fields of each event, as text and numbers.  The
    typed events are still what the aggregates load, and what :mod:`matome.verify` checks.
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


#: A stored event as the runner reads it: notification id, stream (UUID text), version, topic,
#: stored state.
_Row = tuple[int, str, int, str, bytes]


def _stream_text(stored: str) -> str:
    """The UUID text (``str(UUID)``) of an originator ID as SQLite stores it (32 hex digits),
    without building the UUID."""
    if len(stored) == 32:
        return f"{stored[:8]}-{stored[8:12]}-{stored[12:16]}-{stored[16:20]}-{stored[20:]}"
    return str(UUID(stored))


def _subscription(cur: Cursor, stream: str) -> tuple[str, datetime] | None:
    if isinstance(cur, _BatchCursor):
        return cur.subscription(stream)
    cur.execute(_SUB_BY_STREAM, (stream,))
    row = cur.fetchone()
    return None if row is None else (row[0], _parse_utc(row[1]))


def _sub_purchased(cur: Cursor, e: Raw) -> None:
    s = e.state
    at = e.at
    # §11: a monthly subscription's period end is its cancellation, fixed at purchase (a
    # customer's cancellation, always earlier, replaces it); no Cancelled event is dated ahead.
    ends = s.get("period_ends_at")
    end = None if ends is None else datetime.fromisoformat(ends)
    scheduled = end if end is not None and s["pricing"] == Pricing.MONTHLY.value else None
    cur.execute(
        _INSERT_SUB,
        (
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
            int(s["quantity"]),
            None if end is None else utc_text(end),
            None if scheduled is None else utc_text(scheduled),
            None if scheduled is None else str(last_charged_month(at, scheduled)),
            None if scheduled is None else sub_ev.CancelReason.PERIOD_ENDED.value,
        ),
    )
    if isinstance(cur, _BatchCursor):
        # The instant of ``at`` (utc_text keeps every microsecond a datetime has).
        cur.purchased(e.stream, s["receipt"], at)


def _sub_cancelled(cur: Cursor, e: Raw) -> None:
    # The view keeps the last charged month beside the cancellation so that month queries can
    # select by range; the rule itself is matome.charging's.
    sub = _subscription(cur, e.stream)
    if sub is None:
        raise LookupError(f"Cancelled for unknown subscription stream {e.stream}")
    at = e.at
    last = last_charged_month(sub[1], at)
    cur.execute(_CANCEL_SUB, (utc_text(at), str(last), e.state["reason"], e.version, e.stream))


def _sub_refunded(cur: Cursor, e: Raw) -> None:
    sub = _subscription(cur, e.stream)
    if sub is None:
        return  # as ever: a refund of an unknown purchase adds no row
    at = e.at
    s = e.state
    cur.execute(
        _INSERT_REFUND,
        (sub[0], e.version, utc_text(at), e.month, int(s["amount"]), s["reason"]),
    )


def _line_opened(cur: Cursor, e: Raw) -> None:
    s = e.state
    cur.execute(
        _INSERT_LINE,
        (s["customer_id"], e.stream, s["operator"], s["kind"], utc_text(e.at), s["predecessor"]),
    )
    if isinstance(cur, _BatchCursor):
        cur.opened(e.stream, s["customer_id"])
    _billing(cur, s["customer_id"], e)


def _billing(cur: Cursor, customer_id: str, e: Raw) -> None:
    # The billing object is stored in the contract's JSON form (billing_to_json).
    cur.execute(
        _INSERT_BILLING, (customer_id, e.version, utc_text(e.at), dumps(e.state["billing"]))
    )


def _customer_of(cur: Cursor, stream: str) -> str:
    if isinstance(cur, _BatchCursor):
        found = cur.customer(stream)
    else:
        cur.execute(_LINE_BY_STREAM, (stream,))
        row = cur.fetchone()
        found = None if row is None else str(row[0])
    if found is None:
        raise LookupError(f"event for unknown line stream {stream}")
    return found


def _billing_changed(cur: Cursor, e: Raw) -> None:
    _billing(cur, _customer_of(cur, e.stream), e)


def _line_moved(cur: Cursor, e: Raw) -> None:
    s = e.state
    customer_id = _customer_of(cur, e.stream)
    at = utc_text(e.at)
    cur.execute(
        _INSERT_CONTINUITY,
        (
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
    if s["new_kind"] is not None:
        cur.execute(_LINE_KIND, (s["new_kind"], customer_id))
    if s["ended"]:
        cur.execute(_LINE_ENDED, (at, s["new_customer_id"], customer_id))


def _provider_registered(cur: Cursor, e: Raw) -> None:
    s = e.state
    cur.execute(_INSERT_PROVIDER, (s["provider"], s["name"], s["contact"], s["goods"]))


def _passport_registered(cur: Cursor, e: Raw) -> None:
    s = e.state
    cur.execute(_INSERT_PASSPORT, (s["passport_id"], e.stream, s["customer_id"], utc_text(e.at)))


def _passport_deleted(cur: Cursor, e: Raw) -> None:
    cur.execute(
        "UPDATE mv_passports SET deleted_at = ? WHERE stream = ?", (utc_text(e.at), e.stream)
    )


def _bill_issued(cur: Cursor, e: Raw) -> None:
    s = e.state
    bill = loads(s["document"])  # BillIssued v4: the bill's canonical JSON text, as issued
    customer_id, month = s["customer_id"], s["month"]
    # The bill document as issued: stored in the contract's JSON form (to_json of the Bill).
    cur.execute(_INSERT_BILL, (customer_id, month, s["document"], s["digest"]))
    # The month's totals per provider, read by provider totals and settlement once the
    # month's billing run completed (instead of recomputing every charge of every line).
    rows = [(r["provider"], int(r["amount"])) for r in bill["rows"]]
    cur.executemany(_INSERT_BILL_ROW, [(customer_id, month, p, a) for p, a in rows])
    # ... and kept summed per month, provider and operator as the bills are issued (a bill has
    # one row per provider: each row is one more line billed for that provider).
    cur.executemany(_ADD_PROVIDER_MONTH, [(month, p, a, customer_id) for p, a in rows])


def _billing_run_completed(cur: Cursor, e: Raw) -> None:
    through = e.state["through"]
    cur.execute("UPDATE mv_calendar SET billed_through = ? WHERE id = 1", (through,))
    cur.execute(
        "INSERT INTO mv_calendar (id, billed_through) SELECT 1, ? "
        "WHERE NOT EXISTS (SELECT 1 FROM mv_calendar WHERE id = 1)",
        (through,),
    )


def _fee_set(cur: Cursor, e: Raw) -> None:
    s = e.state
    cur.execute(
        "INSERT INTO mv_fees (operator, version, effective_from, flat_fee) VALUES (?, ?, ?, ?)",
        (s["operator"], e.version, s["effective_from"], int(s["flat_fee"])),
    )


def _months_closed(cur: Cursor, e: Raw) -> None:
    through = e.state["through"]
    cur.execute("UPDATE mv_calendar SET closed_through = ? WHERE id = 1", (through,))
    cur.execute(
        "INSERT INTO mv_calendar (id, closed_through) SELECT 1, ? "
        "WHERE NOT EXISTS (SELECT 1 FROM mv_calendar WHERE id = 1)",
        (through,),
    )


_BY_CLASS: dict[type[DomainEvent], Callable[[Cursor, Raw], None]] = {
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
    ledger_ev.FeeSet: _fee_set,
    ledger_ev.BillingRunCompleted: _billing_run_completed,
}
#: The view handlers by event topic.
HANDLERS: dict[str, Callable[[Cursor, Raw], None]] = {
    cls.TOPIC: handler for cls, handler in _BY_CLASS.items()
}
#: The event class of each topic the views read (for upcasting old stored versions).
_CLASSES: dict[str, type[DomainEvent]] = {cls.TOPIC: cls for cls in _BY_CLASS}
#: Only these topics are read from the log: the others do not change the views.
TOPICS = tuple(sorted(HANDLERS))
#: Topics whose handler looks its purchase up by stream (prefetched a chunk at a time).
_LOOKUPS = frozenset((sub_ev.Cancelled.TOPIC, sub_ev.Refunded.TOPIC))


class EventLog(Protocol):
    """What a projection reads: the store's notification log and the mapper that decodes it
    (an eventsourcing ``Application`` has both)."""

    @property
    def recorder(self) -> ApplicationRecorder: ...

    @property
    def mapper(self) -> Mapper[UUID]: ...


class Projection:
    """The billing read model of one event store."""

    def __init__(self, log: EventLog, store: ViewStore) -> None:
        self.log = log
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

    def _ensure_tracking_row(self) -> None:
        """The tracking row, created at position 0 if missing, so that ``SELECT ... FOR
        UPDATE`` has a row to lock: catch-ups that start together on a store never caught up
        would otherwise each find no row, lock nothing and apply the same events."""
        with self.store.transaction(write=True) as cur:
            cur.execute(
                "INSERT INTO mv_tracking (view, position, schema_version) VALUES (?, 0, ?) "
                "ON CONFLICT (view) DO NOTHING",
                (VIEW_NAME, SCHEMA_VERSION),
            )

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
        recorder = self.log.recorder
        stop = recorder.max_notification_id() or 0
        if self.position() >= stop:
            # Up to date: answered from a read transaction, so a read-only store still answers.
            return 0
        if self.store.dialect == "postgres":
            self._ensure_tracking_row()
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
                handled, last = self._apply_batch(cur, position, stop)
                # A short batch means nothing else of interest up to ``stop``.
                new_position = last if handled == BATCH else stop
                self._set_position(cur, new_position)
            done += new_position - position
            if progress is not None and total:
                progress(done, total)
        return done

    def follow(
        self,
        should_stop: Callable[[], bool],
        *,
        poll: float = 1.0,
        progress: Progress | None = None,
    ) -> int:
        """Keep the views up to date until ``should_stop()``; return the events applied.

        On PostgreSQL the runner wakes on the NOTIFY every insert sends; a lost notification
        (eventsourcing issue #305) only delays it until the next poll, every ``poll`` seconds.
        On SQLite it polls.  Several followers (threads or processes) may run at once: each
        batch is applied under the tracking row's lock, so no event is applied twice.
        """
        applied = 0
        wait = getattr(self.store, "wait_for_events", None)
        channel = getattr(self.log.recorder, "channel_name", None)
        while not should_stop():
            applied += self.catch_up(progress)
            if should_stop():
                break
            if wait is not None and channel:
                wait(channel, poll)
            else:
                time.sleep(poll)
        return applied

    def _apply_batch(self, cur: Cursor, position: int, stop: int) -> tuple[int, int]:
        """Apply the next (up to) ``BATCH`` events of interest after ``position`` in one
        transaction; return how many there were and the notification id of the last.

        They are read, decoded and applied ``CHUNK`` at a time, so memory stays bounded
        however large the batch is.
        """
        select = self._select_through(cur) or self._select_notifications
        state_of = getattr(self.log.mapper, "state_of", None)
        writes = _BatchCursor(cur)
        handled, last = 0, position
        while handled < BATCH:
            limit = min(CHUNK, BATCH - handled)
            chunk = select(last + 1, limit, stop)
            events = [self._raw(row, state_of) for row in chunk]
            writes.prefetch(
                [e.stream for e, row in zip(events, chunk, strict=True) if row[3] in _LOOKUPS]
            )
            for event, row in zip(events, chunk, strict=True):
                try:
                    HANDLERS[row[3]](writes, event)
                except (KeyError, TypeError, ValueError) as e:
                    raise MapperDeserialisationError(
                        f"stored event {row[3]!r} of {event.stream} v{event.version} does not "
                        f"load into the views: {e!r}"
                    ) from e
            writes.flush()
            writes.forget()  # memory stays bounded by the chunk
            handled += len(chunk)
            if chunk:
                last = chunk[-1][0]
            if len(chunk) < limit:
                break
        return handled, last

    def _raw(self, row: _Row, state_of: Callable[[bytes], dict[str, Any]] | None) -> Raw:
        """The row's event as a :class:`Raw` (its state upcast to the current class
        version; personal values are not read: the views hold none)."""
        _, stream, version, topic, data = row
        try:
            if state_of is None:  # a mapper of another kind: its JSON through the event
                event = self.log.mapper.to_domain_event(
                    StoredEvent(UUID(stream), version, topic, data)
                )
                if not isinstance(event, DomainEvent):
                    raise TypeError(f"not a matome event: {event!r}")
                state = event_to_json(event)
            else:
                state = state_of(data)
            cls = _CLASSES[topic]
            if state.get("class_version", 1) != cls.class_version:
                state = upcast(cls, state)
        except Exception as e:
            raise MapperDeserialisationError(
                f"stored event {topic!r} of {stream} v{version} does not load: {e}"
            ) from e
        return Raw(stream, version, state)

    def _select_notifications(self, start: int, limit: int, stop: int) -> list[_Row]:
        chunk = self.log.recorder.select_notifications(
            start=start, limit=limit, stop=stop, topics=TOPICS
        )
        return [(n.id, str(n.originator_id), n.originator_version, n.topic, n.state) for n in chunk]

    def _select_through(self, cur: Cursor) -> Callable[[int, int, int], list[_Row]] | None:
        """On a SQLite file, the events read through the views' own connection, inside the
        batch's transaction.  Read through the event store's connection pool instead, a
        catch-up that holds the database's write lock would wait for a pooled connection
        while the writers holding them all wait for that lock: a deadlock until SQLite's
        busy timeout."""
        table = getattr(self.log.recorder, "events_table_name", None)
        if not getattr(self.store, "beside_events", False) or not table:
            return None
        marks = ",".join("?" * len(TOPICS))
        # PostgreSQL (the views sharing the event store's pool, its search path the schema):
        # the same, by notification id; a uuid and a bytea come back as UUID and bytes.
        key = "rowid" if self.store.dialect == "sqlite" else "notification_id"
        sql = (
            f"SELECT {key}, originator_id, originator_version, topic, state FROM {table} "
            f"WHERE {key} >= ? AND {key} <= ? AND topic IN ({marks}) ORDER BY {key} LIMIT ?"
        )

        def select(start: int, limit: int, stop: int) -> list[_Row]:
            cur.execute(sql, (start, stop, *TOPICS, limit))
            return [
                (r[0], _stream_text(str(r[1])), r[2], r[3], bytes(r[4])) for r in cur.fetchall()
            ]

        return select

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
        The indexes that only queries use are built once at the end (also when the replay
        fails; a store opened after a crash creates them too).
        """
        with self.store.transaction(write=True) as cur:
            self.store.drop_views(cur)
            self.store.drop_query_indexes(cur)
            cur.execute("DELETE FROM mv_tracking WHERE view = ?", (VIEW_NAME,))
        self._checked = True
        try:
            return self.catch_up(progress)
        finally:
            with self.store.transaction(write=True) as cur:
                self.store.create_query_indexes(cur)

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
            "fees",
            "bill_rows",
        )
        out: dict[str, list[Any]] = {}
        for table in tables:
            rows = self.query(f"SELECT * FROM mv_{table}")
            out[table] = sorted(tuple(r) for r in rows)
        return out
