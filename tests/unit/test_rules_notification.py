"""Line-information notification [回線情報通知] and line authentication [回線認証]: docs/rules.md
§9.

Contract 2: the notification setting is the line holder's command (with the line's access key)
and only decides whether a provider learns the customer ID; line authentication is NTT's own
check of the line a purchase came over, for Hikari lines only, made before the password.
"""

from __future__ import annotations

import pytest

from matome.engine import Engine
from matome.errors import (
    ConsentRequired,
    InvalidInput,
    LineAuthFailed,
    UnknownLine,
    UnknownProvider,
)
from matome.events.line import NotificationSet
from matome.values import ProviderCode
from tests.unit.helpers import (
    CID,
    CID2,
    EAST_CID,
    ITEM,
    KEY,
    PID,
    PROVIDER,
    WRONG,
    add_provider,
    buy,
    event_count,
    open_line,
    refused,
    register,
    setup_world,
)


def _notify(engine: Engine, notify: bool, *, at: str = "2024-02-01T00:00:00+09:00") -> None:
    engine.set_notification(
        at=at,
        customer_id=CID,
        provider=PROVIDER,
        notify=notify,
        consent=True,
        channel="web",
        access_key=KEY,
    )


def test_a_line_can_notify_a_provider_of_its_customer_id(engine: Engine) -> None:
    """§9: per provider the setting is "notify" or "do not notify"."""
    setup_world(engine)
    _notify(engine, True)
    line = engine.line(CID)
    assert line is not None
    assert line.notifications[ProviderCode(PROVIDER)] is True
    _notify(engine, False, at="2024-02-02T00:00:00+09:00")
    line = engine.line(CID)
    assert line is not None
    assert line.notifications[ProviderCode(PROVIDER)] is False


@pytest.mark.parametrize("notify", [True, False])
def test_notification_settings_need_explicit_consent(engine: Engine, notify: bool) -> None:
    """§9: changed by the customer with explicit consent; ``consent: false`` is refused."""
    setup_world(engine)
    with refused(engine, ConsentRequired):
        engine.set_notification(
            at="2024-02-01T00:00:00+09:00",
            customer_id=CID,
            provider=PROVIDER,
            notify=notify,
            consent=False,
            channel="web",
            access_key=KEY,
        )


def test_notification_settings_record_when_and_through_which_channel(engine: Engine) -> None:
    """§9: recording when and through which channel it was set."""
    setup_world(engine)
    before = event_count(engine)
    engine.set_notification(
        at="2024-02-01T09:30:00+09:00",
        customer_id=CID,
        provider=PROVIDER,
        notify=True,
        consent=True,
        channel="settings-site",
        access_key=KEY,
    )
    (stored,) = engine.internals.recorder.select_notifications(
        start=before, limit=10, inclusive_of_start=False
    )
    event = engine.internals.mapper.to_domain_event(stored)
    assert isinstance(event, NotificationSet)
    assert event.channel == "settings-site"
    assert event.at.isoformat() == "2024-02-01T09:30:00+09:00"
    assert event.provider == ProviderCode(PROVIDER)
    assert event.notify is True


def test_a_notification_channel_must_be_named(engine: Engine) -> None:
    setup_world(engine)
    with refused(engine, InvalidInput):
        engine.set_notification(
            at="2024-02-01T00:00:00+09:00",
            customer_id=CID,
            provider=PROVIDER,
            notify=True,
            consent=True,
            channel="   ",
            access_key=KEY,
        )


def test_notification_for_an_unknown_provider_or_line_is_refused(engine: Engine) -> None:
    setup_world(engine)
    with refused(engine, UnknownProvider):
        engine.set_notification(
            at="2024-02-01T00:00:00+09:00",
            customer_id=CID,
            provider="Z",
            notify=True,
            consent=False,  # unknown_provider ranks before consent_required
            channel="web",
            access_key=KEY,
        )
    with refused(engine, UnknownLine):
        engine.set_notification(
            at="2024-02-01T00:00:00+09:00",
            customer_id=CID2,
            provider=PROVIDER,
            notify=True,
            consent=True,
            channel="web",
            access_key=KEY,
        )


def test_consent_must_be_a_real_boolean(engine: Engine) -> None:
    setup_world(engine)
    with refused(engine, InvalidInput):
        engine.set_notification(
            at="2024-02-01T00:00:00+09:00",
            customer_id=CID,
            provider=PROVIDER,
            notify=True,
            consent="yes",  # type: ignore[arg-type]  # deliberately not a bool
            channel="web",
            access_key=KEY,
        )


# ---------------------------------------------------------------------------------------------
# Line authentication (§9): NTT's own check, independent of notification (contract 2)


def test_line_auth_on_allows_a_purchase_over_the_owning_line(engine: Engine) -> None:
    """§9: with line authentication on, the purchase must come over the owning line (the
    carrier's network identifies it: ``presented_line``)."""
    setup_world(engine, line_auth=True)
    buy(engine, "2024-02-02T10:00:00+09:00", ITEM, presented_line=CID)


def test_line_auth_on_refuses_a_purchase_from_another_line(engine: Engine) -> None:
    """§9: an ID with line authentication can only purchase from the line that owns it."""
    setup_world(engine, line_auth=True)
    open_line(engine, CID2)
    with refused(engine, LineAuthFailed):
        buy(engine, "2024-02-02T10:00:00+09:00", ITEM, presented_line=CID2)


def test_line_auth_on_refuses_a_purchase_presenting_no_line(engine: Engine) -> None:
    setup_world(engine, line_auth=True)
    with refused(engine, LineAuthFailed):
        buy(engine, "2024-02-02T10:00:00+09:00", ITEM)


def test_line_auth_does_not_depend_on_the_notification_setting(engine: Engine) -> None:
    """§9 (contract 2): the line check is NTT's own; it does not depend on the notification
    setting, which only decides whether the *provider* learns the customer ID.  Never set,
    "do not notify" or "notify": the own line passes, another line fails."""
    setup_world(engine, line_auth=True)
    buy(engine, "2024-02-02T10:00:00+09:00", ITEM, presented_line=CID)  # never set
    with refused(engine, LineAuthFailed):
        buy(engine, "2024-02-02T10:00:01+09:00", ITEM, presented_line=CID2)
    _notify(engine, False, at="2024-02-03T00:00:00+09:00")
    buy(engine, "2024-02-04T10:00:00+09:00", ITEM, presented_line=CID)
    with refused(engine, LineAuthFailed):
        buy(engine, "2024-02-04T10:00:01+09:00", ITEM, presented_line=CID2)
    _notify(engine, True, at="2024-02-05T00:00:00+09:00")
    buy(engine, "2024-02-06T10:00:00+09:00", ITEM, presented_line=CID)
    with refused(engine, LineAuthFailed):
        buy(engine, "2024-02-06T10:00:01+09:00", ITEM, presented_line=CID2)


def test_line_auth_is_the_same_for_every_provider_whatever_each_is_notified(
    engine: Engine,
) -> None:
    """§9 (contract 2): notification is per provider, line authentication is not: notifying
    A and not B changes nothing about purchases from B."""
    setup_world(engine, line_auth=True)
    add_provider(engine, "B", at="2024-01-01T00:00:00+09:00")
    _notify(engine, True)
    buy(engine, "2024-02-02T10:00:00+09:00", ITEM, presented_line=CID)
    buy(engine, "2024-02-02T10:00:01+09:00", ITEM, provider="B", presented_line=CID)
    with refused(engine, LineAuthFailed):
        buy(engine, "2024-02-02T10:00:02+09:00", ITEM, provider="B", presented_line=CID2)


def test_line_auth_off_makes_no_line_check(engine: Engine) -> None:
    """§9: with line authentication off, no line check is made."""
    setup_world(engine, line_auth=False)
    open_line(engine, CID2)
    buy(engine, "2024-02-02T10:00:00+09:00", ITEM)
    buy(engine, "2024-02-02T10:00:01+09:00", ITEM, presented_line=CID2)
    buy(engine, "2024-02-02T10:00:02+09:00", ITEM, presented_line=CID)


def test_a_purchase_from_another_line_counts_no_wrong_password(engine: Engine) -> None:
    """§9 (contract 2): the line check comes before the password, so nobody on another line
    can lock an ID out: ten wrong passwords from another line are ``line_auth_failed``, count
    nothing and write nothing; the holder still buys over the own line."""
    setup_world(engine, line_auth=True)
    open_line(engine, CID2)
    for n in range(12):
        with refused(engine, LineAuthFailed):
            buy(
                engine, f"2024-02-02T10:{n:02d}:00+09:00", ITEM, password=WRONG, presented_line=CID2
            )
    passport = engine.passport(PID)
    assert passport is not None
    assert passport.consecutive_failures == 0
    assert not passport.locked
    buy(engine, "2024-02-02T11:00:00+09:00", ITEM, presented_line=CID)


@pytest.mark.parametrize("kind", ["hikari_next", "hikari_light", "hikari_light_plus"])
def test_line_auth_can_be_switched_on_for_hikari_lines(engine: Engine, kind: str) -> None:
    """§9: line authentication exists for Hikari Next, Hikari Light and Light Plus."""
    add_provider(engine)
    open_line(engine, EAST_CID, operator="east", kind=kind)
    register(engine, customer_id=EAST_CID, line_auth=True)
    with refused(engine, LineAuthFailed):
        buy(engine, "2024-02-02T10:00:00+09:00", ITEM, presented_line=CID)
    buy(engine, "2024-02-02T10:00:01+09:00", ITEM, presented_line=EAST_CID)


@pytest.mark.parametrize("kind", ["b_flets", "flets_adsl"])
def test_line_auth_cannot_be_switched_on_for_other_kinds_of_line(engine: Engine, kind: str) -> None:
    """§9 (contract 2): line authentication cannot be switched on for a Passport ID on a B
    FLET'S or FLET'S ADSL line: at registration and by ``change_passport_details``
    (``invalid_input``); switching it off, or leaving it off, is fine."""
    add_provider(engine)
    open_line(engine, EAST_CID, operator="east", kind=kind)
    with refused(engine, InvalidInput):
        register(engine, customer_id=EAST_CID, line_auth=True)
    register(engine, customer_id=EAST_CID, line_auth=False)
    with refused(engine, InvalidInput):
        engine.change_passport_details(
            at="2024-01-06T00:00:00+09:00", passport_id=PID, access_key=KEY, line_auth=True
        )
    engine.change_passport_details(
        at="2024-01-06T00:00:00+09:00", passport_id=PID, access_key=KEY, line_auth=False
    )
    buy(engine, "2024-02-02T10:00:00+09:00", ITEM, presented_line=CID)  # no line check


def test_change_passport_details_switches_line_auth_on_and_off(engine: Engine) -> None:
    """§2 and §9: the line holder changes the line-authentication setting with
    ``change_passport_details`` (with the access key); purchases are unaffected."""
    setup_world(engine)
    receipt = buy(engine, "2024-02-01T10:00:00+09:00", "back", presented_line=CID2).receipt
    engine.change_passport_details(
        at="2024-02-02T00:00:00+09:00", passport_id=PID, access_key=KEY, line_auth=True
    )
    passport = engine.passport(PID)
    assert passport is not None
    assert passport.line_auth is True
    with refused(engine, LineAuthFailed):
        buy(engine, "2024-02-03T10:00:00+09:00", ITEM, presented_line=CID2)
    buy(engine, "2024-02-03T10:00:01+09:00", ITEM, presented_line=CID)
    sub = engine.subscription(receipt)
    assert sub is not None
    assert sub.active
    engine.change_passport_details(
        at="2024-02-04T00:00:00+09:00", passport_id=PID, access_key=KEY, line_auth=False
    )
    buy(engine, "2024-02-05T10:00:00+09:00", ITEM, presented_line=CID2)


def test_no_line_check_is_made_once_the_line_is_no_longer_a_hikari_kind(engine: Engine) -> None:
    """docs/design.md (Decision on §9): if a line changes to another kind (an item change that
    keeps the service), no line check is made for its IDs; the setting is kept."""
    add_provider(engine)
    open_line(engine, EAST_CID, operator="east", kind="hikari_next")
    register(engine, customer_id=EAST_CID, line_auth=True)
    engine.change_line(
        at="2024-02-01T00:00:00+09:00",
        customer_id=EAST_CID,
        change="item_change",
        new_kind="b_flets",
    )
    buy(engine, "2024-02-02T10:00:00+09:00", ITEM, presented_line=CID)
    passport = engine.passport(PID)
    assert passport is not None
    assert passport.line_auth is True
