"""Bounds on input (contract 2): docs/rules.md §1 "Money" and docs/contract.md "Command log".

Every amount in a command (price, limit, cap, refund, fee) is 0–99,999,999 yen, so every sum
fits a 64-bit integer; ``at`` lies between 2000-01-01 and 2099-12-31 (Tokyo dates); beyond
them the command is ``invalid_input``, naming the field, and writes nothing.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from matome.engine import Engine
from matome.errors import InvalidInput, LimitExceeded
from matome.interchange import MAX_LINE_BYTES, parse_line
from matome.values import MAX_YEN, Yen
from tests.unit.helpers import (
    BILLING,
    CID,
    ITEM,
    KEY,
    MONTHLY,
    PID,
    PROVIDER,
    buy,
    open_line,
    refused,
    register,
    setup_world,
)

TOO_MUCH = [MAX_YEN + 1, 10**25, 2**63]

AT = "2024-02-01T10:00:00+09:00"

#: Each yen field of the contract's commands: (field name, command with that amount).
YEN_FIELDS: list[tuple[str, Callable[[Engine, str, int], Any]]] = [
    (
        "line_limit",
        lambda e, r, y: e.open_line(
            at=AT,
            customer_id="CAF0000000005",
            operator="west",
            kind="hikari_next",
            access_key=KEY,
            line_limit=y,
            billing=BILLING,
        ),
    ),
    ("line_limit", lambda e, r, y: e.change_line_limit(at=AT, customer_id=CID, line_limit=y)),
    (
        "price",
        lambda e, r, y: e.list_service(
            at=AT, provider=PROVIDER, service="dear", name="dear", pricing="per_purchase", price=y
        ),
    ),
    ("limit", lambda e, r, y: register(e, "hanako.2", at=AT, limit=y)),
    (
        "limit",
        lambda e, r, y: e.change_passport_limit(at=AT, passport_id=PID, access_key=KEY, limit=y),
    ),
    ("amount", lambda e, r, y: e.refund(at=AT, receipt=r, amount=y, reason="x")),
    (
        "flat_fee",
        lambda e, r, y: e.set_fee(at=AT, operator="east", effective_from="2024-02", flat_fee=y),
    ),
]


@pytest.mark.parametrize("amount", TOO_MUCH)
@pytest.mark.parametrize(
    ("field", "command"),
    [pytest.param(f, c, id=f"{f}-{n}") for n, (f, c) in enumerate(YEN_FIELDS)],
)
def test_a_yen_amount_above_99_999_999_is_invalid_input_naming_the_field(
    engine: Engine, field: str, command: Callable[[Engine, str, int], Any], amount: int
) -> None:
    """§1 (contract 2): every amount in a command is 0–99,999,999 yen; anything else is
    ``invalid_input`` naming the field — a price of 10**25 is refused, never stored."""
    setup_world(engine)
    receipt = buy(engine, "2024-01-10T10:00:00+09:00", MONTHLY).receipt
    with refused(engine, InvalidInput) as info:
        command(engine, receipt, amount)
    assert field in info.value.message


def test_99_999_999_yen_is_a_valid_amount(engine: Engine) -> None:
    """§1: the bound itself is a valid amount."""
    open_line(engine, line_limit=MAX_YEN)
    engine.change_line_limit(at=AT, customer_id=CID, line_limit=MAX_YEN)
    engine.register_provider(
        at=AT, provider=PROVIDER, name="A Co.", contact="0120", goods="information"
    )
    engine.list_service(
        at=AT, provider=PROVIDER, service="dear", name="dear", pricing="monthly", price=MAX_YEN
    )
    engine.set_fee(at=AT, operator="west", effective_from="2024-02", flat_fee=MAX_YEN)
    register(engine, at=AT, limit=5000)
    engine.change_passport_limit(at=AT, passport_id=PID, access_key=KEY, limit=MAX_YEN)
    receipt = buy(engine, AT, "dear").receipt
    engine.refund(at=AT, receipt=receipt, amount=MAX_YEN, reason="x")


def test_the_largest_price_times_the_largest_quantity_stays_an_exact_integer(
    engine: Engine,
) -> None:
    """§1: bounded amounts keep every sum in a 64-bit integer: 99,999,999 × 99 is charged
    exactly (and refused by the limit, not by an overflow)."""
    setup_world(engine)
    engine.list_service(
        at=AT, provider=PROVIDER, service="dear", name="dear", pricing="per_purchase", price=MAX_YEN
    )
    with refused(engine, LimitExceeded) as info:
        buy(engine, "2024-02-02T10:00:00+09:00", "dear", quantity=99)
    assert f"{Yen(MAX_YEN * 99)}" in info.value.message


@pytest.mark.parametrize(
    "at",
    [
        "1999-12-31T23:59:59+09:00",
        "1999-12-31T14:59:59+00:00",
        "2100-01-01T00:00:00+09:00",
        "2099-12-31T15:00:00+00:00",
        "0001-01-01T00:00:00+00:00",
        "9999-12-31T23:59:59+00:00",
    ],
)
def test_a_business_time_outside_2000_to_2099_is_invalid_input(engine: Engine, at: str) -> None:
    """docs/contract.md "Command log" bounds: ``at`` between 2000-01-01 and 2099-12-31 (Tokyo
    dates)."""
    setup_world(engine)
    with refused(engine, InvalidInput) as info:
        buy(engine, at, ITEM)
    assert "at" in info.value.message
    with refused(engine, InvalidInput):
        open_line(engine, "CAF0000000005", at=at)


@pytest.mark.parametrize("at", ["2000-01-01T00:00:00+09:00", "1999-12-31T15:00:00+00:00"])
def test_the_first_day_of_2000_in_tokyo_is_within_the_bounds(engine: Engine, at: str) -> None:
    open_line(engine, at=at)


@pytest.mark.parametrize("month", ["1999-12", "2100-01", "0001-01"])
def test_a_month_outside_the_bounds_is_invalid_input(engine: Engine, month: str) -> None:
    with refused(engine, InvalidInput):
        engine.issue_bills(at="2099-12-31T00:00:00+09:00", month=month)


def test_a_command_log_line_over_64_kib_is_invalid_input() -> None:
    """docs/contract.md "Command log" bounds: a line of at most 64 KiB."""
    padding = " " * (MAX_LINE_BYTES + 1)
    with pytest.raises(InvalidInput, match="at most 65,536"):
        parse_line(
            '{"command": "issue_bills", "at": "2024-02-01T00:00:00+09:00",'
            + padding
            + '"month": "2024-01"}'
        )


def test_a_duplicate_key_in_a_command_log_line_is_invalid_input() -> None:
    """docs/contract.md "Command log" bounds: no duplicate keys in one object (a wrong and a right
    password must not pass as either)."""
    with pytest.raises(InvalidInput, match="twice"):
        parse_line(
            '{"command": "cancel", "at": "2024-02-01T00:00:00+09:00", "receipt": "R1", '
            '"password": "Wrong123", "password": "Pass1234"}'
        )


def test_a_yen_amount_above_the_bound_in_a_command_log_line_is_invalid_input() -> None:
    with pytest.raises(InvalidInput, match="price"):
        parse_line(
            '{"command": "list_service", "at": "2024-02-01T00:00:00+09:00", "provider": "A", '
            '"service": "x", "name": "x", "pricing": "monthly", '
            '"price": 10000000000000000000000000}'
        )
