"""The mapper: matome's events to eventsourcing's stored events and back.

Why its own module: matome's events are attrs classes whose wire format the one cattrs
converter owns; they are *structured* — validated — when loaded, with the classes' upcasters
(``class_version``) applied first.  eventsourcing's ``Mapper`` is the library's public
extension point for exactly that.  Personal values leave the event here (a reference and a
salted digest take their place, :mod:`matome.application._vault`); eventsourcing's compressor
and cipher (``COMPRESSOR_TOPIC``, ``CIPHER_TOPIC``; :func:`matome.application._settings.
cipher_env`) still apply to the JSON bytes, in :meth:`EventMapper.seal` and
:meth:`EventMapper.state_of`.
"""

from __future__ import annotations

import base64
import functools
import hashlib
import secrets
import types
import typing
from collections.abc import Callable, Mapping
from typing import Any
from uuid import UUID

import attrs
from cattrs import BaseConverter
from cattrs.fns import identity
from cattrs.gen import make_dict_unstructure_fn, override
from eventsourcing.persistence import Mapper, MapperDeserialisationError, StoredEvent

from matome.application._keyring import Keyring, PersonalDataLocked
from matome.application._vault import PersonalRow, Vault, personal_fields, subject_of
from matome.events.base import EVENT_TOPICS, DomainEvent
from matome.values import canonical_json_bytes
from matome.wire import converter, dumps, loads

_ENVELOPE = ("originator_id", "originator_version")
#: The JSON values a union-typed field's value is most often (see :func:`_union_hook`).
_PLAIN: tuple[type[Any], ...] = (str, int, bool, type(None))


def event_to_json(event: DomainEvent) -> dict[str, Any]:
    """An event's state as the converter writes it (without the stream position, which the
    store keeps); a class at ``class_version`` N > 1 records N, so that a later version knows
    which of its upcasters to apply."""
    cls = type(event)
    fn = _STATE_FNS.get(cls)
    if fn is None:
        fn = _STATE_FNS[cls] = _state_fn(cls)
    return fn(event)


def converter_state(event: DomainEvent) -> dict[str, Any]:
    """:func:`event_to_json` the long way: the converter's whole unstructure of the event, the
    envelope deleted (what the compiled functions must equal, tests/unit/test_canonical_json.py)."""
    state: dict[str, Any] = converter.unstructure(event)
    for name in _ENVELOPE:
        del state[name]
    if type(event).class_version > 1:
        state["class_version"] = type(event).class_version
    return state


#: The compiled state function of each event class (:func:`_state_fn`).
_STATE_FNS: dict[type[Any], Callable[[Any], dict[str, Any]]] = {}


def _state_fn(cls: type[DomainEvent]) -> Callable[[Any], dict[str, Any]]:
    """The state of a ``cls`` event in one call: the converter's own generated function for the
    class, with the same field hooks, but the envelope left out (not written then deleted,
    which cost a UUID's text per event) and no dispatch on the class.  A class with a hook of
    its own in the converter (none so far) keeps the long way."""
    own = converter.get_unstructure_hook(cls)
    if getattr(own, "__name__", "") != f"unstructure_{cls.__name__}":
        return converter_state
    hints = typing.get_type_hints(cls)
    overrides: dict[str, Any] = {name: override(omit=True) for name in _ENVELOPE}
    for a in attrs.fields(cls):
        hook = _union_hook(hints.get(a.name))
        if hook is not None:
            overrides[a.name] = override(unstruct_hook=hook)
    made = make_dict_unstructure_fn(cls, converter, **overrides)
    version = cls.class_version
    if version == 1:
        return made

    def with_version(event: Any) -> dict[str, Any]:
        state = made(event)
        state["class_version"] = version
        return state

    return with_version


def _union_hook(kind: Any) -> Callable[[Any], Any] | None:
    """For a field of a union type other than ``X | None`` (which the converter already writes
    through ``X``'s hook): the converter's own union hook dispatches on the value's class at
    every call; this one answers the plain JSON values (a string, a number, ``None``: the
    converter's hook for them is the identity) at once and hands the rest to the same
    dispatch."""
    if not isinstance(kind, types.UnionType):
        return None
    own = converter.get_unstructure_hook(kind)
    if getattr(own, "__func__", None) is not BaseConverter._unstructure_union:
        return None  # a hook of its own (a billing account's) or cattrs' optional one
    plain = frozenset(t for t in _PLAIN if converter.get_unstructure_hook(t) is identity)
    unstructure = converter.unstructure

    def union(value: Any) -> Any:
        return value if value.__class__ in plain else unstructure(value)

    return union


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


@functools.cache
def _topic_line(topic: str) -> bytes:
    """The first line of an event's hashed content (:func:`~matome.application._chains.
    content_hash`): its topic."""
    return f"{topic}\n".encode()


@attrs.frozen
class Encoded:
    """An event as it is about to be stored: its record, its (pre-cipher) state, the personal
    values kept apart, and its content hash."""

    stored: StoredEvent
    state: dict[str, Any]
    personal: tuple[PersonalRow, ...]
    content: str


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
            rows.append(PersonalRow(ref, subject_of(domain_event, name, subject), data, salt))
            if self.vault is None:
                if self._memory is None:
                    self._memory = {}
                self._memory[ref] = data
        text = canonical_json_bytes(state)
        # The content hash is over the same canonical text (personal values are references by
        # now, which the hash covers), so it costs no second serialisation.
        content = hashlib.sha256(_topic_line(domain_event.TOPIC) + text).hexdigest()
        return Encoded(
            stored=StoredEvent(
                originator_id=domain_event.originator_id,
                originator_version=domain_event.originator_version,
                topic=domain_event.TOPIC,
                state=self._seal_bytes(text),
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
