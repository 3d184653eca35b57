"""``matome demo``: a small realistic history, applied idempotently, and the bills it yields.

Every demo command carries an idempotency key, so running the demo again on the same store
applies nothing twice and prints the same bills.
"""

from __future__ import annotations

import json
from typing import Any, TextIO

from matome.commands import parse_command
from matome.engine import Engine
from matome.errors import Busy, MatomeError, StoreUnavailable
from matome.tables import bill_table
from matome.wire import to_json

__all__ = ["DEMO_LINES", "DEMO_LOG", "run_demo"]

_APPLICANT = {"name": "山田 太郎", "phone": "06-1234-5678", "contract_holder": True}
DEMO_LINES = ("CAF9000000001", "CAF9000000002")

#: The history: two providers of the guide's worked example, two lines, three months of 2024.
DEMO_LOG: list[dict[str, Any]] = [
    {
        "command": "register_provider",
        "at": "2024-01-04T09:00:00+09:00",
        "provider": "A",
        "name": "A社",
        "contact": "0120-000-111",
        "goods": "information",
    },
    {
        "command": "register_provider",
        "at": "2024-01-04T09:00:00+09:00",
        "provider": "B",
        "name": "B社",
        "contact": "0120-000-222",
        "goods": "information",
    },
    {
        "command": "list_service",
        "at": "2024-01-04T09:05:00+09:00",
        "provider": "A",
        "service": "back",
        "name": "バックサービス",
        "pricing": "monthly",
        "price": 525,
    },
    {
        "command": "list_service",
        "at": "2024-01-04T09:05:00+09:00",
        "provider": "B",
        "service": "anime1",
        "name": "アニメ1",
        "pricing": "monthly",
        "price": 300,
    },
    {
        "command": "list_service",
        "at": "2024-01-04T09:05:00+09:00",
        "provider": "B",
        "service": "anime2",
        "name": "アニメ2",
        "pricing": "monthly",
        "price": 300,
    },
    {
        "command": "list_service",
        "at": "2024-01-04T09:05:00+09:00",
        "provider": "B",
        "service": "movie",
        "name": "映画レンタル",
        "pricing": "per_purchase",
        "price": 440,
    },
    {
        "command": "open_line",
        "at": "2024-01-05T10:00:00+09:00",
        "customer_id": DEMO_LINES[0],
        "operator": "west",
        "kind": "hikari_next",
        "access_key": "Ak3y0001",
        "line_limit": 10000,
        "billing": {"method": "customer_number", "number": "0012345678"},
    },
    {
        "command": "open_line",
        "at": "2024-01-05T10:00:00+09:00",
        "customer_id": DEMO_LINES[1],
        "operator": "west",
        "kind": "hikari_light",
        "access_key": "Ak3y0002",
        "line_limit": 5000,
        "billing": {"method": "phone_bill", "number": "06-2345-6789", "cycle_start_day": 6},
    },
    {
        "command": "register_passport",
        "at": "2024-01-06T11:00:00+09:00",
        "customer_id": DEMO_LINES[0],
        "access_key": "Ak3y0001",
        "passport_id": "yamada.taro",
        "password": "Pass1234",
        "email": "taro@example.jp",
        "applicant": _APPLICANT,
        "limit": 3000,
        "line_auth": False,
    },
    {
        "command": "register_passport",
        "at": "2024-01-06T11:30:00+09:00",
        "customer_id": DEMO_LINES[1],
        "access_key": "Ak3y0002",
        "passport_id": "suzuki-hanako",
        "password": "Hana5678",
        "email": "hanako@example.jp",
        "applicant": {"name": "鈴木 花子", "phone": "075-123-4567", "contract_holder": True},
        "limit": 2000,
        "line_auth": False,
    },
    # The guide's worked example: A 525; B 300 + 300.
    {
        "command": "purchase",
        "at": "2024-01-15T20:00:00+09:00",
        "passport_id": "yamada.taro",
        "password": "Pass1234",
        "provider": "A",
        "service": "back",
    },
    {
        "command": "purchase",
        "at": "2024-01-15T20:05:00+09:00",
        "passport_id": "yamada.taro",
        "password": "Pass1234",
        "provider": "B",
        "service": "anime1",
    },
    {
        "command": "purchase",
        "at": "2024-01-15T20:06:00+09:00",
        "passport_id": "yamada.taro",
        "password": "Pass1234",
        "provider": "B",
        "service": "anime2",
        # The log names the purchase itself: later commands refer to it by this reference.
        "ref": "demo-anime2",
    },
    {
        "command": "purchase",
        "at": "2024-01-20T21:00:00+09:00",
        "passport_id": "suzuki-hanako",
        "password": "Hana5678",
        "provider": "B",
        "service": "movie",
        "ref": "demo-movie",
    },
    {
        "command": "purchase",
        "at": "2024-01-28T22:00:00+09:00",
        "passport_id": "suzuki-hanako",
        "password": "Hana5678",
        "provider": "B",
        "service": "anime1",
    },
    # Cancelled on the 1st: February is not charged (§4 pattern 6).
    {
        "command": "cancel",
        "at": "2024-02-01T08:00:00+09:00",
        "purchase_ref": "demo-anime2",
        "password": "Pass1234",
    },
    {"command": "issue_bills", "at": "2024-02-01T09:00:00+09:00", "month": "2024-01"},
    {
        "command": "refund",
        "at": "2024-02-10T12:00:00+09:00",
        "purchase_ref": "demo-movie",
        "amount": 440,
        "reason": "配信不良",
    },
    # Regulation cancels line 2's subscription (§5); February stays charged.
    {"command": "regulate_line", "at": "2024-02-20T09:00:00+09:00", "customer_id": DEMO_LINES[1]},
    {"command": "issue_bills", "at": "2024-03-01T09:00:00+09:00", "month": "2024-02"},
    {
        "command": "change_line",
        "at": "2024-03-10T09:00:00+09:00",
        "customer_id": DEMO_LINES[0],
        "change": "relocation",
    },
]


def run_demo(engine: Engine, out: TextIO, *, as_json: bool = False) -> int:
    """Apply :data:`DEMO_LOG` (idempotently) and print the bills of both lines.

    A refused step is reported and the demo goes on; a store that cannot be written
    (``store_unavailable``, ``busy``) ends it with that error."""
    failures = 0
    for n, entry in enumerate(DEMO_LOG, start=1):
        body = dict(entry, key=f"matome-demo:{n}")
        try:
            engine.execute(parse_command(body))
        except (StoreUnavailable, Busy):
            raise
        except MatomeError as e:
            failures += 1
            out.write(f"demo step {n} ({entry['command']}) refused: {e.code}: {e.message}\n")
    bills = [
        engine.bill(customer_id, month)
        for customer_id in DEMO_LINES
        for month in ("2024-01", "2024-02", "2024-03")
    ]
    if as_json:
        for bill in bills:
            out.write(json.dumps(to_json(bill), ensure_ascii=False) + "\n")
    else:
        out.write(f"matome demo: {len(DEMO_LOG)} commands applied to the store\n\n")
        for bill in bills:
            out.write(bill_table(bill) + "\n\n")
    return 1 if failures else 0
