"""The charging rules of DOMAIN.md §4 — the one place that says what is charged in a month.

Every consumer asks this module and nothing else: the spend check of a purchase (§3, in
:mod:`matome.aggregates.passport`), the bills, provider totals and settlement of the projections
(§7, §8), and the audit's explanations.  The reference model in :mod:`matome.testing.model`
is the one deliberate second implementation, kept apart on purpose to check this one.

The rules, as functions of business times (months are Tokyo's):

* a **monthly-flat** subscription is charged its full price for every month from its purchase
  month through its cancellation month, both included, with no pro-rating; a cancellation on
  the 1st leaves that month uncharged, unless the purchase was made that same 1st
  (:func:`charged_in`, patterns 1–6);
* it is charged **at most once per (Passport ID, service, month)** however often it is cancelled
  and bought again that month (patterns 4–5, ``Policy.monthly_once_per_month``); the earliest
  purchase of the month carries the charge (:func:`charged_purchases`);
* a **per-purchase** item is charged once, in its purchase month.
"""

from __future__ import annotations

from collections.abc import Hashable, Iterable, Sequence
from datetime import datetime
from typing import Protocol, TypeVar

from matome.values import Pricing, YearMonth, tokyo_date

__all__ = [
    "Chargeable",
    "charged_in",
    "charged_purchases",
    "first_charged_month",
    "is_charged",
    "last_charged_month",
    "repurchase_is_free",
    "spend",
]


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


class Chargeable(Protocol):
    """What the rules need to know of one purchase (an aggregate's holding, a view row, ...)."""

    @property
    def passport_id(self) -> Hashable: ...

    @property
    def provider(self) -> Hashable: ...

    @property
    def service(self) -> Hashable: ...

    @property
    def pricing(self) -> str: ...

    @property
    def purchased_at(self) -> datetime: ...

    @property
    def cancelled_at(self) -> datetime | None: ...


C = TypeVar("C", bound=Chargeable)


def is_charged(purchase: Chargeable, month: YearMonth) -> bool:
    """Whether ``purchase`` on its own is charged in ``month`` (before once-per-month)."""
    if purchase.pricing == Pricing.MONTHLY:
        return charged_in(purchase.purchased_at, purchase.cancelled_at, month)
    return first_charged_month(purchase.purchased_at) == month


def charged_purchases(purchases: Iterable[C], month: YearMonth, *, once_per_month: bool) -> list[C]:
    """The purchases charged in ``month``, in the order given (give them in purchase order).

    With ``once_per_month`` a monthly service is charged once per (Passport ID, service): the
    first purchase given — the earliest — carries the charge (§4 patterns 4–5).
    """
    out: list[C] = []
    carried: set[tuple[Hashable, Hashable, Hashable]] = set()
    for purchase in purchases:
        if not is_charged(purchase, month):
            continue
        if once_per_month and purchase.pricing == Pricing.MONTHLY:
            key = (purchase.passport_id, purchase.provider, purchase.service)
            if key in carried:
                continue
            carried.add(key)
        out.append(purchase)
    return out


def repurchase_is_free(
    monthly: Iterable[Chargeable],
    provider: Hashable,
    service: Hashable,
    month: YearMonth,
    *,
    once_per_month: bool,
) -> bool:
    """Whether buying a monthly service now adds nothing to ``month``: the same Passport ID's
    earlier subscription to it is charged in that month already (§4 patterns 4–5)."""
    return once_per_month and any(
        p.provider == provider and p.service == service and is_charged(p, month) for p in monthly
    )


class _Priced(Chargeable, Protocol):
    @property
    def amount(self) -> int: ...


def spend(purchases: Sequence[_Priced], month: YearMonth, *, once_per_month: bool) -> int:
    """Everything chargeable in ``month`` to the purchases given, in yen (Decision of §3).

    Refunds are not counted: a refund does not give limit back.
    """
    return sum(p.amount for p in charged_purchases(purchases, month, once_per_month=once_per_month))
