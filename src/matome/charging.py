"""The charging rules of §4 (docs/rules.md) — the one place that says what is charged in a month.

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
* a **per-purchase** item is charged once, in its purchase month: unit price × quantity;
* a refund is charged negatively in the month it is recorded, and the refunds of one purchase
  add up to at most what was charged for it so far (:func:`charged_so_far`);
* a service period (docs/rules.md §11, contract 3) ends a monthly-flat subscription by itself at
  00:00 Tokyo on a 1st, fixed at purchase (:func:`period_ends_at`): every consumer gives these
  rules the earlier of its cancellation and that end (:func:`until`) as its ``cancelled_at``.
"""

from __future__ import annotations

from collections.abc import Hashable, Iterable, Iterator, Sequence
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Protocol, TypeVar

from matome.values import Pricing, YearMonth, tokyo_date

__all__ = [
    "Chargeable",
    "Rule",
    "assess_month",
    "charged_in",
    "charged_purchases",
    "charged_so_far",
    "ended_rule",
    "first_charged_month",
    "is_charged",
    "last_charged_month",
    "period_ends_at",
    "repurchase_is_free",
    "spend",
    "until",
    "why",
]


def period_ends_at(
    purchased_at: datetime, period_months: int | None, period_days: int | None
) -> datetime | None:
    """The instant a purchase's service period ends (docs/rules.md §11), ``None`` for none.

    ``period_months: N`` (monthly-flat) is N billing months counted from the purchase month:
    the subscription ends at 00:00 Tokyo on the 1st of the month after the N-th — a
    cancellation on the 1st, so that :func:`last_charged_month` charges exactly N months.
    ``period_days: D`` (per-purchase) ends access D days after the purchase instant.
    """
    if period_months is not None:
        first = YearMonth.of(purchased_at)
        index = first.year * 12 + first.month - 1 + period_months
        return YearMonth(index // 12, index % 12 + 1).start()
    if period_days is not None:
        return purchased_at + timedelta(days=period_days)
    return None


def until(cancelled_at: datetime | None, period_end: datetime | None) -> datetime | None:
    """When a monthly-flat subscription ends: its cancellation, or its service period's end
    if that comes first (a customer's earlier cancellation overrides the period, §11)."""
    if cancelled_at is None:
        return period_end
    if period_end is None:
        return cancelled_at
    return min(cancelled_at, period_end)


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


class Rule(StrEnum):
    """Why a purchase is, or is not, charged in a month (the audit's ``rule``)."""

    #: A monthly-flat subscription in its purchase month: always charged, no pro-rating.
    PURCHASE_MONTH = "purchase_month"
    #: A monthly-flat subscription active through the month.
    MONTHLY_ACTIVE = "monthly_active"
    #: Cancelled in the month (not on the 1st): the month is charged in full.
    CANCEL_MONTH = "cancel_month"
    #: Cancelled on the 1st of the month (and not bought that same day): not charged.
    CANCELLED_ON_THE_1ST = "cancelled_on_the_1st"
    #: Cancelled before the month began: not charged.
    CANCELLED_BEFORE_MONTH = "cancelled_before_month"
    #: Bought again in a month the same ID's same service was already charged: not charged.
    SAME_MONTH_REPURCHASE = "same_month_repurchase"
    #: A per-purchase item in its purchase month: unit price × quantity.
    PER_PURCHASE = "per_purchase"
    #: A per-purchase item bought in an earlier month: charged there, not here.
    PER_PURCHASE_OTHER_MONTH = "per_purchase_other_month"
    #: A provider's refund, charged negatively in the month it is recorded.
    REFUND = "refund"
    #: The service period the listing set ended before the month (docs/rules.md §11): the
    #: subscription ended by itself at 00:00 Tokyo on the 1st, so the month is not charged.
    PERIOD_ENDED = "period_ended"


def ended_rule(rule: Rule, cancelled_by: str | None) -> Rule:
    """``rule`` as the audit names it: a month not charged because the subscription's service
    period ended is :attr:`Rule.PERIOD_ENDED` (§11), whatever day-of-month rule applies."""
    if cancelled_by == "period_ended" and rule in (
        Rule.CANCELLED_ON_THE_1ST,
        Rule.CANCELLED_BEFORE_MONTH,
    ):
        return Rule.PERIOD_ENDED
    return rule


_CHARGED = frozenset(
    {Rule.PURCHASE_MONTH, Rule.MONTHLY_ACTIVE, Rule.CANCEL_MONTH, Rule.PER_PURCHASE}
)


def _rule(purchase: Chargeable, month: YearMonth) -> Rule | None:
    """The rule ``purchase`` falls under in ``month`` on its own (``None``: it does not touch
    the month — bought later, or ended before the month before)."""
    first = first_charged_month(purchase.purchased_at)
    if month < first:
        return None
    if purchase.pricing != Pricing.MONTHLY:
        return Rule.PER_PURCHASE if month == first else None
    cancelled = purchase.cancelled_at
    last = last_charged_month(purchase.purchased_at, cancelled)
    if last is None or cancelled is None or month <= last:
        if month == first:
            return Rule.PURCHASE_MONTH
        if cancelled is not None and YearMonth.of(cancelled) == month:
            return Rule.CANCEL_MONTH
        return Rule.MONTHLY_ACTIVE
    if YearMonth.of(cancelled) == month:
        return Rule.CANCELLED_ON_THE_1ST
    # Ended before ``month``: it still touches the month right after its last charged one,
    # so that "why was I (not) charged the next month?" has an answer.
    return Rule.CANCELLED_BEFORE_MONTH if month == last.next() else None


def assess_month(
    purchases: Iterable[C], month: YearMonth, *, once_per_month: bool
) -> Iterator[tuple[C, Rule, bool]]:
    """Each purchase that touches ``month``, with the rule it falls under and whether it is
    charged — in the order given (give them in purchase order).

    With ``once_per_month`` a monthly service is charged once per (Passport ID, service): the
    first purchase given — the earliest — carries the charge (§4 patterns 4–5).
    """
    carried: set[tuple[Hashable, Hashable, Hashable]] = set()
    for purchase in purchases:
        rule = _rule(purchase, month)
        if rule is None:
            continue
        if rule in _CHARGED and once_per_month and purchase.pricing == Pricing.MONTHLY:
            key = (purchase.passport_id, purchase.provider, purchase.service)
            if key in carried:
                rule = Rule.SAME_MONTH_REPURCHASE
            else:
                carried.add(key)
        yield purchase, rule, rule in _CHARGED


def charged_purchases(purchases: Iterable[C], month: YearMonth, *, once_per_month: bool) -> list[C]:
    """The purchases charged in ``month``, in the order given (give them in purchase order)."""
    return [
        p
        for p, _, charged in assess_month(purchases, month, once_per_month=once_per_month)
        if charged
    ]


def why(
    rule: Rule,
    month: YearMonth,
    purchased_at: datetime,
    cancelled_at: datetime | None = None,
    *,
    cancelled_by: str | None = None,
    amount: int | None = None,
    unit_price: int | None = None,
    quantity: int = 1,
) -> str:
    """The rule in a sentence, with Tokyo dates (the audit's ``why``).

    ``cancelled_by`` names what cancelled a subscription (``customer``, ``regulation``,
    ``passport_deleted``, ``line_change``).
    """
    bought = tokyo_date(purchased_at).isoformat()
    by = {
        None: "",
        "customer": "",
        "regulation": " by the line's regulation (§5)",
        "passport_deleted": " by the deletion of its Passport ID (§2)",
        "line_change": " by a line change that ended the service (§6)",
        "period_ended": " by the end of its service period (§11)",
    }.get(cancelled_by, f" ({cancelled_by})")
    ended = "" if cancelled_at is None else tokyo_date(cancelled_at).isoformat()
    if rule is Rule.PURCHASE_MONTH:
        return (
            f"bought on {bought}: a monthly-flat service is charged in full in its purchase "
            f"month {month}, with no pro-rating (§4)"
        )
    if rule is Rule.MONTHLY_ACTIVE:
        return f"bought on {bought} and not cancelled before {month}: charged for {month} (§4)"
    if rule is Rule.CANCEL_MONTH:
        return (
            f"cancelled{by} on {ended}: the month of cancellation {month} is charged in full, "
            "with no pro-rating (§4)"
        )
    if rule is Rule.CANCELLED_ON_THE_1ST:
        return (
            f"cancelled{by} on {ended}, the 1st of {month}: a month whose 1st the "
            "subscription was cancelled on is not charged (§4, pattern 6)"
        )
    if rule is Rule.CANCELLED_BEFORE_MONTH:
        return (
            f"cancelled{by} on {ended} (Tokyo), before {month} began: not charged for {month} (§4)"
        )
    if rule is Rule.PERIOD_ENDED:
        return (
            f"bought on {bought}; its service period ended on {ended} (00:00 Tokyo): not "
            f"charged for {month} (§11, §4)"
        )
    if rule is Rule.SAME_MONTH_REPURCHASE:
        return (
            f"bought again on {bought} in {month}, a month the same Passport ID was already "
            "charged for this service: charged at most once per month (§4, patterns 4–5)"
        )
    if rule is Rule.PER_PURCHASE:
        each = f"{unit_price:,} yen × {quantity}" if unit_price is not None else ""
        return f"bought on {bought}: a per-purchase item is charged once, in its month ({each})"
    if rule is Rule.PER_PURCHASE_OTHER_MONTH:
        return f"bought on {bought}: charged in {YearMonth.of(purchased_at)}, not in {month} (§4)"
    return (
        f"a provider's refund of {-(amount or 0):,} yen, charged negatively in {month}, the "
        "month it was recorded; the past is never rewritten (§4)"
    )


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


def charged_so_far(
    pricing: str,
    amount: int,
    purchased_at: datetime,
    cancelled_at: datetime | None,
    until: YearMonth,
    *,
    first_month_charged: bool,
) -> int:
    """What one purchase has been charged from its purchase through ``until`` (§4), in yen:
    the cap on its refunds.

    ``amount`` is what it is charged in a month (a per-purchase item: unit price × quantity);
    ``first_month_charged`` is false for a monthly service bought again in a month in which
    the same Passport ID was already charged for it (patterns 4–5): it has nothing to refund
    for that month.
    """
    first = first_charged_month(purchased_at)
    if until < first:
        return 0
    if pricing != Pricing.MONTHLY:
        return amount
    last = last_charged_month(purchased_at, cancelled_at)
    end = until if last is None or until < last else last
    if end < first:
        return 0
    months = (end.year - first.year) * 12 + end.month - first.month + 1
    return amount * (months - (0 if first_month_charged else 1))


def spend(purchases: Sequence[_Priced], month: YearMonth, *, once_per_month: bool) -> int:
    """Everything chargeable in ``month`` to the purchases given, in yen (Decision of §3).

    Refunds are not counted: a refund does not give limit back.
    """
    return sum(p.amount for p in charged_purchases(purchases, month, once_per_month=once_per_month))
