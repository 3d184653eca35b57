"""The charging rules of docs/rules.md §4 as pure functions of business times (``matome.charging``).

Monthly flat: charged every month from the purchase month to the cancellation month, both
included, with no pro-rating; a cancellation on the 1st (Tokyo) is not charged for that month,
unless the purchase was made on that same 1st.
"""

from __future__ import annotations

from datetime import datetime

import attrs
import pytest

from matome.charging import (
    charged_in,
    charged_purchases,
    charged_so_far,
    first_charged_month,
    last_charged_month,
)
from matome.values import Pricing, YearMonth


def t(text: str) -> datetime:
    return datetime.fromisoformat(text)


N = YearMonth(2025, 1)
N1 = N.next()
N2 = N1.next()
AROUND = [N.previous(), N, N1, N2, N2.next()]


def charged_months(purchased: str, cancelled: str | None) -> list[YearMonth]:
    return [m for m in AROUND if charged_in(t(purchased), t(cancelled) if cancelled else None, m)]


# The six patterns of the §4 table (single subscription; patterns 4 and 5 also re-buy, which the
# once-per-month rule of the engine handles: see test_rules_purchases).


def test_pattern_1_purchase_in_n_cancel_in_n_plus_2_charges_n_n1_n2() -> None:
    """§4 pattern 1: purchase in N, cancel in N+2 → N, N+1, N+2."""
    months = charged_months("2025-01-15T10:00:00+09:00", "2025-03-20T10:00:00+09:00")
    assert months == [N, N1, N2]


def test_pattern_2_purchase_in_n_cancel_in_n_plus_1_charges_n_n1() -> None:
    """§4 pattern 2: purchase in N, cancel in N+1 → N, N+1."""
    assert charged_months("2025-01-15T10:00:00+09:00", "2025-02-10T10:00:00+09:00") == [N, N1]


def test_pattern_3_purchase_and_cancel_in_n_charges_n_only() -> None:
    """§4 pattern 3: purchase and cancel in N → N."""
    assert charged_months("2025-01-15T10:00:00+09:00", "2025-01-15T10:05:00+09:00") == [N]


def test_pattern_4_purchase_in_n1_cancel_in_n2_charges_n1_n2() -> None:
    """§4 pattern 4 (first subscription): purchase in N+1, cancel in N+2 → N+1, N+2."""
    assert charged_months("2025-02-03T10:00:00+09:00", "2025-03-25T10:00:00+09:00") == [N1, N2]
    # ... and the one bought again in N+2 (still active) is charged from N+2.
    assert charged_months("2025-03-26T10:00:00+09:00", None) == [N2, N2.next()]


@attrs.frozen
class _Sub:
    """One monthly subscription of Passport ID ``p`` to service ``back`` (a Chargeable)."""

    purchased_at: datetime
    cancelled_at: datetime | None
    passport_id: str = "p"
    provider: str = "A"
    service: str = "back"
    pricing: str = Pricing.MONTHLY


def _charges_by_month(*subs: _Sub) -> dict[YearMonth, int]:
    """How many times the service is charged in each month around N (once-per-month on)."""
    return {m: len(charged_purchases(subs, m, once_per_month=True)) for m in AROUND}


def test_pattern_4_cancel_and_buy_again_in_n2_is_charged_once_in_n1_and_once_in_n2() -> None:
    """§4 pattern 4, the whole row: bought in N+1; in N+2 cancelled and bought again — N+1 and
    N+2 are charged, N+2 once (the earliest subscription of the month carries it)."""
    first = _Sub(t("2025-02-03T10:00:00+09:00"), t("2025-03-25T10:00:00+09:00"))
    again = _Sub(t("2025-03-26T10:00:00+09:00"), None)
    assert _charges_by_month(first, again) == {N.previous(): 0, N: 0, N1: 1, N2: 1, N2.next(): 1}
    assert charged_purchases([first, again], N2, once_per_month=True) == [first]


def test_pattern_5_the_same_row_at_the_month_edges_is_charged_once_a_month() -> None:
    """§4 pattern 5 repeats pattern 4's cells: bought at N+1's last second; in N+2 cancelled on
    the 2nd and bought again that minute, cancelled again and bought a third time — still N+1
    once and N+2 once (a cancellation on the 2nd is charged, 4.4; re-buys add nothing, 4.6)."""
    subs = (
        _Sub(t("2025-02-28T23:59:59+09:00"), t("2025-03-02T00:00:00+09:00")),
        _Sub(t("2025-03-02T00:00:30+09:00"), t("2025-03-31T23:59:59+09:00")),
        _Sub(t("2025-03-31T23:59:59+09:00"), t("2025-04-01T00:00:00+09:00")),
    )
    assert _charges_by_month(*subs) == {N.previous(): 0, N: 0, N1: 1, N2: 1, N2.next(): 0}


def test_pattern_6_cancellation_on_the_first_is_not_charged_for_that_month() -> None:
    """§4 pattern 6: purchase in N, cancel on the 1st of N+1 → N only."""
    assert charged_months("2025-01-15T10:00:00+09:00", "2025-02-01T10:00:00+09:00") == [N]
    assert last_charged_month(t("2025-01-15T10:00:00+09:00"), t("2025-02-01T10:00:00+09:00")) == N


def test_cancellation_on_the_first_at_the_last_second_of_the_day_is_still_the_first() -> None:
    """§4: "on the 1st" is the whole Tokyo day, to 23:59:59."""
    assert charged_months("2025-01-15T10:00:00+09:00", "2025-02-01T23:59:59+09:00") == [N]


def test_cancellation_on_the_second_is_charged_for_that_month() -> None:
    """§4: only the 1st is exempt; from the 2nd the cancellation month is charged (no pro-rata)."""
    assert charged_months("2025-01-15T10:00:00+09:00", "2025-02-02T00:00:00+09:00") == [N, N1]


def test_purchase_and_cancel_on_the_same_first_is_charged_for_that_month() -> None:
    """§4, the exception to the exception: the 1st that is the purchase month is charged."""
    assert charged_months("2025-02-01T09:00:00+09:00", "2025-02-01T18:00:00+09:00") == [N1]
    assert last_charged_month(t("2025-02-01T09:00:00+09:00"), t("2025-02-01T18:00:00+09:00")) == N1


def test_purchase_on_a_first_and_cancel_on_the_next_first_charges_the_purchase_month_only() -> None:
    """§4: the exception only covers the *same* 1st; the next month's 1st is not charged."""
    assert charged_months("2025-01-01T09:00:00+09:00", "2025-02-01T09:00:00+09:00") == [N]


def test_an_active_subscription_is_charged_every_month_from_its_purchase() -> None:
    """§4: charged every month from the purchase month while it is not cancelled."""
    assert charged_months("2025-01-31T23:59:59+09:00", None) == [N, N1, N2, N2.next()]
    assert last_charged_month(t("2025-01-31T23:59:59+09:00"), None) is None


def test_no_pro_rating_a_purchase_on_the_last_day_is_charged_the_full_month() -> None:
    """§4: no pro-rating: the purchase month is charged in full even on its last second."""
    assert first_charged_month(t("2025-01-31T23:59:59+09:00")) == N
    assert charged_months("2025-01-31T23:59:59+09:00", "2025-01-31T23:59:59+09:00") == [N]


# Tokyo-midnight edges with times given in UTC (or another offset).


def test_cancellation_at_0030_jst_on_the_first_given_in_utc_is_a_first_of_month_cancel() -> None:
    """§4: the 1st is Tokyo's: 2025-01-31T15:30Z is 00:30 on 1 Feb in Tokyo."""
    purchased, cancelled = t("2024-12-20T10:00:00+09:00"), t("2025-01-31T15:30:00+00:00")
    assert last_charged_month(purchased, cancelled) == N
    assert [m for m in AROUND if charged_in(purchased, cancelled, m)] == [N.previous(), N]


def test_cancellation_at_2359_jst_on_the_last_day_given_in_utc_is_in_that_month() -> None:
    """§4: 2025-01-31T14:59:59Z is still 31 Jan in Tokyo: January is the last month."""
    assert last_charged_month(t("2024-12-20T10:00:00+09:00"), t("2025-01-31T14:59:59+00:00")) == N


def test_new_year_midnight_in_utc_cancellation_is_on_the_first_of_january() -> None:
    """§4: 2024-12-31T15:30Z is 00:30 on 1 Jan 2025 in Tokyo: January is not charged."""
    purchased = t("2024-11-10T10:00:00+09:00")
    cancelled = t("2024-12-31T15:30:00+00:00")
    assert last_charged_month(purchased, cancelled) == YearMonth(2024, 12)
    assert not charged_in(purchased, cancelled, N)


def test_purchase_at_0030_jst_on_the_first_given_in_utc_belongs_to_that_month() -> None:
    """§4: a purchase at 2025-01-31T15:30Z is a purchase on 1 Feb (Tokyo), not in January."""
    purchased = t("2025-01-31T15:30:00+00:00")
    assert first_charged_month(purchased) == N1
    assert not charged_in(purchased, None, N)


def test_same_first_exception_holds_when_the_times_are_given_in_utc() -> None:
    """§4: purchase and cancel on the same Tokyo 1st, both written in UTC (the UTC dates
    differ: 31 Jan and 1 Feb) → February is charged, January is not."""
    purchased = t("2025-01-31T15:30:00+00:00")  # 2025-02-01 00:30 JST
    cancelled = t("2025-02-01T05:00:00+00:00")  # 2025-02-01 14:00 JST
    assert last_charged_month(purchased, cancelled) == N1
    assert [m for m in AROUND if charged_in(purchased, cancelled, m)] == [N1]


def test_same_first_exception_does_not_apply_to_a_purchase_the_tokyo_evening_before() -> None:
    """§4: 2025-01-31T14:30Z is 23:30 on 31 Jan in Tokyo, so the 1 Feb cancellation is exempt."""
    purchased = t("2025-01-31T14:30:00+00:00")
    cancelled = t("2025-01-31T15:30:00+00:00")
    assert last_charged_month(purchased, cancelled) == N
    assert [m for m in AROUND if charged_in(purchased, cancelled, m)] == [N]


@pytest.mark.parametrize(
    "cancelled",
    ["2025-02-01T00:00:00+09:00", "2025-01-31T15:00:00+00:00", "2025-01-31T10:00:00-05:00"],
)
def test_tokyo_midnight_starting_the_first_is_on_the_first_in_every_offset(cancelled: str) -> None:
    """§4: the same instant (00:00 JST on 1 Feb) in three offsets gives the same answer."""
    assert last_charged_month(t("2025-01-10T10:00:00+09:00"), t(cancelled)) == N


# What was charged so far: the cap on refunds (§4, contract 2)


@pytest.mark.parametrize(
    ("cancelled", "until", "months"),
    [
        (None, N.previous(), 0),  # before the purchase month
        (None, N, 1),
        (None, N2, 3),
        ("2025-02-10T10:00:00+09:00", N2, 2),  # stops at the cancellation month
        ("2025-03-01T10:00:00+09:00", N2, 2),  # cancelled on the 1st: N+2 not charged
        ("2025-01-20T10:00:00+09:00", N2, 1),
    ],
)
def test_a_monthly_subscription_has_been_charged_its_price_for_each_month_so_far(
    cancelled: str | None, until: YearMonth, months: int
) -> None:
    """§4: refunds of one purchase may never add up to more than what was charged for it so
    far — a monthly subscription: its price for every charged month up to the refund's."""
    charged = charged_so_far(
        Pricing.MONTHLY,
        525,
        t("2025-01-15T10:00:00+09:00"),
        t(cancelled) if cancelled else None,
        until,
        first_month_charged=True,
    )
    assert charged == 525 * months


def test_a_same_month_repurchase_was_not_charged_in_its_first_month() -> None:
    """§4 patterns 4–5 (contract 2): a re-purchase not charged in its purchase month has
    nothing to refund for it."""
    bought = t("2025-01-20T10:00:00+09:00")
    assert charged_so_far(Pricing.MONTHLY, 525, bought, None, N, first_month_charged=False) == 0
    assert charged_so_far(Pricing.MONTHLY, 525, bought, None, N1, first_month_charged=False) == 525
    cancelled = t("2025-01-25T10:00:00+09:00")
    assert (
        charged_so_far(Pricing.MONTHLY, 525, bought, cancelled, N2, first_month_charged=False) == 0
    )


def test_a_per_purchase_item_has_been_charged_its_amount_from_its_month_on() -> None:
    """§4: a one-off is charged once, in its month: price × quantity (here 300 × 10)."""
    bought = t("2025-01-20T10:00:00+09:00")
    amount = 300 * 10
    assert (
        charged_so_far(
            Pricing.PER_PURCHASE, amount, bought, None, N.previous(), first_month_charged=True
        )
        == 0
    )
    assert (
        charged_so_far(Pricing.PER_PURCHASE, amount, bought, None, N, first_month_charged=True)
        == 3000
    )
    assert (
        charged_so_far(Pricing.PER_PURCHASE, amount, bought, None, N2, first_month_charged=True)
        == 3000
    )
