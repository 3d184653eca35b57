"""Who may do what: the credentials of contract 2 (docs/rules.md §2 "Who may do what", §10).

* The line holder's commands (``register_passport``, ``change_passport_limit``,
  ``change_passport_details``, ``delete_passport``, ``set_notification``) carry the line's
  access key [アクセスキー]; a wrong one is ``wrong_access_key``, not counted, and writes nothing.
* The Passport ID holder's ``purchase`` and ``cancel`` carry the ID's password; a wrong one is
  ``wrong_password`` and counted (ten in a row lock the ID: ``locked_out``).
* The carrier operator's ``reset_password`` (phone or written request) unlocks a locked ID,
  also after the 2024-12-01 cut-off.

The attacks contract 1 allowed must fail: managing someone's IDs with only a customer ID.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from matome.commands import parse_command
from matome.engine import Engine
from matome.errors import (
    InvalidInput,
    LockedOut,
    MatomeError,
    MonthClosed,
    NotCancellable,
    RegistrationClosed,
    UnknownPassport,
    WrongAccessKey,
    WrongPassword,
)
from matome.values import Email, Yen
from tests.unit.helpers import (
    APPLICANT,
    CID,
    CID2,
    ITEM,
    KEY,
    MONTHLY,
    PID,
    PROVIDER,
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

#: The access key of the second line (another line holder's).
OTHER_KEY = "Other999"


def _failures(engine: Engine, passport_id: str = PID) -> int:
    passport = engine.passport(passport_id)
    assert passport is not None
    return passport.consecutive_failures


def _locked(engine: Engine, passport_id: str = PID) -> bool:
    passport = engine.passport(passport_id)
    assert passport is not None
    return passport.locked


def _line_holder_commands(engine: Engine, access_key: str) -> list[tuple[str, Callable[[], Any]]]:
    """Every line holder's command, on the default line and ID, with ``access_key``."""
    at = "2024-02-01T10:00:00+09:00"
    return [
        (
            "register_passport",
            lambda: register(engine, "hanako.2", at=at, limit=1000, access_key=access_key),
        ),
        (
            "change_passport_limit",
            lambda: engine.change_passport_limit(
                at=at, passport_id=PID, access_key=access_key, limit=100
            ),
        ),
        (
            "change_passport_details",
            lambda: engine.change_passport_details(
                at=at, passport_id=PID, access_key=access_key, password="New12345"
            ),
        ),
        (
            "change_passport_details (line_auth)",
            lambda: engine.change_passport_details(
                at=at, passport_id=PID, access_key=access_key, line_auth=True
            ),
        ),
        (
            "delete_passport",
            lambda: engine.delete_passport(at=at, passport_id=PID, access_key=access_key),
        ),
        (
            "set_notification",
            lambda: engine.set_notification(
                at=at,
                customer_id=CID,
                access_key=access_key,
                provider=PROVIDER,
                notify=True,
                consent=True,
                channel="web",
            ),
        ),
    ]


COMMAND_NAMES = [
    "register_passport",
    "change_passport_limit",
    "change_passport_details",
    "change_passport_details (line_auth)",
    "delete_passport",
    "set_notification",
]


# ---------------------------------------------------------------------------------------------
# The line holder's access key (§2)


@pytest.mark.parametrize("name", COMMAND_NAMES)
def test_a_wrong_access_key_is_refused_counts_nothing_and_writes_nothing(
    engine: Engine, name: str
) -> None:
    """§2 "Who may do what" (contract 2): a wrong access key is ``wrong_access_key``; it is not
    counted (docs/design.md: only Passport ID passwords lock) and writes nothing — twenty in a
    row leave the line and its IDs as they were, and the right key still works."""
    setup_world(engine)
    command = dict(_line_holder_commands(engine, WRONG_KEY))[name]
    for _ in range(20):
        with refused(engine, WrongAccessKey) as info:
            command()
        assert WRONG_KEY not in info.value.message
    assert _failures(engine) == 0
    assert not _locked(engine)
    dict(_line_holder_commands(engine, KEY))[name]()


@pytest.mark.parametrize("name", COMMAND_NAMES)
def test_another_line_holders_access_key_does_not_open_this_line(engine: Engine, name: str) -> None:
    """§2: the access key is *the line's*: the holder of another line cannot manage this
    line's IDs with their own (right) key."""
    setup_world(engine)
    engine.open_line(
        at="2024-01-01T00:00:00+09:00",
        customer_id=CID2,
        operator="west",
        kind="hikari_next",
        access_key=OTHER_KEY,
        line_limit=10_000,
        billing={"method": "customer_number", "number": "0012345678"},
    )
    with refused(engine, WrongAccessKey):
        dict(_line_holder_commands(engine, OTHER_KEY))[name]()


def test_the_access_key_is_the_line_of_the_passport_id_for_id_commands(engine: Engine) -> None:
    """§2: ``change_passport_limit``, ``change_passport_details`` and ``delete_passport`` carry
    the access key *of the ID's line*."""
    setup_world(engine)
    engine.open_line(
        at="2024-01-01T00:00:00+09:00",
        customer_id=CID2,
        operator="west",
        kind="hikari_next",
        access_key=OTHER_KEY,
        line_limit=10_000,
        billing={"method": "customer_number", "number": "0012345678"},
    )
    register(engine, "jiro.2", customer_id=CID2, limit=1000, access_key=OTHER_KEY)
    engine.change_passport_limit(
        at="2024-02-01T00:00:00+09:00", passport_id="jiro.2", access_key=OTHER_KEY, limit=500
    )
    with refused(engine, WrongAccessKey):
        engine.change_passport_limit(
            at="2024-02-01T00:00:00+09:00", passport_id="jiro.2", access_key=KEY, limit=600
        )
    engine.delete_passport(
        at="2024-02-02T00:00:00+09:00", passport_id="jiro.2", access_key=OTHER_KEY
    )


def test_an_access_key_is_case_sensitive(engine: Engine) -> None:
    setup_world(engine)
    with refused(engine, WrongAccessKey):
        engine.change_passport_limit(
            at="2024-02-01T00:00:00+09:00", passport_id=PID, access_key=KEY.lower(), limit=10
        )


@pytest.mark.parametrize("access_key", ["short", "Key12345!", "", "Ｋｅｙ12345"])
def test_a_malformed_access_key_is_invalid_input(engine: Engine, access_key: str) -> None:
    """§1: an access key is 8 ASCII alphanumerics; anything else is ``invalid_input``."""
    setup_world(engine)
    with refused(engine, InvalidInput):
        engine.delete_passport(
            at="2024-02-01T00:00:00+09:00", passport_id=PID, access_key=access_key
        )


def test_a_line_continuing_under_a_new_customer_id_keeps_its_access_key(engine: Engine) -> None:
    """docs/design.md (Who may do what): a line that carries on under a new customer ID keeps
    its access key (until the operator records a new one)."""
    setup_world(engine)
    engine.change_line(
        at="2024-02-01T00:00:00+09:00",
        customer_id=CID,
        change="relocation",
        new_customer_id="CAF0000000009",
    )
    with refused(engine, WrongAccessKey):
        register(
            engine,
            "new.1",
            customer_id="CAF0000000009",
            at="2024-02-02T00:00:00+09:00",
            access_key=WRONG_KEY,
        )
    register(engine, "new.1", customer_id="CAF0000000009", at="2024-02-02T00:00:00+09:00")


# ---------------------------------------------------------------------------------------------
# The attacks of contract 1: managing someone's IDs with only a customer ID


def _log(command: str, **fields: Any) -> dict[str, Any]:
    return {"command": command, "at": "2024-02-01T10:00:00+09:00", **fields}


ONLY_A_CUSTOMER_ID: list[tuple[str, dict[str, Any]]] = [
    (
        "registering an ID",
        _log(
            "register_passport",
            customer_id=CID,
            passport_id="evil.1",
            password="Evil1234",
            email="evil@example.jp",
            applicant=APPLICANT,
            limit=5000,
            line_auth=False,
        ),
    ),
    ("changing a limit", _log("change_passport_limit", passport_id=PID, limit=9000)),
    ("deleting an ID", _log("delete_passport", passport_id=PID)),
    (
        "switching notification",
        _log(
            "set_notification",
            customer_id=CID,
            provider=PROVIDER,
            notify=True,
            consent=True,
            channel="web",
        ),
    ),
    ("changing a password", _log("change_passport_details", passport_id=PID, password="Evil1234")),
    (
        "switching line authentication off",
        _log("change_passport_details", passport_id=PID, line_auth=False),
    ),
]


@pytest.mark.parametrize("body", [pytest.param(body, id=name) for name, body in ONLY_A_CUSTOMER_ID])
def test_managing_someones_ids_with_only_a_customer_id_fails(
    engine: Engine, body: dict[str, Any]
) -> None:
    """Contract 2 closes contract 1's hole: without the access key the command is
    ``invalid_input`` (a missing field); with a guessed key it is ``wrong_access_key``; either
    way nothing changes."""
    setup_world(engine, line_auth=True)
    before = event_count(engine)
    with pytest.raises(InvalidInput, match="access_key"):
        engine.execute(parse_command(body))
    with refused(engine, WrongAccessKey):
        engine.execute(parse_command({**body, "access_key": WRONG_KEY}))
    assert event_count(engine) == before
    passport = engine.passport(PID)
    assert passport is not None
    assert (passport.limit, passport.line_auth, passport.deleted) == (Yen(3000), True, False)
    buy(engine, "2024-02-02T10:00:00+09:00", ITEM, presented_line=CID)  # the old password works


def test_a_password_cannot_be_taken_over_by_changing_it_with_only_a_customer_id(
    engine: Engine,
) -> None:
    """The attack end to end: an attacker who knows the customer ID but not the access key
    cannot set a password of their own and then buy with it."""
    setup_world(engine)
    with refused(engine, WrongAccessKey):
        engine.change_passport_details(
            at="2024-02-01T10:00:00+09:00",
            passport_id=PID,
            access_key=WRONG_KEY,
            password="Evil1234",
        )
    with pytest.raises(WrongPassword):
        buy(engine, "2024-02-01T10:01:00+09:00", ITEM, password="Evil1234")
    buy(engine, "2024-02-01T10:02:00+09:00", ITEM)


@pytest.mark.parametrize(
    ("operator", "customer_id", "kind"),
    [("west", CID, "hikari_next"), ("east", "COP00000001", "b_flets")],
)
def test_a_provider_cannot_register_an_id_without_the_access_key_outside_east_after_the_cutoff(
    engine: Engine, operator: str, customer_id: str, kind: str
) -> None:
    """docs/rules.md §2 "Who may do what": the line holder registers with the line's access key;
    a provider may register on the customer's behalf (``via_provider``, no key) on NTT East
    after the cut-off only.  Anywhere else a keyless ``via_provider`` registration would be
    the "register IDs with only a customer ID" attack, so it must be refused."""
    add_provider(engine)
    open_line(engine, customer_id, operator=operator, kind=kind)
    with pytest.raises(MatomeError):
        register(
            engine,
            "evil.1",
            customer_id=customer_id,
            at="2024-06-01T00:00:00+09:00",
            via_provider=PROVIDER,
            access_key=None,
        )
    line = engine.line(customer_id)
    assert line is not None
    assert dict(line.passports) == {}


# ---------------------------------------------------------------------------------------------
# The Passport ID holder's password on cancel (§10)


def test_cancel_needs_the_password_of_the_id_that_bought_it(engine: Engine) -> None:
    """§2 / §10 (contract 2): ``cancel`` carries the password of the Passport ID that bought the
    receipt; another ID's password (of the same line) is a wrong password for the buyer."""
    setup_world(engine)
    register(engine, "hanako.2", at="2024-01-06T00:00:00+09:00", password="Hana1234", limit=1000)
    receipt = buy(engine, "2024-02-01T10:00:00+09:00", MONTHLY).receipt
    with pytest.raises(WrongPassword):
        cancel(engine, "2024-02-02T10:00:00+09:00", receipt, password="Hana1234")
    assert (_failures(engine), _failures(engine, "hanako.2")) == (1, 0)
    sub = engine.subscription(receipt)
    assert sub is not None
    assert sub.active
    result = cancel(engine, "2024-02-03T10:00:00+09:00", receipt)
    assert result.receipt == receipt


def test_a_wrong_cancel_password_is_counted_and_leaves_only_the_security_event(
    engine: Engine,
) -> None:
    """§10, docs/contract.md "Results": the failed authentication leaves a security event behind
    and nothing else; the password is never in it."""
    setup_world(engine)
    receipt = buy(engine, "2024-02-01T10:00:00+09:00", MONTHLY).receipt
    before = event_count(engine)
    with pytest.raises(WrongPassword) as info:
        cancel(engine, "2024-02-02T10:00:00+09:00", receipt, password=WRONG)
    assert topics_since(engine, before) == ["matome.passport.PasswordRejected"]
    assert WRONG not in info.value.message
    for n in engine.internals.recorder.select_notifications(start=before + 1, limit=10):
        assert WRONG.encode() not in n.state
    assert _failures(engine) == 1


def test_ten_wrong_cancel_passwords_lock_the_id_for_purchases_and_cancels(engine: Engine) -> None:
    """§10: ten consecutive wrong purchase/cancel passwords lock the ID: then even the right
    password is ``locked_out`` (counting nothing more), and the ID's subscriptions keep
    running."""
    setup_world(engine)
    receipt = buy(engine, "2024-02-01T10:00:00+09:00", MONTHLY).receipt
    for n in range(5):
        with pytest.raises(WrongPassword):
            buy(engine, f"2024-02-02T10:{n:02d}:00+09:00", ITEM, password=WRONG)
    for n in range(5, 10):
        with pytest.raises(WrongPassword):
            cancel(engine, f"2024-02-02T10:{n:02d}:00+09:00", receipt, password=WRONG)
    assert _locked(engine)
    with refused(engine, LockedOut):
        cancel(engine, "2024-02-03T10:00:00+09:00", receipt)
    with refused(engine, LockedOut):
        cancel(engine, "2024-02-03T10:00:00+09:00", receipt, password=WRONG)
    with refused(engine, LockedOut):
        buy(engine, "2024-02-03T10:00:00+09:00", ITEM)
    assert _failures(engine) == 10
    sub = engine.subscription(receipt)
    assert sub is not None
    assert sub.active


def test_a_right_cancel_password_resets_the_count(engine: Engine) -> None:
    """§10: a correct password before the tenth resets the count (a cancel records
    ``PasswordAccepted``), so the failures must be consecutive."""
    setup_world(engine)
    first = buy(engine, "2024-02-01T10:00:00+09:00", MONTHLY).receipt
    second = buy(engine, "2024-02-01T10:01:00+09:00", "anime").receipt
    for n in range(9):
        with pytest.raises(WrongPassword):
            cancel(engine, f"2024-02-02T10:{n:02d}:00+09:00", first, password=WRONG)
    before = event_count(engine)
    cancel(engine, "2024-02-02T11:00:00+09:00", first)
    assert "matome.passport.PasswordAccepted" in topics_since(engine, before)
    assert _failures(engine) == 0
    for n in range(9):
        with pytest.raises(WrongPassword):
            cancel(engine, f"2024-02-02T12:{n:02d}:00+09:00", second, password=WRONG)
    assert not _locked(engine)
    cancel(engine, "2024-02-02T13:00:00+09:00", second)


def test_a_cancel_refused_for_another_reason_does_not_reset_the_count(engine: Engine) -> None:
    """docs/design.md (Who may do what): a command refused for another reason changes nothing,
    so it does not restart the count."""
    setup_world(engine)
    receipt = buy(engine, "2024-02-01T10:00:00+09:00", ITEM).receipt
    with pytest.raises(WrongPassword):
        buy(engine, "2024-02-02T10:00:00+09:00", ITEM, password=WRONG)
    with refused(engine, NotCancellable):
        cancel(engine, "2024-02-02T10:01:00+09:00", receipt)
    assert _failures(engine) == 1


def test_rerunning_a_keyed_wrong_cancel_password_counts_nothing(engine: Engine) -> None:
    """§10 (contract 2): a refusal that recorded a wrong password binds its key, so re-running
    the same log after a crash counts nothing twice."""
    setup_world(engine)
    receipt = buy(engine, "2024-02-01T10:00:00+09:00", MONTHLY).receipt
    for _ in range(5):
        with pytest.raises(WrongPassword):
            cancel(engine, "2024-02-02T10:00:00+09:00", receipt, password=WRONG, key="log-7")
    assert _failures(engine) == 1


def test_rerunning_a_keyed_wrong_purchase_password_counts_nothing(engine: Engine) -> None:
    setup_world(engine)
    before = event_count(engine)
    for _ in range(12):
        with pytest.raises(WrongPassword):
            buy(engine, "2024-02-02T10:00:00+09:00", ITEM, password=WRONG, key="log-8")
    assert _failures(engine) == 1
    assert not _locked(engine)
    assert sorted(topics_since(engine, before)) == [
        "matome.idempotency.KeyBound",
        "matome.passport.PasswordRejected",
    ]


def test_a_bound_key_gives_no_free_password_guesses_on_cancel(engine: Engine) -> None:
    """§10: a key bound to a different body does not answer before the credential is checked:
    every wrong guess through it is counted, and ten lock the ID."""
    setup_world(engine)
    receipt = buy(engine, "2024-02-01T10:00:00+09:00", MONTHLY, key="bound").receipt
    for n in range(10):
        with pytest.raises(WrongPassword):
            cancel(
                engine,
                f"2024-02-02T10:{n:02d}:00+09:00",
                receipt,
                password=f"Guess{n:03d}",
                key="bound",
            )
    assert _locked(engine)


# ---------------------------------------------------------------------------------------------
# The operator's password reset (§10)


@pytest.mark.parametrize("channel", ["phone", "written"])
def test_reset_password_unlocks_a_locked_id(engine: Engine, channel: str) -> None:
    """§10 (contract 2): the operator's ``reset_password``, on a phone or written request,
    sets a new password, unlocks the ID and clears the count; the old password is gone."""
    setup_world(engine)
    for n in range(10):
        with pytest.raises(WrongPassword):
            buy(engine, f"2024-02-01T10:{n:02d}:00+09:00", ITEM, password=WRONG)
    before = event_count(engine)
    engine.reset_password(
        at="2024-02-02T00:00:00+09:00", passport_id=PID, password="Fresh123", channel=channel
    )
    assert topics_since(engine, before) == ["matome.passport.PasswordReset"]
    assert (_locked(engine), _failures(engine)) == (False, 0)
    buy(engine, "2024-02-02T10:00:00+09:00", ITEM, password="Fresh123")
    with pytest.raises(WrongPassword):
        buy(engine, "2024-02-02T10:01:00+09:00", ITEM, password=PW)


def test_reset_password_works_after_the_cutoff(engine: Engine) -> None:
    """§10: the 2024-12-01 cut-off froze self-service, not recovery: after it the line holder
    can no longer change the password, the operator can still reset it."""
    setup_world(engine)
    for n in range(10):
        with pytest.raises(WrongPassword):
            buy(engine, f"2025-02-01T10:{n:02d}:00+09:00", ITEM, password=WRONG)
    with refused(engine, RegistrationClosed):
        engine.change_passport_details(
            at="2025-02-02T00:00:00+09:00", passport_id=PID, access_key=KEY, password="Fresh123"
        )
    engine.reset_password(
        at="2025-02-02T00:00:00+09:00", passport_id=PID, password="Fresh123", channel="phone"
    )
    buy(engine, "2025-02-02T10:00:00+09:00", ITEM, password="Fresh123")


@pytest.mark.parametrize("channel", ["online", "web", "fax"])
def test_reset_password_is_by_phone_or_written_request_only(engine: Engine, channel: str) -> None:
    setup_world(engine)
    with refused(engine, InvalidInput):
        engine.reset_password(
            at="2024-02-02T00:00:00+09:00", passport_id=PID, password="Fresh123", channel=channel
        )


def test_reset_password_of_an_unknown_or_deleted_id_is_unknown_passport(engine: Engine) -> None:
    setup_world(engine)
    with refused(engine, UnknownPassport):
        engine.reset_password(
            at="2024-02-02T00:00:00+09:00",
            passport_id="nobody",
            password="Fresh123",
            channel="phone",
        )
    engine.delete_passport(at="2024-02-03T00:00:00+09:00", passport_id=PID, access_key=KEY)
    with refused(engine, UnknownPassport):
        engine.reset_password(
            at="2024-02-04T00:00:00+09:00", passport_id=PID, password="Fresh123", channel="phone"
        )


def test_reset_password_in_a_closed_month_is_month_closed(engine: Engine) -> None:
    setup_world(engine)
    engine.issue_bills(at="2024-03-01T00:00:00+09:00", month="2024-02")
    with refused(engine, MonthClosed):
        engine.reset_password(
            at="2024-02-20T00:00:00+09:00", passport_id=PID, password="Fresh123", channel="phone"
        )


def test_reset_password_does_not_change_purchases_or_other_details(engine: Engine) -> None:
    """§2: changing an ID's password does not affect its purchases."""
    setup_world(engine)
    receipt = buy(engine, "2024-02-01T10:00:00+09:00", MONTHLY).receipt
    engine.reset_password(
        at="2024-02-02T00:00:00+09:00", passport_id=PID, password="Fresh123", channel="written"
    )
    passport = engine.passport(PID)
    assert passport is not None
    assert (passport.email, passport.limit) == (Email("taro@example.jp"), Yen(3000))
    sub = engine.subscription(receipt)
    assert sub is not None
    assert sub.active
    cancel(engine, "2024-02-03T00:00:00+09:00", receipt, password="Fresh123")


def test_a_cancel_of_a_receipt_whose_passport_id_was_deleted_is_unknown_passport(
    engine: Engine,
) -> None:
    """docs/design.md (Who may do what): with its Passport ID deleted, nobody holds the
    password a cancel needs: ``unknown_passport``, whatever password is given (nothing is
    counted on a deleted ID)."""
    setup_world(engine)
    receipt = buy(engine, "2024-02-01T10:00:00+09:00", ITEM).receipt
    engine.delete_passport(at="2024-02-02T00:00:00+09:00", passport_id=PID, access_key=KEY)
    for password in (PW, WRONG):
        with refused(engine, UnknownPassport):
            cancel(engine, "2024-02-03T00:00:00+09:00", receipt, password=password)


def test_a_wrong_password_dated_far_ahead_does_not_freeze_the_id(engine: Engine) -> None:
    """docs/rules.md §7 (time order) and §10: a counted wrong password does not move the ID's
    business clock, so someone who knows only the ID cannot freeze it with one wrong password
    dated years ahead (every later command would otherwise be out of time order)."""
    setup_world(engine)
    with pytest.raises(WrongPassword):
        buy(engine, "2099-12-31T23:00:00+09:00", password=WRONG)
    bought = buy(engine, "2024-02-01T10:00:00+09:00")
    assert bought.charged == Yen(525)
    passport = engine.passport(PID)
    assert passport is not None
    assert passport.consecutive_failures == 0
