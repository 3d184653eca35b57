"""Line-information notification [回線情報通知] and line authentication [回線認証]: DOMAIN.md §9."""

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
    ITEM,
    PROVIDER,
    add_provider,
    buy,
    event_count,
    open_line,
    refused,
    setup_world,
)


def _notify(engine: Engine, notify: bool, *, at: str = "2024-02-01T00:00:00+09:00") -> None:
    engine.set_notification(
        at=at, customer_id=CID, provider=PROVIDER, notify=notify, consent=True, channel="web"
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
    )
    (stored,) = engine.recorder.select_notifications(
        start=before, limit=10, inclusive_of_start=False
    )
    event = engine.mapper.to_domain_event(stored)
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
        )
    with refused(engine, UnknownLine):
        engine.set_notification(
            at="2024-02-01T00:00:00+09:00",
            customer_id=CID2,
            provider=PROVIDER,
            notify=True,
            consent=True,
            channel="web",
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
        )


# ---------------------------------------------------------------------------------------------
# Line authentication (§9)


def test_line_auth_on_allows_a_purchase_presenting_the_owning_line_notified_to_the_provider(
    engine: Engine,
) -> None:
    """§9: with line authentication on, the purchase must present the owning line's customer ID
    (as notified to the provider)."""
    setup_world(engine, line_auth=True)
    _notify(engine, True)
    buy(engine, "2024-02-02T10:00:00+09:00", ITEM, presented_line=CID)


def test_line_auth_on_refuses_a_purchase_from_another_line(engine: Engine) -> None:
    """§9: an ID with line authentication can only purchase from the line that owns it."""
    setup_world(engine, line_auth=True)
    open_line(engine, CID2)
    _notify(engine, True)
    with refused(engine, LineAuthFailed):
        buy(engine, "2024-02-02T10:00:00+09:00", ITEM, presented_line=CID2)


def test_line_auth_on_refuses_a_purchase_presenting_no_line(engine: Engine) -> None:
    setup_world(engine, line_auth=True)
    _notify(engine, True)
    with refused(engine, LineAuthFailed):
        buy(engine, "2024-02-02T10:00:00+09:00", ITEM)


def test_line_auth_on_refuses_when_the_line_does_not_notify_that_provider(
    engine: Engine,
) -> None:
    """§9: the customer ID must be *as notified to the provider*: without notification (never
    set, or set to "do not notify") the provider cannot have seen it."""
    setup_world(engine, line_auth=True)
    with refused(engine, LineAuthFailed):
        buy(engine, "2024-02-02T10:00:00+09:00", ITEM, presented_line=CID)
    _notify(engine, False, at="2024-02-03T00:00:00+09:00")
    with refused(engine, LineAuthFailed):
        buy(engine, "2024-02-04T10:00:00+09:00", ITEM, presented_line=CID)


def test_line_auth_notification_is_per_provider(engine: Engine) -> None:
    """§9: the setting is per provider: notifying A does not notify B."""
    setup_world(engine, line_auth=True)
    add_provider(engine, "B", at="2024-01-01T00:00:00+09:00")
    _notify(engine, True)
    buy(engine, "2024-02-02T10:00:00+09:00", ITEM, presented_line=CID)
    with refused(engine, LineAuthFailed):
        buy(engine, "2024-02-02T10:00:01+09:00", ITEM, provider="B", presented_line=CID)


def test_line_auth_off_makes_no_line_check(engine: Engine) -> None:
    """§9: with line authentication off, no line check is made."""
    setup_world(engine, line_auth=False)
    open_line(engine, CID2)
    buy(engine, "2024-02-02T10:00:00+09:00", ITEM)
    buy(engine, "2024-02-02T10:00:01+09:00", ITEM, presented_line=CID2)
    buy(engine, "2024-02-02T10:00:02+09:00", ITEM, presented_line=CID)
