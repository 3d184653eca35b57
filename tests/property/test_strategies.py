"""The kit's strategies generate what they promise: valid values parse, invalid ones are
refused with invalid_input, and generated command logs are answered command by command."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from matome.cli import apply_line
from matome.commands import parse_command
from matome.engine import Engine
from matome.errors import InvalidInput
from matome.testing import strategies as mst
from matome.values import (
    AccessKey,
    Applicant,
    CustomerId,
    CustomerNumber,
    Email,
    PassportId,
    Password,
    PhoneBill,
    YearMonth,
    Yen,
)

VALID: list[tuple[st.SearchStrategy[Any], Callable[[Any], object]]] = [
    (mst.customer_ids(), CustomerId),
    (mst.passport_ids(), PassportId),
    (mst.passwords(), Password),
    (mst.access_keys(), AccessKey),
    (mst.emails(), Email),
    (mst.phones(), lambda p: PhoneBill(p, 6)),
    (mst.applicants(), lambda a: Applicant(**a)),
    (mst.yen(), lambda v: Yen.non_negative(v, "price")),
    (mst.year_months().map(str), YearMonth.parse),
]
INVALID: list[tuple[st.SearchStrategy[Any], Callable[[Any], object]]] = [
    (mst.invalid_customer_ids(), CustomerId),
    (mst.invalid_passport_ids(), PassportId),
    (mst.invalid_passwords(), Password),
    (mst.invalid_access_keys(), AccessKey),
    (mst.invalid_emails(), Email),
    (mst.invalid_phones(), lambda p: PhoneBill(p, 6)),
    (mst.invalid_billing_numbers(), CustomerNumber),
    (mst.invalid_yen(), lambda v: Yen.non_negative(v, "price")),
    (mst.invalid_months(), YearMonth.parse),
    (mst.invalid_cycle_days(), lambda d: PhoneBill("06-1234-5678", d)),
]


@pytest.mark.parametrize(("strategy", "build"), VALID)
def test_valid_value_strategies_build_values(
    strategy: st.SearchStrategy[Any], build: Callable[[Any], object]
) -> None:
    @settings(max_examples=50)
    @given(strategy)
    def check(value: Any) -> None:
        build(value)

    check()


@pytest.mark.parametrize(("strategy", "build"), INVALID)
def test_invalid_value_strategies_are_refused_as_invalid_input(
    strategy: st.SearchStrategy[Any], build: Callable[[Any], object]
) -> None:
    @settings(max_examples=50)
    @given(strategy)
    def check(value: Any) -> None:
        with pytest.raises(InvalidInput):
            build(value)

    check()


@settings(max_examples=50)
@given(mst.commands())
def test_command_strategy_builds_valid_commands(command: Any) -> None:
    assert command.NAME


@settings(max_examples=50)
@given(mst.invalid_commands())
def test_invalid_command_strategy_is_refused_as_invalid_input(obj: dict[str, Any]) -> None:
    with pytest.raises(InvalidInput):
        parse_command(obj)


@settings(max_examples=15)
@given(mst.command_logs(max_steps=30))
def test_generated_logs_are_well_formed_and_mostly_accepted(log: list[dict[str, Any]]) -> None:
    engine = Engine.open(":memory:", hash_iterations=1)
    try:
        results = [apply_line(engine, n, json.dumps(c)) for n, c in enumerate(log, start=1)]
    finally:
        engine.close()
    # Realistic: the malformed-input code never appears, and the catalog and first line are
    # accepted (a history starts from a working world).
    assert not [
        r
        for r in results
        if not r["ok"]
        and r["error"]["code"] == "invalid_input"
        and "time order" not in r["error"]["message"]
    ]
    assert all(
        r["ok"]
        for r in results[
            : len([c for c in log if c["command"] in ("register_provider", "list_service")]) + 1
        ]
    )
    assert json.loads(json.dumps(mst.format_log(log).splitlines()[0]))
