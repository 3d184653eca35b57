"""The kit's state machine: the engine agrees with the reference model, and the kit has teeth.

``test_engine_agrees_with_the_reference_model`` runs the machine under the loaded profile
(``ci`` in CI).  The mutation tests break one rule of the *engine* through a test seam (a
monkeypatch or a policy setting — never an edit of the source) and require the machine to find
a counterexample and shrink it to a short command log — one on which the unbroken engine
agrees with the model, so that it is the planted bug's.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any

import pytest
from hypothesis import HealthCheck, settings
from hypothesis.stateful import run_state_machine_as_test

import matome.charging
import matome.values
from matome.aggregates import decision as decision_module
from matome.aggregates import line as line_aggregate
from matome.aggregates import passport as passport_aggregate
from matome.aggregates.passport import Passport
from matome.engine import Engine
from matome.errors import LockedOut, MatomeError, WrongPassword, rank
from matome.events.subscription import CancelReason
from matome.policy import Policy
from matome.testing.machine import BillingMachine, Disagreement
from matome.values import YearMonth, Yen, tokyo_date

TestBilling = BillingMachine.TestCase


def test_engine_agrees_with_the_reference_model_on_sqlite(tmp_path: Any) -> None:
    """The same machine on an SQLite file store (the default store)."""
    counter = iter(range(10**6))

    class OnSQLite(BillingMachine):
        def make_engine(self) -> Engine:
            path = tmp_path / f"m{next(counter)}.sqlite"
            return Engine.open(str(path), policy=self.engine_policy(), hash_iterations=1)

    run_state_machine_as_test(  # type: ignore[no-untyped-call, unused-ignore]  # Hypothesis leaves it untyped
        OnSQLite, settings=settings(max_examples=5, stateful_step_count=20, deadline=None)
    )


# ---------------------------------------------------------------------------------------------
# Mutations: each breaks one rule of the engine; the machine must notice.

MUTANT_SETTINGS = settings(
    max_examples=400,
    stateful_step_count=30,
    derandomize=True,
    deadline=None,
    suppress_health_check=list(HealthCheck),
    report_multiple_bugs=False,
)
#: A shrunk counterexample must be a log a person can read: after the catalog and the first
#: customer (set up in every run), at most this many commands.
SHORT = 20
#: Mutants whose counterexamples Hypothesis needs most of a minute or more to find and shrink
#: (on a 2-core CI machine: 50-65 s each, minutes for the first three): ``pytest -m slow``.
#: The default run keeps :data:`QUICK` — a planted bug found and shrunk in seconds — so that a
#: kit that lost its teeth still fails every run.
SLOW = {
    "utc_month_boundaries",
    "limit_check_off_by_one",
    "refunds_capped_by_the_price",
    "first_of_month_exception_removed",
    "regulation_not_cancelling",
    "password_checked_before_the_line",
    "new_password_shape_unchecked",
}


@contextmanager
def _replacing(name: str, replacement: Any) -> Iterator[None]:
    """Replace ``name`` in every engine-side matome module that imported it (not the model)."""
    original = getattr(matome.charging, name)
    patched = []
    for module in list(sys.modules.values()):
        mod_name = getattr(module, "__name__", "")
        if not mod_name.startswith("matome.") or mod_name.startswith("matome.testing"):
            continue
        if getattr(module, name, None) is original:
            patched.append(module)
            setattr(module, name, replacement)
    try:
        yield
    finally:
        for module in patched:
            setattr(module, name, original)


def _no_first_of_month_exception(purchased_at: datetime, cancelled_at: datetime | None) -> Any:
    return None if cancelled_at is None else YearMonth.of(cancelled_at)


@contextmanager
def first_of_month_exception_removed() -> Iterator[type[BillingMachine]]:
    """§4 pattern 6: a cancellation on the 1st is charged that month (wrongly)."""
    with _replacing("last_charged_month", _no_first_of_month_exception):
        yield BillingMachine


@contextmanager
def utc_month_boundaries() -> Iterator[type[BillingMachine]]:
    """§4: billing months computed in UTC instead of Asia/Tokyo."""
    original = matome.values.TOKYO
    matome.values.TOKYO = UTC
    try:
        yield BillingMachine
    finally:
        matome.values.TOKYO = original


@contextmanager
def repurchase_charged_twice() -> Iterator[type[BillingMachine]]:
    """§4 patterns 4–5: a cancelled and re-bought monthly service charged again that month."""

    class Mutant(BillingMachine):
        def engine_policy(self) -> Policy:
            return Policy(monthly_once_per_month=False)  # the model keeps the real policy

    yield Mutant


@contextmanager
def regulation_not_cancelling() -> Iterator[type[BillingMachine]]:
    """§5: regulating a line leaves its subscriptions running."""
    original = getattr(line_aggregate, "cancel_holdings")  # noqa: B009 - the name line.py calls

    def cancel_holdings(passport: Any, subs: Any, reason: CancelReason, d: Any) -> Any:
        if reason is CancelReason.REGULATION:
            return passport, []
        return original(passport, subs, reason, d)

    setattr(line_aggregate, "cancel_holdings", cancel_holdings)  # noqa: B010
    try:
        yield BillingMachine
    finally:
        setattr(line_aggregate, "cancel_holdings", original)  # noqa: B010


@contextmanager
def limit_check_off_by_one() -> Iterator[type[BillingMachine]]:
    """§3: a purchase that exactly reaches the limit is refused (spend counted one yen high)."""
    original = Passport.spend

    def spend(self: Passport, month: YearMonth, *, once_per_month: bool) -> Yen:
        return original(self, month, once_per_month=once_per_month) + Yen(1)

    Passport.spend = spend  # type: ignore[method-assign]
    try:
        yield BillingMachine
    finally:
        Passport.spend = original  # type: ignore[method-assign]


@contextmanager
def _setting(module: Any, name: str, replacement: Any) -> Iterator[None]:
    original = getattr(module, name)
    setattr(module, name, replacement)
    try:
        yield
    finally:
        setattr(module, name, original)


def _password_before_line(refusals: list[MatomeError]) -> MatomeError | None:
    """The contract's order, except that locked_out and wrong_password outrank
    line_auth_failed."""

    def mutant_rank(error: MatomeError) -> float:
        if error.code == "line_auth_failed":
            return rank("wrong_password") + 0.5
        return rank(error.code)

    return min(refusals, key=mutant_rank) if refusals else None


@contextmanager
def password_checked_before_the_line() -> Iterator[type[BillingMachine]]:
    """§9, §10 and the refusal order: locked_out and wrong_password are ranked before
    line_auth_failed, so a purchase from the wrong line with a wrong password is counted (and
    someone on another line can lock the ID out).

    The engine's decider does not check the password at all once the line check failed, which
    would hide the ranking; the mutant checks it anyway, as a decider that collects every
    refusal does (harmless under the right ranking: a wrong password is counted only when it
    is the refusal reported).
    """
    original = passport_aggregate.decide_purchase

    def decide_purchase(
        passport: Any, line: Any, provider: Any, c: Any, d: Any, *args: Any, **kw: Any
    ) -> Any:
        result = original(passport, line, provider, c, d, *args, **kw)
        line_failed = (
            passport is not None
            and not passport.deleted
            and line is not None
            and passport.line_auth
            and line.kind.has_line_auth
            and c.presented_line != line.customer_id
        )
        if line_failed and not any(isinstance(e, WrongPassword | LockedOut) for e in d.refusals):
            passport_aggregate.authenticate(passport, c.password, d)
        return result

    with (
        _setting(decision_module, "first_refusal", _password_before_line),
        _setting(passport_aggregate, "decide_purchase", decide_purchase),
    ):
        yield BillingMachine


def _capped_by_the_price(pricing: Any, amount: int, *args: Any, **kwargs: Any) -> int:
    return amount  # one charge, however many months were charged (or none)


@contextmanager
def refunds_capped_by_the_price() -> Iterator[type[BillingMachine]]:
    """§4: refunds capped by the price of one charge instead of what was charged so far (a
    subscription charged for months is under-refundable; a free same-month re-purchase is
    refundable)."""
    with _replacing("charged_so_far", _capped_by_the_price):
        yield BillingMachine


class Contract3Machine(BillingMachine):
    """The machine writing contract-3 logs (docs/rules.md §11): consent to the terms, 12-digit
    phones, new passwords of every shape."""

    policy = Policy(contract=3)


def test_engine_agrees_with_the_reference_model_under_contract_3() -> None:
    """Rules 11.1–11.4: engine and model agree on contract-3 logs (service periods too)."""
    run_state_machine_as_test(  # type: ignore[no-untyped-call, unused-ignore]  # Hypothesis leaves it untyped
        Contract3Machine, settings=settings(max_examples=25, stateful_step_count=25, deadline=None)
    )


@contextmanager
def new_password_shape_unchecked() -> Iterator[type[BillingMachine]]:
    """§10/§11 (contract 3): a new password of digits only, or the current one, accepted."""
    with _setting(passport_aggregate, "check_new_password", lambda *args: None):
        yield Contract3Machine


@contextmanager
def service_period_ignored() -> Iterator[type[BillingMachine]]:
    """§11 (contract 3): a listing's service period never ends a purchase."""
    with _replacing("period_ends_at", lambda *args: None):
        yield Contract3Machine


MUTATIONS: dict[str, Callable[[], Any]] = {
    "service_period_ignored": service_period_ignored,
    "new_password_shape_unchecked": new_password_shape_unchecked,
    "password_checked_before_the_line": password_checked_before_the_line,
    "refunds_capped_by_the_price": refunds_capped_by_the_price,
    "first_of_month_exception_removed": first_of_month_exception_removed,
    "utc_month_boundaries": utc_month_boundaries,
    "repurchase_charged_twice": repurchase_charged_twice,
    "regulation_not_cancelling": regulation_not_cancelling,
    "limit_check_off_by_one": limit_check_off_by_one,
}
#: The mutants of the default run (``-m 'not slow'``): quick to find and shrink.
QUICK = sorted(set(MUTATIONS) - SLOW)


def test_the_default_run_keeps_a_quick_mutation_check() -> None:
    """A kit that no longer finds planted bugs fails the default run, not only ``-m slow``."""
    assert QUICK, "every mutation test is slow: the default run would not notice a toothless kit"
    assert set(MUTATIONS) >= SLOW, f"unknown slow mutants: {SLOW - set(MUTATIONS)}"


@pytest.mark.parametrize(
    "mutation",
    [pytest.param(m, marks=[pytest.mark.slow] if m in SLOW else []) for m in sorted(MUTATIONS)],
)
def test_the_machine_finds_and_shrinks_a_broken_rule(mutation: str) -> None:
    with MUTATIONS[mutation]() as machine:
        with pytest.raises(AssertionError):
            run_state_machine_as_test(machine, settings=MUTANT_SETTINGS)  # type: ignore[no-untyped-call, unused-ignore]
        log = machine.last_log
    setup = ("register_provider", "list_service")
    steps = [c for c in log if c["command"] not in setup][2:]  # after the first customer
    assert 0 < len(steps) <= SHORT, f"{mutation}: counterexample of {len(steps)} steps: {log}"
    # The counterexample is the planted bug's: without it, engine and model agree on it.
    found = _disagreement(log, machine.policy.contract)
    assert found is None, f"{mutation}: {found} without the mutation"


def _disagreement(log: list[dict[str, Any]], contract: int = 2) -> str | None:
    """How the (unbroken) engine and the model disagree on ``log``: answers or bills."""
    machine = Contract3Machine() if contract >= 3 else BillingMachine()
    try:
        for command in log:
            machine.apply(command)
        for line in machine.model.lines():
            for month in machine.model.months():
                machine._check_bill(line, month)
    except Disagreement as e:
        return str(e)
    finally:
        machine.engine.close()
    return None


def test_tokyo_date_is_restored_after_the_utc_mutation() -> None:
    """Guard: the mutations leave no trace for the tests that run after them."""
    at = datetime(2024, 1, 31, 15, 30, tzinfo=UTC)  # 2024-02-01 00:30 in Tokyo
    assert tokyo_date(at).day == 1
