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

import base64
import contextlib
import fcntl
import hashlib
import importlib.metadata
import os
import re
import secrets
import sqlite3
import tempfile
import threading
import time
from collections import OrderedDict
from collections.abc import Iterator, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any, Protocol
from urllib.parse import parse_qs, unquote, urlsplit
from uuid import UUID

import attrs
import eventsourcing.sqlite
from eventsourcing.application import Application
from eventsourcing.persistence import (
    ApplicationRecorder,
    ConnectionUnavailableError,
    IntegrityError,
    Mapper,
    MapperDeserialisationError,
    PersistenceError,
    StoredEvent,
)
from eventsourcing.popo import POPOApplicationRecorder
from eventsourcing.sqlite import SQLiteApplicationRecorder, SQLiteCursor
from eventsourcing.utils import Environment

from matome.application._keyring import KEYS_TABLE, Keyring, PersonalDataLocked, master_env
from matome.errors import (
    Busy,
    InvalidInput,
    InvalidSetting,
    MatomeError,
    StoreNotFound,
    StoreUnavailable,
)
from matome.events.base import EVENT_TOPICS, DomainEvent
from matome.wire import converter, dumps, loads

__all__ = [
    "DEFAULT_DB",
    "MEMORY",
    "EventMapper",
    "EventStoreApplication",
    "LogPosition",
    "LogPositionTaken",
    "POPORecorder",
    "SQLiteRecorder",
    "check_store",
    "cipher_env",
    "describe",
    "event_from_json",
    "event_to_json",
    "master_env",
    "raise_if_stale",
    "stale_reads",
    "store_env",
    "store_kind",
    "translate_store_error",
]

#: The eventsourcing release line matome's overrides were written against.
SUPPORTED_EVENTSOURCING = "9.5"
#: The layout of matome's tables beside the events.  A matome that finds a higher number in a
#: store (``matome_meta``) does not write to it: a newer one changed what it keeps there.
STORE_FORMAT = 1

# ---------------------------------------------------------------------------------------------
# 1. Events on the wire, personal data apart, and the hash chain


_ENVELOPE = ("originator_id", "originator_version")
#: The previous hash of the first event of a stream.
GENESIS = "0" * 64


def event_to_json(event: DomainEvent) -> dict[str, Any]:
    """An event's state as the converter writes it (without the stream position, which the
    store keeps); a class at ``class_version`` N > 1 records N, so that a later version knows
    which of its upcasters to apply."""
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


_PERSONAL: dict[type[DomainEvent], tuple[str, ...]] = {}


def personal_fields(cls: type[DomainEvent]) -> tuple[str, ...]:
    """The fields of ``cls`` that hold personal data (marked with ``events.base.personal``)."""
    found = _PERSONAL.get(cls)
    if found is None:
        found = _PERSONAL[cls] = tuple(
            f.name for f in attrs.fields(cls) if f.metadata.get("personal")
        )
    return found


def is_reference(value: Any) -> bool:
    """A personal value as a stored event holds it: a reference into the personal-data table
    and a salted digest of the value."""
    return isinstance(value, dict) and "personal" in value


def content_hash(topic: str, state: Mapping[str, Any]) -> str:
    """SHA-256 of an event's stored content in canonical JSON.

    Personal values are kept out: new events hold only a reference and a salted digest (the
    value lives in the personal-data table, where erasure deletes it), and the clear values of
    events written before matome 0.2 are left out of the hash, so erasing them breaks no
    chain.
    """
    personal = personal_fields(EVENT_TOPICS[topic]) if topic in EVENT_TOPICS else ()
    hashed = {k: v for k, v in state.items() if k not in personal or is_reference(v)}
    return hashlib.sha256(f"{topic}\n{dumps(hashed)}".encode()).hexdigest()


def content_as_written(topic: str, state: Mapping[str, Any]) -> str | None:
    """The content hash matome 0.2 recorded for an event whose personal fields it stored empty
    (``null``) or as erased: it hashed the stored text whole, while :func:`content_hash` leaves
    every personal value that is not a reference out.  ``None`` when the state holds no such
    value (then the two agree).  Only ``verify`` uses it, to accept those recorded hashes."""
    personal = personal_fields(EVENT_TOPICS[topic]) if topic in EVENT_TOPICS else ()
    empty = [k for k in personal if k in state and (state[k] is None or state[k] == ERASED)]
    if not empty or any(
        state.get(k) is not None and not is_reference(state[k]) and state[k] != ERASED
        for k in personal
    ):
        return None  # nothing empty, or clear values of a version before 0.2: not ambiguous
    return hashlib.sha256(f"{topic}\n{dumps(dict(state))}".encode()).hexdigest()


#: A personal value as an event stores it once erased.
ERASED = {"erased": True}


def link(previous: str, stream: UUID | str, version: int, content: str) -> str:
    """The hash of event ``version`` of ``stream``: its content chained to the previous one
    (``stream`` as a UUID or its canonical text)."""
    return hashlib.sha256(f"{previous}:{stream}:{version}:{content}".encode()).hexdigest()


def _subject_of(event: DomainEvent, name: str, default: str) -> str:
    """The subject of the personal field ``name``: the value of the field its metadata names
    (``events.base.personal(subject=...)``), else ``default``."""
    field = attrs.fields_dict(type(event))[name]
    named = field.metadata.get("subject")
    value = None if named is None else getattr(event, named)
    return default if value is None else str(value)


def global_link(previous: str, position: int, stream_hash: str) -> str:
    """The global chain's hash at log ``position``: the event's stream hash (which covers its
    stream, version, content and stream history) chained to the previous position's.

    One chain over the whole log in recording order (notification ids; on PostgreSQL they may
    have gaps, so the position itself is hashed rather than assumed consecutive): deleting,
    editing, reordering or cutting off any event changes every later hash, and the hash at a
    position kept outside the store (a seal) proves what the store held up to it.
    """
    return hashlib.sha256(f"{previous}:{position}:{stream_hash}".encode()).hexdigest()


def global_rows(
    previous: tuple[int, str] | None, ids: Sequence[int], chain: Sequence[ChainRow]
) -> list[tuple[int, str]]:
    """The global chain rows of events just inserted at ``ids`` (in the order of their
    ``chain`` rows), after the head ``previous`` (``None``: the log's first events)."""
    if len(ids) != len(chain):
        raise IntegrityError(f"{len(ids)} events inserted but {len(chain)} chain rows")
    last_position, hash_ = previous if previous is not None else (0, GENESIS)
    out = []
    for position, (_, _, stream_hash) in zip(ids, chain, strict=True):
        if position <= last_position:
            # The head is read under the write lock, so no other writer interleaves: a new
            # event at or before the head means the log lost its newest events (SQLite reuses
            # the positions of deleted rows) while their global rows stayed.  Not a conflict
            # to retry: the store needs an audit before anything more is written to it.
            raise StoreUnavailable(
                f"the global chain's head is at log position {last_position} but a new event "
                f"got position {position}: events were deleted from the log (matome verify)"
            )
        hash_ = global_link(hash_, position, stream_hash)
        out.append((position, hash_))
        last_position = position
    return out


@attrs.frozen
class Adoption:
    """Events recorded before the store had a global chain, adopted into both chains when a
    writer of contract 3 first opened it: through which log position, how many events got
    a stream-chain entry they lacked, and when (UTC, ISO 8601)."""

    through: int
    adopted: int
    at: str


def adoption_rows(
    notifications: Sequence[Any],
    recorded: Mapping[tuple[UUID, int], str],
    content_of: Any,
) -> tuple[list[ChainRow], list[tuple[int, str]]]:
    """The chain rows an old store lacks: a stream-chain entry for each event without one
    (folded from the stored events, as :meth:`EventStoreApplication.fold` does) and a global
    row for every event, in log order.  An event that has a stream hash keeps it: a recorded
    hash that no longer matches its event stays a break for ``verify`` to report."""
    heads: dict[UUID, str] = {}
    missing: list[ChainRow] = []
    global_: list[tuple[int, str]] = []
    hash_ = GENESIS
    for n in notifications:
        stream = _uuid(n.originator_id)
        own = recorded.get((stream, n.originator_version))
        if own is None:
            own = link(heads.get(stream, GENESIS), stream, n.originator_version, content_of(n))
            missing.append((stream, n.originator_version, own))
        heads[stream] = own
        hash_ = global_link(hash_, n.id, own)
        global_.append((n.id, hash_))
    return missing, global_


@attrs.frozen
class PersonalRow:
    """A personal value kept apart from its event: erasable without touching the event.

    On its way to the store (``Extra.personal``) ``data`` is the clear value, which the
    recorder seals under its subject's data key inside the write transaction
    (:mod:`matome.application._keyring`); read back, ``data`` is the stored form and
    ``wrapped`` the subject's wrapped key (``None``: destroyed).  ``salt`` is the digest's salt
    on the way in and in rows of earlier versions; a sealed row keeps it inside the ciphertext.
    """

    ref: str
    subject: str
    data: str = attrs.field(repr=False)  # clear on its way in: never in a traceback
    salt: str = attrs.field(repr=False)
    wrapped: str | None = attrs.field(default=None, repr=False)


@attrs.frozen
class Encoded:
    """An event as it is about to be stored: its record, its (pre-cipher) state, the personal
    values kept apart, and its content hash."""

    stored: StoredEvent
    state: dict[str, Any]
    personal: tuple[PersonalRow, ...]
    content: str


class Vault(Protocol):
    """Reads personal values kept apart from their events (``None``: erased)."""

    def vault_get(self, refs: Sequence[str]) -> dict[str, PersonalRow]: ...


class EventMapper(Mapper[UUID]):
    """eventsourcing ``Mapper`` whose (de)serialisation is the cattrs converter's.

    Personal values (fields marked ``personal``) are not written into the event: the mapper
    stores a reference and a salted digest instead, and the value goes to the personal-data
    table with the event (:meth:`EventStoreApplication.record`); reading the event resolves the
    reference, or gives :class:`~matome.values.Erased` once the value was erased.
    Compression and encryption at rest still come from eventsourcing's ``COMPRESSOR_TOPIC``
    and ``CIPHER_TOPIC`` settings, applied to the JSON bytes.
    """

    #: Set by the application: where personal values are read from.  A mapper used on its
    #: own (no store) keeps the personal values it encoded in memory instead.
    vault: Vault | None = None
    #: Set by the application: the master key and the data keys it unwraps.
    keyring: Keyring | None = None
    _memory: dict[str, str] | None = None

    def encode(self, domain_event: Any) -> Encoded:
        if not isinstance(domain_event, DomainEvent) or not domain_event.TOPIC:
            raise TypeError(f"not a registered matome event: {domain_event!r}")
        state = event_to_json(domain_event)
        rows = []
        subject = str(domain_event.originator_id)
        subject_field = getattr(type(domain_event), "PERSONAL_SUBJECT", None)
        if subject_field and state.get(subject_field):
            subject = f"secret:{state[subject_field]}"
        for name in personal_fields(type(domain_event)):
            value = state.get(name)
            if value is None:
                # Not stored at all (it reads as its default): the content hash leaves
                # personal fields out unless they are references, so a stored ``null``
                # would make ``verify`` fold another hash than the one recorded.
                state.pop(name, None)
                continue
            if isinstance(value, dict) and "erased" in value:
                continue
            ref = f"{domain_event.originator_id}/{domain_event.originator_version}/{name}"
            salt = secrets.token_hex(16)
            data = dumps(value)
            digest = hashlib.sha256(f"{salt}{data}".encode()).hexdigest()
            state[name] = {"personal": ref, "digest": digest}
            # Clear until the recorder seals it under the subject's key (in the transaction
            # that finds or makes that key, so a key destroyed meanwhile is never reused).
            rows.append(PersonalRow(ref, _subject_of(domain_event, name, subject), data, salt))
            if self.vault is None:
                if self._memory is None:
                    self._memory = {}
                self._memory[ref] = data
        text = dumps(state)
        # The content hash is over the same canonical text (personal values are references by
        # now, which the hash covers), so it costs no second serialisation.
        content = hashlib.sha256(f"{domain_event.TOPIC}\n{text}".encode()).hexdigest()
        return Encoded(
            stored=StoredEvent(
                originator_id=domain_event.originator_id,
                originator_version=domain_event.originator_version,
                topic=domain_event.TOPIC,
                state=self._seal_bytes(text.encode()),
            ),
            state=state,
            personal=tuple(rows),
            content=content,
        )

    def seal(self, state: Mapping[str, Any]) -> bytes:
        """The stored bytes of a state: canonical JSON, compressed and encrypted if set."""
        return self._seal_bytes(dumps(state).encode())

    def _seal_bytes(self, data: bytes) -> bytes:
        if self.compressor:
            data = self.compressor.compress(data)
        if self.cipher:
            data = self.cipher.encrypt(data)
        return data

    def open_text(self, stored: str) -> str:
        """The clear text of a personal value as matome 0.2 stored it: clear, or encrypted
        with the store's key when encryption at rest was on."""
        if not self.cipher:
            return stored
        return self.cipher.decrypt(base64.b64decode(stored)).decode()

    def open_personal(self, row: PersonalRow) -> tuple[str, str] | None:
        """``(salt, clear text)`` of a stored personal value; ``None`` when its subject's key
        was destroyed (erased).  Without the master key: :class:`PersonalDataLocked`."""
        if not Keyring.is_sealed(row.data):
            return row.salt, self.open_text(row.data)
        if row.wrapped is None:
            return None
        if self.keyring is None:
            raise PersonalDataLocked("personal data cannot be read: no master key")
        return self.keyring.open(row.subject, row.wrapped, row.ref, row.data)

    def to_stored_event(self, domain_event: Any) -> StoredEvent:
        return self.encode(domain_event).stored

    def stored_state(self, stored_event: StoredEvent) -> dict[str, Any]:
        """The JSON state of a stored event, as stored (personal references unresolved)."""
        return self.state_of(stored_event.state)

    def state_of(self, data: bytes) -> dict[str, Any]:
        """The JSON state stored as ``data`` (decrypted and decompressed as configured)."""
        if self.cipher:
            data = self.cipher.decrypt(data)
        if self.compressor:
            data = self.compressor.decompress(data)
        state: dict[str, Any] = loads(data)
        return state

    def to_domain_event(self, stored_event: StoredEvent) -> Any:
        return self._decode(stored_event, personal=True)

    def to_domain_event_without_personal_data(self, stored_event: StoredEvent) -> Any:
        """The event with its personal values left unread (they read as erased): for readers
        that never need them — the views — so that reading the log costs no extra lookups."""
        return self._decode(stored_event, personal=False)

    def _decode(self, stored_event: StoredEvent, *, personal: bool) -> Any:
        try:
            state = self.stored_state(stored_event)
            refs: dict[str, str] = {}
            for name in personal_fields(EVENT_TOPICS[stored_event.topic]):
                value = state.get(name)
                if isinstance(value, dict) and "personal" in value:
                    refs[name] = value["personal"]
            if refs and not personal:
                for name in refs:
                    state[name] = {"erased": True}
            elif refs:
                wanted = list(refs.values())
                found: dict[str, str] = {}
                if self.vault is not None:
                    for ref, row in self.vault.vault_get(wanted).items():
                        opened = self.open_personal(row)
                        if opened is not None:
                            found[ref] = opened[1]
                else:
                    memory = self._memory or {}
                    found = {r: memory[r] for r in wanted if r in memory}
                for name, ref in refs.items():
                    data = found.get(ref)
                    state[name] = {"erased": True} if data is None else loads(data)
            originator_id = stored_event.originator_id
            if not isinstance(originator_id, UUID):
                originator_id = UUID(str(originator_id))
            return event_from_json(
                stored_event.topic, state, originator_id, stored_event.originator_version
            )
        except PersonalDataLocked:
            raise  # its own clear message: the events are fine, the master key is missing
        except Exception as e:
            msg = (
                f"stored event {stored_event.topic!r} of {stored_event.originator_id} "
                f"v{stored_event.originator_version} does not load: {e}"
            )
            raise MapperDeserialisationError(msg) from e


# ---------------------------------------------------------------------------------------------
# 2. Recorders that also check what a command read, chain hashes, and keep personal data apart


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


ChainRow = tuple[UUID, int, str]
#: Rows of the write that go with the events, in the same transaction (keyword ``extra`` of
#: ``insert_events``): chain hashes, personal values, subjects erased, legacy states redacted.


@attrs.frozen
class LogPosition:
    """How far a command log was applied: its identity, the number of the last command
    applied and the SHA-256 chained over the commands up to it (:func:`matome.interchange.
    log_lines`; a store written by matome 0.2 holds the 0.2 form: the SHA-256 of the log's
    first raw line, physical lines, raw bytes chained).

    Given with a write, it is also a **claim**: ``first`` (default ``line``) is the first
    command of the log the write applies, and the store refuses the write with
    :class:`LogPositionTaken` — in the write's transaction, under the store's write lock —
    if it has already recorded this log at or past ``first``.  So two runs of one log at once
    cannot both apply a command (INTERCHANGE.md, contract 3, "A log is applied once").
    """

    log_id: str
    line: int
    digest: str
    first: int | None = attrs.field(default=None, eq=False)

    @property
    def claims_from(self) -> int:
        """The first command of the log the write that carries this position applies."""
        return self.line if self.first is None else self.first


class LogPositionTaken(Exception):
    """A write claimed commands of a log that the store had already recorded as applied
    (another run of the same log got there first): nothing of the write was kept.

    Not an ``IntegrityError`` — deciding the commands again would not help, the run must
    skip what the other applied (``matome run`` does) — and not a refusal of the command."""

    def __init__(self, claimed: LogPosition, stored: LogPosition) -> None:
        super().__init__(
            f"log {claimed.log_id[:12]}: commands {claimed.claims_from}-{claimed.line} claimed, "
            f"but the store has it applied through command {stored.line}"
        )
        self.claimed = claimed
        self.stored = stored
        #: The outcomes of the commands of a batch recorded one at a time before this one
        #: (``CommandService.execute_batch``): recorded, so to be reported.
        self.done: list[Any] = []


def check_claim(claimed: LogPosition, stored: LogPosition | None) -> None:
    """Raise :class:`LogPositionTaken` if ``stored`` already covers the first command
    ``claimed`` applies (every recorder calls this under its write lock)."""
    if stored is not None and stored.line >= claimed.claims_from:
        raise LogPositionTaken(claimed, stored)


@attrs.frozen
class Extra:
    chain: tuple[ChainRow, ...] = ()
    personal: tuple[PersonalRow, ...] = ()
    erase: tuple[str, ...] = ()
    rewrite: tuple[tuple[UUID, int, bytes], ...] = ()
    #: (subject, field): earlier values of ``field`` replaced by this write's (deleted).
    replace: tuple[tuple[str, str], ...] = ()
    #: Subjects whose data key is replaced by a new one (their surviving values re-sealed).
    rotate: tuple[str, ...] = ()
    position: LogPosition | None = None


def _subjects(extra: Extra) -> list[str]:
    """The subjects whose data keys a write needs."""
    return sorted({r.subject for r in extra.personal} | set(extra.rotate))


def _keyring_of(recorder: Any) -> Keyring:
    keyring: Keyring | None = getattr(recorder, "keyring", None)
    if keyring is None:  # a recorder used without the application: never store clear values
        raise PersonalDataLocked("personal values cannot be stored: the recorder has no keyring")
    return keyring


class MatomeRecorder(Protocol):
    """What matome's recorders add to eventsourcing's (implemented for every store below)."""

    def chain_hashes(self, keys: Sequence[tuple[UUID, int]]) -> dict[tuple[UUID, int], str]: ...

    def all_chain_hashes(self) -> dict[tuple[UUID, int], str]: ...

    def vault_get(self, refs: Sequence[str]) -> dict[str, PersonalRow]: ...

    def personal_rows(self) -> dict[str, PersonalRow]: ...

    def has_unsealed_personal(self, subjects: Sequence[str]) -> bool: ...

    def scrub(self, *, personal_table: bool) -> None: ...

    def log_position(self, log_id: str) -> LogPosition | None: ...

    def store_meta(self) -> dict[str, int]: ...

    def raise_store_meta(self, rows: Mapping[str, int]) -> None: ...

    def topics_after(self, position: int) -> dict[str, int]: ...
    def global_range(self, start: int, stop: int) -> list[tuple[int, str]]: ...

    def global_after(self, position: int) -> list[tuple[int, str]]: ...

    def adoption(self) -> Adoption | None: ...

    def adopt(self, content_of: Any, at: str) -> Adoption: ...


class POPORecorder(POPOApplicationRecorder):
    """In-memory recorder with the read check, the chain and the personal values."""

    def __init__(self) -> None:
        super().__init__()
        self._chain: dict[tuple[UUID, int], str] = {}
        self._personal: dict[str, PersonalRow] = {}
        self._keys: dict[str, str] = {}
        self._positions: dict[str, LogPosition] = {}
        self._meta: dict[str, int] = {}
        self._global: dict[int, str] = {}
        self._global_head: tuple[int, str] | None = None
        self._adoption: Adoption | None = None

    #: Set by the application: seals personal values under their subjects' keys.
    keyring: Keyring | None = None

    def _insert_events(
        self, stored_events: Sequence[StoredEvent], **kwargs: Any
    ) -> Sequence[int] | None:
        read_versions: Mapping[UUID, int] | None = kwargs.get("read_versions")
        extra: Extra = kwargs.get("extra") or Extra()
        with self._database_lock:
            if extra.position is not None:
                check_claim(extra.position, self._positions.get(extra.position.log_id))
            if read_versions:
                current = {}
                for stream in read_versions:
                    versions = self._stored_events_index.get(str(stream))
                    current[stream] = max(versions) if versions else 0
                raise_if_stale(read_versions, current)
            ids = super()._insert_events(stored_events, **kwargs)
            for stream, version, hash_ in extra.chain:
                self._chain[stream, version] = hash_
            if extra.chain and ids is not None:
                rows = global_rows(self._global_head, ids, extra.chain)
                self._global.update(rows)
                self._global_head = rows[-1]
            for subject in extra.erase:  # first: the values written with these events stay
                for ref in [r for r, row in self._personal.items() if row.subject == subject]:
                    del self._personal[ref]
                self._keys.pop(subject, None)
            for subject, field in extra.replace:
                for ref in [
                    r
                    for r, row in self._personal.items()
                    if row.subject == subject and r.endswith(f"/{field}")
                ]:
                    del self._personal[ref]
            if extra.personal or extra.rotate:
                plan = _keyring_of(self).plan(
                    {s: self._keys[s] for s in _subjects(extra) if s in self._keys},
                    next(iter(self._keys.items()), None),
                    [(r.ref, r.subject, r.salt, r.data) for r in extra.personal],
                    extra.rotate,
                    [
                        (r.ref, r.subject, r.data)
                        for r in self._personal.values()
                        if r.subject in extra.rotate
                    ],
                )
                for subject in plan.delete_keys:
                    del self._keys[subject]
                self._keys.update(plan.insert_keys)
                for ref, data in plan.update_rows:
                    self._personal[ref] = attrs.evolve(self._personal[ref], data=data)
                for ref, subject, data, salt in plan.insert_rows:
                    self._personal[ref] = PersonalRow(ref, subject, data, salt)
            if extra.position is not None:
                p = extra.position
                self._positions[p.log_id] = LogPosition(p.log_id, p.line, p.digest)
            for stream, version, state in extra.rewrite:
                position = self._stored_events_index[str(stream)][version]
                old = self._stored_events[position]
                self._stored_events[position] = StoredEvent(
                    originator_id=old.originator_id,
                    originator_version=old.originator_version,
                    topic=old.topic,
                    state=state,
                )
            return ids

    def chain_hashes(self, keys: Sequence[tuple[UUID, int]]) -> dict[tuple[UUID, int], str]:
        with self._database_lock:
            return {k: self._chain[k] for k in keys if k in self._chain}

    def all_chain_hashes(self) -> dict[tuple[UUID, int], str]:
        with self._database_lock:
            return dict(self._chain)

    def vault_get(self, refs: Sequence[str]) -> dict[str, PersonalRow]:
        with self._database_lock:
            return {r: self._with_key(self._personal[r]) for r in refs if r in self._personal}

    def personal_rows(self) -> dict[str, PersonalRow]:
        with self._database_lock:
            return {r: self._with_key(row) for r, row in self._personal.items()}

    def _with_key(self, row: PersonalRow) -> PersonalRow:
        return attrs.evolve(row, wrapped=self._keys.get(row.subject))

    def has_unsealed_personal(self, subjects: Sequence[str]) -> bool:
        return False  # nothing outlives the process

    def scrub(self, *, personal_table: bool) -> None:
        pass  # nothing outlives the process

    def log_position(self, log_id: str) -> LogPosition | None:
        with self._database_lock:
            return self._positions.get(log_id)

    def store_meta(self) -> dict[str, int]:
        with self._database_lock:
            return dict(self._meta)

    def raise_store_meta(self, rows: Mapping[str, int]) -> None:
        with self._database_lock:
            for name, value in rows.items():
                self._meta[name] = max(value, self._meta.get(name, value))

    def topics_after(self, position: int) -> dict[str, int]:
        with self._database_lock:
            out: dict[str, int] = {}
            for index, stored in enumerate(self._stored_events[position:], start=position + 1):
                out[stored.topic] = index
            return out

    def global_range(self, start: int, stop: int) -> list[tuple[int, str]]:
        with self._database_lock:
            # Positions are the list indexes of the in-memory log: no gaps, no scan.
            found = ((p, self._global.get(p)) for p in range(start, stop + 1))
            return [(p, h) for p, h in found if h is not None]

    def global_after(self, position: int) -> list[tuple[int, str]]:
        with self._database_lock:
            last = self._global_head[0] if self._global_head else 0
            return self.global_range(position + 1, last)

    def adoption(self) -> Adoption | None:
        with self._database_lock:
            return self._adoption

    def adopt(self, content_of: Any, at: str) -> Adoption:
        with self._database_lock:
            if self._adoption is None:
                notifications = self.select_notifications(start=1, limit=2**62)
                missing, global_ = adoption_rows(notifications, self._chain, content_of)
                for stream, version, hash_ in missing:
                    self._chain[stream, version] = hash_
                self._global.update(global_)
                if global_:
                    self._global_head = global_[-1]
                through = notifications[-1].id if notifications else 0
                self._adoption = Adoption(through, len(missing), at)
            return self._adoption


#: The key of the PostgreSQL advisory lock held while matome creates its tables.
CREATE_LOCK = 0x6D61746F6D65  # "matome"
_CHAIN_TABLE = "matome_chain"
#: Stream heads whose chain hash is remembered in memory.
_HEADS = 200_000
_PERSONAL_TABLE = "matome_personal"
_POSITIONS_TABLE = "matome_log_positions"
#: What wrote the store (see EventStoreApplication.check_writable): name → number, each kept
#: at the highest value any writer recorded.
_META_TABLE = "matome_meta"
_META_DDL = "CREATE TABLE IF NOT EXISTS {0} (name TEXT PRIMARY KEY, value BIGINT NOT NULL)"
#: The global chain: one row per log position (notification id).
_GLOBAL_TABLE = "matome_global_chain"
#: One row: when and how far events older than the global chain were adopted into it.
_ADOPTION_TABLE = "matome_chain_adoption"
#: Keys per query when looking chain rows or personal values up.
_LOOKUP = 500


class SQLiteRecorder(SQLiteApplicationRecorder):
    """SQLite recorder with the read check, the chain and the personal values.

    The events are inserted first: the first write of the transaction takes SQLite's write
    lock, so the versions read after it cannot change before the commit.
    """

    def construct_create_table_statements(self) -> list[str]:
        return [
            *super().construct_create_table_statements(),
            f"CREATE TABLE IF NOT EXISTS {_CHAIN_TABLE} (originator_id TEXT, "
            "originator_version INTEGER, hash TEXT NOT NULL, "
            "PRIMARY KEY (originator_id, originator_version)) WITHOUT ROWID",
            f"CREATE TABLE IF NOT EXISTS {_PERSONAL_TABLE} (ref TEXT PRIMARY KEY, "
            "subject TEXT NOT NULL, data TEXT NOT NULL, salt TEXT NOT NULL)",
            f"CREATE INDEX IF NOT EXISTS {_PERSONAL_TABLE}_subject ON {_PERSONAL_TABLE} (subject)",
            f"CREATE TABLE IF NOT EXISTS {_POSITIONS_TABLE} (log_id TEXT PRIMARY KEY, "
            "line INTEGER NOT NULL, digest TEXT NOT NULL)",
            _META_DDL.format(_META_TABLE),
            f"CREATE TABLE IF NOT EXISTS {KEYS_TABLE} (subject TEXT PRIMARY KEY, "
            "wrapped TEXT NOT NULL)",
            f"CREATE TABLE IF NOT EXISTS {_GLOBAL_TABLE} (position INTEGER PRIMARY KEY, "
            "hash TEXT NOT NULL)",
            f"CREATE TABLE IF NOT EXISTS {_ADOPTION_TABLE} (id INTEGER PRIMARY KEY "
            "CHECK (id = 1), through INTEGER NOT NULL, adopted INTEGER NOT NULL, "
            "at TEXT NOT NULL)",
        ]

    #: Set by the application: seals personal values under their subjects' keys.
    keyring: Keyring | None = None

    def _insert_events(
        self, c: SQLiteCursor, stored_events: Sequence[StoredEvent], **kwargs: Any
    ) -> Sequence[int] | None:
        extra: Extra = kwargs.get("extra") or Extra()
        if extra.position is not None:
            # First, so that a run that lost the race hears LogPositionTaken rather than a
            # version conflict it would retry.  The claim is the transaction's first write:
            # it takes SQLite's write lock, and no other writer can move the position before
            # the commit.
            p = extra.position
            c.execute(
                f"INSERT INTO {_POSITIONS_TABLE} (log_id, line, digest) VALUES (?, ?, ?) "
                "ON CONFLICT (log_id) DO UPDATE SET line = excluded.line, "
                f"digest = excluded.digest WHERE {_POSITIONS_TABLE}.line < ?",
                (p.log_id, p.line, p.digest, p.claims_from),
            )
            c.execute("SELECT changes()")
            if c.fetchone()[0] == 0:
                c.execute(
                    f"SELECT log_id, line, digest FROM {_POSITIONS_TABLE} WHERE log_id = ?",
                    (p.log_id,),
                )
                row = c.fetchone()
                check_claim(p, LogPosition(row[0], int(row[1]), row[2]))
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
        if extra.chain:
            c.executemany(
                f"INSERT INTO {_CHAIN_TABLE} (originator_id, originator_version, hash) "
                "VALUES (?, ?, ?)",
                [(s.hex, v, h) for s, v, h in extra.chain],
            )
            # The global head is read after the events' insert took SQLite's write lock: no
            # other writer can extend the chain before this transaction commits.
            c.execute(f"SELECT position, hash FROM {_GLOBAL_TABLE} ORDER BY position DESC LIMIT 1")
            row = c.fetchone()
            head = None if row is None else (int(row[0]), str(row[1]))
            c.executemany(
                f"INSERT INTO {_GLOBAL_TABLE} (position, hash) VALUES (?, ?)",
                global_rows(head, ids or (), extra.chain),
            )
        if extra.erase or extra.replace or extra.rewrite:
            # A deletion that is real: SQLite zeroes what it deletes (the WAL is checkpointed
            # and truncated after the commit, EventStoreApplication.record).
            c.execute("PRAGMA secure_delete = ON")
        for subject in extra.erase:  # first: the values written with these events stay
            c.execute(f"DELETE FROM {_PERSONAL_TABLE} WHERE subject = ?", (subject,))
            c.execute(f"DELETE FROM {KEYS_TABLE} WHERE subject = ?", (subject,))
        for subject, field in extra.replace:
            c.execute(
                f"DELETE FROM {_PERSONAL_TABLE} WHERE subject = ? AND ref LIKE ?",
                (subject, f"%/{field}"),
            )
        if extra.personal or extra.rotate:
            self._write_personal(c, extra)
        for stream, version, state in extra.rewrite:
            c.execute(
                f"UPDATE {self.events_table_name} SET state = ? "
                "WHERE originator_id = ? AND originator_version = ?",
                (state, stream.hex, version),
            )
        return ids

    def _write_personal(self, c: SQLiteCursor, extra: Extra) -> None:
        """Seal the new personal values under their subjects' keys, found or made here, in
        the write transaction (so a key another process destroyed is never reused)."""
        subjects = _subjects(extra)
        marks = ",".join("?" for _ in subjects)
        # The subjects' keys, and one key of the store (the last row) to check a new key is
        # wrapped by the same master key: one query.
        c.execute(
            f"SELECT subject, wrapped FROM {KEYS_TABLE} WHERE subject IN ({marks}) UNION ALL "
            f"SELECT * FROM (SELECT subject, wrapped FROM {KEYS_TABLE} LIMIT 1)",
            subjects,
        )
        found = [(row[0], row[1]) for row in c.fetchall()]
        keys = {s: w for s, w in found if s in subjects}
        any_key = found[-1] if found else None
        survivors: list[tuple[str, str, str]] = []
        if extra.rotate:
            marks = ",".join("?" for _ in extra.rotate)
            c.execute(
                f"SELECT ref, subject, data FROM {_PERSONAL_TABLE} WHERE subject IN ({marks})",
                list(extra.rotate),
            )
            survivors = [(r[0], r[1], r[2]) for r in c.fetchall()]
        plan = _keyring_of(self).plan(
            keys,
            any_key,
            [(r.ref, r.subject, r.salt, r.data) for r in extra.personal],
            extra.rotate,
            survivors,
        )
        for subject in plan.delete_keys:
            c.execute(f"DELETE FROM {KEYS_TABLE} WHERE subject = ?", (subject,))
        if plan.insert_keys:
            c.executemany(
                f"INSERT INTO {KEYS_TABLE} (subject, wrapped) VALUES (?, ?)", plan.insert_keys
            )
        if plan.update_rows:
            c.executemany(
                f"UPDATE {_PERSONAL_TABLE} SET data = ? WHERE ref = ?",
                [(data, ref) for ref, data in plan.update_rows],
            )
        if plan.insert_rows:
            c.executemany(
                f"INSERT INTO {_PERSONAL_TABLE} (ref, subject, data, salt) VALUES (?, ?, ?, ?)",
                plan.insert_rows,
            )

    def has_unsealed_personal(self, subjects: Sequence[str]) -> bool:
        return False  # SQLite's secure_delete and the checkpoint cover every table

    def scrub(self, *, personal_table: bool) -> None:
        """After an erasure: checkpoint the WAL into the database and truncate it, so the
        deleted (zeroed) keys and values survive in no page image."""
        with self.datastore.get_connection(commit=True) as conn:
            cursor = conn.cursor()
            for _ in range(50):
                cursor.execute("PRAGMA wal_checkpoint(TRUNCATE)")
                busy = cursor.fetchone()
                if not busy or not busy[0]:
                    return
                time.sleep(0.05)  # a reader holds an old snapshot: let it finish

    def _select(self, sql: str, params: Sequence[Any]) -> list[Any]:
        with self.datastore.transaction(commit=False) as c:
            c.execute(sql, params)
            return list(c.fetchall())

    def chain_hashes(self, keys: Sequence[tuple[UUID, int]]) -> dict[tuple[UUID, int], str]:
        out: dict[tuple[UUID, int], str] = {}
        for start in range(0, len(keys), _LOOKUP):
            part = keys[start : start + _LOOKUP]
            where = " OR ".join("(originator_id = ? AND originator_version = ?)" for _ in part)
            params = [x for s, v in part for x in (s.hex, v)]
            for stream, version, hash_ in self._select(
                f"SELECT originator_id, originator_version, hash FROM {_CHAIN_TABLE} WHERE {where}",
                params,
            ):
                out[UUID(stream), int(version)] = hash_
        return out

    def all_chain_hashes(self) -> dict[tuple[UUID, int], str]:
        rows = self._select(
            f"SELECT originator_id, originator_version, hash FROM {_CHAIN_TABLE}", ()
        )
        return {(UUID(s), int(v)): h for s, v, h in rows}

    def vault_get(self, refs: Sequence[str]) -> dict[str, PersonalRow]:
        out: dict[str, PersonalRow] = {}
        for start in range(0, len(refs), _LOOKUP):
            part = refs[start : start + _LOOKUP]
            marks = ",".join("?" for _ in part)
            for row in self._personal_select(f"WHERE p.ref IN ({marks})", part):
                out[row.ref] = row
        return out

    def personal_rows(self) -> dict[str, PersonalRow]:
        return {row.ref: row for row in self._personal_select("", ())}

    def _personal_select(self, where: str, params: Sequence[Any]) -> list[PersonalRow]:
        try:
            rows = self._select(
                f"SELECT p.ref, p.subject, p.data, p.salt, k.wrapped FROM {_PERSONAL_TABLE} p "
                f"LEFT JOIN {KEYS_TABLE} k ON k.subject = p.subject {where}",
                params,
            )
        except Exception as e:
            if KEYS_TABLE not in str(e):
                raise
            # A store of matome 0.2 opened read-only has no keys table yet (its first write
            # makes it): its values are all of the earlier forms.
            rows = self._select(
                f"SELECT p.ref, p.subject, p.data, p.salt, NULL FROM {_PERSONAL_TABLE} p {where}",
                params,
            )
        return [PersonalRow(*r) for r in rows]

    def log_position(self, log_id: str) -> LogPosition | None:
        rows = self._select(
            f"SELECT log_id, line, digest FROM {_POSITIONS_TABLE} WHERE log_id = ?", (log_id,)
        )
        return LogPosition(rows[0][0], int(rows[0][1]), rows[0][2]) if rows else None

    def store_meta(self) -> dict[str, int]:
        try:
            rows = self._select(f"SELECT name, value FROM {_META_TABLE}", ())
        except (PersistenceError, sqlite3.Error) as e:
            if "no such table" not in str(e):
                raise
            return {}  # no matome since 0.2 wrote to it, or opened only to read so far
        return {str(name): int(value) for name, value in rows}

    def raise_store_meta(self, rows: Mapping[str, int]) -> None:
        upsert = (
            f"INSERT INTO {_META_TABLE} (name, value) VALUES (?, ?) ON CONFLICT (name) "
            "DO UPDATE SET value = excluded.value WHERE excluded.value > value"
        )
        try:
            # The write first: a transaction that read (even the schema, as CREATE TABLE IF
            # NOT EXISTS does) before writing cannot wait for another process's write lock —
            # SQLite answers "database is locked" at once instead of calling its busy handler.
            with self.datastore.transaction(commit=True) as c:
                c.executemany(upsert, list(rows.items()))
        except (PersistenceError, sqlite3.Error) as e:
            if "no such table" not in str(e):
                raise
            # A store opened without creating tables (CREATE_TABLE=n) by a read command.
            with self.datastore.transaction(commit=True) as c:
                c.execute(_META_DDL.format(_META_TABLE))
                c.executemany(upsert, list(rows.items()))

    def topics_after(self, position: int) -> dict[str, int]:
        rows = self._select(
            f"SELECT topic, MAX(rowid) FROM {self.events_table_name} WHERE rowid > ? "
            "GROUP BY topic",
            (position,),
        )
        return {str(topic): int(last) for topic, last in rows}

    def global_range(self, start: int, stop: int) -> list[tuple[int, str]]:
        rows = self._select(
            f"SELECT position, hash FROM {_GLOBAL_TABLE} WHERE position BETWEEN ? AND ? "
            "ORDER BY position",
            (start, stop),
        )
        return [(int(p), str(h)) for p, h in rows]

    def global_after(self, position: int) -> list[tuple[int, str]]:
        rows = self._select(
            f"SELECT position, hash FROM {_GLOBAL_TABLE} WHERE position > ? ORDER BY position",
            (position,),
        )
        return [(int(p), str(h)) for p, h in rows]

    def adoption(self) -> Adoption | None:
        try:
            rows = self._select(f"SELECT through, adopted, at FROM {_ADOPTION_TABLE}", ())
        except (sqlite3.Error, PersistenceError):
            return None  # a store no writer of this version has opened yet
        return Adoption(int(rows[0][0]), int(rows[0][1]), str(rows[0][2])) if rows else None

    def adopt(self, content_of: Any, at: str) -> Adoption:
        with self.datastore.transaction(commit=True) as c:
            # The first write takes SQLite's write lock: one process adopts, the others find
            # its row (the CHECK keeps it to one).
            c.execute(
                f"INSERT INTO {_ADOPTION_TABLE} (id, through, adopted, at) VALUES (1, 0, 0, ?) "
                "ON CONFLICT (id) DO NOTHING",
                (at,),
            )
            if c.sqlite_cursor.rowcount == 1:
                c.execute(
                    f"SELECT rowid, originator_id, originator_version, topic, state "
                    f"FROM {self.events_table_name} ORDER BY rowid"
                )
                notifications = [
                    _Stored(int(r[0]), UUID(r[1]), int(r[2]), str(r[3]), bytes(r[4]))
                    for r in c.fetchall()
                ]
                c.execute(f"SELECT originator_id, originator_version, hash FROM {_CHAIN_TABLE}")
                recorded = {(UUID(r[0]), int(r[1])): str(r[2]) for r in c.fetchall()}
                missing, global_ = adoption_rows(notifications, recorded, content_of)
                c.executemany(
                    f"INSERT INTO {_CHAIN_TABLE} (originator_id, originator_version, hash) "
                    "VALUES (?, ?, ?)",
                    [(s.hex, v, h) for s, v, h in missing],
                )
                c.executemany(
                    f"INSERT INTO {_GLOBAL_TABLE} (position, hash) VALUES (?, ?)", global_
                )
                through = notifications[-1].id if notifications else 0
                c.execute(
                    f"UPDATE {_ADOPTION_TABLE} SET through = ?, adopted = ? WHERE id = 1",
                    (through, len(missing)),
                )
            c.execute(f"SELECT through, adopted, at FROM {_ADOPTION_TABLE}")
            row = c.fetchone()
        return Adoption(int(row[0]), int(row[1]), str(row[2]))


def _postgres_recorder() -> type[Any]:
    # psycopg is an optional extra: the class is built the first time it is asked for.
    from eventsourcing.postgres import PostgresApplicationRecorder
    from psycopg.sql import SQL, Identifier

    class PostgresRecorder(PostgresApplicationRecorder):
        """Checks the versions of the streams a command read after taking the table lock
        that serialises writers, so they cannot change before the commit; writes the chain
        and the personal values in the same transaction."""

        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            schema = Identifier(self.datastore.schema)
            self.sql_create_statements += [
                SQL(
                    "CREATE TABLE IF NOT EXISTS {0}.{1} (originator_id uuid, "
                    "originator_version bigint, hash text NOT NULL, "
                    "PRIMARY KEY (originator_id, originator_version))"
                ).format(schema, Identifier(_CHAIN_TABLE)),
                SQL(
                    "CREATE TABLE IF NOT EXISTS {0}.{1} (ref text PRIMARY KEY, "
                    "subject text NOT NULL, data text NOT NULL, salt text NOT NULL)"
                ).format(schema, Identifier(_PERSONAL_TABLE)),
                SQL("CREATE INDEX IF NOT EXISTS {0} ON {1}.{2} (subject)").format(
                    Identifier(_PERSONAL_TABLE + "_subject"), schema, Identifier(_PERSONAL_TABLE)
                ),
                SQL(
                    "CREATE TABLE IF NOT EXISTS {0}.{1} (log_id text PRIMARY KEY, "
                    "line bigint NOT NULL, digest text NOT NULL)"
                ).format(schema, Identifier(_POSITIONS_TABLE)),
                SQL(_META_DDL).format(self._table(_META_TABLE)),
                SQL(
                    "CREATE TABLE IF NOT EXISTS {0}.{1} (subject text PRIMARY KEY, "
                    "wrapped text NOT NULL)"
                ).format(schema, Identifier(KEYS_TABLE)),
                SQL(
                    "CREATE TABLE IF NOT EXISTS {0}.{1} (position bigint PRIMARY KEY, "
                    "hash text NOT NULL)"
                ).format(schema, Identifier(_GLOBAL_TABLE)),
                SQL(
                    "CREATE TABLE IF NOT EXISTS {0}.{1} (id int PRIMARY KEY CHECK (id = 1), "
                    "through bigint NOT NULL, adopted bigint NOT NULL, at text NOT NULL)"
                ).format(schema, Identifier(_ADOPTION_TABLE)),
            ]

        #: Set by the application: seals personal values under their subjects' keys.
        keyring: Keyring | None = None

        def create_table(self) -> None:
            # Processes that start together would race on CREATE ... IF NOT EXISTS ("tuple
            # concurrently updated"): one of them creates, the others wait on this lock, then
            # find everything there.
            with self.datastore.get_connection() as conn:
                conn.execute("SELECT pg_advisory_lock(%s)", (CREATE_LOCK,))
                try:
                    super().create_table()
                finally:
                    conn.execute("SELECT pg_advisory_unlock(%s)", (CREATE_LOCK,))

        def _table(self, name: str) -> Any:
            return SQL("{0}.{1}").format(Identifier(self.datastore.schema), Identifier(name))

        def _insert_stored_events(
            self, curs: Any, stored_events: Sequence[StoredEvent], **kwargs: Any
        ) -> None:
            # The stale-read check comes after the lock that serialises writers (the versions
            # cannot change before the commit) and before the events' insert.  It raises here,
            # inside eventsourcing's pipeline error handling, having written nothing.
            if not kwargs.get("gate_held"):
                # The writers' gate, shared (see WriterGate), before the table lock: the
                # exclusive holder takes them in the same order.
                curs.execute("SELECT pg_advisory_xact_lock_shared(%s)", (GATE_LOCK,))
            read_versions: Mapping[UUID, int] | None = kwargs.get("read_versions")
            extra: Extra = kwargs.get("extra") or Extra()
            if extra.position is not None:
                # The claim, under the table lock that serialises writers (the position can
                # only move in a write holding it), before anything is written.
                self._lock_table(curs)
                p = extra.position
                curs.execute(
                    SQL("SELECT log_id, line, digest FROM {0} WHERE log_id = %s").format(
                        self._table(_POSITIONS_TABLE)
                    ),
                    (p.log_id,),
                )
                row = curs.fetchone()
                if row is not None:
                    check_claim(p, LogPosition(row["log_id"], int(row["line"]), row["digest"]))
            if read_versions:
                self._lock_table(curs)
                curs.execute(
                    SQL(
                        "SELECT originator_id, MAX(originator_version) AS version FROM {0} "
                        "WHERE originator_id = ANY(%s) GROUP BY originator_id"
                    ).format(self._table(self.events_table_name)),
                    (list(read_versions),),
                )
                current = {
                    UUID(str(row["originator_id"])): int(row["version"]) for row in curs.fetchall()
                }
                raise_if_stale(read_versions, current)
            super()._insert_stored_events(curs, stored_events, **kwargs)

        def _fetch_ids_after_insert_events(
            self, curs: Any, stored_events: Sequence[StoredEvent], **kwargs: Any
        ) -> Sequence[int] | None:
            ids = super()._fetch_ids_after_insert_events(curs, stored_events, **kwargs)
            extra: Extra = kwargs.get("extra") or Extra()
            if extra.chain:
                self._write_global(curs, ids or (), extra.chain)
            if extra != Extra():
                # Written only once the events' insert succeeded (the pipeline synced).  A
                # statement that failed before the events' insert would make PostgreSQL skip
                # the rest of the pipeline, and psycopg would then believe in prepared
                # statements the server never kept ("prepared statement _pg3_N does not
                # exist" on that connection's next write).  The nested pipeline syncs on
                # exit, so a failure here is raised inside eventsourcing's error handling.
                conn = curs.connection
                with conn.pipeline(), conn.cursor() as more:
                    self._write_extra(more, extra)
            return ids

        def _write_global(self, curs: Any, ids: Sequence[int], chain: Sequence[ChainRow]) -> None:
            # The head is read here, after eventsourcing's LOCK TABLE ... IN EXCLUSIVE MODE
            # (taken before the events' insert, held to the commit): no other writer can
            # extend the chain in between.  Notification ids may have gaps (a rolled-back
            # insert still used its sequence numbers): the chain hashes positions, it does
            # not expect them consecutive.
            conn = curs.connection
            with conn.pipeline(), conn.cursor() as more:
                more.execute(
                    SQL("SELECT position, hash FROM {0} ORDER BY position DESC LIMIT 1").format(
                        self._table(_GLOBAL_TABLE)
                    )
                )
                row = more.fetchone()
                head = None if row is None else (int(row["position"]), str(row["hash"]))
                more.executemany(
                    SQL("INSERT INTO {0} (position, hash) VALUES (%s, %s)").format(
                        self._table(_GLOBAL_TABLE)
                    ),
                    global_rows(head, ids, chain),
                )

        def _write_extra(self, curs: Any, extra: Extra) -> None:
            if extra.chain:
                curs.executemany(
                    SQL(
                        "INSERT INTO {0} (originator_id, originator_version, hash) "
                        "VALUES (%s, %s, %s)"
                    ).format(self._table(_CHAIN_TABLE)),
                    list(extra.chain),
                )
            for subject in extra.erase:  # first: the values written with these events stay
                curs.execute(
                    SQL("DELETE FROM {0} WHERE subject = %s").format(self._table(_PERSONAL_TABLE)),
                    (subject,),
                )
                curs.execute(
                    SQL("DELETE FROM {0} WHERE subject = %s").format(self._table(KEYS_TABLE)),
                    (subject,),
                )
            for subject, field in extra.replace:
                curs.execute(
                    SQL("DELETE FROM {0} WHERE subject = %s AND ref LIKE %s").format(
                        self._table(_PERSONAL_TABLE)
                    ),
                    (subject, f"%/{field}"),
                )
            if extra.personal or extra.rotate:
                self._write_personal(curs, extra)
            if extra.position is not None:
                p = extra.position
                curs.execute(
                    SQL(
                        "INSERT INTO {0} (log_id, line, digest) VALUES (%s, %s, %s) "
                        "ON CONFLICT (log_id) DO UPDATE SET line = EXCLUDED.line, "
                        "digest = EXCLUDED.digest"
                    ).format(self._table(_POSITIONS_TABLE)),
                    (p.log_id, p.line, p.digest),
                )
            for stream, version, state in extra.rewrite:
                curs.execute(
                    SQL(
                        "UPDATE {0} SET state = %s "
                        "WHERE originator_id = %s AND originator_version = %s"
                    ).format(self._table(self.events_table_name)),
                    (state, stream, version),
                )

        def _write_personal(self, curs: Any, extra: Extra) -> None:
            """Seal the new personal values under their subjects' keys, found or made in the
            write transaction (which holds the events' table lock: no other writer can
            destroy or make a key meanwhile)."""
            subjects = _subjects(extra)
            keys_table = self._table(KEYS_TABLE)
            # Reads on a cursor of their own: ``curs`` runs in a pipeline after executemany()
            # inserts, and a fetch on it could be handed an insert's result instead of the
            # query's ("the last operation didn't produce records").
            with curs.connection.cursor() as query:
                # The subjects' keys, and one key of the store (the last row) to check a new
                # key is wrapped by the same master key: one round trip.
                query.execute(
                    SQL(
                        "SELECT subject, wrapped FROM {0} WHERE subject = ANY(%s) UNION ALL "
                        "(SELECT subject, wrapped FROM {0} LIMIT 1)"
                    ).format(keys_table),
                    (subjects,),
                )
                found = [(r["subject"], r["wrapped"]) for r in query.fetchall()]
                survivors: list[tuple[str, str, str]] = []
                if extra.rotate:
                    query.execute(
                        SQL("SELECT ref, subject, data FROM {0} WHERE subject = ANY(%s)").format(
                            self._table(_PERSONAL_TABLE)
                        ),
                        (list(extra.rotate),),
                    )
                    survivors = [(r["ref"], r["subject"], r["data"]) for r in query.fetchall()]
            keys = {s: w for s, w in found if s in subjects}
            any_key = found[-1] if found else None
            plan = _keyring_of(self).plan(
                keys,
                any_key,
                [(r.ref, r.subject, r.salt, r.data) for r in extra.personal],
                extra.rotate,
                survivors,
            )
            for subject in plan.delete_keys:
                curs.execute(
                    SQL("DELETE FROM {0} WHERE subject = %s").format(keys_table), (subject,)
                )
            if plan.insert_keys:
                curs.executemany(
                    SQL("INSERT INTO {0} (subject, wrapped) VALUES (%s, %s)").format(keys_table),
                    list(plan.insert_keys),
                )
            if plan.update_rows:
                curs.executemany(
                    SQL("UPDATE {0} SET data = %s WHERE ref = %s").format(
                        self._table(_PERSONAL_TABLE)
                    ),
                    [(data, ref) for ref, data in plan.update_rows],
                )
            if plan.insert_rows:
                curs.executemany(
                    SQL(
                        "INSERT INTO {0} (ref, subject, data, salt) VALUES (%s, %s, %s, %s)"
                    ).format(self._table(_PERSONAL_TABLE)),
                    list(plan.insert_rows),
                )

        def has_unsealed_personal(self, subjects: Sequence[str]) -> bool:
            rows = self._select(
                SQL(
                    "SELECT 1 FROM {0} WHERE subject = ANY(%s) AND data NOT LIKE 'k1:%%' LIMIT 1"
                ).format(self._table(_PERSONAL_TABLE)),
                (list(subjects),),
            )
            return bool(rows)

        def scrub(self, *, personal_table: bool) -> None:
            """After an erasure: rewrite the keys table (and, when it held values of an
            earlier version, the personal table) so that the deleted rows are in no page of
            PostgreSQL's heap.  A plain VACUUM frees their space but leaves their bytes."""
            tables = [KEYS_TABLE] + ([_PERSONAL_TABLE] if personal_table else [])
            with self.datastore.get_connection() as conn:  # autocommit: VACUUM needs it
                for table in tables:
                    conn.execute(SQL("VACUUM FULL {0}").format(self._table(table)))

        def _select(self, sql: Any, params: Sequence[Any]) -> list[Any]:
            with self.datastore.transaction(commit=False) as curs:
                curs.execute(sql, params)
                return list(curs.fetchall())

        def chain_hashes(self, keys: Sequence[tuple[UUID, int]]) -> dict[tuple[UUID, int], str]:
            out: dict[tuple[UUID, int], str] = {}
            for start in range(0, len(keys), _LOOKUP):
                part = keys[start : start + _LOOKUP]
                rows = self._select(
                    SQL(
                        "SELECT c.originator_id, c.originator_version, c.hash FROM {0} c "
                        "JOIN unnest(%s::uuid[], %s::bigint[]) AS k(id, v) "
                        "ON c.originator_id = k.id AND c.originator_version = k.v"
                    ).format(self._table(_CHAIN_TABLE)),
                    ([s for s, _ in part], [v for _, v in part]),
                )
                for row in rows:
                    out[UUID(str(row["originator_id"])), int(row["originator_version"])] = row[
                        "hash"
                    ]
            return out

        def all_chain_hashes(self) -> dict[tuple[UUID, int], str]:
            rows = self._select(
                SQL("SELECT originator_id, originator_version, hash FROM {0}").format(
                    self._table(_CHAIN_TABLE)
                ),
                (),
            )
            return {
                (UUID(str(r["originator_id"])), int(r["originator_version"])): r["hash"]
                for r in rows
            }

        def vault_get(self, refs: Sequence[str]) -> dict[str, PersonalRow]:
            return {
                row.ref: row
                for row in self._personal_select(SQL("WHERE p.ref = ANY(%s)"), (list(refs),))
            }

        def personal_rows(self) -> dict[str, PersonalRow]:
            return {row.ref: row for row in self._personal_select(SQL(""), ())}

        def _personal_select(self, where: Any, params: Sequence[Any]) -> list[PersonalRow]:
            try:
                rows = self._select(
                    SQL(
                        "SELECT p.ref, p.subject, p.data, p.salt, k.wrapped FROM {0} p "
                        "LEFT JOIN {1} k ON k.subject = p.subject {2}"
                    ).format(self._table(_PERSONAL_TABLE), self._table(KEYS_TABLE), where),
                    params,
                )
            except Exception as e:
                if KEYS_TABLE not in str(e):
                    raise
                # A store of matome 0.2 opened read-only: no keys table until its first write.
                rows = self._select(
                    SQL(
                        "SELECT p.ref, p.subject, p.data, p.salt, NULL AS wrapped FROM {0} p {1}"
                    ).format(self._table(_PERSONAL_TABLE), where),
                    params,
                )
            return [
                PersonalRow(r["ref"], r["subject"], r["data"], r["salt"], r["wrapped"])
                for r in rows
            ]

        def log_position(self, log_id: str) -> LogPosition | None:
            rows = self._select(
                SQL("SELECT log_id, line, digest FROM {0} WHERE log_id = %s").format(
                    self._table(_POSITIONS_TABLE)
                ),
                (log_id,),
            )
            return (
                LogPosition(rows[0]["log_id"], int(rows[0]["line"]), rows[0]["digest"])
                if rows
                else None
            )

        def store_meta(self) -> dict[str, int]:
            try:
                rows = self._select(
                    SQL("SELECT name, value FROM {0}").format(self._table(_META_TABLE)), ()
                )
            except PersistenceError as e:
                if "does not exist" not in str(e):
                    raise
                return {}  # no matome since 0.2 wrote to it, or opened only to read so far
            return {str(r["name"]): int(r["value"]) for r in rows}

        def raise_store_meta(self, rows: Mapping[str, int]) -> None:
            with self.datastore.transaction(commit=True) as curs:
                # Made here too for a store opened without creating tables; under the lock
                # that serialises creators (CREATE ... IF NOT EXISTS races otherwise).
                curs.execute("SELECT pg_advisory_xact_lock(%s)", (CREATE_LOCK,))
                curs.execute(SQL(_META_DDL).format(self._table(_META_TABLE)))
                curs.executemany(
                    SQL(
                        "INSERT INTO {0} AS m (name, value) VALUES (%s, %s) ON CONFLICT (name) "
                        "DO UPDATE SET value = EXCLUDED.value WHERE EXCLUDED.value > m.value"
                    ).format(self._table(_META_TABLE)),
                    list(rows.items()),
                )

        def topics_after(self, position: int) -> dict[str, int]:
            rows = self._select(
                SQL(
                    "SELECT topic, MAX(notification_id) AS last FROM {0} "
                    "WHERE notification_id > %s GROUP BY topic"
                ).format(self._table(self.events_table_name)),
                (position,),
            )
            return {str(r["topic"]): int(r["last"]) for r in rows}

        def global_range(self, start: int, stop: int) -> list[tuple[int, str]]:
            rows = self._select(
                SQL(
                    "SELECT position, hash FROM {0} WHERE position BETWEEN %s AND %s "
                    "ORDER BY position"
                ).format(self._table(_GLOBAL_TABLE)),
                (start, stop),
            )
            return [(int(r["position"]), str(r["hash"])) for r in rows]

        def global_after(self, position: int) -> list[tuple[int, str]]:
            rows = self._select(
                SQL("SELECT position, hash FROM {0} WHERE position > %s ORDER BY position").format(
                    self._table(_GLOBAL_TABLE)
                ),
                (position,),
            )
            return [(int(r["position"]), str(r["hash"])) for r in rows]

        def adoption(self) -> Adoption | None:
            import psycopg

            try:
                rows = self._select(
                    SQL("SELECT through, adopted, at FROM {0}").format(
                        self._table(_ADOPTION_TABLE)
                    ),
                    (),
                )
            except (psycopg.Error, PersistenceError):
                return None  # a store no writer of this version has opened yet
            if not rows:
                return None
            return Adoption(int(rows[0]["through"]), int(rows[0]["adopted"]), str(rows[0]["at"]))

        def adopt(self, content_of: Any, at: str) -> Adoption:
            table = self._table(_ADOPTION_TABLE)
            with self.datastore.transaction(commit=True) as curs:
                # Writers are held off by the events table's lock (the one they take), so no
                # event is recorded between the read and the adoption's rows.
                self._lock_table(curs)
                curs.execute(
                    SQL(
                        "INSERT INTO {0} (id, through, adopted, at) VALUES (1, 0, 0, %s) "
                        "ON CONFLICT (id) DO NOTHING"
                    ).format(table),
                    (at,),
                )
                if curs.rowcount == 1:
                    curs.execute(
                        SQL(
                            "SELECT notification_id, originator_id, originator_version, topic, "
                            "state FROM {0} ORDER BY notification_id"
                        ).format(self._table(self.events_table_name))
                    )
                    notifications = [
                        _Stored(
                            int(r["notification_id"]),
                            _uuid(r["originator_id"]),
                            int(r["originator_version"]),
                            str(r["topic"]),
                            bytes(r["state"]),
                        )
                        for r in curs.fetchall()
                    ]
                    curs.execute(
                        SQL("SELECT originator_id, originator_version, hash FROM {0}").format(
                            self._table(_CHAIN_TABLE)
                        )
                    )
                    recorded = {
                        (_uuid(r["originator_id"]), int(r["originator_version"])): str(r["hash"])
                        for r in curs.fetchall()
                    }
                    missing, global_ = adoption_rows(notifications, recorded, content_of)
                    if missing:
                        curs.executemany(
                            SQL(
                                "INSERT INTO {0} (originator_id, originator_version, hash) "
                                "VALUES (%s, %s, %s)"
                            ).format(self._table(_CHAIN_TABLE)),
                            missing,
                        )
                    if global_:
                        curs.executemany(
                            SQL("INSERT INTO {0} (position, hash) VALUES (%s, %s)").format(
                                self._table(_GLOBAL_TABLE)
                            ),
                            global_,
                        )
                    through = notifications[-1].id if notifications else 0
                    curs.execute(
                        SQL("UPDATE {0} SET through = %s, adopted = %s WHERE id = 1").format(table),
                        (through, len(missing)),
                    )
                curs.execute(SQL("SELECT through, adopted, at FROM {0}").format(table))
                row = curs.fetchone()
            if row is None:  # inserted above in this transaction, or by another adopter
                raise IntegrityError("the chain adoption row is missing")
            return Adoption(int(row["through"]), int(row["adopted"]), str(row["at"]))

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
# The writers' gate: a command that keeps losing races gets the store to itself for a moment

#: The PostgreSQL advisory-lock key of the gate (any fixed number; distinct from CREATE_LOCK).
GATE_LOCK = 0x6D61_746F_6D65_0001


class _ReadWriteLock:
    """An in-process lock held shared by many or exclusive by one, preferring the exclusive:
    once an exclusive holder waits, new shared holders wait behind it (else a steady stream
    of short shared holds would starve it — the very thing the gate is for)."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._shared = 0
        self._exclusive = False
        self._waiting = 0

    @contextlib.contextmanager
    def shared(self) -> Iterator[None]:
        with self._cond:
            while self._exclusive or self._waiting:
                self._cond.wait()
            self._shared += 1
        try:
            yield
        finally:
            with self._cond:
                self._shared -= 1
                self._cond.notify_all()

    @contextlib.contextmanager
    def exclusive(self) -> Iterator[None]:
        with self._cond:
            self._waiting += 1
            try:
                while self._exclusive or self._shared:
                    self._cond.wait()
            finally:
                self._waiting -= 1
            self._exclusive = True
        try:
            yield
        finally:
            with self._cond:
                self._exclusive = False
                self._cond.notify_all()


class WriterGate:
    """Every write of events passes the gate *shared*; a command that lost the race to save
    several times in a row passes it *exclusive* for its next attempt — read, decide and save
    — so that nobody can write in between and it cannot lose again.

    Optimistic saves alone can starve a command that reads much: a regulation reads every
    Passport ID and subscription of its line, and under a steady stream of purchases on that
    line one of them always lands between its read and its save.  A fraud stop that never
    lands is the worst outcome a billing engine can have; holding the other writers back for
    one command is cheap beside it.  The gate spans threads (an in-process lock) and, through
    the store, processes (see the subclasses).  A thread holding it exclusive writes without
    the shared part, so its own save does not wait for itself.
    """

    def __init__(self) -> None:
        self._lock = _ReadWriteLock()
        self._local = threading.local()

    def held(self) -> bool:
        """Whether this thread holds the gate exclusive."""
        return bool(getattr(self._local, "held", False))

    @contextlib.contextmanager
    def exclusive(self) -> Iterator[None]:
        if self.held():
            yield
            return
        with self._lock.exclusive(), self._across_processes(exclusive=True):
            self._local.held = True
            try:
                yield
            finally:
                self._local.held = False

    @contextlib.contextmanager
    def shared(self) -> Iterator[None]:
        if self.held():
            yield
            return
        with self._lock.shared(), self._across_processes(exclusive=False):
            yield

    def _across_processes(self, *, exclusive: bool) -> contextlib.AbstractContextManager[None]:
        return contextlib.nullcontext()


class _OpenFile:
    """A file descriptor closed when the thread that kept it ends (its thread-local storage
    is dropped) — or, inherited by a forked child, left to the parent."""

    def __init__(self, fd: int) -> None:
        self.fd = fd
        self.pid = os.getpid()

    def __del__(self) -> None:
        if self.pid == os.getpid():
            with contextlib.suppress(OSError):
                os.close(self.fd)


class FileGate(WriterGate):
    """The gate of a SQLite file store: an ``flock`` on a file beside the database, so that
    processes sharing the store share the gate."""

    def __init__(self, path: str) -> None:
        super().__init__()
        self.path = path
        self._files = threading.local()

    def _open(self) -> int:
        return os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)

    def _shared_file(self) -> int:
        # flock locks belong to an open file: each thread keeps its own (opened once, not
        # per write), so threads exclude each other as processes do.  A forked child opens
        # its own rather than share its parent's.
        held: _OpenFile | None = getattr(self._files, "file", None)
        if held is None or held.pid != os.getpid():
            held = self._files.file = _OpenFile(self._open())
        return held.fd

    @contextlib.contextmanager
    def _across_processes(self, *, exclusive: bool) -> Iterator[None]:
        if exclusive:
            fd = self._open()
            try:
                fcntl.flock(fd, fcntl.LOCK_EX)
                yield
            finally:
                os.close(fd)  # releases the lock
            return
        fd = self._shared_file()
        fcntl.flock(fd, fcntl.LOCK_SH)
        try:
            yield
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)


class PostgresGate(WriterGate):
    """The gate of a PostgreSQL store: an advisory lock.  The exclusive side holds it on a
    connection of its own for the attempt; the shared side is taken inside each write's
    transaction by the recorder (``pg_advisory_xact_lock_shared``), so it costs no round
    trip.  PostgreSQL queues a shared request behind a waiting exclusive one."""

    def __init__(self, datastore: Any) -> None:
        super().__init__()
        self.datastore = datastore

    @contextlib.contextmanager
    def _across_processes(self, *, exclusive: bool) -> Iterator[None]:
        if not exclusive:
            yield  # taken by the recorder, in the write's own transaction
            return
        with self.datastore.get_connection() as conn:
            conn.execute("SELECT pg_advisory_lock(%s)", (GATE_LOCK,))
            try:
                yield
            finally:
                conn.execute("SELECT pg_advisory_unlock(%s)", (GATE_LOCK,))


# ---------------------------------------------------------------------------------------------
# Infrastructure factories: connection pools sized for threads, safe parallel start-up


class SQLiteFactory(eventsourcing.sqlite.Factory):
    """eventsourcing's SQLite factory, with the connection pool sized and timed by matome's
    settings (``SQLITE_POOL_SIZE``, ``SQLITE_MAX_OVERFLOW``, ``SQLITE_POOL_TIMEOUT``): the
    library's 5-second pool timeout made busy threads fail with a pool error instead of
    waiting their turn for SQLite's one writer."""

    def __init__(self, env: Environment | Mapping[str, str] | None) -> None:
        super().__init__(env)
        old = self.datastore
        self.datastore = eventsourcing.sqlite.SQLiteDatastore(
            db_name=self.env.get(self.SQLITE_DBNAME) or "",
            lock_timeout=int(self.env.get(self.SQLITE_LOCK_TIMEOUT) or 30),
            pool_size=int(self.env.get("SQLITE_POOL_SIZE") or 8),
            max_overflow=int(self.env.get("SQLITE_MAX_OVERFLOW") or 32),
            pool_timeout=float(self.env.get("SQLITE_POOL_TIMEOUT") or 60),
            single_row_tracking=old.single_row_tracking,
            originator_id_type=old.originator_id_type,
        )
        old.close()


# ---------------------------------------------------------------------------------------------
# 3. The application: wiring and saving


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
            self._pool_shared = not schema or bool(_SCHEMA.fullmatch(schema))
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
    ) -> None:
        """Record ``events`` in one transaction; fail with ``IntegrityError`` if a stream they
        write, or a stream in ``read_versions`` (stream → version read), has moved.

        With them, in the same transaction: each event's link in its stream's hash chain, the
        personal values kept apart from the events, and — for an erasure — the deletion of a
        Passport ID's personal values (and the redaction of clear values written before 0.2);
        ``position`` records how far a command log was applied, with the command it applied.
        """
        if not events:
            return
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
            self.recorder.insert_events(
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
                    f"{describe(self.store_settings)}: {problem}; matome {_version()} "
                    "does not write to it (use the newer matome)"
                )
            self._writable = True

    def _newer_writer(self) -> str | None:
        """Why a newer matome has this store, or ``None`` (then record this one's marks)."""
        recorder = self.matome_recorder
        meta = recorder.store_meta()
        found = meta.get("format", 0)
        if found > STORE_FORMAT:
            return f"it was written by a newer matome (store format {found}, not {STORE_FORMAT})"
        for name, version in sorted(meta.items()):
            if name.startswith("event:"):
                problem = _unknown(name.removeprefix("event:"), version)
                if problem is not None:
                    return f"a newer matome wrote to it ({problem})"
        # Events recorded since the last check (by any matome, or put there by hand): their
        # kinds, and the class version of the newest of each kind.
        checked = meta.get("checked_through", 0)
        newest = recorder.topics_after(checked)
        for topic, position in sorted(newest.items()):
            if topic not in EVENT_TOPICS:
                return f"it holds events this matome does not know ({_unknown(topic, 1)})"
            stored = self.recorder.select_notifications(start=position, limit=1)
            version = self.event_mapper.stored_state(stored[0]).get("class_version", 1)
            problem = _unknown(topic, version)
            if problem is not None:
                return f"it holds events newer than this matome ({problem})"
        marks = {"format": STORE_FORMAT, f"matome:{_version()}": STORE_FORMAT}
        marks["checked_through"] = max([checked, *newest.values()])
        marks.update({f"event:{t}": cls.class_version for t, cls in EVENT_TOPICS.items()})
        recorder.raise_store_meta(marks)
        return None

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
        current: dict[UUID, int] = {}
        for stream in read_versions:
            last = self.recorder.select_events(stream, desc=True, limit=1)
            current[stream] = last[0].originator_version if last else 0
        raise_if_stale(read_versions, current)

    def _links(self, encoded: Sequence[Encoded]) -> list[ChainRow]:
        """Each event's hash, chained to the previous event of its stream.

        A stream whose previous event was written before matome 0.2 (no hash) is chained to
        the hash of its whole earlier history, computed from the stored events: the first new
        event seals the old ones.
        """
        first: dict[UUID, int] = {}
        for x in encoded:
            stream = _uuid(x.stored.originator_id)
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
            stream = _uuid(x.stored.originator_id)
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


def _version() -> str:
    """matome's version as installed (the package's root imports this module: not from it)."""
    try:
        return importlib.metadata.version("matome")
    except importlib.metadata.PackageNotFoundError:
        return "unknown"


def _unknown(topic: str, version: Any) -> str | None:
    """What this matome does not know about events of ``topic`` at class ``version``."""
    cls = EVENT_TOPICS.get(topic)
    if cls is None:
        return f"event {topic[:80]!r}"
    if type(version) is not int or version > cls.class_version:
        return f"{topic} at class version {version!r}, this matome knows {cls.class_version}"
    return None


@attrs.frozen
class _Stored:
    """A stored event with its log position, as the adoption reads it."""

    id: int
    originator_id: UUID
    originator_version: int
    topic: str
    state: bytes


def _uuid(value: Any) -> UUID:
    return value if isinstance(value, UUID) else UUID(str(value))


# ---------------------------------------------------------------------------------------------
# Store settings

#: The default store: an SQLite file in the working directory.
DEFAULT_DB = "matome.sqlite"
#: Names of the in-memory store (eventsourcing's POPO recorders), for tests and dry runs.
MEMORY = (":memory:", "memory:", "popo:")


def cipher_env(key: str | None) -> dict[str, str]:
    """Settings for encryption at rest with AES-GCM (eventsourcing's cipher, the
    ``cryptography`` package): ``key`` is 16, 24 or 32 random bytes in base64, or ``None``
    (``MATOME_CIPHER_KEY``, or no encryption)."""
    key = key or os.environ.get("MATOME_CIPHER_KEY")
    if not key:
        return {}
    try:
        size = len(base64.b64decode(key, validate=True))
    except ValueError:
        raise InvalidInput("the cipher key must be base64 (matome keygen makes one)") from None
    if size not in (16, 24, 32):
        raise InvalidInput(f"the cipher key must be 16, 24 or 32 bytes, not {size}")
    return {"CIPHER_TOPIC": "eventsourcing.cryptography:AESCipher", "CIPHER_KEY": key}


def store_env(db: str | None = None) -> dict[str, str]:
    """The settings of the store named by ``db`` (matome's own: the process environment is
    read for ``MATOME_*`` variables only).

    ``db`` is, in order of preference, the argument, the ``MATOME_DB`` environment variable, or
    ``matome.sqlite``.  It may be a file path (SQLite), ``:memory:`` (in-process, nothing kept),
    or a ``postgresql://user:password@host:port/dbname?schema=name&connect_timeout=5`` URL.
    """
    db = db or os.environ.get("MATOME_DB") or DEFAULT_DB
    if db in MEMORY:
        return {"PERSISTENCE_MODULE": "eventsourcing.popo"}
    if db.startswith(("postgresql://", "postgres://")):
        return _postgres_env(db)
    if "://" in db:
        raise InvalidSetting(f"store {db!r}: use a file path, :memory: or a postgresql:// URL")
    return {
        "PERSISTENCE_MODULE": "matome.application.eventstore:SQLiteFactory",
        "SQLITE_DBNAME": db,
        "APPLICATION_RECORDER_TOPIC": "matome.application.eventstore:SQLiteRecorder",
        # Writers queue for the database lock rather than fail at once.
        "SQLITE_LOCK_TIMEOUT": os.environ.get("MATOME_SQLITE_LOCK_TIMEOUT", "30"),
        "SQLITE_POOL_TIMEOUT": os.environ.get("MATOME_SQLITE_POOL_TIMEOUT", "60"),
    }


def check_store(settings: Mapping[str, str]) -> None:
    """Refuse, before anything is created, to open a store that does not exist: only the
    commands that write a history (``run``, ``demo``) create one — a mistyped ``--db`` path
    must not silently answer ``unknown_line`` from a new empty database."""
    if store_kind(settings) != "sqlite":
        return
    path = settings["SQLITE_DBNAME"]
    if not os.path.exists(path):
        raise StoreNotFound(f"there is no store at {path} (matome run or matome demo creates one)")
    if os.path.isdir(path):
        raise StoreUnavailable(f"{path} is a directory, not a matome store")
    if os.path.getsize(path) == 0:
        # SQLite would take an empty file for an empty database and write its tables into
        # it: a read command must leave a file that holds no store as it found it.
        raise StoreNotFound(f"{path} is an empty file, not a matome store")


def _sqlite_directory_problem(path: str) -> str | None:
    """Why SQLite cannot open ``path`` when the cause is its directory: SQLite needs to
    write its journal files (WAL) beside the database, for reads too."""
    folder = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(folder):
        return f"its directory {folder} does not exist"
    try:
        with tempfile.TemporaryFile(dir=folder):
            pass
    except OSError:
        return (
            f"its directory {folder} is read-only (SQLite writes its journal files beside "
            "the database, for reads too)"
        )
    return None


def translate_store_error(error: BaseException, settings: Mapping[str, str]) -> MatomeError | None:
    """The matome error a failure of the store becomes: one line naming the store and the
    cause (``None``: not a failure of the store)."""
    if isinstance(error, LogPositionTaken):
        # Not a failure: another run of the log got there first (raised, perhaps, while a
        # version conflict was being handled — which the chain below would find).
        return None
    store = describe(settings)
    chain: list[BaseException] = []
    seen: BaseException | None = error
    while seen is not None and seen not in chain:
        chain.append(seen)
        seen = seen.__cause__ or seen.__context__
    text = " | ".join(str(e) for e in chain).lower()
    if (
        any(isinstance(e, ConnectionUnavailableError) for e in chain)
        or "database is locked" in text
    ):
        return Busy(f"{store} is busy (locked by another writer); try again")
    if any(isinstance(e, MapperDeserialisationError) for e in chain):
        cause = "its events cannot be read"
        if "invalidtag" in text or "decrypt" in text or "tag" in text:
            cause = "its events cannot be decrypted: wrong MATOME_CIPHER_KEY?"
        return StoreUnavailable(f"{store}: {cause} ({chain[0]})")
    causes = (
        ("readonly", "it is read-only"),
        ("read-only", "it is read-only"),
        ("disk is full", "the disk is full"),
        ("no space left", "the disk is full"),
        ("file too large", "the file size limit was reached"),
        ("disk i/o error", "a disk I/O error occurred (full disk or file size limit?)"),
        ("file is not a database", "the file is not a database"),
        ("not a database", "the file is not a database"),
        ("unable to open database", "the database file cannot be opened (missing directory?)"),
        # The database or role named in the settings, not some other object ("prepared
        # statement ... does not exist" is a driver fault, reported with its own text).
        ('database "', "it does not exist (no such database)"),
        ('role "', "the user does not exist"),
        ('relation "', "it is not a matome store (no event table; schema missing or empty)"),
        ("connection refused", "the server refused the connection"),
        ("timeout", "the server did not answer in time"),
        ("timed out", "the server did not answer in time"),
        ("could not translate host", "the host name is unknown"),
        ("password authentication failed", "the password was refused"),
        ("no such table", "it is not a matome store"),
    )
    store_failure = any(
        isinstance(e, PersistenceError | sqlite3.Error | OSError)
        or type(e).__module__.startswith("psycopg")
        for e in chain
    )
    if not store_failure:
        return None
    if "pooltimeout" in text or "couldn't get a connection" in text or "pool initial" in text:
        text += " | " + _postgres_diagnosis(settings).lower()
    if "unable to open database" in text and store_kind(settings) == "sqlite":
        problem = _sqlite_directory_problem(settings["SQLITE_DBNAME"])
        if problem is not None:
            return StoreUnavailable(f"{store}: {problem}")
    for needle, cause in causes:
        if needle in text and (not needle.endswith('"') or "does not exist" in text):
            return StoreUnavailable(f"{store}: {cause}")
    # The driver's own words, first line only (PostgreSQL adds the SQL and a caret below).
    detail = (str(chain[-1]).strip().splitlines() or [""])[0]
    return StoreUnavailable(f"{store}: {chain[-1].__class__.__name__}: {detail}")


def _postgres_diagnosis(settings: Mapping[str, str]) -> str:
    """Why a PostgreSQL server gives no connection (the pool only says it timed out)."""
    if store_kind(settings) != "postgres":
        return ""
    try:
        import psycopg

        with psycopg.connect(
            dbname=settings["POSTGRES_DBNAME"],
            host=settings["POSTGRES_HOST"],
            port=int(settings["POSTGRES_PORT"]),
            user=settings["POSTGRES_USER"],
            password=settings.get("POSTGRES_PASSWORD") or None,
            connect_timeout=int(settings.get("POSTGRES_CONNECT_TIMEOUT", "5")),
        ):
            return ""
    except Exception as e:
        return str(e)


def store_kind(settings: Mapping[str, str]) -> str:
    """``sqlite``, ``postgres`` or ``memory``: the kind of store ``settings`` name."""
    module = settings.get("PERSISTENCE_MODULE", "")
    if "sqlite" in module.lower():
        return "sqlite"
    if "postgres" in module.lower():
        return "postgres"
    return "memory"


def describe(settings: Mapping[str, str]) -> str:
    """The store as a person names it (no password)."""
    kind = store_kind(settings)
    if kind == "sqlite":
        return f"SQLite store {settings['SQLITE_DBNAME']}"
    if kind == "postgres":
        schema = settings.get("POSTGRES_SCHEMA", "public")
        return (
            f"PostgreSQL store {settings['POSTGRES_USER']}@{settings['POSTGRES_HOST']}:"
            f"{settings['POSTGRES_PORT']}/{settings['POSTGRES_DBNAME']} (schema {schema})"
        )
    return "in-memory store"


def _redacted(url: str) -> str:
    """``url`` with any password between ``:`` and ``@`` masked (secrets are never echoed)."""
    return re.sub(r"(//[^:/@]*:)[^@]*@", r"\1***@", url)


#: The parameters a ``postgresql://`` URL may carry.  Any other is refused, never ignored: a
#: mistyped ``?schmea=billing`` would otherwise send every write to ``public``.
_URL_PARAMETERS = ("schema", "connect_timeout", "pool_size", "max_overflow")
#: A schema name matome puts in SQL: a plain PostgreSQL identifier (letters, digits and
#: ``_``, not starting with a digit, at most 63 bytes — NAMEDATALEN - 1; ``pg_`` is the
#: server's own prefix).
_SCHEMA = re.compile(r"(?!pg_)[A-Za-z_][A-Za-z0-9_]{0,62}", flags=re.ASCII)


def _postgres_env(url: str) -> dict[str, str]:
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as e:  # an unclosed "[", a port out of range or not a number
        raise InvalidSetting(f"store URL {_redacted(url)!r} is malformed: {e}") from None
    try:
        # Blank values are kept (``?schema=`` is a mistake to report, not to drop).
        query = parse_qs(parts.query, keep_blank_values=True, strict_parsing=bool(parts.query))
    except ValueError:
        raise InvalidSetting(
            f"store URL: the query {parts.query[:80]!r} is not name=value pairs joined by &"
        ) from None
    if parts.fragment:
        raise InvalidSetting("store URL: a '#' part means nothing to matome")
    unknown = sorted(set(query) - set(_URL_PARAMETERS))
    if unknown:
        raise InvalidSetting(
            f"store URL: unknown parameter {unknown[0][:40]!r} (matome knows "
            f"{', '.join(_URL_PARAMETERS)})"
        )
    for name, values in query.items():
        if len(values) > 1:
            raise InvalidSetting(f"store URL: {name} is given {len(values)} times")
    for name, least in (("pool_size", 1), ("max_overflow", 0), ("connect_timeout", 1)):
        for value in query.get(name, []):
            if not value.isdigit() or int(value) < least:
                raise InvalidSetting(
                    f"store URL: {name} must be a whole number of at least {least}, got {value!r}"
                )
    for value in query.get("schema", []):
        if not _SCHEMA.fullmatch(value):
            raise InvalidSetting(
                f"store URL: schema {value[:80]!r} is not a plain PostgreSQL identifier "
                "(letters, digits and _, not starting with a digit or pg_, at most 63)"
            )
    dbname = unquote(parts.path.lstrip("/")) or "postgres"
    env = {
        "PERSISTENCE_MODULE": "eventsourcing.postgres",
        "APPLICATION_RECORDER_TOPIC": "matome.application.eventstore:PostgresRecorder",
        "POSTGRES_DBNAME": dbname,
        "POSTGRES_HOST": parts.hostname or "127.0.0.1",
        "POSTGRES_PORT": str(port or 5432),
        "POSTGRES_USER": unquote(parts.username or "postgres"),
        "POSTGRES_PASSWORD": unquote(parts.password or ""),
        # Writers wait for the table lock a bounded time, then the unit of work retries.
        "POSTGRES_LOCK_TIMEOUT": "10",
        # A server that does not answer is reported in seconds, not after a 30-second hang.
        "POSTGRES_CONNECT_TIMEOUT": query.get(
            "connect_timeout", [os.environ.get("MATOME_PG_CONNECT_TIMEOUT", "5")]
        )[0],
        # Connections kept open, and how many more a busy process may open: one at start,
        # so that many processes starting together do not exhaust the server's
        # max_connections (eventsourcing opens pool_size connections up front).
        "POSTGRES_POOL_SIZE": query.get("pool_size", ["1"])[0],
        "POSTGRES_MAX_OVERFLOW": query.get("max_overflow", ["15"])[0],
    }
    if "schema" in query:
        env["POSTGRES_SCHEMA"] = query["schema"][0]
    return env
