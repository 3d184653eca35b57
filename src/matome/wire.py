"""The one wire format: a single cattrs ``Converter`` owns how events and documents become JSON.

It is wired into eventsourcing through :class:`EventMapper`, a custom ``Mapper`` that
unstructures events on save and *structures* them on load, so every attrs validator runs again
when history is read back (the default Mapper rebuilds objects without running validators, see
``shared/notes/eventsourcing.md``).
"""

from __future__ import annotations

import json
from datetime import date, datetime
from enum import StrEnum
from typing import Any
from uuid import UUID

import cattrs
from eventsourcing.persistence import Mapper, MapperDeserialisationError, StoredEvent

from matome.errors import InvalidInput
from matome.events.base import EVENT_TOPICS, DomainEvent
from matome.values import (
    AccessKey,
    BillingAccount,
    CustomerId,
    Email,
    PassportId,
    Password,
    ProviderCode,
    ServiceCode,
    YearMonth,
    Yen,
    billing_from_json,
    billing_to_json,
    require_aware,
)

__all__ = ["EventMapper", "converter", "dumps", "event_from_json", "event_to_json", "loads"]

_TEXT_TYPES: tuple[type[Any], ...] = (CustomerId, PassportId, ProviderCode, ServiceCode, Email)


def _structure_datetime(value: Any, _: type[Any]) -> datetime:
    if isinstance(value, datetime):
        return require_aware(value)
    if not isinstance(value, str):
        raise InvalidInput(f"time must be an ISO-8601 string, got {value!r}")
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        raise InvalidInput(f"time {value!r} is not ISO-8601") from None
    return require_aware(parsed, f"time {value!r}")


def _structure_date(value: Any, _: type[Any]) -> date:
    try:
        return date.fromisoformat(value)
    except (TypeError, ValueError):
        raise InvalidInput(f"date {value!r} is not YYYY-MM-DD") from None


def _structure_uuid(value: Any, _: type[Any]) -> UUID:
    return value if isinstance(value, UUID) else UUID(value)


def _refuse_secret(value: Any, _: type[Any] | None = None) -> Any:
    raise TypeError("secrets are never serialised")


def _exact(kind: type[Any]) -> Any:
    # Stored JSON is read strictly: a corrupted "false" must not load as True, nor 2.7 as 2.
    def structure(value: Any, _: type[Any]) -> Any:
        if type(value) is not kind:
            raise TypeError(f"expected {kind.__name__}, got {value!r}")
        return value

    return structure


def _structure_enum(value: Any, enum: type[StrEnum]) -> StrEnum:
    if type(value) is not str:
        raise TypeError(f"expected a {enum.__name__} value, got {value!r}")
    return enum(value)


def make_converter() -> cattrs.Converter:
    """Build the converter (exposed so tests can check it is the only one)."""
    conv = cattrs.Converter()
    conv.register_structure_hook(bool, _exact(bool))
    conv.register_structure_hook(int, _exact(int))
    conv.register_structure_hook(str, _exact(str))
    # Enums are str subclasses: the more specific hook wins for them.
    conv.register_structure_hook(StrEnum, _structure_enum)
    conv.register_unstructure_hook(datetime, lambda dt: dt.isoformat())
    conv.register_structure_hook(datetime, _structure_datetime)
    conv.register_unstructure_hook(date, lambda d: d.isoformat())
    conv.register_structure_hook(date, _structure_date)
    conv.register_unstructure_hook(UUID, str)
    conv.register_structure_hook(UUID, _structure_uuid)
    for cls in _TEXT_TYPES:
        conv.register_unstructure_hook(cls, lambda v: v.value)
        conv.register_structure_hook(cls, lambda v, t: t(v))
    conv.register_unstructure_hook(Yen, lambda y: y.amount)
    conv.register_structure_hook(Yen, lambda v, _: Yen(v))
    conv.register_unstructure_hook(YearMonth, str)
    conv.register_structure_hook(YearMonth, lambda v, _: YearMonth.parse(v))
    conv.register_unstructure_hook(BillingAccount, billing_to_json)
    conv.register_structure_hook(BillingAccount, lambda v, _: billing_from_json(v))
    for secret in (Password, AccessKey):
        conv.register_unstructure_hook(secret, _refuse_secret)
        conv.register_structure_hook(secret, _refuse_secret)
    return conv


#: The converter.  Everything matome writes as JSON goes through it.
converter = make_converter()


def dumps(data: Any) -> str:
    """Canonical JSON text: sorted keys, no insignificant white space, UTF-8 kept readable."""
    return json.dumps(data, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def loads(text: str | bytes) -> Any:
    return json.loads(text)


_ENVELOPE = ("originator_id", "originator_version")


def event_to_json(event: DomainEvent) -> dict[str, Any]:
    """An event's stored state (without the stream position, which the store keeps)."""
    state: dict[str, Any] = converter.unstructure(event)
    for name in _ENVELOPE:
        del state[name]
    return state


def event_from_json(
    topic: str, state: dict[str, Any], originator_id: UUID, originator_version: int
) -> DomainEvent:
    """Rebuild and validate an event from its stored state."""
    cls = EVENT_TOPICS[topic]
    state = dict(state, originator_id=originator_id, originator_version=originator_version)
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
