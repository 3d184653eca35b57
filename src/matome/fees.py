"""Provider fees [手数料] for settlement (rules §8): effective-dated, tiered, given as data.

A schedule is a list of :class:`FeePeriod` objects, each in force from a usage month on.  A
period's tiers are chosen by the provider's **average billed amount per access line** for the
month and operator (an exact fraction; the averages are tax included, as the sources state
them).  Tier bounds are inclusive upper bounds on that average: the 2012 schedule's "up to 900
/ 901–1,500 / 1,501 and over" becomes ``≤ 900``, ``≤ 1,500``, above — an average of 900.5 yen
falls in the middle tier.

**Fee amounts are before tax** (Decision of §8): consumption tax is added at the rate in force
in the usage month (:func:`consumption_tax_rate`: 5% to 2014-03, 8% from 2014-04, 10% from
2019-10).  The 2011 "31.5 yen" per line is 30 yen + 5% tax, so the existing fee is 5% of the
gross, or 30 yen per line, before tax — tax is never counted twice.

Rounding rule: the fee is computed exactly (``Fraction``) and rounded **down** to whole yen;
the tax is that fee × the rate, rounded down; the net is gross − fee − tax.  Rounding never
takes more from a provider than the schedule says.

The amount the sources do not state — the 2012 flat fee per line for the middle tier — is
configured by the operator's ``set_fee`` command (an event, so settlements replay); until it
is, a provider in that tier settles with status ``fee_not_configured`` and no fee.
"""

from __future__ import annotations

from collections.abc import Sequence
from fractions import Fraction

import attrs

from matome.errors import FeeNotConfigured
from matome.values import YearMonth

__all__ = [
    "DEFAULT_SCHEDULE",
    "Fee",
    "FeeNotConfigured",
    "FeePeriod",
    "Flat",
    "PerLine",
    "Percent",
    "SmallProviderRule",
    "Tier",
    "consumption_tax_rate",
    "fee_for",
    "schedule_with_flat_fee",
]


@attrs.frozen
class Percent:
    """A share of the gross billed amount."""

    rate: Fraction

    def fee(self, gross: int, lines: int, flat: Fraction | None) -> Fraction:
        return self.rate * gross


@attrs.frozen
class PerLine:
    """A fixed amount per access line billed."""

    amount: Fraction

    def fee(self, gross: int, lines: int, flat: Fraction | None) -> Fraction:
        return self.amount * lines


@attrs.frozen
class Flat:
    """The configurable flat amount per access line (``set_fee``; ``amount`` is the default
    when none was set — ``None``: not configured)."""

    amount: Fraction | None
    what: str

    def fee(self, gross: int, lines: int, flat: Fraction | None) -> Fraction:
        amount = flat if flat is not None else self.amount
        if amount is None:
            raise FeeNotConfigured(f"the fee schedule's {self.what} is not configured")
        return amount * lines


@attrs.frozen
class SmallProviderRule:
    """The 2011 fee: a percentage, but a per-line amount where the average is under a floor."""

    rate: Fraction
    per_line: Fraction
    below_average: Fraction

    def fee(self, gross: int, lines: int, flat: Fraction | None) -> Fraction:
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
    """Tiers in force for usage months from ``since`` (amounts before tax)."""

    since: YearMonth
    tiers: tuple[Tier, ...]


@attrs.frozen
class Fee:
    """One provider's fee for one month and operator: before tax, the tax, and the exact
    average per line it was chosen by."""

    fee: int
    tax: int
    average: Fraction


#: Consumption tax by the month it is in force from (the law's rates since 1997).
_TAX_RATES: tuple[tuple[YearMonth, Fraction], ...] = (
    (YearMonth(1997, 4), Fraction(5, 100)),
    (YearMonth(2014, 4), Fraction(8, 100)),
    (YearMonth(2019, 10), Fraction(10, 100)),
)


def consumption_tax_rate(month: YearMonth) -> Fraction:
    """The consumption tax rate in force in ``month`` (5%, 8% from 2014-04, 10% from 2019-10)."""
    rate = Fraction(3, 100)  # 1989-04 to 1997-03; no schedule of matome reaches back there
    for since, r in _TAX_RATES:
        if since <= month:
            rate = r
    return rate


# The existing fee (2011; kept up to 900 yen from 2012-06): 5%, or 30 yen per line where the
# average is under 600 yen (the "31.5 yen" of the source is 30 yen + 5% tax).
_RULE_2011 = SmallProviderRule(
    rate=Fraction(5, 100), per_line=Fraction(30), below_average=Fraction(600)
)


def _schedule(flat: Fraction | None) -> tuple[FeePeriod, ...]:
    return (
        FeePeriod(since=YearMonth(2011, 1), tiers=(Tier(None, _RULE_2011),)),
        FeePeriod(
            since=YearMonth(2012, 6),
            tiers=(
                Tier(Fraction(900), _RULE_2011),  # "up to 900 yen: the existing fee"
                Tier(
                    Fraction(1500), Flat(flat, "2012 flat fee per line for averages 901–1,500 yen")
                ),
                Tier(None, Percent(Fraction(3, 100))),
            ),
        ),
    )


#: NTT East's schedule as the sources state it (West uses it too unless told otherwise); the
#: 2012 flat fee is not configured until ``set_fee`` sets it.
DEFAULT_SCHEDULE: tuple[FeePeriod, ...] = _schedule(None)


def schedule_with_flat_fee(amount: int | Fraction) -> tuple[FeePeriod, ...]:
    """The default schedule with a default 2012 flat fee per line (before tax) configured;
    a ``set_fee`` in force still takes precedence."""
    return _schedule(Fraction(amount))


def fee_for(
    schedule: Sequence[FeePeriod],
    month: YearMonth,
    gross: int,
    lines: int,
    flat: Fraction | None = None,
) -> Fee:
    """The fee of one provider for one month and operator (rounding: see the module).

    ``flat`` is the 2012 flat fee in force (``set_fee``), if any.  Raises
    :class:`~matome.errors.FeeNotConfigured` when the tier needs an amount nobody configured.
    """
    period = None
    for candidate in sorted(schedule, key=lambda p: p.since):
        if candidate.since <= month:
            period = candidate
    if period is None:
        raise FeeNotConfigured(f"no fee schedule is in force for {month}")
    average = Fraction(gross, lines) if lines else Fraction(0)
    if gross <= 0:
        return Fee(fee=0, tax=0, average=average)  # nothing collected to take a fee on
    for tier in period.tiers:
        if tier.up_to is None or average <= tier.up_to:
            fee = int(tier.rule.fee(gross, lines, flat) // 1)
            tax = int(fee * consumption_tax_rate(month) // 1)
            return Fee(fee=fee, tax=tax, average=average)
    raise FeeNotConfigured(f"the fee schedule for {month} has no tier for average {average}")
