"""The machinery under an engine (``engine.internals``): the store's settings, recorder and
mapper, raw event streams read-only, the views and the credential hasher — for matome's own
tools, tests and benchmarks, outside the version policy (see :mod:`matome.engine`).
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime
from typing import TYPE_CHECKING, cast
from uuid import UUID

from eventsourcing.persistence import ApplicationRecorder, EventStore, Mapper

from matome.credentials import Hasher
from matome.events.base import DomainEvent
from matome.projections.documents import Documents
from matome.projections.runner import Projection
from matome.values import YearMonth

if TYPE_CHECKING:
    from matome._engine_methods import Engine

#: The engine's earlier attributes for the machinery now under :attr:`Engine.internals`: still
#: answered at run time (not listed by ``dir``, unknown to type checkers), removed in 0.3.
_MOVED_TO_INTERNALS = frozenset(
    {
        "events",
        "forget_cached_states",
        "hasher",
        "mapper",
        "recorder",
        "run_billing",
        "store_settings",
        "views",
    }
)


class ReadOnlyEvents:
    """Reading a stream's events through eventsourcing's ``EventStore``, without its ``put``:
    an event written around the commands would have no hash-chain link (``matome verify``
    would report the store broken) and would keep its personal values inside the event."""

    def __init__(self, store: EventStore[UUID]) -> None:
        self._store = store

    def get(
        self,
        originator_id: UUID,
        *,
        gt: int | None = None,
        lte: int | None = None,
        desc: bool = False,
        limit: int | None = None,
    ) -> Iterator[DomainEvent]:
        """The stream's events (see ``eventsourcing.persistence.EventStore.get``)."""
        for event in self._store.get(originator_id, gt=gt, lte=lte, desc=desc, limit=limit):
            yield cast(DomainEvent, event)


class EngineInternals:
    """The machinery under an :class:`Engine` (``engine.internals``), for matome's own tools,
    tests and benchmarks.

    Not public API: the version policy does not cover it, and any release may change it.
    Everything here bypasses the contract — read the log with it, never write through it.
    """

    def __init__(self, engine: Engine) -> None:
        self._engine = engine

    @property
    def store_settings(self) -> dict[str, str]:
        """The eventsourcing settings of the store."""
        return self._engine._store.store_settings

    @property
    def recorder(self) -> ApplicationRecorder:
        """The event store's recorder (eventsourcing's notification log lives here)."""
        return self._engine._store.recorder

    @property
    def mapper(self) -> Mapper[UUID]:
        """The mapper that turns stored events into matome's events and back."""
        return self._engine._store.mapper

    @property
    def events(self) -> ReadOnlyEvents:
        """The events of one stream, decoded (read-only: events are written by commands
        only, with their hash-chain links and personal values kept apart)."""
        return ReadOnlyEvents(self._engine._store.events)

    @property
    def hasher(self) -> Hasher:
        """The credential hasher (salted scrypt; see :mod:`matome.credentials`)."""
        return self._engine._commands.hasher

    @property
    def views(self) -> tuple[Projection, Documents]:
        """The billing projection and its document queries (created on first use)."""
        return self._engine._view_pair()

    def run_billing(self, through: YearMonth, at: datetime) -> int:
        """Issue every bill of a closed month up to ``through`` not issued yet; return how many
        (see :mod:`matome.billing`; :meth:`Engine.complete_billing` is the public way)."""
        return self._engine._run_billing(through, at)

    def forget_cached_states(self) -> None:
        """Forget the aggregate states cached in memory; they are read again from the store
        (what another process on the same store would see)."""
        self._engine._commands.cache.clear()
