"""The eventsourcing adapter: the application that records matome's events, and its wiring.

matome uses eventsourcing 9.5 for what it does well — recorders for POPO, SQLite and
PostgreSQL, optimistic concurrency on ``(stream, version)``, the notification log — and
extends it in three places, each in a module of its own under ``matome.application`` so that
a change of the library shows there and nowhere else (``tests/unit/test_eventstore_adapter.py``
fails loudly if it does), the way eventsourcing splits its own persistence into
``persistence.py`` and one module per backend:

1. **The mapper** (:class:`EventMapper`, a public extension point; :mod:`._mapper`): matome's
   events are attrs classes whose wire format the one cattrs converter owns, and they are
   *structured* — validated — when loaded, with matome's upcasters (``class_version``)
   applied first.  Personal values are kept apart from the events (:mod:`._vault`), sealed
   under a data key per subject (:mod:`._keyring`).
2. **The recorders** (:class:`POPORecorder`, :class:`SQLiteRecorder`,
   :class:`PostgresRecorder`; :mod:`._popo`, :mod:`._sqlite`, :mod:`._postgres`), which
   override the private ``_insert_events`` hook: inside the write transaction, holding the
   store's write lock, they also check that the streams a command only *read* have not moved
   (``read_versions``), and write the hash chains (:mod:`._chains`), the personal values and
   the command log's position with the events (:mod:`._recorder`, what every backend adds).
   The library checks only the streams written; a purchase must also fail if its line was
   regulated meanwhile.
3. **Saving**: :meth:`EventStoreApplication.record` puts matome's events through the
   library's public ``EventStore.put`` with the ``read_versions`` keyword, skipping
   ``Application.save``'s aggregate collection and runtime protocol checks, which cost more
   than the insert itself for immutable, already-decided events.  Writers pass the writers'
   gate (:mod:`._gate`); a store a newer matome wrote is not written to (:mod:`._meta`).

Store settings come from :func:`store_env` (:mod:`._settings`): an SQLite file (default
``matome.sqlite``), ``:memory:``, or a ``postgresql://`` URL; failures of the store become
matome's errors in :func:`translate_store_error` (:mod:`._errors`).

This module keeps the application and re-exports every name the rest of matome imports from
it (and the recorder topics ``matome.application.eventstore:SQLiteRecorder``, ``...:
SQLiteFactory`` and ``...:PostgresRecorder`` that store settings name).
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import sqlite3
import threading
from collections import OrderedDict
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any
from uuid import UUID

from eventsourcing.application import Application
from eventsourcing.persistence import ApplicationRecorder, Mapper, PersistenceError
from eventsourcing.utils import Environment

from matome.application._chains import (
    GENESIS,
    Adoption,
    ChainRow,
    adoption_rows,
    as_uuid,
    content_as_written,
    content_hash,
    global_link,
    global_rows,
    link,
)
from matome.application._errors import translate_store_error
from matome.application._gate import GATE_LOCK, FileGate, PostgresGate, WriterGate
from matome.application._keyring import Keyring, master_env
from matome.application._mapper import Encoded, EventMapper, event_from_json, event_to_json, upcast
from matome.application._meta import STORE_FORMAT, matome_version, newer_writer
from matome.application._popo import POPORecorder
from matome.application._recorder import (
    CHAIN_TABLE,
    CREATE_LOCK,
    Extra,
    LogPosition,
    LogPositionTaken,
    MatomeRecorder,
    check_claim,
    raise_if_stale,
    stale_reads,
)
from matome.application._settings import (
    DEFAULT_DB,
    MEMORY,
    SCHEMA_NAME,
    check_store,
    cipher_env,
    describe,
    store_env,
    store_kind,
)
from matome.application._sqlite import SQLiteFactory, SQLiteRecorder
from matome.application._vault import ERASED, PersonalRow, Vault, is_reference, personal_fields
from matome.errors import StoreUnavailable
from matome.events.base import EVENT_TOPICS, DomainEvent

__all__ = [
    "CHAIN_TABLE",
    "CREATE_LOCK",
    "DEFAULT_DB",
    "ERASED",
    "GATE_LOCK",
    "GENESIS",
    "MEMORY",
    "STORE_FORMAT",
    "SUPPORTED_EVENTSOURCING",
    "Adoption",
    "ChainRow",
    "Encoded",
    "EventMapper",
    "EventStoreApplication",
    "Extra",
    "FileGate",
    "LogPosition",
    "LogPositionTaken",
    "MatomeRecorder",
    "POPORecorder",
    "PersonalRow",
    "PostgresGate",
    "SQLiteFactory",
    "SQLiteRecorder",
    "Vault",
    "WriterGate",
    "adoption_rows",
    "check_claim",
    "check_store",
    "cipher_env",
    "content_as_written",
    "content_hash",
    "describe",
    "event_from_json",
    "event_to_json",
    "global_link",
    "global_rows",
    "is_reference",
    "link",
    "master_env",
    "personal_fields",
    "raise_if_stale",
    "stale_reads",
    "store_env",
    "store_kind",
    "translate_store_error",
    "upcast",
]


#: The eventsourcing release line matome's overrides were written against.
SUPPORTED_EVENTSOURCING = "9.5"


#: Stream heads whose chain hash is remembered in memory.
_HEADS = 200_000


class EventStoreApplication(Application[UUID]):
    """An eventsourcing ``Application`` wired for matome's events and recorders."""

    name = "matome"

    def __init__(self, env: Mapping[str, str] | None = None) -> None:
        self.store_settings = (
            dict(env) if env is not None else {"PERSISTENCE_MODULE": "eventsourcing.popo"}
        )
        try:
            super().__init__(env=self.store_settings)
        except BaseException:
            # Close what was opened here, in this thread.  Left to the garbage collector,
            # eventsourcing's __del__ may run in one of the PostgreSQL pool's own worker
            # threads, and closing the pool there fails (a thread cannot join itself).
            factory = getattr(self, "factory", None)
            if factory is not None:
                with contextlib.suppress(Exception):
                    factory.close()
            raise
        self.event_mapper.vault = self.matome_recorder
        #: The master key and the data keys: personal values are sealed by the recorder, in
        #: the write transaction, and opened by the mapper (see ``_keyring``).
        self.keyring = Keyring(self.store_settings, store_kind(self.store_settings))
        self._scrub_pending = self._scrub_personal_table = False
        self.event_mapper.keyring = self.keyring
        self.recorder.keyring = self.keyring  # type: ignore[attr-defined]  # matome's recorders
        # Chain hashes of recent stream heads: a (stream, version) names one hash for good, so
        # the next event of a stream written here needs no lookup of its predecessor's.
        self._heads: OrderedDict[UUID, tuple[int, str]] = OrderedDict()
        self._heads_lock = threading.Lock()
        self.gate = self._construct_gate()
        self._writable = False
        self._writable_lock = threading.Lock()
        if self.store_settings.get("CREATE_TABLE", "y").lower() not in ("n", "no", "0", "false"):
            self.adopt()

    def adopt(self) -> Adoption:
        """Give every event recorded before this store had a global chain its entries (see
        :class:`Adoption`); done once, by the first writer of contract 3 to open the store,
        and recorded.  A store created by it records an adoption of nothing at creation."""
        found = self.matome_recorder.adoption()
        if found is not None:
            return found
        mapper = self.event_mapper

        def content_of(n: Any) -> str:
            return content_hash(n.topic, mapper.state_of(n.state))

        at = datetime.now(UTC).isoformat()
        with self.gate.shared():
            return self.matome_recorder.adopt(content_of, at)

    def _construct_gate(self) -> WriterGate:
        kind = store_kind(self.store_settings)
        if kind == "postgres":
            return PostgresGate(getattr(self.recorder, "datastore", None))
        path = self._gate_path()
        if path is not None:
            return FileGate(path)
        return WriterGate()

    def _gate_path(self) -> str | None:
        """The writers' gate file of an SQLite file store (``None``: another kind of store)."""
        if store_kind(self.store_settings) != "sqlite":
            return None
        path = self.store_settings.get("SQLITE_DBNAME", "")
        if not path or ":memory:" in path or "mode=memory" in path:
            return None
        # Beside the file itself, not beside a symbolic link to it: a process that names the
        # store through a link and one that names it directly must share one gate (SQLite,
        # too, resolves the link for its journal files).
        return os.path.realpath(path) + ".gate"

    def construct_factory(self, env: Environment) -> Any:
        factory = super().construct_factory(env)
        datastore = getattr(factory, "datastore", None)
        if store_kind(self.store_settings) == "postgres" and datastore is not None:
            schema = env.get("POSTGRES_SCHEMA")
            self._pool_shared = not schema or bool(SCHEMA_NAME.fullmatch(schema))
            if schema and self._pool_shared:
                # The views share this pool (shared_pool): their tables, unqualified, are
                # found in the schema.  eventsourcing names its own tables with the schema.
                datastore.pool.kwargs["options"] = f"-c search_path={schema}"
            # eventsourcing opens its pool on first use without waiting for the first
            # connection, and that first request, finding the pool empty, makes it open a
            # second: open it here and wait (one connection for a command that needs one).
            datastore.pool.open(wait=True, timeout=float(env.get("POSTGRES_CONNECT_TIMEOUT") or 5))
        return factory

    def shared_pool(self) -> Any:
        """The PostgreSQL connection pool the views may share with the events (its search
        path is the store's schema), or ``None``: another store, or a schema matome did not
        check (then the views open their own)."""
        if not getattr(self, "_pool_shared", False):
            return None
        return getattr(getattr(self.recorder, "datastore", None), "pool", None)

    def construct_env(self, name: str, env: Any = None) -> Environment:
        # matome's settings come from its own options and MATOME_* variables only (store_env):
        # eventsourcing would also read the process environment, where a stray
        # MATOME_SQLITE_DBNAME would silently move the events to another file.
        return Environment(name, dict(env or {}))

    @property
    def matome_recorder(self) -> MatomeRecorder:
        """The recorder, with matome's additions (chain, personal values)."""
        return self.recorder  # type: ignore[return-value]  # matome's recorders (see above)

    def construct_recorder(self) -> ApplicationRecorder:
        # The in-memory factory takes no recorder topic: give it matome's recorder directly.
        if self.store_settings.get("PERSISTENCE_MODULE") == "eventsourcing.popo":
            return POPORecorder()
        path = self._gate_path()
        creates = self.store_settings.get("CREATE_TABLE", "y").lower() not in (
            "n",
            "no",
            "0",
            "false",
        )
        if path is None or not creates:
            return super().construct_recorder()
        # Processes that open a new SQLite store together race on CREATE TABLE IF NOT EXISTS:
        # each statement reads the schema before it writes, and a transaction that read an
        # older schema cannot take the write lock once another committed — SQLite answers
        # "database is locked" at once (the busy timeout does not apply), and eventsourcing's
        # pool does not recover from it.  The tables are made by one process at a time, under
        # the writers' gate file held exclusively (as PostgreSQL's advisory lock does there).
        try:
            fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError:
            # No gate file can be made there (a read-only directory): the store cannot be
            # created or written either, and SQLite says why.
            return super().construct_recorder()
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            return super().construct_recorder()
        finally:
            os.close(fd)  # releases the lock

    def construct_mapper(self) -> Mapper[UUID]:
        # The cattrs converter owns the wire format; eventsourcing's cipher and compressor
        # settings still apply to the bytes.
        return self.factory.mapper(mapper_class=EventMapper)

    @property
    def event_mapper(self) -> EventMapper:
        mapper = self.mapper
        if not isinstance(mapper, EventMapper):  # construct_mapper made it: cannot happen
            raise TypeError("not matome's mapper")
        return mapper

    def record(
        self,
        events: Sequence[DomainEvent],
        read_versions: Mapping[UUID, int] | None = None,
        position: LogPosition | None = None,
    ) -> Sequence[int] | None:
        """Record ``events`` in one transaction; fail with ``IntegrityError`` if a stream they
        write, or a stream in ``read_versions`` (stream → version read), has moved.  Return
        the events' notification ids, when the recorder reports them (the billing run applies
        the bills it recorded to the views from memory, at those positions).

        With them, in the same transaction: each event's link in its stream's hash chain, the
        personal values kept apart from the events, and — for an erasure — the deletion of a
        Passport ID's personal values (and the redaction of clear values written before 0.2);
        ``position`` records how far a command log was applied, with the command it applied.
        """
        if not events:
            return None
        self.check_writable()
        encoded = [self.event_mapper.encode(e) for e in events]
        chain = self._links(encoded)
        #: The last event (by index) of this write that erases each subject's values.
        erased_at: dict[str, int] = {}
        rewrite: list[tuple[UUID, int, bytes]] = []
        for index, e in enumerate(events):
            if getattr(e, "ERASES_PERSONAL_DATA", False):
                erased_at[str(e.originator_id)] = index
                rewrite += self._redactions(e.originator_id, below=e.originator_version)
            if getattr(e, "REPLACES_SECRET", False) and getattr(e, "password_hash", None):
                # The hashes of the old secret kept with idempotency keys go with it.
                erased_at[f"secret:{e.originator_id}"] = index
        #: The last event of this write that replaces each (subject, field)'s value.
        replaced_at = self._replacements(events, encoded)
        for (subject, field), index in replaced_at.items():
            e = events[index]
            if subject == str(e.originator_id) and subject not in erased_at:
                # An e-mail written before 0.2 sits in clear in its event: redacted now too.
                rewrite += self._redactions(e.originator_id, e.originator_version, only=field)
        # The recorders delete the erased subjects' values first, then insert the new ones;
        # a value written by an event before the erasing one (in one write of several
        # commands) is not inserted at all, and one written after it is kept — as if each
        # command had been written on its own.  A replaced value likewise.
        personal = tuple(
            row
            for index, x in enumerate(encoded)
            for row in x.personal
            if erased_at.get(row.subject, -1) < index
            and replaced_at.get((row.subject, row.ref.rsplit("/", 1)[-1]), -1) <= index
        )
        # An old value replaced is unreadable at once: its row is deleted and its subject's
        # key replaced (the surviving values re-sealed), so a copy of the row left in a WAL,
        # a backup or a heap page is under a key that no longer exists.
        rotate = tuple(sorted({s for s, _ in replaced_at} - set(erased_at)))
        extra = Extra(
            chain=tuple(chain),
            personal=personal,
            erase=tuple(erased_at),
            rewrite=tuple(rewrite),
            position=position,
            replace=tuple(replaced_at),
            rotate=rotate,
        )
        shredding = bool(extra.erase or extra.replace)
        legacy = shredding and self.matome_recorder.has_unsealed_personal(list(erased_at))
        with self.gate.shared():
            ids = self.recorder.insert_events(
                [x.stored for x in encoded],
                read_versions=dict(read_versions or {}),
                extra=extra,
                gate_held=self.gate.held(),
            )
        if shredding:
            self.keyring.forget_all()
        if shredding or self._scrub_pending:
            # The deleted keys and values must survive in no page image or WAL frame of the
            # store: SQLite checkpoints and truncates its WAL, PostgreSQL rewrites the tables.
            # The write is committed by now: a failure here must not report it as failed
            # (a retry would record it twice), so the next write of this process retries.
            self._scrub_pending = True
            self._scrub_personal_table |= legacy or bool(rewrite)
            with contextlib.suppress(PersistenceError, sqlite3.Error):
                self.matome_recorder.scrub(personal_table=self._scrub_personal_table)
                self._scrub_pending = self._scrub_personal_table = False
        with self._heads_lock:
            for stream, version, hash_ in chain:
                self._heads[stream] = (version, hash_)
                self._heads.move_to_end(stream)
            while len(self._heads) > _HEADS:
                self._heads.popitem(last=False)
        return ids

    def check_writable(self) -> None:
        """Refuse (``store_unavailable``) to write to a store that a newer matome wrote: one
        whose format is higher than :data:`STORE_FORMAT`, that a matome knowing events this one
        does not (or at a higher class version) wrote to, or that holds such events.  Checked
        before this process's first write; then this matome records what it is (its format,
        its version and the events it knows) in ``matome_meta``, for older ones to find.

        An older matome would otherwise append to a history it cannot read whole: decide
        with rules that no longer hold and chain over events it does not understand.
        """
        if self._writable:
            return
        with self._writable_lock:
            if self._writable:
                return
            problem = self._newer_writer()
            if problem is not None:
                raise StoreUnavailable(
                    f"{describe(self.store_settings)}: {problem}; matome {matome_version()} "
                    "does not write to it (use the newer matome)"
                )
            self._writable = True

    def _newer_writer(self) -> str | None:
        """Why a newer matome has this store, or ``None`` (then record this one's marks)."""
        return newer_writer(self.matome_recorder, self.recorder, self.event_mapper)

    @staticmethod
    def _replacements(
        events: Sequence[DomainEvent], encoded: Sequence[Encoded]
    ) -> dict[tuple[str, str], int]:
        """(subject, field) → index of the last event of the write whose value of ``field``
        replaces the subject's earlier ones (``REPLACES_PERSONAL``, e.g. a changed e-mail)."""
        out: dict[tuple[str, str], int] = {}
        for index, (e, x) in enumerate(zip(events, encoded, strict=True)):
            fields = getattr(e, "REPLACES_PERSONAL", ())
            for row in x.personal:
                name = row.ref.rsplit("/", 1)[-1]
                if name in fields:
                    out[row.subject, name] = index
        return out

    def check_unchanged(self, read_versions: Mapping[UUID, int]) -> None:
        """Fail with ``IntegrityError`` if a stream moved from the version it was read at
        (a check without a write: for decisions that recorded nothing)."""
        # One query for them all (a batch whose every command was refused may have read
        # hundreds of streams), not one stream read each.
        raise_if_stale(read_versions, self.matome_recorder.stream_versions(list(read_versions)))

    def _links(self, encoded: Sequence[Encoded]) -> list[ChainRow]:
        """Each event's hash, chained to the previous event of its stream.

        A stream whose previous event was written before matome 0.2 (no hash) is chained to
        the hash of its whole earlier history, computed from the stored events: the first new
        event seals the old ones.
        """
        first: dict[UUID, int] = {}
        for x in encoded:
            stream = as_uuid(x.stored.originator_id)
            first.setdefault(stream, x.stored.originator_version)
        heads: dict[tuple[UUID, int], str] = {}
        with self._heads_lock:
            for s, v in first.items():
                known = self._heads.get(s)
                if known is not None and known[0] == v - 1:
                    heads[s, v - 1] = known[1]
        wanted = [(s, v - 1) for s, v in first.items() if v > 1 and (s, v - 1) not in heads]
        if wanted:
            heads.update(self.matome_recorder.chain_hashes(wanted))
        previous: dict[UUID, str] = {}
        for stream, version in first.items():
            if version == 1:
                previous[stream] = GENESIS
            elif (stream, version - 1) in heads:
                previous[stream] = heads[stream, version - 1]
            else:
                previous[stream] = self.fold(stream, lte=version - 1)
        rows = []
        for x in encoded:
            stream = as_uuid(x.stored.originator_id)
            version = x.stored.originator_version
            previous[stream] = link(previous[stream], stream, version, x.content)
            rows.append((stream, version, previous[stream]))
        return rows

    def fold(self, stream: UUID, lte: int | None = None) -> str:
        """The chain hash of ``stream`` up to version ``lte``, computed from the stored events."""
        hash_ = GENESIS
        for stored in self.recorder.select_events(stream, lte=lte):
            state = self.event_mapper.stored_state(stored)
            hash_ = link(
                hash_, stream, stored.originator_version, content_hash(stored.topic, state)
            )
        return hash_

    def _redactions(
        self, stream: UUID, below: int, only: str | None = None
    ) -> list[tuple[UUID, int, bytes]]:
        """The states of ``stream``'s events written before 0.2 with personal values in clear
        (all of them, or the field ``only``), rewritten with those values erased (they are
        outside the hashed content)."""
        out = []
        for stored in self.recorder.select_events(stream, lte=below - 1):
            fields = personal_fields(EVENT_TOPICS[stored.topic])
            if only is not None:
                fields = tuple(f for f in fields if f == only)
            if not fields:
                continue
            state = self.event_mapper.stored_state(stored)
            clear = [f for f in fields if state.get(f) is not None and not is_reference(state[f])]
            if not clear or all(state[f] == {"erased": True} for f in clear):
                continue
            for f in clear:
                state[f] = {"erased": True}
            out.append((stream, stored.originator_version, self.event_mapper.seal(state)))
        return out


def __getattr__(name: str) -> Any:
    # eventsourcing resolves APPLICATION_RECORDER_TOPIC "matome.application.eventstore:
    # PostgresRecorder" with getattr on this module.  psycopg is an optional extra: its module
    # is imported the first time the class is asked for.
    if name == "PostgresRecorder":
        from matome.application._postgres import PostgresRecorder

        globals()[name] = PostgresRecorder
        return PostgresRecorder
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
