"""The projection runner: keeps the view tables up to date with the log, exactly once.

There is no subscription on SQLite (eventsourcing's ``ProjectionRunner`` needs one), so the
runner *polls*: it reads the notification log from its tracked position, applies a batch of
events, and writes the batch's view changes and the new position in one transaction.  Queries
call :meth:`Projection.catch_up` first, so they see every command that returned before them.

Two catch-ups never apply the same events: the tracking row is read and advanced inside the
writing transaction (``BEGIN IMMEDIATE`` on SQLite, ``SELECT ... FOR UPDATE`` on PostgreSQL).

Speed (a rebuild replays the whole log): a batch is large (one transaction rewrites every
index page it touched, so fewer transactions write fewer pages) and is applied a chunk at a
time.  The view functions (:mod:`matome.projections.views`) return their changes as data; a
:class:`_Writer` runs a chunk's changes with ``executemany`` per statement, in an order that
gives the same rows (see its docstring), and answers the functions' "which purchase (line) is
this stream" lookups from the chunk itself or from one query per chunk instead of one per
event.
"""

from __future__ import annotations

import time
from collections import defaultdict
from collections.abc import Callable, Iterator, Sequence
from datetime import datetime
from typing import Any, Protocol
from uuid import UUID

from eventsourcing.persistence import (
    ApplicationRecorder,
    Mapper,
    MapperDeserialisationError,
    StoredEvent,
)

from matome.application.eventstore import event_to_json, upcast
from matome.events import bill as bill_ev
from matome.events import subscription as sub_ev
from matome.events.base import DomainEvent
from matome.projections.tables import Change, Insert, Update
from matome.projections.views import (
    IGNORED,
    LINES,
    SUBS,
    TABLES,
    WHEN,
    LineRow,
    Raw,
    SubRow,
    When,
    parse_utc,
    utc_text,
)
from matome.projections.viewstore import SCHEMA_VERSION, Cursor, ViewStore

__all__ = [
    "HANDLERS",
    "TOPICS",
    "VIEW_NAME",
    "EventLog",
    "Progress",
    "Projection",
    "Raw",
    "utc_text",
]

VIEW_NAME = "billing"
#: Events per transaction while catching up.  Large, because each transaction writes every
#: index page it touched: inserts at random places in an index (receipts, stream ids) touch
#: fewer pages per event when more of them share a transaction.
BATCH = 50_000
#: Events read, decoded and applied at a time within a transaction (bounds memory).
CHUNK = 5_000

#: Bytes of stored events decoded and applied at a time (a part of a chunk), and read at a
#: time (the next chunk's rows, from the last one's size): memory stays flat in the log's
#: size whatever its events are.
CHUNK_BYTES = 2 * 2**20
#: The fewest events read at a time.
_MIN_ROWS = 100


def _parts(chunk: Sequence[_Row]) -> Iterator[Sequence[_Row]]:
    """``chunk`` in consecutive parts of about :data:`CHUNK_BYTES` of stored state."""
    start, size = 0, 0
    for i, row in enumerate(chunk):
        size += len(row[4])
        if size >= CHUNK_BYTES:
            yield chunk[start : i + 1]
            start, size = i + 1, 0
    if start < len(chunk):
        yield chunk[start:]


Progress = Callable[[int, int], None]
"""Called with (events processed so far, events to process in all) during long catch-ups."""


# Statements by rank: inserts (in the order of TABLES), then upserts, then updates.
_INSERT, _UPSERT, _UPDATE = 0, 1, 2
_TABLE_RANK = {table.name: rank for rank, table in enumerate(TABLES)}
#: Streams (or customer IDs) per prefetching query (below every SQL engine's limit on
#: parameters).
_PREFETCH = 500
_SUB_BY_STREAM = "SELECT receipt, purchased_at FROM mv_subs WHERE stream = ?"
_LINE_BY_STREAM = "SELECT customer_id, operator FROM mv_lines WHERE stream = ?"
_LINE_BY_ID = "SELECT customer_id, operator FROM mv_lines WHERE customer_id = ?"
_SUBS_BY_STREAMS = (
    "SELECT stream, receipt, purchased_at FROM mv_subs "
    f"WHERE stream IN ({', '.join('?' * _PREFETCH)})"
)
_LINES_BY_IDS = (
    "SELECT customer_id, operator FROM mv_lines "
    f"WHERE customer_id IN ({', '.join('?' * _PREFETCH)})"
)


class _Writer:
    """Applies the view functions' changes of one batch, and answers their :class:`Lookups`.

    Changes are buffered and run with ``executemany`` when a chunk of the batch ends
    (:meth:`flush`), grouped by statement: every insert (table by table, in the order of
    :data:`TABLES`), then every upsert, then every update; within a statement, in the order
    of the log.  That gives the same rows as running every change at once, in the order of
    the log, because:

    * an update changes a row whose view function has checked first that it was inserted
      before (a purchase by its stream, a line by its customer ID; else it raises), or
      changes nothing either way (a Passport ID deleted that was never registered); so
      running it after every insert of the chunk finds the same row;
    * two changes of one column keep their order (one statement); the statements that update
      (or upsert) one table change disjoint columns, so they commute — :meth:`flush` checks
      it — and adding to a column (a month's totals) commutes with adding;
    * no table is both inserted into and upserted in one chunk (checked too);
    * the view functions read nothing but their lookups: a purchase's receipt and time, a
      line's customer ID and operator — columns no update may change (``fixed``, checked
      by the table's statements) — answered from the rows inserted earlier in the chunk,
      else from the tables (so the buffered writes need not run before those reads).

    A failing statement fails the batch's transaction, as before: nothing of it is kept.
    """

    def __init__(self, cur: Cursor) -> None:
        self._cur = cur
        #: Buffered parameters by statement; the statement's (rank, table, columns changed).
        self._pending: defaultdict[str, list[Sequence[Any]]] = defaultdict(list)
        self._shape: dict[str, tuple[int, str, frozenset[str]]] = {}
        #: Purchases by stream: inserted earlier in this chunk (purchase time as text), or read.
        self._subs: dict[str, tuple[str, str]] = {}
        #: Lines by stream, and operators by customer ID: opened earlier in this chunk, or read.
        self._lines: dict[str, str] = {}
        self._operators: dict[str, str] = {}

    def apply(self, changes: Sequence[Change]) -> None:
        # The hot path of a rebuild (every handled event): type() tests and a defaultdict.
        pending = self._pending
        for change in changes:
            kind = type(change)
            table = change[0]
            if kind is Insert:
                row = change[1]
                sql = table.insert_sql
                # As a plain tuple: sqlite3 binds a tuple subclass's items more slowly.
                params: Sequence[Any] = tuple(row)
                if table is SUBS:
                    sub: SubRow = row  # type: ignore[assignment]
                    self._subs[sub.stream] = (sub.receipt, sub.purchased_at)
                elif table is LINES:
                    line: LineRow = row  # type: ignore[assignment]
                    self._lines[line.stream] = line.customer_id
                    self._operators[line.customer_id] = line.operator
            elif kind is Update:
                _, by, key, columns, values = change  # type: ignore[misc]
                sql = table.update_sql(by, columns)
                params = (*values, key)
            else:
                _, columns, params, add = change  # type: ignore[misc]
                sql = table.upsert_sql(columns, add)
            if sql not in self._shape:
                self._shape[sql] = _shape(change)
            pending[sql].append(params)

    def flush(self) -> None:
        """Run every buffered change (see the class's docstring for the order)."""
        if not self._pending:
            return
        pending, self._pending = self._pending, defaultdict(list)
        order = sorted(
            pending, key=lambda sql: (self._shape[sql][0], _TABLE_RANK[self._shape[sql][1]])
        )
        _check_commute([self._shape[sql] for sql in order])
        for sql in order:
            self._cur.executemany(sql, pending[sql])

    def forget(self) -> None:
        """Drop what the lookups remember (after a :meth:`flush`, the rows answer them)."""
        self._subs.clear()
        self._lines.clear()
        self._operators.clear()

    def prefetch(self, events: Sequence[tuple[str, Raw]]) -> None:
        """Read what the view functions of ``events`` (with their topics) will look up —
        purchases by stream, lines' operators by customer ID — written before this chunk,
        with few queries (columns no statement changes: no flush needed)."""
        streams = [e.stream for topic, e in events if topic in _BY_PURCHASE]
        customers = [e.state["customer_id"] for topic, e in events if topic == _ISSUED]
        for stream, receipt, purchased_at in self._fetch_in(_SUBS_BY_STREAMS, streams, self._subs):
            self._subs[stream] = (receipt, purchased_at)
        for customer_id, operator in self._fetch_in(_LINES_BY_IDS, customers, self._operators):
            self._operators[customer_id] = operator

    def _fetch_in(self, sql: str, keys: Sequence[str], known: dict[str, Any]) -> list[Any]:
        todo = [k for k in dict.fromkeys(keys) if k not in known]
        out: list[Any] = []
        for start in range(0, len(todo), _PREFETCH):
            chunk = todo[start : start + _PREFETCH]
            # Always _PREFETCH parameters (the last one repeated): one statement to prepare
            # and cache, not one per length.
            chunk += chunk[-1:] * (_PREFETCH - len(chunk))
            self._cur.execute(sql, chunk)
            out += self._cur.fetchall()
        return out

    # Lookups

    def purchase(self, stream: str) -> tuple[str, datetime] | None:
        found = self._subs.get(stream)
        if found is None:
            self._cur.execute(_SUB_BY_STREAM, (stream,))
            row = self._cur.fetchone()
            if row is None:
                return None
            found = self._subs[stream] = (row[0], row[1])
        return found[0], parse_utc(found[1])

    def customer(self, stream: str) -> str | None:
        found = self._lines.get(stream)
        if found is not None:
            return found
        self._cur.execute(_LINE_BY_STREAM, (stream,))
        row = self._cur.fetchone()
        if row is None:
            return None
        self._lines[stream] = found = str(row[0])
        self._operators[found] = str(row[1])
        return found

    def operator(self, customer_id: str) -> str | None:
        found = self._operators.get(customer_id)
        if found is not None:
            return found
        self._cur.execute(_LINE_BY_ID, (customer_id,))
        row = self._cur.fetchone()
        if row is None:
            return None
        self._operators[customer_id] = found = str(row[1])
        return found


def _shape(change: Change) -> tuple[int, str, frozenset[str]]:
    if isinstance(change, Insert):
        return _INSERT, change.table.name, frozenset()
    if isinstance(change, Update):
        return _UPDATE, change.table.name, frozenset(change.columns)
    return _UPSERT, change.table.name, frozenset(change.columns) - set(change.table.key)


def _check_commute(shapes: Sequence[tuple[int, str, frozenset[str]]]) -> None:
    """The reordering of :class:`_Writer` keeps the rows only if, per table, the statements
    changing rows change disjoint columns and no table is inserted into and upserted."""
    seen: dict[str, tuple[int, frozenset[str]]] = {}
    for rank, table, columns in shapes:
        before = seen.get(table)
        if before is not None and (
            {rank, before[0]} == {_INSERT, _UPSERT} or (rank != _INSERT and before[1] & columns)
        ):
            raise RuntimeError(f"view changes of mv_{table} that do not commute")
        seen[table] = (
            max(rank, before[0]) if before else rank,
            (before[1] if before else frozenset()) | columns,
        )


#: A stored event as the runner reads it: notification id, stream (UUID text), version, topic,
#: stored state.
_Row = tuple[int, str, int, str, bytes]


def _stream_text(stored: str) -> str:
    """The UUID text (``str(UUID)``) of an originator ID as SQLite stores it (32 hex digits),
    without building the UUID."""
    if len(stored) == 32:
        return f"{stored[:8]}-{stored[8:12]}-{stored[12:16]}-{stored[16:20]}-{stored[20:]}"
    return str(UUID(stored))


#: The view functions by event topic.
HANDLERS: dict[str, When] = {cls.TOPIC: when for cls, when in WHEN.items()}
#: The event class of each topic the views read (for upcasting old stored versions).
_CLASSES: dict[str, type[DomainEvent]] = {cls.TOPIC: cls for cls in WHEN}
#: The topics the views handle (the only ones decoded).
TOPICS = tuple(sorted(HANDLERS))
#: The topics the views declare they ignore: every other topic is read, and one that is not
#: handled fails the catch-up (a new event nobody classified is not silently skipped).
IGNORED_TOPICS = tuple(sorted(cls.TOPIC for cls in IGNORED))
_IGNORED_SET = frozenset(IGNORED_TOPICS)
#: Topics whose view function looks its purchase up by stream (prefetched a chunk at a time).
_BY_PURCHASE = frozenset((sub_ev.Cancelled.TOPIC, sub_ev.Refunded.TOPIC))
_ISSUED = bill_ev.BillIssued.TOPIC
_PREFETCH_TOPICS = _BY_PURCHASE | {_ISSUED}


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
        #: Whether this projection made sure the tracking row exists (PostgreSQL's lock).
        self._tracking_row = False

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

    def apply_recorded(self, ids: Sequence[int], events: Sequence[DomainEvent]) -> bool:
        """Apply ``events``, which this process has just recorded at the notification ids
        ``ids`` (one insert: no other event lies between them), from memory — without reading
        them back — exactly once: in one transaction with the tracking position, after the
        events before them (usually none: the views were caught up before they were recorded).

        Return ``False``, having changed nothing, if the views include them already (another
        catch-up got there first) or the ids are not known; a later :meth:`catch_up` then
        applies whatever is missing, as ever.
        """
        if not ids or len(ids) != len(events):
            return False
        first, last = min(ids), max(ids)
        if not self._checked:
            self._check_schema()
        if self.store.dialect == "postgres" and not self._tracking_row:
            self._ensure_tracking_row()
            self._tracking_row = True
        with self.store.transaction(write=True) as cur:
            tracked = self._position(cur, lock=True)
            position = 0 if tracked is None else tracked[0]
            if position >= first:
                return False
            while position < first - 1:
                handled, seen = self._apply_batch(cur, position, first - 1)
                position = seen if handled == BATCH else first - 1
            raws = [
                (type(e).TOPIC, Raw(str(e.originator_id), e.originator_version, event_to_json(e)))
                for e in events
            ]
            writes = _Writer(cur)
            writes.prefetch([(topic, raw) for topic, raw in raws if topic in _PREFETCH_TOPICS])
            for topic, raw in raws:
                writes.apply(HANDLERS[topic](raw, writes))
            writes.flush()
            self._set_position(cur, last)
        return True

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

        They are read up to ``CHUNK`` at a time and decoded and applied a part of about
        :data:`CHUNK_BYTES` at a time, so memory stays bounded however large the batch is
        and however large its events are.
        """
        select = self._select_through(cur) or self._select_notifications
        state_of = getattr(self.log.mapper, "state_of", None)
        writes = _Writer(cur)
        handlers = HANDLERS  # looked up once per batch (tests wrap its functions)
        handled, last = 0, position
        rows = CHUNK
        while handled < BATCH:
            limit = min(rows, BATCH - handled)
            chunk = select(last + 1, limit, stop)
            size = 0
            for part in _parts(chunk):
                size += sum(len(row[4]) for row in part)
                self._apply_part(part, state_of, writes, handlers)
            handled += len(chunk)
            if chunk:
                last = chunk[-1][0]
            if len(chunk) < limit:
                break
            # Events differ a hundredfold in size (an issued bill carries its document): the
            # next read is sized by this one's bytes, so memory is bounded by CHUNK_BYTES
            # however many bills in a row the log holds — not by the number of lines.
            rows = max(_MIN_ROWS, min(CHUNK, CHUNK_BYTES * len(chunk) // max(size, 1)))
        return handled, last

    def _apply_part(
        self,
        part: Sequence[_Row],
        state_of: Callable[[bytes], dict[str, Any]] | None,
        writes: _Writer,
        handlers: dict[str, When],
    ) -> None:
        """Decode and apply ``part`` of a chunk, and write its changes."""
        events = [self._raw(row, state_of) for row in part]
        writes.prefetch(
            [(row[3], e) for e, row in zip(events, part, strict=True) if row[3] in _PREFETCH_TOPICS]
        )
        for event, row in zip(events, part, strict=True):
            try:
                changes = handlers[row[3]](event, writes)
            except (KeyError, TypeError, ValueError) as e:
                raise MapperDeserialisationError(
                    f"stored event {row[3]!r} of {event.stream} v{event.version} does not "
                    f"load into the views: {e!r}"
                ) from e
            writes.apply(changes)
        writes.flush()
        writes.forget()  # memory stays bounded by the part

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
            cls = _CLASSES.get(topic)
            if cls is None:
                raise LookupError(
                    f"the views neither handle nor ignore the topic {topic!r}"
                    " (matome.projections.views.WHEN / IGNORED)"
                )
            if state.get("class_version", 1) != cls.class_version:
                state = upcast(cls, state)
        except Exception as e:
            raise MapperDeserialisationError(
                f"stored event {topic!r} of {stream} v{version} does not load: {e}"
            ) from e
        return Raw(stream, version, state)

    def _select_notifications(self, start: int, limit: int, stop: int) -> list[_Row]:
        # The recorder selects by topic only positively: read every topic, and leave out the
        # ignored ones here (an in-memory or separate-pool store: not the rebuild's path).
        out: list[_Row] = []
        while len(out) < limit and start <= stop:
            chunk = self.log.recorder.select_notifications(start=start, limit=limit, stop=stop)
            if not chunk:
                break
            out += [
                (n.id, str(n.originator_id), n.originator_version, n.topic, n.state)
                for n in chunk
                if n.topic not in _IGNORED_SET
            ]
            start = chunk[-1].id + 1
        return out[:limit]

    def _select_through(self, cur: Cursor) -> Callable[[int, int, int], list[_Row]] | None:
        """On a SQLite file, the events read through the views' own connection, inside the
        batch's transaction.  Read through the event store's connection pool instead, a
        catch-up that holds the database's write lock would wait for a pooled connection
        while the writers holding them all wait for that lock: a deadlock until SQLite's
        busy timeout."""
        table = getattr(self.log.recorder, "events_table_name", None)
        if not getattr(self.store, "beside_events", False) or not table:
            return None
        marks = ",".join("?" * len(IGNORED_TOPICS))
        # PostgreSQL (the views sharing the event store's pool, its search path the schema):
        # the same, by notification id; a uuid and a bytea come back as UUID and bytes.
        key = "rowid" if self.store.dialect == "sqlite" else "notification_id"
        # Every topic but the ignored ones: an unknown topic is met, and fails the catch-up.
        sql = (
            f"SELECT {key}, originator_id, originator_version, topic, state FROM {table} "
            f"WHERE {key} >= ? AND {key} <= ? AND topic NOT IN ({marks}) ORDER BY {key} LIMIT ?"
        )

        def select(start: int, limit: int, stop: int) -> list[_Row]:
            cur.execute(sql, (start, stop, *IGNORED_TOPICS, limit))
            return [
                (r[0], _stream_text(str(r[1])), r[2], r[3], bytes(r[4])) for r in cur.fetchall()
            ]

        def select_sqlite(start: int, limit: int, stop: int) -> list[_Row]:
            # SQLite gives the ID as text and the state as bytes already: no copies.
            cur.execute(sql, (start, stop, *IGNORED_TOPICS, limit))
            text = _stream_text
            return [(r[0], text(r[1]), r[2], r[3], r[4]) for r in cur.fetchall()]

        if self.store.dialect == "sqlite":
            return select_sqlite

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
        """Every row of every view table (:data:`~matome.projections.views.TABLES`), sorted:
        for comparing an incremental view with a rebuilt one."""
        out: dict[str, list[Any]] = {}
        for table in TABLES:
            rows = self.query(f"SELECT {table.select_columns()} FROM {table.sql_name}")
            out[table.name] = sorted(tuple(r) for r in rows)
        return out
