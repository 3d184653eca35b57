"""Immutable aggregates rebuilt by pure projector functions (eventsourcing's protocol style).

An aggregate module registers, for each event class, a pure function
``(state | None, event) -> state`` with its :class:`Appliers` decorator.  Appliers never read
a clock, draw an id, validate or do I/O — all of that happened in the command that decided the
event — so replaying old events always rebuilds the same state.
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
    "Appliers",
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


#: The projector of each event class's aggregate (filled as appliers are registered).
_PROJECTORS: dict[type[DomainEvent], Projector[Any]] = {}

A = TypeVar("A", bound=Applier)


def projector_of(event_class: type[DomainEvent]) -> Projector[Any]:
    """The projector of the aggregate whose stream ``event_class`` belongs to."""
    return _PROJECTORS[event_class]


class Appliers:
    """One aggregate's appliers, registered by decorator on each pure function::

        passport_applies = Appliers("Passport")

        @passport_applies(ev.Registered)
        def _registered(_: None, e: ev.Registered) -> Passport: ...

        project_passport = passport_applies.project

    The function and its registry entry are one place.  :attr:`project` is the projector for
    ``Repository.get(projector_func=...)``; it refuses an event with no applier here, and each
    event class is registered once, for one aggregate (:func:`projector_of`).  Insertion order
    does not matter: an event has one applier.
    """

    def __init__(self, aggregate: str) -> None:
        self.aggregate = aggregate
        #: Each event class of the aggregate and its applier.
        self.table: dict[type[DomainEvent], Applier] = {}
        table = self.table

        def project(state: Any, events: Iterable[Any]) -> Any:
            for event in events:
                try:
                    apply = table[type(event)]
                except KeyError:
                    raise TypeError(
                        f"{type(event).__name__} does not belong to this aggregate"
                    ) from None
                state = apply(state, event)
            return state

        self.project: Projector[Any] = project

    def __call__(self, *event_classes: type[DomainEvent]) -> Callable[[A], A]:
        """Register the decorated function as the applier of each of ``event_classes``."""

        def register(applier: A) -> A:
            for event_class in event_classes:
                if event_class in _PROJECTORS or event_classes.count(event_class) > 1:
                    raise RuntimeError(
                        f"{event_class.__name__} has two appliers (or belongs to two aggregates)"
                    )
            for event_class in event_classes:
                self.table[event_class] = applier
                _PROJECTORS[event_class] = self.project
            return applier

        return register


def make_projector(appliers: dict[type[DomainEvent], Applier]) -> Projector[Any]:
    """A projector function for ``Repository.get(projector_func=...)`` from a table of
    appliers; each is registered as with :class:`Appliers` (which the aggregates use)."""
    registry = Appliers("")
    for event_class, applier in appliers.items():
        registry(event_class)(applier)
    return registry.project
