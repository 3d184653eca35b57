"""Business time: explicit on every command, with an offset, and chronological per line.

docs/contract.md "Command log": ``at`` is ISO-8601 *with* an offset (a naive time is an error).  A
line's history (its IDs, their purchases) is decided in time order: a command dated before the
latest event it decides against would judge the past by the future, so it is ``invalid_input``.
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from matome.engine import Engine
from matome.errors import InvalidInput, UnknownProvider
from tests.unit.helpers import (
    CID,
    ITEM,
    MONTHLY,
    PID,
    WRONG,
    add_provider,
    buy,
    cancel,
    open_line,
    refused,
    register,
    setup_world,
)


@pytest.mark.parametrize("at", ["2024-02-01T10:00:00", "2024-02-01", "yesterday", ""])
def test_a_command_time_must_be_iso_8601_with_an_offset(engine: Engine, at: str) -> None:
    """docs/contract.md "Command log": a naive time is an error."""
    setup_world(engine)
    with refused(engine, InvalidInput):
        buy(engine, at, ITEM)


def test_a_datetime_object_with_any_offset_is_accepted(engine: Engine) -> None:
    setup_world(engine)
    minus_five = timezone(timedelta(hours=-5))
    engine.purchase(
        at=datetime(2024, 2, 1, 10, 0, tzinfo=minus_five),
        passport_id=PID,
        password="Pass1234",
        provider="A",
        service=ITEM,
    )


def test_a_naive_datetime_object_is_refused(engine: Engine) -> None:
    setup_world(engine)
    with refused(engine, InvalidInput):
        engine.purchase(
            at=datetime(2024, 2, 1, 10, 0),  # naive on purpose
            passport_id=PID,
            password="Pass1234",
            provider="A",
            service=ITEM,
        )


def test_a_command_dated_before_the_latest_event_of_its_line_is_refused(engine: Engine) -> None:
    """Commands on a line must come in time order."""
    setup_world(engine)
    buy(engine, "2024-02-10T10:00:00+09:00", ITEM)
    with refused(engine, InvalidInput) as info:
        buy(engine, "2024-02-09T10:00:00+09:00", ITEM)
    assert "time order" in info.value.message
    with refused(engine, InvalidInput):
        engine.change_line_limit(at="2024-01-01T00:00:00+09:00", customer_id=CID, line_limit=1)


def test_the_same_instant_is_not_out_of_order(engine: Engine) -> None:
    setup_world(engine)
    buy(engine, "2024-02-10T10:00:00+09:00", ITEM)
    buy(engine, "2024-02-10T01:00:00+00:00", ITEM)  # the same instant in UTC


def test_time_order_compares_instants_not_written_clock_times(engine: Engine) -> None:
    """10:00+09:00 is 01:00 UTC, so 02:00+00:00 is later although its clock reads earlier."""
    setup_world(engine)
    buy(engine, "2024-02-10T10:00:00+09:00", ITEM)
    buy(engine, "2024-02-10T02:00:00+00:00", ITEM)
    with refused(engine, InvalidInput):
        buy(engine, "2024-02-10T00:59:59+00:00", ITEM)


def test_other_lines_are_not_held_back_by_a_lines_later_events(engine: Engine) -> None:
    """Time order is per line: another line may be decided at an earlier business time."""
    setup_world(engine)
    buy(engine, "2024-03-10T10:00:00+09:00", MONTHLY)
    open_line(engine, "CAF0000000002", at="2024-02-01T00:00:00+09:00")
    register(engine, "other.9", customer_id="CAF0000000002", at="2024-02-02T00:00:00+09:00")


def test_a_provider_does_not_exist_before_its_registration(engine: Engine) -> None:
    """Business time decides: a provider registered later is unknown earlier."""
    add_provider(engine, at="2024-03-01T00:00:00+09:00")
    open_line(engine)
    register(engine)
    with refused(engine, UnknownProvider):
        buy(engine, "2024-02-01T10:00:00+09:00", ITEM)
    buy(engine, "2024-03-01T00:00:00+09:00", ITEM)


def test_a_cancel_decides_against_the_passport_id_that_bought_it(engine: Engine) -> None:
    """§7 Decision with contract 2's ``cancel`` (the buyer's password is checked, and counted,
    on the Passport ID): a cancel dated before that ID's latest event is out of time order —
    ``invalid_input``, which ranks before the wrong password, so nothing is counted."""
    setup_world(engine)
    receipt = buy(engine, "2024-02-01T10:00:00+09:00", MONTHLY).receipt
    buy(engine, "2024-02-10T10:00:00+09:00", ITEM)
    with refused(engine, InvalidInput):
        cancel(engine, "2024-02-05T10:00:00+09:00", receipt, password=WRONG)
    passport = engine.passport(PID)
    assert passport is not None
    assert passport.consecutive_failures == 0
    cancel(engine, "2024-02-10T10:00:00+09:00", receipt)
