"""Access lines and billing accounts: docs/rules.md §1 (formats, line kinds), §6 (billing
changes)."""

from __future__ import annotations

from typing import Any

import pytest

from matome.engine import Engine
from matome.errors import (
    DuplicateError,
    InvalidInput,
    LimitSumExceeded,
    UnknownLine,
    UnknownProvider,
)
from matome.values import (
    Consolidated,
    CustomerId,
    CustomerNumber,
    Operator,
    PhoneBill,
    Pricing,
    ServiceCode,
    Yen,
)
from tests.unit.helpers import (
    CID,
    CID2,
    EAST_CID,
    PID,
    buy,
    open_line,
    refused,
    register,
    setup_world,
)

PHONE_BILL = {"method": "phone_bill", "number": "06-1234-5678", "cycle_start_day": 6}


def test_open_line_records_the_line_with_its_cap_and_billing_account(engine: Engine) -> None:
    """§1: an access line is identified by its customer ID and has a monthly cap (§3)."""
    result = engine.open_line(
        at="2024-01-01T00:00:00+09:00",
        customer_id=CID,
        operator="west",
        kind="hikari_light",
        access_key="Key12345",
        line_limit=10_000,
        billing=PHONE_BILL,
    )
    assert result.customer_id == CustomerId(CID)
    line = engine.line(CID)
    assert line is not None
    assert line.operator is Operator.WEST
    assert line.line_limit == Yen(10_000)
    assert line.billing == PhoneBill(number="06-1234-5678", cycle_start_day=6)
    assert not line.regulated
    assert dict(line.passports) == {}


def test_an_east_line_may_have_a_cop_customer_id(engine: Engine) -> None:
    """§1: NTT East customer IDs are CAF + 10 digits or COP + 8 digits."""
    open_line(engine, EAST_CID, operator="east", kind="b_flets")
    line = engine.line(EAST_CID)
    assert line is not None
    assert line.operator is Operator.EAST


def test_a_west_line_refuses_a_cop_customer_id(engine: Engine) -> None:
    """§1: NTT West customer IDs are CAF + 10 digits only."""
    with refused(engine, InvalidInput) as info:
        open_line(engine, EAST_CID, operator="west")
    assert "CAF" in info.value.message


@pytest.mark.parametrize("kind", ["b_flets", "flets_adsl", "hikari_light_plus"])
def test_west_lines_can_only_be_hikari_next_or_hikari_light(engine: Engine, kind: str) -> None:
    """§1 "Line kinds": NTT West: Hikari Next, Hikari Light; only East adds the others."""
    with refused(engine, InvalidInput):
        open_line(engine, operator="west", kind=kind)
    open_line(engine, CID2, operator="east", kind=kind)


@pytest.mark.parametrize(
    "kind", ["hikari_next", "hikari_light", "hikari_light_plus", "b_flets", "flets_adsl"]
)
def test_east_lines_may_be_any_of_the_five_kinds(engine: Engine, kind: str) -> None:
    """§1 "Line kinds": East: Hikari Next/Light, Light Plus, B FLET'S, FLET'S ADSL."""
    open_line(engine, operator="east", kind=kind)


def test_an_unknown_line_kind_is_invalid_input(engine: Engine) -> None:
    """§1: only these kinds may hold Passport IDs."""
    with refused(engine, InvalidInput) as info:
        open_line(engine, kind="isdn")
    assert "hikari_next" in info.value.message


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("customer_id", "caf0000000001"),
        ("customer_id", "ＣＡＦ0000000001"),
        ("access_key", "short"),
        ("line_limit", 1000.0),
        ("line_limit", True),
        ("line_limit", -1),
        ("operator", "north"),
        ("billing", {"method": "customer_number", "number": "1012345678"}),
        ("billing", {"method": "customer_number", "number": "0012345678", "extra": 1}),
        ("at", "2024-01-01T00:00:00"),  # naive
    ],
)
def test_open_line_refuses_malformed_input(engine: Engine, field: str, value: Any) -> None:
    """§1: reject anything else with a clear error; docs/contract.md "Command log": a naive time is
    an error."""
    fields: dict[str, Any] = {
        "at": "2024-01-01T00:00:00+09:00",
        "customer_id": CID,
        "operator": "west",
        "kind": "hikari_next",
        "access_key": "Key12345",
        "line_limit": 10_000,
        "billing": PHONE_BILL,
    }
    fields[field] = value
    with refused(engine, InvalidInput):
        engine.open_line(**fields)


def test_opening_a_line_twice_is_a_duplicate(engine: Engine) -> None:
    """§1: the customer ID identifies one line."""
    open_line(engine)
    with refused(engine, DuplicateError):
        open_line(engine, at="2024-02-01T00:00:00+09:00")


def test_commands_on_an_unknown_line_are_unknown_line(engine: Engine) -> None:
    with refused(engine, UnknownLine):
        engine.change_line_limit(at="2024-02-01T00:00:00+09:00", customer_id=CID, line_limit=5000)


def test_lowering_the_line_cap_to_the_sum_of_the_id_limits_is_allowed(engine: Engine) -> None:
    """§3: the invariant is sum of ID limits ≤ line cap (equality holds it)."""
    setup_world(engine, limit=3000)
    engine.change_line_limit(at="2024-02-01T00:00:00+09:00", customer_id=CID, line_limit=3000)
    line = engine.line(CID)
    assert line is not None
    assert line.line_limit == Yen(3000)


# ---------------------------------------------------------------------------------------------
# Billing changes keep the service (§6)


@pytest.mark.parametrize(
    ("reason", "billing"),
    [
        ("renumbering", PHONE_BILL),
        ("billing_phone_change", {**PHONE_BILL, "number": "06-9999-0000"}),
        ("customer_number", {"method": "customer_number", "number": "0087654321"}),
    ],
)
def test_billing_changes_keep_the_service_and_its_subscriptions(
    engine: Engine, reason: str, billing: dict[str, Any]
) -> None:
    """§6: changes to the billing number keep the service: IDs and subscriptions continue."""
    setup_world(engine)
    receipt = buy(engine, "2024-02-01T10:00:00+09:00").receipt
    engine.change_billing(
        at="2024-02-10T10:00:00+09:00", customer_id=CID, billing=billing, reason=reason
    )
    line = engine.line(CID)
    assert line is not None
    assert line.billing == (
        PhoneBill(number=billing["number"], cycle_start_day=billing["cycle_start_day"])
        if billing["method"] == "phone_bill"
        else CustomerNumber(number=billing["number"])
    )
    assert not line.ended
    assert {str(p) for p in line.passports} == {PID}
    sub = engine.subscription(receipt)
    assert sub is not None
    assert sub.active
    # ... and purchases continue.
    buy(engine, "2024-02-11T10:00:00+09:00", "item")


def test_moving_to_wide_area_consolidated_billing_keeps_the_service(engine: Engine) -> None:
    """§6: payment moving to wide-area consolidated billing [広域一括請求] keeps the service."""
    setup_world(engine)
    open_line(engine, CID2)
    receipt = buy(engine, "2024-02-01T10:00:00+09:00").receipt
    engine.change_billing(
        at="2024-02-10T10:00:00+09:00",
        customer_id=CID,
        billing={"method": "consolidated", "representative": CID2},
        reason="wide_area_consolidated",
    )
    line = engine.line(CID)
    assert line is not None
    assert line.billing == Consolidated(representative=CustomerId(CID2))
    sub = engine.subscription(receipt)
    assert sub is not None
    assert sub.active


@pytest.mark.parametrize(
    ("reason", "billing"),
    [
        ("customer_number", PHONE_BILL),
        ("renumbering", {"method": "customer_number", "number": "0087654321"}),
        ("billing_phone_change", {"method": "consolidated", "representative": CID2}),
        ("wide_area_consolidated", {"method": "customer_number", "number": "0087654321"}),
    ],
)
def test_billing_change_reason_must_match_the_billing_method(
    engine: Engine, reason: str, billing: dict[str, Any]
) -> None:
    """§6: each reason names the kind of account it leads to; a mismatch is invalid_input."""
    setup_world(engine)
    open_line(engine, CID2)
    with refused(engine, InvalidInput) as info:
        engine.change_billing(
            at="2024-02-10T10:00:00+09:00", customer_id=CID, billing=billing, reason=reason
        )
    assert reason in info.value.message


def test_unknown_billing_change_reason_is_invalid_input(engine: Engine) -> None:
    setup_world(engine)
    with refused(engine, InvalidInput):
        engine.change_billing(
            at="2024-02-10T10:00:00+09:00", customer_id=CID, billing=PHONE_BILL, reason="whim"
        )


def test_a_line_cannot_be_its_own_consolidated_billing_representative(engine: Engine) -> None:
    """§7: consolidated billing goes to a representative line, not to itself."""
    setup_world(engine)
    with refused(engine, InvalidInput):
        engine.change_billing(
            at="2024-02-10T10:00:00+09:00",
            customer_id=CID,
            billing={"method": "consolidated", "representative": CID},
            reason="wide_area_consolidated",
        )


def test_consolidated_billing_needs_an_existing_representative_line(engine: Engine) -> None:
    setup_world(engine)
    with refused(engine, UnknownLine):
        engine.change_billing(
            at="2024-02-10T10:00:00+09:00",
            customer_id=CID,
            billing={"method": "consolidated", "representative": CID2},
            reason="wide_area_consolidated",
        )


def test_a_representative_must_not_itself_be_consolidated(engine: Engine) -> None:
    """§7: the representative line's own account is the one that bills."""
    open_line(engine, CID2)
    open_line(engine, CID, billing={"method": "consolidated", "representative": CID2})  # CID → CID2
    with refused(engine, InvalidInput):
        open_line(
            engine,
            "CAF0000000003",
            billing={"method": "consolidated", "representative": CID},
        )


def test_lowering_the_line_cap_below_the_sum_of_the_id_limits_is_refused(engine: Engine) -> None:
    """§3: a change that would break "sum of ID limits ≤ line cap" is refused, not clamped."""
    setup_world(engine, limit=3000)
    register(engine, "hanako.2", at="2024-01-06T00:00:00+09:00", limit=2000)
    with refused(engine, LimitSumExceeded):
        engine.change_line_limit(at="2024-02-11T00:00:00+09:00", customer_id=CID, line_limit=4999)
    line = engine.line(CID)
    assert line is not None
    assert line.line_limit == Yen(10_000)


def test_text_that_cannot_be_stored_as_utf8_is_invalid_input(engine: Engine) -> None:
    """docs/contract.md "Command log": anything off in a command is ``invalid_input``; a command log
    line ``"name": "\\ud800"`` must be refused, not crash the run."""
    with refused(engine, InvalidInput):
        engine.register_provider(
            at="2024-01-01T00:00:00+09:00",
            provider="A",
            name="\ud800",
            contact="06-1111-2222",
            goods="information",
        )


# ---------------------------------------------------------------------------------------------
# Providers and their services (§1)


def test_a_provider_code_is_registered_once(engine: Engine) -> None:
    """§1: a provider is identified by its provider code."""
    engine.register_provider(
        at="2024-01-01T00:00:00+09:00", provider="A", name="A Co.", contact="x", goods="information"
    )
    with refused(engine, DuplicateError):
        engine.register_provider(
            at="2024-01-02T00:00:00+09:00", provider="A", name="A2", contact="y", goods="physical"
        )


def test_a_service_is_identified_by_provider_and_service_code(engine: Engine) -> None:
    """§1: a service is identified by (provider, service code), with a price and pricing type;
    another provider may use the same service code."""
    for code in ("A", "B"):
        engine.register_provider(
            at="2024-01-01T00:00:00+09:00",
            provider=code,
            name=f"{code} Co.",
            contact="x",
            goods="information",
        )
        engine.list_service(
            at="2024-01-01T00:00:00+09:00",
            provider=code,
            service="back",
            name="back service",
            pricing="monthly",
            price=525,
        )
    with refused(engine, DuplicateError):
        engine.list_service(
            at="2024-01-02T00:00:00+09:00",
            provider="A",
            service="back",
            name="again",
            pricing="per_purchase",
            price=1,
        )
    provider = engine.provider("A")
    assert provider is not None
    listing = provider.services[ServiceCode("back")]
    assert listing.pricing is Pricing.MONTHLY
    assert listing.price == Yen(525)


@pytest.mark.parametrize(
    ("field", "value"),
    [("pricing", "hourly"), ("price", 525.0), ("price", -1), ("service", "no spaces")],
)
def test_a_listing_needs_a_known_pricing_type_and_whole_yen(
    engine: Engine, field: str, value: Any
) -> None:
    """§4: two pricing types exist, monthly flat and per purchase; §1: money is whole yen."""
    engine.register_provider(
        at="2024-01-01T00:00:00+09:00", provider="A", name="A Co.", contact="x", goods="information"
    )
    fields: dict[str, Any] = {
        "at": "2024-01-01T00:00:00+09:00",
        "provider": "A",
        "service": "back",
        "name": "back service",
        "pricing": "monthly",
        "price": 525,
    }
    fields[field] = value
    with refused(engine, InvalidInput):
        engine.list_service(**fields)


def test_listing_a_service_of_an_unknown_provider_is_unknown_provider(engine: Engine) -> None:
    with refused(engine, UnknownProvider):
        engine.list_service(
            at="2024-01-01T00:00:00+09:00",
            provider="A",
            service="back",
            name="back service",
            pricing="monthly",
            price=525,
        )
