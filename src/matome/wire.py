"""The one wire format: a single cattrs ``Converter`` owns how events and documents become JSON.

Events are stored through it (:mod:`matome.application.eventstore` wires it into
eventsourcing as a custom ``Mapper`` that *structures* events on load, so every attrs validator
runs again when history is read back), documents are printed through it (:func:`to_json`), and
command results are answered through it.
"""

from __future__ import annotations

import hashlib
import json
import operator
from datetime import date, datetime
from enum import StrEnum
from typing import Any, Protocol, TypeVar
from uuid import UUID

import cattrs
import orjson
from cattrs.gen import make_dict_unstructure_fn, override

from matome.documents import Bill, Charge, Statement, StatementRow
from matome.errors import InvalidInput
from matome.values import (
    AccessKey,
    Applicant,
    BillingAccount,
    CustomerId,
    Email,
    Erased,
    PassportId,
    Password,
    ProviderCode,
    ServiceCode,
    YearMonth,
    Yen,
    billing_from_json,
    billing_to_json,
    canonical_json,
    require_aware,
)

__all__ = [
    "bill_digest",
    "canonical_text",
    "converter",
    "dumps",
    "from_json",
    "issued_bill",
    "loads",
    "text_digest",
    "to_json",
]

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


def _structure_personal(value: Any, kind: Any) -> Any:
    if value is None:
        return None
    if isinstance(value, dict) and value.get("erased") is True and len(value) == 1:
        return Erased()
    if isinstance(value, dict):
        return converter.structure(value, Applicant)
    return converter.structure(value, Email)


def _structure_erasable_dict(value: Any, kind: Any) -> Any:
    if isinstance(value, dict) and value.get("erased") is True and len(value) == 1:
        return Erased()
    return converter.structure(value, dict[str, str])


def _structure_erasable_text(value: Any, kind: Any) -> Any:
    if value is None:
        return None
    if isinstance(value, dict) and value.get("erased") is True and len(value) == 1:
        return Erased()
    return converter.structure(value, str)


def make_converter() -> cattrs.Converter:
    """Build the converter (exposed so tests can check it is the only one)."""
    conv = cattrs.Converter()
    conv.register_structure_hook(bool, _exact(bool))
    conv.register_structure_hook(int, _exact(int))
    conv.register_structure_hook(str, _exact(str))
    # Enums are str subclasses: the more specific hook wins for them.
    conv.register_structure_hook(StrEnum, _structure_enum)
    # Hooks that are C callables where they can be (the method, an attrgetter), not lambdas:
    # every event written calls several of them.
    conv.register_unstructure_hook(datetime, datetime.isoformat)
    conv.register_structure_hook(datetime, _structure_datetime)
    conv.register_unstructure_hook(date, lambda d: d.isoformat())
    conv.register_structure_hook(date, _structure_date)
    conv.register_unstructure_hook(UUID, str)
    conv.register_structure_hook(UUID, _structure_uuid)
    for cls in _TEXT_TYPES:
        conv.register_unstructure_hook(cls, operator.attrgetter("value"))
        conv.register_structure_hook(cls, lambda v, t: t(v))
    conv.register_unstructure_hook(Yen, operator.attrgetter("amount"))
    conv.register_structure_hook(Yen, lambda v, _: Yen(v))
    conv.register_unstructure_hook(YearMonth, str)
    conv.register_structure_hook(YearMonth, lambda v, _: YearMonth.parse(v))
    conv.register_unstructure_hook(BillingAccount, billing_to_json)
    conv.register_structure_hook(BillingAccount, lambda v, _: billing_from_json(v))
    # Personal values that may have been erased.
    conv.register_unstructure_hook(Erased, lambda _: {"erased": True})
    for kind in (Email | Erased, Applicant | Erased, Email | Erased | None):
        conv.register_structure_hook(kind, _structure_personal)
    conv.register_structure_hook(dict[str, str] | Erased, _structure_erasable_dict)
    conv.register_structure_hook(str | Erased | None, _structure_erasable_text)
    for secret in (Password, AccessKey):
        conv.register_unstructure_hook(secret, _refuse_secret)
        conv.register_structure_hook(secret, _refuse_secret)
    # Optional members the contract shows only when present: a refund's reason, a statement's
    # Passport ID filter.
    conv.register_unstructure_hook(
        Charge,
        make_dict_unstructure_fn(
            Charge,
            conv,
            reason=override(omit_if_default=True),
            ends_on=override(omit_if_default=True),
        ),
    )
    # A service period's end (§11): absent for a purchase without one, so that every bill
    # issued before contract 3 keeps its exact JSON and digest.
    conv.register_unstructure_hook(
        StatementRow,
        make_dict_unstructure_fn(StatementRow, conv, ends_on=override(omit_if_default=True)),
    )
    conv.register_unstructure_hook(
        Statement,
        make_dict_unstructure_fn(Statement, conv, passport_id=override(omit_if_default=True)),
    )
    return conv


#: The converter.  Everything matome writes as JSON goes through it.
converter = make_converter()


def dumps(data: Any) -> str:
    """Canonical JSON text: sorted keys, no insignificant white space, UTF-8 kept readable
    (:func:`matome.values.canonical_json`)."""
    return canonical_json(data)


def loads(text: str | bytes) -> Any:
    """JSON text matome wrote (stored events, view rows) as Python values.

    Through ``orjson``: about 3× faster than ``json``, which matters when a rebuild or an
    audit reads a whole log.  Input from outside (command logs) is read by
    :mod:`matome.interchange` with ``json`` and its own bounds, never through this function."""
    try:
        return orjson.loads(text)
    except orjson.JSONDecodeError:
        return json.loads(text)  # what orjson refuses (an integer past 64 bits) json reads


T = TypeVar("T")


def to_json(value: Any) -> Any:
    """The contract's JSON form (plain dicts, lists, str, int, bool, None) of a document,
    result or any value the converter knows."""
    return converter.unstructure(value)


def from_json(data: Any, cls: type[T]) -> T:
    """A typed value from its JSON form, validated strictly."""
    return converter.structure(data, cls)


def canonical_text(document: Any) -> str:
    """A document's canonical JSON text: what an issued bill stores, and what its digest is
    the SHA-256 of (:func:`text_digest`)."""
    return canonical_json(converter.unstructure(document))


def text_digest(text: str) -> str:
    """SHA-256 (hex) of a stored text's UTF-8 bytes: an issued bill's ``digest``."""
    return hashlib.sha256(text.encode()).hexdigest()


def bill_digest(bill: Bill) -> str:
    """SHA-256 of a bill's canonical JSON (sorted keys, no insignificant white space): the
    ``digest`` of the bill issued with that content."""
    return text_digest(canonical_text(bill))


class IssuedDocument(Protocol):
    """What :func:`issued_bill` reads of a ``BillIssued``: its stored canonical JSON text."""

    @property
    def document(self) -> str: ...


def issued_bill(event: IssuedDocument) -> Bill:
    """The typed bill of an issued bill event (``BillIssued``), read from the canonical JSON
    text it stores.  The one way to get the document of an issued bill: the event holds the
    text (the bytes its digest covers), never a typed document."""
    return from_json(loads(event.document), Bill)
