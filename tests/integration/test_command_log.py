"""One command log exercising every command and every error code, through ``matome run``.

The log speaks contract 2 (docs/contract.md, "Changes in contract 2"): the line holder's commands
carry the line's access key, ``purchase`` and ``cancel`` the Passport ID's password.  Runs on an
SQLite file and on PostgreSQL (docs/contract.md, "Command log" and "Results").
"""

from __future__ import annotations

import io
import json
import sys
from pathlib import Path
from typing import Any

import pytest

from matome.cli import main
from matome.commands import COMMANDS
from matome.engine import Engine
from matome.errors import ERROR_CLASSES
from matome.wire import to_json
from tests.conftest import TEST_ITERATIONS

APPLICANT = {"name": "山田 太郎", "phone": "06-1234-5678", "contract_holder": True}
LINE = "CAF0000000001"
LINE2 = "CAF0000000002"
EAST = "COP12345678"
OLD_EAST = "COP00002012"
KEYS = {LINE: "abcd1234", LINE2: "efgh5678", EAST: "ijkl9012", OLD_EAST: "mnop3456"}


def t(day: str, time: str = "10:00:00") -> str:
    return f"2024-{day}T{time}+09:00"


def passport(pid: str, at: str, line: str = LINE, limit: int = 1000, **kw: Any) -> dict[str, Any]:
    return {
        "command": "register_passport",
        "at": at,
        "customer_id": line,
        "access_key": KEYS[line],
        "passport_id": pid,
        "password": "pass1",
        "email": f"{pid}@example.jp",
        "applicant": APPLICANT,
        "limit": limit,
        "line_auth": False,
        **kw,
    }


def buy(pid: str, at: str, service: str, provider: str = "A", **kw: Any) -> dict[str, Any]:
    return {
        "command": "purchase",
        "at": at,
        "passport_id": pid,
        "password": "pass1",
        "provider": provider,
        "service": service,
        **kw,
    }


def cancel(at: str, receipt: str, password: str = "pass1", **kw: Any) -> dict[str, Any]:
    return {"command": "cancel", "at": at, "receipt": receipt, "password": password, **kw}


def holder(command: str, at: str, pid: str, key: str = KEYS[LINE], **kw: Any) -> dict[str, Any]:
    """One of the line holder's commands on a Passport ID, with the line's access key."""
    return {"command": command, "at": at, "passport_id": pid, "access_key": key, **kw}


def line(customer_id: str, at: str, operator: str, kind: str, limit: int, billing: Any) -> Any:
    return {
        "command": "open_line",
        "at": at,
        "customer_id": customer_id,
        "operator": operator,
        "kind": kind,
        "access_key": KEYS.get(customer_id, "abcd1234"),
        "line_limit": limit,
        "billing": billing,
    }


BY_NUMBER = {"method": "customer_number", "number": "0012345678"}

# (command, expected): expected is True for accepted, or the error code.
# "$name" in a receipt field refers to the receipt answered by the purchase labelled "name".
LOG: list[tuple[dict[str, Any], bool | str, str | None]] = [
    # Physical goods on an East line before 2012-06-05 (§1): not offered yet.
    (
        {
            "command": "register_provider",
            "at": "2012-01-04T10:00:00+09:00",
            "provider": "G",
            "name": "Goods Co.",
            "contact": "0120-9",
            "goods": "physical",
        },
        True,
        None,
    ),
    (
        {
            "command": "list_service",
            "at": "2012-01-04T10:00:00+09:00",
            "provider": "G",
            "service": "box",
            "name": "box",
            "pricing": "per_purchase",
            "price": 100,
        },
        True,
        None,
    ),
    (line(OLD_EAST, "2012-01-05T10:00:00+09:00", "east", "b_flets", 1000, BY_NUMBER), True, None),
    (passport("early", "2012-01-06T10:00:00+09:00", line=OLD_EAST), True, None),
    (buy("early", "2012-06-04T10:00:00+09:00", "box", provider="G"), "goods_not_offered", None),
    (buy("early", "2012-06-05T10:00:00+09:00", "box", provider="G"), True, None),
    # Providers and catalog
    (
        {
            "command": "register_provider",
            "at": t("01-01"),
            "provider": "A",
            "name": "A Co.",
            "contact": "0120-1",
            "goods": "information",
        },
        True,
        None,
    ),
    (
        {
            "command": "register_provider",
            "at": t("01-01"),
            "provider": "A",
            "name": "A again",
            "contact": "0120-1",
            "goods": "information",
        },
        "duplicate",
        None,
    ),
    (
        {
            "command": "list_service",
            "at": t("01-01"),
            "provider": "A",
            "service": "news",
            "name": "news",
            "pricing": "monthly",
            "price": 300,
        },
        True,
        None,
    ),
    (
        {
            "command": "list_service",
            "at": t("01-01"),
            "provider": "A",
            "service": "movie",
            "name": "movie",
            "pricing": "per_purchase",
            "price": 400,
        },
        True,
        None,
    ),
    (
        {
            "command": "list_service",
            "at": t("01-01"),
            "provider": "Z",
            "service": "x",
            "name": "x",
            "pricing": "monthly",
            "price": 1,
        },
        "unknown_provider",
        None,
    ),
    # Lines
    (line(LINE, t("01-02"), "west", "hikari_next", 3000, BY_NUMBER), True, None),
    (
        line(
            LINE2,
            t("01-02"),
            "west",
            "hikari_light",
            2000,
            {"method": "consolidated", "representative": LINE},
        ),
        True,
        None,
    ),
    (
        line(
            EAST,
            t("01-02"),
            "east",
            "b_flets",
            5000,
            {"method": "phone_bill", "number": "03-1234-5678", "cycle_start_day": 6},
        ),
        True,
        None,
    ),
    (line("COP12345679", t("01-02"), "west", "hikari_next", 1, BY_NUMBER), "invalid_input", None),
    (
        {
            "command": "change_line_limit",
            "at": t("01-02"),
            "customer_id": "CAF9999999999",
            "line_limit": 1,
        },
        "unknown_line",
        None,
    ),
    # Passports (§2, §3), registered by the line holder with the line's access key
    (passport("alice", t("01-03")), True, None),
    (passport("alice", t("01-03")), "duplicate", None),
    (passport("mallory", t("01-03"), access_key=KEYS[LINE2]), "wrong_access_key", None),
    (passport("bobby", t("01-03"), limit=6000), "registration_limit_exceeded", None),
    (passport("bobby", t("01-03"), limit=2500), "limit_sum_exceeded", None),
    (passport("bobby", t("01-03"), limit=500, line_auth=True), True, None),
    (passport("cid1", t("01-03"), limit=100), True, None),
    (passport("cid2", t("01-03"), limit=400), True, None),
    (passport("cid3", t("01-03"), limit=100), True, None),
    (passport("cid4", t("01-03"), limit=100), "too_many_passports", None),
    (passport("eve1", t("01-03"), line=EAST, line_auth=True), "invalid_input", None),
    (
        {"command": "change_line_limit", "at": t("01-04"), "customer_id": LINE, "line_limit": 1000},
        "limit_sum_exceeded",
        None,
    ),
    (
        {"command": "change_line_limit", "at": t("01-04"), "customer_id": LINE, "line_limit": 4000},
        True,
        None,
    ),
    (holder("change_passport_limit", t("01-04"), "alice", limit=9000), "limit_sum_exceeded", None),
    (
        holder("change_passport_limit", t("01-04"), "alice", key="zzzz9999", limit=800),
        "wrong_access_key",
        None,
    ),
    (holder("change_passport_limit", t("01-04"), "alice", limit=800), True, None),
    (holder("change_passport_limit", t("01-04"), "nobody", limit=1), "unknown_passport", None),
    (
        holder("change_passport_details", t("01-04"), "alice", email="alice2@example.jp"),
        True,
        None,
    ),
    # Notification settings (§9): the line holder's, with consent
    (
        {
            "command": "set_notification",
            "at": t("01-05"),
            "customer_id": LINE,
            "access_key": KEYS[LINE],
            "provider": "A",
            "notify": True,
            "consent": False,
            "channel": "web",
        },
        "consent_required",
        None,
    ),
    (
        {
            "command": "set_notification",
            "at": t("01-05"),
            "customer_id": LINE,
            "access_key": KEYS[LINE],
            "provider": "A",
            "notify": False,
            "consent": True,
            "channel": "web",
        },
        True,
        None,
    ),
    # Line authentication (§9): NTT's own check, whatever the notification setting
    (buy("bobby", t("01-06"), "movie"), "line_auth_failed", None),
    (
        buy("bobby", t("01-06"), "movie", password="wrong1", presented_line=LINE2),
        "line_auth_failed",
        None,
    ),
    (buy("bobby", t("01-06"), "movie", presented_line=LINE), True, "bobby-movie"),
    # Purchases, limits, duplicates, goods, quantities (§3, §4)
    (buy("alice", t("01-10"), "news", key="k-news"), True, "news"),
    (buy("alice", t("01-10"), "news", key="k-news"), True, None),  # idempotent retry
    (buy("alice", t("01-10"), "movie", key="k-news"), "idempotency_conflict", None),
    (buy("alice", t("01-10"), "news", key="k-news", password="wrong1"), "wrong_password", None),
    (buy("alice", t("01-10"), "news"), "duplicate", None),
    (buy("alice", t("01-10"), "nothing"), "unknown_service", None),
    (buy("alice", t("01-10"), "movie"), True, "movie"),
    (buy("alice", t("01-10"), "movie"), "limit_exceeded", None),
    (buy("alice", t("01-10"), "box", provider="G"), True, None),  # goods on a West line
    (buy("alice", t("01-10"), "movie", quantity=100), "invalid_input", None),
    (buy("bobby", t("01-10"), "news", quantity=2, presented_line=LINE), "invalid_input", None),
    (buy("cid1", t("01-10"), "box", provider="G", quantity=2), "limit_exceeded", None),
    (buy("cid1", t("01-10"), "box", provider="G", quantity=1), True, None),
    ({**buy("alice", t("01-11"), "movie"), "password": "wrong1"}, "wrong_password", None),
    # Cancel (with the buyer's password) and refund (§4)
    (cancel(t("01-12"), "$movie"), "not_cancellable", None),
    (cancel(t("01-12"), "R0000"), "unknown_receipt", None),
    (cancel(t("01-12"), "$news", password="wrong1"), "wrong_password", None),
    (
        {
            "command": "refund",
            "at": t("01-12"),
            "receipt": "$movie",
            "amount": 500,
            "reason": "broken",
        },
        "refund_exceeds_charge",
        None,
    ),
    (
        {
            "command": "refund",
            "at": t("01-12"),
            "receipt": "$movie",
            "amount": 400,
            "reason": "broken",
        },
        True,
        None,
    ),
    (cancel(t("01-13"), "$news"), True, None),
    (cancel(t("01-13"), "$news"), "not_cancellable", None),
    # Billing changes and regulation (§5, §6)
    (
        {
            "command": "change_billing",
            "at": t("01-14"),
            "customer_id": LINE,
            "billing": {"method": "phone_bill", "number": "06-1111-2222", "cycle_start_day": 6},
            "reason": "billing_phone_change",
        },
        True,
        None,
    ),
    ({"command": "regulate_line", "at": t("01-15"), "customer_id": LINE}, True, None),
    ({"command": "regulate_line", "at": t("01-15"), "customer_id": LINE}, True, None),
    (buy("cid1", t("01-16"), "movie"), "line_regulated", None),
    # Credentials before the state they guard: a wrong password on a regulated line is counted.
    ({**buy("cid1", t("01-16"), "movie"), "password": "wrong1"}, "wrong_password", None),
    (passport("late", t("01-16"), limit=1), "line_regulated", None),
    (
        {"command": "lift_regulation", "at": t("01-17"), "customer_id": LINE, "channel": "online"},
        "not_allowed_online",
        None,
    ),
    (
        {"command": "lift_regulation", "at": t("01-17"), "customer_id": LINE, "channel": "written"},
        True,
        None,
    ),
    # Lockout after ten wrong passwords (§10), unlocked by the line holder or the operator
    *[
        (
            {**buy("cid2", t("01-18", f"10:00:{i:02d}"), "movie"), "password": "wrong1"},
            "wrong_password",
            None,
        )
        for i in range(10)
    ],
    (buy("cid2", t("01-18", "11:00:00"), "movie"), "locked_out", None),
    (
        holder("change_passport_details", t("01-18", "12:00:00"), "cid2", password="newpw1"),
        True,
        None,
    ),
    ({**buy("cid2", t("01-18", "13:00:00"), "movie"), "password": "newpw1"}, True, None),
    (
        {
            "command": "reset_password",
            "at": t("01-18", "14:00:00"),
            "passport_id": "cid1",
            "password": "reset1",
            "channel": "written",
        },
        True,
        None,
    ),
    (
        {**buy("cid1", t("01-18", "15:00:00"), "movie"), "password": "reset1"},
        "limit_exceeded",
        None,
    ),
    # Personal data (the operator's command): erased on request, bills stay intact
    (
        {
            "command": "erase_personal_data",
            "at": t("01-18", "16:00:00"),
            "passport_id": "cid2",
            "reason": "本人からの削除依頼",
        },
        True,
        None,
    ),
    (
        {
            "command": "erase_personal_data",
            "at": t("01-18", "16:00:00"),
            "passport_id": "nobody",
            "reason": "request",
        },
        "unknown_passport",
        None,
    ),
    # Deletion and line changes (§2, §6)
    (holder("delete_passport", t("01-19"), "cid3", key=KEYS[LINE2]), "wrong_access_key", None),
    (holder("delete_passport", t("01-19"), "cid3"), True, None),
    (holder("delete_passport", t("01-19"), "cid3"), "unknown_passport", None),
    (
        {"command": "change_line", "at": t("01-20"), "customer_id": LINE, "change": "rename"},
        True,
        None,
    ),
    (
        {
            "command": "change_line",
            "at": t("01-21"),
            "customer_id": LINE2,
            "change": "item_change",
            "new_kind": "hikari_next",
        },
        "invalid_input",
        None,
    ),
    (
        {
            "command": "change_line",
            "at": t("01-21"),
            "customer_id": LINE2,
            "change": "menu_change",
            "new_kind": "hikari_next",
        },
        True,
        None,
    ),
    (
        {"command": "change_line", "at": t("01-22"), "customer_id": EAST, "change": "cancellation"},
        True,
        None,
    ),
    (
        {"command": "change_line_limit", "at": t("01-23"), "customer_id": EAST, "line_limit": 1},
        "unknown_line",
        None,
    ),
    # Registration cut-off (§2): West lines can no longer register from 2024-12-01.
    (passport("tooLate", "2024-12-01T00:00:00+09:00", limit=1), "registration_closed", None),
    # Provider fees (§8)
    (
        {
            "command": "set_fee",
            "at": t("01-24"),
            "operator": "east",
            "effective_from": "2024-01",
            "flat_fee": 50,
        },
        True,
        None,
    ),
    # Closing months (§7)
    ({"command": "issue_bills", "at": t("01-31"), "month": "2024-01"}, "invalid_input", None),
    ({"command": "issue_bills", "at": "2024-02-01T00:00:00+09:00", "month": "2024-01"}, True, None),
    ({"command": "issue_bills", "at": "2024-02-01T00:00:00+09:00", "month": "2024-01"}, True, None),
    (buy("nobody", t("01-25"), "movie"), "month_closed", None),
    (
        {
            "command": "set_fee",
            "at": t("02-02"),
            "operator": "west",
            "effective_from": "2024-01",
            "flat_fee": 60,
        },
        "month_closed",
        None,
    ),
    # Malformed input
    (
        {
            "command": "purchase",
            "at": "2024-02-02T10:00:00",
            "passport_id": "alice",
            "password": "pass1",
            "provider": "A",
            "service": "movie",
        },
        "invalid_input",
        None,
    ),
    ({**cancel(t("02-02"), "$news"), "extra": 1}, "invalid_input", None),
    ({"command": "cancel", "at": t("02-02"), "receipt": "$news"}, "invalid_input", None),
    (
        {
            k: v
            for k, v in holder("delete_passport", t("02-02"), "alice").items()
            if k != "access_key"
        },
        "invalid_input",
        None,
    ),
    ({"command": "teleport", "at": t("02-02")}, "invalid_input", None),
]


def _write_log(path: Path) -> list[tuple[bool | str, str | None]]:
    """Write LOG as JSONL (with a comment and a blank line); return expectations in order."""
    lines = ["# matome command log exercising every command", ""]
    for command, _, _ in LOG:
        lines.append(json.dumps(command, ensure_ascii=False))
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return [(expected, label) for _, expected, label in LOG]


def _run(db: str, log: Path, capsys: pytest.CaptureFixture[str]) -> list[dict[str, Any]]:
    assert main(["run", str(log), "--db", db]) == 0
    return [json.loads(line) for line in capsys.readouterr().out.splitlines()]


def _resolve_receipts(path: Path, receipts: dict[str, str]) -> None:
    text = path.read_text(encoding="utf-8")
    for label, receipt in receipts.items():
        text = text.replace(f'"${label}"', json.dumps(receipt))
    path.write_text(text, encoding="utf-8")


def test_log_covers_every_command_and_every_error_code() -> None:
    commands = {c["command"] for c, _, _ in LOG}
    assert set(COMMANDS) <= commands
    codes = {e for _, e, _ in LOG if isinstance(e, str)}
    assert set(ERROR_CLASSES) <= codes


@pytest.fixture(autouse=True)
def _cheap(cheap_hashing: None) -> None:
    """``matome``'s engines hash with the tests' cheap PBKDF2 round count (same scheme)."""


def test_matome_run_answers_every_command_as_the_contract_says(
    db: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # Receipts are answered by purchases: run the log in two passes, the second with "$label"
    # references resolved from the first pass's answers (receipts are deterministic).
    log = tmp_path / "log.jsonl"
    expected = _write_log(log)
    scratch = tmp_path / "scratch.sqlite"
    first = _run(str(scratch), log, capsys)
    receipts = {
        label: result["receipt"]
        for (ok, label), result in zip(expected, first, strict=True)
        if label and result["ok"]
    }
    _resolve_receipts(log, receipts)

    results = _run(db, log, capsys)

    assert len(results) == len(LOG)
    numbers = [r["line"] for r in results]
    assert numbers == sorted(numbers)
    assert numbers[0] == 3  # the comment and the blank line are skipped
    for (command, want, _), got in zip(LOG, results, strict=True):
        if want is True:
            assert got["ok"] is True, (command, got)
        else:
            assert got["ok"] is False, (command, got)
            assert got["error"]["code"] == want, (command, got)
            assert got["error"]["message"]
    purchases = [
        g
        for (c, w, _), g in zip(LOG, results, strict=True)
        if c["command"] == "purchase" and w is True
    ]
    assert all(g["receipt"].startswith("R") for g in purchases)
    # The idempotent retry answered the first result again.
    news = [g for (c, w, _), g in zip(LOG, results, strict=True) if c.get("key") == "k-news"]
    assert news[0]["receipt"] == news[1]["receipt"]


def test_matome_run_on_a_missing_log_exits_non_zero(tmp_path: Path) -> None:
    assert main(["run", str(tmp_path / "missing.jsonl"), "--db", ":memory:"]) != 0


def test_a_line_that_is_not_utf8_is_invalid_input_and_the_run_goes_on(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Contract 2 (bounds): a line that is not UTF-8 is that line's ``invalid_input``; the log
    itself can be read, so the run goes on to the next line and exits 0 (contract 1 ended
    the run with a non-zero exit)."""
    log = tmp_path / "bad.jsonl"
    good = json.dumps(LOG[0][0]).encode()
    log.write_bytes(b'{"command": "\xff"}\n' + good + b"\n")
    first, second = _run(":memory:", log, capsys)
    assert (first["line"], first["ok"], first["error"]["code"]) == (1, False, "invalid_input")
    assert "UTF-8" in first["error"]["message"]
    assert (second["line"], second["ok"]) == (2, True)


# ---------------------------------------------------------------------------------------------
# A log is applied once (docs/contract.md, "Contract 3: a log is applied once")

#: A small log whose one purchase bills 300 yen: applied twice, the bill says 600.
ONCE = [
    {
        "command": "register_provider",
        "at": t("01-04", "09:00:00"),
        "provider": "A",
        "name": "A Co.",
        "contact": "0120-000-111",
        "goods": "information",
    },
    {
        "command": "list_service",
        "at": t("01-04", "09:01:00"),
        "provider": "A",
        "service": "news",
        "name": "news",
        "pricing": "per_purchase",
        "price": 300,
    },
    line(
        LINE,
        t("01-05"),
        "west",
        "hikari_next",
        10000,
        {"method": "customer_number", "number": "0012345678"},
    ),
    passport("yamada.taro", t("01-06")),
    buy("yamada.taro", t("01-15"), "news"),
]


def _jsonl(commands: list[dict[str, Any]], **dumps: Any) -> str:
    return "".join(json.dumps(c, ensure_ascii=False, **dumps) + "\n" for c in commands)


def _billed(db: str) -> int:
    """What the line's January bill charges (yen)."""
    engine = Engine.open(db, hash_iterations=TEST_ITERATIONS, create=False)
    try:
        return int(to_json(engine.bill(LINE, "2024-01"))["subtotal"])
    finally:
        engine.close()


def _events_in(db: str) -> int:
    engine = Engine.open(db, hash_iterations=TEST_ITERATIONS, create=False)
    try:
        return engine.internals.recorder.max_notification_id() or 0
    finally:
        engine.close()


def _matome(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    capsys.readouterr()
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture
def once(tmp_path: Path) -> Path:
    path = tmp_path / "once.jsonl"
    path.write_text(_jsonl(ONCE), encoding="utf-8")
    return path


def test_a_plain_rerun_of_an_applied_log_exits_2_naming_resume_and_applies_nothing(
    db: str, once: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Contract 3: ``matome run`` of a log this store applied exits 2 and says ``--resume``
    (it once applied everything again: bill 600 yen instead of 300)."""
    assert _matome(capsys, "run", str(once), "--db", db)[0] == 0
    events = _events_in(db)
    code, out, err = _matome(capsys, "run", str(once), "--db", db)
    assert code == 2
    assert out == ""
    assert "--resume" in err
    assert "--again" in err
    assert (_events_in(db), _billed(db)) == (events, 300)


def test_a_rerun_after_a_prefix_was_applied_exits_2_and_resume_applies_the_rest(
    db: str, once: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Contract 3: a log of which the store applied a prefix (a run cut short) is refused
    without ``--resume``; ``--resume`` applies exactly the rest."""
    cut = tmp_path / "cut.jsonl"
    cut.write_text(_jsonl(ONCE[:3]), encoding="utf-8")
    assert _matome(capsys, "run", str(cut), "--db", db)[0] == 0
    code, _, err = _matome(capsys, "run", str(once), "--db", db)
    assert code == 2
    assert "--resume" in err
    code, out, err = _matome(capsys, "run", str(once), "--db", db, "--resume")
    assert code == 0
    assert [json.loads(x)["line"] for x in out.splitlines()] == [4, 5]
    assert "3 skipped" in err
    assert _billed(db) == 300


def test_running_a_prefix_of_an_applied_log_exits_2(
    db: str, once: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Contract 3: the commands of a prefix of an applied log were all applied: exit 2."""
    assert _matome(capsys, "run", str(once), "--db", db)[0] == 0
    cut = tmp_path / "cut.jsonl"
    cut.write_text(_jsonl(ONCE[:2]), encoding="utf-8")
    assert _matome(capsys, "run", str(cut), "--db", db)[0] == 2


@pytest.mark.parametrize(
    "variant",
    ["re-indented", "annotated", "crlf and key order"],
)
def test_resume_knows_the_log_by_its_commands_not_its_bytes(
    db: str, once: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], variant: str
) -> None:
    """Contract 3: the same commands re-indented, with comments and blank lines added, or
    with other line ends and key order, are the same log: ``--resume`` skips what was
    applied (the identity was the SHA-256 of the first raw line: a ``#`` comment prepended or
    the first line re-serialised applied everything again)."""
    cut = tmp_path / "cut.jsonl"
    cut.write_text(_jsonl(ONCE[:4]), encoding="utf-8")
    assert _matome(capsys, "run", str(cut), "--db", db)[0] == 0
    other = tmp_path / "other.jsonl"
    if variant == "re-indented":
        other.write_text(_jsonl(ONCE, separators=(" , ", " :  ")), encoding="utf-8")
    elif variant == "annotated":
        other.write_text(
            "# applied by hand, see ticket 42\n\n"
            + _jsonl(ONCE).replace("\n", "\n   \n# next\n", 2),
            encoding="utf-8",
        )
    else:
        other.write_bytes(
            "".join(
                json.dumps(dict(reversed(list(c.items()))), ensure_ascii=True) + "\r\n"
                for c in ONCE
            ).encode()
        )
    assert _matome(capsys, "run", str(other), "--db", db)[0] == 2
    code, out, err = _matome(capsys, "run", str(other), "--db", db, "--resume")
    assert code == 0, err
    results = [json.loads(x) for x in out.splitlines()]
    assert [(r["line"], r["ok"]) for r in results] == [(results[0]["line"], True)]
    assert _billed(db) == 300


def test_resume_works_on_standard_input(
    db: str,
    once: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Contract 3: ``matome run - --resume`` skips what was applied (``--resume`` was silently
    ignored on standard input, and the log applied again); without it, exit 2."""
    cut = tmp_path / "cut.jsonl"
    cut.write_text(_jsonl(ONCE[:4]), encoding="utf-8")
    assert _matome(capsys, "run", str(cut), "--db", db)[0] == 0

    def stdin() -> None:
        monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(once.read_bytes())))

    stdin()
    assert _matome(capsys, "run", "-", "--db", db)[0] == 2
    stdin()
    code, out, err = _matome(capsys, "run", "-", "--db", db, "--resume")
    assert code == 0, err
    assert [json.loads(x)["line"] for x in out.splitlines()] == [5]
    assert _billed(db) == 300


def test_resume_refuses_another_log_that_begins_the_same(
    db: str, once: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The commands skipped must be the commands applied: a log that shares only its first
    command with the applied one is not resumed (exit 2), nothing is applied."""
    assert _matome(capsys, "run", str(once), "--db", db)[0] == 0
    other = tmp_path / "other.jsonl"
    changed = [*ONCE[:2], {**ONCE[2], "line_limit": 20000}, *ONCE[3:]]
    other.write_text(_jsonl(changed), encoding="utf-8")
    events = _events_in(db)
    code, out, err = _matome(capsys, "run", str(other), "--db", db, "--resume")
    assert (code, out) == (2, "")
    assert "not the log" in err
    assert _events_in(db) == events


def test_again_applies_an_applied_log_once_more_and_its_positions_are_its_own(
    db: str, once: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Contract 3: ``--again`` applies an applied log anyway, on purpose.  Its positions are
    a run of their own (the log's identity + N), so ``--resume`` after it resumes it, and a
    plain run is still refused."""
    assert _matome(capsys, "run", str(once), "--db", db)[0] == 0
    code, out, _ = _matome(capsys, "run", str(once), "--db", db, "--again")
    assert code == 0
    assert json.loads(out.splitlines()[-1])["ok"]  # the purchase, once more
    assert _billed(db) == 600
    code, out, err = _matome(capsys, "run", str(once), "--db", db, "--resume")
    assert (code, out) == (0, "")
    assert "5 skipped" in err
    assert _matome(capsys, "run", str(once), "--db", db)[0] == 2
    assert _matome(capsys, "run", str(once), "--db", db, "--again", "--resume")[0] == 2
    assert _billed(db) == 600


@pytest.mark.parametrize("batch", ["1", "100"])
def test_a_run_that_loses_the_race_skips_what_the_other_applied(
    db: str, once: Path, capsys: pytest.CaptureFixture[str], batch: str
) -> None:
    """Contract 3: two runs of one log at once apply each line once — the position is
    claimed in the transaction that records the line (it was read at the start and not
    claimed: bill 600 yen instead of 300).  Deterministic: the second run starts, reads the
    log's first line and finds the store empty; then, before it records anything, the first
    run applies the whole log."""
    from matome.cli import run_log

    text = once.read_bytes().splitlines(keepends=True)
    engine = Engine.open(db, hash_iterations=TEST_ITERATIONS)
    other = Engine.open(db, hash_iterations=TEST_ITERATIONS)
    try:

        def racing() -> Any:
            yield text[0]
            if batch == "1":
                # The loser has recorded line 1; the winner resumes after it, and wins the rest.
                run_log(other, io.BytesIO(b"".join(text)), io.StringIO(), resume=True)
            else:
                run_log(other, io.BytesIO(b"".join(text)), io.StringIO())
            yield from text[1:]

        out = io.StringIO()
        skipped: list[int] = []
        run_log(engine, racing(), out, batch=int(batch), skipped=skipped)
        printed = [json.loads(x)["line"] for x in out.getvalue().splitlines()]
        assert printed == ([1] if batch == "1" else [])
        assert skipped == [len(ONCE) - len(printed)]
    finally:
        engine.close()
        other.close()
    assert _billed(db) == 300


@pytest.mark.parametrize("store", ["memory", "sqlite", "postgres"])
def test_the_store_refuses_a_write_claiming_a_command_already_applied(
    store: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    """In the recorder, under the write lock: a write whose first command is not after the
    stored position is refused with LogPositionTaken — not an IntegrityError, which the
    command service would retry by deciding again — and nothing of it is kept."""
    from eventsourcing.persistence import IntegrityError

    from matome.application.eventstore import LogPosition, LogPositionTaken
    from matome.commands import parse_command

    url = {"memory": ":memory:", "sqlite": str(tmp_path / "s.sqlite")}.get(store)
    if url is None:
        url = request.getfixturevalue("pg_url")
    engine = Engine.open(url, hash_iterations=TEST_ITERATIONS)
    try:
        provider = parse_command(ONCE[0])
        engine.execute(provider, LogPosition("log", 1, "d1"))
        events = engine.internals.recorder.max_notification_id()
        service = parse_command(ONCE[1])
        for claim in (LogPosition("log", 1, "d1"), LogPosition("log", 2, "d2", first=1)):
            with pytest.raises(LogPositionTaken) as taken:
                engine.execute(service, claim)
            assert not isinstance(taken.value, IntegrityError)
            assert taken.value.stored == LogPosition("log", 1, "d1")
        assert engine.internals.recorder.max_notification_id() == events
        engine.execute(service, LogPosition("log", 2, "d2"))  # the next command: kept
        assert engine.log_position("log") == LogPosition("log", 2, "d2")
        engine.execute(parse_command(ONCE[2]), LogPosition("other log", 1, "x"))  # its own
    finally:
        engine.close()


def test_a_huge_line_is_read_in_bounded_memory_and_is_that_lines_invalid_input(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Contract 2 (bounds) and issue #15: a line of 200 MB (a sparse file: no disk) is that
    line's ``invalid_input``, naming its size, and costs at most 64 KiB and a chunk — not
    the line (a 1 GB line cost 3.2 GB of memory although only 64 KiB were read)."""
    import tracemalloc

    from matome.interchange import MAX_LINE_BYTES, log_lines

    huge = 200_000_000
    path = tmp_path / "huge.jsonl"
    with path.open("wb") as f:
        f.write(b'{"command": "register_provider", "name": "')
        f.seek(huge - 1)
        f.write(b'"}\n' + json.dumps(ONCE[0]).encode() + b"\n")
    tracemalloc.start()
    try:
        with path.open("rb") as source:
            lines = list(log_lines(source))
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 4 * MAX_LINE_BYTES + 1_000_000, f"{peak:,} bytes allocated"
    assert [(x.number, x.too_long, x.size) for x in lines] == [
        (1, True, huge + 1),
        (2, False, len(json.dumps(ONCE[0]))),
    ]
    code, out, _ = _matome(capsys, "run", str(path), "--db", str(tmp_path / "s.sqlite"))
    first, second = (json.loads(x) for x in out.splitlines())
    assert code == 0
    assert first["error"]["code"] == "invalid_input"
    assert f"{huge + 1:,} bytes" in first["error"]["message"]
    assert second["ok"]


def test_a_position_recorded_by_matome_0_2_is_still_resumed(
    db: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A store written by 0.2 holds positions in the old form (the SHA-256 of the first raw
    line, physical line numbers, raw lines chained): a plain run of that log is refused
    and ``--resume`` skips the lines it records, checked against the old digest."""
    import hashlib

    from matome.application.eventstore import LogPosition
    from matome.commands import parse_command

    path = tmp_path / "old.jsonl"
    raw = ["# written for 0.2", *(json.dumps(c) for c in ONCE)]
    path.write_text("".join(x + "\n" for x in raw), encoding="utf-8")
    digest = ""
    for text in raw[:4]:  # 0.2 applied the comment and the first three commands
        digest = hashlib.sha256(f"{digest}:".encode() + text.encode()).hexdigest()
    old = LogPosition(hashlib.sha256(raw[0].encode()).hexdigest(), 4, digest)
    engine = Engine.open(db, hash_iterations=TEST_ITERATIONS)
    try:
        for command in ONCE[:2]:
            engine.execute(parse_command(command))
        engine.execute(parse_command(ONCE[2]), old)  # as 0.2 recorded it
    finally:
        engine.close()
    code, _, err = _matome(capsys, "run", str(path), "--db", db)
    assert code == 2
    assert "--resume" in err
    code, out, err = _matome(capsys, "run", str(path), "--db", db, "--resume")
    assert code == 0, err
    assert [json.loads(x)["line"] for x in out.splitlines()] == [5, 6]
    assert _billed(db) == 300
    assert _matome(capsys, "run", str(path), "--db", db)[0] == 2  # now in the new form too


def test_a_contract_declaration_is_part_of_a_logs_identity(
    db: str, once: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Contract 3, "A log is applied once" with "Contract versions": declaring contract 2 is
    the same log as declaring none (it means the same), so its re-run exits 2; the same
    commands declared under contract 3 are read with another meaning — another log, which
    this store has not applied (its own re-run is then refused in turn)."""
    assert _matome(capsys, "run", str(once), "--db", db)[0] == 0
    text = once.read_text(encoding="utf-8")
    two = tmp_path / "two.jsonl"
    two.write_text('{"contract": 2}\n' + text, encoding="utf-8")
    code, _, err = _matome(capsys, "run", str(two), "--db", db)
    assert code == 2
    assert "--resume" in err
    three = tmp_path / "three.jsonl"
    three.write_text('{"contract": 3}\n' + text, encoding="utf-8")
    code, _, err = _matome(capsys, "run", str(three), "--db", db)
    assert code == 0, err
    assert "contract 3 (declared)" in err
    assert _matome(capsys, "run", str(three), "--db", db)[0] == 2
