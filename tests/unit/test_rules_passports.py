"""Passport IDs: docs/rules.md §1 (at most five per line, case-sensitive) and §2 (registration,
the 2024-12-01 cut-off, details, deletion)."""

from __future__ import annotations

import pytest

from matome.aggregates.passport import passport_id_stream
from matome.engine import Engine
from matome.errors import (
    DuplicateError,
    InvalidInput,
    LimitSumExceeded,
    RegistrationClosed,
    RegistrationLimitExceeded,
    TooManyPassports,
    UnknownLine,
    UnknownPassport,
    UnknownProvider,
    WrongAccessKey,
    WrongPassword,
)
from matome.events.passport import DetailsChanged, Registered
from matome.events.subscription import CancelReason
from matome.values import Email, Erased, PassportId, Yen
from matome.wire import to_json
from tests.unit.helpers import (
    CID,
    CID2,
    EAST_CID,
    ITEM,
    KEY,
    MONTHLY,
    MONTHLY2,
    PID,
    PROVIDER,
    PW,
    WRONG_KEY,
    add_provider,
    buy,
    event_count,
    open_line,
    refused,
    register,
    setup_world,
    topics_since,
)

CUTOFF = "2024-12-01T00:00:00+09:00"
JUST_BEFORE_CUTOFF = "2024-11-30T23:59:59+09:00"


def test_registering_a_passport_id_puts_it_in_use_on_its_line(engine: Engine) -> None:
    """§2: registered with password, e-mail, applicant, limit and line authentication."""
    add_provider(engine)
    open_line(engine)
    result = engine.register_passport(
        at="2024-01-05T10:00:00+09:00",
        customer_id=CID,
        passport_id=PID,
        password=PW,
        email="taro@example.jp",
        applicant={"name": "Yamada Taro", "phone": "06-1234-5678", "contract_holder": False},
        limit=3000,
        line_auth=True,
        access_key=KEY,
    )
    assert result.passport_id == PassportId(PID)
    assert result.status == "in_use"  # §2: 利用中
    passport = engine.passport(PID)
    assert passport is not None
    assert passport.limit == Yen(3000)
    assert passport.line_auth is True
    assert passport.email == Email("taro@example.jp")
    assert not passport.deleted
    line = engine.line(CID)
    assert line is not None
    assert dict(line.passports) == {PassportId(PID): Yen(3000)}


def test_the_password_is_stored_only_as_a_hash(engine: Engine) -> None:
    """§10: credentials are never stored or logged in clear text."""
    add_provider(engine)
    open_line(engine)
    register(engine, password="Secret99")
    passport = engine.passport(PID)
    assert passport is not None
    assert "Secret99" not in passport.password_hash
    for n in engine.internals.recorder.select_notifications(start=1, limit=10**9):
        assert b"Secret99" not in n.state
        assert b"Key12345" not in n.state  # the line's access key


def test_passport_ids_on_an_unknown_line_are_refused(engine: Engine) -> None:
    add_provider(engine)
    with refused(engine, UnknownLine):
        register(engine)


def test_a_passport_id_is_unique_system_wide(engine: Engine) -> None:
    """§1: the ID string is unique system-wide, even across lines."""
    setup_world(engine)
    open_line(engine, CID2)
    with refused(engine, DuplicateError):
        register(engine, customer_id=CID2, at="2024-01-06T00:00:00+09:00")


def test_passport_ids_differing_only_in_case_are_different_ids(engine: Engine) -> None:
    """§1: Passport IDs are case-sensitive."""
    setup_world(engine)
    register(engine, "TARO.1", at="2024-01-06T00:00:00+09:00", password="Other123", limit=1000)
    assert buy(engine, "2024-01-07T00:00:00+09:00", passport_id="TARO.1", password="Other123")
    with pytest.raises(WrongPassword):
        buy(engine, "2024-01-07T00:00:01+09:00", ITEM, passport_id="TARO.1", password=PW)


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("passport_id", "abc"),
        ("passport_id", "taro+1"),
        ("password", "abc"),
        ("password", "pass_word"),
        ("email", "taro"),
        ("limit", 1000.0),
        ("line_auth", "yes"),
        ("applicant", {"name": "Taro", "phone": "06-1234-5678"}),
    ],
)
def test_registration_refuses_malformed_details(engine: Engine, field: str, value: object) -> None:
    """§1 formats and §2 registration details: anything else is invalid_input."""
    setup_world(engine)
    fields: dict[str, object] = {
        "at": "2024-02-01T00:00:00+09:00",
        "customer_id": CID,
        "passport_id": "hanako.2",
        "password": "Hana1234",
        "email": "hanako@example.jp",
        "applicant": {"name": "Hanako", "phone": "06-1234-5678", "contract_holder": True},
        "limit": 1000,
        "line_auth": False,
    }
    fields[field] = value
    with refused(engine, InvalidInput):
        engine.register_passport(**fields, access_key=KEY)  # type: ignore[arg-type]  # built from a dict


# ---------------------------------------------------------------------------------------------
# At most five IDs on a line (§1)


def test_a_line_holds_at_most_five_passport_ids(engine: Engine) -> None:
    """§1: a line holds at most 5 Passport IDs; the sixth is ``too_many_passports``."""
    setup_world(engine, limit=1000)
    for n in range(2, 6):
        register(engine, f"user.{n}", at=f"2024-01-0{n + 4}T00:00:00+09:00", limit=1000)
    line = engine.line(CID)
    assert line is not None
    assert len(line.passports) == 5
    with refused(engine, TooManyPassports):
        register(engine, "user.6", at="2024-01-20T00:00:00+09:00", limit=1000)


def test_deleting_a_passport_id_frees_its_place_on_the_line(engine: Engine) -> None:
    """§1/§2: deleted IDs are gone from the list, so they do not count toward the five."""
    setup_world(engine, limit=1000)
    for n in range(2, 6):
        register(engine, f"user.{n}", at=f"2024-01-0{n + 4}T00:00:00+09:00", limit=1000)
    engine.delete_passport(at="2024-01-20T00:00:00+09:00", passport_id="user.5", access_key=KEY)
    register(engine, "user.6", at="2024-01-21T00:00:00+09:00", limit=1000)


def test_a_deleted_passport_id_is_unknown_to_later_commands(engine: Engine) -> None:
    """§2: deleted IDs are gone."""
    setup_world(engine)
    engine.delete_passport(at="2024-02-01T00:00:00+09:00", passport_id=PID, access_key=KEY)
    with refused(engine, UnknownPassport):
        buy(engine, "2024-02-02T00:00:00+09:00", ITEM)
    with refused(engine, UnknownPassport):
        engine.delete_passport(at="2024-02-03T00:00:00+09:00", passport_id=PID, access_key=KEY)
    with refused(engine, UnknownPassport):
        engine.change_passport_limit(
            access_key=KEY, at="2024-02-03T00:00:00+09:00", passport_id=PID, limit=10
        )
    passport = engine.passport(PID)
    assert passport is not None
    assert passport.deleted
    line = engine.line(CID)
    assert line is not None
    assert PassportId(PID) not in line.passports


# ---------------------------------------------------------------------------------------------
# Registration limit (§2)


def test_the_limit_at_registration_may_be_5000_yen(engine: Engine) -> None:
    """§2: the limit set at registration is at most 5,000 yen (5,000 itself is allowed)."""
    setup_world(engine)
    register(engine, "hanako.2", at="2024-01-06T00:00:00+09:00", limit=5000)


def test_a_limit_above_5000_yen_at_registration_is_refused(engine: Engine) -> None:
    """§2: ``registration_limit_exceeded`` for 5,001 yen, even when the line cap has room."""
    add_provider(engine)
    open_line(engine, line_limit=50_000)
    with refused(engine, RegistrationLimitExceeded):
        register(engine, limit=5001)


def test_the_5000_yen_maximum_applies_only_at_registration(engine: Engine) -> None:
    """§2/§3: "the limit *set at registration*" is capped; a later change may go higher,
    bounded only by the line cap."""
    setup_world(engine, line_limit=10_000, limit=5000)
    engine.change_passport_limit(
        access_key=KEY, at="2024-02-01T00:00:00+09:00", passport_id=PID, limit=8000
    )
    passport = engine.passport(PID)
    assert passport is not None
    assert passport.limit == Yen(8000)


def test_registration_that_would_pass_the_line_cap_is_refused(engine: Engine) -> None:
    """§3: the sum of the per-ID limits never exceeds the line's cap."""
    setup_world(engine, line_limit=5000, limit=3000)
    register(engine, "hanako.2", at="2024-01-06T00:00:00+09:00", limit=2000)  # sum = cap
    with refused(engine, LimitSumExceeded):
        register(engine, "jiro.3", at="2024-01-07T00:00:00+09:00", limit=1)


# ---------------------------------------------------------------------------------------------
# The 2024-12-01 cut-off (§2)


def test_registration_just_before_the_cutoff_is_accepted(engine: Engine) -> None:
    """§2: commands dated before 2024-12-01 (JST) follow the old rules."""
    add_provider(engine)
    open_line(engine)
    register(engine, at=JUST_BEFORE_CUTOFF)


def test_registration_from_the_cutoff_is_registration_closed(engine: Engine) -> None:
    """§2: from 2024-12-01 a customer can no longer register a new Passport ID themselves."""
    add_provider(engine)
    open_line(engine)
    with refused(engine, RegistrationClosed):
        register(engine, at=CUTOFF)


@pytest.mark.parametrize(
    ("at", "closed"),
    [
        ("2024-11-30T14:59:59+00:00", False),  # 23:59:59 JST on 30 Nov
        ("2024-11-30T15:00:00+00:00", True),  # 00:00 JST on 1 Dec
        ("2024-11-30T10:00:00-05:00", True),  # 00:00 JST on 1 Dec
    ],
)
def test_the_cutoff_is_tokyo_midnight_whatever_offset_the_time_is_given_in(
    engine: Engine, at: str, closed: bool
) -> None:
    """§2: the cut-off is an effective-dated policy at 2024-12-01 00:00 JST."""
    add_provider(engine)
    open_line(engine)
    if closed:
        with refused(engine, RegistrationClosed):
            register(engine, at=at)
    else:
        register(engine, at=at)


def test_east_providers_may_register_an_id_on_the_customers_behalf_after_the_cutoff(
    engine: Engine,
) -> None:
    """§2: NTT East lets a provider register one on the customer's behalf."""
    add_provider(engine)
    open_line(engine, EAST_CID, operator="east", kind="b_flets")
    register(
        engine,
        customer_id=EAST_CID,
        at="2025-01-10T10:00:00+09:00",
        via_provider=PROVIDER,
        access_key=None,  # a provider registers without the line holder's key
    )
    assert buy(engine, "2025-01-11T10:00:00+09:00", ITEM).charged == Yen(300)


def test_west_stays_closed_after_the_cutoff_even_via_a_provider(engine: Engine) -> None:
    """§2: only NTT East has the on-behalf registration: a provider without the line's access
    key is not the line holder (``wrong_access_key`` ranks before ``registration_closed``)."""
    add_provider(engine)
    open_line(engine)
    with refused(engine, WrongAccessKey):
        register(engine, at="2025-01-10T10:00:00+09:00", via_provider=PROVIDER, access_key=None)


def test_east_self_registration_after_the_cutoff_is_closed(engine: Engine) -> None:
    """§2: without a provider, East customers cannot register either."""
    add_provider(engine)
    open_line(engine, EAST_CID, operator="east", kind="b_flets")
    with refused(engine, RegistrationClosed):
        register(engine, customer_id=EAST_CID, at="2025-01-10T10:00:00+09:00")


def test_registration_via_an_unknown_provider_is_unknown_provider(engine: Engine) -> None:
    add_provider(engine)
    open_line(engine, EAST_CID, operator="east", kind="b_flets")
    with refused(engine, UnknownProvider):
        register(
            engine,
            customer_id=EAST_CID,
            at="2025-01-10T10:00:00+09:00",
            via_provider="Z",
            access_key=None,
        )


def test_existing_ids_keep_working_after_the_cutoff(engine: Engine) -> None:
    """§2: existing IDs keep working: purchases, cancellations, limit changes, deletion."""
    setup_world(engine)
    receipt = buy(engine, "2024-12-05T10:00:00+09:00").receipt
    engine.cancel(at="2024-12-06T10:00:00+09:00", receipt=receipt, password=PW)
    engine.change_passport_limit(
        access_key=KEY, at="2024-12-07T10:00:00+09:00", passport_id=PID, limit=2000
    )
    buy(engine, "2025-01-05T10:00:00+09:00", ITEM)
    engine.delete_passport(at="2025-01-06T10:00:00+09:00", passport_id=PID, access_key=KEY)


def test_registration_details_become_view_only_at_the_cutoff(engine: Engine) -> None:
    """§2: from 2024-12-01 the registration details are view-only: password/e-mail changes
    are ``registration_closed``."""
    setup_world(engine)
    with refused(engine, RegistrationClosed):
        engine.change_passport_details(
            access_key=KEY, at=CUTOFF, passport_id=PID, email="new@example.jp"
        )
    with refused(engine, RegistrationClosed):
        engine.change_passport_details(
            access_key=KEY, at="2025-03-01T00:00:00+09:00", passport_id=PID, password="New12345"
        )


def test_registration_details_can_change_before_the_cutoff(engine: Engine) -> None:
    """§2: before the cut-off the old rules apply: details can be changed."""
    setup_world(engine)
    engine.change_passport_details(
        at=JUST_BEFORE_CUTOFF,
        passport_id=PID,
        password="New12345",
        email="new@example.jp",
        access_key=KEY,
    )
    passport = engine.passport(PID)
    assert passport is not None
    assert passport.email == Email("new@example.jp")


def test_change_passport_details_needs_something_to_change(engine: Engine) -> None:
    setup_world(engine)
    with refused(engine, InvalidInput):
        engine.change_passport_details(
            access_key=KEY, at="2024-02-01T00:00:00+09:00", passport_id=PID
        )


# ---------------------------------------------------------------------------------------------
# Details changes and deletion (§2)


def test_changing_the_password_or_email_does_not_affect_purchases(engine: Engine) -> None:
    """§2: changing an ID's password or e-mail does not affect its purchases."""
    setup_world(engine)
    receipt = buy(engine, "2024-02-01T10:00:00+09:00").receipt
    engine.change_passport_details(
        at="2024-02-02T10:00:00+09:00",
        passport_id=PID,
        password="New12345",
        email="new@example.jp",
        access_key=KEY,
    )
    sub = engine.subscription(receipt)
    assert sub is not None
    assert sub.active
    passport = engine.passport(PID)
    assert passport is not None
    assert passport.active_holding(sub.provider, sub.service, sub.purchased_at) is not None
    # The new password works, the old one no longer does.
    buy(engine, "2024-02-03T10:00:00+09:00", ITEM, password="New12345")
    with pytest.raises(WrongPassword):
        buy(engine, "2024-02-03T10:00:01+09:00", ITEM, password=PW)


def test_deleting_a_passport_id_cancels_its_monthly_subscriptions(engine: Engine) -> None:
    """§2: deleting a Passport ID cancels its monthly-flat subscriptions at that instant."""
    setup_world(engine)
    back = buy(engine, "2024-02-01T10:00:00+09:00", MONTHLY).receipt
    anime = buy(engine, "2024-02-01T10:01:00+09:00", MONTHLY2).receipt
    item = buy(engine, "2024-02-01T10:02:00+09:00", ITEM).receipt
    deleted_at = "2024-03-01T12:00:00+09:00"
    result = engine.delete_passport(at=deleted_at, passport_id=PID, access_key=KEY)
    assert set(result.cancelled) == {back, anime}
    for receipt in (back, anime):
        sub = engine.subscription(receipt)
        assert sub is not None
        assert not sub.active
        assert sub.cancel_reason is CancelReason.PASSPORT_DELETED
        assert sub.cancelled_at is not None
        assert sub.cancelled_at.isoformat() == deleted_at
    one_off = engine.subscription(item)
    assert one_off is not None
    assert one_off.cancelled_at is None  # a per-purchase item has nothing to cancel


def test_deleting_a_passport_id_does_not_touch_other_ids_on_the_line(engine: Engine) -> None:
    setup_world(engine)
    register(engine, "hanako.2", at="2024-01-06T00:00:00+09:00", password="Hana1234", limit=1000)
    hers = buy(
        engine, "2024-02-01T10:00:00+09:00", passport_id="hanako.2", password="Hana1234"
    ).receipt
    mine = buy(engine, "2024-02-01T10:01:00+09:00").receipt
    engine.delete_passport(at="2024-02-10T00:00:00+09:00", passport_id=PID, access_key=KEY)
    hers_sub, mine_sub = engine.subscription(hers), engine.subscription(mine)
    assert hers_sub is not None
    assert hers_sub.active
    assert mine_sub is not None
    assert not mine_sub.active


def test_deleting_a_passport_id_gives_its_limit_back_to_the_line(engine: Engine) -> None:
    """§3: deleted IDs no longer count in the sum of limits."""
    setup_world(engine, line_limit=5000, limit=5000)
    with refused(engine, LimitSumExceeded):
        register(engine, "hanako.2", at="2024-01-06T00:00:00+09:00", limit=1)
    engine.delete_passport(at="2024-01-07T00:00:00+09:00", passport_id=PID, access_key=KEY)
    register(engine, "hanako.2", at="2024-01-08T00:00:00+09:00", limit=5000)


def test_deletion_writes_the_cancellations_and_the_deletion_together(engine: Engine) -> None:
    """§2: the cancellations happen at the deletion instant, in the same unit of work."""
    setup_world(engine)
    buy(engine, "2024-02-01T10:00:00+09:00")
    before = event_count(engine)
    engine.delete_passport(at="2024-02-10T00:00:00+09:00", passport_id=PID, access_key=KEY)
    assert sorted(topics_since(engine, before)) == sorted(
        [
            "matome.subscription.Cancelled",
            "matome.passport.HoldingEnded",
            "matome.passport.PassportDeleted",
            "matome.line.PassportDetached",
        ]
    )


def test_usage_status_lists_current_ids_and_shows_not_used_without_ids(engine: Engine) -> None:
    """docs/rules.md §2 and docs/contract.md "Other documents" (the usage status, contract 2):
    statuses in use / regulated, each ID with its limit and line-authentication setting; deleted IDs
    are gone; no IDs → not used."""
    engine.open_line(
        at="2024-01-02T10:00:00+09:00",
        customer_id="CAF0000000009",
        operator="west",
        kind="hikari_next",
        access_key="abcd1234",
        line_limit=5000,
        billing={"method": "customer_number", "number": "0012345678"},
    )
    assert to_json(engine.usage_status("CAF0000000009")) == {
        "customer_id": "CAF0000000009",
        "status": "not_used",
        "passports": [],
    }
    for pid, line_auth in (("keep.me", True), ("drop.me", False)):
        engine.register_passport(
            access_key="abcd1234",
            at="2024-01-03T10:00:00+09:00",
            customer_id="CAF0000000009",
            passport_id=pid,
            password="pass1",
            email="a@example.jp",
            limit=1000,
            line_auth=line_auth,
            applicant={"name": "A", "phone": "06-1234-5678", "contract_holder": True},
        )
    engine.delete_passport(
        access_key="abcd1234", at="2024-01-04T10:00:00+09:00", passport_id="drop.me"
    )
    status = to_json(engine.usage_status("CAF0000000009"))
    assert status["status"] == "in_use"
    assert status["passports"] == [
        {"passport_id": "keep.me", "status": "in_use", "limit": 1000, "line_auth": True}
    ]
    engine.regulate_line(at="2024-01-05T10:00:00+09:00", customer_id="CAF0000000009")
    status = to_json(engine.usage_status("CAF0000000009"))
    assert status["status"] == "regulated"
    assert [p["status"] for p in status["passports"]] == ["regulated"]


def test_usage_status_shows_a_locked_id_as_locked(engine: Engine) -> None:
    """§10 and the status document (contract 2): after ten wrong passwords the ID's status is
    ``locked``; the other IDs of the line stay ``in_use``; a password reset shows it in use
    again."""
    setup_world(engine)
    register(engine, "hanako.2", at="2024-01-06T00:00:00+09:00", password="Hana1234", limit=1000)
    for n in range(10):
        with pytest.raises(WrongPassword):
            buy(engine, f"2024-02-01T10:{n:02d}:00+09:00", ITEM, password="Wrong123")
    status = to_json(engine.usage_status(CID))
    assert status["status"] == "in_use"
    assert [(p["passport_id"], p["status"]) for p in status["passports"]] == [
        ("hanako.2", "in_use"),
        (PID, "locked"),
    ]
    engine.reset_password(
        at="2024-02-02T00:00:00+09:00", passport_id=PID, password="New12345", channel="phone"
    )
    assert [p["status"] for p in to_json(engine.usage_status(CID))["passports"]] == [
        "in_use",
        "in_use",
    ]


def test_usage_status_of_an_unknown_line_is_unknown_line(engine: Engine) -> None:
    with pytest.raises(UnknownLine):
        engine.usage_status(CID)


def test_registration_via_a_provider_needs_no_access_key_but_a_given_one_is_checked(
    engine: Engine,
) -> None:
    """docs/design.md (Who may do what): ``register_passport`` with ``via_provider`` needs no
    access key — if one is given anyway it is checked; without either it is ``invalid_input``."""
    add_provider(engine)
    open_line(engine, EAST_CID, operator="east", kind="b_flets")
    with refused(engine, WrongAccessKey):
        register(
            engine,
            customer_id=EAST_CID,
            at="2025-01-10T10:00:00+09:00",
            via_provider=PROVIDER,
            access_key=WRONG_KEY,
        )
    with refused(engine, InvalidInput):
        register(engine, customer_id=EAST_CID, at="2025-01-10T10:00:00+09:00", access_key=None)
    register(
        engine,
        customer_id=EAST_CID,
        at="2025-01-10T10:00:00+09:00",
        via_provider=PROVIDER,
        access_key=KEY,
    )


# ---------------------------------------------------------------------------------------------
# Erasing personal data (contract 2: ``erase_personal_data``)


def test_erasing_personal_data_erases_every_version_and_keeps_the_bills(engine: Engine) -> None:
    """docs/contract.md "Commands" ``erase_personal_data``: erases the applicant's name, phone and
    e-mail — every version — of that ID; bills stay intact and the ID keeps working."""
    setup_world(engine)
    buy(engine, "2024-02-01T10:00:00+09:00", MONTHLY)
    engine.change_passport_details(
        at="2024-02-02T00:00:00+09:00", passport_id=PID, access_key=KEY, email="new@example.jp"
    )
    bill = to_json(engine.bill(CID, "2024-02"))
    engine.erase_personal_data(at="2024-02-05T00:00:00+09:00", passport_id=PID, reason="request")
    engine.internals.forget_cached_states()
    stored = list(engine.internals.events.get(passport_id_stream(PassportId(PID))))
    registered, changed = stored[0], next(e for e in stored if isinstance(e, DetailsChanged))
    assert isinstance(registered, Registered)
    assert isinstance(registered.email, Erased)
    assert isinstance(registered.applicant, Erased)
    assert isinstance(changed.email, Erased)
    passport = engine.passport(PID)
    assert passport is not None
    assert isinstance(passport.email, Erased)
    assert to_json(engine.bill(CID, "2024-02")) == bill
    buy(engine, "2024-02-06T10:00:00+09:00", ITEM)


def test_erasing_again_is_accepted_and_an_unknown_id_is_unknown_passport(engine: Engine) -> None:
    setup_world(engine)
    engine.erase_personal_data(at="2024-02-05T00:00:00+09:00", passport_id=PID, reason="request")
    engine.erase_personal_data(at="2024-02-06T00:00:00+09:00", passport_id=PID, reason="again")
    with refused(engine, UnknownPassport):
        engine.erase_personal_data(
            at="2024-02-06T00:00:00+09:00", passport_id="nobody", reason="request"
        )
