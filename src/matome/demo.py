"""``matome demo``: a small realistic history told as a story, applied idempotently.

Three months of 2024 on two West lines: the guide's worked bill (A 525 yen, B 300 + 300), a
cancellation on the 1st of the month, January billed, a refund, a regulation, February billed
and settled, then a line move.  Every demo command carries an idempotency key, so running the
demo again on the same store applies nothing twice, says so, and prints the same documents.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any, TextIO

import attrs

from matome.application.eventstore import describe
from matome.commands import parse_command
from matome.engine import Engine
from matome.errors import Busy, MatomeError, StoreUnavailable
from matome.tables import bill_table, continuity_table, settlement_table, usage_status_table
from matome.wire import to_json

__all__ = ["CHAPTERS", "DEMO_LINES", "DEMO_LOG", "Chapter", "demo_log_jsonl", "run_demo"]

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


@attrs.frozen
class Chapter:
    """A part of the story: what happens, how many commands of :data:`DEMO_LOG` it applies,
    and the documents it shows afterwards."""

    title: str
    story: str
    commands: int
    show: Callable[[Engine], list[str]]


def _bill(customer_id: str, month: str) -> Callable[[Engine], str]:
    return lambda engine: bill_table(engine.bill(customer_id, month))


def _shows(*parts: Callable[[Engine], str]) -> Callable[[Engine], list[str]]:
    return lambda engine: [part(engine) for part in parts]


LINE1, LINE2 = DEMO_LINES

#: The story, chapter by chapter, over the commands of :data:`DEMO_LOG` in order.
CHAPTERS: tuple[Chapter, ...] = (
    Chapter(
        "January 2024: two providers, two lines, the guide's bill",
        "Provider A lists a back service at 525 yen a month; provider B two anime channels at\n"
        "300 yen a month each and a movie rental at 440 yen a time.  Two NTT West lines open,\n"
        "and each line holder registers a Passport ID with the line's access key.\n"
        f"yamada.taro ({LINE1}) buys A's back service and both anime channels: the guide's\n"
        "worked example, one bill row per provider: A 525 yen, B 600 yen.\n"
        f"suzuki-hanako ({LINE2}) rents a movie and subscribes to anime 1.",
        15,
        _shows(_bill(LINE1, "2024-01"), _bill(LINE2, "2024-01")),
    ),
    Chapter(
        "1 February: a cancellation on the 1st, and January is billed",
        "yamada.taro cancels anime 2 at 08:00 on the 1st: a monthly service cancelled on the\n"
        "1st is not charged for that month (§4), so February has A 525 and B 300 only.\n"
        "At 09:00 issue_bills closes January: its bills are issued and can no longer change.",
        2,
        _shows(_bill(LINE1, "2024-02")),
    ),
    Chapter(
        "February: a refund and a regulation",
        "B refunds suzuki-hanako's movie (配信不良, a failed stream): the refund is a negative\n"
        "refund row in February, the month it is recorded, with its reason.  On the 20th the\n"
        "carrier regulates the line (§5): its subscription is cancelled at that instant, and\n"
        "February stays charged.",
        2,
        _shows(_bill(LINE2, "2024-02"), lambda e: usage_status_table(e.usage_status(LINE2))),
    ),
    Chapter(
        "1 March: February is billed, and the providers are settled",
        "issue_bills closes February.  Settlement pays each provider its gross for a closed\n"
        "month less the carrier's fee and the consumption tax on it (§8).",
        1,
        _shows(
            lambda e: "settlement 2024-01:\n" + settlement_table(e.settlement("2024-01")),
            lambda e: "settlement 2024-02:\n" + settlement_table(e.settlement("2024-02")),
        ),
    ),
    Chapter(
        "10 March: the line moves",
        f"{LINE1} is relocated (§6): the continuity table records the change and what became\n"
        "of the line's subscriptions and Passport IDs — a relocation keeps them, so March is\n"
        "charged as before.  March is not closed yet: its bill is a preview.",
        1,
        _shows(lambda e: continuity_table(e.continuity()), _bill(LINE1, "2024-03")),
    ),
)

assert sum(c.commands for c in CHAPTERS) == len(DEMO_LOG), "every command is in a chapter"


def _keyed(n: int, entry: dict[str, Any]) -> dict[str, Any]:
    return dict(entry, key=f"matome-demo:{n}")


def demo_log_jsonl() -> str:
    """:data:`DEMO_LOG` as the command log ``matome run`` reads (``examples/demo.jsonl``),
    each command with the demo's idempotency key."""
    return "".join(
        json.dumps(_keyed(n, entry), ensure_ascii=False) + "\n"
        for n, entry in enumerate(DEMO_LOG, start=1)
    )


def _where(engine: Engine) -> str:
    """The store as a person names it; an SQLite file by its absolute path."""
    settings = engine.internals.store_settings
    name = settings.get("SQLITE_DBNAME")
    if name and name not in (":memory:",):
        return f"SQLite store {Path(name).resolve()}"
    return describe(settings)


def run_demo(engine: Engine, out: TextIO, *, as_json: bool = False, db_option: str = "") -> int:
    """Apply :data:`DEMO_LOG` (idempotently) chapter by chapter and tell its story; with
    ``as_json``, print only the bills of both lines, one JSON document per line.

    The story says what really happened: how many commands were applied and how many the
    store already held (a second run applies none).  ``db_option`` (e.g. ``" --db x.sqlite"``)
    goes into the commands it suggests trying next.  A refused step is reported and the demo
    goes on; a store that cannot be written (``store_unavailable``, ``busy``) ends it with that
    error."""
    failures = applied = already = 0
    step = 0
    for chapter in CHAPTERS:
        lines: list[str] = []
        for _ in range(chapter.commands):
            step += 1
            entry = DEMO_LOG[step - 1]
            before = engine.internals.recorder.max_notification_id() or 0
            try:
                engine.execute(parse_command(_keyed(step, entry)))
            except (StoreUnavailable, Busy):
                raise
            except MatomeError as e:
                failures += 1
                lines.append(
                    f"  demo step {step} ({entry['command']}) refused: {e.code}: {e.message}"
                )
                continue
            if (engine.internals.recorder.max_notification_id() or 0) > before:
                applied += 1
            else:
                already += 1
        if as_json:
            continue
        out.write(f"== {chapter.title}\n\n{chapter.story}\n\n")
        for line in lines:
            out.write(line + "\n")
        for document in chapter.show(engine):
            out.write(document + "\n\n")
    if as_json:
        for customer_id in DEMO_LINES:
            for month in ("2024-01", "2024-02", "2024-03"):
                out.write(json.dumps(to_json(engine.bill(customer_id, month)), ensure_ascii=False))
                out.write("\n")
        return 1 if failures else 0
    out.write(_summary(applied, already, failures) + "\n")
    out.write(f"The store is the {_where(engine)}.\n")
    tries = [
        (f"matome audit {LINE1} 2024-02{db_option}", "why each yen was (or was not) charged"),
        (f"matome verify{db_option}", "check every hash chain and issued bill"),
        (f"matome statement {LINE2} 2024-02 --csv{db_option}", "a refund row, as CSV"),
        (f"matome settle 2024-03{db_option}", "a month not closed yet: a preview"),
        ("matome run examples/first-bill.jsonl --db first.sqlite", "your own command log"),
    ]
    pad = max(len(command) for command, _ in tries)
    out.write("Try next:\n")
    for command, why in tries:
        out.write(f"  {command.ljust(pad)}  # {why}\n")
    return 1 if failures else 0


def _summary(applied: int, already: int, failures: int) -> str:
    """What the demo did to the store, as it really happened."""
    total = len(DEMO_LOG)
    refused = f"; {failures} refused" if failures else ""
    if applied == total:
        return f"matome demo: {total} commands applied to the store."
    if applied == 0 and already:
        return (
            f"matome demo: nothing new applied: the store already holds the demo's {already} "
            f"commands (each has an idempotency key){refused}."
        )
    return f"matome demo: {applied} commands applied, {already} already in the store{refused}."
