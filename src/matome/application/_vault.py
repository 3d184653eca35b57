"""Personal data kept apart from the events: which fields are personal, how a stored event
refers to a value kept apart, the row that value lives in, and the reader of those rows.

Why apart: an erasure deletes the value — and destroys its subject's data key
(:mod:`matome.application._keyring`) — without touching the event, so no stored event is
rewritten and no hash chain breaks.  The mapper puts a reference and a salted digest in the
event (:mod:`matome.application._mapper`), the recorders keep the rows in the write's
transaction (:mod:`matome.application._recorder` and the backends), and the chains leave clear
values of events older than matome 0.2 out of the hash (:mod:`matome.application._chains`).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol

import attrs

from matome.events.base import DomainEvent

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


#: A personal value as an event stores it once erased.
ERASED = {"erased": True}


def subject_of(event: DomainEvent, name: str, default: str) -> str:
    """The subject of the personal field ``name``: the value of the field its metadata names
    (``events.base.personal(subject=...)``), else ``default``."""
    field = attrs.fields_dict(type(event))[name]
    named = field.metadata.get("subject")
    value = None if named is None else getattr(event, named)
    return default if value is None else str(value)


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


class Vault(Protocol):
    """Reads personal values kept apart from their events (``None``: erased)."""

    def vault_get(self, refs: Sequence[str]) -> dict[str, PersonalRow]: ...
