"""Fuzz tests: the reliability promises that no input ends a run or escapes as a crash.

* the log reader (``parse_line``, ``apply_line``) on arbitrary bytes, JSON of any shape and
  mutated valid commands (``test_log_reader_fuzz``);
* every public ``Engine`` method on mixed valid and odd arguments (``test_engine_api_fuzz``);
* the ``matome`` command line on odd argv and fuzzed logs (``test_cli_fuzz``).

This module holds what they share: a small contract-2 history that puts some state (lines,
Passport IDs, purchases, a closed month) behind the fuzzed inputs, and an engine seeded with it.
Each bug the fuzzing found keeps its minimal reproducer as a regression test
(``test_a_found_bug_stays_fixed`` and its CLI twin).  While a bug is open, inputs that hit it
may be kept out of the broad properties by a predicate, with a ``strict`` xfail for the
reproducer, so that the fix flags the exclusion for removal.
"""

from __future__ import annotations

import json
from typing import Any

from matome.aggregates.subscription import receipt_number
from matome.engine import Engine
from matome.errors import ERROR_CLASSES
from matome.interchange import apply_line

#: Password hashing in tests: the cheap setting of the same scheme (matome.credentials.TESTING).
ITERATIONS = 1

LINE = "CAF0000000001"
EAST = "COP00000002"
LINE3 = "CAF0000000003"
PID = "yamada.taro"
PID2 = "suzuki.hanako"
PW = "Pass1234"
PW2 = "Hana5678"
KEY = "Ak3y0001"
KEY2 = "Bk3y0002"
KEY3 = "Ck3y0003"
#: The receipts of the history's two accepted purchases (receipts are derived, not random).
RECEIPT = receipt_number(PID, 1)
RECEIPT2 = receipt_number(PID2, 1)
APPLICANT = {"name": "山田 太郎", "phone": "06-1234-5678", "contract_holder": True}

#: Every error code a result may carry: the contract's refusals and the store's.
ERROR_CODES = frozenset(ERROR_CLASSES) | {
    "busy",
    "fee_not_configured",
    "store_not_found",
    "store_unavailable",
}


def _at(day: str, time: str = "10:00:00") -> str:
    return f"2024-{day}T{time}+09:00"


#: A short history (contract 2): two providers, three services, a West, an East and a
#: consolidated line, two Passport IDs, purchases of both pricings, a counted wrong password,
#: a notification setting, a fee, January closed, a cancellation, a refund and a regulation.
#: ``"refused"`` (never sent) is the error code an entry is expected to be refused with.
HISTORY: tuple[dict[str, Any], ...] = (
    {
        "command": "register_provider",
        "at": _at("01-04", "09:00:00"),
        "provider": "A",
        "name": "A Co.",
        "contact": "0120-000-111",
        "goods": "information",
    },
    {
        "command": "register_provider",
        "at": _at("01-04", "09:00:00"),
        "provider": "B",
        "name": "B Co.",
        "contact": "0120-000-222",
        "goods": "physical",
    },
    {
        "command": "list_service",
        "at": _at("01-04", "09:05:00"),
        "provider": "A",
        "service": "back",
        "name": "back service",
        "pricing": "monthly",
        "price": 525,
    },
    {
        "command": "list_service",
        "at": _at("01-04", "09:05:00"),
        "provider": "A",
        "service": "stamp",
        "name": "stamps",
        "pricing": "per_purchase",
        "price": 600,
    },
    {
        "command": "list_service",
        "at": _at("01-04", "09:05:00"),
        "provider": "B",
        "service": "box",
        "name": "a box",
        "pricing": "per_purchase",
        "price": 1500,
    },
    {
        "command": "open_line",
        "at": _at("01-05"),
        "customer_id": LINE,
        "operator": "west",
        "kind": "hikari_next",
        "access_key": KEY,
        "line_limit": 10_000,
        "billing": {"method": "customer_number", "number": "0012345678"},
    },
    {
        "command": "open_line",
        "at": _at("01-05"),
        "customer_id": EAST,
        "operator": "east",
        "kind": "b_flets",
        "access_key": KEY2,
        "line_limit": 5_000,
        "billing": {"method": "phone_bill", "number": "03-1234-5678", "cycle_start_day": 6},
    },
    {
        "command": "open_line",
        "at": _at("01-05"),
        "customer_id": LINE3,
        "operator": "west",
        "kind": "hikari_light",
        "access_key": KEY3,
        "line_limit": 3_000,
        "billing": {"method": "consolidated", "representative": LINE},
    },
    {
        "command": "register_passport",
        "at": _at("01-06"),
        "customer_id": LINE,
        "access_key": KEY,
        "passport_id": PID,
        "password": PW,
        "email": "taro@example.jp",
        "applicant": APPLICANT,
        "limit": 3_000,
        "line_auth": True,
    },
    {
        "command": "register_passport",
        "at": _at("01-06"),
        "customer_id": EAST,
        "access_key": KEY2,
        "passport_id": PID2,
        "password": PW2,
        "email": "hanako@example.jp",
        "applicant": {**APPLICANT, "name": "鈴木 花子"},
        "limit": 4_000,
        "line_auth": False,
    },
    {
        "command": "purchase",
        "at": _at("01-15"),
        "passport_id": PID,
        "password": PW,
        "provider": "A",
        "service": "back",
        "presented_line": LINE,
        "key": "order-1",
    },
    {
        "command": "purchase",
        "at": _at("01-16"),
        "passport_id": PID2,
        "password": PW2,
        "provider": "A",
        "service": "stamp",
        "quantity": 2,
    },
    {
        "command": "purchase",
        "at": _at("01-17"),
        "passport_id": PID2,
        "password": "Wrong000",
        "provider": "B",
        "service": "box",
        "refused": "wrong_password",
    },
    {
        "command": "set_notification",
        "at": _at("01-18"),
        "customer_id": LINE,
        "access_key": KEY,
        "provider": "A",
        "notify": True,
        "consent": True,
        "channel": "web",
    },
    {
        "command": "set_fee",
        "at": _at("01-20"),
        "operator": "west",
        "effective_from": "2024-01",
        "flat_fee": 50,
    },
    {"command": "issue_bills", "at": _at("02-01", "09:00:00"), "month": "2024-01"},
    {"command": "cancel", "at": _at("03-01", "08:00:00"), "receipt": RECEIPT, "password": PW},
    {
        "command": "refund",
        "at": _at("03-02"),
        "receipt": RECEIPT2,
        "amount": 100,
        "reason": "返金",
    },
    {"command": "regulate_line", "at": _at("03-03"), "customer_id": LINE3},
)


def history_lines() -> list[str]:
    """:data:`HISTORY` as command-log lines."""
    return [
        json.dumps({k: v for k, v in entry.items() if k != "refused"}, ensure_ascii=False)
        for entry in HISTORY
    ]


def seed(engine: Engine) -> None:
    """Apply :data:`HISTORY` to ``engine``, checking that it is answered as expected."""
    for number, (entry, text) in enumerate(zip(HISTORY, history_lines(), strict=True), 1):
        result = apply_line(engine, number, text)
        if "refused" in entry:
            assert not result["ok"], (entry, result)
            assert result["error"]["code"] == entry["refused"], (entry, result)
        else:
            assert result["ok"], (entry, result)


def seeded_engine(db: str = ":memory:") -> Engine:
    """An engine on ``db`` holding :data:`HISTORY`."""
    engine = Engine.open(db, hash_iterations=ITERATIONS)
    seed(engine)
    return engine


def event_count(engine: Engine) -> int:
    """How many events the store holds."""
    return engine.internals.recorder.max_notification_id() or 0
