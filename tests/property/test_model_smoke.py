"""Smoke test of the reference model: hand-written histories through the engine and the model.

Each history is replayed through ``Engine`` and ``ReferenceModel`` command by command; the two
must agree on accepted/refused and the error code of every command, on the data of every
accepted command (receipts, prices, what was cancelled or deleted, ...), on ``closed_through``,
and on the rows and subtotal of every line's bill for every month the model has seen.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from matome.commands import Command, parse_command
from matome.engine import Engine
from matome.errors import InvalidInput, MatomeError
from matome.testing.model import ModelResult, ReferenceModel
from matome.wire import to_json
from tests.integration.test_command_log import LOG

History = list[dict[str, Any]]

APPLICANT = {"name": "Yamada Taro", "phone": "06-1234-5678", "contract_holder": True}
L1, L2, L3, EAST = "CAF0000000001", "CAF0000000002", "CAF0000000003", "COP00000001"


@pytest.fixture
def engine() -> Iterator[Engine]:
    e = Engine.open(":memory:", hash_iterations=1)
    yield e
    e.close()


def _engine_apply(engine: Engine, command: Command[Any]) -> ModelResult:
    try:
        result = engine.execute(command)
    except MatomeError as e:
        return ModelResult(False, e.code, {}, e.message)
    return ModelResult(True, None, result.to_json())


def replay(
    engine: Engine, model: ReferenceModel, history: History, *, malformed: bool = False
) -> list[str]:
    """Run ``history`` through both; return the disagreements (empty when they agree).

    A command may carry ``"_label": name`` (its receipt is remembered) and a receipt field
    ``"$name"`` (replaced by the remembered receipt).  A command that does not parse is
    refused as invalid_input before it reaches either side, so it never disagrees; the
    state-free argument rules (e.g. §6's "a rename takes no new customer ID") live there.
    """
    receipts: dict[str, str] = {}
    problems: list[str] = []
    for i, raw in enumerate(history):
        obj = {k: v for k, v in raw.items() if k != "_label"}
        if isinstance(obj.get("receipt"), str) and obj["receipt"].startswith("$"):
            obj["receipt"] = receipts.get(obj["receipt"][1:], "R0")
        try:
            command = parse_command(obj)
        except InvalidInput:
            continue
        got = _engine_apply(engine, command)
        want = model.apply(command)
        if (got.ok, got.code) != (want.ok, want.code):
            problems.append(
                f"#{i} {obj['command']} at {obj['at']}: engine {got.code or 'ok'} "
                f"({got.message}), model {want.code or 'ok'} ({want.message})"
            )
        if got.ok and want.ok:
            for name, value in want.data.items():
                theirs = got.data.get(name)
                if name in ("cancelled", "deleted"):  # the same receipts/IDs, in any order
                    theirs, value = sorted(theirs or []), sorted(value)
                if theirs != value:
                    problems.append(f"#{i} {obj['command']}: {name} {theirs!r} != {value!r}")
            if "_label" in raw:
                receipts[raw["_label"]] = got.data["receipt"]
    if engine.closed_through() != model.closed_through():
        problems.append(f"closed through {engine.closed_through()} != {model.closed_through()}")
    return problems


def compare_bills(engine: Engine, model: ReferenceModel) -> list[str]:
    problems: list[str] = []
    for cid in model.lines():
        for month in model.months():
            got = to_json(engine.bill(cid, month))
            want = model.bill(cid, month)
            rows = [(r["provider"], r["amount"]) for r in got["rows"]]
            mrows = [(r["provider"], r["amount"]) for r in want["rows"]]
            if rows != mrows or got["subtotal"] != want["subtotal"]:
                problems.append(f"bill {cid} {month}: engine {rows}, model {mrows}")
    return problems


def check(engine: Engine, history: History, *, malformed: bool = False) -> ReferenceModel:
    model = ReferenceModel()
    problems = replay(engine, model, history, malformed=malformed)
    problems += compare_bills(engine, model)
    assert not problems, "\n".join(problems)
    return model


# ---------------------------------------------------------------------------------------------
# Builders


def at(day: str, time: str = "10:00") -> str:
    """``day`` is ``YYYY-MM-DD``; Tokyo time."""
    return f"{day}T{time}:00+09:00"


def provider(code: str = "A", goods: str = "information", when: str = "2024-01-01") -> History:
    return [
        {"command": "register_provider", "at": at(when, "00:00"), "provider": code,
         "name": f"{code} Co.", "contact": "0120-1", "goods": goods},
        {"command": "list_service", "at": at(when, "00:00"), "provider": code,
         "service": "back", "name": "back", "pricing": "monthly", "price": 525},
        {"command": "list_service", "at": at(when, "00:00"), "provider": code,
         "service": "anime", "name": "anime", "pricing": "monthly", "price": 300},
        {"command": "list_service", "at": at(when, "00:00"), "provider": code,
         "service": "item", "name": "item", "pricing": "per_purchase", "price": 300},
    ]  # fmt: skip


def line(
    cid: str = L1,
    when: str = "2024-01-01",
    operator: str = "west",
    kind: str = "hikari_next",
    cap: int = 10_000,
    **kw: Any,
) -> dict[str, Any]:
    return {"command": "open_line", "at": at(when, "00:00"), "customer_id": cid,
            "operator": operator, "kind": kind, "access_key": "abcd1234", "line_limit": cap,
            "billing": {"method": "customer_number", "number": "0012345678"}, **kw}  # fmt: skip


def passport(pid: str, when: str, cid: str = L1, limit: int = 3000, **kw: Any) -> dict[str, Any]:
    return {"command": "register_passport", "at": when, "customer_id": cid, "passport_id": pid,
            "password": "pass1", "email": "a@example.jp", "applicant": APPLICANT,
            "limit": limit, "line_auth": False, **kw}  # fmt: skip


def buy(pid: str, when: str, service: str, label: str | None = None, **kw: Any) -> dict[str, Any]:
    c = {"command": "purchase", "at": when, "passport_id": pid, "password": "pass1",
         "provider": "A", "service": service, **kw}  # fmt: skip
    if label:
        c["_label"] = label
    return c


def cancel(label: str, when: str) -> dict[str, Any]:
    return {"command": "cancel", "at": when, "receipt": f"${label}"}


def world(limit: int = 3000) -> History:
    return [*provider(), line(), passport("taro", at("2024-01-01", "01:00"), limit=limit)]


# ---------------------------------------------------------------------------------------------
# The integration test's command log


def test_integration_log_agrees(engine: Engine) -> None:
    history: History = []
    for command, _, label in LOG:
        raw = dict(command)
        if label:
            raw["_label"] = label
        history.append(raw)
    model = check(engine, history, malformed=True)
    assert model.lines() == sorted(["CAF0000000001", "CAF0000000002", "COP12345678"])


# ---------------------------------------------------------------------------------------------
# §4 charging patterns, one history each


@pytest.mark.parametrize(
    "steps",
    [
        # pattern 1: purchase N, cancel N+2
        [buy("taro", at("2024-01-10"), "back", "s"), cancel("s", at("2024-03-10"))],
        # pattern 2 and 3
        [buy("taro", at("2024-01-10"), "back", "s"), cancel("s", at("2024-02-10"))],
        [buy("taro", at("2024-01-10"), "back", "s"), cancel("s", at("2024-01-20"))],
        # pattern 4/5: cancel and buy again in N+2, charged once
        [buy("taro", at("2024-02-10"), "back", "s"), cancel("s", at("2024-03-05")),
         buy("taro", at("2024-03-06"), "back", "t"), cancel("t", at("2024-03-07")),
         buy("taro", at("2024-03-08"), "back", "u")],
        # pattern 6: cancel on the 1st, and the same-day exception
        [buy("taro", at("2024-01-10"), "back", "s"), cancel("s", at("2024-02-01", "00:00"))],
        [buy("taro", at("2024-02-01", "00:05"), "back", "s"),
         cancel("s", at("2024-02-01", "23:59"))],
        # the 1st in Tokyo, given in UTC
        [buy("taro", at("2024-01-10"), "back", "s"),
         {"command": "cancel", "at": "2024-01-31T15:30:00+00:00", "receipt": "$s"}],
        # per purchase, refunds in a later month, refunds of a monthly subscription
        [buy("taro", at("2024-01-10"), "item", "i"), buy("taro", at("2024-01-11"), "item"),
         {"command": "refund", "at": at("2024-02-03"), "receipt": "$i", "amount": 100,
          "reason": "late"},
         {"command": "refund", "at": at("2024-02-04"), "receipt": "$i", "amount": 201,
          "reason": "late"},
         buy("taro", at("2024-02-10"), "back", "s"),
         {"command": "refund", "at": at("2024-03-04"), "receipt": "$s", "amount": 525,
          "reason": "sorry"}],
        # limits: carried monthly charges count, re-buy in the month adds nothing
        [buy("taro", at("2024-01-10"), "back", "s"), buy("taro", at("2024-01-10"), "anime"),
         buy("taro", at("2024-02-10"), "item"), cancel("s", at("2024-02-11")),
         buy("taro", at("2024-02-12"), "back"),
         {"command": "change_passport_limit", "at": at("2024-02-13"), "passport_id": "taro",
          "limit": 100},
         buy("taro", at("2024-02-14"), "item"), buy("taro", at("2024-03-14"), "item")],
    ],
    ids=["p1", "p2", "p3", "p4", "p6", "p6-same-day", "p6-utc", "refunds", "limits"],
)  # fmt: skip
def test_charging_patterns_agree(engine: Engine, steps: History) -> None:
    check(
        engine,
        [
            *world(limit=1200),
            *steps,
            {"command": "issue_bills", "at": at("2024-06-01"), "month": "2024-04"},
        ],
    )


# ---------------------------------------------------------------------------------------------
# Regulation, deletion, line changes, lockout, cut-off, closing


def test_regulation_and_deletion_agree(engine: Engine) -> None:
    check(engine, [
        *world(), passport("hana", at("2024-01-01", "02:00"), limit=2000),
        buy("taro", at("2024-01-10"), "back"), buy("hana", at("2024-01-10"), "anime"),
        {"command": "regulate_line", "at": at("2024-03-01", "00:00"), "customer_id": L1},
        buy("taro", at("2024-03-02"), "back"),
        {"command": "lift_regulation", "at": at("2024-03-03"), "customer_id": L1,
         "channel": "written"},
        buy("taro", at("2024-03-04"), "back", "again"),
        buy("hana", at("2024-03-04"), "anime"),
        {"command": "delete_passport", "at": at("2024-04-01", "09:00"), "passport_id": "hana"},
        passport("hana", at("2024-04-02")),
        buy("hana", at("2024-04-03"), "anime"),
    ])  # fmt: skip


@pytest.mark.parametrize(
    "change",
    [
        {"change": "rename"},
        {"change": "relocation"},
        {"change": "relocation", "new_customer_id": L3},
        {"change": "item_change", "new_kind": "hikari_light"},
        {"change": "menu_change", "new_kind": "hikari_light"},
        {"change": "menu_change", "new_kind": "hikari_light", "new_customer_id": L3},
        {"change": "transfer"},
        {"change": "transfer", "new_customer_id": L2},  # exists: duplicate
        {"change": "cancellation"},
        {"change": "area_move", "new_customer_id": L3},  # invalid
        {"change": "collabo_conversion"},
    ],
    ids=lambda c: "-".join(str(v) for v in c.values()),
)
def test_line_changes_agree(engine: Engine, change: dict[str, Any]) -> None:
    check(engine, [
        *world(), line(L2),
        {"command": "regulate_line", "at": at("2024-01-02"), "customer_id": L1},
        {"command": "lift_regulation", "at": at("2024-01-03"), "customer_id": L1,
         "channel": "written"},
        buy("taro", at("2024-01-10"), "back"),
        {"command": "change_line", "at": at("2024-02-01", "00:00"), "customer_id": L1, **change},
        buy("taro", at("2024-02-02"), "item"),
        passport("jiro", at("2024-02-03"), limit=3000),
        passport("jiro", at("2024-02-03"), cid=L3, limit=3000),
        buy("jiro", at("2024-02-04"), "back"),
        {"command": "regulate_line", "at": at("2024-02-05"), "customer_id": L1},
        {"command": "change_line_limit", "at": at("2024-02-06"), "customer_id": L3,
         "line_limit": 100},
    ])  # fmt: skip


def test_lockout_auth_goods_and_cutoff_agree(engine: Engine) -> None:
    wrong = {"password": "wrong1"}
    check(engine, [
        *world(), *provider("G", goods="physical"), line(EAST, operator="east", kind="b_flets"),
        passport("east1", at("2024-01-02"), cid=EAST, line_auth=True),
        {"command": "set_notification", "at": at("2024-01-03"), "customer_id": EAST,
         "provider": "G", "notify": True, "consent": True, "channel": "web"},
        buy("east1", at("2024-01-04"), "item", provider="G"),
        buy("east1", at("2024-01-04"), "item", provider="G", presented_line=EAST),
        buy("east1", at("2024-01-04"), "item", presented_line=EAST),
        buy("taro", at("2024-01-04"), "item", provider="G"),
        *[buy("taro", at("2024-01-05", f"10:{i:02d}"), "item", **wrong) for i in range(9)],
        buy("taro", at("2024-01-05", "11:00"), "item"),
        *[buy("taro", at("2024-01-05", f"12:{i:02d}"), "item", **wrong) for i in range(10)],
        buy("taro", at("2024-01-05", "13:00"), "item"),
        {"command": "change_passport_details", "at": at("2024-01-06"), "passport_id": "taro",
         "email": "b@example.jp"},
        buy("taro", at("2024-01-07"), "item"),
        {"command": "change_passport_details", "at": at("2024-01-08"), "passport_id": "taro",
         "password": "pass1"},
        buy("taro", at("2024-01-09"), "item"),
        passport("late1", at("2024-12-01", "00:00")),
        passport("late2", at("2024-12-01", "00:00"), cid=EAST, limit=1),
        passport("late3", at("2024-12-01", "00:00"), cid=EAST, limit=1, via_provider="G"),
        {"command": "change_passport_details", "at": at("2024-12-02"), "passport_id": "taro",
         "password": "pass2"},
        {"command": "issue_bills", "at": at("2024-12-31"), "month": "2024-12"},
        {"command": "issue_bills", "at": at("2025-01-01", "00:00"), "month": "2024-11"},
        {"command": "change_line_limit", "at": at("2024-11-30"), "customer_id": L1,
         "line_limit": 9000},
        {"command": "issue_bills", "at": at("2024-11-30"), "month": "2024-10"},
    ])  # fmt: skip


def test_idempotency_agrees(engine: Engine) -> None:
    check(engine, [
        *world(),
        {**buy("taro", at("2024-01-10"), "item", "a"), "key": "k1"},
        {**buy("taro", "2024-01-10T01:00:00+00:00", "item"), "key": "k1"},  # same instant
        {**buy("taro", at("2024-01-10"), "item"), "key": "k1", "password": "pass2"},
        {**buy("taro", at("2024-01-10"), "back"), "key": "k1"},
        {**buy("taro", at("2024-01-11"), "item"), "key": "k2", "password": "wrong1"},
        {**buy("taro", at("2024-01-11"), "item"), "key": "k2"},  # refused keys stay free
        {"command": "cancel", "at": at("2024-01-12"), "receipt": "$a", "key": "k2"},
    ])  # fmt: skip


# ---------------------------------------------------------------------------------------------
# The contract's order of precedence where the engine disagrees.  Each history ends with one
# command to which invalid_input applies together with a later-ranked refusal; INTERCHANGE.md
# says "When several refusals apply, the first in this order is reported: invalid_input; ...",
# and docs/design.md makes a command dated before the latest event of a line, Passport ID or
# subscription it decides against `invalid_input`.

CLOSE_JAN = {"command": "issue_bills", "at": at("2024-02-01", "00:00"), "month": "2024-01"}
LIMIT_LATER = {"command": "change_line_limit", "at": at("2024-01-10"), "customer_id": L1,
               "line_limit": 9000}  # fmt: skip

PRECEDENCE: dict[str, History] = {
    # A command dated in a closed month *and* before the latest event of its Passport ID.
    "time-order-in-closed-month": [
        *world(), buy("taro", at("2024-01-20"), "item"), CLOSE_JAN,
        buy("taro", at("2024-01-10"), "item"),
    ],
    # A change_line whose arguments contradict each other, dated in a closed month.
    "bad-arguments-in-closed-month": [
        *world(), CLOSE_JAN,
        {"command": "change_line", "at": at("2024-01-15"), "customer_id": L1,
         "change": "relocation", "new_kind": "hikari_light"},
    ],
    # The same, with an idempotency key already bound to another body.
    "bad-arguments-with-a-used-key": [
        *world(), {**LIMIT_LATER, "key": "k"},
        {"command": "change_line", "at": at("2024-01-11"), "customer_id": L1,
         "change": "relocation", "new_kind": "hikari_light", "key": "k"},
    ],
    # Before the line's latest event, naming an unknown representative.
    "time-order-and-unknown-representative": [
        *world(), LIMIT_LATER,
        {"command": "change_billing", "at": at("2024-01-05"), "customer_id": L1,
         "billing": {"method": "consolidated", "representative": "CAF0000000099"},
         "reason": "wide_area_consolidated"},
    ],
    # Before the owning line's latest event, from an unknown provider.
    "time-order-and-unknown-provider": [
        *world(), LIMIT_LATER, buy("taro", at("2024-01-05"), "item", provider="Z"),
    ],
    # Before the latest event of an existing ID, on an unknown line.
    "time-order-and-unknown-line": [
        *world(), buy("taro", at("2024-01-10"), "item"),
        passport("taro", at("2024-01-05"), cid="CAF0000000099"),
    ],
    # A renumbering onto an existing line, before the latest event of an ID it would delete.
    "time-order-and-duplicate-line": [
        *world(), line(L2), buy("taro", at("2024-01-10"), "item"),
        {"command": "change_line", "at": at("2024-01-05"), "customer_id": L1,
         "change": "relocation", "new_customer_id": L2},
    ],
}  # fmt: skip


def _last_codes(engine: Engine, history: History) -> tuple[str | None, str | None]:
    model = ReferenceModel()
    *before, last = history
    assert not replay(engine, model, before)
    try:
        command = parse_command(last)
    except InvalidInput:
        return "invalid_input", "invalid_input"  # refused at the edge, for both alike
    return _engine_apply(engine, command).code, model.apply(command).code


@pytest.mark.parametrize("case", sorted(PRECEDENCE))
def test_model_reports_invalid_input_first(engine: Engine, case: str) -> None:
    _, want = _last_codes(engine, PRECEDENCE[case])
    assert want == "invalid_input"


@pytest.mark.parametrize(
    "case",
    [pytest.param(case) for case in sorted(PRECEDENCE)],
)
def test_engine_reports_invalid_input_first(engine: Engine, case: str) -> None:
    got, want = _last_codes(engine, PRECEDENCE[case])
    assert got == want
