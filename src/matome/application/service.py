"""The command service: decides and records commands, one unit of work each.

It orchestrates and holds no rule: for each command it loads what the command's handler asks
for, lets the deciders decide (:mod:`matome.aggregates`), checks idempotency keys, and saves
the events in one transaction with the versions of everything read.  A conflicting writer
makes it decide again.
"""

from __future__ import annotations

import contextlib
import random
import time
from collections.abc import Callable, Iterable, Mapping
from typing import Any, TypeVar
from uuid import UUID

from eventsourcing.persistence import IntegrityError

from matome import commands as cmd
from matome.aggregates import ledger
from matome.aggregates.decision import Decision
from matome.aggregates.ledger import KeyRecord
from matome.application import idempotency
from matome.application.eventstore import EventStoreApplication, LogPosition
from matome.application.handlers import HANDLERS, load_calendar, load_key
from matome.application.uow import StateCache, UnitOfWork
from matome.credentials import DEFAULT_ITERATIONS, Hasher, Kdf
from matome.errors import Busy, IdempotencyConflict
from matome.events import passport as passport_ev
from matome.events.base import DomainEvent
from matome.policy import DEFAULT_POLICY, Policy

__all__ = ["CommandService"]

R = TypeVar("R", bound=cmd.Result)


class _VerifiedOnce:
    """The credentials of one command: each (secret, stored hash) is derived at most once
    across the attempts of the command — a refusal confirmed against the store, or a retry
    after a conflict, costs no second key derivation (nor counts a wrong password twice: only
    the saved attempt's events are recorded)."""

    def __init__(self, hasher: Hasher) -> None:
        self._hasher = hasher
        self._seen: dict[tuple[str, str], bool] = {}

    def hash(self, secret: str) -> str:
        return self._hasher.hash(secret)

    def verify(self, secret: str, stored: str) -> bool:
        key = (secret, stored)
        if key not in self._seen:
            self._seen[key] = self._hasher.verify(secret, stored)
        return self._seen[key]


#: Lost races after which a command's next attempt takes the writers' gate exclusive.
ESCALATE_AFTER = 3


class _Reconfirm(Exception):
    """A refusal decided against cached state: decide again against the store itself."""


def _keys_of(owner: str) -> Callable[[Any], bool]:
    return lambda state: isinstance(state, KeyRecord) and state.owner == owner


class CommandService:
    """Decides and records the commands of the contract on one event store."""

    def __init__(
        self,
        app: EventStoreApplication,
        *,
        policy: Policy = DEFAULT_POLICY,
        hash_iterations: int = DEFAULT_ITERATIONS,
        kdf: Kdf | None = None,
        cache_size: int = 200_000,
        max_attempts: int = 200,
    ) -> None:
        self.app = app
        self.policy = policy
        self.hasher = Hasher(kdf if kdf is not None else hash_iterations)
        self.max_attempts = max_attempts
        self.cache = StateCache(app, cache_size)

    def execute(self, command: cmd.Command[R], position: LogPosition | None = None) -> R:
        """Decide and record one command; return its result or raise its refusal.

        The first attempt decides against cached state; the save then checks that every stream
        decided against is unchanged (written streams by eventsourcing's version check, read
        streams by matome's recorders).  A conflict — or a refusal, which saves nothing that
        could be checked — is decided again against fresh state from the store.

        ``position`` (a command log's) is recorded with whatever the command writes, in the
        same transaction: a log resumed after a crash skips exactly what was applied.
        """
        handler = HANDLERS[type(command)]
        credentials = _VerifiedOnce(self.hasher)
        fresh = False
        conflicts = 0
        for attempt in range(self.max_attempts):
            # After a few lost races the attempt runs with the store to itself (WriterGate):
            # a command that reads much cannot be starved by a stream of small writes.
            gate = (
                self.app.gate.exclusive()
                if conflicts >= ESCALATE_AFTER
                else contextlib.nullcontext()
            )
            try:
                with gate:
                    return self._attempt(command, handler, credentials, fresh, position)
            except _Reconfirm:
                fresh = True  # confirm the refusal against the store itself
            except IntegrityError:
                # Someone else wrote to a stream we decided against: decide again on fresh
                # state, after a short random pause so racing writers spread out.
                if fresh:
                    time.sleep(random.uniform(0, min(0.05, 0.001 * (attempt + 1))))
                fresh = True
                conflicts += 1
        raise Busy(f"{command.NAME}: gave up after {self.max_attempts} conflicting attempts")

    def _attempt(
        self,
        command: cmd.Command[R],
        handler: Callable[..., cmd.Result | None],
        credentials: _VerifiedOnce,
        fresh: bool,
        position: LogPosition | None,
    ) -> R:
        """One attempt: decide against cached (or, ``fresh``, stored) state and save."""
        uow = UnitOfWork(self.cache, fresh=fresh)
        d = Decision(
            at=command.at, recorded_at=uow.now, policy=self.policy, credentials=credentials
        )
        record = None if command.key is None else load_key(uow, command.key)
        if record is not None:
            answer = idempotency.answer_again(record, command, credentials)
            if isinstance(answer, cmd.Result):
                return answer  # type: ignore[return-value]  # RESULT is R
            if not isinstance(answer, IdempotencyConflict):
                raise answer  # the refusal the key was bound by, answered again
            d.refuse(answer)
        if not isinstance(command, cmd.IssueBills):
            # §7: issue_bills may name a closed month (closing again changes nothing).
            ledger.check_month_open(load_calendar(uow), d)
        result = handler(uow, command, d)
        refusal = d.verdict()
        if refusal is not None:
            if not fresh:
                raise _Reconfirm
            if d.counted_events():
                if record is None:
                    idempotency.bind_refusal(command, refusal, d)
                self._save(d.counted_events(), d.security_states, uow, position)
            raise refusal
        if result is None:
            raise RuntimeError(f"{command.NAME}: the decider neither refused nor decided")
        idempotency.bind_key(command, result, d)
        self._save(d.events, d.states, uow, position)
        return result  # type: ignore[return-value]  # the handler answers RESULT

    def _save(
        self,
        events: Iterable[DomainEvent],
        states: Mapping[UUID, Any],
        uow: UnitOfWork,
        position: LogPosition | None = None,
    ) -> None:
        events = list(events)
        if not events:
            return
        written = {e.originator_id for e in events}
        self.app.record(events, read_versions=uow.read_only(written), position=position)
        uow.remember(states[s] for s in written)
        self._forget_replaced_secrets(events, uow)

    def _forget_replaced_secrets(self, events: list[DomainEvent], uow: UnitOfWork) -> None:
        """A password changed or reset, or an ID locked out: what the verifier remembers of
        the old password is dropped."""
        for e in events:
            replaced = (
                isinstance(e, passport_ev.PasswordReset)
                or (isinstance(e, passport_ev.DetailsChanged) and e.password_hash is not None)
                or (isinstance(e, passport_ev.PasswordRejected) and e.locked)
            )
            before = uow.states.get(e.originator_id)
            if replaced and before is not None:
                self.hasher.forget(before.password_hash)
            if replaced and not isinstance(e, passport_ev.PasswordRejected):
                # The keys' hashes of the old password were erased with it (the adapter):
                # cached key records must not answer with them.
                self.cache.drop_if(_keys_of(str(e.originator_id)))
