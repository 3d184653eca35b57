"""Closing a billing month (``issue_bills``) and ``month_closed``: docs/rules.md §7.

A month is closed only after it has ended in Tokyo time; closing it again is accepted and
changes nothing; closing a month closes every month before it; afterwards any command whose
business time falls in a closed month is refused (``month_closed``).
"""

from __future__ import annotations

from typing import Any

import pytest

from matome.commands import COMMANDS
from matome.engine import Engine
from matome.errors import InvalidInput, MonthClosed
from matome.values import YearMonth
from matome.wire import to_json
from tests.unit.helpers import (
    CID,
    ITEM,
    KEY,
    MONTHLY,
    MONTHLY2,
    PID,
    PW,
    WRONG,
    WRONG_KEY,
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


def test_a_month_cannot_be_closed_before_it_has_ended_in_tokyo(engine: Engine) -> None:
    """§7: closing before the month has ended is ``invalid_input``."""
    setup_world(engine)
    with refused(engine, InvalidInput):
        engine.issue_bills(at="2024-02-29T23:59:59+09:00", month="2024-02")
    with refused(engine, InvalidInput):
        engine.issue_bills(at="2024-02-29T14:59:59+00:00", month="2024-02")  # 23:59:59 JST
    with refused(engine, InvalidInput):
        engine.issue_bills(at="2024-02-10T00:00:00+09:00", month="2024-03")  # a future month
    assert engine.closed_through() is None


def test_a_month_can_be_closed_from_tokyo_midnight_after_it(engine: Engine) -> None:
    """§7: the month has ended at 00:00 JST on the 1st of the next month (15:00 UTC before)."""
    setup_world(engine)
    result = engine.issue_bills(at="2024-02-29T15:00:00+00:00", month="2024-02")
    assert result.month == YearMonth(2024, 2)
    assert result.closed == (YearMonth(2024, 2),)
    assert engine.closed_through() == YearMonth(2024, 2)


def test_closing_a_closed_month_again_is_accepted_and_changes_nothing(engine: Engine) -> None:
    """§7: closing a closed month again is accepted and changes nothing."""
    setup_world(engine)
    buy(engine, "2024-02-10T10:00:00+09:00", MONTHLY)
    engine.issue_bills(at="2024-03-01T00:00:00+09:00", month="2024-02")
    before = event_count(engine)
    again = engine.issue_bills(at="2024-03-05T00:00:00+09:00", month="2024-02")
    assert again.closed == ()
    assert event_count(engine) == before
    assert engine.closed_through() == YearMonth(2024, 2)


def test_closing_an_earlier_month_after_a_later_one_changes_nothing(engine: Engine) -> None:
    """§7 Decision: closing a month closes all before it, so the earlier one is closed already."""
    setup_world(engine)
    engine.issue_bills(at="2024-04-01T00:00:00+09:00", month="2024-03")
    before = event_count(engine)
    result = engine.issue_bills(at="2024-04-02T00:00:00+09:00", month="2024-01")
    assert result.closed == ()
    assert event_count(engine) == before
    assert engine.closed_through() == YearMonth(2024, 3)


def test_issue_bills_needs_a_yyyy_mm_month(engine: Engine) -> None:
    with refused(engine, InvalidInput):
        engine.issue_bills(at="2024-04-01T00:00:00+09:00", month="2024-3")
    with refused(engine, InvalidInput):
        engine.issue_bills(at="2024-04-01T00:00:00+09:00", month="2024-13")


COMMANDS_DATED_IN_FEBRUARY: list[tuple[str, Any]] = [
    ("purchase", lambda e, at, r: buy(e, at, ITEM)),
    ("purchase with a wrong password", lambda e, at, r: buy(e, at, ITEM, password=WRONG)),
    ("cancel", lambda e, at, r: cancel(e, at, r)),
    ("cancel with a wrong password", lambda e, at, r: cancel(e, at, r, password=WRONG)),
    ("refund", lambda e, at, r: e.refund(at=at, receipt=r, amount=1, reason="x")),
    ("regulate_line", lambda e, at, r: e.regulate_line(at=at, customer_id=CID)),
    (
        "lift_regulation",
        lambda e, at, r: e.lift_regulation(at=at, customer_id=CID, channel="written"),
    ),
    (
        "change_line_limit",
        lambda e, at, r: e.change_line_limit(at=at, customer_id=CID, line_limit=9000),
    ),
    ("change_line", lambda e, at, r: e.change_line(at=at, customer_id=CID, change="cancellation")),
    (
        "change_billing",
        lambda e, at, r: e.change_billing(
            at=at,
            customer_id=CID,
            billing={"method": "customer_number", "number": "0087654321"},
            reason="customer_number",
        ),
    ),
    (
        "change_passport_limit",
        lambda e, at, r: e.change_passport_limit(at=at, passport_id=PID, access_key=KEY, limit=1),
    ),
    (
        "change_passport_details",
        lambda e, at, r: e.change_passport_details(
            at=at, passport_id=PID, access_key=KEY, email="new@example.jp"
        ),
    ),
    (
        "delete_passport",
        lambda e, at, r: e.delete_passport(at=at, passport_id=PID, access_key=KEY),
    ),
    (
        "reset_password",
        lambda e, at, r: e.reset_password(
            at=at, passport_id=PID, password="New12345", channel="phone"
        ),
    ),
    (
        "set_notification",
        lambda e, at, r: e.set_notification(
            at=at,
            customer_id=CID,
            access_key=KEY,
            provider="A",
            notify=True,
            consent=True,
            channel="web",
        ),
    ),
    ("register_passport", lambda e, at, r: register(e, "new.2", at=at, limit=1)),
    (
        "register_passport with a wrong access key",
        lambda e, at, r: register(e, "new.2", at=at, limit=1, access_key=WRONG_KEY),
    ),
    ("open_line", lambda e, at, r: open_line(e, "CAF0000000005", at=at)),
    ("register_provider", lambda e, at, r: add_provider(e, "NEW", at=at)),
    (
        "list_service",
        lambda e, at, r: e.list_service(
            at=at, provider="A", service="new", name="new", pricing="monthly", price=1
        ),
    ),
    (
        "set_fee",
        lambda e, at, r: e.set_fee(at=at, operator="east", effective_from="2024-04", flat_fee=1),
    ),
    (
        "erase_personal_data",
        lambda e, at, r: e.erase_personal_data(at=at, passport_id=PID, reason="本人からの請求"),
    ),
]
#: The one command a closed month does not refuse: closing (again) is how months are closed.
NOT_MONTH_CLOSED = {"issue_bills"}


def test_the_closed_month_cases_cover_every_registered_command() -> None:
    """The list above is kept by hand (each case needs its own arguments); a command added to
    ``matome.commands.COMMANDS`` without a case here fails this test."""
    named = {name.split(" ")[0] for name, _ in COMMANDS_DATED_IN_FEBRUARY}
    assert named == set(COMMANDS) - NOT_MONTH_CLOSED


@pytest.mark.parametrize(
    "command", [pytest.param(c, id=name) for name, c in COMMANDS_DATED_IN_FEBRUARY]
)
def test_any_command_dated_in_a_closed_month_is_month_closed(engine: Engine, command: Any) -> None:
    """§7: after closing, any command whose business time falls in that month is refused —
    before its credentials are judged (a wrong password is not counted, contract 2's order)."""
    setup_world(engine)
    receipt = buy(engine, "2024-02-01T10:00:00+09:00", MONTHLY).receipt
    engine.issue_bills(at="2024-03-01T00:00:00+09:00", month="2024-02")
    with refused(engine, MonthClosed):
        command(engine, "2024-02-20T10:00:00+09:00", receipt)
    passport = engine.passport(PID)
    assert passport is not None
    assert passport.consecutive_failures == 0


def test_commands_dated_in_a_month_before_the_closed_one_are_month_closed(
    engine: Engine,
) -> None:
    """§7 Decision: closing a month closes all before it; an earlier month is closed too."""
    add_provider(engine)
    open_line(engine, at="2023-12-01T00:00:00+09:00")
    engine.issue_bills(at="2024-03-01T00:00:00+09:00", month="2024-02")
    with refused(engine, MonthClosed):
        register(engine, at="2024-01-15T00:00:00+09:00")
    with refused(engine, MonthClosed):
        engine.change_line_limit(at="2023-12-15T00:00:00+09:00", customer_id=CID, line_limit=1)


def test_commands_dated_after_the_closed_month_are_accepted(engine: Engine) -> None:
    setup_world(engine)
    receipt = buy(engine, "2024-02-01T10:00:00+09:00", MONTHLY).receipt
    engine.issue_bills(at="2024-03-01T00:00:00+09:00", month="2024-02")
    engine.cancel(at="2024-03-01T00:00:00+09:00", receipt=receipt, password=PW)
    buy(engine, "2024-03-02T10:00:00+09:00", ITEM)


def test_the_closed_month_of_a_command_is_its_tokyo_month(engine: Engine) -> None:
    """§7 + §4: a command at 00:30 JST on 1 March written in UTC (29 Feb 15:30Z) is a March
    command: accepted after February closed; 14:59:59Z is still February."""
    setup_world(engine)
    engine.issue_bills(at="2024-03-01T00:00:00+09:00", month="2024-02")
    with refused(engine, MonthClosed):
        buy(engine, "2024-02-29T14:59:59+00:00", ITEM)
    buy(engine, "2024-02-29T15:30:00+00:00", ITEM)


def test_a_month_closing_issues_the_bills_of_the_month(engine: Engine) -> None:
    """§7: closing a month makes its bills immutable records (status ``issued``)."""
    setup_world(engine)
    buy(engine, "2024-02-10T10:00:00+09:00", MONTHLY)
    assert to_json(engine.bill(CID, "2024-02"))["status"] == "preview"
    before = event_count(engine)
    engine.issue_bills(at="2024-03-01T00:00:00+09:00", month="2024-02")
    assert "matome.calendar.MonthsClosed" in topics_since(engine, before)
    bill = to_json(engine.bill(CID, "2024-02"))
    assert bill["status"] == "issued"
    assert bill["subtotal"] == 525


def test_the_guides_worked_example_bills_one_row_per_provider(engine: Engine) -> None:
    """§7 worked example: A "back service" 525; B "anime 1" 300 + "anime 2" 300 → rows A 525,
    B 600; collect-on-behalf subtotal 1,125."""
    setup_world(engine)
    add_provider(engine, "B")
    engine.list_service(
        at="2024-01-01T00:00:00+09:00",
        provider="B",
        service="anime2",
        name="anime 2",
        pricing="monthly",
        price=300,
    )
    buy(engine, "2024-02-10T10:00:00+09:00", MONTHLY)
    buy(engine, "2024-02-10T10:01:00+09:00", MONTHLY2, provider="B")
    buy(engine, "2024-02-10T10:02:00+09:00", "anime2", provider="B")
    bill = to_json(engine.bill(CID, "2024-02"))
    assert [(r["provider"], r["amount"]) for r in bill["rows"]] == [("A", 525), ("B", 600)]
    assert bill["subtotal"] == 1125


def test_a_months_charges_go_to_the_billing_account_in_force_at_its_end(engine: Engine) -> None:
    """§7 Decision: month M's charges go to the account in force at the end of M; a
    customer-number bill is issued around the 17th of M+1, a phone bill around the 22nd."""
    setup_world(engine)
    buy(engine, "2024-02-03T10:00:00+09:00", MONTHLY)
    engine.change_billing(
        at="2024-02-20T00:00:00+09:00",
        customer_id=CID,
        billing={"method": "customer_number", "number": "0087654321"},
        reason="customer_number",
    )
    engine.change_billing(
        at="2024-03-01T00:00:00+09:00",  # already March: February's account is the one above
        customer_id=CID,
        billing={"method": "phone_bill", "number": "06-1234-5678", "cycle_start_day": 6},
        reason="billing_phone_change",
    )
    february, march = to_json(engine.bill(CID, "2024-02")), to_json(engine.bill(CID, "2024-03"))
    assert february["billing_account"] == {"method": "customer_number", "number": "0087654321"}
    assert february["issue_date"] == "2024-03-17"
    assert march["billing_account"]["method"] == "phone_bill"
    assert march["issue_date"] == "2024-04-22"
