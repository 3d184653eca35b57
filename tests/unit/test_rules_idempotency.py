"""Idempotency keys: INTERCHANGE.md, "Command log".

The same key with the same body is applied once and answers the first result again; the same
key with a different body is ``idempotency_conflict``; only an accepted command binds its key.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest

from matome.commands import Result
from matome.engine import Engine
from matome.errors import IdempotencyConflict, LimitExceeded, WrongPassword
from matome.values import Yen
from tests.unit.helpers import (
    CID,
    ITEM,
    MONTHLY,
    PID,
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
        {"password": "Other123"},  # secrets are part of the body, checked against a hash
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
        engine.cancel(at="2024-02-01T10:00:00+09:00", receipt=receipt, key="k-1")


def test_a_refused_command_leaves_its_key_free(engine: Engine) -> None:
    """Only an accepted command binds its key: a retry is judged afresh."""
    setup_world(engine, limit=300)
    buy(engine, "2024-02-01T10:00:00+09:00", ITEM)
    with refused(engine, LimitExceeded):
        buy(engine, "2024-02-01T11:00:00+09:00", ITEM, key="k-1")
    engine.change_passport_limit(at="2024-02-01T11:00:00+09:00", passport_id=PID, limit=600)
    result = buy(engine, "2024-02-01T11:00:00+09:00", ITEM, key="k-1")  # the same retry
    assert result.charged == Yen(300)


def test_a_refused_command_leaves_its_key_free_for_a_different_body(engine: Engine) -> None:
    setup_world(engine, limit=300)
    buy(engine, "2024-02-01T10:00:00+09:00", ITEM)
    with refused(engine, LimitExceeded):
        buy(engine, "2024-02-01T11:00:00+09:00", ITEM, key="k-1")
    engine.change_passport_limit(
        at="2024-02-01T12:00:00+09:00", passport_id=PID, limit=3000, key="k-1"
    )


def test_a_wrong_password_does_not_bind_the_key(engine: Engine) -> None:
    """The counted wrong password is a refusal: the key stays free."""
    setup_world(engine)
    with pytest.raises(WrongPassword):
        buy(engine, "2024-02-01T10:00:00+09:00", ITEM, password="Wrong123", key="k-1")
    result = buy(engine, "2024-02-01T10:00:00+09:00", ITEM, key="k-1")
    assert result.charged == Yen(300)


def test_a_replay_is_answered_even_after_the_month_closed(engine: Engine) -> None:
    """INTERCHANGE.md precedence: ``idempotency_conflict`` is judged before ``month_closed``;
    an identical retry is not a new command, so it gets the first answer again."""
    setup_world(engine)
    first = buy(engine, "2024-02-01T10:00:00+09:00", ITEM, key="k-1")
    engine.issue_bills(at="2024-03-01T00:00:00+09:00", month="2024-02")
    assert buy(engine, "2024-02-01T10:00:00+09:00", ITEM, key="k-1") == first
    with refused(engine, IdempotencyConflict):
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
        ),
        lambda: engine.change_passport_limit(at=at, passport_id="jiro.3", limit=900, key="cl"),
        lambda: engine.refund(at=at, receipt=receipt, amount=5, reason="x", key="r"),
        lambda: engine.cancel(at="2024-02-02T00:00:00+09:00", receipt=receipt, key="c"),
        lambda: engine.regulate_line(at="2024-02-03T00:00:00+09:00", customer_id=CID, key="g"),
        lambda: engine.lift_regulation(
            at="2024-02-04T00:00:00+09:00", customer_id=CID, channel="written", key="l"
        ),
        lambda: engine.delete_passport(at="2024-02-05T00:00:00+09:00", passport_id=PID, key="d"),
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
