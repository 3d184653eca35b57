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
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from typing import Any, TypeVar
from uuid import UUID

import attrs
from eventsourcing.persistence import IntegrityError

from matome import commands as cmd
from matome.aggregates import ledger
from matome.aggregates.decision import Decision
from matome.aggregates.ledger import KeyRecord
from matome.aggregates.line import line_id
from matome.aggregates.passport import passport_id_stream
from matome.aggregates.subscription import reference_id
from matome.application import idempotency
from matome.application._derive import DerivationPool, DryRun, Prepared
from matome.application.eventstore import EventStoreApplication, LogPosition, LogPositionTaken
from matome.application.handlers import (
    CREDENTIALS,
    HANDLERS,
    load_calendar,
    load_key,
    personal_data_erased,
)
from matome.application.uow import StateCache, UnitOfWork
from matome.credentials import DEFAULT_ITERATIONS, Hasher, Scheme
from matome.errors import Busy, MatomeError, WrongPassword
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

    def __init__(self, hasher: Hasher | Prepared | DryRun) -> None:
        self._hasher = hasher
        self._seen: dict[tuple[str, str], bool] = {}
        self._hashed: dict[str, str] = {}

    def hash(self, secret: str) -> str:
        # One salted hash per secret for all attempts of the command: only the saved
        # attempt's events are recorded, so a hash reused across attempts is used once.
        if secret not in self._hashed:
            self._hashed[secret] = self._hasher.hash(secret)
        return self._hashed[secret]

    def verify(self, secret: str, stored: str) -> bool:
        key = (secret, stored)
        if key not in self._seen:
            self._seen[key] = self._hasher.verify(secret, stored)
        return self._seen[key]

    def needs_rehash(self, stored: str) -> bool:
        return self._hasher.needs_rehash(stored)


def _costly(kdf: Scheme) -> bool:
    """Whether a scheme's derivations are worth a pool (not the cheap testing scrypt)."""
    return kdf.memory >= 2**20


#: Lost races after which a command's next attempt takes the writers' gate exclusive.
ESCALATE_AFTER = 3


@attrs.define
class _Decided:
    """What deciding one command came to: a result or a refusal, and the events to record
    (with the states after them) — none for a refusal that counted nothing."""

    result: cmd.Result | None = None
    refusal: MatomeError | None = None
    #: A refusal answered again for an idempotency key: final, not to be confirmed.
    final: bool = False
    events: list[DomainEvent] = attrs.field(factory=list)
    states: dict[UUID, Any] = attrs.field(factory=dict)


class _Batch:
    """The commands of one batch so far: their events, the states after them, and the
    version at which each stream was first read from the store (checked when saving)."""

    def __init__(self) -> None:
        self.events: list[DomainEvent] = []
        self.states: dict[UUID, Any] = {}
        self.base: dict[UUID, int] = {}

    def add(self, decided: _Decided) -> None:
        self.events += decided.events
        self.states.update(decided.states)


class _BatchUnit(UnitOfWork):
    """A unit of work inside a batch: the states the batch's earlier commands wrote come
    from the batch; others from the cache, with the version first read noted for the
    save's check."""

    def __init__(self, cache: StateCache, batch: _Batch) -> None:
        super().__init__(cache, fresh=False)
        self._batch = batch

    def load(self, stream: UUID, projector: Callable[[Any, Iterable[Any]], Any]) -> Any:
        if stream in self.states:
            return self.states[stream]
        if stream in self._batch.states:
            state = self._batch.states[stream]
            self.read[stream] = state.version
            self.states[stream] = state
            return state
        state = super().load(stream, projector)
        self._batch.base.setdefault(stream, self.read[stream])
        return state


class _Reconfirm(Exception):
    """A refusal decided against cached state: decide again against the store itself."""


def _claim(items: Sequence[tuple[cmd.Command[Any], LogPosition | None]]) -> LogPosition | None:
    """The position a batch records: its last command's, claiming every command of the log
    from its first one (LogPosition: the store refuses it if another run applied any)."""
    positions = [p for _, p in items if p is not None]
    if not positions:
        return None
    return attrs.evolve(positions[-1], first=positions[0].claims_from)


def _streams_named(command: cmd.Command[Any]) -> Iterator[UUID]:
    """The streams ``command`` names outright and will load: its idempotency key, the
    purchase reference it creates or cancels by, its Passport ID and line.  In a log most
    are new (a key per command), so :meth:`StateCache.prime` learns in one query which have
    no events instead of one stream read each."""
    if command.key is not None:
        yield ledger.key_id(command.key)
    for name in ("ref", "purchase_ref"):
        ref = getattr(command, name, None)
        if isinstance(ref, str):
            yield reference_id(ref)
    # The ID's and the line's streams: new ones for a registration or a new line; the others
    # are usually cached already, and a cached stream costs nothing here.
    passport = getattr(command, "passport_id", None)
    if passport is not None:
        yield passport_id_stream(passport)
    customer = getattr(command, "customer_id", None)
    if customer is not None:
        yield line_id(customer)


def _secrets(command: cmd.Command[Any]) -> Iterable[str]:
    """The secrets a command presents, in clear (to ask the verifier about, never to keep)."""
    for name in command.SECRETS:
        value = getattr(command, name)
        if value is not None:
            yield value.reveal()


def _keys_of(owner: str) -> Callable[[Any], bool]:
    return lambda state: isinstance(state, KeyRecord) and state.owner == owner


def _keys_about(subject: str) -> Callable[[Any], bool]:
    return lambda state: isinstance(state, KeyRecord) and state.subject == subject


class CommandService:
    """Decides and records the commands of the contract on one event store."""

    def __init__(
        self,
        app: EventStoreApplication,
        *,
        policy: Policy = DEFAULT_POLICY,
        hash_iterations: int = DEFAULT_ITERATIONS,
        kdf: Scheme | None = None,
        cache_size: int = 200_000,
        max_attempts: int = 200,
    ) -> None:
        self.app = app
        self.policy = policy
        self.hasher = Hasher(kdf if kdf is not None else hash_iterations)
        #: Runs a batch's key derivations side by side (``None``: one at a time, as the cheap
        #: testing KDF is best run; tests may set a pool on it).
        self.pool: DerivationPool | None = (
            DerivationPool(self.hasher) if _costly(self.hasher.kdf) else None
        )
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
        self.cache.prime(_streams_named(command))
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
        decided = self._decide(command, handler, credentials, uow)
        if decided.refusal is not None:
            if not decided.final and not fresh:
                raise _Reconfirm
            self._save(decided.events, decided.states, uow, position)
            raise decided.refusal
        self._save(decided.events, decided.states, uow, position)
        return decided.result  # type: ignore[return-value]  # the handler answers RESULT

    def _decide(
        self,
        command: cmd.Command[Any],
        handler: Callable[..., cmd.Result | None],
        credentials: _VerifiedOnce,
        uow: UnitOfWork,
    ) -> _Decided:
        """Decide ``command`` against the states ``uow`` loads; record nothing."""
        d = Decision(
            at=command.at, recorded_at=uow.now, policy=self.policy, credentials=credentials
        )
        record = None if command.key is None else load_key(uow, command.key)
        if record is not None:
            again = self._decide_again(record, command, credentials, uow)
            if again is not None:
                return again
            # Another body with no credential checked: one more refusal, ranked (contract 2).
            d.refuse(idempotency.conflict(command, record))
        if not command.MAY_NAME_CLOSED_MONTH:
            ledger.check_month_open(load_calendar(uow), d)
        result = handler(uow, command, d)
        refusal = d.verdict()
        if refusal is not None:
            if not d.counted_events():
                return _Decided(refusal=refusal)
            if record is None:
                idempotency.bind_refusal(command, refusal, d)
            return _Decided(
                refusal=refusal, events=d.counted_events(), states=dict(d.security_states)
            )
        if result is None:
            raise RuntimeError(f"{command.NAME}: the decider neither refused nor decided")
        # Accepted: a secret it presented against a hash of an older scheme is hashed again.
        d.emit_rehashes()
        idempotency.bind_key(command, result, d)
        return _Decided(result=result, events=list(d.events), states=dict(d.states))

    def _decide_again(
        self,
        record: KeyRecord,
        command: cmd.Command[Any],
        credentials: _VerifiedOnce,
        uow: UnitOfWork,
    ) -> _Decided | None:
        """A command under a used key (contract 3, "Idempotency keys are no password oracle"):
        its credential first, against the holder's current one — before time order, bounds
        or any other refusal; a wrong password is counted.  Then the key answers the body it
        was bound to; another body whose secret is right is ``idempotency_conflict`` and
        nothing else.  ``None``: another body and no credential checked (the caller ranks
        the conflict with the other refusals, as contract 2 does)."""
        d = Decision(
            at=command.at, recorded_at=uow.now, policy=self.policy, credentials=credentials
        )
        # Read from the ID itself, not only from the key: a key record cached by another
        # process may still hold the personal digest an erasure deleted.
        erased = bool(command.PERSONAL) and personal_data_erased(uow, command)
        current = None
        opened: bool | None = None
        secret = None if command.CREDENTIAL is None else getattr(command, command.CREDENTIAL)
        if secret is not None:
            opened = CREDENTIALS[type(command)](uow, command, d)
            if opened is None:
                # No ID or line to check the secret against: not the body bound (that one
                # named an ID or line that exists); the handler refuses it (``unknown_*``),
                # whatever secret it carries.
                return None
            if not opened:
                refusal = d.verdict()
                if isinstance(refusal, WrongPassword):
                    bound = idempotency.refused_again(
                        record, command, credentials, personal_erased=erased
                    )
                    if bound is not None:
                        # The very body that counted this wrong password: not twice.
                        return _Decided(refusal=bound, final=True)
                return _Decided(
                    refusal=refusal, events=d.counted_events(), states=dict(d.security_states)
                )
            current = d.secret_hashes.get(command.CREDENTIAL or "")
        answer = idempotency.answer_again(
            record, command, credentials, current=current, personal_erased=erased
        )
        if answer is None:
            # Contract 3: a different body whose secret is right is a conflict, whatever
            # else the state would refuse it for.
            return _Decided(refusal=idempotency.conflict(command, record)) if opened else None
        if isinstance(answer, cmd.Result):
            return _Decided(result=answer)
        # The refusal the key was bound by, answered again (no need to confirm it).
        return _Decided(refusal=answer, final=True)

    # -----------------------------------------------------------------------------------------
    # Batches: many commands of a log in one transaction, decided exactly as one at a time

    def execute_batch(
        self, items: Sequence[tuple[cmd.Command[Any], LogPosition | None]]
    ) -> list[cmd.Result | MatomeError]:
        """Decide ``items`` in order, each against the states the ones before it left, and
        record everything they decided in **one** transaction (with the last position);
        return each command's result or refusal.

        The decisions are those of :meth:`execute` one command at a time: each command sees
        exactly what the commands before it in the batch wrote.  What they read is checked
        when the batch is saved; if another writer changed any of it meanwhile, nothing of
        the batch is kept and its commands are executed again one at a time.  A command that
        runs ``ALONE`` (``issue_bills``, ``erase_personal_data``) cannot be batched (the
        engine runs it on its own).

        The batch's record claims the log's position from its first command to its last
        (:class:`LogPosition`): if another run of the log recorded any of them first, nothing
        of the batch is kept and :class:`LogPositionTaken` is raised — with, in ``done``, the
        outcomes of the commands recorded one at a time before it after a conflict.
        """
        for command, _ in items:
            if command.ALONE:
                raise ValueError(f"{command.NAME} cannot be batched")
        credentials = self._derive_ahead(items)
        batch = _Batch()
        outcomes: list[cmd.Result | MatomeError] = []
        decided_units: list[tuple[_Decided, _BatchUnit]] = []
        # One existence query for the batch's new keys, references, IDs and lines.
        self.cache.prime(s for command, _ in items for s in _streams_named(command))
        for command, _ in items:
            uow = _BatchUnit(self.cache, batch)
            decided = self._decide(
                command, HANDLERS[type(command)], _VerifiedOnce(credentials), uow
            )
            batch.add(decided)
            decided_units.append((decided, uow))
            outcome = decided.refusal if decided.refusal is not None else decided.result
            if outcome is None:  # _decide answers one or the other
                raise RuntimeError(f"{command.NAME}: decided neither a result nor a refusal")
            outcomes.append(outcome)
        if isinstance(credentials, Prepared):
            credentials.close()
        try:
            self._commit(batch, _claim(items))
        except IntegrityError:
            # Another writer got there first: decide every command again, one at a time.
            redone: list[cmd.Result | MatomeError] = []
            for command, position in items:
                try:
                    redone.append(self.execute(command, position))
                except MatomeError as e:
                    redone.append(e)
                except LogPositionTaken as e:
                    # Another run of the log got past this command: what this one recorded
                    # before it stands, and goes with the exception.
                    e.done = redone
                    raise
            return redone
        for state in batch.states.values():
            if state is not None:
                self.cache.put(state)
        for decided, uow in decided_units:
            self._forget_replaced_secrets(decided.events, uow)
        return outcomes

    def _derive_ahead(
        self, items: Sequence[tuple[cmd.Command[Any], LogPosition | None]]
    ) -> Hasher | Prepared:
        """The credentials to decide ``items`` with: with a pool, the batch is first decided
        dry to learn the key derivations it needs, which start on the pool at once (see
        :mod:`matome.application._derive`); the decisions are the same either way."""
        if self.pool is None or all(
            self.hasher.familiar(secret) for command, _ in items for secret in _secrets(command)
        ):
            # A warm batch (every secret it presents was verified lately) is decided once.
            return self.hasher
        dry = DryRun(self.hasher)
        batch = _Batch()
        for command, _ in items:
            uow = _BatchUnit(self.cache, batch)
            try:
                decided = self._decide(command, HANDLERS[type(command)], _VerifiedOnce(dry), uow)
            except Exception:  # foreseeing is an optimisation only
                # A dry decision that fails (its guesses led it astray) foresees no further:
                # the real decisions derive the rest one at a time, or raise the same error.
                break
            batch.add(decided)
        return self.pool.prepare(dry)

    def _commit(self, batch: _Batch, position: LogPosition | None) -> None:
        written = {e.originator_id for e in batch.events}
        read = {s: v for s, v in batch.base.items() if s not in written}
        if batch.events:
            self.app.record(batch.events, read_versions=read, position=position)
        else:
            # Nothing to write (every command refused, or answered again): what the refusals
            # were decided against must still be what the store holds.
            self.app.check_unchanged(read)

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
            if isinstance(e, passport_ev.PersonalDataErased):
                # So were the keys' digests of the ID's personal data (contract 3).
                self.cache.drop_if(_keys_about(str(e.originator_id)))
