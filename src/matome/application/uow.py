"""The unit of work: the states one command decides against, read from a cache or the store.

Each command runs as one unit of work: it loads the aggregates it decides against (from an
in-process cache brought up to date from the store), lets the deciders decide, and saves what
they emitted — across every stream — in **one transaction**, together with the version of
every stream it read.  Another writer that got there first makes the save fail with
eventsourcing's ``IntegrityError``; the command is then decided again from fresh state.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable, Iterable
from datetime import UTC, datetime
from typing import Any
from uuid import UUID

from matome.application.eventstore import EventStoreApplication

__all__ = ["StateCache", "UnitOfWork"]

Projector = Callable[[Any, Iterable[Any]], Any]

_ABSENT = object()
_UNKNOWN = object()


class StateCache:
    """Immutable aggregate states by stream id (and streams known not to exist).

    eventsourcing's own repository cache fast-forwards *mutable* aggregates in place; matome's
    aggregates are immutable, so this small LRU keeps the newest state it has seen instead.
    :meth:`get` brings a state up to date from the store; :meth:`peek` answers from memory
    only — commands use it on their first, optimistic attempt, because whatever they decided
    against is checked again when they save (see :mod:`matome.application.eventstore`).
    """

    def __init__(self, app: EventStoreApplication, maxsize: int) -> None:
        self._app = app
        self._maxsize = maxsize
        self._states: OrderedDict[UUID, Any] = OrderedDict()
        self._lock = threading.Lock()

    def peek(self, stream: UUID) -> tuple[bool, Any]:
        """``(known, state)`` from memory; ``state`` is ``None`` for a stream known absent."""
        with self._lock:
            cached = self._states.get(stream, _UNKNOWN)
        if cached is _UNKNOWN:
            return False, None
        return True, None if cached is _ABSENT else cached

    def get(self, stream: UUID, projector: Projector) -> Any:
        """The state of ``stream`` brought up to date from the store (``None``: no stream)."""
        with self._lock:
            cached = self._states.get(stream)
        if cached is _ABSENT:
            cached = None
        version = cached.version if cached is not None else None
        state = projector(cached, self._app.events.get(stream, gt=version))
        if state is None:
            self._remember(stream, _ABSENT)
        elif state is not cached:
            self.put(state)
        return state

    def prime(self, streams: Iterable[UUID]) -> None:
        """Learn, in one query, which of ``streams`` the cache does not know have no events
        yet, and remember them as absent: a batch's new idempotency keys and purchase
        references then cost no stream read each (one ``IN (…)`` on the events' primary key
        instead).  Streams that exist are left unknown — read when a command loads them.

        Remembering a stream as absent is what :meth:`get` does after reading it empty: a
        command decided against it is checked when it saves (a key or reference it creates
        conflicts on its version; one it only read is checked as read at version 0)."""
        with self._lock:
            unknown = list(dict.fromkeys(s for s in streams if s not in self._states))
        if not unknown:
            return
        found = self._app.matome_recorder.stream_versions(unknown)
        for stream in unknown:
            if stream not in found:
                self._remember(stream, _ABSENT)

    def put(self, state: Any) -> None:
        with self._lock:
            held = self._states.get(state.id)
            if held is None or held is _ABSENT or held.version < state.version:
                self._store(state.id, state)

    def _remember(self, stream: UUID, value: Any) -> None:
        with self._lock:
            held = self._states.get(stream)
            if held is None or held is _ABSENT:
                self._store(stream, value)

    def _store(self, stream: UUID, value: Any) -> None:
        self._states[stream] = value
        self._states.move_to_end(stream)
        while len(self._states) > self._maxsize:
            self._states.popitem(last=False)

    def clear(self) -> None:
        with self._lock:
            self._states.clear()

    def drop_if(self, stale: Callable[[Any], bool]) -> None:
        """Forget every cached state ``stale`` says is out of date."""
        with self._lock:
            for stream in [k for k, v in self._states.items() if v is not _ABSENT and stale(v)]:
                del self._states[stream]


class UnitOfWork:
    """The states one command read, and the versions it read them at."""

    def __init__(self, cache: StateCache, *, fresh: bool) -> None:
        self._cache = cache
        #: Decide against the store itself, not the cache (a retry after a conflict).
        self.fresh = fresh
        #: The recorded time of the events this attempt decides (never used for billing).
        self.now = datetime.now(UTC)
        self.states: dict[UUID, Any] = {}
        #: The version of every stream read, as it was read (0: did not exist).
        self.read: dict[UUID, int] = {}

    def load(self, stream: UUID, projector: Projector) -> Any:
        """The state of ``stream`` (``None`` if it has no events), read once per unit."""
        if stream in self.states:
            return self.states[stream]
        known, state = (False, None) if self.fresh else self._cache.peek(stream)
        if not known:
            state = self._cache.get(stream, projector)
        self.read[stream] = state.version if state is not None else 0
        self.states[stream] = state
        return state

    def read_only(self, written: Iterable[UUID]) -> dict[UUID, int]:
        """Streams read but not written, with the versions read (checked when saving)."""
        skip = set(written)
        return {s: v for s, v in self.read.items() if s not in skip}

    def remember(self, states: Iterable[Any]) -> None:
        """Keep the states after a successful save in the cache."""
        for state in states:
            if state is not None:
                self._cache.put(state)
