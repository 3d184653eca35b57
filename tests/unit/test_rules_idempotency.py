"""Idempotency keys: INTERCHANGE.md, "Command log" (contract 2) and DOMAIN.md §10.

The same key with the same body is applied once and answers the first result again; the same
key with a different body is ``idempotency_conflict`` — but a command carrying a credential has
it checked first (no free password guesses).  An accepted command binds its key; so does a
refusal that recorded a wrong password.  Other refusals leave the key free.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest

from matome.commands import Result
from matome.engine import Engine
from matome.errors import (
    IdempotencyConflict,
    LimitExceeded,
    LockedOut,
    MonthClosed,
    WrongAccessKey,
    WrongPassword,
)
from matome.values import Yen
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
    """Contract 2 (INTERCHANGE.md, DOMAIN.md §10): a refusal that recorded a wrong password
    binds its key, so re-running the same log after a crash answers the same refusal and
    counts nothing twice; a retry of that key with another body (the right password) is a
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
    """INTERCHANGE.md: only a counted wrong password binds a key among refusals; a wrong
    access key is not counted (docs/design.md), so its key stays free for the retry."""
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
    """DOMAIN.md §10: idempotency never opens a side door — a key bound to a different body
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
    """DOMAIN.md §10: only a correct secret gets ``idempotency_conflict``; secrets are part of
    the body (checked against a hash).  Once the password changed, the hashes the key kept of
    the old one are gone with it: the same body is then answered again whatever secret it
    carries — an answer that depends on no secret reveals none (see the test below)."""
    setup_world(engine)
    first = buy(engine, "2024-02-01T09:00:00+09:00", ITEM, key="k-1")
    with refused(engine, IdempotencyConflict):
        buy(engine, "2024-02-01T09:30:00+09:00", ITEM, key="k-1")
    engine.change_passport_details(
        at="2024-02-01T09:00:00+09:00", passport_id=PID, access_key=KEY, password="Other123"
    )
    assert buy(engine, "2024-02-01T09:00:00+09:00", ITEM, password="Other123", key="k-1") == first
    assert buy(engine, "2024-02-01T09:00:00+09:00", ITEM, password=WRONG, key="k-1") == first
    # Another body is decided: the credential first (a wrong one counted), then the conflict.
    with refused(engine, IdempotencyConflict):
        buy(engine, "2024-02-01T09:30:00+09:00", ITEM, password="Other123", key="k-1")


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
    """INTERCHANGE.md: a key bound to the same body answers its first result before any check
    (an identical retry is not a new command); another body in the closed month is
    ``month_closed``, which ranks before ``idempotency_conflict`` in contract 2."""
    setup_world(engine)
    first = buy(engine, "2024-02-01T10:00:00+09:00", ITEM, key="k-1")
    engine.issue_bills(at="2024-03-01T00:00:00+09:00", month="2024-02")
    assert buy(engine, "2024-02-01T10:00:00+09:00", ITEM, key="k-1") == first
    with refused(engine, MonthClosed):
        buy(engine, "2024-02-01T10:00:00+09:00", MONTHLY, key="k-1")


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
    """INTERCHANGE.md: the same key with the same body answers the first result again."""
    setup_world(engine)
    buy(engine, "2024-02-01T10:00:00+09:00", MONTHLY)
    first = engine.issue_bills(at="2024-03-01T00:00:00+09:00", month="2024-02", key="i")
    assert first.closed  # the month was closed by this command
    again = engine.issue_bills(at="2024-03-01T00:00:00+09:00", month="2024-02", key="i")
    assert again == first


def test_a_retry_after_the_password_was_reset_answers_the_first_result(engine: Engine) -> None:
    """A reset replaces the password and erases the hashes the key kept of the old one; a
    retry of a purchase made with the old password is the same body and answers its first
    result again — it is not decided again, where the old password would count as wrong
    (§10) and could lock the ID out."""
    setup_world(engine)
    first = buy(engine, "2024-02-01T10:00:00+09:00", ITEM, key="k-1")
    engine.reset_password(
        at="2024-02-02T10:00:00+09:00", passport_id=PID, password="Newpass1", channel="phone"
    )
    before = event_count(engine)
    assert buy(engine, "2024-02-01T10:00:00+09:00", ITEM, key="k-1") == first
    assert event_count(engine) == before
    passport = engine.passport(PID)
    assert passport is not None
    assert passport.consecutive_failures == 0
    # Another body under that key is still a conflict.
    with refused(engine, IdempotencyConflict):
        buy(engine, "2024-02-03T10:00:00+09:00", ITEM, key="k-1", password="Newpass1")
