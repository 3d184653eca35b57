"""A provider's service period [サービス利用期間] (docs/rules.md §11, contract 3; rules §11): a
monthly-flat service's ``period_months`` ends the subscription by itself at 00:00 Tokyo on the
1st of the month after its N-th billing month, a per-purchase item's ``period_days`` ends its
access — and contract 2 reads ``list_service`` exactly as before."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from matome.charging import Rule
from matome.commands import parse_command
from matome.engine import Engine
from matome.errors import (
    DuplicateError,
    InvalidInput,
    LimitExceeded,
    NotCancellable,
    RefundExceedsCharge,
)
from matome.events.subscription import CancelReason
from matome.tables import statement_rows, statement_table
from matome.testing.strategies import service_periods
from matome.wire import to_json
from tests.conftest import TEST_ITERATIONS
from tests.unit.helpers import (
    APPLICANT,
    CID,
    KEY,
    MONTHLY,
    PID,
    PROVIDER,
    PW,
    T_PASSPORT,
    T_PROVIDER,
    add_provider,
    buy,
    cancel,
    open_line,
    refused,
)

TRIAL = "trial"
TRIAL_PRICE = 500
PASS = "pass"
PASS_PRICE = 200


@pytest.fixture
def engine3() -> Iterator[Engine]:
    """An engine reading contract 3, with provider ``A``'s ``trial`` (500 yen a month for 3
    months) and ``pass`` (200 yen, 30 days of access), line ``CID`` and Passport ID ``PID``."""
    e = Engine.open(":memory:", hash_iterations=TEST_ITERATIONS, contract=3)
    add_provider(e)
    e.list_service(
        at=T_PROVIDER,
        provider=PROVIDER,
        service=TRIAL,
        name="trial",
        pricing="monthly",
        price=TRIAL_PRICE,
        period_months=3,
    )
    e.list_service(
        at=T_PROVIDER,
        provider=PROVIDER,
        service=PASS,
        name="30-day pass",
        pricing="per_purchase",
        price=PASS_PRICE,
        period_days=30,
    )
    open_line(e)
    e.register_passport(
        at=T_PASSPORT,
        customer_id=CID,
        passport_id=PID,
        password=PW,
        email="taro@example.jp",
        applicant=APPLICANT,
        limit=3000,
        line_auth=False,
        access_key=KEY,
        terms_consent=True,
    )
    yield e
    e.close()


def _charged(engine: Engine, receipt: str, month: str) -> int:
    return sum(c.amount.amount for c in engine.bill(CID, month).charges if c.receipt == receipt)


def _rule(engine: Engine, receipt: str, month: str) -> Rule | None:
    rules = [x.rule for x in engine.audit(CID, month).explanations if x.receipt == receipt]
    return rules[0] if rules else None


def test_period_months_charges_exactly_n_billing_months(engine3: Engine) -> None:
    """§11: ``period_months: 3`` bought on 2024-01-10 is charged January to March in full
    (§4, no pro-rating) and never from April: it ended at 00:00 Tokyo on 04-01."""
    r = buy(engine3, "2024-01-10T12:00:00+09:00", TRIAL).receipt
    months = ["2024-01", "2024-02", "2024-03", "2024-04", "2024-05"]
    assert [_charged(engine3, r, m) for m in months] == [500, 500, 500, 0, 0]
    sub = engine3.subscription(r)
    assert sub is not None
    assert sub.period_ends_at is not None
    assert sub.period_ends_at.isoformat() == "2024-04-01T00:00:00+09:00"
    assert sub.ended_by is CancelReason.PERIOD_ENDED


def test_the_audit_names_a_month_not_charged_because_the_period_ended(engine3: Engine) -> None:
    """§11: the month after the period is explained by rule ``period_ended``."""
    r = buy(engine3, "2024-01-10T12:00:00+09:00", TRIAL).receipt
    assert _rule(engine3, r, "2024-03") is Rule.MONTHLY_ACTIVE
    assert _rule(engine3, r, "2024-04") is Rule.PERIOD_ENDED
    (x,) = [x for x in engine3.audit(CID, "2024-04").explanations if x.receipt == r]
    assert not x.charged
    assert "service period ended on 2024-04-01" in x.why
    timeline = engine3.audit(CID, "2024-04").timeline
    assert timeline is not None
    (row,) = [row for row in timeline.rows if row.receipt == r]
    assert row.cancelled_by == "period_ended"


def test_the_period_counts_tokyo_months_from_the_purchase(engine3: Engine) -> None:
    """§11, §4: months are Tokyo's — bought at 00:30 Tokyo on 2024-02-01 (still January in
    UTC), a three-month period is February to April."""
    r = buy(engine3, "2024-01-31T15:30:00+00:00", TRIAL).receipt
    months = ["2024-01", "2024-02", "2024-04", "2024-05"]
    assert [_charged(engine3, r, m) for m in months] == [0, 500, 500, 0]
    sub = engine3.subscription(r)
    assert sub is not None
    assert sub.period_ends_at is not None
    assert sub.period_ends_at.isoformat() == "2024-05-01T00:00:00+09:00"


def test_a_customers_earlier_cancellation_overrides_the_period(engine3: Engine) -> None:
    """§11: cancelled on 2024-02-10, a three-month period is charged January and February."""
    r = buy(engine3, "2024-01-10T12:00:00+09:00", TRIAL).receipt
    cancel(engine3, "2024-02-10T12:00:00+09:00", r)
    sub = engine3.subscription(r)
    assert sub is not None
    assert sub.ended_by is CancelReason.CUSTOMER
    months = ["2024-01", "2024-02", "2024-03", "2024-04"]
    assert [_charged(engine3, r, m) for m in months] == [500, 500, 0, 0]
    assert _rule(engine3, r, "2024-03") is Rule.CANCELLED_BEFORE_MONTH


def test_cancelling_after_the_period_ended_is_not_cancellable(engine3: Engine) -> None:
    """§11: the period's end is a cancellation; cancelling later is refused as for a cancelled
    subscription (``not_cancellable``), from 00:00 Tokyo on the 1st — and a moment before is
    still a customer's cancellation in March."""
    r = buy(engine3, "2024-01-10T12:00:00+09:00", TRIAL).receipt
    with refused(engine3, NotCancellable) as e:
        cancel(engine3, "2024-04-01T00:00:00+09:00", r)
    assert "service period ended" in str(e.value)
    r2 = buy(engine3, "2024-04-01T00:00:00+09:00", TRIAL).receipt
    cancel(engine3, "2024-06-30T23:59:59+09:00", r2)
    assert _charged(engine3, r2, "2024-06") == 500


def test_a_service_whose_period_ended_may_be_bought_again(engine3: Engine) -> None:
    """§11, §4 (4.7): once its period ended the subscription is no longer held — buying the
    service again is not ``duplicate``, and it is charged from its own purchase month."""
    buy(engine3, "2024-01-10T12:00:00+09:00", TRIAL)
    with refused(engine3, DuplicateError):
        buy(engine3, "2024-03-31T23:59:59+09:00", TRIAL)
    r = buy(engine3, "2024-04-02T09:00:00+09:00", TRIAL).receipt
    assert _charged(engine3, r, "2024-04") == 500


def test_the_spend_check_does_not_count_a_month_after_the_period(engine3: Engine) -> None:
    """§3 with §11: the Passport ID's spend in the month after the period does not hold the
    ended subscription's price."""
    engine3.change_passport_limit(
        at="2024-01-06T00:00:00+09:00", passport_id=PID, access_key=KEY, limit=600
    )
    buy(engine3, "2024-01-10T12:00:00+09:00", TRIAL)
    with refused(engine3, LimitExceeded):
        buy(engine3, "2024-03-10T12:00:00+09:00", MONTHLY)
    r = buy(engine3, "2024-04-10T12:00:00+09:00", MONTHLY).receipt
    assert _charged(engine3, r, "2024-04") == 525


def test_period_days_shows_the_access_end_and_changes_no_charge(engine3: Engine) -> None:
    """§11: a per-purchase item with ``period_days: 30`` is charged once, in its month; the
    bill's charge and the statement show the day its access ends."""
    r = buy(engine3, "2024-01-20T12:00:00+09:00", PASS, quantity=2).receipt
    assert [_charged(engine3, r, m) for m in ("2024-01", "2024-02")] == [400, 0]
    (row,) = [row for row in engine3.statement(CID, "2024-01").rows if row.receipt == r]
    assert row.ends_on == date(2024, 2, 19)
    assert to_json(row)["ends_on"] == "2024-02-19"
    (charge,) = [c for c in engine3.bill(CID, "2024-01").charges if c.receipt == r]
    assert charge.ends_on == date(2024, 2, 19)


def test_a_purchase_without_a_period_shows_no_end(engine3: Engine) -> None:
    """Bills without a service period keep their exact JSON (no ``ends_on`` member)."""
    r = buy(engine3, "2024-01-20T12:00:00+09:00", MONTHLY).receipt
    (charge,) = [c for c in engine3.bill(CID, "2024-01").charges if c.receipt == r]
    assert "ends_on" not in to_json(charge)


def test_the_period_is_fixed_at_purchase_and_refunds_are_capped_by_it(engine3: Engine) -> None:
    """§11 with §4: a refund after the period is capped by the N months charged."""
    r = buy(engine3, "2024-01-10T12:00:00+09:00", TRIAL).receipt
    with refused(engine3, RefundExceedsCharge):
        engine3.refund(at="2024-06-01T10:00:00+09:00", receipt=r, amount=1501, reason="x")
    engine3.refund(at="2024-06-01T10:00:00+09:00", receipt=r, amount=1500, reason="all")


# ---------------------------------------------------------------------------------------------
# What list_service accepts


LISTING: dict[str, Any] = {
    "command": "list_service",
    "at": T_PROVIDER,
    "provider": PROVIDER,
    "service": TRIAL,
    "name": "trial",
    "pricing": "monthly",
    "price": 500,
}


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"period_months": 0}, "period_months must be a whole number 1–120"),
        ({"period_months": 121}, "period_months must be a whole number 1–120"),
        ({"period_months": True}, "period_months must be a whole number"),
        ({"period_days": 30}, "period_days is for a per-purchase item"),
        ({"pricing": "per_purchase", "period_months": 3}, "period_months is for a monthly"),
        ({"pricing": "per_purchase", "period_days": 0}, "period_days must be a whole number"),
    ],
)
def test_a_period_that_does_not_fit_its_pricing_is_invalid_input(
    changes: dict[str, Any], message: str
) -> None:
    """§11: ``period_months`` (1–120) is for monthly-flat services, ``period_days`` (1–3660)
    for per-purchase items."""
    with pytest.raises(InvalidInput, match=message):
        parse_command({**LISTING, **changes}, contract=3)


@pytest.mark.parametrize("field", ["period_months", "period_days"])
def test_contract_2_refuses_a_period_as_an_unknown_field(field: str) -> None:
    """§11: contract 2 reads ``list_service`` as it always did — a period is an unknown field,
    refused in the very words of any other unknown field."""
    with pytest.raises(InvalidInput) as unknown:
        parse_command({**LISTING, "colour": 3}, contract=2)
    with pytest.raises(InvalidInput) as period:
        parse_command({**LISTING, field: 3}, contract=2)
    assert str(period.value) == str(unknown.value).replace("colour", field)


def test_a_contract_2_engine_refuses_a_period(engine: Engine) -> None:
    """§11: the Python API under contract 2 refuses the field too (``invalid_input``)."""
    add_provider(engine)
    with refused(engine, InvalidInput):
        engine.list_service(**{k: v for k, v in LISTING.items() if k != "command"}, period_months=3)


@given(pricing=st.sampled_from(["monthly", "per_purchase"]), data=st.data())
def test_any_service_period_is_read_by_contract_3_only(pricing: str, data: st.DataObject) -> None:
    """§11: every period the strategies draw is a contract-3 listing; contract 2 refuses any
    given period as an unknown field."""
    period = data.draw(service_periods(pricing))
    listing = {**LISTING, "pricing": pricing, **period}
    parsed = parse_command(listing, contract=3)
    assert (parsed.period_months, parsed.period_days) == (  # type: ignore[attr-defined]
        period.get("period_months"),
        period.get("period_days"),
    )
    if period:
        with pytest.raises(InvalidInput, match="unknown"):
            parse_command(listing, contract=2)


def test_the_statement_table_shows_the_access_end_only_when_there_is_one(engine3: Engine) -> None:
    """§11: the usage statement as a person reads it (``matome statement``) gains an ``ends``
    column on a page with a period, and no page without one changes."""
    buy(engine3, "2024-01-20T12:00:00+09:00", MONTHLY)
    plain = statement_table(engine3.statement(CID, "2024-01"))
    assert "ends" not in plain.splitlines()[1]
    assert statement_rows(engine3.statement(CID, "2024-01"))[0][-1] == "reason"
    buy(engine3, "2024-01-21T12:00:00+09:00", PASS)
    page = statement_table(engine3.statement(CID, "2024-01"))
    assert "ends" in page.splitlines()[1]
    assert "2024-02-20" in page
