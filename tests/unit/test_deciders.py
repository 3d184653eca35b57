"""The deciders on their own: pure functions of states and a command, tested with no store.

Each test builds the states a command decides against in memory (by applying events with the
aggregates' own projectors), calls the decider, and reads what it decided: the events it would
record, or the refusal the contract reports (the first of all that apply, by the precedence
table — docs/contract.md "Results").
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
    GoodsNotOffered,
    IdempotencyConflict,
    InvalidInput,
    LimitExceeded,
    LineAuthFailed,
    LineRegulated,
    LockedOut,
    MatomeError,
    MonthClosed,
    NotAllowedOnline,
    NotCancellable,
    RefundExceedsCharge,
    RegistrationClosed,
    UnknownLine,
    UnknownPassport,
    WrongAccessKey,
    WrongPassword,
    first_refusal,
    rank,
)
from matome.events import catalog as catalog_ev
from matome.events import ledger as ledger_ev
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

    def needs_rehash(self, stored: str) -> bool:
        return False  # one scheme only


def decision(at: str) -> Decision:
    return Decision(
        at=datetime.fromisoformat(at),
        recorded_at=datetime(2030, 1, 1, tzinfo=UTC),
        policy=DEFAULT_POLICY,
        credentials=PlainCredentials(),
    )


def event(cls: type[Any], stream: Any, version: int, at: datetime = T0, **fields: Any) -> Any:
    return cls(originator_id=stream, originator_version=version, timestamp=at, at=at, **fields)


def a_provider(goods: Goods = Goods.INFORMATION, at: datetime = T0) -> catalog.Provider:
    """Provider ``A`` (registered at ``at``) listing ``back`` (monthly, 525) and ``item``
    (per purchase, 300)."""
    stream = catalog.provider_id(A)
    state: catalog.Provider | None = catalog.project_provider(
        None,
        [
            event(
                catalog_ev.ProviderRegistered,
                stream,
                1,
                at,
                provider=A,
                name="A Co.",
                contact="0120",
                goods=goods,
            ),
            event(
                catalog_ev.ServiceListed,
                stream,
                2,
                at,
                service=ServiceCode("back"),
                name="back service",
                pricing=Pricing.MONTHLY,
                price=Yen(525),
            ),
            event(
                catalog_ev.ServiceListed,
                stream,
                3,
                at,
                service=ServiceCode("item"),
                name="item",
                pricing=Pricing.PER_PURCHASE,
                price=Yen(300),
            ),
        ],
    )
    assert state is not None
    return state


def a_line(
    *,
    regulated: bool = False,
    limit: int = 3000,
    operator: Operator = Operator.WEST,
    kind: LineKind = LineKind.HIKARI_NEXT,
    since: datetime = T0,
) -> line.AccessLine:
    """The line ``CID`` (access key ``Key12345``) holding ``PID``, opened at ``since``."""
    stream = line.line_id(CID)
    events = [
        event(
            line_ev.LineOpened,
            stream,
            1,
            since,
            customer_id=CID,
            operator=operator,
            kind=kind,
            access_key_hash="plain$Key12345",
            line_limit=Yen(10_000),
            billing=CustomerNumber("0012345678"),
        ),
        event(line_ev.PassportAttached, stream, 2, since, passport_id=PID, limit=Yen(limit)),
    ]
    if regulated:
        events.append(event(line_ev.Regulated, stream, 3, since))
    state: line.AccessLine | None = line.project_line(None, events)
    assert state is not None
    return state


def a_passport(
    *holdings: tuple[str, str, datetime],
    limit: int = 3000,
    line_auth: bool = False,
    failures: int = 0,
    since: datetime = T0,
) -> passport.Passport:
    """The Passport ID ``PID`` (password ``Pass1234``) holding the monthly services given as
    (receipt, service, at), then ``failures`` wrong passwords in a row (10: locked)."""
    stream = passport.passport_id_stream(PID)
    events: list[Any] = [
        event(
            passport_ev.Registered,
            stream,
            1,
            since,
            passport_id=PID,
            customer_id=CID,
            password_hash="plain$Pass1234",
            email=Email("taro@example.jp"),
            applicant=Applicant(name="Taro", phone="06-1234-5678", contract_holder=True),
            limit=Yen(limit),
            line_auth=line_auth,
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
    for n in range(1, failures + 1):
        events.append(
            event(
                passport_ev.PasswordRejected,
                stream,
                len(events) + 1,
                since,
                consecutive=n,
                locked=n >= DEFAULT_POLICY.lockout_after,
            )
        )
    state: passport.Passport | None = passport.project_passport(None, events)
    assert state is not None
    return state


def purchase(
    at: str,
    *,
    service: str = "back",
    password: str = "Pass1234",
    presented_line: CustomerId | None = None,
    quantity: int = 1,
) -> cmd.Purchase:
    return cmd.Purchase(
        at=at,
        passport_id=PID,
        password=password,
        provider=A,
        service=service,
        presented_line=presented_line,
        quantity=quantity,
    )


def a_subscription(
    receipt: str = "R1", at: datetime = T0, *, pricing: Pricing = Pricing.MONTHLY
) -> subscription.Subscription:
    state: subscription.Subscription | None = subscription.project_subscription(
        None,
        [
            event(
                sub_ev.Purchased,
                subscription.subscription_id(receipt),
                1,
                at,
                receipt=receipt,
                passport_id=PID,
                customer_id=CID,
                provider=A,
                service=ServiceCode("back"),
                service_name="back",
                pricing=pricing,
                price=Yen(525),
            )
        ],
    )
    assert state is not None
    return state


def types(events: list[Any]) -> list[str]:
    return [type(e).__name__ for e in events]


# ---------------------------------------------------------------------------------------------
# The refusal order is data


def test_the_refusal_order_is_one_table_and_the_first_by_rank_is_reported() -> None:
    """docs/contract.md "Results": several refusals → the first in the table's order, whatever
    order they were found in; contract 2 checks credentials before the state they guard."""
    found: list[MatomeError] = [LineRegulated("r"), WrongPassword("w"), InvalidInput("i")]
    assert type(first_refusal(found)) is InvalidInput
    assert type(first_refusal(found[:2])) is WrongPassword
    assert type(first_refusal([DuplicateError("d"), WrongAccessKey("k")])) is WrongAccessKey
    assert type(first_refusal([WrongPassword("w"), LineAuthFailed("l")])) is LineAuthFailed
    assert type(first_refusal([IdempotencyConflict("c"), MonthClosed("m")])) is MonthClosed
    assert type(first_refusal([RegistrationClosed("c"), UnknownLine("u")])) is UnknownLine
    assert rank("wrong_password") == rank("wrong_access_key")
    ranks = [rank(code) for codes in REFUSAL_ORDER for code in codes]
    assert ranks == sorted(ranks)


def test_a_purchase_on_a_regulated_line_with_a_wrong_password_is_wrong_password_and_counted() -> (
    None
):
    """docs/contract.md "Order of refusals" (contract 2): credentials before the state they guard —
    both refusals apply, ``wrong_password`` is reported and its ``PasswordRejected`` is counted."""
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
    assert type(d.verdict()) is WrongPassword
    (counted,) = d.counted_events()
    assert isinstance(counted, passport_ev.PasswordRejected)
    assert (counted.consecutive, counted.locked) == (1, False)
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
        sub,
        a_passport(("R1", "back", bought)),
        cmd.Cancel(at=d.at, receipt="R1", password="Pass1234"),
        d,
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
    """docs/rules.md §6, the table of line changes, in one function."""
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


# ---------------------------------------------------------------------------------------------
# Contract 2: who may do what — the line holder's access key (§2)

APPLICANT = Applicant(name="Hanako", phone="06-1234-5678", contract_holder=True)


def register_command(
    at: str, *, access_key: str = "Key12345", **fields: Any
) -> cmd.RegisterPassport:
    values: dict[str, Any] = {
        "customer_id": CID,
        "passport_id": "hanako.2",
        "password": "Hana1234",
        "email": "hanako@example.jp",
        "applicant": APPLICANT,
        "limit": 1000,
        "line_auth": False,
        **fields,
    }
    return cmd.RegisterPassport(at=at, access_key=access_key, **values)


LINE_HOLDER_DECISIONS: list[tuple[str, Any]] = [
    (
        "register_passport",
        lambda d, key: passport.decide_register_passport(
            a_line(), None, None, {}, register_command(d.at.isoformat(), access_key=key), d
        ),
    ),
    (
        "change_passport_limit",
        lambda d, key: passport.decide_change_passport_limit(
            a_passport(),
            a_line(),
            {},
            cmd.ChangePassportLimit(at=d.at, passport_id=PID, access_key=key, limit=100),
            d,
        ),
    ),
    (
        "change_passport_details",
        lambda d, key: passport.decide_change_passport_details(
            a_passport(),
            a_line(),
            cmd.ChangePassportDetails(
                at=d.at, passport_id=PID, access_key=key, password="New12345"
            ),
            d,
        ),
    ),
    (
        "delete_passport",
        lambda d, key: passport.decide_delete_passport(
            a_passport(),
            a_line(),
            {},
            cmd.DeletePassport(at=d.at, passport_id=PID, access_key=key),
            d,
        ),
    ),
    (
        "set_notification",
        lambda d, key: line.decide_set_notification(
            a_line(),
            a_provider(),
            cmd.SetNotification(
                at=d.at,
                customer_id=CID,
                access_key=key,
                provider=A,
                notify=True,
                consent=True,
                channel="web",
            ),
            d,
        ),
    ),
]


@pytest.mark.parametrize("decide", [pytest.param(f, id=name) for name, f in LINE_HOLDER_DECISIONS])
def test_a_line_holder_command_with_a_wrong_access_key_is_refused_and_counts_nothing(
    decide: Any,
) -> None:
    """docs/rules.md §2 "Who may do what" (contract 2): the line holder's commands carry the
    line's access key; a wrong one is ``wrong_access_key``, emits nothing and counts nothing
    (docs/design.md: only Passport ID passwords lock)."""
    d = decision("2024-02-01T10:00:00+09:00")
    assert decide(d, "Wrong123") is None
    assert type(d.verdict()) is WrongAccessKey
    assert d.events == []
    assert d.security_events == []
    assert d.counted_events() == []
    right = decision("2024-02-01T10:00:00+09:00")
    assert decide(right, "Key12345") is not None
    assert right.verdict() is None
    assert right.events


def test_the_access_key_is_checked_before_the_state_it_guards() -> None:
    """docs/contract.md "Order of refusals" (contract 2): ``wrong_access_key`` ranks before
    ``duplicate``, ``line_regulated``, ``registration_closed``, ``too_many_passports`` and the
    limits."""
    d = decision("2024-12-05T10:00:00+09:00")
    c = register_command(d.at.isoformat(), access_key="Wrong123", passport_id=str(PID), limit=9000)
    assert (
        passport.decide_register_passport(a_line(regulated=True), a_passport(), None, {}, c, d)
        is None
    )
    assert {type(r) for r in d.refusals} >= {
        WrongAccessKey,
        DuplicateError,
        LineRegulated,
        RegistrationClosed,
    }
    assert type(d.verdict()) is WrongAccessKey


def test_a_provider_registering_on_a_customers_behalf_needs_no_access_key() -> None:
    """§2: with ``via_provider`` (NTT East, after the cut-off) no access key is needed."""
    c = cmd.RegisterPassport(
        at="2025-01-10T10:00:00+09:00",
        customer_id=CID,
        passport_id="hanako.2",
        password="Hana1234",
        email="hanako@example.jp",
        applicant=APPLICANT,
        limit=1000,
        line_auth=False,
        via_provider=A,
    )
    d = decision("2025-01-10T10:00:00+09:00")
    east = a_line(operator=Operator.EAST, kind=LineKind.B_FLETS)
    assert passport.decide_register_passport(east, None, a_provider(), {}, c, d) is not None
    assert d.verdict() is None


def test_a_registration_without_access_key_or_provider_is_invalid_input() -> None:
    """The attack "register IDs with only a customer ID" fails when the command is built."""
    with pytest.raises(InvalidInput, match="access_key"):
        cmd.RegisterPassport(
            at="2024-02-01T10:00:00+09:00",
            customer_id=CID,
            passport_id="hanako.2",
            password="Hana1234",
            email="hanako@example.jp",
            applicant=APPLICANT,
            limit=1000,
            line_auth=False,
        )


# ---------------------------------------------------------------------------------------------
# Contract 2: the Passport ID holder's password (§10), line authentication (§9)


def test_the_tenth_wrong_password_in_a_row_locks_the_id() -> None:
    d = decision("2024-02-01T10:00:00+09:00")
    assert (
        passport.decide_purchase(
            a_passport(failures=9),
            a_line(),
            a_provider(),
            purchase(d.at.isoformat(), password="Wrong123"),
            d,
        )
        is None
    )
    (counted,) = d.counted_events()
    assert isinstance(counted, passport_ev.PasswordRejected)
    assert (counted.consecutive, counted.locked) == (10, True)
    assert d.security_states[counted.originator_id].locked


def test_a_locked_id_is_locked_out_even_with_the_right_password_and_counts_nothing() -> None:
    d = decision("2024-02-01T10:00:00+09:00")
    assert (
        passport.decide_purchase(
            a_passport(failures=10),
            a_line(regulated=True),
            a_provider(),
            purchase(d.at.isoformat()),
            d,
        )
        is None
    )
    assert type(d.verdict()) is LockedOut
    assert d.security_events == []


def test_a_purchase_from_another_line_is_line_auth_failed_before_the_password_is_judged() -> None:
    """§9 (contract 2): the line check comes before the password; nothing is counted, so
    nobody on another line can lock an ID out."""
    d = decision("2024-02-01T10:00:00+09:00")
    other = CustomerId("CAF0000000002")
    c = purchase(d.at.isoformat(), password="Wrong123", presented_line=other)
    assert (
        passport.decide_purchase(a_passport(line_auth=True), a_line(), a_provider(), c, d) is None
    )
    assert type(d.verdict()) is LineAuthFailed
    assert WrongPassword not in {type(r) for r in d.refusals}
    assert d.security_events == []
    assert d.counted_events() == []


def test_line_auth_needs_no_notification_and_passes_over_the_own_line() -> None:
    """§9 (contract 2): the line check does not depend on the notification setting (the line
    here never set one)."""
    d = decision("2024-02-01T10:00:00+09:00")
    c = purchase(d.at.isoformat(), service="item", presented_line=CID)
    owner = a_line()
    assert dict(owner.notifications) == {}
    assert (
        passport.decide_purchase(a_passport(line_auth=True), owner, a_provider(), c, d) is not None
    )


def test_no_line_check_on_a_line_kind_without_line_authentication() -> None:
    """docs/design.md (Decision on §9): on a kind of line without line authentication (a line
    that changed kind), no line check is made."""
    d = decision("2024-02-01T10:00:00+09:00")
    c = purchase(d.at.isoformat(), service="item", presented_line=CustomerId("CAF0000000002"))
    adsl = a_line(operator=Operator.EAST, kind=LineKind.FLETS_ADSL)
    assert (
        passport.decide_purchase(a_passport(line_auth=True), adsl, a_provider(), c, d) is not None
    )


@pytest.mark.parametrize("kind", [LineKind.B_FLETS, LineKind.FLETS_ADSL])
def test_line_auth_cannot_be_switched_on_for_an_id_on_a_non_hikari_line(kind: LineKind) -> None:
    """§9 (contract 2): ``invalid_input`` at registration and by ``change_passport_details``."""
    east = a_line(operator=Operator.EAST, kind=kind)
    d = decision("2024-02-01T10:00:00+09:00")
    c = register_command(d.at.isoformat(), line_auth=True)
    assert passport.decide_register_passport(east, None, None, {}, c, d) is None
    assert type(d.verdict()) is InvalidInput
    d = decision("2024-02-01T10:00:00+09:00")
    change = cmd.ChangePassportDetails(
        at=d.at, passport_id=PID, access_key="Key12345", line_auth=True
    )
    assert passport.decide_change_passport_details(a_passport(), east, change, d) is None
    assert type(d.verdict()) is InvalidInput


def test_cancel_with_a_wrong_password_is_counted() -> None:
    """§10 (contract 2): ``cancel`` carries the password of the ID that bought the receipt; a
    wrong one is ``wrong_password`` and counted, also on a receipt that is not cancellable."""
    item = a_subscription(pricing=Pricing.PER_PURCHASE)
    d = decision("2024-02-01T10:00:00+09:00")
    c = cmd.Cancel(at=d.at, receipt="R1", password="Wrong123")
    assert passport.decide_cancel(item, a_passport(), c, d) is None
    assert {type(r) for r in d.refusals} == {WrongPassword, NotCancellable}
    assert type(d.verdict()) is WrongPassword
    assert types(d.counted_events()) == ["PasswordRejected"]


def test_cancel_of_a_locked_id_is_locked_out() -> None:
    bought = a_subscription()
    d = decision("2024-02-01T10:00:00+09:00")
    c = cmd.Cancel(at=d.at, receipt="R1", password="Pass1234")
    assert passport.decide_cancel(bought, a_passport(("R1", "back", T0), failures=10), c, d) is None
    assert type(d.verdict()) is LockedOut


def test_a_right_cancel_password_restarts_the_count() -> None:
    """§10: a correct password before the tenth resets the count (``PasswordAccepted``)."""
    bought = a_subscription()
    d = decision("2024-02-01T10:00:00+09:00")
    c = cmd.Cancel(at=d.at, receipt="R1", password="Pass1234")
    assert (
        passport.decide_cancel(bought, a_passport(("R1", "back", T0), failures=9), c, d) is not None
    )
    assert types(d.events) == ["Cancelled", "HoldingEnded", "PasswordAccepted"]
    assert d.states[passport.passport_id_stream(PID)].consecutive_failures == 0


def test_a_cancel_without_earlier_failures_records_no_password_accepted() -> None:
    bought = a_subscription()
    d = decision("2024-02-01T10:00:00+09:00")
    c = cmd.Cancel(at=d.at, receipt="R1", password="Pass1234")
    assert passport.decide_cancel(bought, a_passport(("R1", "back", T0)), c, d) is not None
    assert types(d.events) == ["Cancelled", "HoldingEnded"]


# ---------------------------------------------------------------------------------------------
# Contract 2: the operator's password reset (§10)


def test_reset_password_unlocks_and_clears_the_count_after_the_cutoff() -> None:
    """§10: the operator's ``reset_password`` (phone or written request) sets a new password,
    unlocks the ID and clears the count — allowed after the 2024-12-01 cut-off."""
    d = decision("2025-03-01T10:00:00+09:00")
    c = cmd.ResetPassword(at=d.at, passport_id=PID, password="New12345", channel="written")
    assert passport.decide_reset_password(a_passport(failures=10), c, d) is not None
    (reset,) = d.events
    assert isinstance(reset, passport_ev.PasswordReset)
    assert reset.password_hash == "plain$New12345"
    after = d.states[reset.originator_id]
    assert (after.locked, after.consecutive_failures) == (False, 0)


def test_reset_password_of_an_unknown_id_is_unknown_passport() -> None:
    d = decision("2025-03-01T10:00:00+09:00")
    c = cmd.ResetPassword(at=d.at, passport_id=PID, password="New12345", channel="phone")
    assert passport.decide_reset_password(None, c, d) is None
    assert type(d.verdict()) is UnknownPassport


@pytest.mark.parametrize("channel", ["online", "web", "email", ""])
def test_reset_password_is_by_phone_or_written_request_only(channel: str) -> None:
    with pytest.raises(InvalidInput, match="channel"):
        cmd.ResetPassword(at=T0, passport_id=PID, password="New12345", channel=channel)


def test_a_line_holder_password_change_unlocks_before_the_cutoff_only() -> None:
    """§10: ``change_passport_details`` (with the access key) also unlocks with a new password,
    before the cut-off only (details are view-only after it)."""
    d = decision("2024-11-30T10:00:00+09:00")
    c = cmd.ChangePassportDetails(
        at=d.at, passport_id=PID, access_key="Key12345", password="New12345"
    )
    assert (
        passport.decide_change_passport_details(a_passport(failures=10), a_line(), c, d) is not None
    )
    assert not d.states[passport.passport_id_stream(PID)].locked
    d = decision("2024-12-01T00:00:00+09:00")
    c = cmd.ChangePassportDetails(
        at=d.at, passport_id=PID, access_key="Key12345", password="New12345"
    )
    assert passport.decide_change_passport_details(a_passport(failures=10), a_line(), c, d) is None
    assert type(d.verdict()) is RegistrationClosed


# ---------------------------------------------------------------------------------------------
# Contract 2: goods, quantities, refunds (§1, §4)


def test_physical_goods_are_sold_on_west_lines_before_east_may_sell_them() -> None:
    """§1 (contract 2): NTT West's guide includes goods; NTT East sells them from 2012-06-05."""
    opened = datetime.fromisoformat("2012-01-01T00:00:00+09:00")
    goods = a_provider(Goods.PHYSICAL, at=opened)
    at = "2012-01-10T10:00:00+09:00"
    d = decision(at)
    west = a_line(since=opened)
    owner = a_passport(since=opened)
    assert passport.decide_purchase(owner, west, goods, purchase(at, service="item"), d)
    d = decision(at)
    east = a_line(operator=Operator.EAST, kind=LineKind.B_FLETS, since=opened)
    assert passport.decide_purchase(owner, east, goods, purchase(at, service="item"), d) is None
    assert type(d.verdict()) is GoodsNotOffered


def test_a_quantity_is_charged_price_times_quantity_and_checked_against_the_limit() -> None:
    """§4 (contract 2): a per-purchase item bought 10 at a time adds 10 × 300 to the spend."""
    d = decision("2024-02-01T10:00:00+09:00")
    result = passport.decide_purchase(
        a_passport(limit=3000),
        a_line(),
        a_provider(),
        purchase(d.at.isoformat(), service="item", quantity=10),
        d,
    )
    assert result is not None
    assert (result.quantity, result.charged) == (10, Yen(3000))
    bought, held = d.events
    assert isinstance(bought, sub_ev.Purchased)
    assert isinstance(held, passport_ev.HoldingAdded)
    assert (bought.quantity, held.quantity) == (10, 10)
    d = decision("2024-02-01T10:00:00+09:00")
    c = purchase(d.at.isoformat(), service="item", quantity=11)
    assert passport.decide_purchase(a_passport(limit=3000), a_line(), a_provider(), c, d) is None
    assert type(d.verdict()) is LimitExceeded


def test_a_quantity_on_a_monthly_service_is_invalid_input() -> None:
    """docs/design.md (Decision on §4): a monthly-flat service is bought one at a time."""
    d = decision("2024-02-01T10:00:00+09:00")
    c = purchase(d.at.isoformat(), quantity=2)
    assert passport.decide_purchase(a_passport(), a_line(), a_provider(), c, d) is None
    assert type(d.verdict()) is InvalidInput


def test_a_same_month_repurchase_has_nothing_to_refund_for_its_first_month() -> None:
    """§4 (contract 2): refunds are capped by what was charged so far; a monthly service
    bought again in a month it was already charged (patterns 4–5) was not charged then."""
    march = datetime.fromisoformat("2024-03-05T10:00:00+09:00")
    held = a_passport(("R1", "back", march))
    ended = passport.project_passport(
        held,
        [
            event(
                passport_ev.HoldingEnded,
                held.id,
                held.version + 1,
                datetime.fromisoformat("2024-03-10T10:00:00+09:00"),
                receipt="R1",
            ),
        ],
    )
    rebought_at = datetime.fromisoformat("2024-03-20T10:00:00+09:00")
    rebought = passport.project_passport(
        ended,
        [
            event(
                passport_ev.HoldingAdded,
                held.id,
                held.version + 2,
                rebought_at,
                receipt="R2",
                provider=A,
                service=ServiceCode("back"),
                pricing=Pricing.MONTHLY,
                price=Yen(525),
            )
        ],
    )
    assert rebought is not None
    assert "R2" in rebought.rebought
    sub = a_subscription("R2", rebought_at)
    d = decision("2024-03-25T10:00:00+09:00")
    assert (
        passport.decide_refund(
            sub, rebought, cmd.Refund(at=d.at, receipt="R2", amount=1, reason="x"), d
        )
        is None
    )
    assert type(d.verdict()) is RefundExceedsCharge
    d = decision("2024-04-05T10:00:00+09:00")
    assert (
        passport.decide_refund(
            sub, rebought, cmd.Refund(at=d.at, receipt="R2", amount=525, reason="x"), d
        )
        is not None
    )
    d = decision("2024-04-05T10:00:00+09:00")
    assert (
        passport.decide_refund(
            sub, rebought, cmd.Refund(at=d.at, receipt="R2", amount=526, reason="x"), d
        )
        is None
    )
    assert type(d.verdict()) is RefundExceedsCharge


@pytest.mark.parametrize(
    ("refund_at", "cap"),
    [
        ("2024-01-31T23:59:59+09:00", 525),
        ("2024-02-01T00:00:00+09:00", 1050),
        ("2024-04-30T10:00:00+09:00", 2100),
    ],
)
def test_a_monthly_refund_is_capped_by_the_months_charged_so_far(refund_at: str, cap: int) -> None:
    """§4 (contract 2): its price for every month from the purchase month through the refund's
    month (Tokyo months)."""
    sub = a_subscription("R1", datetime.fromisoformat("2024-01-15T10:00:00+09:00"))
    owner = a_passport(("R1", "back", sub.purchased_at))
    d = decision(refund_at)
    ok = cmd.Refund(at=d.at, receipt="R1", amount=cap, reason="x")
    assert passport.decide_refund(sub, owner, ok, d) is not None
    d = decision(refund_at)
    over = cmd.Refund(at=d.at, receipt="R1", amount=cap + 1, reason="x")
    assert passport.decide_refund(sub, owner, over, d) is None
    assert type(d.verdict()) is RefundExceedsCharge


# ---------------------------------------------------------------------------------------------
# Contract 2: line changes, months, fees (§6, §7, §8)


@pytest.mark.parametrize(
    ("kind", "new_kind"),
    [(LineKind.HIKARI_NEXT, "hikari_light"), (LineKind.HIKARI_LIGHT, "hikari_next")],
)
def test_an_item_change_between_hikari_next_and_light_is_invalid_input(
    kind: LineKind, new_kind: str
) -> None:
    """§6 (contract 2): Next ⇄ Light is a menu change, never an item change."""
    d = decision("2024-03-01T10:00:00+09:00")
    c = cmd.ChangeLine(at=d.at, customer_id=CID, change="item_change", new_kind=new_kind)
    assert line.decide_change_line(a_line(kind=kind), {}, {}, None, c, d) is None
    assert type(d.verdict()) is InvalidInput
    assert d.events == []


def test_a_command_in_a_closed_month_is_month_closed_before_unknown_passport() -> None:
    """docs/contract.md "Order of refusals" (contract 2): ``month_closed`` ranks before the
    ``unknown_*`` codes."""
    calendar = ledger.project_calendar(
        None, [event(ledger_ev.MonthsClosed, ledger.CALENDAR_ID, 1, through=YearMonth(2024, 2))]
    )
    d = decision("2024-02-15T10:00:00+09:00")
    ledger.check_month_open(calendar, d)
    d.refuse(IdempotencyConflict("a key bound to another body"))
    assert passport.decide_purchase(None, None, a_provider(), purchase(d.at.isoformat()), d) is None
    assert {type(r) for r in d.refusals} == {MonthClosed, IdempotencyConflict, UnknownPassport}
    assert type(d.verdict()) is MonthClosed


def test_set_fee_records_the_flat_fee_and_refuses_a_closed_month() -> None:
    """§8 / docs/design.md: ``set_fee`` is an event (settlements replay); ``effective_from``
    in a closed month is ``month_closed``."""
    d = decision("2024-03-05T10:00:00+09:00")
    c = cmd.SetFee(at=d.at, operator="west", effective_from="2024-03", flat_fee=60)
    assert ledger.decide_set_fee(None, None, c, d) is not None
    (fee_set,) = d.events
    assert isinstance(fee_set, ledger_ev.FeeSet)
    assert (fee_set.operator, fee_set.effective_from, fee_set.flat_fee) == (
        Operator.WEST,
        YearMonth(2024, 3),
        Yen(60),
    )
    calendar = ledger.project_calendar(
        None, [event(ledger_ev.MonthsClosed, ledger.CALENDAR_ID, 1, through=YearMonth(2024, 2))]
    )
    d = decision("2024-03-05T10:00:00+09:00")
    c = cmd.SetFee(at=d.at, operator="east", effective_from="2024-02", flat_fee=60)
    assert ledger.decide_set_fee(None, calendar, c, d) is None
    assert type(d.verdict()) is MonthClosed
