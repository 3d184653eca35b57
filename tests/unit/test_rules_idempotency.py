"""Idempotency keys: docs/contract.md, "Command log" (contract 2) and docs/rules.md §10.

The same key with the same body is applied once and answers the first result again; the same
key with a different body is ``idempotency_conflict`` — but a command carrying a credential has
it checked first (no free password guesses).  An accepted command binds its key; so does a
refusal that recorded a wrong password.  Other refusals leave the key free.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from matome.aggregates.ledger import key_id, project_key
from matome.application.eventstore import EventMapper, event_from_json
from matome.application.idempotency import answer_again, fingerprint, legacy_fingerprint
from matome.commands import Result, parse_command
from matome.engine import Engine
from matome.errors import (
    IdempotencyConflict,
    LimitExceeded,
    LockedOut,
    MonthClosed,
    WrongAccessKey,
    WrongPassword,
)
from matome.events.ledger import KeyBound
from matome.values import Yen
from matome.wire import dumps
from tests.unit.helpers import (
    CID,
    ITEM,
    KEY,
    MONTHLY,
    PID,
    PW,
    WRONG,
    buy,
    event_count,
    refused,
    setup_world,
)


def test_the_same_key_and_body_is_applied_once_and_answers_the_first_result(
    engine: Engine,
) -> None:
    setup_world(engine)
    first = buy(engine, "2024-02-01T10:00:00+09:00", ITEM, key="k-1")
    after_first = event_count(engine)
    again = buy(engine, "2024-02-01T10:00:00+09:00", ITEM, key="k-1")
    assert again == first
    assert event_count(engine) == after_first
    passport = engine.passport(PID)
    assert passport is not None
    assert passport.purchases == 1


def test_the_same_instant_in_another_utc_offset_is_the_same_body(engine: Engine) -> None:
    """The same instant written with another offset is the same command."""
    setup_world(engine)
    first = buy(engine, "2024-02-01T10:00:00+09:00", ITEM, key="k-1")
    before = event_count(engine)
    again = buy(engine, "2024-02-01T01:00:00+00:00", ITEM, key="k-1")
    assert again == first
    assert event_count(engine) == before


@pytest.mark.parametrize(
    "change",
    [
        {"at": "2024-02-01T10:00:01+09:00"},
        {"service": "anime"},
        {"presented_line": CID},
    ],
)
def test_the_same_key_with_a_different_body_is_an_idempotency_conflict(
    engine: Engine, change: dict[str, str]
) -> None:
    setup_world(engine)
    buy(engine, "2024-02-01T10:00:00+09:00", ITEM, key="k-1")
    fields: dict[str, str] = {"at": "2024-02-01T10:00:00+09:00", "service": ITEM, **change}
    with refused(engine, IdempotencyConflict):
        engine.purchase(
            at=fields["at"],
            passport_id=PID,
            password=fields.get("password", "Pass1234"),
            provider="A",
            service=fields["service"],
            presented_line=fields.get("presented_line"),
            key="k-1",
        )


def test_the_same_key_on_another_command_is_an_idempotency_conflict(engine: Engine) -> None:
    setup_world(engine)
    receipt = buy(engine, "2024-02-01T10:00:00+09:00", MONTHLY, key="k-1").receipt
    with refused(engine, IdempotencyConflict):
        engine.cancel(at="2024-02-01T10:00:00+09:00", receipt=receipt, key="k-1", password=PW)


def test_a_refused_command_leaves_its_key_free(engine: Engine) -> None:
    """Only an accepted command binds its key: a retry is judged afresh."""
    setup_world(engine, limit=300)
    buy(engine, "2024-02-01T10:00:00+09:00", ITEM)
    with refused(engine, LimitExceeded):
        buy(engine, "2024-02-01T11:00:00+09:00", ITEM, key="k-1")
    engine.change_passport_limit(
        access_key=KEY, at="2024-02-01T11:00:00+09:00", passport_id=PID, limit=600
    )
    result = buy(engine, "2024-02-01T11:00:00+09:00", ITEM, key="k-1")  # the same retry
    assert result.charged == Yen(300)


def test_a_refused_command_leaves_its_key_free_for_a_different_body(engine: Engine) -> None:
    setup_world(engine, limit=300)
    buy(engine, "2024-02-01T10:00:00+09:00", ITEM)
    with refused(engine, LimitExceeded):
        buy(engine, "2024-02-01T11:00:00+09:00", ITEM, key="k-1")
    engine.change_passport_limit(
        access_key=KEY, at="2024-02-01T12:00:00+09:00", passport_id=PID, limit=3000, key="k-1"
    )


def test_a_counted_wrong_password_binds_the_key(engine: Engine) -> None:
    """Contract 2 (docs/contract.md "Command log", docs/rules.md §10): a refusal that recorded a
    wrong password binds its key, so re-running the same log after a crash answers the same refusal
    and counts nothing twice; a retry of that key with another body (the right password) is a
    conflict, judged after its credential passes."""
    setup_world(engine)
    with pytest.raises(WrongPassword) as first:
        buy(engine, "2024-02-01T10:00:00+09:00", ITEM, password=WRONG, key="k-1")
    for _ in range(3):
        with refused(engine, WrongPassword) as again:
            buy(engine, "2024-02-01T10:00:00+09:00", ITEM, password=WRONG, key="k-1")
        assert again.value.message == first.value.message
    passport = engine.passport(PID)
    assert passport is not None
    assert passport.consecutive_failures == 1
    with refused(engine, IdempotencyConflict):
        buy(engine, "2024-02-01T10:00:00+09:00", ITEM, key="k-1")
    result = buy(engine, "2024-02-01T10:00:00+09:00", ITEM, key="k-2")
    assert result.charged == Yen(300)


def test_a_wrong_access_key_does_not_bind_the_key(engine: Engine) -> None:
    """docs/contract.md "Command log": only a counted wrong password binds a key among refusals; a
    wrong access key is not counted (docs/design.md), so its key stays free for the retry."""
    setup_world(engine)
    with refused(engine, WrongAccessKey):
        engine.change_passport_limit(
            at="2024-02-01T10:00:00+09:00",
            passport_id=PID,
            access_key=WRONG,
            limit=1000,
            key="k-1",
        )
    engine.change_passport_limit(
        at="2024-02-01T10:00:00+09:00", passport_id=PID, access_key=KEY, limit=1000, key="k-1"
    )
    passport = engine.passport(PID)
    assert passport is not None
    assert passport.limit == Yen(1000)


def test_a_key_bound_to_another_body_counts_a_wrong_password_before_the_conflict(
    engine: Engine,
) -> None:
    """docs/rules.md §10: idempotency never opens a side door — a key bound to a different body
    does not answer before the credential is checked: a wrong secret is counted and refused as
    such, so a bound key gives no free password guesses (ten lock the ID)."""
    setup_world(engine)
    buy(engine, "2024-02-01T09:00:00+09:00", ITEM, key="k-1")
    for n in range(10):
        with pytest.raises(WrongPassword):
            buy(
                engine, f"2024-02-01T10:{n:02d}:00+09:00", ITEM, password=f"Guess{n:03d}", key="k-1"
            )
    passport = engine.passport(PID)
    assert passport is not None
    assert passport.consecutive_failures == 10
    assert passport.locked
    with refused(engine, LockedOut):
        buy(engine, "2024-02-01T11:00:00+09:00", ITEM, key="k-1")


def test_only_the_right_secret_gets_idempotency_conflict(engine: Engine) -> None:
    """docs/contract.md "Idempotency keys are no password oracle": a different body whose secret is
    right is ``idempotency_conflict``; the same body with the right secret is the first result."""
    setup_world(engine)
    first = buy(engine, "2024-02-01T09:00:00+09:00", ITEM, key="k-1")
    with refused(engine, IdempotencyConflict):
        buy(engine, "2024-02-01T09:30:00+09:00", ITEM, key="k-1")
    assert buy(engine, "2024-02-01T09:00:00+09:00", ITEM, key="k-1") == first


def test_a_key_bound_to_a_line_holder_command_checks_the_access_key_first(
    engine: Engine,
) -> None:
    """§10 for the line holder's credential: a key bound to another body answers
    ``wrong_access_key`` to a wrong key, ``idempotency_conflict`` only to the right one."""
    setup_world(engine)
    engine.change_passport_limit(
        at="2024-02-01T10:00:00+09:00", passport_id=PID, access_key=KEY, limit=1000, key="k-1"
    )
    with refused(engine, WrongAccessKey):
        engine.change_passport_limit(
            at="2024-02-01T10:00:00+09:00", passport_id=PID, access_key=WRONG, limit=1000, key="k-1"
        )
    with refused(engine, IdempotencyConflict):
        engine.change_passport_limit(
            at="2024-02-01T10:00:00+09:00", passport_id=PID, access_key=KEY, limit=2000, key="k-1"
        )


def test_a_replay_is_answered_even_after_the_month_closed(engine: Engine) -> None:
    """docs/contract.md "Command log": a key bound to the same body answers its first result after
    its credential, before any other check (an identical retry is not a new command); another
    body whose secret is right is ``idempotency_conflict`` — contract 3 stands over contract
    2's ranking (``month_closed`` first), and without a key it is ``month_closed``."""
    setup_world(engine)
    first = buy(engine, "2024-02-01T10:00:00+09:00", ITEM, key="k-1")
    engine.issue_bills(at="2024-03-01T00:00:00+09:00", month="2024-02")
    assert buy(engine, "2024-02-01T10:00:00+09:00", ITEM, key="k-1") == first
    with refused(engine, IdempotencyConflict):
        buy(engine, "2024-02-01T10:00:00+09:00", MONTHLY, key="k-1")
    with refused(engine, MonthClosed):
        buy(engine, "2024-02-01T10:00:00+09:00", MONTHLY, key="k-2")


def test_replayed_results_of_every_result_type_equal_the_first(engine: Engine) -> None:
    """The first result is answered again, whatever its shape."""
    setup_world(engine)
    at = "2024-02-01T10:00:00+09:00"
    receipt = buy(engine, at, MONTHLY, key="p").receipt
    calls: list[Callable[[], Result]] = [
        lambda: engine.open_line(
            at=at,
            customer_id="CAF0000000002",
            operator="west",
            kind="hikari_light",
            access_key="Key12345",
            line_limit=5000,
            billing={"method": "customer_number", "number": "0012345678"},
            key="o",
        ),
        lambda: engine.register_passport(
            at=at,
            customer_id="CAF0000000002",
            passport_id="jiro.3",
            password="Jiro1234",
            email="jiro@example.jp",
            applicant={"name": "Jiro", "phone": "06-1234-5678", "contract_holder": True},
            limit=1000,
            line_auth=False,
            key="rp",
            access_key=KEY,
        ),
        lambda: engine.change_passport_limit(
            access_key=KEY, at=at, passport_id="jiro.3", limit=900, key="cl"
        ),
        lambda: engine.refund(at=at, receipt=receipt, amount=5, reason="x", key="r"),
        lambda: buy(engine, at, ITEM, quantity=3, key="q"),
        lambda: engine.set_notification(
            at=at,
            customer_id=CID,
            access_key=KEY,
            provider="A",
            notify=True,
            consent=True,
            channel="web",
            key="n",
        ),
        lambda: engine.change_passport_details(
            at=at, passport_id="jiro.3", access_key=KEY, email="j@example.jp", key="cd"
        ),
        lambda: engine.reset_password(
            at=at, passport_id="jiro.3", password="Jiro5678", channel="phone", key="rs"
        ),
        lambda: engine.set_fee(
            at=at, operator="east", effective_from="2024-02", flat_fee=60, key="f"
        ),
        lambda: engine.cancel(
            password=PW, at="2024-02-02T00:00:00+09:00", receipt=receipt, key="c"
        ),
        lambda: engine.regulate_line(at="2024-02-03T00:00:00+09:00", customer_id=CID, key="g"),
        lambda: engine.lift_regulation(
            at="2024-02-04T00:00:00+09:00", customer_id=CID, channel="written", key="l"
        ),
        lambda: engine.delete_passport(
            access_key=KEY, at="2024-02-05T00:00:00+09:00", passport_id=PID, key="d"
        ),
        lambda: engine.change_line(
            at="2024-02-06T00:00:00+09:00",
            customer_id=CID,
            change="relocation",
            new_customer_id="CAF0000000009",
            key="m",
        ),
    ]
    for call in calls:
        first = call()
        before = event_count(engine)
        assert call() == first
        assert event_count(engine) == before


def test_a_replayed_issue_bills_answers_the_first_result(engine: Engine) -> None:
    """docs/contract.md "Command log": the same key with the same body answers the first result
    again."""
    setup_world(engine)
    buy(engine, "2024-02-01T10:00:00+09:00", MONTHLY)
    first = engine.issue_bills(at="2024-03-01T00:00:00+09:00", month="2024-02", key="i")
    assert first.closed  # the month was closed by this command
    again = engine.issue_bills(at="2024-03-01T00:00:00+09:00", month="2024-02", key="i")
    assert again == first


# ---------------------------------------------------------------------------------------------
# Contract 3, "Idempotency keys are no password oracle" (docs/contract.md; issue 15, items 1, 5)


def _failures(engine: Engine) -> int:
    passport = engine.passport(PID)
    assert passport is not None
    return passport.consecutive_failures


def test_a_used_key_checks_and_counts_the_password_before_time_order(engine: Engine) -> None:
    """Contract 3: under a used key the secret is checked first — before time order — and a
    wrong one is counted.  The attack: a purchase bound to ``old-k``, a later command on the
    ID, then replays of that body with other passwords were ``invalid_input``, uncounted,
    and the right one ``ok``: an oracle.  Now each guess is ``wrong_password``, counted."""
    setup_world(engine)
    first = buy(engine, "2024-02-01T10:00:00+09:00", ITEM, key="old-k")
    buy(engine, "2024-02-02T10:00:00+09:00", ITEM)  # any later command on the ID
    for n in range(3):
        with pytest.raises(WrongPassword):
            buy(engine, "2024-02-01T10:00:00+09:00", ITEM, password=f"Guess{n:03d}", key="old-k")
        assert _failures(engine) == n + 1
    # The right password answers the receipt (no oracle: every wrong guess was counted).
    assert buy(engine, "2024-02-01T10:00:00+09:00", ITEM, key="old-k") == first


def test_a_used_key_gives_no_guesses_against_a_locked_id(engine: Engine) -> None:
    """Contract 3: an accepted body whose secret no longer opens the ID — locked — answers
    ``locked_out``, right password or not (the attack: 40 guesses, then ``ok``)."""
    setup_world(engine)
    buy(engine, "2024-02-01T10:00:00+09:00", ITEM, key="old-k")
    for n in range(10):
        with pytest.raises(WrongPassword):
            buy(engine, f"2024-02-02T10:{n:02d}:00+09:00", ITEM, password=WRONG)
    for guess in [f"Guess{n:03d}" for n in range(40)] + [PW]:
        with refused(engine, LockedOut):
            buy(engine, "2024-02-01T10:00:00+09:00", ITEM, password=guess, key="old-k")


@pytest.mark.parametrize("how", ["change", "reset"])
def test_a_used_key_no_longer_recognises_a_replaced_password(engine: Engine, how: str) -> None:
    """Contract 3: after the password changed or was reset, the body bound with the old one
    answers what the old password gets now — ``wrong_password``, counted — and the new
    password, a different body, is ``idempotency_conflict``."""
    setup_world(engine)
    buy(engine, "2024-02-01T10:00:00+09:00", ITEM, key="old-k")
    if how == "change":
        engine.change_passport_details(
            at="2024-02-02T10:00:00+09:00", passport_id=PID, access_key=KEY, password="NewPass1"
        )
    else:
        engine.reset_password(
            at="2024-02-02T10:00:00+09:00", passport_id=PID, password="NewPass1", channel="phone"
        )
    for n, password in enumerate([PW, WRONG, "Guess000"]):
        with pytest.raises(WrongPassword):
            buy(engine, "2024-02-01T10:00:00+09:00", ITEM, password=password, key="old-k")
        assert _failures(engine) == n + 1
    with refused(engine, IdempotencyConflict):
        buy(engine, "2024-02-01T10:00:00+09:00", ITEM, password="NewPass1", key="old-k")


def test_a_used_key_counts_wrong_passwords_after_an_erasure(engine: Engine) -> None:
    """Contract 3: an erasure of the ID's personal data leaves its password as it was: under
    the key, a wrong one is still counted and the right one still answers the receipt."""
    setup_world(engine)
    first = buy(engine, "2024-02-01T10:00:00+09:00", ITEM, key="old-k")
    engine.erase_personal_data(at="2024-02-02T10:00:00+09:00", passport_id=PID, reason="request")
    with pytest.raises(WrongPassword):
        buy(engine, "2024-02-01T10:00:00+09:00", ITEM, password=WRONG, key="old-k")
    assert _failures(engine) == 1
    assert buy(engine, "2024-02-01T10:00:00+09:00", ITEM, key="old-k") == first


def test_a_body_bound_to_a_counted_wrong_password_answers_locked_out_once_locked(
    engine: Engine,
) -> None:
    """Contract 3 (contract 2 stands): the body that counted a wrong password answers that
    refusal again, uncounted — until the ID is locked: then ``locked_out``."""
    setup_world(engine)
    with pytest.raises(WrongPassword):
        buy(engine, "2024-02-01T10:00:00+09:00", ITEM, password=WRONG, key="k-1")
    with refused(engine, WrongPassword):
        buy(engine, "2024-02-01T10:00:00+09:00", ITEM, password=WRONG, key="k-1")
    assert _failures(engine) == 1
    for n in range(9):
        with pytest.raises(WrongPassword):
            buy(engine, f"2024-02-02T10:{n:02d}:00+09:00", ITEM, password=f"Guess{n:03d}")
    with refused(engine, LockedOut):
        buy(engine, "2024-02-01T10:00:00+09:00", ITEM, password=WRONG, key="k-1")


def test_the_bound_wrong_password_is_counted_again_once_the_password_changed(
    engine: Engine,
) -> None:
    """The key's hash of the wrong password went with the old password: the same body is
    then judged against the new one — a wrong password, counted (no uncounted answer)."""
    setup_world(engine)
    with pytest.raises(WrongPassword):
        buy(engine, "2024-02-01T10:00:00+09:00", ITEM, password=WRONG, key="k-1")
    engine.reset_password(
        at="2024-02-02T10:00:00+09:00", passport_id=PID, password="NewPass1", channel="phone"
    )
    with pytest.raises(WrongPassword):
        buy(engine, "2024-02-01T10:00:00+09:00", ITEM, password=WRONG, key="k-1")
    assert _failures(engine) == 1
    # The new password opens the ID, but the key's first answer (a refusal) no longer holds.
    with refused(engine, IdempotencyConflict):
        buy(engine, "2024-02-01T10:00:00+09:00", ITEM, password="NewPass1", key="k-1")


def test_a_used_key_of_a_line_holder_command_checks_the_access_key_before_time_order(
    engine: Engine,
) -> None:
    """Contract 3 for the line holder's secret: a wrong access key under a used key is
    ``wrong_access_key`` (not counted: only passwords lock), never ``invalid_input``."""
    setup_world(engine)
    first = engine.change_passport_limit(
        at="2024-02-01T10:00:00+09:00", passport_id=PID, access_key=KEY, limit=1000, key="k-1"
    )
    buy(engine, "2024-02-02T10:00:00+09:00", ITEM)
    with refused(engine, WrongAccessKey):
        engine.change_passport_limit(
            at="2024-02-01T10:00:00+09:00", passport_id=PID, access_key=WRONG, limit=1000, key="k-1"
        )
    again = engine.change_passport_limit(
        at="2024-02-01T10:00:00+09:00", passport_id=PID, access_key=KEY, limit=1000, key="k-1"
    )
    assert again == first


def _register(engine: Engine, *, email: str, name: str, phone: str) -> Result:
    return engine.register_passport(
        at="2024-02-01T10:00:00+09:00",
        customer_id=CID,
        passport_id="jiro.2",
        password="Jiro1234",
        email=email,
        applicant={"name": name, "phone": phone, "contract_holder": True},
        limit=1000,
        line_auth=False,
        access_key=KEY,
        key="rp",
    )


REAL = {"email": "jiro@example.jp", "name": "Yamada Jiro", "phone": "06-9999-0000"}
GUESSES = [
    {**REAL, "email": "guess@example.jp"},
    {**REAL, "name": "Tanaka Jiro"},
    {**REAL, "phone": "03-0000-0000"},
]


def _stored_key_states(engine: Engine) -> list[dict[str, Any]]:
    mapper = engine.internals.mapper
    assert isinstance(mapper, EventMapper)
    return [
        mapper.stored_state(n)
        for n in engine.internals.recorder.select_notifications(start=1, limit=10**6)
        if n.topic == "matome.idempotency.KeyBound"
    ]


def test_a_key_record_keeps_no_digest_that_confirms_a_guessed_register_passport_body(
    engine: Engine,
) -> None:
    """Contract 3 (issue 15, item 5): the key of a ``register_passport`` kept an unsalted
    SHA-256 of the whole body (e-mail, name, phone), so a guessed body could be confirmed
    offline.  Its digest now leaves the personal fields out: the real body's and a guess's
    are the same digest, and no stored key state holds the personal values."""
    setup_world(engine)
    _register(engine, **REAL)
    (state,) = [s for s in _stored_key_states(engine) if s["command"] == "register_passport"]
    real = parse_command(_body(**REAL))
    assert state["digest"] != legacy_fingerprint(real)
    for guess in GUESSES:
        assert fingerprint(parse_command(_body(**guess))) == state["digest"]
    text = dumps(state)
    assert not any(value in text for value in REAL.values())


def _body(**personal: str) -> dict[str, Any]:
    return {
        "command": "register_passport",
        "at": "2024-02-01T10:00:00+09:00",
        "customer_id": CID,
        "passport_id": "jiro.2",
        "password": "Jiro1234",
        "email": personal["email"],
        "applicant": {
            "name": personal["name"],
            "phone": personal["phone"],
            "contract_holder": True,
        },
        "limit": 1000,
        "line_auth": False,
        "access_key": KEY,
        "key": "rp",
    }


def test_after_an_erasure_a_key_answers_every_email_name_and_phone_alike(engine: Engine) -> None:
    """Contract 3: after ``erase_personal_data`` every replay of a key that carried the
    erased ID's data gets the same answer, whatever e-mail, name or phone it carries — the
    personal digest the key kept went with the ID's personal data (before: the real e-mail
    was answered ``ok`` and a guess ``idempotency_conflict``)."""
    setup_world(engine)
    first = _register(engine, **REAL)
    for guess in GUESSES:  # before the erasure the key compares them, as any body field
        with refused(engine, IdempotencyConflict):
            _register(engine, **guess)
    assert _register(engine, **REAL) == first
    rows = engine._store.matome_recorder.personal_rows()
    assert any(r.ref.endswith("/personal_digest") for r in rows.values())
    engine.erase_personal_data(at="2024-02-02T10:00:00+09:00", passport_id="jiro.2", reason="x")
    rows = engine._store.matome_recorder.personal_rows()
    assert not any(r.ref.endswith("/personal_digest") for r in rows.values())
    before = event_count(engine)
    assert {str(_register(engine, **body)) for body in [REAL, *GUESSES]} == {str(first)}
    assert event_count(engine) == before


@pytest.mark.parametrize("erased", [False, True])
def test_a_key_bound_before_contract_3_answers_by_its_whole_body_digest_until_erasure(
    erased: bool,
) -> None:
    """Keys bound before contract 3 (``KeyBound`` v3 and older) hold a digest of the whole
    body, personal fields included: they answer the same body while the ID's personal data
    exist, and once those are erased no body with personal fields — real or guessed — matches
    (``idempotency_conflict`` for all: the answer depends on no personal value)."""
    real = parse_command(_body(**REAL))
    state = {
        "at": "2024-02-01T10:00:00+09:00",
        "timestamp": "2024-02-01T10:00:00+09:00",
        "key": "rp",
        "command": "register_passport",
        "digest": legacy_fingerprint(real),
        "secrets": {"password": "x", "access_key": "y"},
        "result": {"passport_id": "jiro.2", "status": "in_use"},
        "error": None,
        "owner": None,
        "class_version": 3,
    }
    event = event_from_json("matome.idempotency.KeyBound", state, key_id("rp"), 1)
    assert isinstance(event, KeyBound)
    assert event.personal_in_digest
    record = project_key(None, [event])
    assert record is not None

    class Any_:  # every secret matches: only the body is under test here
        def hash(self, secret: str) -> str:
            return secret

        def verify(self, secret: str, stored: str) -> bool:
            return True

        def needs_rehash(self, stored: str) -> bool:
            return False

    answers = {
        str(answer_again(record, parse_command(_body(**b)), Any_(), personal_erased=erased))
        for b in [REAL, *GUESSES]
    }
    if erased:
        assert answers == {"None"}
    else:
        assert len(answers) == 2  # the real body answers, the guesses do not
