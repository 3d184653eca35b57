"""Purchases, cancellations, refunds and quantities: docs/rules.md §4 (and §1 for physical
goods)."""

from __future__ import annotations

from typing import Any

import pytest

from matome.engine import Engine
from matome.errors import (
    DuplicateError,
    GoodsNotOffered,
    InvalidInput,
    LimitExceeded,
    NotCancellable,
    RefundExceedsCharge,
    UnknownPassport,
    UnknownProvider,
    UnknownReceipt,
    UnknownService,
)
from matome.events.subscription import CancelReason
from matome.values import PassportId, Pricing, ProviderCode, ServiceCode, YearMonth, Yen
from matome.wire import to_json
from tests.unit.helpers import (
    CID,
    EAST_CID,
    ITEM,
    KEY,
    MONTHLY,
    PID,
    PROVIDER,
    PW,
    add_provider,
    buy,
    cancel,
    event_count,
    open_line,
    refused,
    register,
    setup_world,
    topics_since,
)


def test_a_purchase_answers_its_receipt_and_records_the_subscription(engine: Engine) -> None:
    """§1: a purchase of one service by one Passport ID has a receipt number [申込受付番号]."""
    setup_world(engine)
    result = buy(engine, "2024-02-01T10:00:00+09:00", MONTHLY)
    assert result.receipt
    assert result.price == Yen(525)
    assert result.charged == Yen(525)
    sub = engine.subscription(result.receipt)
    assert sub is not None
    assert sub.passport_id == PassportId(PID)
    assert sub.provider == ProviderCode(PROVIDER)
    assert sub.service == ServiceCode(MONTHLY)
    assert sub.pricing is Pricing.MONTHLY
    assert sub.price == Yen(525)
    assert sub.active


def test_receipts_are_distinct_for_each_purchase(engine: Engine) -> None:
    setup_world(engine)
    receipts = {buy(engine, f"2024-02-0{d}T10:00:00+09:00", ITEM).receipt for d in range(1, 6)}
    assert len(receipts) == 5


def test_purchases_of_unknown_things_are_refused(engine: Engine) -> None:
    setup_world(engine)
    with refused(engine, UnknownPassport):
        buy(engine, "2024-02-01T10:00:00+09:00", passport_id="nobody")
    with refused(engine, UnknownProvider):
        buy(engine, "2024-02-01T10:00:00+09:00", provider="Z")
    with refused(engine, UnknownService):
        buy(engine, "2024-02-01T10:00:00+09:00", "nothing")


def test_a_service_cannot_be_bought_before_it_was_listed(engine: Engine) -> None:
    """Business time decides: a service listed later does not exist yet."""
    setup_world(engine)
    engine.list_service(
        at="2024-03-01T00:00:00+09:00",
        provider=PROVIDER,
        service="later",
        name="later",
        pricing="per_purchase",
        price=100,
    )
    with refused(engine, UnknownService):
        buy(engine, "2024-02-01T10:00:00+09:00", "later")
    buy(engine, "2024-03-01T00:00:00+09:00", "later")


# ---------------------------------------------------------------------------------------------
# Monthly flat (§4)


def test_an_active_monthly_service_cannot_be_bought_again(engine: Engine) -> None:
    """§4: a Passport ID can hold a given monthly-flat service only once at a time."""
    setup_world(engine)
    buy(engine, "2024-02-01T10:00:00+09:00", MONTHLY)
    with refused(engine, DuplicateError):
        buy(engine, "2024-02-02T10:00:00+09:00", MONTHLY)
    with refused(engine, DuplicateError):
        buy(engine, "2024-05-02T10:00:00+09:00", MONTHLY)  # still active months later


def test_the_same_monthly_service_may_be_held_by_two_ids(engine: Engine) -> None:
    """§4: "only once at a time" is per Passport ID."""
    setup_world(engine)
    register(engine, "hanako.2", at="2024-01-06T00:00:00+09:00", password="Hana1234", limit=1000)
    buy(engine, "2024-02-01T10:00:00+09:00", MONTHLY)
    buy(engine, "2024-02-01T10:01:00+09:00", MONTHLY, passport_id="hanako.2", password="Hana1234")


def test_a_cancelled_monthly_service_may_be_bought_again(engine: Engine) -> None:
    """§4: buying it again after cancelling is allowed."""
    setup_world(engine)
    receipt = buy(engine, "2024-02-01T10:00:00+09:00", MONTHLY).receipt
    engine.cancel(at="2024-02-10T10:00:00+09:00", receipt=receipt, password=PW)
    again = buy(engine, "2024-03-10T10:00:00+09:00", MONTHLY)
    assert again.receipt != receipt
    assert again.charged == Yen(525)  # another month: charged


def test_rebuying_a_cancelled_monthly_service_in_the_same_month_is_not_charged_again(
    engine: Engine,
) -> None:
    """§4 patterns 4–5 Decision: charged at most once per (Passport ID, service, month)."""
    setup_world(engine)
    first = buy(engine, "2024-02-03T10:00:00+09:00", MONTHLY)
    engine.cancel(at="2024-02-10T10:00:00+09:00", receipt=first.receipt, password=PW)
    second = buy(engine, "2024-02-12T10:00:00+09:00", MONTHLY)
    engine.cancel(at="2024-02-14T10:00:00+09:00", receipt=second.receipt, password=PW)
    third = buy(engine, "2024-02-20T10:00:00+09:00", MONTHLY)
    assert (first.charged, second.charged, third.charged) == (Yen(525), Yen(0), Yen(0))
    passport = engine.passport(PID)
    assert passport is not None
    assert passport.spend(YearMonth(2024, 2), once_per_month=True) == Yen(525)


def test_pattern_4_cancel_and_rebuy_in_the_next_month_is_charged_once_there(
    engine: Engine,
) -> None:
    """§4 pattern 4: purchase in N+1; in N+2 cancel, then purchase again → N+2 charged once."""
    setup_world(engine)
    first = buy(engine, "2024-02-03T10:00:00+09:00", MONTHLY)
    engine.cancel(at="2024-03-10T10:00:00+09:00", receipt=first.receipt, password=PW)
    again = buy(engine, "2024-03-20T10:00:00+09:00", MONTHLY)
    assert again.charged == Yen(0)  # March is already charged by the first subscription
    passport = engine.passport(PID)
    assert passport is not None
    assert passport.spend(YearMonth(2024, 3), once_per_month=True) == Yen(525)
    assert passport.spend(YearMonth(2024, 4), once_per_month=True) == Yen(525)


def test_rebuy_on_the_first_after_a_first_of_month_cancellation_is_charged(
    engine: Engine,
) -> None:
    """§4 pattern 6 + re-buy: cancelled on the 1st, the old one is not charged that month, so
    buying it again that month is a fresh charge."""
    setup_world(engine)
    first = buy(engine, "2024-01-20T10:00:00+09:00", MONTHLY)
    engine.cancel(at="2024-02-01T09:00:00+09:00", receipt=first.receipt, password=PW)
    again = buy(engine, "2024-02-01T10:00:00+09:00", MONTHLY)
    assert again.charged == Yen(525)


def test_cancel_answers_the_last_charged_month(engine: Engine) -> None:
    """§4: the cancellation month is charged, except a cancellation on the 1st (pattern 6)."""
    setup_world(engine)
    a = buy(engine, "2024-01-20T10:00:00+09:00", MONTHLY).receipt
    b = buy(engine, "2024-01-20T10:01:00+09:00", "anime").receipt
    on_first = engine.cancel(at="2024-03-01T00:30:00+09:00", receipt=a, password=PW)
    on_second = engine.cancel(at="2024-03-02T00:30:00+09:00", receipt=b, password=PW)
    assert on_first.last_charged_month == YearMonth(2024, 2)
    assert on_second.last_charged_month == YearMonth(2024, 3)


def test_cancel_on_the_first_given_in_utc_is_a_first_of_month_cancellation(
    engine: Engine,
) -> None:
    """§4: 2024-02-29T15:30Z is 00:30 on 1 March in Tokyo: March is not charged."""
    setup_world(engine)
    receipt = buy(engine, "2024-01-20T10:00:00+09:00", MONTHLY).receipt
    result = engine.cancel(at="2024-02-29T15:30:00+00:00", receipt=receipt, password=PW)
    assert result.last_charged_month == YearMonth(2024, 2)


def test_purchase_and_cancel_on_the_same_first_is_charged_for_that_month(engine: Engine) -> None:
    """§4: the 1st-of-month exception does not apply on the purchase's own 1st."""
    setup_world(engine)
    receipt = buy(engine, "2024-02-29T15:30:00+00:00", MONTHLY).receipt  # 1 March, 00:30 JST
    result = engine.cancel(at="2024-03-01T12:00:00+09:00", receipt=receipt, password=PW)
    assert result.last_charged_month == YearMonth(2024, 3)


def test_cancel_ends_the_subscription_at_the_cancellation_instant(engine: Engine) -> None:
    setup_world(engine)
    receipt = buy(engine, "2024-02-01T10:00:00+09:00", MONTHLY).receipt
    engine.cancel(at="2024-02-15T10:00:00+09:00", receipt=receipt, password=PW)
    sub = engine.subscription(receipt)
    assert sub is not None
    assert not sub.active
    assert sub.cancel_reason is CancelReason.CUSTOMER
    assert sub.cancelled_at is not None
    assert sub.cancelled_at.isoformat() == "2024-02-15T10:00:00+09:00"


def test_a_per_purchase_item_is_not_cancellable(engine: Engine) -> None:
    """§4: cancelling a per-purchase item is refused (``not_cancellable``)."""
    setup_world(engine)
    receipt = buy(engine, "2024-02-01T10:00:00+09:00", ITEM).receipt
    with refused(engine, NotCancellable) as info:
        engine.cancel(at="2024-02-02T10:00:00+09:00", receipt=receipt, password=PW)
    assert "per-purchase" in info.value.message


def test_an_already_cancelled_subscription_is_not_cancellable(engine: Engine) -> None:
    """§4: cancelling a subscription that is already cancelled is refused."""
    setup_world(engine)
    receipt = buy(engine, "2024-02-01T10:00:00+09:00", MONTHLY).receipt
    engine.cancel(at="2024-02-02T10:00:00+09:00", receipt=receipt, password=PW)
    with refused(engine, NotCancellable):
        engine.cancel(at="2024-02-03T10:00:00+09:00", receipt=receipt, password=PW)


def test_cancelling_an_unknown_receipt_is_unknown_receipt(engine: Engine) -> None:
    setup_world(engine)
    with refused(engine, UnknownReceipt):
        engine.cancel(at="2024-02-03T10:00:00+09:00", receipt="RNOPE", password=PW)


# ---------------------------------------------------------------------------------------------
# Per purchase and refunds (§4)


def test_buying_the_same_item_again_is_charged_again(engine: Engine) -> None:
    """§4 per purchase: each purchase is charged once; buying the same item again is charged."""
    setup_world(engine)
    first = buy(engine, "2024-02-01T10:00:00+09:00", ITEM)
    second = buy(engine, "2024-02-01T10:00:01+09:00", ITEM)
    assert first.charged == second.charged == Yen(300)
    passport = engine.passport(PID)
    assert passport is not None
    assert passport.spend(YearMonth(2024, 2), once_per_month=True) == Yen(600)
    assert passport.spend(YearMonth(2024, 3), once_per_month=True) == Yen(0)


def test_refunds_are_recorded_as_their_own_events(engine: Engine) -> None:
    """§4: the engine records a provider's refund as its own event, never rewriting the past."""
    setup_world(engine)
    receipt = buy(engine, "2024-02-01T10:00:00+09:00", ITEM).receipt
    before = event_count(engine)
    result = engine.refund(at="2024-03-05T10:00:00+09:00", receipt=receipt, amount=100, reason="x")
    assert result.refunded_total == Yen(100)
    assert topics_since(engine, before) == ["matome.subscription.Refunded"]
    sub = engine.subscription(receipt)
    assert sub is not None
    assert sub.price == Yen(300)  # the purchase itself is unchanged
    assert sub.refunded == Yen(100)


def test_refunds_of_a_per_purchase_item_may_add_up_to_its_price(engine: Engine) -> None:
    """§4: refunds of one purchase may add up to what was charged for it (a one-off: its
    amount) ..."""
    setup_world(engine)
    receipt = buy(engine, "2024-02-01T10:00:00+09:00", ITEM).receipt
    engine.refund(at="2024-02-02T10:00:00+09:00", receipt=receipt, amount=100, reason="part")
    result = engine.refund(at="2024-02-03T10:00:00+09:00", receipt=receipt, amount=200, reason="x")
    assert result.refunded_total == Yen(300)


def test_refunds_above_the_price_are_refused(engine: Engine) -> None:
    """§4: ... but never more (``refund_exceeds_charge``)."""
    setup_world(engine)
    receipt = buy(engine, "2024-02-01T10:00:00+09:00", ITEM).receipt
    with refused(engine, RefundExceedsCharge):
        engine.refund(at="2024-02-02T10:00:00+09:00", receipt=receipt, amount=301, reason="x")
    engine.refund(at="2024-02-02T10:00:00+09:00", receipt=receipt, amount=200, reason="part")
    with refused(engine, RefundExceedsCharge):
        engine.refund(at="2024-02-03T10:00:00+09:00", receipt=receipt, amount=101, reason="x")


def test_a_per_purchase_refund_is_capped_by_unit_price_times_quantity(engine: Engine) -> None:
    """§4 (contract 2): a per-purchase item bought in a quantity was charged price ×
    quantity; that is the cap on its refunds."""
    setup_world(engine)
    receipt = buy(engine, "2024-02-01T10:00:00+09:00", ITEM, quantity=3).receipt
    with refused(engine, RefundExceedsCharge):
        engine.refund(at="2024-02-02T10:00:00+09:00", receipt=receipt, amount=901, reason="x")
    result = engine.refund(at="2024-02-02T10:00:00+09:00", receipt=receipt, amount=900, reason="x")
    assert result.refunded_total == Yen(900)


def test_a_monthly_refund_in_its_first_month_is_capped_by_one_months_price(
    engine: Engine,
) -> None:
    """§4 (contract 2): refunds are capped by what was actually charged *so far*: in its
    purchase month a monthly subscription has been charged one month."""
    setup_world(engine)
    receipt = buy(engine, "2024-02-01T10:00:00+09:00", MONTHLY).receipt
    with refused(engine, RefundExceedsCharge):
        engine.refund(at="2024-02-02T10:00:00+09:00", receipt=receipt, amount=526, reason="x")
    engine.refund(at="2024-02-02T10:00:00+09:00", receipt=receipt, amount=525, reason="x")
    with refused(engine, RefundExceedsCharge):
        engine.refund(at="2024-02-03T10:00:00+09:00", receipt=receipt, amount=1, reason="x")


def test_a_monthly_refund_grows_with_the_months_charged_so_far(engine: Engine) -> None:
    """§4 (contract 2): a monthly subscription bought in February has been charged February,
    March and April by April (3 × 525 = 1,575): refunds may add up to that, not more."""
    setup_world(engine)
    receipt = buy(engine, "2024-02-01T10:00:00+09:00", MONTHLY).receipt
    with refused(engine, RefundExceedsCharge):
        engine.refund(at="2024-03-05T10:00:00+09:00", receipt=receipt, amount=1051, reason="x")
    engine.refund(at="2024-03-05T10:00:00+09:00", receipt=receipt, amount=1050, reason="x")
    with refused(engine, RefundExceedsCharge):
        engine.refund(at="2024-03-06T10:00:00+09:00", receipt=receipt, amount=1, reason="x")
    result = engine.refund(at="2024-04-05T10:00:00+09:00", receipt=receipt, amount=525, reason="x")
    assert result.refunded_total == Yen(1575)


def test_a_cancelled_monthly_refund_is_capped_by_its_last_charged_month(engine: Engine) -> None:
    """§4: what was charged so far stops at the last charged month: bought in January,
    cancelled on 1 March (pattern 6: March not charged) → January and February, 1,050 yen,
    however late the refund."""
    setup_world(engine)
    receipt = buy(engine, "2024-01-20T10:00:00+09:00", MONTHLY).receipt
    cancel(engine, "2024-03-01T09:00:00+09:00", receipt)
    with refused(engine, RefundExceedsCharge):
        engine.refund(at="2024-06-01T10:00:00+09:00", receipt=receipt, amount=1051, reason="x")
    engine.refund(at="2024-06-01T10:00:00+09:00", receipt=receipt, amount=1050, reason="x")


def test_a_same_month_repurchase_has_nothing_to_refund_for_its_first_month(
    engine: Engine,
) -> None:
    """§4 (contract 2): a monthly service cancelled and bought again in one month is charged
    once (patterns 4–5); the re-purchase was not charged in that month, so it has nothing to
    refund then — and one month's price once the next month has been charged."""
    setup_world(engine)
    first = buy(engine, "2024-02-03T10:00:00+09:00", MONTHLY).receipt
    cancel(engine, "2024-02-10T10:00:00+09:00", first)
    again = buy(engine, "2024-02-12T10:00:00+09:00", MONTHLY).receipt
    with refused(engine, RefundExceedsCharge):
        engine.refund(at="2024-02-13T10:00:00+09:00", receipt=again, amount=1, reason="x")
    engine.refund(at="2024-02-13T10:00:00+09:00", receipt=first, amount=525, reason="x")
    with refused(engine, RefundExceedsCharge):
        engine.refund(at="2024-03-05T10:00:00+09:00", receipt=again, amount=526, reason="x")
    engine.refund(at="2024-03-05T10:00:00+09:00", receipt=again, amount=525, reason="x")


def test_refund_amounts_must_be_positive_whole_yen(engine: Engine) -> None:
    setup_world(engine)
    receipt = buy(engine, "2024-02-01T10:00:00+09:00", ITEM).receipt
    for amount in (0, -1, 1.5):
        with refused(engine, InvalidInput):
            engine.refund(
                at="2024-02-02T10:00:00+09:00",
                receipt=receipt,
                amount=amount,  # type: ignore[arg-type]  # deliberately bad amounts
                reason="x",
            )


def test_refunding_an_unknown_receipt_is_unknown_receipt(engine: Engine) -> None:
    setup_world(engine)
    with refused(engine, UnknownReceipt):
        engine.refund(at="2024-02-02T10:00:00+09:00", receipt="RNOPE", amount=1, reason="x")


# ---------------------------------------------------------------------------------------------
# Physical goods (§1): NTT West's guide includes goods; NTT East sells them from 2012-06-05


def _physical_world(engine: Engine) -> None:
    add_provider(engine, "G", at="2012-01-01T00:00:00+09:00", goods="physical")
    open_line(engine, EAST_CID, at="2012-01-01T00:00:00+09:00", operator="east", kind="b_flets")
    open_line(engine, CID, at="2012-01-01T00:00:00+09:00", operator="west")
    register(engine, PID, customer_id=EAST_CID, at="2012-01-02T00:00:00+09:00")
    register(engine, "west.1", customer_id=CID, at="2012-01-02T00:00:00+09:00")


def test_physical_goods_are_sold_to_east_lines_from_2012_06_05(engine: Engine) -> None:
    """§1: providers may sell physical goods at NTT East from 2012-06-05."""
    _physical_world(engine)
    result = buy(engine, "2012-06-05T00:00:00+09:00", ITEM, provider="G")
    assert result.charged == Yen(300)


def test_physical_goods_are_not_sold_to_east_lines_before_2012_06_05(engine: Engine) -> None:
    """§1: before 2012-06-05 (Tokyo) physical goods are ``goods_not_offered`` on East lines;
    the boundary is Tokyo midnight, also when the time is given in UTC."""
    _physical_world(engine)
    with refused(engine, GoodsNotOffered):
        buy(engine, "2012-06-04T23:59:59+09:00", ITEM, provider="G")
    with refused(engine, GoodsNotOffered):
        buy(engine, "2012-06-04T14:59:59+00:00", ITEM, provider="G")
    buy(engine, "2012-06-04T15:00:00+00:00", ITEM, provider="G")  # 00:00 JST on 5 June


@pytest.mark.parametrize("at", ["2012-01-03T00:00:00+09:00", "2020-01-01T00:00:00+09:00"])
def test_physical_goods_are_sold_to_west_lines_at_any_time(engine: Engine, at: str) -> None:
    """§1 (contract 2): NTT West's guide includes goods [情報サービス・商品等], so West lines buy
    physical goods at any time — before East's 2012-06-05 widening too."""
    _physical_world(engine)
    result = buy(engine, at, ITEM, provider="G", passport_id="west.1")
    assert result.charged == Yen(300)


def test_information_services_are_sold_to_west_lines(engine: Engine) -> None:
    _physical_world(engine)
    add_provider(engine, "I", at="2012-01-01T00:00:00+09:00")
    buy(engine, "2012-02-01T00:00:00+09:00", ITEM, provider="I", passport_id="west.1")


# ---------------------------------------------------------------------------------------------
# The charges as the bill shows them (§4 through §7's bill document)


def _bill_amounts(engine: Engine, month: str, customer_id: str = CID) -> list[int]:
    return [c["amount"] for c in to_json(engine.bill(customer_id, month))["charges"]]


def test_a_monthly_subscription_is_billed_every_month_from_purchase_to_cancellation(
    engine: Engine,
) -> None:
    """§4 pattern 1 on the bills: N, N+1, N+2 at the full price, nothing before or after."""
    setup_world(engine)
    receipt = buy(engine, "2024-02-20T10:00:00+09:00", MONTHLY).receipt
    engine.cancel(at="2024-04-02T10:00:00+09:00", receipt=receipt, password=PW)
    months = ["2024-01", "2024-02", "2024-03", "2024-04", "2024-05"]
    assert [_bill_amounts(engine, m) for m in months] == [[], [525], [525], [525], []]


def test_a_first_of_month_cancellation_is_not_on_that_months_bill(engine: Engine) -> None:
    """§4 pattern 6 on the bills: purchase in N, cancel on the 1st of N+1 → N only."""
    setup_world(engine)
    receipt = buy(engine, "2024-02-20T10:00:00+09:00", MONTHLY).receipt
    engine.cancel(at="2024-02-29T15:30:00+00:00", receipt=receipt, password=PW)  # 1 March 00:30 JST
    assert _bill_amounts(engine, "2024-02") == [525]
    assert _bill_amounts(engine, "2024-03") == []


def test_a_purchase_and_cancel_on_the_same_first_is_on_that_months_bill(engine: Engine) -> None:
    """§4: the exception to pattern 6, with UTC times whose UTC dates differ."""
    setup_world(engine)
    receipt = buy(engine, "2024-02-29T15:30:00+00:00", MONTHLY).receipt  # 1 March 00:30 JST
    engine.cancel(at="2024-03-01T05:00:00+00:00", receipt=receipt, password=PW)  # 1 March 14:00 JST
    assert _bill_amounts(engine, "2024-02") == []
    assert _bill_amounts(engine, "2024-03") == [525]
    assert _bill_amounts(engine, "2024-04") == []


def test_cancel_and_rebuy_in_one_month_is_billed_once_for_that_month(engine: Engine) -> None:
    """§4 patterns 4–5 on the bills: N+1 and N+2, N+2 once although two subscriptions ran."""
    setup_world(engine)
    first = buy(engine, "2024-02-03T10:00:00+09:00", MONTHLY).receipt
    engine.cancel(at="2024-03-10T10:00:00+09:00", receipt=first, password=PW)
    second = buy(engine, "2024-03-20T10:00:00+09:00", MONTHLY).receipt
    engine.cancel(at="2024-03-25T10:00:00+09:00", receipt=second, password=PW)
    assert _bill_amounts(engine, "2024-02") == [525]
    assert _bill_amounts(engine, "2024-03") == [525]
    assert _bill_amounts(engine, "2024-04") == []


def test_a_per_purchase_item_is_billed_once_in_its_month(engine: Engine) -> None:
    """§4 per purchase: charged once, in the month it was made; again when bought again."""
    setup_world(engine)
    buy(engine, "2024-02-03T10:00:00+09:00", ITEM)
    buy(engine, "2024-02-04T10:00:00+09:00", ITEM)
    assert _bill_amounts(engine, "2024-02") == [300, 300]
    assert _bill_amounts(engine, "2024-03") == []


def test_a_refund_is_charged_negatively_in_the_month_it_is_recorded(engine: Engine) -> None:
    """§4: a refund is its own event, charged (negatively) in its own month; the purchase
    month's bill is not rewritten."""
    setup_world(engine)
    receipt = buy(engine, "2024-02-03T10:00:00+09:00", ITEM).receipt
    engine.refund(at="2024-03-05T10:00:00+09:00", receipt=receipt, amount=100, reason="x")
    assert _bill_amounts(engine, "2024-02") == [300]
    assert _bill_amounts(engine, "2024-03") == [-100]
    assert to_json(engine.bill(CID, "2024-03"))["subtotal"] == -100


# ---------------------------------------------------------------------------------------------
# Quantities of per-purchase items (§4, contract 2)


def test_a_per_purchase_item_is_bought_in_a_quantity_charged_price_times_quantity(
    engine: Engine,
) -> None:
    """§4: a per-purchase item may be bought in a quantity (the guide: 600 yen × 10); the
    amount is unit price × quantity, and the bill and statement show both."""
    setup_world(engine)
    result = buy(engine, "2024-02-03T10:00:00+09:00", ITEM, quantity=10)
    assert (result.price, result.quantity, result.charged) == (Yen(300), 10, Yen(3000))
    sub = engine.subscription(result.receipt)
    assert sub is not None
    assert (sub.quantity, sub.amount) == (10, Yen(3000))
    bill = to_json(engine.bill(CID, "2024-02"))
    (charge,) = bill["charges"]
    assert (charge["unit_price"], charge["quantity"], charge["amount"]) == (300, 10, 3000)
    assert bill["rows"][0]["amount"] == bill["subtotal"] == 3000
    (row,) = to_json(engine.statement(CID, "2024-02"))["rows"]
    assert (row["unit_price"], row["quantity"], row["amount"]) == (300, 10, 3000)


def test_the_quantity_defaults_to_one(engine: Engine) -> None:
    setup_world(engine)
    result = engine.purchase(
        at="2024-02-03T10:00:00+09:00", passport_id=PID, password=PW, provider="A", service=ITEM
    )
    assert (result.quantity, result.charged) == (1, Yen(300))


@pytest.mark.parametrize("quantity", [0, 100, -1, 1.0, True, "2", None])
def test_a_quantity_outside_1_to_99_is_invalid_input(engine: Engine, quantity: Any) -> None:
    """§4: a quantity is a whole number 1–99."""
    setup_world(engine)
    with refused(engine, InvalidInput):
        buy(engine, "2024-02-03T10:00:00+09:00", ITEM, quantity=quantity)


def test_99_is_the_largest_quantity(engine: Engine) -> None:
    setup_world(engine, line_limit=30_000, limit=5000)
    engine.change_passport_limit(
        at="2024-02-01T00:00:00+09:00", passport_id=PID, access_key=KEY, limit=29_700
    )
    assert buy(engine, "2024-02-03T10:00:00+09:00", ITEM, quantity=99).charged == Yen(29_700)


def test_a_monthly_service_is_bought_one_at_a_time(engine: Engine) -> None:
    """docs/design.md (Decision on §4): a monthly-flat service takes no quantity other than 1
    (``invalid_input``)."""
    setup_world(engine)
    with refused(engine, InvalidInput):
        buy(engine, "2024-02-03T10:00:00+09:00", MONTHLY, quantity=2)
    assert buy(engine, "2024-02-03T10:00:00+09:00", MONTHLY, quantity=1).charged == Yen(525)


def test_the_spend_check_counts_price_times_quantity(engine: Engine) -> None:
    """§3 + §4: the month's spend counts a per-purchase item at price × quantity."""
    setup_world(engine, limit=1500)
    with refused(engine, LimitExceeded):
        buy(engine, "2024-02-03T10:00:00+09:00", ITEM, quantity=6)  # 1,800 > 1,500
    buy(engine, "2024-02-03T10:00:00+09:00", ITEM, quantity=4)  # 1,200
    with refused(engine, LimitExceeded):
        buy(engine, "2024-02-03T10:01:00+09:00", ITEM, quantity=2)  # 1,800 > 1,500
    buy(engine, "2024-02-03T10:01:00+09:00", ITEM)  # 1,500
    passport = engine.passport(PID)
    assert passport is not None
    assert passport.spend(YearMonth(2024, 2), once_per_month=True) == Yen(1500)
