"""Smoke test of the reference model: hand-written histories through the engine and the model.

Each history is replayed through ``Engine`` and ``ReferenceModel`` command by command; the two
must agree on accepted/refused and the error code of every command, on the data of every
accepted command (receipts, prices, what was cancelled or deleted, ...), on ``closed_through``,
on every Passport ID's count of wrong passwords, and on the rows and subtotal of every line's
bill for every month the model has seen.

Agreement alone would let both sides be wrong together, so a command may also carry
``"_expect": "<code>"`` (or ``"ok"``): what the contract (docs/rules.md, docs/contract.md, contract
2) says it answers, checked against the model — and so, by agreement, against the engine.
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
KEY, WRONG_KEY = "abcd1234", "zzzz9999"
WRONG: dict[str, Any] = {"password": "wrong1"}


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

    A command may carry ``"_label": name`` (its receipt is remembered), a receipt field
    ``"$name"`` (replaced by the remembered receipt) and ``"_expect": code`` (the model must
    answer that; ``"ok"`` for accepted).  A command that does not parse is refused as
    invalid_input before it reaches either side, so it never disagrees (unless ``malformed``
    is false, when it is a mistake in the history); the state-free argument rules (e.g. §6's
    "a rename takes no new customer ID") live there.
    """
    receipts: dict[str, str] = {}
    problems: list[str] = []
    for i, raw in enumerate(history):
        obj = {k: v for k, v in raw.items() if not k.startswith("_")}
        if isinstance(obj.get("receipt"), str) and obj["receipt"].startswith("$"):
            obj["receipt"] = receipts.get(obj["receipt"][1:], "R0")
        try:
            command = parse_command(obj)
        except InvalidInput as e:
            if not malformed and raw.get("_expect") != "invalid_input":
                problems.append(f"#{i} {obj.get('command')} does not parse: {e.message}")
            continue
        got = _engine_apply(engine, command)
        want = model.apply(command)
        if (got.ok, got.code) != (want.ok, want.code):
            problems.append(
                f"#{i} {obj['command']} at {obj['at']}: engine {got.code or 'ok'} "
                f"({got.message}), model {want.code or 'ok'} ({want.message})"
            )
        if "_expect" in raw and (want.code or "ok") != raw["_expect"]:
            problems.append(
                f"#{i} {obj['command']} at {obj['at']}: the contract says {raw['_expect']}, "
                f"model {want.code or 'ok'} ({want.message})"
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
        pid = str(obj.get("passport_id", ""))
        state = engine.passport(pid) if pid else None
        if state is not None and state.consecutive_failures != model.failures(pid):
            problems.append(
                f"#{i} {obj['command']}: {pid} has {state.consecutive_failures} wrong passwords "
                f"in the engine, {model.failures(pid)} in the model"
            )
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


def expect(code: str, command: dict[str, Any]) -> dict[str, Any]:
    return {**command, "_expect": code}


def without(field: str, command: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in command.items() if k != field}


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
            "operator": operator, "kind": kind, "access_key": KEY, "line_limit": cap,
            "billing": {"method": "customer_number", "number": "0012345678"}, **kw}  # fmt: skip


def passport(pid: str, when: str, cid: str = L1, limit: int = 3000, **kw: Any) -> dict[str, Any]:
    return {"command": "register_passport", "at": when, "customer_id": cid, "passport_id": pid,
            "access_key": KEY, "password": "pass1", "email": "a@example.jp",
            "applicant": APPLICANT, "limit": limit, "line_auth": False, **kw}  # fmt: skip


def holder(command: str, pid: str, when: str, **kw: Any) -> dict[str, Any]:
    """A line holder's command on a Passport ID, with the line's access key."""
    return {"command": command, "at": when, "passport_id": pid, "access_key": KEY, **kw}


def buy(pid: str, when: str, service: str, label: str | None = None, **kw: Any) -> dict[str, Any]:
    c = {"command": "purchase", "at": when, "passport_id": pid, "password": "pass1",
         "provider": "A", "service": service, **kw}  # fmt: skip
    if label:
        c["_label"] = label
    return c


def cancel(label: str, when: str, **kw: Any) -> dict[str, Any]:
    return {"command": "cancel", "at": when, "receipt": f"${label}", "password": "pass1", **kw}


def refund(label: str, when: str, amount: int) -> dict[str, Any]:
    return {"command": "refund", "at": when, "receipt": f"${label}", "amount": amount,
            "reason": "sorry"}  # fmt: skip


def world(limit: int = 3000) -> History:
    return [*provider(), line(), passport("taro", at("2024-01-01", "01:00"), limit=limit)]


# ---------------------------------------------------------------------------------------------
# The integration test's command log


def test_integration_log_agrees(engine: Engine) -> None:
    """The integration test's log, with the answers that test expects of every command."""
    history: History = []
    for command, answer, label in LOG:
        raw = {**command, "_expect": "ok" if answer is True else answer}
        if label:
            raw["_label"] = label
        history.append(raw)
    model = check(engine, history, malformed=True)
    opened = {
        c["customer_id"] for c, answer, _ in LOG if c["command"] == "open_line" and answer is True
    }
    continued = {
        c["new_customer_id"]
        for c, answer, _ in LOG
        if c["command"] == "change_line" and answer is True and "new_customer_id" in c
    }
    assert model.lines() == sorted(opened | continued)


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
         {"command": "cancel", "at": "2024-01-31T15:30:00+00:00", "receipt": "$s",
          "password": "pass1"}],
        # limits: carried monthly charges count, re-buy in the month adds nothing
        [buy("taro", at("2024-01-10"), "back", "s"), buy("taro", at("2024-01-10"), "anime"),
         buy("taro", at("2024-02-10"), "item"), cancel("s", at("2024-02-11")),
         buy("taro", at("2024-02-12"), "back"),
         holder("change_passport_limit", "taro", at("2024-02-13"), limit=100),
         buy("taro", at("2024-02-14"), "item"), buy("taro", at("2024-03-14"), "item")],
        # quantity: 300 yen × 3 on the bill and against the limit (1,200)
        [expect("ok", buy("taro", at("2024-01-10"), "item", quantity=3)),
         expect("limit_exceeded", buy("taro", at("2024-01-11"), "item", quantity=2)),
         expect("ok", buy("taro", at("2024-01-12"), "item")),
         expect("limit_exceeded", buy("taro", at("2024-01-13"), "item")),
         expect("ok", buy("taro", at("2024-02-13"), "item", quantity=4)),
         expect("invalid_input", buy("taro", at("2024-02-14"), "back", quantity=2))],
    ],
    ids=["p1", "p2", "p3", "p4", "p6", "p6-same-day", "p6-utc", "limits", "quantity"],
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
# Refunds: at most what was charged so far (§4)


@pytest.mark.parametrize(
    "steps",
    [
        # a per-purchase item: its price × quantity, whenever the refund comes
        [buy("taro", at("2024-01-10"), "item", "i", quantity=2),
         expect("ok", refund("i", at("2024-02-03"), 500)),
         expect("refund_exceeds_charge", refund("i", at("2024-03-04"), 101)),
         expect("ok", refund("i", at("2024-03-05"), 100))],
        # a monthly subscription: its price for every month charged through the refund's
        [buy("taro", at("2024-01-10"), "back", "s"),
         expect("ok", refund("s", at("2024-01-20"), 525)),
         expect("refund_exceeds_charge", refund("s", at("2024-01-21"), 1)),
         expect("ok", refund("s", at("2024-03-04"), 1050)),
         expect("refund_exceeds_charge", refund("s", at("2024-03-05"), 1))],
        # ... and not after its last charged month (cancelled on the 1st: January only)
        [buy("taro", at("2024-01-10"), "back", "s"), cancel("s", at("2024-02-01", "00:00")),
         expect("refund_exceeds_charge", refund("s", at("2024-04-04"), 526)),
         expect("ok", refund("s", at("2024-04-05"), 525))],
        # a same-month re-purchase was not charged that month: nothing to refund for it
        [buy("taro", at("2024-01-10"), "back", "s"), cancel("s", at("2024-01-11")),
         buy("taro", at("2024-01-12"), "back", "t"),
         expect("refund_exceeds_charge", refund("t", at("2024-01-13"), 1)),
         expect("ok", refund("t", at("2024-02-13"), 525)),
         expect("refund_exceeds_charge", refund("t", at("2024-02-14"), 1)),
         expect("ok", refund("s", at("2024-02-15"), 525))],
    ],
    ids=["per-purchase", "monthly", "cancelled-on-the-1st", "same-month-repurchase"],
)  # fmt: skip
def test_refund_caps_agree(engine: Engine, steps: History) -> None:
    check(engine, [*world(), *steps])


# ---------------------------------------------------------------------------------------------
# Regulation, deletion, line changes, lockout, cut-off, closing


def test_regulation_and_deletion_agree(engine: Engine) -> None:
    check(engine, [
        *world(), passport("hana", at("2024-01-01", "02:00"), limit=2000),
        buy("taro", at("2024-01-10"), "back", "t"), buy("hana", at("2024-01-10"), "anime", "h"),
        {"command": "regulate_line", "at": at("2024-03-01", "00:00"), "customer_id": L1},
        expect("line_regulated", buy("taro", at("2024-03-02"), "back")),
        # Credentials before the state they guard: counted on a regulated line too.
        expect("wrong_password", buy("taro", at("2024-03-02", "11:00"), "back", **WRONG)),
        {"command": "lift_regulation", "at": at("2024-03-03"), "customer_id": L1,
         "channel": "written"},
        buy("taro", at("2024-03-04"), "back", "again"),
        buy("hana", at("2024-03-04"), "anime"),
        holder("delete_passport", "hana", at("2024-04-01", "09:00")),
        expect("unknown_passport", cancel("h", at("2024-04-01", "10:00"))),
        passport("hana", at("2024-04-02")),
        buy("hana", at("2024-04-03"), "anime"),
    ])  # fmt: skip


@pytest.mark.parametrize(
    ("change", "answer"),
    [
        ({"change": "rename"}, "ok"),
        ({"change": "relocation"}, "ok"),
        ({"change": "relocation", "new_customer_id": L3}, "ok"),
        ({"change": "item_change", "new_kind": "hikari_light"}, "invalid_input"),  # a menu change
        ({"change": "item_change", "new_kind": "hikari_next"}, "ok"),
        ({"change": "menu_change", "new_kind": "hikari_light"}, "ok"),
        ({"change": "menu_change", "new_kind": "hikari_light", "new_customer_id": L3}, "ok"),
        ({"change": "transfer"}, "ok"),
        ({"change": "transfer", "new_customer_id": L2}, "duplicate"),  # L2 exists
        ({"change": "cancellation"}, "ok"),
        ({"change": "area_move", "new_customer_id": L3}, "invalid_input"),
        ({"change": "collabo_conversion"}, "ok"),
    ],
    ids=lambda c: "-".join(str(v) for v in c.values()) if isinstance(c, dict) else c,
)
def test_line_changes_agree(engine: Engine, change: dict[str, Any], answer: str) -> None:
    check(engine, [
        *world(), line(L2),
        {"command": "regulate_line", "at": at("2024-01-02"), "customer_id": L1},
        {"command": "lift_regulation", "at": at("2024-01-03"), "customer_id": L1,
         "channel": "written"},
        buy("taro", at("2024-01-10"), "back"),
        expect(answer, {"command": "change_line", "at": at("2024-02-01", "00:00"),
                        "customer_id": L1, **change}),
        buy("taro", at("2024-02-02"), "item"),
        passport("jiro", at("2024-02-03"), limit=3000),
        # A line carried on under a new customer ID keeps its access key.
        passport("jiro", at("2024-02-03"), cid=L3, limit=3000),
        buy("jiro", at("2024-02-04"), "back"),
        {"command": "regulate_line", "at": at("2024-02-05"), "customer_id": L1},
        {"command": "change_line_limit", "at": at("2024-02-06"), "customer_id": L3,
         "line_limit": 100},
    ])  # fmt: skip


def test_lockout_reset_and_cutoff_agree(engine: Engine) -> None:
    check(engine, [
        *world(),
        *[expect("wrong_password", buy("taro", at("2024-01-05", f"10:{i:02d}"), "item", **WRONG))
          for i in range(9)],
        expect("ok", buy("taro", at("2024-01-05", "11:00"), "item")),  # the count restarts
        *[buy("taro", at("2024-01-05", f"12:{i:02d}"), "item", **WRONG) for i in range(10)],
        expect("locked_out", buy("taro", at("2024-01-05", "13:00"), "item")),
        expect("locked_out", buy("taro", at("2024-01-05", "13:01"), "item", **WRONG)),
        # An e-mail change does not unlock; a new password does.
        holder("change_passport_details", "taro", at("2024-01-06"), email="b@example.jp"),
        expect("locked_out", buy("taro", at("2024-01-07"), "item")),
        holder("change_passport_details", "taro", at("2024-01-08"), password="pass1"),
        expect("ok", buy("taro", at("2024-01-09"), "back", "s")),
        # cancel carries the password too: counted, and reset by an accepted cancel
        expect("wrong_password", cancel("s", at("2024-01-10"), **WRONG)),
        expect("ok", cancel("s", at("2024-01-11"))),
        *[buy("taro", at("2024-11-05", f"12:{i:02d}"), "item", **WRONG) for i in range(10)],
        expect("locked_out", cancel("s", at("2024-11-06"))),
        # From the cut-off the line holder cannot unlock; the operator can.
        expect("registration_closed",
               holder("change_passport_details", "taro", at("2024-12-02"), password="pass2")),
        expect("registration_closed", passport("late1", at("2024-12-01", "00:00"))),
        expect("unknown_passport", {"command": "reset_password", "at": at("2024-12-03"),
                                    "passport_id": "nobody", "password": "pass3",
                                    "channel": "phone"}),
        expect("ok", {"command": "reset_password", "at": at("2024-12-03"), "passport_id": "taro",
                      "password": "pass3", "channel": "written"}),
        expect("wrong_password", buy("taro", at("2024-12-04"), "item")),
        expect("ok", buy("taro", at("2024-12-05"), "item", password="pass3")),
    ])  # fmt: skip


def test_access_keys_agree(engine: Engine) -> None:
    wrong: dict[str, Any] = {"access_key": WRONG_KEY}
    check(engine, [
        *world(), line(EAST, operator="east", kind="b_flets"),
        expect("wrong_access_key", passport("hana", at("2024-01-02"), **wrong)),
        expect("wrong_access_key", holder("change_passport_limit", "taro", at("2024-01-02"),
                                          limit=100, **wrong)),
        expect("wrong_access_key", holder("change_passport_details", "taro", at("2024-01-02"),
                                          password="pass2", **wrong)),
        expect("wrong_access_key", holder("delete_passport", "taro", at("2024-01-02"), **wrong)),
        expect("wrong_access_key", {"command": "set_notification", "at": at("2024-01-02"),
                                    "customer_id": L1, "provider": "A", "notify": True,
                                    "consent": True, "channel": "web", **wrong}),
        # Credentials come before the state they guard ...
        expect("wrong_access_key", passport("taro", at("2024-01-02"), **wrong)),
        # ... but after unknown things.
        expect("unknown_passport", holder("delete_passport", "nobody", at("2024-01-02"),
                                          **wrong)),
        # Not counted: the right key still works, and purchases are not locked.
        expect("ok", holder("change_passport_limit", "taro", at("2024-01-03"), limit=100)),
        expect("limit_exceeded", buy("taro", at("2024-01-03"), "item")),
        # An NTT East provider registers on the customer's behalf without the key only from
        # the cut-off (§2); before it, and on a West line, the key is needed; one given is
        # always checked.
        expect("wrong_access_key", without("access_key",
               passport("prov1", at("2024-01-04"), cid=EAST, via_provider="A"))),
        expect("wrong_access_key",
               passport("prov2", at("2024-01-04"), cid=EAST, via_provider="A", **wrong)),
        expect("ok", without("access_key",
               passport("prov3", at("2024-12-01"), cid=EAST, via_provider="A"))),
        expect("wrong_access_key", without("access_key",
               passport("prov4", at("2024-12-01"), cid=L1, via_provider="A"))),
        expect("ok", passport("late", at("2024-12-01"), cid=EAST, via_provider="A")),
        expect("registration_closed", passport("late2", at("2024-12-01"), via_provider="A")),
    ])  # fmt: skip


def test_line_authentication_agrees(engine: Engine) -> None:
    auth: dict[str, Any] = {"line_auth": True}
    check(engine, [
        *world(), line(L2), line(EAST, operator="east", kind="hikari_next"),
        expect("ok", passport("hana", at("2024-01-02"), **auth)),
        # The notification setting plays no part (§9).
        expect("ok", buy("hana", at("2024-01-03"), "item", presented_line=L1)),
        expect("line_auth_failed", buy("hana", at("2024-01-03"), "item", presented_line=L2)),
        expect("line_auth_failed", buy("hana", at("2024-01-03"), "item")),
        # The line check comes first and counts nothing: 9 wrong, one from the wrong line,
        # then the right password still buys.
        *[buy("hana", at("2024-01-04", f"10:{i:02d}"), "item", presented_line=L1, **WRONG)
          for i in range(9)],
        expect("line_auth_failed",
               buy("hana", at("2024-01-04", "11:00"), "item", presented_line=L2, **WRONG)),
        expect("ok", buy("hana", at("2024-01-04", "12:00"), "item", presented_line=L1)),
        *[buy("hana", at("2024-01-05", f"10:{i:02d}"), "item", presented_line=L1, **WRONG)
          for i in range(10)],
        expect("line_auth_failed", buy("hana", at("2024-01-05", "11:00"), "item")),
        expect("locked_out", buy("hana", at("2024-01-05", "11:01"), "item", presented_line=L1)),
        # Line authentication exists on Hikari lines only; after an item change to another
        # kind no line check is made.
        expect("ok", passport("east1", at("2024-01-06"), cid=EAST, **auth)),
        {"command": "change_line", "at": at("2024-01-07"), "customer_id": EAST,
         "change": "item_change", "new_kind": "b_flets", "_expect": "ok"},
        expect("ok", buy("east1", at("2024-01-08"), "item", presented_line=L2)),
        expect("invalid_input", passport("east2", at("2024-01-09"), cid=EAST, **auth)),
        expect("invalid_input", holder("change_passport_details", "east1", at("2024-01-09"),
                                       line_auth=True)),
        expect("ok", holder("change_passport_details", "east1", at("2024-01-09"),
                            line_auth=False)),
        expect("ok", holder("change_passport_details", "taro", at("2024-01-10"),
                            line_auth=True)),
        expect("line_auth_failed", buy("taro", at("2024-01-11"), "item", presented_line=L2)),
    ])  # fmt: skip


def test_goods_closing_and_fees_agree(engine: Engine) -> None:
    check(engine, [
        *provider("G", goods="physical", when="2012-01-01"),
        line(L1, when="2012-01-01"), line(EAST, when="2012-01-01", operator="east"),
        passport("west1", at("2012-01-02")), passport("east1", at("2012-01-02"), cid=EAST),
        expect("ok", buy("west1", at("2012-06-04"), "item", provider="G")),
        expect("goods_not_offered", buy("east1", at("2012-06-04"), "item", provider="G")),
        expect("ok", buy("east1", at("2012-06-05", "00:00"), "item", provider="G")),
        expect("ok", {"command": "set_fee", "at": at("2012-06-10"), "operator": "east",
                      "effective_from": "2012-06", "flat_fee": 45}),
        {"command": "issue_bills", "at": at("2012-12-31"), "month": "2012-12",
         "_expect": "invalid_input"},
        {"command": "issue_bills", "at": at("2013-01-01", "00:00"), "month": "2012-11",
         "_expect": "ok"},
        expect("month_closed", {"command": "set_fee", "at": at("2013-01-02"),
                                "operator": "west", "effective_from": "2012-11",
                                "flat_fee": 45}),
        expect("ok", {"command": "set_fee", "at": at("2013-01-02"), "operator": "west",
                      "effective_from": "2012-12", "flat_fee": 45}),
        expect("month_closed", {"command": "change_line_limit", "at": at("2012-11-30"),
                                "customer_id": L1, "line_limit": 9000}),
        expect("month_closed", buy("nobody", at("2012-11-30"), "item")),
    ])  # fmt: skip


def test_idempotency_agrees(engine: Engine) -> None:
    check(engine, [
        *world(),
        {**buy("taro", at("2024-01-10"), "item", "a"), "key": "k1"},
        # the same body (the same instant in another offset) answers the first result
        expect("ok", {**buy("taro", "2024-01-10T01:00:00+00:00", "item"), "key": "k1"}),
        # another body: every check runs; a wrong password is counted and reported as such
        expect("wrong_password", {**buy("taro", at("2024-01-10"), "item"), "key": "k1",
                                  **WRONG}),
        expect("idempotency_conflict", {**buy("taro", at("2024-01-10"), "back"), "key": "k1"}),
        # a counted wrong password binds its key: the same body answers it again, uncounted
        expect("wrong_password", {**buy("taro", at("2024-01-11"), "item"), "key": "k2",
                                  **WRONG}),
        expect("wrong_password", {**buy("taro", at("2024-01-11"), "item"), "key": "k2",
                                  **WRONG}),
        expect("idempotency_conflict", {**buy("taro", at("2024-01-11"), "item"), "key": "k2"}),
        # other refusals leave the key free
        expect("wrong_access_key", {**holder("change_passport_limit", "taro", at("2024-01-12"),
                                             limit=100), "access_key": WRONG_KEY, "key": "k3"}),
        expect("ok", {**holder("change_passport_limit", "taro", at("2024-01-12"), limit=100),
                      "key": "k3"}),
        expect("wrong_password", {**cancel("a", at("2024-01-12"), **WRONG), "key": "k3"}),
        expect("idempotency_conflict", {**cancel("a", at("2024-01-12")), "key": "k3"}),
    ])  # fmt: skip


def test_a_retry_after_a_password_reset_answers_what_the_old_password_gets_now(
    engine: Engine,
) -> None:
    """docs/contract.md "Idempotency keys are no password oracle": the same body answers its first
    result only while its secret still opens the ID — after a reset the old password is
    ``wrong_password`` (counted), and the new one is another body (``idempotency_conflict``)."""
    check(engine, [
        *world(),
        {**buy("taro", at("2024-01-10"), "item"), "key": "k1"},
        {"command": "reset_password", "at": at("2024-01-11"), "passport_id": "taro",
         "password": "pass2", "channel": "phone"},
        expect("wrong_password", {**buy("taro", at("2024-01-10"), "item"), "key": "k1"}),
        expect("idempotency_conflict",
               {**buy("taro", at("2024-01-10"), "item"), "key": "k1", "password": "pass2"}),
    ])  # fmt: skip


# ---------------------------------------------------------------------------------------------
# The contract's order of precedence where the engine disagrees.  Each history ends with one
# command to which invalid_input applies together with a later-ranked refusal; docs/contract.md
# "Order of refusals" says "When several refusals apply, the first in this order is reported:
# invalid_input; ...", and docs/design.md makes a command dated before the latest event of a line,
# Passport ID or subscription it decides against `invalid_input`.

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
    # Quantity on a monthly service, with a wrong password.
    "quantity-on-monthly-with-wrong-password": [
        *world(), buy("taro", at("2024-01-10"), "back", quantity=2, **WRONG),
    ],
    # Line authentication on a B FLET'S line, with a wrong access key.
    "line-auth-off-hikari-with-wrong-key": [
        *world(), line(EAST, operator="east", kind="b_flets"),
        passport("hana", at("2024-01-02"), cid=EAST, line_auth=True, access_key=WRONG_KEY),
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


@pytest.mark.parametrize("case", sorted(PRECEDENCE))
def test_engine_reports_invalid_input_first(engine: Engine, case: str) -> None:
    got, want = _last_codes(engine, PRECEDENCE[case])
    assert got == want
