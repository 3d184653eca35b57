"""Hypothesis strategies for matome: value types (valid and invalid), commands and command logs.

Everything here generates *inputs*: the JSON command-log form of INTERCHANGE.md (``dict``
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
from matome.commands import COMMANDS, Command, parse_command
from matome.values import TOKYO, YearMonth

__all__ = [
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
    "invalid_yen",
    "passport_ids",
    "passwords",
    "provider_codes",
    "service_codes",
    "tokyo_times",
    "year_months",
    "yen",
]

_ALNUM = string.ascii_letters + string.digits
_DIGITS = string.digits

# ---------------------------------------------------------------------------------------------
# Value types (DOMAIN.md §1)


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


def invalid_passwords() -> st.SearchStrategy[str]:
    return st.one_of(
        st.text(_ALNUM, max_size=3),
        st.text(_ALNUM, min_size=11, max_size=20),
        st.text(_ALNUM, min_size=3, max_size=8).map(lambda s: s + "-"),
    )


def access_keys() -> st.SearchStrategy[str]:
    """Access keys: 8 ASCII alphanumerics."""
    return st.text(_ALNUM, min_size=8, max_size=8)


def invalid_access_keys() -> st.SearchStrategy[str]:
    return st.one_of(
        st.text(_ALNUM, max_size=7),
        st.text(_ALNUM, min_size=9, max_size=12),
        st.text(_ALNUM, min_size=7, max_size=7).map(lambda s: s + "_"),
    )


def invalid_billing_numbers() -> st.SearchStrategy[str]:
    return st.one_of(
        st.text(_DIGITS, min_size=8, max_size=8).map(lambda d: "01" + d),
        st.text(_DIGITS, min_size=0, max_size=12)
        .map(lambda d: "00" + d)
        .filter(lambda s: len(s) != 10),
    )


def invalid_emails() -> st.SearchStrategy[str]:
    return st.one_of(
        st.text(string.ascii_lowercase, min_size=1, max_size=10),  # no @
        st.text(string.ascii_lowercase, min_size=1, max_size=10).map(lambda s: s + "@"),
        st.text(string.ascii_lowercase, min_size=1, max_size=10).map(lambda s: f"{s}@host"),
        st.text(string.ascii_lowercase, min_size=1, max_size=10).map(lambda s: f"{s} @x.jp"),
    )


def invalid_phones() -> st.SearchStrategy[str]:
    return st.one_of(
        st.text(_DIGITS, min_size=1, max_size=9),
        st.text(_DIGITS, min_size=12, max_size=15),
        st.text(_DIGITS, min_size=9, max_size=10).map(lambda d: "1" + d),  # not 0-led
        st.text(_DIGITS, min_size=4, max_size=4).map(lambda d: f"06-{d}-abcd"),
    )


def emails() -> st.SearchStrategy[str]:
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
    return st.fixed_dictionaries(
        {
            "name": st.sampled_from(["山田 太郎", "鈴木 花子", "Sato Jiro", "田中"]),
            "phone": phones(),
            "contract_holder": st.booleans(),
        }
    )


def provider_codes() -> st.SearchStrategy[str]:
    return st.text(string.ascii_uppercase + _DIGITS, min_size=1, max_size=6)


def service_codes() -> st.SearchStrategy[str]:
    return st.text(string.ascii_lowercase + _DIGITS + "-", min_size=1, max_size=10).filter(
        lambda s: s[0] != "-"
    )


def yen(min_value: int = 0, max_value: int = 100_000) -> st.SearchStrategy[int]:
    """Whole yen as the JSON integer of the contract."""
    return st.integers(min_value, max_value)


def invalid_yen() -> st.SearchStrategy[Any]:
    """What money is not: floats, negative amounts (for prices and limits), booleans, text."""
    return st.one_of(
        st.floats(allow_nan=False).filter(lambda f: not f.is_integer()),
        st.integers(max_value=-1),
        st.booleans(),
        st.integers(0, 10_000).map(str),
    )


def invalid_months() -> st.SearchStrategy[str]:
    return st.one_of(
        st.integers(13, 99).map(lambda m: f"2024-{m:02d}"),
        st.just("2024-00"),
        st.integers(1, 12).map(lambda m: f"2024/{m:02d}"),
        st.integers(1, 12).map(lambda m: f"24-{m}"),
    )


def invalid_cycle_days() -> st.SearchStrategy[Any]:
    return st.one_of(st.integers(max_value=0), st.integers(min_value=29), st.just("6"))


def year_months(min_year: int = 2011, max_year: int = 2026) -> st.SearchStrategy[YearMonth]:
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


def invalid_commands() -> st.SearchStrategy[dict[str, Any]]:
    """Command-log objects that must be refused with ``invalid_input``."""
    base = st.sampled_from(sorted(COMMANDS)).flatmap(_command_json)
    return st.one_of(
        base.map(lambda c: {**c, "at": c["at"][:19]}),  # a naive time
        base.map(lambda c: {**c, "surprise": 1}),  # an unknown field
        base.map(lambda c: {k: v for k, v in c.items() if k != "at"}),  # a missing field
        base.map(lambda c: {**c, "command": c["command"] + "_x"}),  # an unknown command
        st.builds(
            lambda c, bad: {**c, "customer_id": bad},
            _command_json("open_line"),
            invalid_customer_ids(),
        ),
        st.builds(
            lambda c, bad: {**c, "password": bad}, _command_json("purchase"), invalid_passwords()
        ),
        st.builds(
            lambda c, bad: {**c, "access_key": bad},
            _command_json("open_line"),
            invalid_access_keys(),
        ),
        st.builds(
            lambda c, bad: {**c, "limit": bad},
            _command_json("register_passport"),
            st.sampled_from([-1, 1.5, "500", True]),
        ),
    )


def _command_json(name: str) -> st.SearchStrategy[dict[str, Any]]:
    at = tokyo_times().map(lambda d: d.isoformat())
    cid = customer_ids("west")
    fields: dict[str, st.SearchStrategy[Any]] = {"at": at}
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
            fields |= {
                "customer_id": cid,
                "change": st.sampled_from(
                    ["relocation", "rename", "cancellation", "transfer", "collabo_conversion"]
                ),
            }
        case "regulate_line":
            fields |= {"customer_id": cid}
        case "lift_regulation":
            fields |= {"customer_id": cid, "channel": st.sampled_from(["written", "online"])}
        case "set_notification":
            fields |= {
                "customer_id": cid,
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
        case "change_passport_limit":
            fields |= {"passport_id": passport_ids(), "limit": yen(0, 6_000)}
        case "change_passport_details":
            fields |= {"passport_id": passport_ids(), "password": passwords()}
        case "delete_passport":
            fields |= {"passport_id": passport_ids()}
        case "purchase":
            fields |= {
                "passport_id": passport_ids(),
                "password": passwords(),
                "provider": provider_codes(),
                "service": service_codes(),
            }
        case "cancel":
            fields |= {
                "receipt": st.text(string.ascii_uppercase + _DIGITS, min_size=5, max_size=21)
            }
        case "refund":
            fields |= {
                "receipt": st.text(string.ascii_uppercase + _DIGITS, min_size=5, max_size=21),
                "amount": yen(1, 5_000),
                "reason": st.just("refund"),
            }
        case "issue_bills":
            fields |= {"month": year_months(2023, 2025).map(str)}
        case _:  # a command added to the contract without a strategy is a bug here
            raise LookupError(f"no strategy for command {name!r}")
    return st.fixed_dictionaries({"command": st.just(name), **fields})


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
    ("wrong_password", 2),
    ("change_passport_limit", 3),
    ("change_line_limit", 2),
    ("regulate_line", 2),
    ("lift_regulation", 2),
    ("set_notification", 3),
    ("change_billing", 2),
    ("change_passport_details", 1),
    ("delete_passport", 1),
    ("change_line", 1),
    ("issue_bills", 2),
    ("retry", 3),
    ("open_line", 2),
)


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
    midnight; regulation, lifting, line changes, deletions, refunds, limit changes, wrong
    passwords, idempotent retries and bill issuing are mixed in.  Some commands are refused
    by the rules — that is part of the history.  Receipts used by ``cancel`` and ``refund`` are
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
    passports: dict[str, str] = {}  # passport -> line
    password: dict[str, str] = {}
    bought: dict[str, int] = {}
    receipts: list[str] = []
    sent: list[dict[str, Any]] = []

    def stamp(command: dict[str, Any]) -> dict[str, Any]:
        utc = draw(st.booleans())
        command["at"] = _iso(now, utc)
        if keys and draw(st.integers(0, 4)) == 0:
            command["key"] = f"k{len(log)}"
        return command

    def open_line() -> dict[str, Any]:
        operator = draw(st.sampled_from(["west", "east"]))
        cid = f"CAF{len(lines) + 1:010d}"
        lines.append(cid)
        kinds = ["hikari_next", "hikari_light"] + (
            ["b_flets", "flets_adsl", "hikari_light_plus"] if operator == "east" else []
        )
        return {
            "command": "open_line",
            "customer_id": cid,
            "operator": operator,
            "kind": draw(st.sampled_from(kinds)),
            "access_key": "Key12345",
            "line_limit": draw(st.sampled_from([3000, 5000, 10000, 30000])),
            "billing": draw(billing_accounts(lines[:-1])),
        }

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
            pid = f"id{len(passports) + 1}.{draw(st.sampled_from(['a', 'b']))}"
            passports[pid] = line
            password[pid] = draw(st.sampled_from(["pass1", "Secret99"]))
            command = {
                "command": "register_passport",
                "customer_id": line,
                "passport_id": pid,
                "password": password[pid],
                "email": f"{pid}@example.jp",
                "applicant": {"name": "山田", "phone": "06-1234-5678", "contract_holder": True},
                "limit": draw(st.sampled_from([500, 1000, 2000, 5000])),
                "line_auth": draw(st.sampled_from([False, False, False, True])),
            }
        elif action in ("purchase", "wrong_password") and pid is not None and services:
            provider, service, _, _ = draw(st.sampled_from(services))
            command = {
                "command": "purchase",
                "passport_id": pid,
                "password": password[pid] if action == "purchase" else "Wrong000",
                "provider": provider,
                "service": service,
            }
            if draw(st.sampled_from([True, True, False])):
                command["presented_line"] = passports[pid]
            if action == "purchase":
                bought[pid] = bought.get(pid, 0) + 1
                receipts.append(predicted_receipt(pid, bought[pid]))
        elif action in ("cancel", "refund") and receipts:
            receipt = draw(st.sampled_from(receipts))
            command = {"command": action, "receipt": receipt}
            if action == "refund":
                command |= {"amount": draw(st.sampled_from([50, 100, 525])), "reason": "返金"}
        elif action == "change_passport_limit" and pid is not None:
            command = {
                "command": action,
                "passport_id": pid,
                "limit": draw(st.sampled_from([0, 300, 1000, 3000])),
            }
        elif action == "change_passport_details" and pid is not None:
            password[pid] = draw(st.sampled_from(["pass1", "Newpass2"]))
            command = {"command": action, "passport_id": pid, "password": password[pid]}
        elif action == "delete_passport" and pid is not None:
            command = {"command": action, "passport_id": pid}
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
            change = draw(
                st.sampled_from(["relocation", "rename", "item_change", "cancellation", "transfer"])
            )
            command = {"command": action, "customer_id": line, "change": change}
            renumbered = change in ("relocation", "transfer") and draw(st.booleans())
            if renumbered:
                new_cid = f"CAF{len(lines) + 1:010d}"
                lines.append(new_cid)
                command["new_customer_id"] = new_cid
            if renumbered or change in ("cancellation", "transfer"):
                # The service ends: the line's IDs are deleted (§6).
                for gone in [p for p, owner in passports.items() if owner == line]:
                    del passports[gone]
            if (renumbered or change == "cancellation") and len(lines) > 1:
                lines.remove(line)
        elif action == "issue_bills":
            command = {"command": action, "month": str(YearMonth.of(now).previous())}
        elif action == "retry" and sent:
            retry = dict(draw(st.sampled_from(sent)))
            if "key" in retry:
                log.append(retry)  # same key, same body: answered from the first result
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
