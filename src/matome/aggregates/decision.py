"""How a decider records its decision: the events a command emits and the refusals that apply.

A *decider* is a pure function beside the aggregate it decides on (``decide_purchase`` in
:mod:`matome.aggregates.passport`, ...).  It reads the states it is given and the command, and
records in a :class:`Decision`:

* every refusal that applies, not only the first: the contract reports the first of them in
  its order of precedence, which is data (:data:`matome.errors.REFUSAL_ORDER`), so the order
  in which checks are written never decides what a customer is told;
* the events to record if the command is accepted, each applied at once to the state it
  changes (so a decider can emit several events on one stream);
* *security* events, recorded even though the command is refused — a counted wrong password,
  kept only when ``wrong_password`` is the refusal reported (rules §10).

Deciders never read a clock, the store or a cache, and never draw randomness themselves: the
business time, the recorded time, the policy and the credential checker come with the
decision.  So a decider can be called, and tested, with nothing but states built in memory.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from datetime import datetime
from typing import Any, Protocol, TypeVar
from uuid import UUID

from matome.aggregates.base import AggregateState, projector_of
from matome.errors import InvalidInput, MatomeError, WrongPassword, first_refusal
from matome.events.base import DomainEvent
from matome.policy import Policy

__all__ = ["Credentials", "Decision"]


class Credentials(Protocol):
    """Hashes new secrets and checks presented ones (:class:`matome.credentials.Hasher`)."""

    def hash(self, secret: str) -> str: ...

    def verify(self, secret: str, stored: str) -> bool: ...

    def needs_rehash(self, stored: str) -> bool: ...


class _Revealing(Protocol):
    """A secret value (an access key, a password) that shows its clear text only on demand."""

    def reveal(self) -> str: ...


S = TypeVar("S", bound=AggregateState)


class Decision:
    """One command's decision in progress (see the module docstring)."""

    def hash_secret(self, field: str, secret: str) -> str:
        """Hash a new secret (kept as the hash of the command's ``field``)."""
        stored = self.credentials.hash(secret)
        self.secret_hashes[field] = stored
        return stored

    def new_secret(self, field: str, secret: _Revealing | None, given_hash: str | None) -> str:
        """The hash to keep of a new secret: the secret hashed, or the hash a migration gave
        instead (contract 3, "Credentials at scale": kept as given, no key derivation)."""
        if secret is not None:
            return self.hash_secret(field, secret.reveal())
        if given_hash is None:  # the command classes refuse this: a secret or its hash
            raise InvalidInput(f"missing field(s): {field}")
        return given_hash

    def check_secret(
        self,
        field: str,
        secret: str,
        stored: str,
        *,
        on: AggregateState | None = None,
        rehashed: type[DomainEvent] | None = None,
    ) -> bool:
        """Whether ``secret`` matches ``stored``; a match is kept as the hash of the
        command's ``field`` (a mismatch is hashed only if a key must remember it).

        A match against a hash of an older scheme (``Credentials.needs_rehash``) is hashed
        again if the command is accepted: ``rehashed`` — an event with one field, the new
        hash, named ``<field>_hash`` — is then emitted on ``on``'s stream
        (:meth:`emit_rehashes`, rules §10)."""
        ok = self.credentials.verify(secret, stored)
        if ok:
            self.secret_hashes[field] = stored
            if (
                on is not None
                and rehashed is not None
                and on.id not in {r[0].id for r in self._rehashes}
                and self.credentials.needs_rehash(stored)
            ):
                self._rehashes.append((on, rehashed, field, secret))
        return ok

    def emit_rehashes(self) -> None:
        """The command is accepted: hash again, in the current scheme, the secrets it
        presented whose stored hashes are of an older one (see :meth:`check_secret`) — each
        event on the state the decider left its stream in.  The command's keys then keep the
        new hash."""
        for state, event_class, field, secret in self._rehashes:
            latest = self.states.get(state.id, state)
            new_hash = self.credentials.hash(secret)
            self.emit(latest, event_class, **{f"{field}_hash": new_hash})
            self.secret_hashes[field] = new_hash
        self._rehashes.clear()

    def __init__(
        self,
        *,
        at: datetime,
        recorded_at: datetime,
        policy: Policy,
        credentials: Credentials,
    ) -> None:
        self.at = at
        self.recorded_at = recorded_at
        self.policy = policy
        self.credentials = credentials
        self.events: list[DomainEvent] = []
        self.security_events: list[DomainEvent] = []
        self.refusals: list[MatomeError] = []
        #: The stream whose credential (password, access key) the command presented, once
        #: checked: an idempotency key keeps the secrets' hashes under it.
        self.authenticated: UUID | None = None
        #: The stored hash of each secret the command presented or set, as the decision
        #: computed or checked it (an idempotency key keeps these: no second derivation).
        self.secret_hashes: dict[str, str] = {}
        #: Secrets accepted against a hash of an older scheme: (state, event, field, secret),
        #: hashed again only if the command is accepted (:meth:`emit_rehashes`).
        self._rehashes: list[tuple[AggregateState, type[DomainEvent], str, str]] = []
        #: The latest state of every stream emitted on, after its events.
        self.states: dict[UUID, Any] = {}
        self.security_states: dict[UUID, Any] = {}

    # Refusals

    def refuse(self, error: MatomeError) -> None:
        """Record a refusal that applies (the command will not be accepted)."""
        self.refusals.append(error)

    def require(self, ok: bool, error: Callable[[], MatomeError]) -> bool:
        """Refuse with ``error()`` unless ``ok``; return ``ok``."""
        if not ok:
            self.refuse(error())
        return ok

    @property
    def refused(self) -> bool:
        return bool(self.refusals)

    def verdict(self) -> MatomeError | None:
        """The refusal to report (the first by the contract's order), or ``None``."""
        return first_refusal(self.refusals)

    def counted_events(self) -> list[DomainEvent]:
        """The security events to record with the verdict: a wrong password is counted only
        when it is the refusal reported (rules §10)."""
        return self.security_events if isinstance(self.verdict(), WrongPassword) else []

    def against(self, state: AggregateState | None, what: str) -> None:
        """The command decides against ``state``: business time must not go back on it.

        rules §7 (Decision): a command dated before the latest event of the line, Passport
        ID or subscription it decides against is ``invalid_input`` — the past is never decided
        again against a state that already knows the future.
        """
        if state is not None and state.last_at > self.at:
            self.refuse(
                InvalidInput(
                    f"business time {self.at.isoformat()} is before the latest event of {what} "
                    f"({state.last_at.isoformat()}); commands on a line must come in time order"
                )
            )

    def against_all(self, states: Iterable[tuple[AggregateState | None, str]]) -> None:
        for state, what in states:
            self.against(state, what)

    # Events

    def emit(self, state: S, event_class: type[DomainEvent], **fields: Any) -> S:
        """Emit one event on ``state``'s stream and return the state after it."""
        new_state: S = self._emit(state, state.id, event_class, fields, self.events)
        return new_state

    def create(self, stream: UUID, event_class: type[DomainEvent], **fields: Any) -> Any:
        """Emit the first event of a new stream and return the new state."""
        return self._emit(None, stream, event_class, fields, self.events)

    def emit_security(self, state: S, event_class: type[DomainEvent], **fields: Any) -> S:
        """Emit an event that is recorded even if the command is refused (see the module
        docstring)."""
        new_state: S = self._emit(state, state.id, event_class, fields, self.security_events)
        return new_state

    def create_security(self, stream: UUID, event_class: type[DomainEvent], **fields: Any) -> Any:
        """The first event of a new stream, recorded with the security events (an idempotency
        key bound by a counted refusal)."""
        return self._emit(None, stream, event_class, fields, self.security_events)

    def _emit(
        self,
        state: Any,
        stream: UUID,
        event_class: type[DomainEvent],
        fields: dict[str, Any],
        into: list[DomainEvent],
    ) -> Any:
        event = self._event(state, stream, event_class, fields)
        into.append(event)
        new_state = projector_of(event_class)(state, [event])
        (self.security_states if into is self.security_events else self.states)[stream] = new_state
        return new_state

    def _event(
        self,
        state: Any,
        stream: UUID,
        event_class: type[DomainEvent],
        fields: dict[str, Any],
    ) -> DomainEvent:
        version = state.version if state is not None else 0
        for earlier in reversed(self.events):
            if earlier.originator_id == stream and earlier.originator_version > version:
                # A programming error, not a refusal: the decider must continue from the
                # state its previous emit returned.
                raise RuntimeError(f"{event_class.__name__} was decided on a stale state")
        return event_class(
            originator_id=stream,
            originator_version=version + 1,
            timestamp=self.recorded_at,
            at=self.at,
            **fields,
        )
