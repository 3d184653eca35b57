"""The engine: matome's one entry point — commands in, documents out.

:class:`Engine` only wires and orchestrates.  Commands are decided by the deciders beside the
aggregates (:mod:`matome.aggregates`) and recorded by the command service
(:mod:`matome.application`); documents are composed (:mod:`matome.documents`) from the views
(:mod:`matome.projections`); a command is followed by the processes its class names
(``FOLLOWED_BY``: ``issue_bills`` by the billing process, :mod:`matome.billing`).

The public surface of :class:`Engine` is what a user of the library needs: :meth:`Engine.open`
and :meth:`Engine.close`, one typed method per command of the contract, :meth:`Engine.execute`
and :meth:`Engine.execute_batch`, the documents, the state queries, and the audit, verify,
rebuild and follow helpers.  The machinery underneath — the event store's recorder and
mapper, raw event streams, the views, the credential hasher — is reachable only through
:attr:`Engine.internals`, which the version policy does not cover (CHANGELOG.md).
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any, TypeVar

import attrs

from matome import commands as cmd
from matome._engine_commands import _Commands
from matome._engine_internals import _MOVED_TO_INTERNALS, EngineInternals
from matome._engine_internals import ReadOnlyEvents as ReadOnlyEvents
from matome._engine_methods import _cid, _guarded, _instant, _month
from matome.aggregates.catalog import Provider, project_provider, provider_id
from matome.aggregates.ledger import CALENDAR_ID, Calendar, bill_id, project_calendar
from matome.aggregates.line import AccessLine, line_id, project_line
from matome.aggregates.passport import Passport, passport_id_stream, project_passport
from matome.aggregates.subscription import (
    Subscription,
    project_subscription,
    receipt_number,
    subscription_id,
)
from matome.application.eventstore import (
    EventStoreApplication,
    LogPosition,
    LogPositionTaken,
    check_store,
    cipher_env,
    describe,
    master_env,
    store_env,
    translate_store_error,
)
from matome.application.service import CommandService
from matome.audit import audit_line
from matome.billing import BillingProcess, billing_behind
from matome.credentials import DEFAULT_ITERATIONS, Scheme
from matome.documents import (
    Audit,
    Bill,
    Contact,
    ContinuityRow,
    ProviderTotal,
    SettlementLine,
    Statement,
    UsageStatus,
    Verification,
    compose_usage_status,
)
from matome.errors import (
    Busy,
    EngineBusy,
    InvalidInput,
    MatomeError,
    StoreNotFound,
    StoreUnavailable,
    UnknownLine,
)
from matome.fees import DEFAULT_SCHEDULE, FeePeriod
from matome.policy import DEFAULT_POLICY, Policy
from matome.projections.documents import Documents
from matome.projections.runner import Progress, Projection
from matome.projections.viewstore import open_view_store
from matome.values import (
    CustomerId,
    Operator,
    PassportId,
    ProviderCode,
    YearMonth,
    require_text,
)
from matome.verify import make_seal, private_key_from_pem, public_key_from_pem, verify_store

__all__ = ["Engine", "EngineBusy", "EngineInternals", "bill_id", "receipt_number"]

R = TypeVar("R", bound=cmd.Result)


class Engine(_Commands):
    """matome's billing engine.  Every command of the contract is a typed method here
    (generated from the registry of commands, :data:`matome.commands.COMMANDS`).

    Build one with :meth:`open` (``"matome.sqlite"``, ``":memory:"``, ``"postgresql://..."``).
    Methods raise a :class:`~matome.errors.MatomeError` carrying the contract's error code;
    a refused command has written nothing (except a counted wrong password).

    ``policy`` and ``fee_schedule`` are the settings the engine was opened with.  The machinery
    underneath is :attr:`internals` (not public API).
    """

    def __init__(
        self,
        env: Mapping[str, str] | None = None,
        *,
        policy: Policy = DEFAULT_POLICY,
        hash_iterations: int = DEFAULT_ITERATIONS,
        kdf: Scheme | None = None,
        cache_size: int = 200_000,
        max_attempts: int = 200,
        fee_schedule: Sequence[FeePeriod] | Mapping[Operator, Sequence[FeePeriod]] = (
            DEFAULT_SCHEDULE
        ),
        create: bool = True,
        cipher_key: str | None = None,
        contract: int | None = None,
        master_key: str | None = None,
    ) -> None:
        if contract is not None:
            policy = attrs.evolve(policy, contract=cmd.check_contract(contract))
        else:
            cmd.check_contract(policy.contract)
        settings = dict(env) if env is not None else {"PERSISTENCE_MODULE": "eventsourcing.popo"}
        settings.update(cipher_env(cipher_key))
        settings.update(master_env(master_key))
        if not create:
            check_store(settings)
            settings["CREATE_TABLE"] = "n"
        try:
            self._store = EventStoreApplication(settings)
            if not create:
                self._store.recorder.max_notification_id()  # a store, not just a database?
            self._check_key()
        except BaseException as e:
            opened = getattr(self, "_store", None)
            if opened is not None:  # closed here, not by the garbage collector (eventstore)
                with contextlib.suppress(Exception):
                    opened.close()
            if isinstance(e, MatomeError) or not isinstance(e, Exception):
                raise
            translated = translate_store_error(e, settings)
            if translated is None:
                raise
            missing = ("does not exist", "not a matome store")
            if not create and any(m in translated.message for m in missing):
                cause = translated.message.rsplit(": ", 1)[-1].splitlines()[0]
                raise StoreNotFound(
                    f"there is no matome store in {describe(settings)} ({cause})"
                ) from e
            raise translated from e
        self._commands = CommandService(
            self._store,
            policy=policy,
            hash_iterations=hash_iterations,
            kdf=kdf,
            cache_size=cache_size,
            max_attempts=max_attempts,
        )
        self.policy = policy
        self.fee_schedule = fee_schedule
        self._views: tuple[Projection, Documents] | None = None
        self._views_lock = threading.Lock()

    def _check_key(self) -> None:
        """Fail at once, not at the first read, when the events cannot be decrypted (a wrong
        key) or are encrypted and no key was given."""
        first = self._store.recorder.select_notifications(start=1, limit=1)
        if not first:
            return
        try:
            self._store.event_mapper.stored_state(first[0])
        except Exception:
            store = describe(self._store.store_settings)
            if self._store.event_mapper.cipher:
                raise StoreUnavailable(
                    f"{store}: its events cannot be decrypted with this key (wrong "
                    "MATOME_CIPHER_KEY?)"
                ) from None
            raise StoreUnavailable(
                f"{store}: its events cannot be read — encrypted? set MATOME_CIPHER_KEY"
            ) from None

    @classmethod
    def open(
        cls,
        db: str | None = None,
        *,
        policy: Policy = DEFAULT_POLICY,
        hash_iterations: int = DEFAULT_ITERATIONS,
        kdf: Scheme | None = None,
        fee_schedule: Sequence[FeePeriod] | Mapping[Operator, Sequence[FeePeriod]] = (
            DEFAULT_SCHEDULE
        ),
        create: bool = True,
        cipher_key: str | None = None,
        contract: int | None = None,
        master_key: str | None = None,
    ) -> Engine:
        """An engine on the store named by ``db`` (see
        :func:`matome.application.eventstore.store_env`).

        With ``create=False`` a store that does not exist is ``store_not_found`` instead of
        being created (what the read-only commands of the CLI do).  ``kdf`` sets the password
        hashing (:data:`matome.credentials.PRODUCTION` by default; ``hash_iterations`` below
        200,000, matome 0.1's knob, asks for the cheap :data:`~matome.credentials.TESTING`).
        ``cipher_key`` (or ``MATOME_CIPHER_KEY``) encrypts events and personal data at rest.
        ``contract`` is the interchange contract the commands are read and decided under
        (docs/contract.md, "Contract versions"): by default the ``policy``'s, which is 2,
        forever; 3 adds the rules that refuse what contract 2 accepted.
        ``master_key`` (or ``MATOME_MASTER_KEY``, or the file ``MATOME_MASTER_KEY_FILE``) wraps
        the per-Passport-ID keys of the personal data (crypto-shredding); without one, a key
        file beside the SQLite store (``<store>.master-key``) or in
        ``~/.config/matome/master.key`` for PostgreSQL is made on first need (docs/audit.md).
        """
        return cls(
            store_env(db),
            policy=policy,
            hash_iterations=hash_iterations,
            kdf=kdf,
            fee_schedule=fee_schedule,
            create=create,
            cipher_key=cipher_key,
            contract=contract,
            master_key=master_key,
        )

    @property
    def contract(self) -> int:
        """The interchange contract this engine reads and decides commands under."""
        return self.policy.contract

    # -----------------------------------------------------------------------------------------
    # The machinery underneath (matome's own tools, tests and benchmarks; not public API)

    @property
    def internals(self) -> EngineInternals:
        """The machinery under the engine — the store's settings, recorder and mapper, raw event
        streams, the views, the credential hasher — for matome's own tools, tests and
        benchmarks.  Not public API: it may change in any release (CHANGELOG.md, "Version
        policy")."""
        return EngineInternals(self)  # made on demand: no engine ⇄ internals reference cycle

    if not TYPE_CHECKING:  # the type checker knows only the new names

        def __getattr__(self, name: str) -> Any:
            # The earlier names of the internals: still answered at run time, not listed.
            if name in _MOVED_TO_INTERNALS:
                return getattr(self.internals, name)
            raise AttributeError(f"{type(self).__name__!r} object has no attribute {name!r}")

    @_guarded
    def log_position(self, log_id: str) -> LogPosition | None:
        """How far the command log known by ``log_id`` was applied to this store, if at all."""
        return self._store.matome_recorder.log_position(log_id)

    @_guarded
    def complete_billing(self, at: datetime | None = None) -> int:
        """Issue every bill of the closed months that an interrupted billing run left unissued;
        return how many.

        The bills carry the business time ``at`` — by default that of the ``issue_bills``
        that closed their month, as an uninterrupted run would have (the wall clock is never a
        business time).  The billing process resumes from its tracking position (see
        :class:`matome.billing.BillingProcess`)."""
        if not billing_behind(self._store):
            return 0  # the usual case (two short reads): nothing was cut short
        return self._run_billing(None, at)

    def close(self) -> None:
        """Close the views' and the event store's connections, and stop the key-derivation
        threads (a service that opens an engine per tenant or per request must not keep
        them)."""
        if self._commands.pool is not None:
            self._commands.pool.close()
        if self._views is not None:
            self._views[0].store.close()
        self._store.close()

    # -----------------------------------------------------------------------------------------
    # Commands

    @_guarded
    def execute(self, command: cmd.Command[R], position: LogPosition | None = None) -> R:
        """Decide and record one command; return its result or raise its refusal.

        A command is followed by the processes its class names (``FOLLOWED_BY``), run to
        completion before it returns, also when it is answered again for its key:
        ``issue_bills`` by the billing process, so the bills are issued when it returns, and
        an interrupted run is completed by issuing the same month again.  ``position``
        records how far a command log was applied (:mod:`matome.interchange`), and claims it:
        if the store has that log recorded at or past the command already (another run of
        it got there first), nothing is recorded and
        :class:`~matome.application.eventstore.LogPositionTaken` is raised.
        """
        cmd.admit(command, self.policy.contract)
        result = self._commands.execute(command, position)
        for process in command.FOLLOWED_BY:
            self._processes[process]()
        return result

    @_guarded
    def execute_batch(
        self, items: Sequence[tuple[cmd.Command[Any], LogPosition | None]]
    ) -> list[cmd.Result | MatomeError]:
        """Decide ``items`` in order and record them together; return each one's result or
        refusal, exactly as :meth:`execute` one at a time would (see
        :meth:`matome.application.service.CommandService.execute_batch`).

        Commands that cannot share a transaction (``ALONE``: ``issue_bills``,
        ``erase_personal_data``) run alone, in their place.  A batch that waited too long for
        the store's lock is executed again one command at a time.  A failure of the store
        raises (nothing of the batch is kept)."""
        out: list[cmd.Result | MatomeError] = []
        run: list[tuple[cmd.Command[Any], LogPosition | None]] = []

        def flush() -> None:
            if not run:
                return
            try:
                out.extend(self._commands.execute_batch(run))
            except LogPositionTaken as e:
                e.done = out + e.done  # what this call recorded before stands
                raise
            except Exception as e:
                seen = (
                    e
                    if isinstance(e, MatomeError)
                    else translate_store_error(e, self._store.store_settings)
                )
                if not isinstance(seen, Busy):
                    raise
                try:
                    for command, position in run:
                        out.append(self._one(command, position))
                except LogPositionTaken as taken:
                    taken.done = out + taken.done
                    raise
            run.clear()

        for command, position in items:
            try:
                cmd.admit(command, self.policy.contract)
            except InvalidInput as refused:
                flush()  # results stay in order: this one is refused in its place
                out.append(refused)
                continue
            if command.ALONE:
                flush()
                try:
                    out.append(self._one(command, position))
                except LogPositionTaken as e:
                    e.done = out + e.done
                    raise
            else:
                run.append((command, position))
        flush()
        return out

    def _one(
        self, command: cmd.Command[Any], position: LogPosition | None
    ) -> cmd.Result | MatomeError:
        try:
            result: cmd.Result = self.execute(command, position)
        except (StoreUnavailable, StoreNotFound):
            raise
        except MatomeError as e:
            return e
        return result

    # -----------------------------------------------------------------------------------------
    # The billing run and the documents (from the views)

    @property
    def _processes(self) -> dict[str, Callable[[], int]]:
        """The processes a command may be followed by (``Command.FOLLOWED_BY``), by name."""
        return {cmd.BILLING_PROCESS: self._run_billing}

    @_guarded
    def _run_billing(self, through: YearMonth | None = None, at: datetime | None = None) -> int:
        """Run the billing process (:class:`matome.billing.BillingProcess`) to completion, or up
        to ``through``; with ``at``, every bill it issues carries that business time.  Return
        how many bills it issued."""
        if not billing_behind(self._store):
            return 0  # the usual case, known without opening the views
        projection, documents = self._view_pair()
        return BillingProcess(self._store, projection, documents).run(through=through, at=at)

    @_guarded
    def _view_pair(self) -> tuple[Projection, Documents]:
        """The billing projection and its document queries (created on first use)."""
        with self._views_lock:
            if self._views is None:
                settings = self._store.store_settings
                views = open_view_store(settings, self._store.shared_pool())
                projection = Projection(self._store, views)
                self._views = (projection, Documents(projection, self.policy, self.fee_schedule))
            return self._views

    def _documents(self) -> Documents:
        projection, documents = self._view_pair()
        projection.catch_up()
        return documents

    @_guarded
    def bill(self, customer_id: CustomerId | str, month: YearMonth | str) -> Bill:
        """The bill of one line for one month (docs/contract.md, "Bill")."""
        return self._documents().bill(_cid(customer_id), _month(month))

    @_guarded
    def statement(
        self,
        customer_id: CustomerId | str,
        month: YearMonth | str,
        *,
        passport_id: PassportId | str | None = None,
        page: int = 1,
        per_page: int = 50,
    ) -> Statement:
        """The usage statement [ご利用明細] of a line for a month, paged (§7)."""
        pid = None if passport_id is None else str(passport_id)
        return self._documents().statement(
            _cid(customer_id), _month(month), pid, page=page, per_page=per_page
        )

    @_guarded
    def provider_contacts(self, customer_id: CustomerId | str) -> list[Contact]:
        """The providers a line has bought from, with contacts [お問合せ先一覧] (§7)."""
        return self._documents().provider_contacts(_cid(customer_id))

    @_guarded
    def provider_totals(self, month: YearMonth | str) -> list[ProviderTotal]:
        """Per-provider totals for a month across all lines."""
        return self._documents().provider_totals(_month(month))

    @_guarded
    def settlement(self, month: YearMonth | str) -> list[SettlementLine]:
        """Settlement to providers for a month: gross, lines, average, fee, net (§8)."""
        return self._documents().settlement(_month(month))

    @_guarded
    def continuity(self, customer_id: CustomerId | str | None = None) -> list[ContinuityRow]:
        """The line-move continuity table (§6)."""
        cid = None if customer_id is None else _cid(customer_id)
        return self._documents().continuity(cid)

    @_guarded
    def audit(
        self,
        customer_id: CustomerId | str,
        month: YearMonth | str,
        *,
        as_of: datetime | str | None = None,
        recorded_as_of: datetime | str | None = None,
    ) -> Audit:
        """One line's bill for one month rebuilt from the line's own streams and explained
        charge by charge, as of a business time or as the store knew it at a recorded time
        (see :mod:`matome.audit`)."""
        return audit_line(
            self._store,
            CustomerId(_cid(customer_id)),
            _month(month),
            self.policy,
            as_of=_instant(as_of, "as_of"),
            recorded_as_of=_instant(recorded_as_of, "recorded_as_of"),
        )

    @_guarded
    def verify(
        self,
        progress: Progress | None = None,
        *,
        against: Mapping[str, Any] | None = None,
        public_key: bytes | None = None,
    ) -> Verification:
        """Check every hash chain (each stream's and the global one), personal value and
        issued bill of the store, and what the views show of the issued bills; with
        ``against`` (a seal, :func:`matome.verify.read_seal`) and the trusted ``public_key``
        (PEM), that the store still extends it (see :mod:`matome.verify`)."""
        key = None if public_key is None else public_key_from_pem(public_key)
        projection, _ = self._view_pair()
        # The views at their current schema and position (as ``matome bill`` reads them):
        # an old store's views are rebuilt first.  A log the views cannot take (an unreadable
        # event) is a break the chain checks report; the views are still checked up to the
        # position they reached.
        with contextlib.suppress(Exception):
            projection.catch_up()
        return verify_store(
            self._store, self.policy, progress, views=projection, against=against, public_key=key
        )

    @_guarded
    def seal(
        self, private_key: bytes, progress: Progress | None = None
    ) -> tuple[Verification, dict[str, Any] | None]:
        """Verify the store and, if it is intact, sign a checkpoint of its global chain with
        the seal key (PEM, ``matome keygen --seal``): the verification, and the seal
        (``None`` when the store does not verify: a broken history is never sealed)."""
        key = private_key_from_pem(private_key)
        verification = self.verify(progress)
        return verification, make_seal(verification, key) if verification.ok else None

    @_guarded
    def follow(
        self,
        should_stop: Callable[[], bool],
        *,
        poll: float = 1.0,
        progress: Progress | None = None,
    ) -> int:
        """Keep the views up to date with the log until ``should_stop()`` (a projection
        worker: see :meth:`matome.projections.runner.Projection.follow`)."""
        projection, _ = self._view_pair()
        return projection.follow(should_stop, poll=poll, progress=progress)

    @_guarded
    def rebuild_views(self, progress: Progress | None = None) -> int:
        """Drop the read models and replay the whole log into them."""
        projection, _ = self._view_pair()
        return projection.rebuild(progress)

    # -----------------------------------------------------------------------------------------
    # Queries of aggregate state

    @_guarded
    def line(self, customer_id: CustomerId | str) -> AccessLine | None:
        """The line's current state, or ``None``."""
        cid = customer_id if isinstance(customer_id, CustomerId) else CustomerId(customer_id)
        state: AccessLine | None = self._commands.cache.get(line_id(cid), project_line)
        return state

    @_guarded
    def passport(self, passport_id: PassportId | str) -> Passport | None:
        """The Passport ID's current state (also when deleted), or ``None``."""
        pid = passport_id if isinstance(passport_id, PassportId) else PassportId(passport_id)
        state: Passport | None = self._commands.cache.get(passport_id_stream(pid), project_passport)
        return state

    @_guarded
    def subscription(self, receipt: str) -> Subscription | None:
        """The purchase with that receipt number, or ``None``."""
        if not isinstance(receipt, str):
            raise InvalidInput(f"receipt must be a string, got {type(receipt).__name__}")
        state: Subscription | None = self._commands.cache.get(
            subscription_id(require_text(receipt, "receipt")), project_subscription
        )
        return state

    @_guarded
    def provider(self, code: ProviderCode | str) -> Provider | None:
        """A provider with its listed services, or ``None``."""
        p = code if isinstance(code, ProviderCode) else ProviderCode(code)
        state: Provider | None = self._commands.cache.get(provider_id(p), project_provider)
        return state

    @_guarded
    def usage_status(self, customer_id: CustomerId | str) -> UsageStatus:
        """The usage status of a line and its Passport IDs (rules §2; see
        :func:`matome.documents.compose_usage_status`)."""
        line = self.line(customer_id)
        if line is None:
            raise UnknownLine(f"no access line {customer_id}")
        passports = {}
        for pid, limit in line.passports.items():
            state = self.passport(pid)
            locked, line_auth = (state.locked, state.line_auth) if state else (False, False)
            passports[pid] = (limit, locked, line_auth)
        return compose_usage_status(line.customer_id, line.regulated, passports)

    @_guarded
    def closed_through(self) -> YearMonth | None:
        """The latest closed billing month, if any."""
        calendar: Calendar | None = self._commands.cache.get(CALENDAR_ID, project_calendar)
        return None if calendar is None else calendar.closed_through
