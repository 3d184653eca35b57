"""The engine: an eventsourcing ``Application`` that decides every command of the contract.

Each command runs as one *unit of work*: it loads the aggregates it decides against (from an
in-process cache brought up to date from the store), checks the rules in the contract's order of
precedence, emits events, and saves them all — across every stream it touched — in **one
transaction**.  Another writer that got there first makes the save fail with eventsourcing's
``IntegrityError``; the unit of work is then decided again from the fresh state.  This is what
keeps, for example, concurrent purchases on one Passport ID from passing its limit together:
each purchase appends to the ID's own stream, so only one of two racing purchases can be saved
against the state both of them saw.
"""

from __future__ import annotations

import hashlib
import random
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any, TypeVar, cast
from uuid import UUID, uuid5

import attrs
from eventsourcing.application import Application, ProcessingEvent
from eventsourcing.persistence import ApplicationRecorder, IntegrityError, Mapper, Recording

from matome import commands as cmd
from matome.aggregates.base import NAMESPACE
from matome.aggregates.catalog import Listing, Provider, project_provider, provider_id
from matome.aggregates.ledger import (
    CALENDAR_ID,
    Calendar,
    KeyRecord,
    key_id,
    project_calendar,
    project_key,
)
from matome.aggregates.line import AccessLine, line_id, project_line
from matome.aggregates.passport import Passport, passport_id_stream, project_passport
from matome.aggregates.subscription import Subscription, project_subscription, subscription_id
from matome.charging import last_charged_month
from matome.credentials import DEFAULT_ITERATIONS, Hasher
from matome.errors import (
    ConsentRequired,
    DuplicateError,
    GoodsNotOffered,
    IdempotencyConflict,
    InvalidInput,
    LimitExceeded,
    LimitSumExceeded,
    LineAuthFailed,
    LineRegulated,
    LockedOut,
    MatomeError,
    MonthClosed,
    NotAllowedOnline,
    NotCancellable,
    RefundExceedsCharge,
    RegistrationClosed,
    RegistrationLimitExceeded,
    TooManyPassports,
    UnknownLine,
    UnknownPassport,
    UnknownProvider,
    UnknownReceipt,
    UnknownService,
    WrongPassword,
)
from matome.events import bill as bill_ev
from matome.events import catalog as catalog_ev
from matome.events import ledger as ledger_ev
from matome.events import line as line_ev
from matome.events import passport as passport_ev
from matome.events import subscription as sub_ev
from matome.events.base import DomainEvent
from matome.policy import DEFAULT_POLICY, Policy
from matome.projections.documents import Documents, bill_digest
from matome.projections.fees import DEFAULT_SCHEDULE, FeePeriod
from matome.projections.runner import Progress, Projection
from matome.projections.viewstore import open_view_store
from matome.recorders import POPORecorder
from matome.store import store_env
from matome.values import (
    ChangeKind,
    Consolidated,
    CustomerId,
    Goods,
    LiftChannel,
    LineKind,
    PassportId,
    Pricing,
    ProviderCode,
    YearMonth,
    Yen,
    tokyo_date,
)
from matome.wire import EventMapper, converter, dumps

__all__ = ["Engine", "EngineBusy", "receipt_number"]

S = TypeVar("S")
R = TypeVar("R", bound=cmd.Result)


class EngineBusy(MatomeError):
    """A command lost the optimistic-concurrency race too many times in a row."""

    code = "busy"


class _StateCache:
    """Immutable aggregate states by stream id (and streams known not to exist).

    eventsourcing's own repository cache fast-forwards *mutable* aggregates in place; matome's
    aggregates are immutable, so this small LRU keeps the newest state it has seen instead.
    :meth:`get` brings a state up to date from the store; :meth:`peek` answers from memory
    only — commands use it on their first, optimistic attempt, because whatever they decided
    against is checked again when they save (see :mod:`matome.recorders`).
    """

    def __init__(self, app: Engine, maxsize: int) -> None:
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

    def get(self, stream: UUID, projector: Callable[[Any, Iterable[Any]], Any]) -> Any:
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


_ABSENT = object()
_UNKNOWN = object()


class _UnitOfWork:
    """The aggregates one command decided against and the events it emitted."""

    def __init__(self, engine: Engine, at: datetime, *, fresh: bool) -> None:
        self.engine = engine
        self.at = at
        self.fresh = fresh
        self.now = datetime.now(UTC)
        self.states: dict[UUID, Any] = {}
        #: The version of every stream decided against, as it was read (0: did not exist).
        self.read: dict[UUID, int] = {}
        #: The first time-order violation met while loading (see :meth:`load`).
        self.late: InvalidInput | None = None
        self.events: list[DomainEvent] = []
        #: Events kept even when the command is refused (a counted wrong password, §10).
        self.security_events: list[DomainEvent] = []

    def load(
        self,
        stream: UUID,
        projector: Callable[[Any, Iterable[Any]], Any],
        name: str,
        *,
        chronological: bool = True,
    ) -> Any:
        if stream in self.states:
            return self.states[stream]
        known, state = (False, None) if self.fresh else self.engine._cache.peek(stream)
        if not known:
            state = self.engine._cache.get(stream, projector)
        self.read[stream] = state.version if state is not None else 0
        if chronological and state is not None and state.last_at > self.at and self.late is None:
            # A line's history is chronological: deciding at ``at`` against a state that
            # already knows later events would judge the past by the future.  The refusal is
            # kept, not raised: it is invalid_input, which outranks whatever else the handler
            # finds (handlers load everything they decide against before refusing anything).
            self.late = InvalidInput(
                f"business time {self.at.isoformat()} is before the latest event of {name} "
                f"({state.last_at.isoformat()}); commands on a line must come in time order"
            )
        self.states[stream] = state
        return state

    def emit(
        self,
        state: Any,
        stream: UUID,
        projector: Callable[[Any, Iterable[Any]], Any],
        event_class: type[DomainEvent],
        *,
        security: bool = False,
        **fields: Any,
    ) -> Any:
        """Decide one event on ``stream`` and return the state after it."""
        event = event_class(
            originator_id=stream,
            originator_version=(state.version if state is not None else 0) + 1,
            timestamp=self.now,
            at=self.at,
            **fields,
        )
        new_state = projector(state, [event])
        self.states[stream] = new_state
        self.read.setdefault(stream, event.originator_version - 1)
        (self.security_events if security else self.events).append(event)
        return new_state

    def read_only(self, events: list[DomainEvent]) -> dict[UUID, int]:
        """Streams decided against but not written by ``events``, with the versions read."""
        written = {e.originator_id for e in events}
        return {s: v for s, v in self.read.items() if s not in written}


class Engine(Application[UUID]):
    """matome's billing engine.  Every command of the contract is a typed method here.

    Build one with :meth:`open` (``"matome.sqlite"``, ``":memory:"``, ``"postgresql://..."``).
    Methods raise a :class:`~matome.errors.MatomeError` carrying the contract's error code;
    a refused command has written nothing (except a counted wrong password).
    """

    name = "matome"

    def __init__(
        self,
        env: Mapping[str, str] | None = None,
        *,
        policy: Policy = DEFAULT_POLICY,
        hash_iterations: int = DEFAULT_ITERATIONS,
        cache_size: int = 200_000,
        max_attempts: int = 200,
        fee_schedule: Sequence[FeePeriod] = DEFAULT_SCHEDULE,
    ) -> None:
        self.store_settings = (
            dict(env) if env is not None else {"PERSISTENCE_MODULE": "eventsourcing.popo"}
        )
        super().__init__(env=self.store_settings)
        self.policy = policy
        self.fee_schedule: tuple[FeePeriod, ...] = tuple(fee_schedule)
        self._views: tuple[Projection, Documents] | None = None
        self._views_lock = threading.Lock()
        self.hasher = Hasher(hash_iterations)
        self.max_attempts = max_attempts
        self._cache = _StateCache(self, cache_size)
        self._handlers: dict[type[cmd.Command], Callable[[_UnitOfWork, Any], cmd.Result]] = {
            cmd.OpenLine: self._open_line,
            cmd.ChangeLineLimit: self._change_line_limit,
            cmd.ChangeBilling: self._change_billing,
            cmd.ChangeLine: self._change_line,
            cmd.RegulateLine: self._regulate_line,
            cmd.LiftRegulation: self._lift_regulation,
            cmd.SetNotification: self._set_notification,
            cmd.RegisterProvider: self._register_provider,
            cmd.ListService: self._list_service,
            cmd.RegisterPassport: self._register_passport,
            cmd.ChangePassportLimit: self._change_passport_limit,
            cmd.ChangePassportDetails: self._change_passport_details,
            cmd.DeletePassport: self._delete_passport,
            cmd.Purchase: self._purchase,
            cmd.Cancel: self._cancel,
            cmd.Refund: self._refund,
            cmd.IssueBills: self._issue_bills,
        }

    @classmethod
    def open(
        cls,
        db: str | None = None,
        *,
        policy: Policy = DEFAULT_POLICY,
        hash_iterations: int = DEFAULT_ITERATIONS,
        fee_schedule: Sequence[FeePeriod] = DEFAULT_SCHEDULE,
    ) -> Engine:
        """An engine on the store named by ``db`` (see :func:`matome.store.store_env`)."""
        return cls(
            store_env(db),
            policy=policy,
            hash_iterations=hash_iterations,
            fee_schedule=fee_schedule,
        )

    def save(self, *objs: Any, **kwargs: Any) -> list[Recording[UUID]]:
        """Record events in one transaction (eventsourcing's ``Application.save``).

        The library tests every object against a runtime-checkable protocol, which costs more
        than the insert itself; matome's own events are known to satisfy it and skip that test.
        """
        if not all(isinstance(obj, DomainEvent) for obj in objs):
            return super().save(*objs, **kwargs)
        processing = ProcessingEvent[UUID]()
        processing.events.extend(objs)
        processing.saved_kwargs.update(kwargs)
        recordings = self._record(processing)
        self._notify(recordings)
        return recordings

    def construct_recorder(self) -> ApplicationRecorder:
        # The in-memory factory takes no recorder topic: give it matome's recorder directly.
        if self.store_settings.get("PERSISTENCE_MODULE") == "eventsourcing.popo":
            return POPORecorder()
        return super().construct_recorder()

    def construct_mapper(self) -> Mapper[UUID]:
        # The cattrs converter owns the wire format; eventsourcing's cipher and compressor
        # settings still apply to the bytes.
        return self.factory.mapper(mapper_class=EventMapper)

    # -----------------------------------------------------------------------------------------
    # Running commands

    def execute(self, command: cmd.Command) -> cmd.Result:
        """Decide and record one command; return its result or raise its refusal.

        The first attempt decides against cached state; the save then checks that every stream
        decided against is unchanged (written streams by eventsourcing's version check, read
        streams by :mod:`matome.recorders`).  A conflict — or a refusal, which saves nothing
        that could be checked — is decided again against fresh state from the store.
        """
        handler = self._handlers[type(command)]
        fresh = False
        for attempt in range(self.max_attempts):
            uow = _UnitOfWork(self, command.at, fresh=fresh)
            try:
                try:
                    if command.key is not None:
                        record: KeyRecord | None = uow.load(
                            key_id(command.key), project_key, "key", chronological=False
                        )
                        if record is not None:
                            return self._replay(uow, handler, command, record)
                    closed = None
                    if not isinstance(command, cmd.IssueBills):
                        closed = self._closed_month(uow, command.at)
                    try:
                        result = handler(uow, command)
                    except MatomeError as refusal:
                        raise self._first_refusal(uow, refusal, closed) from None
                    if uow.late is not None or closed is not None:
                        raise self._first_refusal(uow, None, closed)
                    if command.key is not None:
                        self._bind_key(uow, command, result)
                except MatomeError:
                    if not fresh:
                        fresh = True  # confirm the refusal against the store itself
                        continue
                    if uow.security_events:
                        self._save(uow.security_events, uow)
                    raise
                self._save(uow.events, uow)
                if isinstance(command, cmd.IssueBills):
                    # Runs also when the month was closed already: an interrupted billing run
                    # is completed by issuing the same month again.  (How many bills a run
                    # issued is not part of the result: a keyed retry must answer the same.)
                    self.run_billing(command.month, command.at)
                return result
            except IntegrityError:
                # Someone else wrote to a stream we decided against: decide again on fresh
                # state, after a short random pause so racing writers spread out.
                if fresh:
                    time.sleep(random.uniform(0, min(0.05, 0.001 * (attempt + 1))))
                fresh = True
        raise EngineBusy(f"{command.NAME}: gave up after {self.max_attempts} conflicting attempts")

    def _save(self, events: list[DomainEvent], uow: _UnitOfWork) -> None:
        if not events:
            return
        self.save(*events, read_versions=uow.read_only(events))
        for event in events:
            self._cache.put(uow.states[event.originator_id])

    @staticmethod
    def _first_refusal(
        uow: _UnitOfWork, refusal: MatomeError | None, closed: MonthClosed | None
    ) -> MatomeError:
        """The refusal to report, by the contract's precedence: invalid_input (including a
        command out of time order), then month_closed, then what the handler found."""
        if isinstance(refusal, InvalidInput):
            return refusal
        first = uow.late or closed or refusal
        assert first is not None
        if first is not refusal:
            uow.security_events.clear()  # a wrong password is not counted then
        return first

    def _closed_month(self, uow: _UnitOfWork, at: datetime) -> MonthClosed | None:
        """The ``month_closed`` refusal if ``at`` falls in a closed month (§7), else None."""
        calendar: Calendar | None = uow.load(
            CALENDAR_ID, project_calendar, "calendar", chronological=False
        )
        month = YearMonth.of(at)
        if calendar is not None and calendar.is_closed(month):
            return MonthClosed(
                f"{month} is closed (bills issued through {calendar.closed_through}); "
                "a command dated in it cannot change them"
            )
        return None

    # Idempotency keys (INTERCHANGE.md, "Command log")

    def _fingerprint(self, command: cmd.Command) -> str:
        body: dict[str, Any] = {"command": command.NAME}
        for field in attrs.fields(type(command)):
            value = getattr(command, field.name)
            if field.name == "key":
                continue
            if field.name in command.SECRETS:
                body[field.name] = value is not None
            elif isinstance(value, datetime):
                # The same instant written with another offset is the same body.
                body[field.name] = value.astimezone(UTC).isoformat()
            else:
                body[field.name] = converter.unstructure(value)
        return hashlib.sha256(dumps(body).encode()).hexdigest()

    def _secrets(self, command: cmd.Command) -> dict[str, str]:
        return {
            name: getattr(command, name).reveal()
            for name in command.SECRETS
            if getattr(command, name) is not None
        }

    def _bind_key(self, uow: _UnitOfWork, command: cmd.Command, result: cmd.Result) -> None:
        assert command.key is not None
        uow.emit(
            None,
            key_id(command.key),
            project_key,
            ledger_ev.KeyBound,
            key=command.key,
            command=command.NAME,
            digest=self._fingerprint(command),
            secrets={n: self.hasher.hash(v) for n, v in self._secrets(command).items()},
            result=result.to_json(),
        )

    def _replay(
        self,
        uow: _UnitOfWork,
        handler: Callable[[_UnitOfWork, Any], cmd.Result],
        command: cmd.Command,
        record: KeyRecord,
    ) -> cmd.Result:
        try:
            return self._answer_again(command, record)
        except IdempotencyConflict as conflict:
            # invalid_input outranks idempotency_conflict: decide (without saving) to see
            # whether the command is out of time order or otherwise invalid against the state.
            try:
                handler(uow, command)
            except InvalidInput as invalid:
                raise invalid from None
            except MatomeError:
                pass
            uow.security_events.clear()
            raise uow.late or conflict from None

    def _answer_again(self, command: cmd.Command, record: KeyRecord) -> cmd.Result:
        secrets = self._secrets(command)
        same = (
            record.command == command.NAME
            and record.digest == self._fingerprint(command)
            and set(secrets) == set(record.secrets)
            and all(self.hasher.verify(v, record.secrets[n]) for n, v in secrets.items())
        )
        if not same:
            raise IdempotencyConflict(
                f"key {command.key!r} was already used by an accepted {record.command} "
                "with a different body"
            )
        result_type = _RESULT_TYPES.get(type(command), cmd.Done)
        return converter.structure(dict(record.result), result_type)

    # -----------------------------------------------------------------------------------------
    # Loading, with the contract's "unknown_*" refusals

    def _load_line(self, uow: _UnitOfWork, customer_id: CustomerId, **kw: Any) -> AccessLine | None:
        line: AccessLine | None = uow.load(
            line_id(customer_id), project_line, f"line {customer_id}", **kw
        )
        return line

    def _active_line(self, uow: _UnitOfWork, customer_id: CustomerId) -> AccessLine:
        return self._require_line(self._load_line(uow, customer_id), customer_id)

    def _require_line(self, line: AccessLine | None, customer_id: CustomerId) -> AccessLine:
        if line is None:
            raise UnknownLine(f"no access line {customer_id}")
        if line.ended:
            assert line.ended_at is not None
            then = f"; it continues as {line.successor}" if line.successor else ""
            raise UnknownLine(
                f"line {customer_id} left the collect-on-behalf service on "
                f"{tokyo_date(line.ended_at)}{then}"
            )
        return line

    def _load_passport(self, uow: _UnitOfWork, passport_id: PassportId) -> Passport | None:
        passport: Passport | None = uow.load(
            passport_id_stream(passport_id), project_passport, f"Passport ID {passport_id}"
        )
        return passport

    def _active_passport(self, uow: _UnitOfWork, passport_id: PassportId) -> Passport:
        passport = self._load_passport(uow, passport_id)
        if passport is None or passport.deleted:
            raise UnknownPassport(f"no Passport ID {passport_id!s}")
        return passport

    def _provider(self, uow: _UnitOfWork, code: ProviderCode) -> Provider:
        provider: Provider | None = uow.load(
            provider_id(code), project_provider, f"provider {code}", chronological=False
        )
        if provider is None or provider.registered_at > uow.at:
            raise UnknownProvider(f"no provider {code}")
        return provider

    def _listing(self, uow: _UnitOfWork, provider: Provider, service: Any) -> Listing:
        listing = provider.services.get(service)
        if listing is None or listing.listed_at > uow.at:
            raise UnknownService(f"provider {provider.code} lists no service {service}")
        return listing

    def _subscription(self, uow: _UnitOfWork, receipt: str) -> Subscription:
        sub: Subscription | None = uow.load(
            subscription_id(receipt), project_subscription, f"receipt {receipt}"
        )
        if sub is None:
            raise UnknownReceipt(f"no purchase has receipt {receipt}")
        return sub

    def _check_billing(self, uow: _UnitOfWork, billing: Any) -> None:
        # (A line naming itself is refused by the command itself, as invalid_input.)
        if not isinstance(billing, Consolidated):
            return
        rep_id = billing.representative
        rep = self._load_line(uow, rep_id, chronological=False)
        if rep is None or rep.ended:
            raise UnknownLine(f"no access line {rep_id} to be the billing representative")
        if isinstance(rep.billing, Consolidated):
            raise InvalidInput(
                f"representative {rep_id} is itself billed through {rep.billing.representative}"
            )

    # -----------------------------------------------------------------------------------------
    # Cross-aggregate effects

    def _cancel_all(
        self, uow: _UnitOfWork, passport: Passport, reason: sub_ev.CancelReason
    ) -> tuple[Passport, list[str]]:
        """Cancel every active monthly subscription of ``passport`` at the command's instant."""
        cancelled: list[str] = []
        for receipt in sorted(r for r, h in passport.holdings.items() if h.active):
            sub = self._subscription(uow, receipt)
            if sub.active:
                uow.emit(sub, sub.id, project_subscription, sub_ev.Cancelled, reason=reason)
            passport = uow.emit(
                passport, passport.id, project_passport, passport_ev.HoldingEnded, receipt=receipt
            )
            cancelled.append(receipt)
        return passport, cancelled

    def _passport_and_line(
        self, uow: _UnitOfWork, passport_id: PassportId
    ) -> tuple[Passport, AccessLine]:
        """A current Passport ID and its line, both loaded before either is refused."""
        passport = self._load_passport(uow, passport_id)
        line = None if passport is None else self._load_line(uow, passport.customer_id)
        if passport is None or passport.deleted:
            raise UnknownPassport(f"no Passport ID {passport_id!s}")
        return passport, self._require_line(line, passport.customer_id)

    def _line_passports(self, uow: _UnitOfWork, line: AccessLine) -> list[Passport]:
        return [self._active_passport(uow, pid) for pid in sorted(line.passports)]

    # -----------------------------------------------------------------------------------------
    # Handlers: decide, in the contract's order of precedence, then emit

    def _open_line(self, uow: _UnitOfWork, c: cmd.OpenLine) -> cmd.LineResult:
        existing = self._load_line(uow, c.customer_id)
        # The representative's checks come first: invalid_input and unknown_line outrank
        # duplicate in the contract's order.
        self._check_billing(uow, c.billing)
        if existing is not None:
            raise DuplicateError(f"line {c.customer_id} exists already")
        uow.emit(
            None,
            line_id(c.customer_id),
            project_line,
            line_ev.LineOpened,
            customer_id=c.customer_id,
            operator=c.operator,
            kind=c.kind,
            access_key_hash=self.hasher.hash(c.access_key.reveal()),
            line_limit=c.line_limit,
            billing=c.billing,
        )
        return cmd.LineResult(customer_id=c.customer_id)

    def _change_line_limit(self, uow: _UnitOfWork, c: cmd.ChangeLineLimit) -> cmd.Done:
        line = self._active_line(uow, c.customer_id)
        if line.limit_sum > c.line_limit:
            raise LimitSumExceeded(
                f"the line's Passport IDs have limits adding up to {line.limit_sum}; "
                f"the cap cannot go below that (asked {c.line_limit})"
            )
        uow.emit(line, line.id, project_line, line_ev.LineLimitChanged, line_limit=c.line_limit)
        return cmd.Done()

    def _change_billing(self, uow: _UnitOfWork, c: cmd.ChangeBilling) -> cmd.Done:
        loaded = self._load_line(uow, c.customer_id)
        self._check_billing(uow, c.billing)
        line = self._require_line(loaded, c.customer_id)
        uow.emit(
            line, line.id, project_line, line_ev.BillingChanged, billing=c.billing, reason=c.reason
        )
        return cmd.Done()

    def _change_line(self, uow: _UnitOfWork, c: cmd.ChangeLine) -> cmd.LineChangeResult:
        terminal = {ChangeKind.CANCELLATION, ChangeKind.AREA_MOVE, ChangeKind.COLLABO_CONVERSION}
        renumbered = c.new_customer_id is not None and c.new_customer_id != c.customer_id
        kept = c.change is ChangeKind.RENAME or (
            c.change in (ChangeKind.RELOCATION, ChangeKind.ITEM_CHANGE) and not renumbered
        )
        line = self._active_line(uow, c.customer_id)
        # Everything the change would end is decided against too: load it before refusing.
        passports = [] if kept else self._line_passports(uow, line)
        for passport in passports:
            for receipt in passport.holdings:
                if passport.holdings[receipt].active:
                    self._subscription(uow, receipt)
        if c.new_customer_id is not None and not line.operator.accepts(c.new_customer_id):
            raise InvalidInput(f"NTT West customer IDs start with CAF, not {c.new_customer_id}")
        if c.change is ChangeKind.MENU_CHANGE:
            menu = {LineKind.HIKARI_NEXT, LineKind.HIKARI_LIGHT}
            if line.kind not in menu or c.new_kind not in menu or c.new_kind == line.kind:
                raise InvalidInput(
                    f"a menu change goes between hikari_next and hikari_light; the line is "
                    f"{line.kind.value}, asked {c.new_kind}"
                )
        if c.new_kind is not None and not c.new_kind.offered_by(line.operator):
            raise InvalidInput(f"NTT {line.operator.value} does not offer {c.new_kind.value}")
        if renumbered:
            assert c.new_customer_id is not None
            if self._load_line(uow, c.new_customer_id, chronological=False) is not None:
                raise DuplicateError(f"line {c.new_customer_id} exists already")
        # §6, the continuity table.
        ended = c.change in terminal or renumbered
        cancelled: list[str] = []
        deleted: list[PassportId] = []
        if not kept:
            for passport in passports:
                passport, receipts = self._cancel_all(
                    uow, passport, sub_ev.CancelReason.LINE_CHANGE
                )
                cancelled += receipts
                uow.emit(
                    passport,
                    passport.id,
                    project_passport,
                    passport_ev.PassportDeleted,
                    reason=passport_ev.DeletionReason.LINE_CHANGE,
                )
                deleted.append(passport.passport_id)
        new_cid = c.new_customer_id if renumbered else None
        uow.emit(
            line,
            line.id,
            project_line,
            line_ev.LineMoved,
            change=c.change,
            kept=kept,
            ended=ended,
            new_customer_id=new_cid,
            new_kind=c.new_kind,
            cancelled=tuple(cancelled),
            deleted=tuple(deleted),
        )
        if new_cid is not None:
            # The line carries on under its new customer ID; the service starts afresh there.
            uow.emit(
                None,
                line_id(new_cid),
                project_line,
                line_ev.LineOpened,
                customer_id=new_cid,
                operator=line.operator,
                kind=c.new_kind or line.kind,
                access_key_hash=line.access_key_hash,
                line_limit=line.line_limit,
                billing=line.billing,
                predecessor=line.customer_id,
            )
        return cmd.LineChangeResult(
            kept=kept, new_customer_id=new_cid, cancelled=tuple(cancelled), deleted=tuple(deleted)
        )

    def _regulate_line(self, uow: _UnitOfWork, c: cmd.RegulateLine) -> cmd.RegulationResult:
        line = self._active_line(uow, c.customer_id)
        if line.regulated:
            return cmd.RegulationResult(regulated=True)  # §5: accepted, changes nothing
        cancelled: list[str] = []
        for passport in self._line_passports(uow, line):
            _, receipts = self._cancel_all(uow, passport, sub_ev.CancelReason.REGULATION)
            cancelled += receipts
        uow.emit(line, line.id, project_line, line_ev.Regulated, cancelled=tuple(cancelled))
        return cmd.RegulationResult(regulated=True, cancelled=tuple(cancelled))

    def _lift_regulation(self, uow: _UnitOfWork, c: cmd.LiftRegulation) -> cmd.RegulationResult:
        line = self._active_line(uow, c.customer_id)
        if c.channel is LiftChannel.ONLINE:
            raise NotAllowedOnline("lifting a regulation needs a written application [書面]")
        if line.regulated:
            uow.emit(line, line.id, project_line, line_ev.RegulationLifted, channel=c.channel)
        return cmd.RegulationResult(regulated=False)

    def _set_notification(self, uow: _UnitOfWork, c: cmd.SetNotification) -> cmd.Done:
        line = self._active_line(uow, c.customer_id)
        self._provider(uow, c.provider)
        if not c.consent:
            raise ConsentRequired("line-information notification needs the customer's consent")
        uow.emit(
            line,
            line.id,
            project_line,
            line_ev.NotificationSet,
            provider=c.provider,
            notify=c.notify,
            channel=c.channel,
        )
        return cmd.Done()

    def _register_provider(self, uow: _UnitOfWork, c: cmd.RegisterProvider) -> cmd.Done:
        stream = provider_id(c.provider)
        if uow.load(stream, project_provider, "provider", chronological=False) is not None:
            raise DuplicateError(f"provider {c.provider} exists already")
        uow.emit(
            None,
            stream,
            project_provider,
            catalog_ev.ProviderRegistered,
            provider=c.provider,
            name=c.name,
            contact=c.contact,
            goods=c.goods,
        )
        return cmd.Done()

    def _list_service(self, uow: _UnitOfWork, c: cmd.ListService) -> cmd.Done:
        provider = self._provider(uow, c.provider)
        if c.service in provider.services:
            raise DuplicateError(f"provider {c.provider} lists {c.service} already")
        uow.emit(
            provider,
            provider.id,
            project_provider,
            catalog_ev.ServiceListed,
            service=c.service,
            name=c.name,
            pricing=c.pricing,
            price=c.price,
        )
        return cmd.Done()

    def _register_passport(self, uow: _UnitOfWork, c: cmd.RegisterPassport) -> cmd.PassportResult:
        loaded = self._load_line(uow, c.customer_id)
        existing = self._load_passport(uow, c.passport_id)
        line = self._require_line(loaded, c.customer_id)
        if c.via_provider is not None:
            self._provider(uow, c.via_provider)
        if existing is not None:
            # Passport IDs are never reused, even after deletion: an ID names one history.
            raise DuplicateError(f"Passport ID {c.passport_id!s} exists already")
        if line.regulated:
            raise LineRegulated(f"line {c.customer_id} is regulated: no new Passport ID")
        if c.at >= self.policy.registration_cutoff and not (
            c.via_provider is not None and line.operator.value == "east"
        ):
            raise RegistrationClosed(
                "customers can no longer register Passport IDs themselves (from "
                f"{tokyo_date(self.policy.registration_cutoff)}); NTT East providers may "
                "register one on a customer's behalf"
            )
        if len(line.passports) >= self.policy.max_passports:
            raise TooManyPassports(
                f"line {c.customer_id} holds {self.policy.max_passports} Passport IDs already"
            )
        if c.limit > self.policy.registration_max_limit:
            raise RegistrationLimitExceeded(
                f"the limit at registration is at most {self.policy.registration_max_limit}, "
                f"asked {c.limit}"
            )
        if line.limit_sum + c.limit > line.line_limit:
            raise LimitSumExceeded(
                f"limits would add up to {line.limit_sum + c.limit}, above the line's cap "
                f"{line.line_limit}"
            )
        uow.emit(
            None,
            passport_id_stream(c.passport_id),
            project_passport,
            passport_ev.Registered,
            passport_id=c.passport_id,
            customer_id=c.customer_id,
            password_hash=self.hasher.hash(c.password.reveal()),
            email=c.email,
            applicant=c.applicant,
            limit=c.limit,
            line_auth=c.line_auth,
            via_provider=c.via_provider,
        )
        uow.emit(
            line,
            line.id,
            project_line,
            line_ev.PassportAttached,
            passport_id=c.passport_id,
            limit=c.limit,
        )
        return cmd.PassportResult(passport_id=c.passport_id, status="in_use")

    def _change_passport_limit(self, uow: _UnitOfWork, c: cmd.ChangePassportLimit) -> cmd.Done:
        passport, line = self._passport_and_line(uow, c.passport_id)
        total = line.limit_sum - passport.limit + c.limit
        if total > line.line_limit:
            raise LimitSumExceeded(
                f"limits would add up to {total}, above the line's cap {line.line_limit}"
            )
        uow.emit(passport, passport.id, project_passport, passport_ev.LimitChanged, limit=c.limit)
        uow.emit(
            line,
            line.id,
            project_line,
            line_ev.PassportLimitChanged,
            passport_id=c.passport_id,
            limit=c.limit,
        )
        return cmd.Done()

    def _change_passport_details(self, uow: _UnitOfWork, c: cmd.ChangePassportDetails) -> cmd.Done:
        passport = self._active_passport(uow, c.passport_id)
        if c.at >= self.policy.registration_cutoff:
            raise RegistrationClosed(
                "registration details are view-only from "
                f"{tokyo_date(self.policy.registration_cutoff)}"
            )
        uow.emit(
            passport,
            passport.id,
            project_passport,
            passport_ev.DetailsChanged,
            password_hash=None if c.password is None else self.hasher.hash(c.password.reveal()),
            email=c.email,
        )
        return cmd.Done()

    def _delete_passport(self, uow: _UnitOfWork, c: cmd.DeletePassport) -> cmd.DeletionResult:
        passport, line = self._passport_and_line(uow, c.passport_id)
        passport, cancelled = self._cancel_all(uow, passport, sub_ev.CancelReason.PASSPORT_DELETED)
        uow.emit(
            passport,
            passport.id,
            project_passport,
            passport_ev.PassportDeleted,
            reason=passport_ev.DeletionReason.CUSTOMER,
        )
        uow.emit(line, line.id, project_line, line_ev.PassportDetached, passport_id=c.passport_id)
        return cmd.DeletionResult(cancelled=tuple(cancelled))

    def _purchase(self, uow: _UnitOfWork, c: cmd.Purchase) -> cmd.PurchaseResult:
        passport, line = self._passport_and_line(uow, c.passport_id)
        provider = self._provider(uow, c.provider)
        listing = self._listing(uow, provider, c.service)
        monthly = listing.pricing is Pricing.MONTHLY
        if monthly and passport.active_holding(c.provider, c.service) is not None:
            raise DuplicateError(
                f"Passport ID {c.passport_id!s} already subscribes to {c.provider}/{c.service}"
            )
        if line.regulated:
            raise LineRegulated(f"line {line.customer_id} is regulated: purchases are stopped")
        if passport.locked:
            raise LockedOut(
                f"Passport ID {c.passport_id!s} is locked after {self.policy.lockout_after} "
                "wrong passwords; set a new password to unlock it"
            )
        if not self.hasher.verify(c.password.reveal(), passport.password_hash):
            failures = passport.consecutive_failures + 1
            locked = failures >= self.policy.lockout_after
            uow.emit(
                passport,
                passport.id,
                project_passport,
                passport_ev.PasswordRejected,
                security=True,
                consecutive=failures,
                locked=locked,
            )
            raise WrongPassword(
                f"wrong password for Passport ID {c.passport_id!s} "
                f"({failures} in a row{'; now locked' if locked else ''})"
            )
        if passport.line_auth and (
            c.presented_line != line.customer_id or not line.notifications.get(c.provider, False)
        ):
            raise LineAuthFailed(
                f"Passport ID {c.passport_id!s} may only buy from its own line with "
                f"line-information notification to {c.provider} on"
            )
        if provider.goods is Goods.PHYSICAL and (
            line.operator.value != "east" or c.at < self.policy.physical_goods_from
        ):
            raise GoodsNotOffered(
                "physical goods are sold only to NTT East lines, from "
                f"{tokyo_date(self.policy.physical_goods_from)}"
            )
        month = YearMonth.of(c.at)
        once = self.policy.monthly_once_per_month
        if monthly and once and passport.monthly_charged(c.provider, c.service, month):
            adds = Yen.ZERO  # §4 patterns 4–5: already charged this month
        else:
            adds = listing.price
        spend = passport.spend(month, once_per_month=once)
        if spend + adds > passport.limit:
            raise LimitExceeded(
                f"Passport ID {c.passport_id!s} has spent {spend} of its {passport.limit} limit "
                f"in {month}; this purchase adds {adds}"
            )
        receipt = receipt_number(c.passport_id, passport.purchases + 1)
        uow.emit(
            None,
            subscription_id(receipt),
            project_subscription,
            sub_ev.Purchased,
            receipt=receipt,
            passport_id=c.passport_id,
            customer_id=line.customer_id,
            provider=c.provider,
            service=c.service,
            service_name=listing.name,
            pricing=listing.pricing,
            price=listing.price,
        )
        uow.emit(
            passport,
            passport.id,
            project_passport,
            passport_ev.HoldingAdded,
            receipt=receipt,
            provider=c.provider,
            service=c.service,
            pricing=listing.pricing,
            price=listing.price,
        )
        return cmd.PurchaseResult(receipt=receipt, price=listing.price, charged=adds)

    def _cancel(self, uow: _UnitOfWork, c: cmd.Cancel) -> cmd.CancelResult:
        sub = self._subscription(uow, c.receipt)
        passport = self._load_passport(uow, sub.passport_id)
        if not sub.active:
            why = (
                "is a per-purchase item"
                if sub.pricing is Pricing.PER_PURCHASE
                else ("was cancelled already")
            )
            raise NotCancellable(f"receipt {c.receipt} {why}")
        uow.emit(
            sub, sub.id, project_subscription, sub_ev.Cancelled, reason=sub_ev.CancelReason.CUSTOMER
        )
        if passport is not None:
            uow.emit(
                passport, passport.id, project_passport, passport_ev.HoldingEnded, receipt=c.receipt
            )
        return cmd.CancelResult(
            receipt=c.receipt, last_charged_month=last_charged_month(sub.purchased_at, c.at)
        )

    def _refund(self, uow: _UnitOfWork, c: cmd.Refund) -> cmd.RefundResult:
        sub = self._subscription(uow, c.receipt)
        total = sub.refunded + c.amount
        if total > sub.price:
            raise RefundExceedsCharge(
                f"refunds of {c.receipt} would add up to {total}, above its price {sub.price}"
            )
        uow.emit(
            sub, sub.id, project_subscription, sub_ev.Refunded, amount=c.amount, reason=c.reason
        )
        return cmd.RefundResult(receipt=c.receipt, refunded_total=total)

    def _issue_bills(self, uow: _UnitOfWork, c: cmd.IssueBills) -> cmd.IssueResult:
        if c.at < c.month.end():
            raise InvalidInput(f"{c.month} has not ended in Tokyo time at {c.at.isoformat()}")
        calendar: Calendar | None = uow.load(
            CALENDAR_ID, project_calendar, "calendar", chronological=False
        )
        if calendar is not None and calendar.is_closed(c.month):
            return cmd.IssueResult(month=c.month)  # §7: closing again changes nothing
        uow.emit(calendar, CALENDAR_ID, project_calendar, ledger_ev.MonthsClosed, through=c.month)
        return cmd.IssueResult(month=c.month, closed=(c.month,))

    # -----------------------------------------------------------------------------------------
    # The billing run and the documents (from the projections)

    def run_billing(self, through: YearMonth, at: datetime) -> int:
        """Issue every bill of a closed month up to ``through`` not issued yet; return how many.

        Each bill is a ``BillIssued`` event on its own (line, month) stream, so a bill is issued
        once however often (or by however many workers) the run is repeated.
        """
        projection, documents = self.views
        projection.catch_up()
        month = documents.first_charge_month()
        issued = 0
        now = datetime.now(UTC)
        while month is not None and month <= through:
            done = documents.issued_bills(month)
            by_line: dict[str, list[dict[str, Any]]] = {}
            for charge in documents.charges(month):
                by_line.setdefault(charge["customer_id"], []).append(charge)
            events = []
            for customer_id in sorted(set(by_line) - done):
                document = documents.compose_bill(
                    customer_id, month, by_line[customer_id], "issued"
                )
                events.append(
                    bill_ev.BillIssued(
                        originator_id=bill_id(customer_id, month),
                        originator_version=1,
                        timestamp=now,
                        at=at,
                        customer_id=CustomerId(customer_id),
                        month=month,
                        document=document,
                        digest=bill_digest(document),
                    )
                )
            for start in range(0, len(events), 500):
                chunk = events[start : start + 500]
                try:
                    self.save(*chunk)
                    issued += len(chunk)
                except IntegrityError:
                    # Another run issued some of these meanwhile: issue the rest one by one.
                    for event in chunk:
                        try:
                            self.save(event)
                            issued += 1
                        except IntegrityError:
                            pass
            month = month.next()
        projection.catch_up()
        return issued

    @property
    def views(self) -> tuple[Projection, Documents]:
        """The billing projection and its documents (created on first use)."""
        with self._views_lock:
            if self._views is None:
                projection = Projection(self, open_view_store(self.store_settings))
                self._views = (projection, Documents(projection, self.policy, self.fee_schedule))
            return self._views

    def _documents(self) -> Documents:
        projection, documents = self.views
        projection.catch_up()
        return documents

    def bill(self, customer_id: CustomerId | str, month: YearMonth | str) -> dict[str, Any]:
        """The bill document of one line for one month (INTERCHANGE.md, "Bill")."""
        return self._documents().bill(_cid(customer_id), _month(month))

    def statement(
        self,
        customer_id: CustomerId | str,
        month: YearMonth | str,
        *,
        passport_id: PassportId | str | None = None,
        page: int = 1,
        per_page: int = 50,
    ) -> dict[str, Any]:
        """The usage statement [ご利用明細] of a line for a month, paged (§7)."""
        pid = None if passport_id is None else str(passport_id)
        return self._documents().statement(
            _cid(customer_id), _month(month), pid, page=page, per_page=per_page
        )

    def provider_contacts(self, customer_id: CustomerId | str) -> list[dict[str, str]]:
        """The providers a line has bought from, with contacts [お問合せ先一覧] (§7)."""
        return self._documents().provider_contacts(_cid(customer_id))

    def provider_totals(self, month: YearMonth | str) -> list[dict[str, Any]]:
        """Per-provider totals for a month across all lines."""
        return self._documents().provider_totals(_month(month))

    def settlement(self, month: YearMonth | str) -> list[dict[str, Any]]:
        """Settlement to providers for a month: gross, lines, average, fee, net (§8)."""
        return self._documents().settlement(_month(month))

    def continuity(self, customer_id: CustomerId | str | None = None) -> list[dict[str, Any]]:
        """The line-move continuity table (§6)."""
        cid = None if customer_id is None else _cid(customer_id)
        return self._documents().continuity(cid)

    def rebuild_views(self, progress: Progress | None = None) -> int:
        """Drop the read models and replay the whole log into them."""
        projection, _ = self.views
        return projection.rebuild(progress)

    def close(self) -> None:
        if self._views is not None:
            self._views[0].store.close()
        super().close()

    # -----------------------------------------------------------------------------------------
    # Queries of aggregate state

    def line(self, customer_id: CustomerId | str) -> AccessLine | None:
        """The line's current state, or ``None``."""
        cid = customer_id if isinstance(customer_id, CustomerId) else CustomerId(customer_id)
        state: AccessLine | None = self._cache.get(line_id(cid), project_line)
        return state

    def passport(self, passport_id: PassportId | str) -> Passport | None:
        """The Passport ID's current state (also when deleted), or ``None``."""
        pid = passport_id if isinstance(passport_id, PassportId) else PassportId(passport_id)
        state: Passport | None = self._cache.get(passport_id_stream(pid), project_passport)
        return state

    def subscription(self, receipt: str) -> Subscription | None:
        """The purchase with that receipt number, or ``None``."""
        state: Subscription | None = self._cache.get(subscription_id(receipt), project_subscription)
        return state

    def provider(self, code: ProviderCode | str) -> Provider | None:
        """A provider with its listed services, or ``None``."""
        p = code if isinstance(code, ProviderCode) else ProviderCode(code)
        state: Provider | None = self._cache.get(provider_id(p), project_provider)
        return state

    def usage_status(self, customer_id: CustomerId | str) -> dict[str, Any]:
        """The line's Passport IDs as the service page lists them (DOMAIN.md §2).

        Each current ID with its status — ``in_use`` [利用中], or ``regulated`` [規制中] while
        the line is regulated — and limit; deleted IDs are gone from the list, and a line with
        no IDs shows ``not_used`` [未利用].  (Registration takes effect at once in matome, so
        ``registering`` [登録中] is never shown.)
        """
        line = self.line(customer_id)
        if line is None:
            raise UnknownLine(f"no access line {customer_id}")
        status = "regulated" if line.regulated else "in_use"
        passports = [
            {"passport_id": pid.value, "status": status, "limit": limit.amount}
            for pid, limit in sorted(line.passports.items())
        ]
        return {
            "customer_id": line.customer_id.value,
            "status": "not_used" if not passports else status,
            "passports": passports,
        }

    def closed_through(self) -> YearMonth | None:
        """The latest closed billing month, if any."""
        calendar: Calendar | None = self._cache.get(CALENDAR_ID, project_calendar)
        return None if calendar is None else calendar.closed_through

    # -----------------------------------------------------------------------------------------
    # The typed Python API: one method per command of the contract

    def _run(self, command: cmd.Command, result_type: type[R]) -> R:
        return cast(R, self.execute(command))

    def open_line(
        self,
        *,
        at: datetime | str,
        customer_id: CustomerId | str,
        operator: str,
        kind: str,
        access_key: str,
        line_limit: Yen | int,
        billing: Any,
        key: str | None = None,
    ) -> cmd.LineResult:
        """Open an access line for the service (``open_line``)."""
        return self._run(
            cmd.OpenLine(
                at=at,
                key=key,
                customer_id=customer_id,
                operator=operator,
                kind=kind,
                access_key=access_key,
                line_limit=line_limit,
                billing=billing,
            ),
            cmd.LineResult,
        )

    def change_line_limit(
        self,
        *,
        at: datetime | str,
        customer_id: CustomerId | str,
        line_limit: Yen | int,
        key: str | None = None,
    ) -> cmd.Done:
        """Change the line's monthly cap; refused below the sum of its IDs' limits (§3)."""
        return self._run(
            cmd.ChangeLineLimit(at=at, key=key, customer_id=customer_id, line_limit=line_limit),
            cmd.Done,
        )

    def change_billing(
        self,
        *,
        at: datetime | str,
        customer_id: CustomerId | str,
        billing: Any,
        reason: str,
        key: str | None = None,
    ) -> cmd.Done:
        """Change the billing account (the service continues, §6)."""
        return self._run(
            cmd.ChangeBilling(
                at=at, key=key, customer_id=customer_id, billing=billing, reason=reason
            ),
            cmd.Done,
        )

    def change_line(
        self,
        *,
        at: datetime | str,
        customer_id: CustomerId | str,
        change: str,
        new_customer_id: CustomerId | str | None = None,
        new_kind: str | None = None,
        key: str | None = None,
    ) -> cmd.LineChangeResult:
        """Apply a line change [異動] per the continuity table (§6)."""
        return self._run(
            cmd.ChangeLine(
                at=at,
                key=key,
                customer_id=customer_id,
                change=change,
                new_customer_id=new_customer_id,
                new_kind=new_kind,
            ),
            cmd.LineChangeResult,
        )

    def regulate_line(
        self, *, at: datetime | str, customer_id: CustomerId | str, key: str | None = None
    ) -> cmd.RegulationResult:
        """Regulate the line, cancelling every subscription of its IDs (§5)."""
        return self._run(
            cmd.RegulateLine(at=at, key=key, customer_id=customer_id), cmd.RegulationResult
        )

    def lift_regulation(
        self,
        *,
        at: datetime | str,
        customer_id: CustomerId | str,
        channel: str,
        key: str | None = None,
    ) -> cmd.RegulationResult:
        """Lift a regulation on a written application (§5)."""
        return self._run(
            cmd.LiftRegulation(at=at, key=key, customer_id=customer_id, channel=channel),
            cmd.RegulationResult,
        )

    def set_notification(
        self,
        *,
        at: datetime | str,
        customer_id: CustomerId | str,
        provider: ProviderCode | str,
        notify: bool,
        consent: bool,
        channel: str,
        key: str | None = None,
    ) -> cmd.Done:
        """Set line-information notification for one provider (§9)."""
        return self._run(
            cmd.SetNotification(
                at=at,
                key=key,
                customer_id=customer_id,
                provider=provider,
                notify=notify,
                consent=consent,
                channel=channel,
            ),
            cmd.Done,
        )

    def register_provider(
        self,
        *,
        at: datetime | str,
        provider: ProviderCode | str,
        name: str,
        contact: str,
        goods: str,
        key: str | None = None,
    ) -> cmd.Done:
        """Register a provider."""
        return self._run(
            cmd.RegisterProvider(
                at=at, key=key, provider=provider, name=name, contact=contact, goods=goods
            ),
            cmd.Done,
        )

    def list_service(
        self,
        *,
        at: datetime | str,
        provider: ProviderCode | str,
        service: str,
        name: str,
        pricing: str,
        price: Yen | int,
        key: str | None = None,
    ) -> cmd.Done:
        """List a provider's service or item."""
        return self._run(
            cmd.ListService(
                at=at,
                key=key,
                provider=provider,
                service=service,
                name=name,
                pricing=pricing,
                price=price,
            ),
            cmd.Done,
        )

    def register_passport(
        self,
        *,
        at: datetime | str,
        customer_id: CustomerId | str,
        passport_id: PassportId | str,
        password: str,
        email: str,
        applicant: Any,
        limit: Yen | int,
        line_auth: bool,
        via_provider: ProviderCode | str | None = None,
        key: str | None = None,
    ) -> cmd.PassportResult:
        """Register a Passport ID on a line (§2)."""
        return self._run(
            cmd.RegisterPassport(
                at=at,
                key=key,
                customer_id=customer_id,
                passport_id=passport_id,
                password=password,
                email=email,
                applicant=applicant,
                limit=limit,
                line_auth=line_auth,
                via_provider=via_provider,
            ),
            cmd.PassportResult,
        )

    def change_passport_limit(
        self,
        *,
        at: datetime | str,
        passport_id: PassportId | str,
        limit: Yen | int,
        key: str | None = None,
    ) -> cmd.Done:
        """Change a Passport ID's monthly limit (§3)."""
        return self._run(
            cmd.ChangePassportLimit(at=at, key=key, passport_id=passport_id, limit=limit), cmd.Done
        )

    def change_passport_details(
        self,
        *,
        at: datetime | str,
        passport_id: PassportId | str,
        password: str | None = None,
        email: str | None = None,
        key: str | None = None,
    ) -> cmd.Done:
        """Change a Passport ID's password and/or e-mail (§2)."""
        return self._run(
            cmd.ChangePassportDetails(
                at=at, key=key, passport_id=passport_id, password=password, email=email
            ),
            cmd.Done,
        )

    def delete_passport(
        self, *, at: datetime | str, passport_id: PassportId | str, key: str | None = None
    ) -> cmd.DeletionResult:
        """Delete a Passport ID, cancelling its monthly subscriptions (§2)."""
        return self._run(
            cmd.DeletePassport(at=at, key=key, passport_id=passport_id), cmd.DeletionResult
        )

    def purchase(
        self,
        *,
        at: datetime | str,
        passport_id: PassportId | str,
        password: str,
        provider: ProviderCode | str,
        service: str,
        presented_line: CustomerId | str | None = None,
        key: str | None = None,
    ) -> cmd.PurchaseResult:
        """Buy a service or item; answers the receipt number (§3, §4, §9)."""
        return self._run(
            cmd.Purchase(
                at=at,
                key=key,
                passport_id=passport_id,
                password=password,
                provider=provider,
                service=service,
                presented_line=presented_line,
            ),
            cmd.PurchaseResult,
        )

    def cancel(
        self, *, at: datetime | str, receipt: str, key: str | None = None
    ) -> cmd.CancelResult:
        """Cancel an active monthly-flat subscription (§4)."""
        return self._run(cmd.Cancel(at=at, key=key, receipt=receipt), cmd.CancelResult)

    def refund(
        self,
        *,
        at: datetime | str,
        receipt: str,
        amount: Yen | int,
        reason: str,
        key: str | None = None,
    ) -> cmd.RefundResult:
        """Record a provider's refund of a purchase (§4)."""
        return self._run(
            cmd.Refund(at=at, key=key, receipt=receipt, amount=amount, reason=reason),
            cmd.RefundResult,
        )

    def issue_bills(
        self, *, at: datetime | str, month: YearMonth | str, key: str | None = None
    ) -> cmd.IssueResult:
        """Close a billing month (and every month before it) once it has ended (§7)."""
        return self._run(cmd.IssueBills(at=at, key=key, month=month), cmd.IssueResult)


def bill_id(customer_id: str, month: YearMonth) -> UUID:
    """The stream of one issued bill."""
    return uuid5(NAMESPACE, f"bill:{customer_id}:{month}")


def _cid(value: CustomerId | str) -> str:
    return value.value if isinstance(value, CustomerId) else CustomerId(value).value


def _month(value: YearMonth | str) -> YearMonth:
    return value if isinstance(value, YearMonth) else YearMonth.parse(value)


def receipt_number(passport_id: PassportId | str, n: int) -> str:
    """The receipt number [申込受付番号] of the ``n``-th purchase of a Passport ID.

    Derived, not drawn: the same history always yields the same receipts, on any store, and two
    racing purchases on one ID compute the same number (only one of them can be saved).
    """
    pid = passport_id.value if isinstance(passport_id, PassportId) else passport_id
    return "R" + uuid5(NAMESPACE, f"receipt:{pid}#{n}").hex[:20].upper()


_RESULT_TYPES: dict[type[cmd.Command], type[cmd.Result]] = {
    cmd.OpenLine: cmd.LineResult,
    cmd.RegisterPassport: cmd.PassportResult,
    cmd.Purchase: cmd.PurchaseResult,
    cmd.Cancel: cmd.CancelResult,
    cmd.Refund: cmd.RefundResult,
    cmd.RegulateLine: cmd.RegulationResult,
    cmd.LiftRegulation: cmd.RegulationResult,
    cmd.ChangeLine: cmd.LineChangeResult,
    cmd.DeletePassport: cmd.DeletionResult,
    cmd.IssueBills: cmd.IssueResult,
}
