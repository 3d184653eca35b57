"""Provider fees for settlement (DOMAIN.md §8): ``matome.fees`` and
``Engine.settlement``.

NTT East's schedule: 2011 — 5% of the price, or 31.5 yen per access line where the provider's
average per line is under 600 yen; from June 2012 — by the average per line, plus consumption
tax: up to 900 yen the existing fee, 901–1,500 yen a flat amount per line (to be configured),
1,501 yen and over 3%.  Fees are rounded down to whole yen.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from fractions import Fraction

import pytest

from matome.engine import Engine
from matome.errors import MatomeError
from matome.fees import (
    DEFAULT_SCHEDULE,
    FeeNotConfigured,
    FeePeriod,
    Flat,
    Percent,
    PerLine,
    SmallProviderRule,
    Tier,
    fee_for,
    schedule_with_flat_fee,
)
from matome.values import YearMonth
from matome.wire import to_json
from tests.conftest import TEST_ITERATIONS

CONFIGURED = schedule_with_flat_fee(50)


def fee(
    month: str, gross: int, lines: int, schedule: Sequence[FeePeriod] = DEFAULT_SCHEDULE
) -> int:
    return fee_for(schedule, YearMonth.parse(month), gross, lines)[0]


# ---------------------------------------------------------------------------------------------
# 2011


@pytest.mark.parametrize(
    ("gross", "lines", "expected"),
    [
        pytest.param(10_000, 10, 500, id="average-1000-five-percent"),
        pytest.param(6_000, 10, 300, id="average-600-exactly-five-percent"),
        pytest.param(5_999, 10, 315, id="average-599.9-per-line"),
        pytest.param(5_000, 10, 315, id="average-500-per-line"),
        pytest.param(525, 1, 31, id="one-line-31.5-rounded-down"),
        pytest.param(300, 3, 94, id="three-lines-94.5-rounded-down"),
        pytest.param(1_001, 1, 50, id="five-percent-50.05-rounded-down"),
        pytest.param(1_019, 1, 50, id="five-percent-50.95-rounded-down"),
    ],
)
def test_2011_fee_is_five_percent_or_31_5_yen_per_line_under_600(
    gross: int, lines: int, expected: int
) -> None:
    """DOMAIN.md §8 (2011): 5% of the price; where the average per line is under 600 yen,
    31.5 yen per line instead — quoted tax-included, rounded down to whole yen."""
    assert fee("2011-07", gross, lines) == expected
    # unchanged through May 2012: the new schedule applies from June 2012 usage
    assert fee("2012-05", gross, lines) == expected


def test_fee_for_answers_the_exact_average_per_line() -> None:
    """DOMAIN.md §8: the tier is chosen by the exact average billed amount per access line."""
    assert fee_for(DEFAULT_SCHEDULE, YearMonth(2011, 7), 3_001, 3) == (150, Fraction(3_001, 3))
    assert fee_for(DEFAULT_SCHEDULE, YearMonth(2011, 7), 1_001, 3) == (94, Fraction(1_001, 3))


# ---------------------------------------------------------------------------------------------
# From June 2012


@pytest.mark.parametrize(
    ("gross", "lines", "expected"),
    [
        # up to 900: the existing (2011) fee, plus 5% consumption tax
        pytest.param(500, 1, 33, id="average-500-31.5-plus-tax-33.075"),
        pytest.param(800, 1, 42, id="average-800-5pct-plus-tax-42"),
        pytest.param(900, 1, 47, id="average-900-5pct-plus-tax-47.25"),
        # 901–1,500: the configured flat fee per line (50) plus tax
        pytest.param(901, 1, 52, id="average-901-flat-52.5"),
        pytest.param(1_801, 2, 105, id="average-900.5-flat-two-lines"),
        pytest.param(1_500, 1, 52, id="average-1500-flat"),
        # 1,501 and over: 3% plus tax
        pytest.param(1_501, 1, 47, id="average-1501-3pct-47.28"),
        pytest.param(3_001, 2, 94, id="average-1500.5-3pct-94.53"),
        pytest.param(10_000, 2, 315, id="average-5000-3pct-315"),
    ],
)
def test_2012_fee_by_average_per_line_plus_consumption_tax(
    gross: int, lines: int, expected: int
) -> None:
    """DOMAIN.md §8 (from June 2012): ≤900 yen the existing fee, 901–1,500 yen the flat fee
    per line, >1,500 yen 3% — plus consumption tax (5% in 2012), rounded down."""
    assert fee("2012-06", gross, lines, CONFIGURED) == expected


@pytest.mark.parametrize(
    ("month", "expected"),
    [
        pytest.param("2012-06", 42, id="2012-06-5pct-tax"),
        pytest.param("2014-03", 42, id="2014-03-5pct-tax"),
        pytest.param("2014-04", 43, id="2014-04-8pct-tax-43.2"),
        pytest.param("2019-09", 43, id="2019-09-8pct-tax"),
        pytest.param("2019-10", 44, id="2019-10-10pct-tax"),
        pytest.param("2024-12", 44, id="2024-12-10pct-tax"),
    ],
)
def test_consumption_tax_follows_the_period_of_the_usage_month(month: str, expected: int) -> None:
    """DOMAIN.md §8: the schedule is effective-dated; tax is that of the usage month's period
    (an 800-yen, one-line month: 40 yen fee plus tax)."""
    assert fee(month, 800, 1) == expected


def test_flat_tier_with_tax_in_each_period() -> None:
    """DOMAIN.md §8: the configured flat fee per line carries the period's tax too."""
    assert fee("2014-04", 3_000, 3, CONFIGURED) == 162  # 150 × 1.08
    assert fee("2019-10", 3_000, 3, CONFIGURED) == 165  # 150 × 1.10


def test_fee_is_rounded_down_never_up() -> None:
    """DOMAIN.md §8 (Decision): computed exactly, tax added exactly, rounded down to whole yen —
    a fee of 0.999... yen is 0."""
    schedule = (
        FeePeriod(
            since=YearMonth(2024, 1),
            tiers=(Tier(None, Percent(Fraction(1, 100))),),
            tax_rate=Fraction(1, 10),
        ),
    )
    assert fee("2024-01", 90, 1, schedule) == 0  # 0.99
    assert fee("2024-01", 91, 1, schedule) == 1  # 1.001
    assert fee("2024-01", 999, 1, schedule) == 10  # 10.989


def test_no_fee_on_a_month_where_refunds_outweigh_charges() -> None:
    """DOMAIN.md §4 and §8: refunds are charged negatively in the month they are recorded; a
    provider whose month nets to zero or less pays no fee."""
    assert fee("2024-01", 0, 1) == 0
    assert fee("2024-01", -440, 2) == 0


def test_rules_are_data() -> None:
    """DOMAIN.md §8 (Decision): the schedule is a tiered table given as data."""
    assert Percent(Fraction(3, 100)).fee(1_000, 2) == 30
    assert PerLine(Fraction(63, 2)).fee(1_000, 2) == 63
    assert Flat(Fraction(40), "x").fee(1_000, 2) == 80
    rule = SmallProviderRule(Fraction(5, 100), Fraction(63, 2), Fraction(600))
    assert rule.fee(1_198, 2) == 63
    assert rule.fee(1_200, 2) == 60


# ---------------------------------------------------------------------------------------------
# An amount nobody configured


@pytest.mark.parametrize(
    ("gross", "lines"),
    [pytest.param(901, 1, id="average-901"), pytest.param(3_000, 2, id="average-1500")],
)
def test_unconfigured_flat_fee_raises(gross: int, lines: int) -> None:
    """DOMAIN.md §8 (Decision): the 2012 flat fee is not stated by the sources; settling a
    month that needs it raises ``FeeNotConfigured`` (``fee_not_configured``)."""
    with pytest.raises(FeeNotConfigured) as caught:
        fee("2024-01", gross, lines)
    assert isinstance(caught.value, MatomeError)
    assert caught.value.code == "fee_not_configured"
    assert caught.value.to_json()["code"] == "fee_not_configured"
    # the other tiers of the same schedule need nothing configured
    assert fee("2024-01", 900 * lines, lines) >= 0
    assert fee("2024-01", 1_501 * lines, lines) > 0


def test_month_before_any_schedule_raises() -> None:
    """DOMAIN.md §8 (Decision): the engine refuses rather than invent a fee — also for a month
    no schedule covers."""
    with pytest.raises(FeeNotConfigured):
        fee("2010-12", 1_000, 1)


def test_flat_fee_configured_as_fraction() -> None:
    """DOMAIN.md §8: a configured amount may be a fraction of a yen; the total is rounded down."""
    # average 1,000 → 50.5 × 3 lines × 1.10 = 166.65
    assert fee("2024-01", 3_000, 3, schedule_with_flat_fee(Fraction(101, 2))) == 166


# ---------------------------------------------------------------------------------------------
# Through Engine.settlement

LINE = "CAF0000000001"
LINE2 = "CAF0000000002"


def _engine(fee_schedule: Sequence[FeePeriod] = DEFAULT_SCHEDULE) -> Engine:
    return Engine.open(":memory:", hash_iterations=TEST_ITERATIONS, fee_schedule=fee_schedule)


def _history(engine: Engine) -> None:
    """Provider A: ``back`` 525 monthly and ``item`` 440 per purchase; provider B: ``anime``
    300 monthly.  January 2024: line 1 buys back + item from A (965), anime from B; line 2
    buys back from A (525): A averages 745 over 2 lines, B 300 over 1.  February: line 1
    buys the item twice more: A averages 965."""
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
    for n, cid in enumerate((LINE, LINE2)):
        engine.open_line(
            at=at,
            customer_id=cid,
            operator="west",
            kind="hikari_next",
            access_key="Ak3y0001",
            line_limit=10_000,
            billing={"method": "customer_number", "number": "0012345678"},
        )
        engine.register_passport(
            at="2023-12-02T09:00:00+09:00",
            customer_id=cid,
            passport_id=f"pass.{n}",
            password="Pass1234",
            email="p@example.jp",
            applicant={"name": "Taro", "phone": "06-1234-5678", "contract_holder": True},
            limit=5_000,
            line_auth=False,
        )
    buys = [("pass.0", "A", "back"), ("pass.0", "A", "item"), ("pass.0", "B", "anime")]
    buys += [("pass.1", "A", "back")]
    for day, (pid, provider, service) in enumerate(buys, start=10):
        engine.purchase(
            at=f"2024-01-{day}T10:00:00+09:00",
            passport_id=pid,
            password="Pass1234",
            provider=provider,
            service=service,
        )
    # February: line 1 buys the item twice → A: 525 + 440 + 440 + 525 = 1930 over 2 lines
    for day in (10, 11):
        engine.purchase(
            at=f"2024-02-{day}T10:00:00+09:00",
            passport_id="pass.0",
            password="Pass1234",
            provider="A",
            service="item",
        )


@pytest.fixture
def default_engine() -> Iterator[Engine]:
    engine = _engine()
    _history(engine)
    yield engine
    engine.close()


def test_engine_settlement_with_the_default_schedule(default_engine: Engine) -> None:
    """DOMAIN.md §8 via ``Engine.settlement``: 2024 usage, averages under 600 → 31.5 yen per
    line plus 10% tax; 600–900 → 5% plus 10% tax; net = gross − fee."""
    assert to_json(default_engine.settlement("2024-01")) == [
        # A: 1490 / 2 = 745 → 5% = 74.5, × 1.10 = 81.95 → 81
        {
            "provider": "A",
            "gross": 1_490,
            "lines": 2,
            "average_per_line": "745.00",
            "fee": 81,
            "net": 1_409,
        },
        # B: 300 / 1 → 31.5 × 1.10 = 34.65 → 34
        {
            "provider": "B",
            "gross": 300,
            "lines": 1,
            "average_per_line": "300.00",
            "fee": 34,
            "net": 266,
        },
    ]


def test_engine_settlement_refuses_an_unconfigured_flat_fee(default_engine: Engine) -> None:
    """DOMAIN.md §8 (Decision) via ``Engine.settlement``: February's A averages 965 yen per
    line (901–1,500): the default schedule cannot settle it."""
    with pytest.raises(FeeNotConfigured) as caught:
        to_json(default_engine.settlement("2024-02"))
    assert caught.value.code == "fee_not_configured"


def test_engine_settlement_with_a_configured_flat_fee() -> None:
    """DOMAIN.md §8 via an engine built with ``schedule_with_flat_fee``: the middle tier pays
    the configured flat fee per line plus tax; the other tiers are as by default."""
    engine = _engine(fee_schedule=schedule_with_flat_fee(60))
    try:
        _history(engine)
        february = to_json(engine.settlement("2024-02"))
        # A: 525 + 440 + 440 + 525 = 1930 over 2 lines = 965 → 60 × 2 × 1.10 = 132
        # B: 300 / 1 → 31.5 × 1.10 = 34.65 → 34
        assert february == [
            {
                "provider": "A",
                "gross": 1_930,
                "lines": 2,
                "average_per_line": "965.00",
                "fee": 132,
                "net": 1_798,
            },
            {
                "provider": "B",
                "gross": 300,
                "lines": 1,
                "average_per_line": "300.00",
                "fee": 34,
                "net": 266,
            },
        ]
        default = _engine()
        try:
            _history(default)
            assert to_json(engine.settlement("2024-01")) == to_json(default.settlement("2024-01"))
        finally:
            default.close()
    finally:
        engine.close()


def test_engine_settlement_average_is_a_two_place_decimal_rounded_down() -> None:
    """DOMAIN.md §1 and §8: money is never a float — the average per line is a decimal string
    with two places (rounded down), the fee computed from the exact average."""
    engine = _engine()
    try:
        _history(engine)
        engine.open_line(
            at="2024-03-01T09:00:00+09:00",
            customer_id="CAF0000000003",
            operator="west",
            kind="hikari_next",
            access_key="Ak3y0001",
            line_limit=10_000,
            billing={"method": "customer_number", "number": "0012345678"},
        )
        engine.register_passport(
            at="2024-03-01T10:00:00+09:00",
            customer_id="CAF0000000003",
            passport_id="pass.3",
            password="Pass1234",
            email="p@example.jp",
            applicant={"name": "Taro", "phone": "06-1234-5678", "contract_holder": True},
            limit=5_000,
            line_auth=False,
        )
        engine.purchase(
            at="2024-03-02T10:00:00+09:00",
            passport_id="pass.3",
            password="Pass1234",
            provider="B",
            service="anime",
        )
        # March: B has line 1 (300) and line 3 (300); A has lines 1 and 2 (back 525 each)
        assert [
            (s["provider"], s["average_per_line"]) for s in to_json(engine.settlement("2024-03"))
        ] == [
            ("A", "525.00"),
            ("B", "300.00"),
        ]
        engine.refund(
            at="2024-03-03T10:00:00+09:00",
            receipt=to_json(engine.bill("CAF0000000003", "2024-03"))["charges"][0]["receipt"],
            amount=1,
            reason="goodwill",
        )
        [_, b] = to_json(engine.settlement("2024-03"))
        assert b["gross"] == 599
        assert b["average_per_line"] == "299.50"
        assert isinstance(b["fee"], int)
        assert b["fee"] == 69  # 2 × 31.5 × 1.10 = 69.3
    finally:
        engine.close()
