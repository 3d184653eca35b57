"""The deciders on their own: pure functions of states and a command, tested with no store.

Each test builds the states a command decides against in memory (by applying events with the
aggregates' own projectors), calls the decider, and reads what it decided: the events it would
record, or the refusal the contract reports (the first of all that apply, by the precedence
table — INTERCHANGE.md "Results").
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from matome import commands as cmd
from matome.aggregates import catalog, ledger, line, passport, subscription
from matome.aggregates.decision import Decision
from matome.errors import (
    REFUSAL_ORDER,
    DuplicateError,
    InvalidInput,
    LimitExceeded,
    LineRegulated,
    MatomeError,
    NotAllowedOnline,
    WrongPassword,
    first_refusal,
    rank,
)
from matome.events import catalog as catalog_ev
from matome.events import line as line_ev
from matome.events import passport as passport_ev
from matome.events import subscription as sub_ev
from matome.policy import DEFAULT_POLICY
from matome.values import (
    Applicant,
    ChangeKind,
    CustomerId,
    CustomerNumber,
    Email,
    Goods,
    LineKind,
    Operator,
    PassportId,
    Pricing,
    ProviderCode,
    ServiceCode,
    YearMonth,
    Yen,
)

CID = CustomerId("CAF0000000001")
PID = PassportId("taro.1")
A = ProviderCode("A")
T0 = datetime.fromisoformat("2024-01-01T09:00:00+09:00")


class PlainCredentials:
    """Credentials for tests: the "hash" is the secret itself (the deciders only compare)."""

    def hash(self, secret: str) -> str:
        return f"plain${secret}"

    def verify(self, secret: str, stored: str) -> bool:
        return stored == f"plain${secret}"


def decision(at: str) -> Decision:
    return Decision(
        at=datetime.fromisoformat(at),
        recorded_at=datetime(2030, 1, 1, tzinfo=UTC),
        policy=DEFAULT_POLICY,
        credentials=PlainCredentials(),
    )


def event(cls: type[Any], stream: Any, version: int, at: datetime = T0, **fields: Any) -> Any:
    return cls(originator_id=stream, originator_version=version, timestamp=at, at=at, **fields)


def a_provider() -> catalog.Provider:
    stream = catalog.provider_id(A)
    state: catalog.Provider | None = catalog.project_provider(
        None,
        [
            event(
                catalog_ev.ProviderRegistered,
                stream,
                1,
                provider=A,
                name="A Co.",
                contact="0120",
                goods=Goods.INFORMATION,
            ),
            event(
                catalog_ev.ServiceListed,
                stream,
                2,
                service=ServiceCode("back"),
                name="back service",
                pricing=Pricing.MONTHLY,
                price=Yen(525),
            ),
            event(
                catalog_ev.ServiceListed,
                stream,
                3,
                service=ServiceCode("item"),
                name="item",
                pricing=Pricing.PER_PURCHASE,
                price=Yen(300),
            ),
        ],
    )
    assert state is not None
    return state


def a_line(*, regulated: bool = False, limit: int = 3000) -> line.AccessLine:
    stream = line.line_id(CID)
    events = [
        event(
            line_ev.LineOpened,
            stream,
            1,
            customer_id=CID,
            operator=Operator.WEST,
            kind=LineKind.HIKARI_NEXT,
            access_key_hash="plain$Key12345",
            line_limit=Yen(10_000),
            billing=CustomerNumber("0012345678"),
        ),
        event(line_ev.PassportAttached, stream, 2, passport_id=PID, limit=Yen(limit)),
    ]
    if regulated:
        events.append(event(line_ev.Regulated, stream, 3))
    state: line.AccessLine | None = line.project_line(None, events)
    assert state is not None
    return state


def a_passport(*holdings: tuple[str, str, datetime], limit: int = 3000) -> passport.Passport:
    """The Passport ID ``PID`` holding the monthly services given as (receipt, service, at)."""
    stream = passport.passport_id_stream(PID)
    events: list[Any] = [
        event(
            passport_ev.Registered,
            stream,
            1,
            passport_id=PID,
            customer_id=CID,
            password_hash="plain$Pass1234",
            email=Email("taro@example.jp"),
            applicant=Applicant(name="Taro", phone="06-1234-5678", contract_holder=True),
            limit=Yen(limit),
            line_auth=False,
        )
    ]
    for receipt, service, at in holdings:
        events.append(
            event(
                passport_ev.HoldingAdded,
                stream,
                len(events) + 1,
                at,
                receipt=receipt,
                provider=A,
                service=ServiceCode(service),
                pricing=Pricing.MONTHLY,
                price=Yen(525),
            )
        )
    state: passport.Passport | None = passport.project_passport(None, events)
    assert state is not None
    return state


def purchase(at: str, *, service: str = "back", password: str = "Pass1234") -> cmd.Purchase:
    return cmd.Purchase(at=at, passport_id=PID, password=password, provider=A, service=service)


# ---------------------------------------------------------------------------------------------
# The refusal order is data


def test_the_refusal_order_is_one_table_and_the_first_by_rank_is_reported() -> None:
    """INTERCHANGE.md "Results": several refusals → the first in the table's order, whatever
    order they were found in."""
    found: list[MatomeError] = [WrongPassword("w"), LineRegulated("r"), InvalidInput("i")]
    assert type(first_refusal(found)) is InvalidInput
    assert type(first_refusal(found[:2])) is LineRegulated
    ranks = [rank(code) for codes in REFUSAL_ORDER for code in codes]
    assert ranks == sorted(ranks)


def test_a_purchase_on_a_regulated_line_with_a_wrong_password_reports_the_first_by_rank() -> None:
    """Both refusals apply; the table decides which one the customer is told (§5, §10), and
    the wrong password is counted only if it is the one reported."""
    d = decision("2024-02-01T10:00:00+09:00")
    result = passport.decide_purchase(
        a_passport(),
        a_line(regulated=True),
        a_provider(),
        purchase(d.at.isoformat(), password="Wrong123"),
        d,
    )
    assert result is None
    assert {type(r) for r in d.refusals} == {LineRegulated, WrongPassword}
    expected = min((LineRegulated, WrongPassword), key=lambda c: rank(c.code))
    assert type(d.verdict()) is expected
    assert d.counted_events() == ([] if expected is LineRegulated else d.security_events)
    assert d.events == []


# ---------------------------------------------------------------------------------------------
# Purchases and the charging rules (§3, §4)


def test_an_accepted_purchase_records_the_subscription_and_the_holding() -> None:
    d = decision("2024-02-01T10:00:00+09:00")
    owner = a_passport()
    result = passport.decide_purchase(
        owner, a_line(), a_provider(), purchase("2024-02-01T10:00:00+09:00"), d
    )
    assert result is not None
    assert d.verdict() is None
    bought, held = d.events
    assert isinstance(bought, sub_ev.Purchased)
    assert bought.originator_version == 1
    assert bought.receipt == result.receipt == subscription.receipt_number(PID, 1)
    assert isinstance(held, passport_ev.HoldingAdded)
    assert (held.originator_id, held.originator_version) == (owner.id, owner.version + 1)
    assert result.charged == Yen(525)


def test_a_monthly_service_bought_again_in_a_month_it_was_charged_adds_nothing() -> None:
    """§4 patterns 4–5: cancelled and bought again in March, charged once in March."""
    march = datetime.fromisoformat("2024-03-05T10:00:00+09:00")
    held = a_passport(("R1", "back", march))
    cancelled_at = datetime.fromisoformat("2024-03-10T10:00:00+09:00")
    ended = passport.project_passport(
        held,
        [event(passport_ev.HoldingEnded, held.id, held.version + 1, cancelled_at, receipt="R1")],
    )
    d = decision("2024-03-20T10:00:00+09:00")
    result = passport.decide_purchase(
        ended, a_line(), a_provider(), purchase("2024-03-20T10:00:00+09:00"), d
    )
    assert result is not None
    assert result.charged == Yen(0)


def test_a_purchase_over_the_ids_limit_is_refused() -> None:
    """§3: the month's spend plus the purchase may not exceed the ID's limit."""
    held = a_passport(
        ("R1", "back", datetime.fromisoformat("2024-03-05T10:00:00+09:00")), limit=600
    )
    d = decision("2024-03-06T10:00:00+09:00")
    assert (
        passport.decide_purchase(
            held, a_line(limit=600), a_provider(), purchase(d.at.isoformat(), service="item"), d
        )
        is None
    )
    assert type(d.verdict()) is LimitExceeded


def test_cancelling_on_the_first_leaves_that_month_uncharged() -> None:
    """§4 pattern 6: the result names the last charged month."""
    bought = datetime.fromisoformat("2024-01-15T10:00:00+09:00")
    stream = subscription.subscription_id("R1")
    sub = subscription.project_subscription(
        None,
        [
            event(
                sub_ev.Purchased,
                stream,
                1,
                bought,
                receipt="R1",
                passport_id=PID,
                customer_id=CID,
                provider=A,
                service=ServiceCode("back"),
                service_name="back",
                pricing=Pricing.MONTHLY,
                price=Yen(525),
            )
        ],
    )
    d = decision("2024-03-01T08:00:00+09:00")
    result = passport.decide_cancel(
        sub, a_passport(("R1", "back", bought)), cmd.Cancel(at=d.at, receipt="R1"), d
    )
    assert result is not None
    assert result.last_charged_month == YearMonth(2024, 2)


# ---------------------------------------------------------------------------------------------
# Lines (§5, §6, §7)


@pytest.mark.parametrize(
    ("change", "new_id", "kept", "ends_record"),
    [
        (ChangeKind.RELOCATION, None, True, False),
        (ChangeKind.RELOCATION, "CAF0000000002", False, True),
        (ChangeKind.ITEM_CHANGE, None, True, False),
        (ChangeKind.ITEM_CHANGE, "CAF0000000002", False, True),
        (ChangeKind.MENU_CHANGE, None, False, False),
        (ChangeKind.CANCELLATION, None, False, True),
        (ChangeKind.TRANSFER, None, False, False),
        (ChangeKind.TRANSFER, "CAF0000000002", False, True),
        (ChangeKind.RENAME, None, True, False),
        (ChangeKind.AREA_MOVE, None, False, True),
        (ChangeKind.COLLABO_CONVERSION, None, False, True),
    ],
)
def test_the_continuity_table_decides_what_a_line_change_keeps(
    change: ChangeKind, new_id: str | None, kept: bool, ends_record: bool
) -> None:
    """DOMAIN.md §6, the table of line changes, in one function."""
    rule = line.line_change_rule(change, CID, None if new_id is None else CustomerId(new_id))
    assert (rule.kept, rule.ends_record) == (kept, ends_record)


def test_regulation_cancels_every_subscription_of_the_line_at_its_instant() -> None:
    """§5: one Cancelled per active subscription, a HoldingEnded on the ID, then Regulated."""
    bought = datetime.fromisoformat("2024-01-15T10:00:00+09:00")
    held = a_passport(("R1", "back", bought))
    stream = subscription.subscription_id("R1")
    sub = subscription.project_subscription(
        None,
        [
            event(
                sub_ev.Purchased,
                stream,
                1,
                bought,
                receipt="R1",
                passport_id=PID,
                customer_id=CID,
                provider=A,
                service=ServiceCode("back"),
                service_name="back",
                pricing=Pricing.MONTHLY,
                price=Yen(525),
            )
        ],
    )
    d = decision("2024-02-20T09:00:00+09:00")
    result = line.decide_regulate_line(
        a_line(), {PID: held}, {"R1": sub}, cmd.RegulateLine(at=d.at, customer_id=CID), d
    )
    assert result is not None
    assert result.cancelled == ("R1",)
    assert [type(e).__name__ for e in d.events] == ["Cancelled", "HoldingEnded", "Regulated"]
    assert all(e.at == d.at for e in d.events)


def test_lifting_a_regulation_online_is_refused() -> None:
    """§5: lifting needs a written application."""
    d = decision("2024-02-21T09:00:00+09:00")
    lift = cmd.LiftRegulation(at=d.at, customer_id=CID, channel="online")
    assert line.decide_lift_regulation(a_line(regulated=True), lift, d) is None
    assert type(d.verdict()) is NotAllowedOnline


def test_a_command_dated_before_the_latest_event_of_its_line_is_invalid_input() -> None:
    """§7 (Decision): business time is chronological per line."""
    late = a_line(regulated=True)
    d = decision("2023-12-31T09:00:00+09:00")
    limit = cmd.ChangeLineLimit(at=d.at, customer_id=CID, line_limit=20_000)
    assert line.decide_change_line_limit(late, limit, d) is None
    assert type(d.verdict()) is InvalidInput


def test_opening_a_line_twice_is_a_duplicate_and_the_key_is_stored_hashed() -> None:
    d = decision("2024-01-01T09:00:00+09:00")
    c = cmd.OpenLine(
        at=d.at,
        customer_id=CID,
        operator="west",
        kind="hikari_next",
        access_key="Key12345",
        line_limit=10_000,
        billing={"method": "customer_number", "number": "0012345678"},
    )
    assert line.decide_open_line(None, None, c, d) is not None
    (opened,) = d.events
    assert isinstance(opened, line_ev.LineOpened)
    assert opened.access_key_hash == "plain$Key12345"
    d = decision("2024-01-01T09:00:00+09:00")
    assert line.decide_open_line(a_line(), None, c, d) is None
    assert type(d.verdict()) is DuplicateError


def test_issuing_a_month_that_has_not_ended_is_invalid_input() -> None:
    """§7: a month is closed only after it has ended in Tokyo time."""
    d = decision("2024-01-31T23:59:00+09:00")
    assert ledger.decide_issue_bills(None, cmd.IssueBills(at=d.at, month="2024-01"), d) is None
    assert type(d.verdict()) is InvalidInput


def test_a_decider_must_continue_from_the_state_its_last_event_produced() -> None:
    """A programming error, caught: two events decided on the same stale state."""
    d = decision("2024-02-01T10:00:00+09:00")
    state = a_line()
    d.emit(state, line_ev.LineLimitChanged, line_limit=Yen(20_000))
    with pytest.raises(RuntimeError, match="stale"):
        d.emit(state, line_ev.LineLimitChanged, line_limit=Yen(30_000))
