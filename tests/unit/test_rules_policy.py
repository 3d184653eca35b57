"""Every **Decision** of docs/rules.md is a policy setting, not a hard-wired constant.

These tests switch one setting at a time and check the engine follows it; the defaults are
checked by the rule tests of each section.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime

import pytest

from matome.engine import Engine
from matome.errors import (
    GoodsNotOffered,
    LockedOut,
    RegistrationClosed,
    TooManyPassports,
    WrongPassword,
)
from matome.policy import DEFAULT_POLICY, Policy
from matome.values import TOKYO, Yen
from tests.conftest import TEST_ITERATIONS
from tests.unit.helpers import ITEM, MONTHLY, PW, add_provider, buy, open_line, refused, register

PolicyEngine = Iterator[Engine]


def _engine(policy: Policy) -> Engine:
    return Engine.open(":memory:", policy=policy, hash_iterations=TEST_ITERATIONS)


@pytest.fixture
def separate_billing() -> PolicyEngine:
    engine = _engine(Policy(monthly_once_per_month=False))
    yield engine
    engine.close()


def test_the_defaults_follow_domain_md() -> None:
    """§1 five IDs, §2 5,000 yen and 2024-12-01 JST, §4 once per month, §10 ten failures,
    §1 physical goods from 2012-06-05 JST."""
    assert DEFAULT_POLICY.max_passports == 5
    assert DEFAULT_POLICY.registration_max_limit == Yen(5000)
    assert DEFAULT_POLICY.registration_cutoff == datetime(2024, 12, 1, tzinfo=TOKYO)
    assert DEFAULT_POLICY.monthly_once_per_month is True
    assert DEFAULT_POLICY.lockout_after == 10
    assert DEFAULT_POLICY.physical_goods_from == datetime(2012, 6, 5, tzinfo=TOKYO)


def test_an_operator_billing_each_subscription_separately_charges_a_rebuy_again(
    separate_billing: Engine,
) -> None:
    """§4 patterns 4–5: "a policy flag so that an operator who bills each subscription
    separately can switch it"."""
    engine = separate_billing
    add_provider(engine)
    open_line(engine)
    register(engine)
    first = buy(engine, "2024-02-03T10:00:00+09:00", MONTHLY)
    engine.cancel(at="2024-02-10T10:00:00+09:00", receipt=first.receipt, password=PW)
    again = buy(engine, "2024-02-12T10:00:00+09:00", MONTHLY)
    assert again.charged == Yen(525)


def test_the_registration_cutoff_is_an_effective_dated_setting() -> None:
    """§2 Decision: the cut-off is an effective-dated policy."""
    engine = _engine(Policy(registration_cutoff=datetime(2020, 1, 1, tzinfo=TOKYO)))
    try:
        add_provider(engine, at="2019-01-01T00:00:00+09:00")
        open_line(engine, at="2019-01-01T00:00:00+09:00")
        register(engine, at="2019-12-31T23:59:59+09:00")
        with refused(engine, RegistrationClosed):
            register(engine, "hanako.2", at="2020-01-01T00:00:00+09:00", limit=1)
    finally:
        engine.close()


def test_the_lockout_count_and_the_id_count_are_settings() -> None:
    engine = _engine(Policy(lockout_after=3, max_passports=1))
    try:
        add_provider(engine)
        open_line(engine)
        register(engine)
        with refused(engine, TooManyPassports):
            register(engine, "hanako.2", at="2024-01-06T00:00:00+09:00", limit=1)
        for n in range(3):
            with pytest.raises(WrongPassword):
                buy(engine, f"2024-02-01T10:0{n}:00+09:00", ITEM, password="Wrong123")
        with refused(engine, LockedOut):
            buy(engine, "2024-02-01T11:00:00+09:00", ITEM)
    finally:
        engine.close()


def test_the_date_east_sells_physical_goods_from_is_a_setting_west_sells_them_regardless() -> None:
    """§1: NTT East sells physical goods from 2012-06-05 — a dated setting; NTT West's guide
    includes goods, so West lines are not held back by it (contract 2)."""
    engine = _engine(Policy(physical_goods_from=datetime(2020, 1, 1, tzinfo=TOKYO)))
    try:
        add_provider(engine, "G", at="2019-01-01T00:00:00+09:00", goods="physical")
        open_line(engine, "COP00000001", at="2019-01-01T00:00:00+09:00", operator="east")
        open_line(engine, at="2019-01-01T00:00:00+09:00")
        register(engine, "east.1", customer_id="COP00000001", at="2019-01-02T00:00:00+09:00")
        register(engine, at="2019-01-02T00:00:00+09:00")
        with refused(engine, GoodsNotOffered):
            buy(engine, "2019-12-31T23:59:59+09:00", ITEM, provider="G", passport_id="east.1")
        buy(engine, "2019-12-31T23:59:59+09:00", ITEM, provider="G")  # West
        buy(engine, "2020-01-01T00:00:00+09:00", ITEM, provider="G", passport_id="east.1")
    finally:
        engine.close()
