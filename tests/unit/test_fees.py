"""Provider fees for settlement (docs/rules.md §8): ``matome.fees``, ``set_fee`` and
``Engine.settlement``.

NTT East's schedule: 2011 — 5% of the price, or 31.5 yen per access line where the provider's
average per line is under 600 yen; from June 2012 — by the average per line, plus consumption
tax: up to 900 yen the existing fee, 901–1,500 yen a flat amount per line (set by the
operator's ``set_fee``), 1,501 yen and over 3%.

Decisions of §8 (and docs/design.md, "Settlement fees"): the fee amounts are **before tax**;
consumption tax is added at the usage month's rate (5% to 2014-03, 8% from 2014-04, 10% from
2019-10), so the 2011 "31.5 yen" is 30 yen + 5% tax.  The fee is rounded down to whole yen, the
tax is that fee × the rate rounded down, net = gross − fee − tax.  Settlement is per provider
**and operator**; a provider whose tier has no amount settles as ``fee_not_configured`` while
the others settle.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from fractions import Fraction
from typing import Any

import pytest

from matome.engine import Engine
from matome.errors import InvalidInput, MatomeError, MonthClosed
from matome.fees import (
    DEFAULT_SCHEDULE,
    Fee,
    FeeNotConfigured,
    FeePeriod,
    Flat,
    Percent,
    PerLine,
    SmallProviderRule,
    Tier,
    consumption_tax_rate,
    fee_for,
    schedule_with_flat_fee,
)
from matome.values import YearMonth
from matome.wire import to_json
from tests.conftest import TEST_ITERATIONS
from tests.unit.helpers import event_count, refused

CONFIGURED = schedule_with_flat_fee(50)

#: The 2011 rule as docs/rules.md §8 states it: 5%, or 30 yen per line (before tax) where the
#: average per line is under 600 yen.
RATE_2011 = Fraction(5, 100)
PER_LINE_2011 = 30


def tax_of(fee: int, month: str) -> int:
    """Consumption tax on a (whole-yen) fee, rounded down (§8 Decision)."""
    return int(fee * consumption_tax_rate(YearMonth.parse(month)))


def fee(
    month: str, gross: int, lines: int, schedule: Sequence[FeePeriod] = DEFAULT_SCHEDULE
) -> tuple[int, int]:
    """(fee before tax, tax) of one provider's month."""
    answer = fee_for(schedule, YearMonth.parse(month), gross, lines)
    return answer.fee, answer.tax


# ---------------------------------------------------------------------------------------------
# Consumption tax (§8 Decision)


@pytest.mark.parametrize(
    ("month", "rate"),
    [
        ("2011-01", Fraction(5, 100)),
        ("2014-03", Fraction(5, 100)),
        ("2014-04", Fraction(8, 100)),
        ("2019-09", Fraction(8, 100)),
        ("2019-10", Fraction(10, 100)),
        ("2099-12", Fraction(10, 100)),
    ],
)
def test_consumption_tax_is_the_rate_in_force_in_the_usage_month(
    month: str, rate: Fraction
) -> None:
    """§8 Decision: 5% to 2014-03, 8% from 2014-04, 10% from 2019-10."""
    assert consumption_tax_rate(YearMonth.parse(month)) == rate


# ---------------------------------------------------------------------------------------------
# 2011


@pytest.mark.parametrize(
    ("gross", "lines", "expected_fee"),
    [
        pytest.param(10_000, 10, 500, id="average-1000-five-percent"),
        pytest.param(6_000, 10, 300, id="average-600-exactly-five-percent"),
        pytest.param(5_999, 10, 300, id="average-599.9-30-yen-per-line"),
        pytest.param(5_000, 10, 300, id="average-500-30-yen-per-line"),
        pytest.param(525, 1, 30, id="one-line-30-yen"),
        pytest.param(300, 3, 90, id="three-lines-90-yen"),
        pytest.param(1_001, 1, 50, id="five-percent-50.05-rounded-down"),
        pytest.param(1_019, 1, 50, id="five-percent-50.95-rounded-down"),
    ],
)
def test_2011_fee_is_five_percent_or_30_yen_per_line_under_600_before_tax(
    gross: int, lines: int, expected_fee: int
) -> None:
    """§8 (2011) and its Decision: 5% of the price; where the average per line is under 600
    yen, 30 yen per line instead — before tax, with 5% consumption tax on top (rounded down)."""
    for month in ("2011-07", "2012-05"):  # unchanged through May 2012
        assert fee(month, gross, lines) == (expected_fee, tax_of(expected_fee, month))


def test_the_2011_31_5_yen_is_30_yen_plus_5_percent_tax_never_taxed_twice() -> None:
    """§8 Decision: the source's "31.5 yen per line" is 30 yen + 5% tax.  Computed from the
    rule: one line pays 30 + ⌊1.5⌋ = 31 yen in all; two lines pay 60 + 3 = 63 = 2 × 31.5."""
    one_fee, one_tax = fee("2011-07", 300, 1)
    assert (one_fee, one_tax) == (PER_LINE_2011, int(PER_LINE_2011 * RATE_2011))
    assert one_fee + one_tax == 31
    two_fee, two_tax = fee("2011-07", 600, 2)
    assert two_fee + two_tax == 63 == 2 * Fraction(63, 2)


def test_fee_for_answers_the_fee_the_tax_and_the_exact_average_per_line() -> None:
    """§8: the tier is chosen by the exact average billed amount per access line."""
    assert fee_for(DEFAULT_SCHEDULE, YearMonth(2011, 7), 3_001, 3) == Fee(
        fee=150, tax=7, average=Fraction(3_001, 3)
    )
    assert fee_for(DEFAULT_SCHEDULE, YearMonth(2011, 7), 1_001, 3) == Fee(
        fee=90, tax=4, average=Fraction(1_001, 3)
    )


# ---------------------------------------------------------------------------------------------
# From June 2012


@pytest.mark.parametrize(
    ("gross", "lines", "expected_fee"),
    [
        # up to 900: the existing (2011) fee
        pytest.param(500, 1, 30, id="average-500-30-yen"),
        pytest.param(800, 1, 40, id="average-800-5pct"),
        pytest.param(900, 1, 45, id="average-900-5pct"),
        # 901–1,500: the configured flat fee per line (50)
        pytest.param(901, 1, 50, id="average-901-flat"),
        pytest.param(1_801, 2, 100, id="average-900.5-flat-two-lines"),
        pytest.param(1_500, 1, 50, id="average-1500-flat"),
        # 1,501 and over: 3%
        pytest.param(1_501, 1, 45, id="average-1501-3pct-45.03"),
        pytest.param(3_001, 2, 90, id="average-1500.5-3pct-90.03"),
        pytest.param(10_000, 2, 300, id="average-5000-3pct"),
    ],
)
def test_2012_fee_by_average_per_line_before_tax_and_the_tax_apart(
    gross: int, lines: int, expected_fee: int
) -> None:
    """§8 (from June 2012): ≤900 yen the existing fee, 901–1,500 yen the flat fee per line,
    >1,500 yen 3% — before tax; the consumption tax (5% in 2012) is answered apart."""
    assert fee("2012-06", gross, lines, CONFIGURED) == (
        expected_fee,
        tax_of(expected_fee, "2012-06"),
    )


@pytest.mark.parametrize(
    ("month", "tax"),
    [
        pytest.param("2012-06", 2, id="2012-06-5pct"),
        pytest.param("2014-03", 2, id="2014-03-5pct"),
        pytest.param("2014-04", 3, id="2014-04-8pct-3.2"),
        pytest.param("2019-09", 3, id="2019-09-8pct"),
        pytest.param("2019-10", 4, id="2019-10-10pct"),
        pytest.param("2024-12", 4, id="2024-12-10pct"),
    ],
)
def test_consumption_tax_follows_the_usage_month(month: str, tax: int) -> None:
    """§8: the fee is the schedule's (an 800-yen, one-line month: 5% = 40 yen before tax);
    the tax on it is that of the usage month."""
    assert fee(month, 800, 1) == (40, tax)


def test_flat_tier_with_tax_in_each_period() -> None:
    """§8: the configured flat fee per line carries the period's tax too."""
    assert fee("2014-04", 3_000, 3, CONFIGURED) == (150, 12)  # 150 × 8%
    assert fee("2019-10", 3_000, 3, CONFIGURED) == (150, 15)  # 150 × 10%


def test_fee_and_tax_are_rounded_down_never_up() -> None:
    """§8 Decision: the fee is computed exactly and rounded down; the tax is that fee × the
    rate, rounded down — a fee of 0.999... yen is 0."""
    schedule = (
        FeePeriod(since=YearMonth(2024, 1), tiers=(Tier(None, Percent(Fraction(1, 100))),)),
    )
    assert fee("2024-01", 90, 1, schedule) == (0, 0)  # 0.9
    assert fee("2024-01", 199, 1, schedule) == (1, 0)  # 1.99 → 1, tax 0.1 → 0
    assert fee("2024-01", 1_999, 1, schedule) == (19, 1)  # 19.99 → 19, tax 1.9 → 1
    assert fee("2024-01", 2_000, 1, schedule) == (20, 2)


def test_no_fee_on_a_month_where_refunds_outweigh_charges() -> None:
    """§4 and §8: refunds are charged negatively in the month they are recorded; a provider
    whose month nets to zero or less pays no fee (and no tax)."""
    assert fee("2024-01", 0, 1) == (0, 0)
    assert fee("2024-01", -440, 2) == (0, 0)


def test_rules_are_data() -> None:
    """§8 Decision: the schedule is a tiered table given as data; the flat amount set by
    ``set_fee`` takes precedence over a schedule's default."""
    assert Percent(Fraction(3, 100)).fee(1_000, 2, None) == 30
    assert PerLine(Fraction(63, 2)).fee(1_000, 2, None) == 63
    assert Flat(Fraction(40), "x").fee(1_000, 2, None) == 80
    assert Flat(Fraction(40), "x").fee(1_000, 2, Fraction(45)) == 90
    assert Flat(None, "x").fee(1_000, 2, Fraction(45)) == 90
    with pytest.raises(FeeNotConfigured):
        Flat(None, "x").fee(1_000, 2, None)
    rule = SmallProviderRule(Fraction(5, 100), Fraction(30), Fraction(600))
    assert rule.fee(1_198, 2, None) == 60  # average 599: 30 per line
    assert rule.fee(1_300, 2, None) == 65  # average 650: 5%


# ---------------------------------------------------------------------------------------------
# An amount nobody configured


@pytest.mark.parametrize(
    ("gross", "lines"),
    [pytest.param(901, 1, id="average-901"), pytest.param(3_000, 2, id="average-1500")],
)
def test_unconfigured_flat_fee_raises_fee_not_configured(gross: int, lines: int) -> None:
    """§8 Decision: the 2012 flat fee is not stated by the sources; ``fee_for`` raises
    ``FeeNotConfigured`` for a tier that needs it (the settlement turns it into a status)."""
    with pytest.raises(FeeNotConfigured) as caught:
        fee("2024-01", gross, lines)
    assert isinstance(caught.value, MatomeError)
    assert caught.value.code == "fee_not_configured"
    assert caught.value.to_json()["code"] == "fee_not_configured"
    # the other tiers of the same schedule need nothing configured
    assert fee("2024-01", 900 * lines, lines)[0] >= 0
    assert fee("2024-01", 1_501 * lines, lines)[0] > 0
    # ... and the flat amount set by set_fee fills the gap
    answer = fee_for(DEFAULT_SCHEDULE, YearMonth(2024, 1), gross, lines, Fraction(70))
    assert (answer.fee, answer.tax) == (70 * lines, 7 * lines)


def test_month_before_any_schedule_raises() -> None:
    """§8 Decision: the engine refuses rather than invent a fee — also for a month no
    schedule covers."""
    with pytest.raises(FeeNotConfigured):
        fee("2010-12", 1_000, 1)


def test_flat_fee_configured_as_fraction() -> None:
    """§8: a configured amount may be a fraction of a yen; the fee is rounded down."""
    # average 1,000 → 50.5 × 3 lines = 151.5 → 151; tax 15.1 → 15
    assert fee("2024-01", 3_000, 3, schedule_with_flat_fee(Fraction(101, 2))) == (151, 15)


# ---------------------------------------------------------------------------------------------
# Through Engine.settlement

LINE = "CAF0000000001"
LINE2 = "CAF0000000002"
EAST_LINE = "COP00000003"
LINE_KEY = "Ak3y0001"


def _engine(fee_schedule: Sequence[FeePeriod] = DEFAULT_SCHEDULE) -> Engine:
    return Engine.open(":memory:", hash_iterations=TEST_ITERATIONS, fee_schedule=fee_schedule)


def _line_with_id(
    engine: Engine,
    cid: str,
    pid: str,
    *,
    operator: str = "west",
    at: str = "2023-12-01T09:00:00+09:00",
) -> None:
    engine.open_line(
        at=at,
        customer_id=cid,
        operator=operator,
        kind="hikari_next",
        access_key=LINE_KEY,
        line_limit=10_000,
        billing={"method": "customer_number", "number": "0012345678"},
    )
    engine.register_passport(
        at=at,
        customer_id=cid,
        access_key=LINE_KEY,
        passport_id=pid,
        password="Pass1234",
        email="p@example.jp",
        applicant={"name": "Taro", "phone": "06-1234-5678", "contract_holder": True},
        limit=5_000,
        line_auth=False,
    )


def _buy(engine: Engine, at: str, pid: str, provider: str, service: str, quantity: int = 1) -> str:
    return engine.purchase(
        at=at,
        passport_id=pid,
        password="Pass1234",
        provider=provider,
        service=service,
        quantity=quantity,
    ).receipt


def _history(engine: Engine) -> None:
    """Provider A: ``back`` 525 monthly and ``item`` 440 per purchase; provider B: ``anime``
    300 monthly.  January 2024: West line 1 buys back + item from A (965), anime from B; West
    line 2 buys back from A (525): A averages 745 over 2 lines, B 300 over 1.  February: line 1
    buys the item twice more: A averages 965 (the flat tier), B still 300."""
    at = "2023-12-01T09:00:00+09:00"
    for code in ("A", "B"):
        engine.register_provider(
            at=at, provider=code, name=f"{code} Co.", contact="0120", goods="information"
        )
    engine.list_service(
        at=at, provider="A", service="back", name="back", pricing="monthly", price=525
    )
    engine.list_service(
        at=at, provider="A", service="item", name="item", pricing="per_purchase", price=440
    )
    engine.list_service(
        at=at, provider="B", service="anime", name="anime", pricing="monthly", price=300
    )
    _line_with_id(engine, LINE, "pass.0")
    _line_with_id(engine, LINE2, "pass.1")
    buys = [("pass.0", "A", "back"), ("pass.0", "A", "item"), ("pass.0", "B", "anime")]
    buys += [("pass.1", "A", "back")]
    for day, (pid, provider, service) in enumerate(buys, start=10):
        _buy(engine, f"2024-01-{day}T10:00:00+09:00", pid, provider, service)
    # February: line 1 buys the item twice → A: 525 + 440 + 440 + 525 = 1930 over 2 lines
    for day in (10, 11):
        _buy(engine, f"2024-02-{day}T10:00:00+09:00", "pass.0", "A", "item")


def _settled(provider: str, gross: int, lines: int, average: str, fee: int, tax: int) -> Any:
    return {
        "provider": provider,
        "operator": "west",
        "gross": gross,
        "lines": lines,
        "average_per_line": average,
        "fee": fee,
        "tax": tax,
        "net": gross - fee - tax,
        "status": "settled",
    }


@pytest.fixture
def default_engine() -> Iterator[Engine]:
    engine = _engine()
    _history(engine)
    yield engine
    engine.close()


def test_engine_settlement_answers_fee_before_tax_tax_and_net(default_engine: Engine) -> None:
    """§8 via ``Engine.settlement``: per provider and operator, the fee before tax, the tax
    apart (10% in 2024) and net = gross − fee − tax."""
    assert to_json(default_engine.settlement("2024-01")) == [
        # A: 1490 / 2 = 745 → 5% = 74.5 → 74; tax 7.4 → 7
        _settled("A", 1_490, 2, "745.00", 74, 7),
        # B: 300 / 1 → 30 yen per line; tax 3
        _settled("B", 300, 1, "300.00", 30, 3),
    ]


def test_an_unconfigured_flat_fee_is_a_status_and_the_other_providers_still_settle(
    default_engine: Engine,
) -> None:
    """§8 Decision via ``Engine.settlement``: February's A averages 965 yen per line (the
    901–1,500 tier) and nobody set the flat fee: A is listed ``fee_not_configured`` with null
    fee, tax and net; B settles as usual (the month is not refused as a whole)."""
    a, b = to_json(default_engine.settlement("2024-02"))
    assert a == {
        "provider": "A",
        "operator": "west",
        "gross": 1_930,
        "lines": 2,
        "average_per_line": "965.00",
        "fee": None,
        "tax": None,
        "net": None,
        "status": "fee_not_configured",
    }
    assert b == _settled("B", 300, 1, "300.00", 30, 3)


def test_engine_settlement_with_a_configured_default_flat_fee() -> None:
    """§8 via an engine built with ``schedule_with_flat_fee``: the middle tier pays the flat
    fee per line before tax, plus tax; the other tiers are as by default."""
    engine = _engine(fee_schedule=schedule_with_flat_fee(60))
    default = _engine()
    try:
        _history(engine)
        _history(default)
        # A: 1930 over 2 lines = 965 → 60 × 2 = 120; tax 12
        assert to_json(engine.settlement("2024-02")) == [
            _settled("A", 1_930, 2, "965.00", 120, 12),
            _settled("B", 300, 1, "300.00", 30, 3),
        ]
        assert to_json(engine.settlement("2024-01")) == to_json(default.settlement("2024-01"))
    finally:
        engine.close()
        default.close()


def test_set_fee_sets_the_2012_flat_fee_and_west_falls_back_to_east(default_engine: Engine) -> None:
    """§8 Decision: the operator's ``set_fee`` sets the flat fee (before tax) of the 901–1,500
    tier; the schedule is NTT East's, and West lines use it unless West sets its own."""
    default_engine.set_fee(
        at="2024-02-20T00:00:00+09:00", operator="east", effective_from="2024-02", flat_fee=60
    )
    assert to_json(default_engine.settlement("2024-02"))[0] == _settled(
        "A", 1_930, 2, "965.00", 120, 12
    )
    default_engine.set_fee(
        at="2024-02-21T00:00:00+09:00", operator="west", effective_from="2024-02", flat_fee=40
    )
    assert to_json(default_engine.settlement("2024-02"))[0] == _settled(
        "A", 1_930, 2, "965.00", 80, 8
    )


def test_set_fee_is_effective_dated(default_engine: Engine) -> None:
    """§8: the schedule is effective-dated: a flat fee from March leaves February unconfigured;
    a later amount replaces it from its own month only."""
    engine = default_engine
    engine.set_fee(
        at="2024-02-20T00:00:00+09:00", operator="east", effective_from="2024-03", flat_fee=60
    )
    assert to_json(engine.settlement("2024-02"))[0]["status"] == "fee_not_configured"
    for day in (10, 11):
        _buy(engine, f"2024-03-{day}T10:00:00+09:00", "pass.0", "A", "item")
    for day in (10, 11):
        _buy(engine, f"2024-04-{day}T10:00:00+09:00", "pass.0", "A", "item")
    engine.set_fee(
        at="2024-04-20T00:00:00+09:00", operator="east", effective_from="2024-04", flat_fee=70
    )
    march, april = (to_json(engine.settlement(m))[0] for m in ("2024-03", "2024-04"))
    assert (march["fee"], march["tax"], march["status"]) == (120, 12, "settled")
    assert (april["fee"], april["tax"], april["status"]) == (140, 14, "settled")


def test_set_fee_into_a_closed_month_is_month_closed(default_engine: Engine) -> None:
    """docs/design.md (Decision): a settlement of a closed month never changes: ``set_fee``
    with ``effective_from`` in a closed month is ``month_closed`` (and writes nothing)."""
    engine = default_engine
    engine.issue_bills(at="2024-03-01T00:00:00+09:00", month="2024-02")
    with refused(engine, MonthClosed):
        engine.set_fee(
            at="2024-03-05T00:00:00+09:00", operator="east", effective_from="2024-02", flat_fee=60
        )
    with refused(engine, MonthClosed):
        engine.set_fee(
            at="2024-03-05T00:00:00+09:00", operator="west", effective_from="2023-06", flat_fee=60
        )
    assert to_json(engine.settlement("2024-02"))[0]["status"] == "fee_not_configured"
    engine.set_fee(
        at="2024-03-05T00:00:00+09:00", operator="east", effective_from="2024-03", flat_fee=60
    )


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("operator", "north"),
        ("effective_from", "2024-3"),
        ("effective_from", "1999-12"),
        ("effective_from", "2100-01"),
        ("flat_fee", -1),
        ("flat_fee", 100_000_000),
        ("flat_fee", 10**25),
        ("flat_fee", 60.0),
    ],
)
def test_set_fee_refuses_malformed_input(default_engine: Engine, field: str, value: Any) -> None:
    """docs/contract.md "Commands" ``set_fee``: operator east/west, ``YYYY-MM`` within the
    business-time bounds, and a yen amount 0–99,999,999."""
    fields: dict[str, Any] = {
        "at": "2024-02-20T00:00:00+09:00",
        "operator": "east",
        "effective_from": "2024-02",
        "flat_fee": 60,
    }
    fields[field] = value
    before = event_count(default_engine)
    with pytest.raises(InvalidInput):
        default_engine.set_fee(**fields)
    assert event_count(default_engine) == before


def test_settlement_is_per_provider_and_operator() -> None:
    """§8 Decision: East and West lines are settled apart — each with its own lines, average
    and tier, sorted by provider then operator."""
    engine = _engine()
    try:
        _history(engine)
        _line_with_id(engine, EAST_LINE, "east.3", operator="east")
        _buy(engine, "2024-01-20T10:00:00+09:00", "east.3", "A", "item", quantity=4)  # 1,760
        a_east, a_west, b_west = to_json(engine.settlement("2024-01"))
        # East: one line averaging 1,760 → 3%: 52.8 → 52; tax 5
        assert a_east == {
            "provider": "A",
            "operator": "east",
            "gross": 1_760,
            "lines": 1,
            "average_per_line": "1760.00",
            "fee": 52,
            "tax": 5,
            "net": 1_703,
            "status": "settled",
        }
        # West is exactly what it was without the East line
        assert a_west == _settled("A", 1_490, 2, "745.00", 74, 7)
        assert b_west == _settled("B", 300, 1, "300.00", 30, 3)
        totals = to_json(engine.provider_totals("2024-01"))
        assert totals[0] == {"provider": "A", "lines": 3, "amount": 3_250}
    finally:
        engine.close()


def test_east_and_west_flat_fees_are_set_apart() -> None:
    """§8: ``set_fee`` is per operator: West's own amount does not change East's."""
    engine = _engine()
    try:
        _history(engine)
        _line_with_id(engine, EAST_LINE, "east.3", operator="east")
        _buy(engine, "2024-02-20T10:00:00+09:00", "east.3", "A", "item", quantity=2)  # 880
        _buy(engine, "2024-02-21T10:00:00+09:00", "east.3", "B", "anime")  # A 880 (≤ 900)
        _buy(engine, "2024-02-22T10:00:00+09:00", "east.3", "A", "item")  # A 1,320: flat tier
        engine.set_fee(
            at="2024-02-25T00:00:00+09:00", operator="west", effective_from="2024-01", flat_fee=40
        )
        rows = {(r["provider"], r["operator"]): r for r in to_json(engine.settlement("2024-02"))}
        assert rows["A", "east"]["status"] == "fee_not_configured"
        assert (rows["A", "west"]["fee"], rows["A", "west"]["tax"]) == (80, 8)
        engine.set_fee(
            at="2024-02-26T00:00:00+09:00", operator="east", effective_from="2024-02", flat_fee=90
        )
        rows = {(r["provider"], r["operator"]): r for r in to_json(engine.settlement("2024-02"))}
        assert (rows["A", "east"]["fee"], rows["A", "east"]["tax"]) == (90, 9)
        assert (rows["A", "west"]["fee"], rows["A", "west"]["tax"]) == (80, 8)
    finally:
        engine.close()


def test_a_2011_settlement_is_30_yen_per_line_plus_5_percent_tax() -> None:
    """§8 (2011) through the engine: a provider averaging under 600 yen on two West lines pays
    30 yen per line before tax, and the 5% tax of 2011 on top: 60 + 3 = 63 = 2 × 31.5."""
    engine = _engine()
    try:
        at = "2011-01-01T09:00:00+09:00"
        engine.register_provider(
            at=at, provider="C", name="C Co.", contact="0120", goods="information"
        )
        engine.list_service(
            at=at, provider="C", service="news", name="news", pricing="monthly", price=315
        )
        _line_with_id(engine, LINE, "pass.0", at=at)
        _line_with_id(engine, LINE2, "pass.1", at=at)
        _buy(engine, "2011-07-01T10:00:00+09:00", "pass.0", "C", "news")
        _buy(engine, "2011-07-02T10:00:00+09:00", "pass.1", "C", "news")
        (row,) = to_json(engine.settlement("2011-07"))
        assert (row["fee"], row["tax"]) == (2 * PER_LINE_2011, int(2 * PER_LINE_2011 * RATE_2011))
        assert row["fee"] + row["tax"] == 63
        assert row["net"] == 630 - 63
    finally:
        engine.close()


def test_engine_settlement_average_is_a_two_place_decimal_rounded_down() -> None:
    """docs/rules.md §1 and §8: money is never a float — the average per line is a decimal string
    with two places (rounded down), the fee computed from the exact average."""
    engine = _engine()
    try:
        _history(engine)
        _line_with_id(engine, "CAF0000000003", "pass.3", at="2024-03-01T09:00:00+09:00")
        receipt = _buy(engine, "2024-03-02T10:00:00+09:00", "pass.3", "B", "anime")
        # March: B has line 1 (300) and line 3 (300); A has lines 1 and 2 (back 525 each)
        assert [
            (s["provider"], s["average_per_line"]) for s in to_json(engine.settlement("2024-03"))
        ] == [("A", "525.00"), ("B", "300.00")]
        engine.refund(at="2024-03-03T10:00:00+09:00", receipt=receipt, amount=1, reason="goodwill")
        [_, b] = to_json(engine.settlement("2024-03"))
        assert b["gross"] == 599
        assert b["average_per_line"] == "299.50"
        assert (b["fee"], b["tax"], b["net"]) == (60, 6, 533)  # 2 × 30, tax 6
    finally:
        engine.close()


# ---------------------------------------------------------------------------------------------
# Rule 8.2 with every number written out (nothing computed by the code under test): each tier,
# both sides of each bound, the 2011 floor, and the tax of the usage month.


@pytest.mark.parametrize(
    ("month", "gross", "lines", "expected"),
    [
        # 2011 (and up to 900 yen from 2012-06): 30 yen per line under a 600-yen average, else 5%
        pytest.param("2011-07", 1_198, 2, (60, 3), id="2011-average-599-30-per-line"),
        pytest.param("2011-07", 1_200, 2, (60, 3), id="2011-average-600-5pct"),
        pytest.param("2011-07", 24_020, 40, (1_201, 60), id="2011-average-600.5-5pct"),
        pytest.param("2011-07", 2_000, 1, (100, 5), id="2011-average-2000-5pct"),
        pytest.param("2012-06", 599, 1, (30, 1), id="2012-average-599-30-per-line"),
        pytest.param("2012-06", 900, 1, (45, 2), id="2012-average-900-5pct"),
        # 901–1,500 yen: the flat fee per line (50 configured), bounds inclusive
        pytest.param("2012-06", 1_801, 2, (100, 5), id="2012-average-900.5-flat"),
        pytest.param("2012-06", 901, 1, (50, 2), id="2012-average-901-flat"),
        pytest.param("2012-06", 3_000, 2, (100, 5), id="2012-average-1500-flat"),
        # over 1,500 yen: 3%
        pytest.param("2012-06", 3_001, 2, (90, 4), id="2012-average-1500.5-3pct"),
        pytest.param("2012-06", 20_000, 1, (600, 30), id="2012-average-20000-3pct"),
        pytest.param("2014-04", 20_000, 1, (600, 48), id="2014-04-3pct-tax-8pct"),
        pytest.param("2019-10", 20_000, 1, (600, 60), id="2019-10-3pct-tax-10pct"),
    ],
)
def test_rule_8_2_fee_tiers_and_tax_with_the_numbers_written_out(
    month: str, gross: int, lines: int, expected: tuple[int, int]
) -> None:
    """§8 (rules.md 8.1–8.3): the fee before tax and its tax, as literals — so a wrong rate, a
    bound moved by one yen or a wrong tax rate fails here (a test that computed the tax with
    ``consumption_tax_rate`` could not see the last)."""
    assert fee(month, gross, lines, CONFIGURED) == expected
