"""Wrong passwords and lockout: docs/rules.md §10, docs/contract.md "Results".

A wrong password is the one refusal that leaves something behind: a ``PasswordRejected``
security event, so that 10 consecutive failures disable the password (``locked_out``).  In
contract 2 both of the Passport ID holder's commands (``purchase`` and ``cancel``) carry the
password; a locked ID is unlocked by a new password — the line holder's, with the access key,
or the operator's ``reset_password`` (see test_rules_credentials).
"""

from __future__ import annotations

import pytest

from matome.engine import Engine
from matome.errors import LockedOut, WrongAccessKey, WrongPassword
from tests.unit.helpers import (
    ITEM,
    KEY,
    PID,
    WRONG_KEY,
    buy,
    cancel,
    event_count,
    refused,
    setup_world,
    topics_since,
)

WRONG = "Wrong123"


def _fail(engine: Engine, times: int, *, start_minute: int = 0) -> None:
    for n in range(times):
        with pytest.raises(WrongPassword):
            buy(
                engine,
                f"2024-02-01T10:{start_minute + n:02d}:00+09:00",
                ITEM,
                password=WRONG,
            )


def test_a_wrong_password_is_refused_and_leaves_a_password_rejected_event(
    engine: Engine,
) -> None:
    """docs/contract.md "Results": a refused command changes nothing, except that a wrong password
    is counted (docs/rules.md §10), leaving a security event behind."""
    setup_world(engine)
    before = event_count(engine)
    with pytest.raises(WrongPassword) as info:
        buy(engine, "2024-02-01T10:00:00+09:00", ITEM, password=WRONG)
    assert topics_since(engine, before) == ["matome.passport.PasswordRejected"]
    assert WRONG not in info.value.message  # §10: never logged in clear text
    passport = engine.passport(PID)
    assert passport is not None
    assert passport.consecutive_failures == 1
    assert not passport.locked
    assert passport.purchases == 0  # nothing was bought


def test_the_wrong_password_event_never_holds_the_password(engine: Engine) -> None:
    """§10: credentials are never stored in clear text."""
    setup_world(engine)
    before = event_count(engine)
    with pytest.raises(WrongPassword):
        buy(engine, "2024-02-01T10:00:00+09:00", ITEM, password=WRONG)
    for n in engine.internals.recorder.select_notifications(start=before + 1, limit=100):
        assert WRONG.encode() not in n.state


def test_ten_consecutive_wrong_passwords_lock_the_passport_id(engine: Engine) -> None:
    """§10: 10 consecutive wrong passwords disable the password: after them even the right
    password is ``locked_out``."""
    setup_world(engine)
    _fail(engine, 9)
    passport = engine.passport(PID)
    assert passport is not None
    assert not passport.locked
    _fail(engine, 1, start_minute=9)
    passport = engine.passport(PID)
    assert passport is not None
    assert passport.locked
    assert passport.consecutive_failures == 10
    with refused(engine, LockedOut):
        buy(engine, "2024-02-01T11:00:00+09:00", ITEM)


def test_a_locked_id_refuses_wrong_passwords_without_counting_further(engine: Engine) -> None:
    """docs/contract.md "Order of refusals": ``locked_out`` before ``wrong_password``; nothing is
    written."""
    setup_world(engine)
    _fail(engine, 10)
    with refused(engine, LockedOut):
        buy(engine, "2024-02-01T11:00:00+09:00", ITEM, password=WRONG)


def test_a_successful_purchase_resets_the_count(engine: Engine) -> None:
    """§10: a successful login resets the count, so failures must be consecutive."""
    setup_world(engine)
    _fail(engine, 9)
    buy(engine, "2024-02-01T10:30:00+09:00", ITEM)
    passport = engine.passport(PID)
    assert passport is not None
    assert passport.consecutive_failures == 0
    _fail(engine, 9, start_minute=31)
    passport = engine.passport(PID)
    assert passport is not None
    assert not passport.locked
    buy(engine, "2024-02-01T11:00:00+09:00", ITEM)


def test_a_new_password_unlocks_the_id(engine: Engine) -> None:
    """§10 (and §2): setting a new password via change_passport_details clears the lock."""
    setup_world(engine)
    _fail(engine, 10)
    engine.change_passport_details(
        access_key=KEY, at="2024-02-02T00:00:00+09:00", passport_id=PID, password="Fresh123"
    )
    passport = engine.passport(PID)
    assert passport is not None
    assert not passport.locked
    assert passport.consecutive_failures == 0
    buy(engine, "2024-02-02T10:00:00+09:00", ITEM, password="Fresh123")


def test_an_email_change_alone_does_not_unlock_the_id(engine: Engine) -> None:
    """§10: only a new password re-enables a disabled password."""
    setup_world(engine)
    _fail(engine, 10)
    engine.change_passport_details(
        access_key=KEY, at="2024-02-02T00:00:00+09:00", passport_id=PID, email="new@example.jp"
    )
    with refused(engine, LockedOut):
        buy(engine, "2024-02-02T10:00:00+09:00", ITEM)


def test_wrong_passwords_of_one_id_do_not_lock_another(engine: Engine) -> None:
    from tests.unit.helpers import register

    setup_world(engine)
    register(engine, "hanako.2", at="2024-01-06T00:00:00+09:00", password="Hana1234", limit=1000)
    _fail(engine, 10)
    buy(engine, "2024-02-02T10:00:00+09:00", ITEM, passport_id="hanako.2", password="Hana1234")


def test_a_new_password_with_a_wrong_access_key_does_not_unlock_the_id(engine: Engine) -> None:
    """§10 (contract 2): only the line holder — with the line's access key — or the operator
    can set a new password; a wrong key leaves the ID locked."""
    setup_world(engine)
    _fail(engine, 10)
    with refused(engine, WrongAccessKey):
        engine.change_passport_details(
            access_key=WRONG_KEY,
            at="2024-02-02T00:00:00+09:00",
            passport_id=PID,
            password="Fresh123",
        )
    with refused(engine, LockedOut):
        buy(engine, "2024-02-02T10:00:00+09:00", ITEM, password="Fresh123")


def test_wrong_purchase_and_cancel_passwords_count_together(engine: Engine) -> None:
    """§10: "10 consecutive wrong purchase/cancel passwords lock the ID"."""
    setup_world(engine)
    receipt = buy(engine, "2024-02-01T09:00:00+09:00", "back").receipt
    _fail(engine, 9)
    with pytest.raises(WrongPassword):
        cancel(engine, "2024-02-01T10:30:00+09:00", receipt, password=WRONG)
    passport = engine.passport(PID)
    assert passport is not None
    assert passport.locked
