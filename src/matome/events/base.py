"""The event envelope shared by every matome event, and the registry of stable topics.

Every event is a frozen attrs class satisfying eventsourcing's ``DomainEventProtocol``
(``originator_id``, ``originator_version``) plus two times:

* ``at`` — **business time**, explicit on every command and event; billing months are computed
  from it in Asia/Tokyo;
* ``timestamp`` — **recorded time**, when the engine decided the event.  Kept for audit
  ("as of recorded time") and never used for billing.

Topics are explicit strings (``matome.<aggregate>.<Event>``), not ``module:QualName``, so classes
can move without breaking stored logs.  Fields marked ``personal`` hold personal data: future
erasure and hash chaining (the audit issue) leave them out of hashed content.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any, ClassVar, TypeVar
from uuid import UUID

import attrs

__all__ = ["EVENT_TOPICS", "DomainEvent", "personal", "topic"]

#: Every event class by its stored topic.
EVENT_TOPICS: dict[str, type[DomainEvent]] = {}

#: Field metadata marking personal data (erasable, never hashed).
PERSONAL = {"personal": True}

T = TypeVar("T", bound="type[DomainEvent]")


def personal(*, subject: str | None = None, **kwargs: Any) -> Any:
    """An attrs field holding personal data (see module docstring).

    ``subject`` names another field of the event whose value is the *subject* of this one:
    the stream whose erasure deletes it (by default the event's own stream, or the class's
    ``PERSONAL_SUBJECT``).  An idempotency key that carried a Passport ID's e-mail names that
    ID, so that ``erase_personal_data`` of the ID deletes what the key kept of it."""
    metadata = PERSONAL if subject is None else {**PERSONAL, "subject": subject}
    return attrs.field(metadata=metadata, **kwargs)


def topic(name: str) -> Callable[[T], T]:
    """Register an event class under a stable topic; a topic may never be registered twice."""

    def register(cls: T) -> T:
        if name in EVENT_TOPICS:
            raise RuntimeError(f"event topic {name!r} is registered twice")
        EVENT_TOPICS[name] = cls
        cls.TOPIC = name
        return cls

    return register


@attrs.frozen(kw_only=True)
class DomainEvent:
    """Base of every matome event (see module docstring)."""

    TOPIC: ClassVar[str] = ""
    #: The shape version of the event class.  A class whose stored shape changes raises it and
    #: gains ``upcast_v<N>_v<N+1>(state)`` static methods that bring older stored states up to
    #: date when they are read (eventsourcing's convention; events are never rewritten).
    class_version: ClassVar[int] = 1

    originator_id: UUID
    originator_version: int
    timestamp: datetime
    at: datetime
