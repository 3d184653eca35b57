"""Hypothesis strategies for matome: value types (valid and invalid), commands and command logs.

Everything here generates *inputs*: the JSON command-log form of docs/contract.md (``dict``
objects a person can write to a ``.jsonl`` file and replay with ``matome run``) or the typed
command objects of :mod:`matome.commands`.

>>> from hypothesis import given
>>> from matome.testing import strategies as mst
>>> @given(mst.command_logs())
... def test_every_log_is_answered(log): ...
"""

from __future__ import annotations

import json
import string
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from hypothesis import strategies as st

from matome.aggregates.subscription import receipt_number
from matome.commands import (
    COMMANDS,
    MAX_PERIOD_DAYS,
    MAX_PERIOD_MONTHS,
    Command,
    parse_command,
)
from matome.values import MAX_YEN, TOKYO, YearMonth

__all__ = [
    "WRONG_ACCESS_KEY",
    "WRONG_PASSWORD",
    "access_keys",
    "applicants",
    "billing_accounts",
    "command_logs",
    "commands",
    "customer_ids",
    "emails",
    "format_log",
    "invalid_access_keys",
    "invalid_billing_numbers",
    "invalid_commands",
    "invalid_customer_ids",
    "invalid_cycle_days",
    "invalid_emails",
    "invalid_months",
    "invalid_passport_ids",
    "invalid_passwords",
    "invalid_phones",
    "invalid_quantities",
    "invalid_times",
    "invalid_yen",
    "passport_ids",
    "passwords",
    "provider_codes",
    "quantities",
    "service_codes",
    "service_periods",
    "tokyo_times",
    "year_months",
    "yen",
]

_ALNUM = string.ascii_letters + string.digits
_DIGITS = string.digits

# ---------------------------------------------------------------------------------------------
# Value types (rules §1)


def customer_ids(operator: str | None = None) -> st.SearchStrategy[str]:
    """Customer IDs: ``CAF`` + 10 digits (West and East) or ``COP`` + 8 digits (East only)."""
    caf = st.text(_DIGITS, min_size=10, max_size=10).map(lambda d: "CAF" + d)
    cop = st.text(_DIGITS, min_size=8, max_size=8).map(lambda d: "COP" + d)
    return caf if operator == "west" else st.one_of(caf, cop)


def invalid_customer_ids() -> st.SearchStrategy[str]:
    """Strings that are not customer IDs: wrong prefix or length, lower case, full width."""
    return st.one_of(
        st.text(_DIGITS, min_size=0, max_size=14)
        .map(lambda d: "CAF" + d)
        .filter(lambda s: len(s) != 13),
        st.text(_DIGITS, min_size=10, max_size=10).map(lambda d: "caf" + d),
        st.text(_DIGITS, min_size=10, max_size=10).map(lambda d: "CAF" + d.translate(_FULL)),
        st.text(_DIGITS, min_size=10, max_size=10).map(lambda d: "CAX" + d),
        st.text(_DIGITS, min_size=10, max_size=10).map(lambda d: " CAF" + d),
        st.text(max_size=20).filter(lambda s: not s.startswith(("CAF", "COP"))),
    )


_FULL = str.maketrans(_DIGITS, "０１２３４５６７８９")


def passport_ids() -> st.SearchStrategy[str]:
    """Passport IDs: 4–60 of ASCII letters, digits and ``- _ . @``."""
    return st.text(_ALNUM + "-_.@", min_size=4, max_size=60)


def invalid_passport_ids() -> st.SearchStrategy[str]:
    """Text that is not a Passport ID: too short, too long, or with a character IDs may not hold."""
    return st.one_of(
        st.text(_ALNUM, max_size=3),
        st.text(_ALNUM, min_size=61, max_size=80),
        st.text(_ALNUM, min_size=3, max_size=10).map(lambda s: s + "!"),
        st.text(_ALNUM, min_size=3, max_size=10).map(lambda s: s + " x"),
        st.text(_ALNUM, min_size=3, max_size=10).map(lambda s: s + "あ"),
    )


def passwords() -> st.SearchStrategy[str]:
    """Passport ID passwords: 4–10 ASCII alphanumerics."""
    return st.text(_ALNUM, min_size=4, max_size=10)


def invalid_passwords(contract: int = 2) -> st.SearchStrategy[str]:
    """Text that is not a password under ``contract`` (4–10 letters and digits under contract
    2, up to 12 from contract 3): too short, too long, a symbol."""
    return st.one_of(
        st.text(_ALNUM, max_size=3),
        st.text(_ALNUM, min_size=11 if contract < 3 else 13, max_size=20),
        st.text(_ALNUM, min_size=3, max_size=8).map(lambda s: s + "-"),
    )


def access_keys() -> st.SearchStrategy[str]:
    """Access keys: 8 ASCII alphanumerics."""
    return st.text(_ALNUM, min_size=8, max_size=8)


def invalid_access_keys() -> st.SearchStrategy[str]:
    """Text that is not an access key [アクセスキー]: not eight letters and digits."""
    return st.one_of(
        st.text(_ALNUM, max_size=7),
        st.text(_ALNUM, min_size=9, max_size=12),
        st.text(_ALNUM, min_size=7, max_size=7).map(lambda s: s + "_"),
    )


def invalid_billing_numbers() -> st.SearchStrategy[str]:
    """Text that is not a billing customer number: not ``00`` followed by eight digits."""
    return st.one_of(
        st.text(_DIGITS, min_size=8, max_size=8).map(lambda d: "01" + d),
        st.text(_DIGITS, min_size=0, max_size=12)
        .map(lambda d: "00" + d)
        .filter(lambda s: len(s) != 10),
    )


def invalid_emails() -> st.SearchStrategy[str]:
    """Text that is not an e-mail address: no ``@``, nothing after it, no domain, a space."""
    return st.one_of(
        st.text(string.ascii_lowercase, min_size=1, max_size=10),  # no @
        st.text(string.ascii_lowercase, min_size=1, max_size=10).map(lambda s: s + "@"),
        st.text(string.ascii_lowercase, min_size=1, max_size=10).map(lambda s: f"{s}@host"),
        st.text(string.ascii_lowercase, min_size=1, max_size=10).map(lambda s: f"{s} @x.jp"),
    )


def invalid_phones() -> st.SearchStrategy[str]:
    """Text that is not a phone number: too few or many digits, not led by 0, letters."""
    return st.one_of(
        st.text(_DIGITS, min_size=1, max_size=9),
        st.text(_DIGITS, min_size=12, max_size=15),
        st.text(_DIGITS, min_size=9, max_size=10).map(lambda d: "1" + d),  # not 0-led
        st.text(_DIGITS, min_size=4, max_size=4).map(lambda d: f"06-{d}-abcd"),
    )


def emails() -> st.SearchStrategy[str]:
    """Valid e-mail addresses (``local@domain.example.jp``)."""
    local = st.text(string.ascii_lowercase + _DIGITS + "._", min_size=1, max_size=12)
    return st.builds(
        lambda a, b: f"{a}@{b}.example.jp",
        local,
        st.text(string.ascii_lowercase, min_size=1, max_size=8),
    )


def phones() -> st.SearchStrategy[str]:
    """Japanese phone numbers of 10 digits (``03-1234-5678``, ``075-123-4567``)."""
    four = st.text(_DIGITS, min_size=4, max_size=4)
    return st.one_of(
        st.builds(lambda a, b, c: f"0{a}-{b}-{c}", st.sampled_from(["3", "6"]), four, four),
        st.builds(lambda b, c: f"075-{b[:3]}-{c}", four, four),
    )


def applicants() -> st.SearchStrategy[dict[str, Any]]:
    """Applicants of a Passport ID registration, in the contract's JSON form."""
    return st.fixed_dictionaries(
        {
            "name": st.sampled_from(["山田 太郎", "鈴木 花子", "Sato Jiro", "田中"]),
            "phone": phones(),
            "contract_holder": st.booleans(),
        }
    )


def provider_codes() -> st.SearchStrategy[str]:
    """Valid provider codes: one to six upper-case letters and digits."""
    return st.text(string.ascii_uppercase + _DIGITS, min_size=1, max_size=6)


def service_codes() -> st.SearchStrategy[str]:
    """Valid service codes: lower-case letters, digits and ``-`` (not first)."""
    return st.text(string.ascii_lowercase + _DIGITS + "-", min_size=1, max_size=10).filter(
        lambda s: s[0] != "-"
    )


def yen(min_value: int = 0, max_value: int = 100_000) -> st.SearchStrategy[int]:
    """Whole yen as the JSON integer of the contract (at most :data:`~matome.values.MAX_YEN`)."""
    return st.integers(min_value, min(max_value, MAX_YEN))


def invalid_yen() -> st.SearchStrategy[Any]:
    """What an amount is not: floats, negatives, more than 99,999,999 yen, booleans, text."""
    return st.one_of(
        st.floats(allow_nan=False).filter(lambda f: not f.is_integer()),
        st.integers(max_value=-1),
        st.integers(min_value=MAX_YEN + 1),
        st.booleans(),
        st.integers(0, 10_000).map(str),
    )


def quantities() -> st.SearchStrategy[int]:
    """How many of a per-purchase item one purchase buys: 1–99 (rules §4)."""
    return st.integers(1, 99)


def service_periods(pricing: str) -> st.SearchStrategy[dict[str, int]]:
    """The service period a contract-3 ``list_service`` of ``pricing`` may carry (docs/rules.md
    §11), as the fields to add: none, ``period_months`` (monthly-flat) or ``period_days``
    (per-purchase)."""
    if pricing == "monthly":
        field, most = "period_months", MAX_PERIOD_MONTHS
    else:
        field, most = "period_days", MAX_PERIOD_DAYS
    small = st.integers(1, 3) if pricing == "monthly" else st.sampled_from([1, 7, 30])
    return st.one_of(
        st.just({}),
        st.builds(lambda n: {field: n}, st.one_of(small, st.integers(1, most))),
    )


def invalid_quantities() -> st.SearchStrategy[Any]:
    """Quantities a purchase may not carry: 0, negatives, 100 and more, non-integers."""
    return st.one_of(
        st.sampled_from([0, 100]),
        st.integers(max_value=-1),
        st.integers(min_value=100),
        st.sampled_from([1.0, 2.5, "2", True]),
    )


def invalid_times() -> st.SearchStrategy[str]:
    """Aware ISO-8601 times whose Tokyo date lies outside 2000-01-01 … 2099-12-31."""
    return st.one_of(
        st.datetimes(datetime(1999, 1, 1), datetime(1999, 12, 31, 23, 59, 59)),
        st.datetimes(datetime(2100, 1, 1), datetime(2100, 12, 31, 23, 59, 59)),
    ).map(lambda d: d.replace(tzinfo=TOKYO).isoformat())


def invalid_months() -> st.SearchStrategy[str]:
    """Text that is not a billing month ``YYYY-MM``: month 0 or above 12, other separators."""
    return st.one_of(
        st.integers(13, 99).map(lambda m: f"2024-{m:02d}"),
        st.just("2024-00"),
        st.integers(1, 12).map(lambda m: f"2024/{m:02d}"),
        st.integers(1, 12).map(lambda m: f"24-{m}"),
    )


def invalid_cycle_days() -> st.SearchStrategy[Any]:
    """Billing cycle days out of range (below 1, above 28) or not an integer."""
    return st.one_of(st.integers(max_value=0), st.integers(min_value=29), st.just("6"))


def year_months(min_year: int = 2011, max_year: int = 2026) -> st.SearchStrategy[YearMonth]:
    """Billing months from January of ``min_year`` to December of ``max_year``."""
    return st.builds(YearMonth, st.integers(min_year, max_year), st.integers(1, 12))


def billing_accounts(representatives: Sequence[str] = ()) -> st.SearchStrategy[dict[str, Any]]:
    """Billing accounts in the contract's JSON form (consolidated only if representatives)."""
    options = [
        st.builds(
            lambda n, d: {"method": "phone_bill", "number": n, "cycle_start_day": d},
            phones(),
            st.integers(1, 28),
        ),
        st.text(_DIGITS, min_size=8, max_size=8).map(
            lambda d: {"method": "customer_number", "number": "00" + d}
        ),
    ]
    if representatives:
        options.append(
            st.sampled_from(list(representatives)).map(
                lambda r: {"method": "consolidated", "representative": r}
            )
        )
    return st.one_of(options)


def tokyo_times(
    start: datetime = datetime(2023, 1, 1, tzinfo=TOKYO),
    end: datetime = datetime(2025, 12, 31, tzinfo=TOKYO),
) -> st.SearchStrategy[datetime]:
    """Aware times, biased towards Tokyo midnight on the 1st (the billing-month edges)."""
    plain = st.datetimes(
        min_value=start.replace(tzinfo=None), max_value=end.replace(tzinfo=None)
    ).map(lambda d: d.replace(tzinfo=TOKYO))
    edges = st.builds(
        lambda ym, minutes: ym.start() + timedelta(minutes=minutes),
        year_months(start.year, end.year),
        st.integers(-90, 90),
    ).filter(lambda d: start <= d <= end)
    return st.one_of(plain, edges)


def _iso(at: datetime, utc: bool) -> str:
    return (at.astimezone(UTC) if utc else at.astimezone(TOKYO)).isoformat()


# ---------------------------------------------------------------------------------------------
# Single commands (typed)


def commands() -> st.SearchStrategy[Command[Any]]:
    """Any one valid command object, with independent (mostly unrelated) identifiers."""
    return st.one_of([_command_json(name).map(parse_command) for name in sorted(COMMANDS)])


#: Every amount a command carries (rules §1: 0–99,999,999 yen).
_YEN_FIELDS = (
    ("open_line", "line_limit"),
    ("change_line_limit", "line_limit"),
    ("list_service", "price"),
    ("register_passport", "limit"),
    ("change_passport_limit", "limit"),
    ("refund", "amount"),
    ("set_fee", "flat_fee"),
)
#: The credential each command cannot do without (rules §2, "Who may do what").
_CREDENTIALS = (
    ("change_passport_limit", "access_key"),
    ("change_passport_details", "access_key"),
    ("delete_passport", "access_key"),
    ("set_notification", "access_key"),
    ("purchase", "password"),
    ("cancel", "password"),
    ("reset_password", "password"),
)


def _with(name: str, field: str, bad: st.SearchStrategy[Any]) -> st.SearchStrategy[dict[str, Any]]:
    """A ``name`` command whose ``field`` is replaced by a value drawn from ``bad``."""
    return st.builds(lambda c, v: {**c, field: v}, _command_json(name), bad)


def _without(name: str, field: str) -> st.SearchStrategy[dict[str, Any]]:
    return _command_json(name).map(lambda c: {k: v for k, v in c.items() if k != field})


def invalid_commands() -> st.SearchStrategy[dict[str, Any]]:
    """Command-log objects that must be refused with ``invalid_input``."""
    base = st.sampled_from(sorted(COMMANDS)).flatmap(_command_json)
    return st.one_of(
        base.map(lambda c: {**c, "at": c["at"][:19]}),  # a naive time
        base.map(lambda c: {**c, "surprise": 1}),  # an unknown field
        base.map(lambda c: {k: v for k, v in c.items() if k != "at"}),  # a missing field
        base.map(lambda c: {**c, "command": c["command"] + "_x"}),  # an unknown command
        st.builds(lambda c, at: {**c, "at": at}, base, invalid_times()),  # 1999 or 2100
        _with("open_line", "customer_id", invalid_customer_ids()),
        _with("purchase", "password", invalid_passwords()),
        _with("cancel", "password", invalid_passwords()),
        _with("open_line", "access_key", invalid_access_keys()),
        _with("set_notification", "access_key", invalid_access_keys()),
        _with("register_passport", "limit", st.sampled_from([-1, 1.5, "500", True])),
        st.sampled_from(_YEN_FIELDS).flatmap(lambda nf: _with(*nf, invalid_yen())),
        _with("purchase", "quantity", invalid_quantities()),
        st.sampled_from(_CREDENTIALS).flatmap(lambda nf: _without(*nf)),
        # register_passport needs the line's access key unless a provider registers it.
        _without("register_passport", "access_key").map(
            lambda c: {k: v for k, v in c.items() if k != "via_provider"}
        ),
        _with("reset_password", "channel", st.sampled_from(["online", "email", ""])),
        _with("set_fee", "effective_from", st.one_of(invalid_months(), st.just("1999-12"))),
        _with("issue_bills", "month", st.sampled_from(["1999-12", "2100-01"])),
    )


def _refs() -> st.SearchStrategy[str]:
    """A client's own reference for a purchase (named again by ``purchase_ref``)."""
    return st.text(_ALNUM + "-_#", min_size=1, max_size=20)


def _named_purchase() -> list[
    tuple[dict[str, st.SearchStrategy[Any]], dict[str, st.SearchStrategy[Any]]]
]:
    """A cancel or refund names its purchase by receipt number or by the client's reference."""
    receipts = st.text(string.ascii_uppercase + _DIGITS, min_size=5, max_size=21)
    return [({"receipt": receipts}, {}), ({"purchase_ref": _refs()}, {})]


_HIKARI = ("hikari_next", "hikari_light", "hikari_light_plus")
_EAST_KINDS = ("hikari_next", "hikari_light", "hikari_light_plus", "b_flets", "flets_adsl")


def _command_json(name: str) -> st.SearchStrategy[dict[str, Any]]:
    at = tokyo_times().map(lambda d: d.isoformat())
    cid = customer_ids("west")
    fields: dict[str, st.SearchStrategy[Any]] = {"at": at}
    optional: dict[str, st.SearchStrategy[Any]] = {}
    #: Alternative shapes of one command: (required fields, optional fields) besides ``at``.
    shapes: list[tuple[dict[str, st.SearchStrategy[Any]], dict[str, st.SearchStrategy[Any]]]]
    shapes = []
    match name:
        case "open_line":
            fields |= {
                "customer_id": cid,
                "operator": st.just("west"),
                "kind": st.sampled_from(["hikari_next", "hikari_light"]),
                "access_key": access_keys(),
                "line_limit": yen(0, 50_000),
                "billing": billing_accounts(),
            }
        case "change_line_limit":
            fields |= {"customer_id": cid, "line_limit": yen(0, 50_000)}
        case "change_billing":
            fields |= {
                "customer_id": cid,
                "billing": st.text(_DIGITS, min_size=8, max_size=8).map(
                    lambda d: {"method": "customer_number", "number": "00" + d}
                ),
                "reason": st.just("customer_number"),
            }
        case "change_line":
            fields |= {"customer_id": cid}
            shapes = [
                (
                    {
                        "change": st.sampled_from(
                            [
                                "relocation",
                                "rename",
                                "cancellation",
                                "transfer",
                                "collabo_conversion",
                            ]
                        )
                    },
                    {},
                ),
                (
                    {
                        "change": st.sampled_from(["item_change", "menu_change"]),
                        "new_kind": st.sampled_from(_EAST_KINDS),
                    },
                    {},
                ),
            ]
        case "regulate_line":
            fields |= {"customer_id": cid}
        case "lift_regulation":
            fields |= {"customer_id": cid, "channel": st.sampled_from(["written", "online"])}
        case "set_notification":
            fields |= {
                "customer_id": cid,
                "access_key": access_keys(),
                "provider": provider_codes(),
                "notify": st.booleans(),
                "consent": st.booleans(),
                "channel": st.sampled_from(["web", "phone"]),
            }
        case "register_provider":
            fields |= {
                "provider": provider_codes(),
                "name": st.just("Provider"),
                "contact": st.just("0120-000-000"),
                "goods": st.sampled_from(["information", "physical"]),
            }
        case "list_service":
            fields |= {
                "provider": provider_codes(),
                "service": service_codes(),
                "name": st.just("Service"),
                "pricing": st.sampled_from(["monthly", "per_purchase"]),
                "price": yen(0, 5_000),
            }
        case "register_passport":
            fields |= {
                "customer_id": cid,
                "passport_id": passport_ids(),
                "password": passwords(),
                "email": emails(),
                "applicant": applicants(),
                "limit": yen(0, 6_000),
                "line_auth": st.booleans(),
            }
            # The line holder's (with the access key) or a provider's on their behalf.
            shapes = [
                ({"access_key": access_keys()}, {"via_provider": provider_codes()}),
                ({"via_provider": provider_codes()}, {}),
            ]
        case "change_passport_limit":
            fields |= {
                "passport_id": passport_ids(),
                "access_key": access_keys(),
                "limit": yen(0, 6_000),
            }
        case "change_passport_details":
            fields |= {"passport_id": passport_ids(), "access_key": access_keys()}
            # At least one of a new password, e-mail or line-authentication setting.
            shapes = [
                ({"password": passwords()}, {"email": emails(), "line_auth": st.booleans()}),
                ({"email": emails()}, {"line_auth": st.booleans()}),
                ({"line_auth": st.booleans()}, {}),
            ]
        case "delete_passport":
            fields |= {"passport_id": passport_ids(), "access_key": access_keys()}
        case "erase_personal_data":
            fields |= {"passport_id": passport_ids(), "reason": st.just("customer request")}
        case "reset_password":
            fields |= {
                "passport_id": passport_ids(),
                "password": passwords(),
                "channel": st.sampled_from(["phone", "written"]),
            }
        case "purchase":
            fields |= {
                "passport_id": passport_ids(),
                "password": passwords(),
                "provider": provider_codes(),
                "service": service_codes(),
            }
            optional = {"quantity": quantities(), "presented_line": cid, "ref": _refs()}
        case "cancel":
            fields |= {"password": passwords()}
            shapes = _named_purchase()
        case "refund":
            fields |= {"amount": yen(1, 5_000), "reason": st.just("refund")}
            shapes = _named_purchase()
        case "set_fee":
            fields |= {
                "operator": st.sampled_from(["east", "west"]),
                "effective_from": year_months(2012, 2026).map(str),
                "flat_fee": yen(0, 2_000),
            }
        case "issue_bills":
            fields |= {"month": year_months(2023, 2025).map(str)}
        case _:  # a command added to the contract without a strategy is a bug here
            raise LookupError(f"no strategy for command {name!r}")
    head = {"command": st.just(name), **fields}
    if not shapes:
        return st.fixed_dictionaries(head, optional=optional)
    return st.one_of(
        [
            st.fixed_dictionaries({**head, **required}, optional={**optional, **more})
            for required, more in shapes
        ]
    )


# ---------------------------------------------------------------------------------------------
# Realistic command logs


def predicted_receipt(passport_id: str, n: int) -> str:
    """The receipt number the engine gives the ``n``-th accepted purchase of an ID."""
    return receipt_number(passport_id, n)


_ACTIONS = (
    ("purchase", 30),
    ("register_passport", 8),
    ("cancel", 8),
    ("refund", 3),
    ("wrong_password", 3),
    ("wrong_access_key", 2),
    ("reset_password", 2),
    ("erase_personal_data", 1),
    ("change_passport_limit", 3),
    ("change_line_limit", 2),
    ("regulate_line", 2),
    ("lift_regulation", 2),
    ("set_notification", 2),
    ("change_billing", 2),
    ("change_passport_details", 2),
    ("delete_passport", 1),
    ("change_line", 3),
    ("set_fee", 1),
    ("issue_bills", 2),
    ("retry", 3),
    ("reuse_key", 1),
    ("open_line", 2),
)
#: A password nobody was given (valid in form, wrong in fact).
WRONG_PASSWORD = "Wrong000"
#: An access key no line was given (valid in form, wrong in fact).
WRONG_ACCESS_KEY = "Wrong123"
#: From this business time customers no longer change their IDs' details (rules §2).
_CUTOFF = datetime(2024, 12, 1, tzinfo=TOKYO)


@st.composite
def command_logs(
    draw: st.DrawFn,
    *,
    min_steps: int = 1,
    max_steps: int = 40,
    start: datetime = datetime(2024, 1, 1, 9, 0, tzinfo=TOKYO),
    keys: bool = True,
) -> list[dict[str, Any]]:
    """A realistic command log (JSON objects in order).

    Providers and services are listed first, lines opened before use, IDs registered before
    purchases; business times only move forward, spread over months and biased towards Tokyo
    midnight; regulation, lifting, line changes (also of the line's kind), deletions, refunds,
    limit changes, password resets, erasures of personal data, fee settings, idempotent retries
    (and keys reused for another body) and bill issuing are mixed in.  Credentials are those
    of contract 2: the line holder's commands carry the line's access key, purchases and
    cancellations the password of the Passport ID — mostly right, sometimes wrong.  Some
    commands are refused by the rules — that is part of the history — but none is malformed.
    ``cancel`` and ``refund`` name a purchase by the reference it was given, or by its receipt
    predicted from the purchases so far (:func:`predicted_receipt`).
    """
    log: list[dict[str, Any]] = []
    now = start
    n_providers = draw(st.integers(1, 3))
    providers: list[str] = [f"P{i}" for i in range(n_providers)]
    services: list[tuple[str, str, str, int]] = []
    for code in providers:
        log.append(
            {
                "command": "register_provider",
                "at": now.isoformat(),
                "provider": code,
                "name": f"{code} Co.",
                "contact": "0120-000-000",
                "goods": draw(st.sampled_from(["information"] * 3 + ["physical"])),
            }
        )
        for j in range(draw(st.integers(1, 3))):
            pricing = draw(st.sampled_from(["monthly", "per_purchase"]))
            price = draw(st.sampled_from([100, 300, 525, 980, 1500]))
            services.append((code, f"s{j}", pricing, price))
            log.append(
                {
                    "command": "list_service",
                    "at": now.isoformat(),
                    "provider": code,
                    "service": f"s{j}",
                    "name": f"service {j}",
                    "pricing": pricing,
                    "price": price,
                }
            )
    lines: list[str] = []
    operator_of: dict[str, str] = {}
    kind_of: dict[str, str] = {}
    key_of: dict[str, str] = {}  # the line's access key
    passports: dict[str, str] = {}  # passport -> line
    password: dict[str, str] = {}
    bought: dict[str, int] = {}
    receipts: list[str] = []
    buyer: dict[str, str] = {}  # receipt -> passport
    refs: dict[str, str] = {}  # the client's reference -> the receipt it names
    sent: list[dict[str, Any]] = []
    opened = 0  # customer IDs are never reused

    def stamp(command: dict[str, Any]) -> dict[str, Any]:
        utc = draw(st.booleans())
        command["at"] = _iso(now, utc)
        if keys and draw(st.integers(0, 4)) == 0:
            command["key"] = f"k{len(log)}"
        return command

    def new_customer_id() -> str:
        nonlocal opened
        opened += 1
        return f"CAF{opened:010d}"

    def open_line() -> dict[str, Any]:
        operator = draw(st.sampled_from(["west", "east"]))
        cid = new_customer_id()
        lines.append(cid)
        operator_of[cid] = operator
        kind_of[cid] = draw(st.sampled_from(_EAST_KINDS if operator == "east" else _HIKARI[:2]))
        key_of[cid] = f"Key{opened:05d}"
        return {
            "command": "open_line",
            "customer_id": cid,
            "operator": operator,
            "kind": kind_of[cid],
            "access_key": key_of[cid],
            "line_limit": draw(st.sampled_from([3000, 5000, 10000, 30000])),
            "billing": draw(billing_accounts(lines[:-1])),
        }

    def register(line: str) -> dict[str, Any]:
        pid = f"id{len(password) + 1}.{draw(st.sampled_from(['a', 'b']))}"
        passports[pid] = line
        password[pid] = draw(st.sampled_from(["pass1", "Secret99"]))
        command = {
            "command": "register_passport",
            "customer_id": line,
            "access_key": key_of[line],
            "passport_id": pid,
            "password": password[pid],
            "email": f"{pid}@example.jp",
            "applicant": {"name": "山田", "phone": "06-1234-5678", "contract_holder": True},
            "limit": draw(st.sampled_from([500, 1000, 2000, 5000])),
            # §9: line authentication exists on Hikari lines only.
            "line_auth": kind_of[line] in _HIKARI and draw(st.sampled_from([False] * 3 + [True])),
        }
        if draw(st.integers(0, 5)) == 0:  # a provider registers it on the customer's behalf
            command["via_provider"] = draw(st.sampled_from(providers))
            if draw(st.booleans()):
                del command["access_key"]
        return command

    def purchase(pid: str, secret: str) -> dict[str, Any]:
        provider, service, pricing, _ = draw(st.sampled_from(services))
        command: dict[str, Any] = {
            "command": "purchase",
            "passport_id": pid,
            "password": secret,
            "provider": provider,
            "service": service,
        }
        if pricing == "per_purchase" and draw(st.integers(0, 3)) == 0:
            command["quantity"] = draw(st.sampled_from([2, 3, 10]))
        if draw(st.integers(0, 2)) == 0:  # the client's own name for it
            command["ref"] = f"order-{len(log)}"
        came_over = draw(st.sampled_from(["own", "own", "own", "unknown", "other"]))
        if came_over == "own":
            command["presented_line"] = passports[pid]
        elif came_over == "other":
            command["presented_line"] = draw(st.sampled_from(lines))
        return command

    def change_line(line: str) -> dict[str, Any]:
        change = draw(
            st.sampled_from(
                ["relocation", "rename", "item_change", "menu_change", "cancellation", "transfer"]
            )
        )
        kind = kind_of[line]
        if change == "menu_change" and kind not in _HIKARI[:2]:
            change = "rename"
        command: dict[str, Any] = {"command": "change_line", "customer_id": line, "change": change}
        if change == "menu_change":
            command["new_kind"] = "hikari_light" if kind == "hikari_next" else "hikari_next"
        elif change == "item_change" and draw(st.sampled_from([True, True, False])):
            # §6: an item change never switches Hikari Next ⇄ Hikari Light (a menu change).
            kinds = _EAST_KINDS if operator_of[line] == "east" else _HIKARI[:2]
            command["new_kind"] = draw(
                st.sampled_from([k for k in kinds if {k, kind} != {"hikari_next", "hikari_light"}])
            )
        kind_of[line] = command.get("new_kind", kind)
        renumbered = change in ("relocation", "transfer") and draw(st.booleans())
        if renumbered:
            new_cid = new_customer_id()
            lines.append(new_cid)
            command["new_customer_id"] = new_cid
            # The line carries on under its new customer ID, with its access key.
            operator_of[new_cid], kind_of[new_cid] = operator_of[line], kind_of[line]
            key_of[new_cid] = key_of[line]
        if renumbered or change in ("cancellation", "transfer", "menu_change"):
            # The service ends: the line's IDs are deleted (§6).
            for gone in [p for p, owner in passports.items() if owner == line]:
                del passports[gone]
        if (renumbered or change == "cancellation") and len(lines) > 1:
            lines.remove(line)
        return command

    def name_purchase() -> dict[str, str]:
        """A purchase named by its (predicted) receipt, or by the reference it was given."""
        if bool(refs) and draw(st.booleans()):
            return {"purchase_ref": draw(st.sampled_from(sorted(refs)))}
        return {"receipt": draw(st.sampled_from(receipts))}

    def named(command: dict[str, Any]) -> str:
        return str(command["receipt"] if "receipt" in command else refs[command["purchase_ref"]])

    def wrong_access_key(line: str, pid: str | None) -> dict[str, Any]:
        commands: list[dict[str, Any]] = [
            {
                "command": "set_notification",
                "customer_id": line,
                "access_key": WRONG_ACCESS_KEY,
                "provider": draw(st.sampled_from(providers)),
                "notify": True,
                "consent": True,
                "channel": "web",
            }
        ]
        if pid is not None:
            commands += [
                {"command": "delete_passport", "passport_id": pid},
                {"command": "change_passport_limit", "passport_id": pid, "limit": 300},
            ]
            commands = [{**c, "access_key": WRONG_ACCESS_KEY} for c in commands]
        return draw(st.sampled_from(commands))

    log.append(stamp(open_line()))
    actions, weights = zip(*_ACTIONS, strict=True)
    pool = [a for a, w in zip(actions, weights, strict=True) for _ in range(w)]
    for _ in range(draw(st.integers(min_steps, max_steps))):
        jump = draw(st.sampled_from(["minutes", "days", "weeks", "month_edge"]))
        if jump == "minutes":
            now += timedelta(minutes=draw(st.integers(0, 600)))
        elif jump == "days":
            now += timedelta(days=draw(st.integers(1, 6)), minutes=draw(st.integers(0, 59)))
        elif jump == "weeks":
            now += timedelta(days=draw(st.integers(7, 40)))
        else:  # just before or after the next Tokyo midnight of the 1st
            edge = YearMonth.of(now).next().start()
            now = max(now, edge + timedelta(minutes=draw(st.integers(-45, 45))))
        action = draw(st.sampled_from(pool))
        command: dict[str, Any] | None = None
        line = draw(st.sampled_from(lines))
        ids = sorted(passports)
        pid = draw(st.sampled_from(ids)) if ids else None
        if action == "open_line":
            command = open_line()
        elif action == "register_passport" or (action == "purchase" and pid is None):
            command = register(line)
        elif action == "purchase" and pid is not None:
            command = purchase(pid, password[pid])
            bought[pid] = bought.get(pid, 0) + 1
            receipt = predicted_receipt(pid, bought[pid])
            receipts.append(receipt)
            buyer[receipt] = pid
            if "ref" in command:
                refs[command["ref"]] = receipt
        elif action == "wrong_password" and pid is not None:
            if bool(receipts) and draw(st.booleans()):
                command = {
                    "command": "cancel",
                    "receipt": draw(st.sampled_from(receipts)),
                    "password": WRONG_PASSWORD,
                }
            else:
                command = purchase(pid, WRONG_PASSWORD)
        elif action == "wrong_access_key":
            command = wrong_access_key(line, pid)
        elif action == "cancel" and receipts:
            command = {"command": action, **name_purchase()}
            command["password"] = password[buyer[named(command)]]
        elif action == "refund" and receipts:
            command = {
                "command": action,
                **name_purchase(),
                "amount": draw(st.sampled_from([50, 100, 525, 1500])),
                "reason": "返金",
            }
        elif action == "reset_password" and pid is not None:
            password[pid] = draw(st.sampled_from(["pass1", "Reset777"]))
            command = {
                "command": action,
                "passport_id": pid,
                "password": password[pid],
                "channel": draw(st.sampled_from(["phone", "written"])),
            }
        elif action == "erase_personal_data" and password:
            command = {
                "command": action,
                "passport_id": draw(st.sampled_from(sorted(password))),  # also a deleted ID
                "reason": "本人からの請求",
            }
        elif action == "change_passport_limit" and pid is not None:
            command = {
                "command": action,
                "passport_id": pid,
                "access_key": key_of[passports[pid]],
                "limit": draw(st.sampled_from([0, 300, 1000, 3000])),
            }
        elif action == "change_passport_details" and pid is not None:
            command = {
                "command": action,
                "passport_id": pid,
                "access_key": key_of[passports[pid]],
            }
            if now < _CUTOFF:  # from the cut-off the details are view-only (refused)
                password[pid] = draw(st.sampled_from(["pass1", "Newpass2"]))
                command["password"] = password[pid]
            if kind_of[passports[pid]] in _HIKARI and draw(st.booleans()):
                command["line_auth"] = draw(st.booleans())
            if len(command) == 4:
                command["email"] = f"new.{pid}@example.jp"
        elif action == "delete_passport" and pid is not None:
            command = {
                "command": action,
                "passport_id": pid,
                "access_key": key_of[passports[pid]],
            }
            del passports[pid]
        elif action == "change_line_limit":
            command = {
                "command": action,
                "customer_id": line,
                "line_limit": draw(st.sampled_from([1000, 5000, 30000])),
            }
        elif action == "regulate_line":
            command = {"command": action, "customer_id": line}
        elif action == "lift_regulation":
            command = {
                "command": action,
                "customer_id": line,
                "channel": draw(st.sampled_from(["written"] * 4 + ["online"])),
            }
        elif action == "set_notification":
            command = {
                "command": action,
                "customer_id": line,
                "access_key": key_of[line],
                "provider": draw(st.sampled_from(providers)),
                "notify": draw(st.booleans()),
                "consent": draw(st.sampled_from([True] * 4 + [False])),
                "channel": "web",
            }
        elif action == "change_billing":
            command = {
                "command": action,
                "customer_id": line,
                "billing": {"method": "customer_number", "number": "0098765432"},
                "reason": "customer_number",
            }
        elif action == "change_line":
            command = change_line(line)
        elif action == "set_fee":
            month = YearMonth.of(now)
            command = {
                "command": action,
                "operator": draw(st.sampled_from(["east", "west"])),
                "effective_from": str(
                    draw(st.sampled_from([month.previous(), month, month.next()]))
                ),
                "flat_fee": draw(st.sampled_from([30, 45, 60])),
            }
        elif action == "issue_bills":
            command = {"command": action, "month": str(YearMonth.of(now).previous())}
        elif action == "retry" and sent:
            retry = dict(draw(st.sampled_from(sent)))
            log.append(retry)  # same key, same body: answered from the first result
            continue
        elif action == "reuse_key" and sent:
            # The key of an earlier command, now for another body (a later instant, and maybe
            # a wrong password): all checks run, and idempotency_conflict is one of them.
            reused = {**draw(st.sampled_from(sent)), "at": _iso(now, utc=False)}
            if "password" in reused and reused["command"] != "register_passport":
                reused["password"] = draw(st.sampled_from([reused["password"], WRONG_PASSWORD]))
            log.append(reused)
            continue
        if command is not None:
            stamped = stamp(command)
            log.append(stamped)
            if "key" in stamped:
                sent.append(stamped)
    return log


def format_log(log: Sequence[dict[str, Any]]) -> str:
    """A command log as JSON Lines, ready to save and replay with ``matome run``."""
    return "\n".join(json.dumps(c, ensure_ascii=False) for c in log) + "\n"
