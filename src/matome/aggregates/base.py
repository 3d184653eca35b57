"""Immutable aggregates rebuilt by pure projector functions (eventsourcing's protocol style).

An aggregate module declares ``APPLIERS``: for each event class, a pure function
``(state | None, event) -> state``.  Appliers never read a clock, draw an id, validate or do
I/O — all of that happened in the command that decided the event — so replaying old events
always rebuilds the same state.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from datetime import datetime
from functools import lru_cache
from typing import Any, Protocol, TypeVar
from uuid import UUID, uuid5

from matome.events.base import DomainEvent

__all__ = [
    "NAMESPACE",
    "AggregateState",
    "Projector",
    "make_projector",
    "projector_of",
    "stream_id",
]

#: Namespace of matome's deterministic stream ids (uuid5 of a kind and a natural key).
NAMESPACE = UUID("5f6c1a8e-3c0b-4f55-9a57-6d6174f6d65e")


@lru_cache(maxsize=65_536)
def stream_id(kind: str, key: str) -> UUID:
    """The stream id of an aggregate with a natural key: the same key always names one stream.

    Cached: deriving a uuid5 costs more than the rest of a cached read of the stream.
    """
    return uuid5(NAMESPACE, f"{kind}:{key}")


class AggregateState(Protocol):
    @property
    def id(self) -> UUID: ...

    @property
    def version(self) -> int: ...

    @property
    def last_at(self) -> datetime: ...


S = TypeVar("S")
Applier = Callable[[Any, Any], Any]
Projector = Callable[[S | None, Iterable[Any]], S | None]


#: The projector of each event class's aggregate (filled by :func:`make_projector`).
_PROJECTORS: dict[type[DomainEvent], Projector[Any]] = {}


def projector_of(event_class: type[DomainEvent]) -> Projector[Any]:
    """The projector of the aggregate whose stream ``event_class`` belongs to."""
    return _PROJECTORS[event_class]


def make_projector(appliers: dict[type[DomainEvent], Applier]) -> Projector[Any]:
    """A projector function for ``Repository.get(projector_func=...)``; it is also registered
    as the projector of each of its event classes (:func:`projector_of`)."""

    def project(state: Any, events: Iterable[Any]) -> Any:
        for event in events:
            try:
                apply = appliers[type(event)]
            except KeyError:
                raise TypeError(
                    f"{type(event).__name__} does not belong to this aggregate"
                ) from None
            state = apply(state, event)
        return state

    for event_class in appliers:
        if event_class in _PROJECTORS:
            raise RuntimeError(f"{event_class.__name__} belongs to two aggregates")
        _PROJECTORS[event_class] = project
    return project
