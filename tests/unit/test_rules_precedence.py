"""Order of precedence of error codes: docs/contract.md, "Results" (contract 2).

A key bound to the same body answers its first result before any check.  Otherwise, when
several refusals apply, the first in this order is reported: invalid_input (a command out of
time order included); month_closed; the unknown_* codes; line_auth_failed; locked_out;
wrong_password, wrong_access_key; idempotency_conflict; duplicate; line_regulated;
not_allowed_online, consent_required; goods_not_offered; registration_closed;
too_many_passports; registration_limit_exceeded; limit_sum_exceeded; limit_exceeded;
not_cancellable, refund_exceeds_charge; busy.  Credentials are checked before the state they
guard (a wrong password on a regulated line is ``wrong_password``, and is counted); the line
check comes before the password.  And a refused command writes nothing (but a counted wrong
password).
"""

from __future__ import annotations

from collections.abc import Callable

import pytest

from matome.engine import Engine
from matome.errors import (
    ERROR_CLASSES,
    ERROR_PRECEDENCE,
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
    NotCancellable,
    RegistrationClosed,
    RegistrationLimitExceeded,
    TooManyPassports,
    UnknownLine,
    UnknownPassport,
    UnknownService,
    WrongAccessKey,
    WrongPassword,
)
from tests.unit.helpers import (
    CID,
    CID2,
    EAST_CID,
    ITEM,
    KEY,
    MONTHLY,
    PID,
    PW,
    WRONG,
    WRONG_KEY,
    add_provider,
    buy,
    cancel,
    event_count,
    open_line,
    refused,
    register,
    setup_world,
    topics_since,
)

#: docs/contract.md "Results": the contract's order, one entry per rank (codes of one rank
#: share it).
CONTRACT_ORDER: list[tuple[str, ...]] = [
    ("invalid_input",),
    ("month_closed",),
    ("unknown_line", "unknown_passport", "unknown_provider", "unknown_service", "unknown_receipt"),
    ("line_auth_failed",),
    ("locked_out",),
    ("wrong_password", "wrong_access_key"),
    ("idempotency_conflict",),
    ("duplicate",),
    ("line_regulated",),
    ("not_allowed_online", "consent_required"),
    ("goods_not_offered",),
    ("registration_closed",),
    ("too_many_passports",),
    ("registration_limit_exceeded",),
    ("limit_sum_exceeded",),
    ("limit_exceeded",),
    ("not_cancellable", "refund_exceeds_charge"),
]


def _failures(engine: Engine) -> int:
    passport = engine.passport(PID)
    assert passport is not None
    return passport.consecutive_failures


def _lock(engine: Engine, *, day: str = "2024-02-01") -> None:
    for n in range(10):
        with pytest.raises(WrongPassword):
            buy(engine, f"{day}T10:{n:02d}:00+09:00", ITEM, password=WRONG)


def test_the_precedence_table_is_the_contract_2_order() -> None:
    """docs/contract.md "Results" (contract 2): the order of precedence, as the engine
    declares it, rank for rank; every refusal code of the engine is in it exactly once."""
    assert [set(rank) for rank in ERROR_PRECEDENCE] == [set(rank) for rank in CONTRACT_ORDER]
    flat = [code for rank in ERROR_PRECEDENCE for code in rank]
    assert set(flat) == set(ERROR_CLASSES)
    assert len(flat) == len(set(flat))


def test_a_purchase_in_a_closed_month_with_an_unknown_passport_id_is_month_closed(
    engine: Engine,
) -> None:
    """docs/contract.md "Order of refusals": month_closed even if the Passport ID is unknown."""
    setup_world(engine)
    engine.issue_bills(at="2024-03-01T00:00:00+09:00", month="2024-02")
    with refused(engine, MonthClosed):
        buy(engine, "2024-02-15T10:00:00+09:00", passport_id="nobody")


def test_month_closed_comes_before_unknown_line_for_a_line_holder_command(
    engine: Engine,
) -> None:
    """docs/contract.md "Order of refusals": ``month_closed`` ranks before the ``unknown_*`` codes
    (and before a wrong access key)."""
    setup_world(engine)
    engine.issue_bills(at="2024-03-01T00:00:00+09:00", month="2024-02")
    with refused(engine, MonthClosed):
        register(engine, "new.2", customer_id=CID2, at="2024-02-15T10:00:00+09:00")
    with refused(engine, MonthClosed):
        register(engine, "new.2", at="2024-02-15T10:00:00+09:00", access_key=WRONG_KEY)


def test_a_wrong_password_on_a_regulated_line_is_wrong_password_and_counted(
    engine: Engine,
) -> None:
    """docs/contract.md "Order of refusals" (contract 2): credentials are checked before the state
    they guard, so a wrong password on a regulated line is ``wrong_password``, and is counted."""
    setup_world(engine)
    engine.regulate_line(at="2024-02-01T00:00:00+09:00", customer_id=CID)
    before = event_count(engine)
    with pytest.raises(WrongPassword):
        buy(engine, "2024-02-02T10:00:00+09:00", ITEM, password=WRONG)
    assert topics_since(engine, before) == ["matome.passport.PasswordRejected"]
    assert _failures(engine) == 1
    with refused(engine, LineRegulated):  # the right password meets the regulation
        buy(engine, "2024-02-02T10:01:00+09:00", ITEM)


def test_invalid_input_comes_before_everything(engine: Engine) -> None:
    """A malformed password on an unknown ID in a closed month is still invalid_input."""
    setup_world(engine)
    engine.issue_bills(at="2024-03-01T00:00:00+09:00", month="2024-02")
    with refused(engine, InvalidInput):
        buy(engine, "2024-02-15T10:00:00+09:00", passport_id="nobody", password="no!")


def test_a_command_out_of_time_order_is_invalid_input_before_month_closed(engine: Engine) -> None:
    """docs/contract.md "Order of refusals": ``invalid_input`` includes a command out of time order,
    and ranks before ``month_closed`` (and before a wrong password, which is then not counted)."""
    setup_world(engine)
    buy(engine, "2024-03-10T10:00:00+09:00", ITEM)
    engine.issue_bills(at="2024-03-01T00:00:00+09:00", month="2024-02")
    with refused(engine, InvalidInput):
        buy(engine, "2024-02-15T10:00:00+09:00", ITEM, password=WRONG)
    assert _failures(engine) == 0


def test_month_closed_comes_before_idempotency_conflict_of_a_command_without_a_secret(
    engine: Engine,
) -> None:
    """docs/contract.md "Order of refusals" (contract 2): ``month_closed`` ranks before
    ``idempotency_conflict``; only the same key *and body* is answered again before any check.
    Contract 3: a different body whose secret is right is ``idempotency_conflict`` (that section
    stands where the two disagree)."""
    setup_world(engine)
    first = buy(engine, "2024-02-15T10:00:00+09:00", ITEM, key="k")
    engine.set_fee(
        at="2024-02-15T10:00:00+09:00",
        operator="west",
        effective_from="2024-02",
        flat_fee=50,
        key="f",
    )
    engine.issue_bills(at="2024-03-01T00:00:00+09:00", month="2024-02")
    with refused(engine, MonthClosed):
        engine.set_fee(
            at="2024-02-16T10:00:00+09:00",
            operator="west",
            effective_from="2024-02",
            flat_fee=60,
            key="f",
        )
    with refused(engine, IdempotencyConflict):
        buy(engine, "2024-02-16T10:00:00+09:00", ITEM, key="k")
    assert buy(engine, "2024-02-15T10:00:00+09:00", ITEM, key="k") == first


def test_unknown_comes_before_idempotency_conflict(engine: Engine) -> None:
    setup_world(engine)
    buy(engine, "2024-02-15T10:00:00+09:00", ITEM, key="k")
    with refused(engine, UnknownPassport):
        buy(engine, "2024-02-16T10:00:00+09:00", ITEM, passport_id="nobody", key="k")


def test_unknown_comes_before_duplicate(engine: Engine) -> None:
    """A Passport ID that exists (duplicate) registered on an unknown line: unknown_line."""
    setup_world(engine)
    with refused(engine, UnknownLine):
        register(engine, PID, customer_id=CID2, at="2024-02-01T00:00:00+09:00")


def test_registration_closed_comes_after_unknown_line(engine: Engine) -> None:
    """docs/contract.md "Order of refusals": after the cut-off, a registration on an unknown line is
    ``unknown_line``, not ``registration_closed``."""
    setup_world(engine)
    with refused(engine, UnknownLine):
        register(engine, "new.2", customer_id=CID2, at="2024-12-05T00:00:00+09:00")
    with refused(engine, RegistrationClosed):
        register(engine, "new.2", at="2024-12-05T00:00:00+09:00")


def test_unknown_service_comes_before_a_wrong_password_which_is_not_counted(
    engine: Engine,
) -> None:
    """The ``unknown_*`` codes rank before ``wrong_password``: the password is not judged,
    so nothing is counted (a refused command writes nothing)."""
    setup_world(engine)
    with refused(engine, UnknownService):
        buy(engine, "2024-02-01T10:00:00+09:00", "nothing", password=WRONG)
    assert _failures(engine) == 0


def test_duplicate_comes_before_line_regulated(engine: Engine) -> None:
    setup_world(engine)
    engine.regulate_line(at="2024-02-01T00:00:00+09:00", customer_id=CID)
    with refused(engine, DuplicateError):
        register(engine, PID, at="2024-02-02T00:00:00+09:00")


def test_a_duplicate_subscription_with_a_wrong_password_is_wrong_password_and_counted(
    engine: Engine,
) -> None:
    """Contract 2: the password is checked before the state it guards (``wrong_password``
    ranks before ``duplicate``), and counted."""
    setup_world(engine)
    buy(engine, "2024-02-01T10:00:00+09:00", MONTHLY)
    with pytest.raises(WrongPassword):
        buy(engine, "2024-02-02T10:00:00+09:00", MONTHLY, password=WRONG)
    assert _failures(engine) == 1
    with refused(engine, DuplicateError):
        buy(engine, "2024-02-02T10:01:00+09:00", MONTHLY)


def test_locked_out_comes_before_line_regulated(engine: Engine) -> None:
    """Contract 2: credentials before state: a locked ID on a regulated line is
    ``locked_out``."""
    setup_world(engine)
    _lock(engine)
    engine.regulate_line(at="2024-02-02T00:00:00+09:00", customer_id=CID)
    with refused(engine, LockedOut):
        buy(engine, "2024-02-03T10:00:00+09:00", ITEM)


def test_locked_out_comes_before_wrong_password(engine: Engine) -> None:
    setup_world(engine)
    _lock(engine)
    with refused(engine, LockedOut):
        buy(engine, "2024-02-03T10:00:00+09:00", ITEM, password=WRONG)


def test_locked_out_comes_before_idempotency_conflict(engine: Engine) -> None:
    setup_world(engine)
    buy(engine, "2024-02-01T09:00:00+09:00", ITEM, key="k")
    _lock(engine)
    with refused(engine, LockedOut):
        buy(engine, "2024-02-03T10:00:00+09:00", ITEM, key="k")


def test_line_auth_failed_comes_before_wrong_password_and_counts_nothing(engine: Engine) -> None:
    """Contract 2 (docs/rules.md §9): the line check comes before the password: a purchase from
    another line with a wrong password is ``line_auth_failed`` and no wrong password is
    counted."""
    setup_world(engine, line_auth=True, limit=0)
    with refused(engine, LineAuthFailed):
        buy(engine, "2024-02-01T10:00:00+09:00", ITEM, password=WRONG, presented_line=CID2)
    assert _failures(engine) == 0


def test_line_auth_failed_comes_before_locked_out(engine: Engine) -> None:
    setup_world(engine, line_auth=True)
    for n in range(10):
        with pytest.raises(WrongPassword):
            buy(engine, f"2024-02-01T10:{n:02d}:00+09:00", ITEM, password=WRONG, presented_line=CID)
    with refused(engine, LineAuthFailed):
        buy(engine, "2024-02-02T10:00:00+09:00", ITEM, presented_line=CID2)
    with refused(engine, LockedOut):
        buy(engine, "2024-02-02T10:01:00+09:00", ITEM, presented_line=CID)


def test_wrong_password_comes_before_goods_not_offered_and_limit_exceeded(
    engine: Engine,
) -> None:
    """The password (and the line check before it) come before the state of the purchase:
    an NTT East Hikari line before 2012-06-05, physical goods, a limit of 0."""
    add_provider(engine, "G", at="2012-01-01T00:00:00+09:00", goods="physical")
    open_line(engine, EAST_CID, at="2012-01-01T00:00:00+09:00", operator="east")
    register(engine, customer_id=EAST_CID, at="2012-01-02T00:00:00+09:00", limit=0, line_auth=True)
    at = "2012-02-01T10:00:00+09:00"
    with refused(engine, LineAuthFailed):
        buy(engine, at, ITEM, provider="G", password=WRONG, presented_line=CID2)
    with pytest.raises(WrongPassword):
        buy(engine, at, ITEM, provider="G", password=WRONG, presented_line=EAST_CID)
    with refused(engine, GoodsNotOffered):
        buy(engine, at, ITEM, provider="G", presented_line=EAST_CID)


def test_wrong_password_comes_before_not_cancellable_and_is_counted(engine: Engine) -> None:
    """``cancel`` carries the password of the ID that bought the receipt (contract 2): a wrong
    one is ``wrong_password`` even when the receipt is not cancellable, and is counted."""
    setup_world(engine)
    receipt = buy(engine, "2024-02-01T10:00:00+09:00", ITEM).receipt
    with pytest.raises(WrongPassword):
        cancel(engine, "2024-02-02T10:00:00+09:00", receipt, password=WRONG)
    assert _failures(engine) == 1
    with refused(engine, NotCancellable):
        cancel(engine, "2024-02-02T10:01:00+09:00", receipt)


def test_wrong_access_key_comes_before_idempotency_conflict_and_the_state(engine: Engine) -> None:
    """Contract 2: the line holder's access key is checked before the state it guards
    (``duplicate``, ``line_regulated``, ``registration_closed``, the limits) and before a key
    bound to another body; it is never counted."""
    setup_world(engine, line_limit=5000, limit=5000)
    engine.change_passport_limit(
        at="2024-01-10T00:00:00+09:00", passport_id=PID, access_key=KEY, limit=4000, key="k"
    )
    engine.regulate_line(at="2024-12-05T00:00:00+09:00", customer_id=CID)
    attempts: list[Callable[[], object]] = [
        lambda: register(engine, PID, at="2024-12-06T00:00:00+09:00", access_key=WRONG_KEY),
        lambda: register(
            engine, "new.2", at="2024-12-06T00:00:00+09:00", limit=9000, access_key=WRONG_KEY
        ),
        lambda: engine.change_passport_limit(
            at="2024-12-06T00:00:00+09:00",
            passport_id=PID,
            access_key=WRONG_KEY,
            limit=9000,
            key="k",
        ),
    ]
    for attempt in attempts:
        with refused(engine, WrongAccessKey):
            attempt()
    with refused(engine, IdempotencyConflict):
        engine.change_passport_limit(
            at="2024-12-06T00:00:00+09:00", passport_id=PID, access_key=KEY, limit=9000, key="k"
        )
    with refused(engine, LimitSumExceeded):
        engine.change_passport_limit(
            at="2024-12-06T00:00:00+09:00", passport_id=PID, access_key=KEY, limit=9000
        )


def test_idempotency_conflict_comes_before_duplicate(engine: Engine) -> None:
    setup_world(engine)
    buy(engine, "2024-02-01T10:00:00+09:00", MONTHLY, key="k")
    with refused(engine, IdempotencyConflict):
        buy(engine, "2024-02-02T10:00:00+09:00", MONTHLY, key="k")


def test_idempotency_conflict_comes_before_limit_exceeded(engine: Engine) -> None:
    setup_world(engine, limit=300)
    buy(engine, "2024-02-01T10:00:00+09:00", ITEM, key="k")
    with refused(engine, IdempotencyConflict):
        buy(engine, "2024-02-01T10:01:00+09:00", ITEM, key="k")
    with refused(engine, LimitExceeded):
        buy(engine, "2024-02-01T10:01:00+09:00", ITEM)


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
            access_key=None,
        )
    with refused(engine, LimitSumExceeded):
        register(
            engine,
            customer_id=EAST_CID,
            at="2025-01-10T00:00:00+09:00",
            limit=4000,
            via_provider="A",
            access_key=None,
        )


# Consolidated-billing representatives are checked after the line itself, so a refusal that
# ranks higher (the self-representative ``invalid_input``, an unknown representative's
# ``unknown_line``) is hidden behind the line's own ``duplicate`` / ``unknown_line``.


def test_open_line_duplicate_with_an_unknown_representative_is_unknown_line(
    engine: Engine,
) -> None:
    """docs/contract.md "Order of refusals": the ``unknown_*`` codes come before ``duplicate``."""
    open_line(engine)
    with refused(engine, UnknownLine):
        open_line(
            engine,
            at="2024-02-01T00:00:00+09:00",
            billing={"method": "consolidated", "representative": CID2},
        )


def test_open_line_duplicate_as_its_own_representative_is_invalid_input(engine: Engine) -> None:
    """docs/contract.md "Order of refusals": ``invalid_input`` comes first."""
    open_line(engine)
    with refused(engine, InvalidInput):
        open_line(
            engine,
            at="2024-02-01T00:00:00+09:00",
            billing={"method": "consolidated", "representative": CID},
        )


def test_change_billing_of_an_unknown_line_to_itself_is_invalid_input(engine: Engine) -> None:
    """docs/contract.md "Order of refusals": ``invalid_input`` comes first."""
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
    """docs/contract.md "Results": a refused command changes nothing (besides a counted wrong
    password)."""
    setup_world(engine, limit=600)
    buy(engine, "2024-02-01T10:00:00+09:00", ITEM)
    receipt = buy(engine, "2024-02-01T10:00:00+09:00", ITEM, key="x").receipt
    notifications = len(list(engine.internals.recorder.select_notifications(start=1, limit=10**9)))
    position = event_count(engine)
    attempts: list[Callable[[], object]] = [
        lambda: buy(engine, "2024-02-02T10:00:00+09:00", ITEM),  # limit_exceeded
        lambda: engine.cancel(
            password=PW, at="2024-02-02T10:00:00+09:00", receipt=receipt
        ),  # not_cancellable
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
            access_key=KEY, at="2024-12-02T00:00:00+09:00", passport_id=PID, email="a@b.jp"
        ),
        lambda: open_line(engine, at="2024-02-02T10:00:00+09:00"),
        lambda: engine.delete_passport(
            access_key=WRONG_KEY, at="2024-02-02T10:00:00+09:00", passport_id=PID
        ),
        lambda: engine.reset_password(
            at="2024-02-02T10:00:00+09:00", passport_id=PID, password="New12345", channel="fax"
        ),
    ]
    for attempt in attempts:
        with pytest.raises(MatomeError):
            attempt()
    assert _failures(engine) == 0
    assert (
        len(list(engine.internals.recorder.select_notifications(start=1, limit=10**9)))
        == notifications
    )
    assert event_count(engine) == position
