"""The kit's state machine: the engine agrees with the reference model, and the kit has teeth.

``test_engine_agrees_with_the_reference_model`` runs the machine under the loaded profile
(``ci`` in CI).  The mutation tests break one rule of the *engine* through a test seam (a
monkeypatch or a policy setting — never an edit of the source) and require the machine to find
a counterexample and shrink it to a short command log.
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
from matome.aggregates import line as line_aggregate
from matome.aggregates.passport import Passport
from matome.engine import Engine
from matome.events.subscription import CancelReason
from matome.policy import Policy
from matome.testing.machine import BillingMachine
from matome.values import YearMonth, Yen, tokyo_date

TestBilling = BillingMachine.TestCase


def test_engine_agrees_with_the_reference_model_on_sqlite(tmp_path: Any) -> None:
    """The same machine on an SQLite file store (the default store)."""
    counter = iter(range(10**6))

    class OnSQLite(BillingMachine):
        def make_engine(self) -> Engine:
            path = tmp_path / f"m{next(counter)}.sqlite"
            return Engine.open(str(path), policy=self.engine_policy(), hash_iterations=1)

    run_state_machine_as_test(  # type: ignore[no-untyped-call]  # Hypothesis leaves it untyped
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
#: Mutants whose counterexamples Hypothesis needs minutes to shrink: ``pytest -m slow``.
SLOW = {"utc_month_boundaries", "limit_check_off_by_one"}


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


MUTATIONS: dict[str, Callable[[], Any]] = {
    "first_of_month_exception_removed": first_of_month_exception_removed,
    "utc_month_boundaries": utc_month_boundaries,
    "repurchase_charged_twice": repurchase_charged_twice,
    "regulation_not_cancelling": regulation_not_cancelling,
    "limit_check_off_by_one": limit_check_off_by_one,
}


@pytest.mark.parametrize(
    "mutation",
    [pytest.param(m, marks=[pytest.mark.slow] if m in SLOW else []) for m in sorted(MUTATIONS)],
)
def test_the_machine_finds_and_shrinks_a_broken_rule(mutation: str) -> None:
    with MUTATIONS[mutation]() as machine:
        with pytest.raises(AssertionError):
            run_state_machine_as_test(machine, settings=MUTANT_SETTINGS)  # type: ignore[no-untyped-call]
        log = machine.last_log
    setup = ("register_provider", "list_service")
    steps = [c for c in log if c["command"] not in setup][2:]  # after the first customer
    assert 0 < len(steps) <= SHORT, f"{mutation}: counterexample of {len(steps)} steps: {log}"


def test_tokyo_date_is_restored_after_the_utc_mutation() -> None:
    """Guard: the mutations leave no trace for the tests that run after them."""
    at = datetime(2024, 1, 31, 15, 30, tzinfo=UTC)  # 2024-02-01 00:30 in Tokyo
    assert tokyo_date(at).day == 1
