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
from collections.abc import Callable, Iterator, Sequence
from typing import Any, Protocol
from uuid import UUID

from eventsourcing.persistence import (
    ApplicationRecorder,
    Mapper,
    MapperDeserialisationError,
    StoredEvent,
)

from matome.application.eventstore import event_to_json, upcast
from matome.events.base import DomainEvent
from matome.projections._writer import _PREFETCH_TOPICS, _Writer
from matome.projections.views import IGNORED, TABLES, WHEN, Raw, When, utc_text
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
