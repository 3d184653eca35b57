"""Usage limits [ご利用限度額]: docs/rules.md §3.

The month's spend of a Passport ID is everything chargeable to it in that Tokyo calendar month:
monthly-flat subscriptions charged that month (including ones carried over from earlier months)
plus one-off purchases made that month.  Refunds do not give limit back.
"""

from __future__ import annotations

from matome.engine import Engine
from matome.errors import LimitExceeded, LimitSumExceeded
from matome.values import PassportId, YearMonth, Yen
from tests.unit.helpers import (
    CID,
    ITEM,
    KEY,
    MONTHLY,
    MONTHLY2,
    PID,
    PW,
    buy,
    refused,
    register,
    setup_world,
)

# ---------------------------------------------------------------------------------------------
# The invariant: sum of per-ID limits ≤ line cap (§3)


def test_raising_an_id_limit_up_to_the_line_cap_is_allowed(engine: Engine) -> None:
    """§3: the invariant holds with equality."""
    setup_world(engine, line_limit=10_000, limit=3000)
    register(engine, "hanako.2", at="2024-01-06T00:00:00+09:00", limit=2000)
    engine.change_passport_limit(
        access_key=KEY, at="2024-02-01T00:00:00+09:00", passport_id=PID, limit=8000
    )
    line = engine.line(CID)
    assert line is not None
    assert line.limit_sum == Yen(10_000)
    assert line.passports[PassportId(PID)] == Yen(8000)


def test_raising_an_id_limit_above_what_the_line_cap_leaves_is_refused(engine: Engine) -> None:
    """§3: a change that would break the invariant is refused (not clamped)."""
    setup_world(engine, line_limit=10_000, limit=3000)
    register(engine, "hanako.2", at="2024-01-06T00:00:00+09:00", limit=2000)
    with refused(engine, LimitSumExceeded):
        engine.change_passport_limit(
            access_key=KEY, at="2024-02-01T00:00:00+09:00", passport_id=PID, limit=8001
        )
    passport = engine.passport(PID)
    assert passport is not None
    assert passport.limit == Yen(3000)  # not clamped to 8,000


def test_lowering_the_line_cap_below_the_id_limits_is_refused_not_clamped(engine: Engine) -> None:
    """§3: lowering the line cap below the sum of ID limits is ``limit_sum_exceeded``."""
    setup_world(engine, line_limit=10_000, limit=3000)
    register(engine, "hanako.2", at="2024-01-06T00:00:00+09:00", limit=2000)
    with refused(engine, LimitSumExceeded):
        engine.change_line_limit(at="2024-02-01T00:00:00+09:00", customer_id=CID, line_limit=4999)
    engine.change_line_limit(at="2024-02-01T00:00:00+09:00", customer_id=CID, line_limit=5000)


def test_registration_is_refused_when_the_ids_limits_would_pass_the_cap(engine: Engine) -> None:
    """§3: registration must also keep the invariant."""
    setup_world(engine, line_limit=4000, limit=3000)
    with refused(engine, LimitSumExceeded):
        register(engine, "hanako.2", at="2024-01-06T00:00:00+09:00", limit=1001)


# ---------------------------------------------------------------------------------------------
# "Because of the invariant, the line's cap then holds too" (§3): what an ID spent this month
# holds its part of the cap even when its limit is lowered or it is deleted (Decision,
# docs/design.md "Usage limits")


def _spend_the_cap(engine: Engine) -> None:
    """A line with a 3,000 yen cap whose ID ``taro.1`` (limit 3,000) spends all of it in
    2024-02 on one-off items."""
    setup_world(engine, line_limit=3000, limit=3000)
    for minute in range(10):
        buy(engine, f"2024-02-01T10:{minute:02d}:00+09:00", ITEM)  # 10 x 300


def _bill_total(engine: Engine, month: str) -> int:
    return engine.bill(customer_id=CID, month=month).subtotal.amount


def test_a_limit_lowered_below_the_spend_frees_nothing_for_another_id_that_month(
    engine: Engine,
) -> None:
    """§3: moving a spent limit to a new ID would put 6,000 yen on a 3,000 yen line's bill."""
    _spend_the_cap(engine)
    engine.change_passport_limit(
        access_key=KEY, at="2024-02-02T10:00:00+09:00", passport_id=PID, limit=0
    )
    with refused(engine, LimitSumExceeded) as info:
        register(engine, "hanako.2", at="2024-02-02T11:00:00+09:00", limit=3000)
    assert "spent this month" in info.value.message
    # A limit of 0 adds nothing: allowed.
    register(engine, "hanako.2", at="2024-02-02T11:00:00+09:00", limit=0)
    with refused(engine, LimitSumExceeded):
        engine.change_passport_limit(
            access_key=KEY, at="2024-02-02T12:00:00+09:00", passport_id="hanako.2", limit=1
        )
    assert _bill_total(engine, "2024-02") == 3000
    # The next month the one-off spend is gone: the limit is free again.
    engine.change_passport_limit(
        access_key=KEY, at="2024-03-01T00:00:00+09:00", passport_id="hanako.2", limit=3000
    )
    buy(engine, "2024-03-01T10:00:00+09:00", ITEM, passport_id="hanako.2")


def test_a_deleted_ids_spend_holds_the_cap_until_its_month_ends(engine: Engine) -> None:
    """§2 + §3: what a deleted ID spent stays on the month's bill, so it stays on the cap."""
    _spend_the_cap(engine)
    engine.delete_passport(access_key=KEY, at="2024-02-02T10:00:00+09:00", passport_id=PID)
    with refused(engine, LimitSumExceeded):
        register(engine, "hanako.2", at="2024-02-02T11:00:00+09:00", limit=1)
    register(engine, "hanako.2", at="2024-03-01T00:00:00+09:00", limit=3000)


def test_a_monthly_service_kept_past_a_lowered_limit_holds_the_cap_every_month(
    engine: Engine,
) -> None:
    """§3 + §4: a monthly subscription is charged every month it runs, whatever the limit."""
    setup_world(engine, line_limit=3000, limit=3000)
    buy(engine, "2024-02-01T10:00:00+09:00", MONTHLY)  # 525 a month
    engine.change_passport_limit(
        access_key=KEY, at="2024-02-02T10:00:00+09:00", passport_id=PID, limit=0
    )
    with refused(engine, LimitSumExceeded):
        register(engine, "hanako.2", at="2024-04-02T11:00:00+09:00", limit=3000 - 524)
    register(engine, "hanako.2", at="2024-04-02T11:00:00+09:00", limit=3000 - 525)


def test_raising_a_limit_back_is_checked_against_what_the_others_spent(engine: Engine) -> None:
    """§3: ID A (limit lowered to 1,000 after spending 2,000) and ID B (1,000) together hold
    3,000 of the cap; A may not go back up to 3,000 that month."""
    setup_world(engine, line_limit=3000, limit=2000)
    register(engine, "hanako.2", at="2024-01-06T00:00:00+09:00", limit=1000)
    for minute in range(6):
        buy(engine, f"2024-02-01T10:{minute:02d}:00+09:00", ITEM)  # 1,800
    engine.change_passport_limit(
        access_key=KEY, at="2024-02-02T10:00:00+09:00", passport_id=PID, limit=0
    )
    with refused(engine, LimitSumExceeded):
        engine.change_passport_limit(
            access_key=KEY, at="2024-02-02T11:00:00+09:00", passport_id=PID, limit=2001
        )
    engine.change_passport_limit(
        access_key=KEY, at="2024-02-02T11:00:00+09:00", passport_id=PID, limit=2000
    )


def test_a_change_that_adds_nothing_is_allowed_under_a_cap_lowered_below_the_spend(
    engine: Engine,
) -> None:
    """§3: a cap lowered below the month's spend only stops further purchases; limit changes
    that do not raise what the IDs hold stay possible."""
    _spend_the_cap(engine)
    engine.change_passport_limit(
        access_key=KEY, at="2024-02-02T10:00:00+09:00", passport_id=PID, limit=0
    )
    engine.change_line_limit(at="2024-02-02T10:01:00+09:00", customer_id=CID, line_limit=0)
    register(engine, "hanako.2", at="2024-02-02T11:00:00+09:00", limit=0)
    engine.change_passport_limit(
        access_key=KEY, at="2024-02-02T12:00:00+09:00", passport_id=PID, limit=2000
    )


# ---------------------------------------------------------------------------------------------
# Monthly spend ≤ ID limit (§3)


def test_a_purchase_that_reaches_the_limit_exactly_is_allowed(engine: Engine) -> None:
    """§3: refused only when the spend would go *above* the limit."""
    setup_world(engine, limit=825)
    buy(engine, "2024-02-01T10:00:00+09:00", MONTHLY)  # 525
    buy(engine, "2024-02-02T10:00:00+09:00", ITEM)  # 300 → 825


def test_a_purchase_that_would_pass_the_id_limit_is_refused(engine: Engine) -> None:
    """§3: a purchase taking the month's spend above the ID's limit is ``limit_exceeded``."""
    setup_world(engine, limit=824)
    buy(engine, "2024-02-01T10:00:00+09:00", MONTHLY)
    with refused(engine, LimitExceeded):
        buy(engine, "2024-02-02T10:00:00+09:00", ITEM)


def test_spend_counts_monthly_subscriptions_carried_over_from_earlier_months(
    engine: Engine,
) -> None:
    """§3 Decision: monthly-flat subscriptions charged that month count, not only new ones.

    Bought in January, still active in March: 525 of March's 1,000 is gone before any purchase.
    """
    setup_world(engine, limit=1000)
    buy(engine, "2024-01-20T10:00:00+09:00", MONTHLY)
    buy(engine, "2024-03-02T10:00:00+09:00", ITEM)  # 525 + 300 = 825
    with refused(engine, LimitExceeded):
        buy(engine, "2024-03-03T10:00:00+09:00", ITEM)  # 1,125


def test_spend_counts_one_offs_of_the_current_month_only(engine: Engine) -> None:
    """§3 Decision: one-off purchases count in the month they were made."""
    setup_world(engine, limit=600)
    buy(engine, "2024-02-10T10:00:00+09:00", ITEM)
    buy(engine, "2024-02-11T10:00:00+09:00", ITEM)  # 600
    with refused(engine, LimitExceeded):
        buy(engine, "2024-02-29T23:59:59+09:00", ITEM)
    buy(engine, "2024-03-01T00:00:00+09:00", ITEM)  # a new month, a new budget


def test_the_spend_month_is_tokyos_even_when_the_time_is_given_in_utc(engine: Engine) -> None:
    """§3/§4: calendar month in JST: 2024-02-29T15:00Z is already March in Tokyo."""
    setup_world(engine, limit=600)
    buy(engine, "2024-02-10T10:00:00+09:00", ITEM)
    buy(engine, "2024-02-11T10:00:00+09:00", ITEM)
    with refused(engine, LimitExceeded):
        buy(engine, "2024-02-29T14:59:59+00:00", ITEM)  # 23:59:59 JST, still February
    buy(engine, "2024-02-29T15:00:00+00:00", ITEM)  # 00:00 JST on 1 March


def test_a_subscription_cancelled_on_the_first_does_not_count_in_that_month(
    engine: Engine,
) -> None:
    """§3 + §4 pattern 6: a subscription cancelled on the 1st is not charged that month, so it
    is not part of that month's spend."""
    setup_world(engine, limit=600)
    receipt = buy(engine, "2024-01-20T10:00:00+09:00", MONTHLY).receipt
    engine.cancel(at="2024-02-01T09:00:00+09:00", receipt=receipt, password=PW)
    buy(engine, "2024-02-01T10:00:00+09:00", ITEM)
    buy(engine, "2024-02-02T10:00:00+09:00", ITEM)  # 600: nothing of the 525 is charged


def test_a_subscription_cancelled_on_the_second_still_counts_in_that_month(
    engine: Engine,
) -> None:
    """§3 + §4: cancelled on the 2nd, the month is charged in full, so it counts."""
    setup_world(engine, limit=600)
    receipt = buy(engine, "2024-01-20T10:00:00+09:00", MONTHLY).receipt
    engine.cancel(at="2024-02-02T09:00:00+09:00", receipt=receipt, password=PW)
    with refused(engine, LimitExceeded):
        buy(engine, "2024-02-02T10:00:00+09:00", ITEM)  # 525 + 300 > 600


def test_lowering_an_id_limit_below_what_was_spent_is_allowed(engine: Engine) -> None:
    """§3: lowering a limit below what has already been spent is allowed."""
    setup_world(engine, limit=3000)
    buy(engine, "2024-02-01T10:00:00+09:00", MONTHLY)
    buy(engine, "2024-02-01T10:01:00+09:00", ITEM)
    engine.change_passport_limit(
        access_key=KEY, at="2024-02-02T10:00:00+09:00", passport_id=PID, limit=100
    )
    passport = engine.passport(PID)
    assert passport is not None
    assert passport.limit == Yen(100)
    assert passport.spend(YearMonth(2024, 2), once_per_month=True) == Yen(825)


def test_a_limit_lowered_below_the_spend_stops_further_purchases(engine: Engine) -> None:
    """§3: ... it only stops further purchases; existing subscriptions continue."""
    setup_world(engine, limit=3000)
    receipt = buy(engine, "2024-02-01T10:00:00+09:00", MONTHLY).receipt
    engine.change_passport_limit(
        access_key=KEY, at="2024-02-02T10:00:00+09:00", passport_id=PID, limit=100
    )
    with refused(engine, LimitExceeded):
        buy(engine, "2024-02-03T10:00:00+09:00", ITEM)
    sub = engine.subscription(receipt)
    assert sub is not None
    assert sub.active
    # The carried-over subscription keeps eating March's (lowered) limit too.
    with refused(engine, LimitExceeded):
        buy(engine, "2024-03-03T10:00:00+09:00", ITEM)


def test_lowering_the_line_cap_below_the_spend_is_allowed(engine: Engine) -> None:
    """§3: lowering a limit below the spend is allowed (the line's cap as well)."""
    setup_world(engine, limit=1000)
    buy(engine, "2024-02-01T10:00:00+09:00", MONTHLY)
    engine.change_passport_limit(
        access_key=KEY, at="2024-02-02T10:00:00+09:00", passport_id=PID, limit=0
    )
    engine.change_line_limit(at="2024-02-02T10:01:00+09:00", customer_id=CID, line_limit=0)
    with refused(engine, LimitExceeded):
        buy(engine, "2024-02-03T10:00:00+09:00", ITEM)


def test_a_refund_does_not_give_limit_back(engine: Engine) -> None:
    """§3 Decision: a refund does not give limit back; the limit caps what was bought."""
    setup_world(engine, limit=600)
    first = buy(engine, "2024-02-01T10:00:00+09:00", ITEM).receipt
    buy(engine, "2024-02-01T10:01:00+09:00", ITEM)
    engine.refund(at="2024-02-02T10:00:00+09:00", receipt=first, amount=300, reason="faulty")
    with refused(engine, LimitExceeded):
        buy(engine, "2024-02-03T10:00:00+09:00", ITEM)


def test_a_cancelled_monthly_service_still_counts_in_its_cancellation_month(
    engine: Engine,
) -> None:
    """§3 + §4: a monthly service cancelled mid-month is still charged that month (no
    pro-rating), so cancelling does not free limit for another service."""
    setup_world(engine, limit=825)
    receipt = buy(engine, "2024-02-01T10:00:00+09:00", MONTHLY).receipt  # 525
    engine.cancel(at="2024-02-05T10:00:00+09:00", receipt=receipt, password=PW)
    buy(engine, "2024-02-06T10:00:00+09:00", MONTHLY2)  # 300 → 825
    with refused(engine, LimitExceeded):
        buy(engine, "2024-02-07T10:00:00+09:00", ITEM)


def test_rebuying_a_cancelled_monthly_service_in_the_same_month_passes_the_limit_check(
    engine: Engine,
) -> None:
    """§3 + §4 patterns 4–5: a re-bought monthly service is not charged again in the same
    month, so it adds nothing to the spend, even with the limit fully used."""
    setup_world(engine, limit=525)
    receipt = buy(engine, "2024-02-01T10:00:00+09:00", MONTHLY).receipt
    engine.cancel(at="2024-02-10T10:00:00+09:00", receipt=receipt, password=PW)
    again = buy(engine, "2024-02-20T10:00:00+09:00", MONTHLY)
    assert again.charged == Yen(0)
    assert again.price == Yen(525)


def test_each_id_has_its_own_limit_inside_the_line_cap(engine: Engine) -> None:
    """§3: each Passport ID has its own monthly limit; one ID's spend does not use another's."""
    setup_world(engine, limit=300)
    register(engine, "hanako.2", at="2024-01-06T00:00:00+09:00", password="Hana1234", limit=300)
    buy(engine, "2024-02-01T10:00:00+09:00", ITEM)
    with refused(engine, LimitExceeded):
        buy(engine, "2024-02-01T10:01:00+09:00", ITEM)
    buy(engine, "2024-02-01T10:02:00+09:00", ITEM, passport_id="hanako.2", password="Hana1234")
