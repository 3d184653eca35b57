"""Provider fees [手数料] for settlement (DOMAIN.md §8): effective-dated, tiered, given as data.

A schedule is a list of :class:`FeePeriod` objects, each in force from a usage month on.  A
period's tiers are chosen by the provider's **average billed amount per access line** for the
month (an exact fraction).  Tier bounds are inclusive upper bounds on that average: the
2012 schedule's "up to 900 / 901–1,500 / 1,501 and over" becomes ``≤ 900``, ``≤ 1,500``,
above — an average of 900.5 yen falls in the middle tier.

Rounding rule: a fee is computed exactly (``Fraction``), consumption tax is added exactly, and
the total is rounded **down** to whole yen, so rounding never charges a provider more than the
schedule says.  Amounts the sources do not state (the 2012 flat fee for the middle tier) are
``None`` until configured, and settling a month that needs one raises
:class:`~matome.errors.FeeNotConfigured` rather than inventing a number.
"""

from __future__ import annotations

from collections.abc import Sequence
from fractions import Fraction

import attrs

from matome.errors import FeeNotConfigured
from matome.values import YearMonth

__all__ = [
    "DEFAULT_SCHEDULE",
    "FeeNotConfigured",
    "FeePeriod",
    "Flat",
    "PerLine",
    "Percent",
    "SmallProviderRule",
    "Tier",
    "fee_for",
    "schedule_with_flat_fee",
]


@attrs.frozen
class Percent:
    """A share of the gross billed amount."""

    rate: Fraction

    def fee(self, gross: int, lines: int) -> Fraction:
        return self.rate * gross


@attrs.frozen
class PerLine:
    """A fixed amount per access line billed."""

    amount: Fraction

    def fee(self, gross: int, lines: int) -> Fraction:
        return self.amount * lines


@attrs.frozen
class Flat:
    """A flat amount per access line that must be configured (``None`` until it is)."""

    amount: Fraction | None
    what: str

    def fee(self, gross: int, lines: int) -> Fraction:
        if self.amount is None:
            raise FeeNotConfigured(f"the fee schedule's {self.what} is not configured")
        return self.amount * lines


@attrs.frozen
class SmallProviderRule:
    """The 2011 fee: a percentage, but a per-line amount where the average is under a floor."""

    rate: Fraction
    per_line: Fraction
    below_average: Fraction

    def fee(self, gross: int, lines: int) -> Fraction:
        if lines and Fraction(gross, lines) < self.below_average:
            return self.per_line * lines
        return self.rate * gross


Rule = Percent | PerLine | Flat | SmallProviderRule


@attrs.frozen
class Tier:
    """Applies while the average per line is at most ``up_to`` (``None``: no upper bound)."""

    up_to: Fraction | None
    rule: Rule


@attrs.frozen
class FeePeriod:
    """Tiers in force for usage months from ``since``; ``tax_rate`` is added to the fee."""

    since: YearMonth
    tiers: tuple[Tier, ...]
    tax_rate: Fraction = Fraction(0)


_RULE_2011 = SmallProviderRule(
    rate=Fraction(5, 100), per_line=Fraction(63, 2), below_average=Fraction(600)
)


def _period_2012(flat: Fraction | None, since: YearMonth, tax: Fraction) -> FeePeriod:
    return FeePeriod(
        since=since,
        tiers=(
            Tier(Fraction(900), _RULE_2011),  # "up to 900 yen: the existing fee"
            Tier(Fraction(1500), Flat(flat, "2012 flat fee per line for averages 901–1,500 yen")),
            Tier(None, Percent(Fraction(3, 100))),
        ),
        tax_rate=tax,
    )


def _schedule(flat: Fraction | None) -> tuple[FeePeriod, ...]:
    # The 2012 announcement: "fee by average + consumption tax"; the tax rate then followed the
    # law (5%, 8% from 2014-04, 10% from 2019-10).  The 2011 fee is quoted tax-included.
    return (
        FeePeriod(since=YearMonth(2011, 1), tiers=(Tier(None, _RULE_2011),)),
        _period_2012(flat, YearMonth(2012, 6), Fraction(5, 100)),
        _period_2012(flat, YearMonth(2014, 4), Fraction(8, 100)),
        _period_2012(flat, YearMonth(2019, 10), Fraction(10, 100)),
    )


#: NTT East's schedule as the sources state it; the 2012 flat fee is not configured.
DEFAULT_SCHEDULE: tuple[FeePeriod, ...] = _schedule(None)


def schedule_with_flat_fee(amount: int | Fraction) -> tuple[FeePeriod, ...]:
    """The default schedule with the 2012 middle-tier flat fee per line configured."""
    return _schedule(Fraction(amount))


def fee_for(
    schedule: Sequence[FeePeriod], month: YearMonth, gross: int, lines: int
) -> tuple[int, Fraction]:
    """The fee (whole yen, rounded down) and the exact average per line for one provider-month."""
    period = None
    for candidate in sorted(schedule, key=lambda p: p.since):
        if candidate.since <= month:
            period = candidate
    if period is None:
        raise FeeNotConfigured(f"no fee schedule is in force for {month}")
    average = Fraction(gross, lines) if lines else Fraction(0)
    if gross <= 0:
        return 0, average  # refunds outweighed charges: nothing was collected to take a fee on
    for tier in period.tiers:
        if tier.up_to is None or average <= tier.up_to:
            exact = tier.rule.fee(gross, lines) * (1 + period.tax_rate)
            return int(exact // 1), average
    raise FeeNotConfigured(f"the fee schedule for {month} has no tier for average {average}")
