"""Regulation [利用規制]: docs/rules.md §5."""

from __future__ import annotations

import pytest

from matome.engine import Engine
from matome.errors import InvalidInput, LineRegulated, NotAllowedOnline, UnknownLine
from matome.events.subscription import CancelReason
from matome.values import PassportId, YearMonth, Yen
from tests.unit.helpers import (
    CID,
    CID2,
    ITEM,
    MONTHLY,
    MONTHLY2,
    PID,
    buy,
    event_count,
    open_line,
    refused,
    register,
    setup_world,
)


def _two_ids_with_subscriptions(engine: Engine) -> list[str]:
    setup_world(engine)
    register(engine, "hanako.2", at="2024-01-06T00:00:00+09:00", password="Hana1234", limit=2000)
    return [
        buy(engine, "2024-01-20T10:00:00+09:00", MONTHLY).receipt,
        buy(engine, "2024-01-20T10:01:00+09:00", MONTHLY2).receipt,
        buy(
            engine,
            "2024-01-20T10:02:00+09:00",
            MONTHLY,
            passport_id="hanako.2",
            password="Hana1234",
        ).receipt,
    ]


def test_regulation_cancels_every_monthly_subscription_of_every_id_on_the_line(
    engine: Engine,
) -> None:
    """§5: on regulation all subscriptions of all IDs on the line are cancelled at that instant."""
    receipts = _two_ids_with_subscriptions(engine)
    result = engine.regulate_line(at="2024-02-10T12:00:00+09:00", customer_id=CID)
    assert result.regulated
    assert sorted(result.cancelled) == sorted(receipts)
    for receipt in receipts:
        sub = engine.subscription(receipt)
        assert sub is not None
        assert not sub.active
        assert sub.cancel_reason is CancelReason.REGULATION
        assert sub.cancelled_at is not None
        assert sub.cancelled_at.isoformat() == "2024-02-10T12:00:00+09:00"


def test_regulation_does_not_touch_other_lines(engine: Engine) -> None:
    """§5: set per access line."""
    setup_world(engine)
    open_line(engine, CID2)
    register(engine, "other.9", customer_id=CID2, at="2024-01-06T00:00:00+09:00", limit=1000)
    theirs = buy(engine, "2024-01-20T10:00:00+09:00", MONTHLY, passport_id="other.9").receipt
    engine.regulate_line(at="2024-02-10T12:00:00+09:00", customer_id=CID)
    sub = engine.subscription(theirs)
    assert sub is not None
    assert sub.active
    buy(engine, "2024-02-11T10:00:00+09:00", ITEM, passport_id="other.9")


def test_regulation_on_the_first_means_that_month_is_not_charged(engine: Engine) -> None:
    """§5: the charging rules decide the last month; regulation on the 1st → not charged."""
    setup_world(engine)
    buy(engine, "2024-01-20T10:00:00+09:00", MONTHLY)
    engine.regulate_line(at="2024-02-01T08:00:00+09:00", customer_id=CID)
    passport = engine.passport(PID)
    assert passport is not None
    assert passport.spend(YearMonth(2024, 1), once_per_month=True) == Yen(525)
    assert passport.spend(YearMonth(2024, 2), once_per_month=True) == Yen(0)


def test_a_regulated_line_refuses_purchases(engine: Engine) -> None:
    """§5: while regulated: no purchase (every ID on the line becomes unusable)."""
    setup_world(engine)
    engine.regulate_line(at="2024-02-10T12:00:00+09:00", customer_id=CID)
    with refused(engine, LineRegulated):
        buy(engine, "2024-02-11T10:00:00+09:00", ITEM)
    with refused(engine, LineRegulated):
        buy(engine, "2024-02-11T10:00:00+09:00", MONTHLY)


def test_a_regulated_line_refuses_new_passport_ids(engine: Engine) -> None:
    """§2/§5: IDs are registered on a line that is not regulated."""
    setup_world(engine)
    engine.regulate_line(at="2024-02-10T12:00:00+09:00", customer_id=CID)
    with refused(engine, LineRegulated):
        register(engine, "hanako.2", at="2024-02-11T00:00:00+09:00", limit=1000)


def test_regulation_does_not_delete_passport_ids(engine: Engine) -> None:
    """§5: Passport IDs are **not** deleted."""
    _two_ids_with_subscriptions(engine)
    engine.regulate_line(at="2024-02-10T12:00:00+09:00", customer_id=CID)
    line = engine.line(CID)
    assert line is not None
    assert line.regulated
    assert set(line.passports) == {PassportId(PID), PassportId("hanako.2")}
    for pid in (PID, "hanako.2"):
        passport = engine.passport(pid)
        assert passport is not None
        assert not passport.deleted


def test_regulating_a_regulated_line_is_accepted_and_changes_nothing(engine: Engine) -> None:
    """§5: regulating a regulated line is accepted and changes nothing."""
    setup_world(engine)
    engine.regulate_line(at="2024-02-10T12:00:00+09:00", customer_id=CID)
    before = event_count(engine)
    result = engine.regulate_line(at="2024-02-11T12:00:00+09:00", customer_id=CID)
    assert result.regulated
    assert result.cancelled == ()
    assert event_count(engine) == before


def test_lifting_a_line_that_is_not_regulated_is_accepted_and_changes_nothing(
    engine: Engine,
) -> None:
    """§5: lifting a line that is not regulated is accepted and changes nothing."""
    setup_world(engine)
    before = event_count(engine)
    result = engine.lift_regulation(
        at="2024-02-10T12:00:00+09:00", customer_id=CID, channel="written"
    )
    assert not result.regulated
    assert event_count(engine) == before


def test_lifting_a_regulation_online_is_refused(engine: Engine) -> None:
    """§5: lifting requires a written application [書面]; ``online`` is refused."""
    setup_world(engine)
    engine.regulate_line(at="2024-02-10T12:00:00+09:00", customer_id=CID)
    with refused(engine, NotAllowedOnline):
        engine.lift_regulation(at="2024-02-11T12:00:00+09:00", customer_id=CID, channel="online")
    line = engine.line(CID)
    assert line is not None
    assert line.regulated


def test_lift_channel_must_be_written_or_online(engine: Engine) -> None:
    setup_world(engine)
    with refused(engine, InvalidInput):
        engine.lift_regulation(at="2024-02-11T12:00:00+09:00", customer_id=CID, channel="fax")


def test_lifting_makes_the_ids_usable_again(engine: Engine) -> None:
    """§5: lifting the regulation makes the IDs usable again."""
    setup_world(engine)
    engine.regulate_line(at="2024-02-10T12:00:00+09:00", customer_id=CID)
    engine.lift_regulation(at="2024-02-20T12:00:00+09:00", customer_id=CID, channel="written")
    buy(engine, "2024-02-21T10:00:00+09:00", ITEM)
    register(engine, "hanako.2", at="2024-02-22T00:00:00+09:00", limit=1000)


def test_lifting_does_not_revive_cancelled_subscriptions(engine: Engine) -> None:
    """§5: lifting does not revive the subscriptions regulation cancelled."""
    receipts = _two_ids_with_subscriptions(engine)
    engine.regulate_line(at="2024-02-10T12:00:00+09:00", customer_id=CID)
    engine.lift_regulation(at="2024-02-20T12:00:00+09:00", customer_id=CID, channel="written")
    for receipt in receipts:
        sub = engine.subscription(receipt)
        assert sub is not None
        assert not sub.active
    passport = engine.passport(PID)
    assert passport is not None
    assert all(not h.active for h in passport.holdings.values())
    # Buying again is a new subscription; in the same month it is not charged again (§4).
    again = buy(engine, "2024-02-21T10:00:00+09:00", MONTHLY)
    assert again.receipt not in receipts
    assert again.charged == Yen(0)


def test_regulation_and_lifting_are_free_of_charge(engine: Engine) -> None:
    """§5: regulation and lifting are free: they add nothing to any ID's spend."""
    setup_world(engine)
    engine.regulate_line(at="2024-02-10T12:00:00+09:00", customer_id=CID)
    engine.lift_regulation(at="2024-02-20T12:00:00+09:00", customer_id=CID, channel="written")
    passport = engine.passport(PID)
    assert passport is not None
    assert passport.spend(YearMonth(2024, 2), once_per_month=True) == Yen(0)


def test_regulating_an_unknown_line_is_unknown_line(engine: Engine) -> None:
    with refused(engine, UnknownLine):
        engine.regulate_line(at="2024-02-10T12:00:00+09:00", customer_id=CID)


@pytest.mark.parametrize("channel", ["written", "online"])
def test_lifting_an_unknown_line_is_unknown_line(engine: Engine, channel: str) -> None:
    """docs/contract.md "Order of refusals": ``unknown_line`` before ``not_allowed_online``."""
    with refused(engine, UnknownLine):
        engine.lift_regulation(at="2024-02-10T12:00:00+09:00", customer_id=CID, channel=channel)
