"""Order of precedence of error codes: INTERCHANGE.md, "Results".

When several refusals apply, the first in this order is reported: invalid_input;
idempotency_conflict; month_closed; unknown_*; duplicate; line_regulated; locked_out;
wrong_password; line_auth_failed; not_allowed_online, consent_required; registration_closed;
too_many_passports; registration_limit_exceeded; limit_sum_exceeded; limit_exceeded;
not_cancellable, refund_exceeds_charge.  And a refused command writes nothing.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest

from matome.engine import Engine
from matome.errors import (
    ERROR_CLASSES,
    ERROR_PRECEDENCE,
    DuplicateError,
    IdempotencyConflict,
    InvalidInput,
    LimitSumExceeded,
    LineAuthFailed,
    LineRegulated,
    LockedOut,
    MatomeError,
    MonthClosed,
    RegistrationClosed,
    RegistrationLimitExceeded,
    TooManyPassports,
    UnknownLine,
    UnknownService,
    WrongPassword,
)
from tests.unit.helpers import (
    CID,
    CID2,
    EAST_CID,
    ITEM,
    MONTHLY,
    PID,
    add_provider,
    buy,
    event_count,
    open_line,
    refused,
    register,
    setup_world,
)

WRONG = "Wrong123"


def test_the_precedence_table_lists_every_contract_code_in_the_contract_order() -> None:
    """INTERCHANGE.md: the order of precedence, as the engine declares it."""
    flat = [code for rank in ERROR_PRECEDENCE for code in rank]
    contract = [
        "invalid_input",
        "idempotency_conflict",
        "month_closed",
        "unknown_line",
        "duplicate",
        "line_regulated",
        "locked_out",
        "wrong_password",
        "line_auth_failed",
        "not_allowed_online",
        "registration_closed",
        "too_many_passports",
        "registration_limit_exceeded",
        "limit_sum_exceeded",
        "limit_exceeded",
        "not_cancellable",
    ]
    positions = [flat.index(code) for code in contract]
    assert positions == sorted(positions)
    assert set(flat) == set(ERROR_CLASSES)
    assert len(flat) == len(set(flat))


def test_a_purchase_in_a_closed_month_with_an_unknown_passport_id_is_month_closed(
    engine: Engine,
) -> None:
    """INTERCHANGE.md example: month_closed even if the Passport ID is unknown."""
    setup_world(engine)
    engine.issue_bills(at="2024-03-01T00:00:00+09:00", month="2024-02")
    with refused(engine, MonthClosed):
        buy(engine, "2024-02-15T10:00:00+09:00", passport_id="nobody")


def test_a_wrong_password_on_a_regulated_line_is_line_regulated_and_not_counted(
    engine: Engine,
) -> None:
    """INTERCHANGE.md example: a wrong password on a regulated line is line_regulated; as the
    password was never judged, no failure is counted (nothing is written)."""
    setup_world(engine)
    engine.regulate_line(at="2024-02-01T00:00:00+09:00", customer_id=CID)
    with refused(engine, LineRegulated):
        buy(engine, "2024-02-02T10:00:00+09:00", ITEM, password=WRONG)
    passport = engine.passport(PID)
    assert passport is not None
    assert passport.consecutive_failures == 0


def test_invalid_input_comes_before_everything(engine: Engine) -> None:
    """A malformed password on an unknown ID in a closed month is still invalid_input."""
    setup_world(engine)
    engine.issue_bills(at="2024-03-01T00:00:00+09:00", month="2024-02")
    with refused(engine, InvalidInput):
        buy(engine, "2024-02-15T10:00:00+09:00", passport_id="nobody", password="no!")


def test_idempotency_conflict_comes_before_month_closed(engine: Engine) -> None:
    setup_world(engine)
    buy(engine, "2024-02-15T10:00:00+09:00", ITEM, key="k")
    engine.issue_bills(at="2024-03-01T00:00:00+09:00", month="2024-02")
    with refused(engine, IdempotencyConflict):
        buy(engine, "2024-02-16T10:00:00+09:00", ITEM, key="k")


def test_unknown_comes_before_duplicate(engine: Engine) -> None:
    """A Passport ID that exists (duplicate) registered on an unknown line: unknown_line."""
    setup_world(engine)
    with refused(engine, UnknownLine):
        register(engine, PID, customer_id=CID2, at="2024-02-01T00:00:00+09:00")


def test_unknown_service_comes_before_a_duplicate_or_wrong_password(engine: Engine) -> None:
    setup_world(engine)
    with refused(engine, UnknownService):
        buy(engine, "2024-02-01T10:00:00+09:00", "nothing", password=WRONG)


def test_duplicate_comes_before_line_regulated(engine: Engine) -> None:
    setup_world(engine)
    engine.regulate_line(at="2024-02-01T00:00:00+09:00", customer_id=CID)
    with refused(engine, DuplicateError):
        register(engine, PID, at="2024-02-02T00:00:00+09:00")


def test_a_duplicate_subscription_with_a_wrong_password_is_duplicate_and_not_counted(
    engine: Engine,
) -> None:
    setup_world(engine)
    buy(engine, "2024-02-01T10:00:00+09:00", MONTHLY)
    with refused(engine, DuplicateError):
        buy(engine, "2024-02-02T10:00:00+09:00", MONTHLY, password=WRONG)


def test_line_regulated_comes_before_locked_out(engine: Engine) -> None:
    setup_world(engine)
    for n in range(10):
        with pytest.raises(WrongPassword):
            buy(engine, f"2024-02-01T10:{n:02d}:00+09:00", ITEM, password=WRONG)
    engine.regulate_line(at="2024-02-02T00:00:00+09:00", customer_id=CID)
    with refused(engine, LineRegulated):
        buy(engine, "2024-02-03T10:00:00+09:00", ITEM)


def test_locked_out_comes_before_wrong_password(engine: Engine) -> None:
    setup_world(engine)
    for n in range(10):
        with pytest.raises(WrongPassword):
            buy(engine, f"2024-02-01T10:{n:02d}:00+09:00", ITEM, password=WRONG)
    with refused(engine, LockedOut):
        buy(engine, "2024-02-03T10:00:00+09:00", ITEM, password=WRONG)


def test_wrong_password_comes_before_line_auth_failed_and_limit_exceeded(engine: Engine) -> None:
    setup_world(engine, line_auth=True, limit=0)
    with pytest.raises(WrongPassword):
        buy(engine, "2024-02-01T10:00:00+09:00", ITEM, password=WRONG, presented_line=CID2)


def test_line_auth_failed_comes_before_goods_not_offered_and_limit_exceeded(
    engine: Engine,
) -> None:
    setup_world(engine, line_auth=True, limit=0)
    add_provider(engine, "G", goods="physical")
    with refused(engine, LineAuthFailed):
        buy(engine, "2024-02-01T10:00:00+09:00", ITEM, provider="G", presented_line=CID2)


def test_line_regulated_comes_before_registration_closed(engine: Engine) -> None:
    setup_world(engine)
    engine.regulate_line(at="2024-12-05T00:00:00+09:00", customer_id=CID)
    with refused(engine, LineRegulated):
        register(engine, "new.2", at="2024-12-06T00:00:00+09:00", limit=1)


def test_registration_closed_comes_before_too_many_passports(engine: Engine) -> None:
    setup_world(engine, limit=1000)
    for n in range(2, 6):
        register(engine, f"user.{n}", at=f"2024-01-0{n + 4}T00:00:00+09:00", limit=1000)
    with refused(engine, RegistrationClosed):
        register(engine, "user.6", at="2024-12-06T00:00:00+09:00", limit=1000)


def test_too_many_passports_comes_before_the_limit_refusals(engine: Engine) -> None:
    setup_world(engine, line_limit=5000, limit=1000)
    for n in range(2, 6):
        register(engine, f"user.{n}", at=f"2024-01-0{n + 4}T00:00:00+09:00", limit=1000)
    with refused(engine, TooManyPassports):
        register(engine, "user.6", at="2024-01-20T00:00:00+09:00", limit=9000)


def test_registration_limit_exceeded_comes_before_limit_sum_exceeded(engine: Engine) -> None:
    setup_world(engine, line_limit=5500, limit=3000)
    with refused(engine, RegistrationLimitExceeded):
        register(engine, "hanako.2", at="2024-01-06T00:00:00+09:00", limit=5001)
    with refused(engine, LimitSumExceeded):
        register(engine, "hanako.2", at="2024-01-06T00:00:00+09:00", limit=5000)


def test_an_east_provider_registration_after_the_cutoff_still_obeys_the_limits(
    engine: Engine,
) -> None:
    add_provider(engine)
    open_line(engine, EAST_CID, operator="east", kind="b_flets", line_limit=3000)
    with refused(engine, RegistrationLimitExceeded):
        register(
            engine,
            customer_id=EAST_CID,
            at="2025-01-10T00:00:00+09:00",
            limit=6000,
            via_provider="A",
        )
    with refused(engine, LimitSumExceeded):
        register(
            engine,
            customer_id=EAST_CID,
            at="2025-01-10T00:00:00+09:00",
            limit=4000,
            via_provider="A",
        )


# Consolidated-billing representatives are checked after the line itself, so a refusal that
# ranks higher (the self-representative ``invalid_input``, an unknown representative's
# ``unknown_line``) is hidden behind the line's own ``duplicate`` / ``unknown_line``.


def test_open_line_duplicate_with_an_unknown_representative_is_unknown_line(
    engine: Engine,
) -> None:
    """INTERCHANGE.md: the ``unknown_*`` codes come before ``duplicate``."""
    open_line(engine)
    with refused(engine, UnknownLine):
        open_line(
            engine,
            at="2024-02-01T00:00:00+09:00",
            billing={"method": "consolidated", "representative": CID2},
        )


def test_open_line_duplicate_as_its_own_representative_is_invalid_input(engine: Engine) -> None:
    """INTERCHANGE.md: ``invalid_input`` comes first."""
    open_line(engine)
    with refused(engine, InvalidInput):
        open_line(
            engine,
            at="2024-02-01T00:00:00+09:00",
            billing={"method": "consolidated", "representative": CID},
        )


def test_change_billing_of_an_unknown_line_to_itself_is_invalid_input(engine: Engine) -> None:
    """INTERCHANGE.md: ``invalid_input`` comes first."""
    with refused(engine, InvalidInput):
        engine.change_billing(
            at="2024-02-01T00:00:00+09:00",
            customer_id=CID2,
            billing={"method": "consolidated", "representative": CID2},
            reason="wide_area_consolidated",
        )


# ---------------------------------------------------------------------------------------------
# A refused command writes nothing


def test_a_refused_command_writes_nothing(engine: Engine) -> None:
    """INTERCHANGE.md: a refused command changes nothing (besides a counted wrong password)."""
    setup_world(engine, limit=600)
    buy(engine, "2024-02-01T10:00:00+09:00", ITEM)
    receipt = buy(engine, "2024-02-01T10:00:00+09:00", ITEM, key="x").receipt
    notifications = len(list(engine.recorder.select_notifications(start=1, limit=10**9)))
    position = event_count(engine)
    attempts: list[Callable[[], object]] = [
        lambda: buy(engine, "2024-02-02T10:00:00+09:00", ITEM),  # limit_exceeded
        lambda: engine.cancel(at="2024-02-02T10:00:00+09:00", receipt=receipt),  # not_cancellable
        lambda: engine.refund(
            at="2024-02-02T10:00:00+09:00", receipt=receipt, amount=301, reason="x"
        ),
        lambda: engine.change_line_limit(
            at="2024-02-02T10:00:00+09:00", customer_id=CID, line_limit=1
        ),
        lambda: register(engine, "new.2", at="2024-02-02T10:00:00+09:00", limit=5001),
        lambda: engine.lift_regulation(
            at="2024-02-02T10:00:00+09:00", customer_id=CID, channel="online"
        ),
        lambda: engine.issue_bills(at="2024-02-02T10:00:00+09:00", month="2024-02"),
        lambda: engine.change_passport_details(
            at="2024-12-02T00:00:00+09:00", passport_id=PID, email="a@b.jp"
        ),
        lambda: open_line(engine, at="2024-02-02T10:00:00+09:00"),
    ]
    for attempt in attempts:
        with pytest.raises(MatomeError):
            attempt()
    assert len(list(engine.recorder.select_notifications(start=1, limit=10**9))) == notifications
    assert event_count(engine) == position
