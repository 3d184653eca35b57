"""The eventsourcing adapter: every place where matome meets the library's internals.

matome uses eventsourcing 9.5 for what it does well — recorders for POPO, SQLite and
PostgreSQL, optimistic concurrency on ``(stream, version)``, the notification log — and
extends it in three places, all in this module so that a change of the library shows here
and nowhere else (``tests/unit/test_eventstore_adapter.py`` fails loudly if it does):

1. **The mapper** (:class:`EventMapper`, a public extension point): matome's events are attrs
   classes whose wire format the one cattrs converter owns, and they are *structured* —
   validated — when loaded, with matome's upcasters (``class_version``) applied first.
2. **The recorders** (:class:`POPORecorder`, :class:`SQLiteRecorder`,
   :class:`PostgresRecorder`), which override the private ``_insert_events`` hook: inside the
   write transaction, holding the store's write lock, they also check that the streams a
   command only *read* have not moved (``read_versions``).  The library checks only the
   streams written; a purchase must also fail if its line was regulated meanwhile.
3. **Saving**: :meth:`EventStoreApplication.record` puts matome's events through the
   library's public ``EventStore.put`` with the ``read_versions`` keyword, skipping
   ``Application.save``'s aggregate collection and runtime protocol checks, which cost more
   than the insert itself for immutable, already-decided events.

Store settings come from :func:`store_env`: an SQLite file (default ``matome.sqlite``),
``:memory:``, or a ``postgresql://`` URL.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit
from uuid import UUID

from eventsourcing.application import Application
from eventsourcing.persistence import (
    ApplicationRecorder,
    IntegrityError,
    Mapper,
    MapperDeserialisationError,
    StoredEvent,
)
from eventsourcing.popo import POPOApplicationRecorder
from eventsourcing.sqlite import SQLiteApplicationRecorder, SQLiteCursor

from matome.errors import InvalidInput
from matome.events.base import EVENT_TOPICS, DomainEvent
from matome.wire import converter, dumps

__all__ = [
    "DEFAULT_DB",
    "MEMORY",
    "EventMapper",
    "EventStoreApplication",
    "POPORecorder",
    "SQLiteRecorder",
    "event_from_json",
    "event_to_json",
    "raise_if_stale",
    "stale_reads",
    "store_env",
]

#: The eventsourcing release line matome's overrides were written against.
SUPPORTED_EVENTSOURCING = "9.5"

# ---------------------------------------------------------------------------------------------
# 1. Events on the wire


_ENVELOPE = ("originator_id", "originator_version")


def event_to_json(event: DomainEvent) -> dict[str, Any]:
    """An event's stored state (without the stream position, which the store keeps).

    A class at ``class_version`` N > 1 records N, so that a later version knows which of its
    upcasters to apply.
    """
    state: dict[str, Any] = converter.unstructure(event)
    for name in _ENVELOPE:
        del state[name]
    if type(event).class_version > 1:
        state["class_version"] = type(event).class_version
    return state


def upcast(cls: type[DomainEvent], state: dict[str, Any]) -> dict[str, Any]:
    """Bring a stored state of an older class version up to ``cls.class_version``.

    eventsourcing's convention: ``upcast_v1_v2(state)``, ``upcast_v2_v3(state)``, ... static
    methods of the event class, each changing the state in place.  Events are never
    rewritten in the store; they are upcast every time they are read.
    """
    version = state.pop("class_version", 1)
    if type(version) is not int or version > cls.class_version:
        raise ValueError(f"stored class_version {version!r} is newer than this matome knows")
    while version < cls.class_version:
        getattr(cls, f"upcast_v{version}_v{version + 1}")(state)
        version += 1
    return state


def event_from_json(
    topic: str, state: dict[str, Any], originator_id: UUID, originator_version: int
) -> DomainEvent:
    """Rebuild and validate an event from its stored state (upcast first)."""
    cls = EVENT_TOPICS[topic]
    state = upcast(cls, dict(state))
    state.update(originator_id=originator_id, originator_version=originator_version)
    return converter.structure(state, cls)


class EventMapper(Mapper[UUID]):
    """eventsourcing ``Mapper`` whose (de)serialisation is the cattrs converter's.

    Compression and encryption at rest still come from eventsourcing's ``COMPRESSOR_TOPIC``
    and ``CIPHER_TOPIC`` settings, applied to the JSON bytes.
    """

    def to_stored_event(self, domain_event: Any) -> StoredEvent:
        if not isinstance(domain_event, DomainEvent) or not domain_event.TOPIC:
            raise TypeError(f"not a registered matome event: {domain_event!r}")
        data = dumps(event_to_json(domain_event)).encode()
        if self.compressor:
            data = self.compressor.compress(data)
        if self.cipher:
            data = self.cipher.encrypt(data)
        return StoredEvent(
            originator_id=domain_event.originator_id,
            originator_version=domain_event.originator_version,
            topic=domain_event.TOPIC,
            state=data,
        )

    def to_domain_event(self, stored_event: StoredEvent) -> Any:
        data = stored_event.state
        try:
            if self.cipher:
                data = self.cipher.decrypt(data)
            if self.compressor:
                data = self.compressor.decompress(data)
            originator_id = stored_event.originator_id
            if not isinstance(originator_id, UUID):
                originator_id = UUID(str(originator_id))
            return event_from_json(
                stored_event.topic,
                json.loads(data),
                originator_id,
                stored_event.originator_version,
            )
        except Exception as e:
            msg = (
                f"stored event {stored_event.topic!r} of {stored_event.originator_id} "
                f"v{stored_event.originator_version} does not load: {e}"
            )
            raise MapperDeserialisationError(msg) from e


# ---------------------------------------------------------------------------------------------
# 2. Recorders that also check what a command read


def stale_reads(
    read_versions: Mapping[UUID, int] | None, current: Mapping[UUID, int]
) -> list[UUID]:
    """The streams whose version moved since the command read them (0: did not exist)."""
    if not read_versions:
        return []
    return [s for s, v in read_versions.items() if current.get(s, 0) != v]


def raise_if_stale(read_versions: Mapping[UUID, int] | None, current: Mapping[UUID, int]) -> None:
    stale = stale_reads(read_versions, current)
    if stale:
        raise IntegrityError(f"streams read by the command changed meanwhile: {stale}")


class POPORecorder(POPOApplicationRecorder):
    """In-memory recorder with the read check (under the recorder's lock)."""

    def _insert_events(
        self, stored_events: Sequence[StoredEvent], **kwargs: Any
    ) -> Sequence[int] | None:
        read_versions: Mapping[UUID, int] | None = kwargs.get("read_versions")
        with self._database_lock:
            if read_versions:
                current = {}
                for stream in read_versions:
                    versions = self._stored_events_index.get(str(stream))
                    current[stream] = max(versions) if versions else 0
                raise_if_stale(read_versions, current)
            return super()._insert_events(stored_events, **kwargs)


class SQLiteRecorder(SQLiteApplicationRecorder):
    """SQLite recorder with the read check.

    The events are inserted first: the first write of the transaction takes SQLite's write
    lock, so the versions read after it cannot change before the commit.
    """

    def _insert_events(
        self, c: SQLiteCursor, stored_events: Sequence[StoredEvent], **kwargs: Any
    ) -> Sequence[int] | None:
        ids = super()._insert_events(c, stored_events, **kwargs)
        read_versions: Mapping[UUID, int] | None = kwargs.get("read_versions")
        if read_versions:
            streams = list(read_versions)
            marks = ",".join("?" for _ in streams)
            c.execute(
                "SELECT originator_id, MAX(originator_version) "
                f"FROM {self.events_table_name} WHERE originator_id IN ({marks}) "
                "GROUP BY originator_id",
                [s.hex for s in streams],
            )
            current = {UUID(row[0]): int(row[1]) for row in c.fetchall()}
            raise_if_stale(read_versions, current)
        return ids


def _postgres_recorder() -> type[Any]:
    # psycopg is an optional extra: the class is built the first time it is asked for.
    from eventsourcing.postgres import PostgresApplicationRecorder
    from psycopg.sql import SQL, Identifier

    class PostgresRecorder(PostgresApplicationRecorder):
        """Checks the versions of the streams a command read after taking the table lock
        that serialises writers, so they cannot change before the commit."""

        def _insert_events(
            self, curs: Any, stored_events: Sequence[StoredEvent], **kwargs: Any
        ) -> None:
            read_versions: Mapping[UUID, int] | None = kwargs.get("read_versions")
            if not read_versions:
                return
            self._lock_table(curs)
            curs.execute(
                SQL(
                    "SELECT originator_id, MAX(originator_version) AS version FROM {0}.{1} "
                    "WHERE originator_id = ANY(%s) GROUP BY originator_id"
                ).format(Identifier(self.datastore.schema), Identifier(self.events_table_name)),
                (list(read_versions),),
            )
            current = {
                UUID(str(row["originator_id"])): int(row["version"]) for row in curs.fetchall()
            }
            raise_if_stale(read_versions, current)

    PostgresRecorder.__module__ = __name__
    return PostgresRecorder


def __getattr__(name: str) -> Any:
    # eventsourcing resolves APPLICATION_RECORDER_TOPIC "matome.application.eventstore:
    # PostgresRecorder" with getattr on this module.
    if name == "PostgresRecorder":
        cls = _postgres_recorder()
        globals()[name] = cls
        return cls
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


# ---------------------------------------------------------------------------------------------
# 3. The application: wiring and saving


class EventStoreApplication(Application[UUID]):
    """An eventsourcing ``Application`` wired for matome's events and recorders."""

    name = "matome"

    def __init__(self, env: Mapping[str, str] | None = None) -> None:
        self.store_settings = (
            dict(env) if env is not None else {"PERSISTENCE_MODULE": "eventsourcing.popo"}
        )
        super().__init__(env=self.store_settings)

    def construct_recorder(self) -> ApplicationRecorder:
        # The in-memory factory takes no recorder topic: give it matome's recorder directly.
        if self.store_settings.get("PERSISTENCE_MODULE") == "eventsourcing.popo":
            return POPORecorder()
        return super().construct_recorder()

    def construct_mapper(self) -> Mapper[UUID]:
        # The cattrs converter owns the wire format; eventsourcing's cipher and compressor
        # settings still apply to the bytes.
        return self.factory.mapper(mapper_class=EventMapper)

    def record(
        self, events: Sequence[DomainEvent], read_versions: Mapping[UUID, int] | None = None
    ) -> None:
        """Record ``events`` in one transaction; fail with ``IntegrityError`` if a stream they
        write, or a stream in ``read_versions`` (stream → version read), has moved."""
        if events:
            self.events.put(list(events), read_versions=dict(read_versions or {}))


# ---------------------------------------------------------------------------------------------
# Store settings

#: The default store: an SQLite file in the working directory.
DEFAULT_DB = "matome.sqlite"
#: Names of the in-memory store (eventsourcing's POPO recorders), for tests and dry runs.
MEMORY = (":memory:", "memory:", "popo:")


def store_env(db: str | None = None) -> dict[str, str]:
    """eventsourcing settings for the store named by ``db``.

    ``db`` is, in order of preference, the argument, the ``MATOME_DB`` environment variable, or
    ``matome.sqlite``.  It may be a file path (SQLite), ``:memory:`` (in-process, nothing kept),
    or a ``postgresql://user:password@host:port/dbname?schema=name`` URL.
    """
    db = db or os.environ.get("MATOME_DB") or DEFAULT_DB
    if db in MEMORY:
        return {"PERSISTENCE_MODULE": "eventsourcing.popo"}
    if db.startswith(("postgresql://", "postgres://")):
        return _postgres_env(db)
    if "://" in db:
        raise InvalidInput(f"store {db!r}: use a file path, :memory: or a postgresql:// URL")
    return {
        "PERSISTENCE_MODULE": "eventsourcing.sqlite",
        "SQLITE_DBNAME": db,
        "APPLICATION_RECORDER_TOPIC": "matome.application.eventstore:SQLiteRecorder",
        # Writers queue for the database lock rather than fail at once.
        "SQLITE_LOCK_TIMEOUT": "30",
    }


def _postgres_env(url: str) -> dict[str, str]:
    parts = urlsplit(url)
    query = parse_qs(parts.query)
    dbname = unquote(parts.path.lstrip("/")) or "postgres"
    env = {
        "PERSISTENCE_MODULE": "eventsourcing.postgres",
        "APPLICATION_RECORDER_TOPIC": "matome.application.eventstore:PostgresRecorder",
        "POSTGRES_DBNAME": dbname,
        "POSTGRES_HOST": parts.hostname or "127.0.0.1",
        "POSTGRES_PORT": str(parts.port or 5432),
        "POSTGRES_USER": unquote(parts.username or "postgres"),
        "POSTGRES_PASSWORD": unquote(parts.password or ""),
        # Writers wait for the table lock a bounded time, then the unit of work retries.
        "POSTGRES_LOCK_TIMEOUT": "10",
        "POSTGRES_POOL_SIZE": query.get("pool_size", ["5"])[0],
        "POSTGRES_MAX_OVERFLOW": query.get("max_overflow", ["20"])[0],
    }
    if "schema" in query:
        env["POSTGRES_SCHEMA"] = query["schema"][0]
    return env
