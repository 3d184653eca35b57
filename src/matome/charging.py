"""The charging rules of DOMAIN.md §4, as pure functions of business times.

One place decides which months a monthly-flat subscription is charged; the Passport ID's spend
check (§3) and the billing projections both call it, so they cannot disagree.
"""

from __future__ import annotations

from datetime import datetime

from matome.values import YearMonth, tokyo_date

__all__ = ["charged_in", "first_charged_month", "last_charged_month"]


def first_charged_month(purchased_at: datetime) -> YearMonth:
    """The purchase month (Tokyo) is always charged: there is no pro-rating (§4)."""
    return YearMonth.of(purchased_at)


def last_charged_month(purchased_at: datetime, cancelled_at: datetime | None) -> YearMonth | None:
    """The last charged month of a monthly-flat subscription; ``None`` while it is active.

    The cancellation month is charged, except when the cancellation falls on the 1st (Tokyo)
    and the purchase was not made on that same 1st (§4, pattern 6 and its exception).
    """
    if cancelled_at is None:
        return None
    cancel_day = tokyo_date(cancelled_at)
    month = YearMonth(cancel_day.year, cancel_day.month)
    if cancel_day.day == 1 and tokyo_date(purchased_at) != cancel_day:
        return month.previous()
    return month


def charged_in(purchased_at: datetime, cancelled_at: datetime | None, month: YearMonth) -> bool:
    """Whether a monthly-flat subscription is charged in ``month`` (before the once-per-month
    rule, which is applied across subscriptions of the same service)."""
    if month < first_charged_month(purchased_at):
        return False
    last = last_charged_month(purchased_at, cancelled_at)
    return last is None or month <= last
