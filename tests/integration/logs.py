"""Contract-2 command-log builders and the in-process ``matome`` CLI driver.

Every integration test that goes through ``matome run`` builds its log with these helpers, so
that each log speaks contract 2 (docs/contract.md, "Changes in contract 2"): the line holder's
commands carry the line's ``access_key``, ``purchase`` and ``cancel`` carry the Passport ID's
``password``.

Receipt numbers are only known once a purchase has been applied, so a log entry may carry two
test-only keys that never reach ``matome``: ``"as": NAME`` on a purchase names its receipt, and
``"$NAME"`` in a ``receipt`` field refers to it (the log is run in as many pieces as needed);
``"refused": CODE`` expects the command to be refused with that error code.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest

from matome import cli
from matome.engine import Engine
from tests.conftest import TEST_ITERATIONS

Entry = dict[str, Any]
Doc = Any

LINE = "CAF0000000001"
LINE2 = "CAF0000000002"
LINE3 = "CAF0000000003"
EAST = "COP00000004"
PID = "taro.1"
PID2 = "hanako.2"
PW = "Pass1234"
WRONG_PW = "Wrong999"
WRONG_KEY = "Guess000"
LABEL = "フレッツ・まとめて支払い料金"
APPLICANT: Entry = {"name": "山田 太郎", "phone": "06-1234-5678", "contract_holder": True}
BY_NUMBER: Entry = {"method": "customer_number", "number": "0012345678"}
BY_PHONE: Entry = {"method": "phone_bill", "number": "06-1234-5678", "cycle_start_day": 6}
JAN_TO_APR = ("2024-01", "2024-02", "2024-03", "2024-04")


def jst(day: str, time: str = "10:00:00", year: int = 2024) -> str:
    """A business time, written with the Tokyo offset (``day`` is ``MM-DD``)."""
    return f"{year}-{day}T{time}+09:00"


def access_key(customer_id: str) -> str:
    """Each line's own access key [アクセスキー]: ``Ak3y`` + the last four digits of its ID."""
    return f"Ak3y{customer_id[-4:]}"


def expect(entry: Entry, refused: str | None) -> Entry:
    if refused is not None:
        entry["refused"] = refused
    return entry


# ---------------------------------------------------------------------------------------------
# The operator's and the providers' commands (trusted channels: no credential)


def provider(
    code: str, name: str, at: str = "2023-12-01T09:00:00+09:00", goods: str = "information"
) -> Entry:
    return {
        "command": "register_provider",
        "at": at,
        "provider": code,
        "name": name,
        "contact": f"0120-000-{ord(code[0]):03d}",
        "goods": goods,
    }


def service(
    code: str,
    svc: str,
    name: str,
    pricing: str,
    price: int,
    at: str = "2023-12-01T09:05:00+09:00",
) -> Entry:
    return {
        "command": "list_service",
        "at": at,
        "provider": code,
        "service": svc,
        "name": name,
        "pricing": pricing,
        "price": price,
    }


def line(
    customer_id: str = LINE,
    billing: Entry | None = None,
    at: str = "2023-12-01T10:00:00+09:00",
    kind: str = "hikari_next",
    operator: str | None = None,
    line_limit: int = 10000,
) -> Entry:
    return {
        "command": "open_line",
        "at": at,
        "customer_id": customer_id,
        "operator": operator or ("east" if customer_id.startswith("COP") else "west"),
        "kind": kind,
        "access_key": access_key(customer_id),
        "line_limit": line_limit,
        "billing": billing if billing is not None else BY_NUMBER,
    }


def regulate(at: str, customer_id: str = LINE) -> Entry:
    return {"command": "regulate_line", "at": at, "customer_id": customer_id}


def lift(at: str, customer_id: str = LINE) -> Entry:
    return {
        "command": "lift_regulation",
        "at": at,
        "customer_id": customer_id,
        "channel": "written",
    }


def change_line(at: str, change: str, customer_id: str = LINE, **kw: Any) -> Entry:
    refused = kw.pop("refused", None)
    entry = {"command": "change_line", "at": at, "customer_id": customer_id, "change": change}
    return expect({**entry, **kw}, refused)


def change_billing(at: str, billing: Entry, reason: str, customer_id: str = LINE) -> Entry:
    return {
        "command": "change_billing",
        "at": at,
        "customer_id": customer_id,
        "billing": billing,
        "reason": reason,
    }


def reset_password(
    at: str, pid: str = PID, password: str = "Reset123", refused: str | None = None
) -> Entry:
    entry = {
        "command": "reset_password",
        "at": at,
        "passport_id": pid,
        "password": password,
        "channel": "phone",
    }
    return expect(entry, refused)


def set_fee(
    at: str, operator: str, effective_from: str, flat_fee: int, refused: str | None = None
) -> Entry:
    entry = {
        "command": "set_fee",
        "at": at,
        "operator": operator,
        "effective_from": effective_from,
        "flat_fee": flat_fee,
    }
    return expect(entry, refused)


def issue(at: str, month: str, refused: str | None = None) -> Entry:
    return expect({"command": "issue_bills", "at": at, "month": month}, refused)


def refund(at: str, name: str, amount: int, refused: str | None = None) -> Entry:
    entry: Entry = {
        "command": "refund",
        "at": at,
        "receipt": f"${name}",
        "amount": amount,
        "reason": "配信不良",
    }
    return expect(entry, refused)


# ---------------------------------------------------------------------------------------------
# The line holder's commands (with the line's access key)


def passport(
    pid: str = PID,
    customer_id: str = LINE,
    at: str = "2023-12-02T10:00:00+09:00",
    *,
    limit: int = 5000,
    line_auth: bool = False,
    key: str | None = None,
    refused: str | None = None,
) -> Entry:
    entry = {
        "command": "register_passport",
        "at": at,
        "customer_id": customer_id,
        "access_key": key or access_key(customer_id),
        "passport_id": pid,
        "password": PW,
        "email": f"{pid}@example.jp",
        "applicant": APPLICANT,
        "limit": limit,
        "line_auth": line_auth,
    }
    return expect(entry, refused)


def change_limit(
    at: str,
    limit: int,
    pid: str = PID,
    *,
    key: str = access_key(LINE),
    refused: str | None = None,
) -> Entry:
    entry = {
        "command": "change_passport_limit",
        "at": at,
        "passport_id": pid,
        "access_key": key,
        "limit": limit,
    }
    return expect(entry, refused)


def change_details(
    at: str,
    pid: str = PID,
    *,
    key: str = access_key(LINE),
    refused: str | None = None,
    **changes: Any,
) -> Entry:
    entry = {
        "command": "change_passport_details",
        "at": at,
        "passport_id": pid,
        "access_key": key,
        **changes,
    }
    return expect(entry, refused)


def delete(
    at: str, pid: str = PID, *, key: str = access_key(LINE), refused: str | None = None
) -> Entry:
    entry = {"command": "delete_passport", "at": at, "passport_id": pid, "access_key": key}
    return expect(entry, refused)


def notification(
    at: str,
    notify: bool,
    customer_id: str = LINE,
    provider: str = "A",
    *,
    key: str | None = None,
    refused: str | None = None,
) -> Entry:
    entry = {
        "command": "set_notification",
        "at": at,
        "customer_id": customer_id,
        "access_key": key or access_key(customer_id),
        "provider": provider,
        "notify": notify,
        "consent": True,
        "channel": "web",
    }
    return expect(entry, refused)


# ---------------------------------------------------------------------------------------------
# The Passport ID holder's commands (with its password)


def buy(
    at: str,
    svc: str = "back",
    *,
    provider: str = "A",
    pid: str = PID,
    password: str = PW,
    name: str | None = None,
    refused: str | None = None,
    **kw: Any,
) -> Entry:
    entry: Entry = {
        "command": "purchase",
        "at": at,
        "passport_id": pid,
        "password": password,
        "provider": provider,
        "service": svc,
        **kw,
    }
    if name is not None:
        entry["as"] = name
    return expect(entry, refused)


def cancel(at: str, name: str, password: str = PW, refused: str | None = None) -> Entry:
    entry = {"command": "cancel", "at": at, "receipt": f"${name}", "password": password}
    return expect(entry, refused)


# ---------------------------------------------------------------------------------------------
# Worlds


def catalog() -> list[Entry]:
    """Provider A: ``back`` (monthly 525, the guide's "back service") and ``item`` (per
    purchase 440); provider B: ``anime1`` and ``anime2`` (monthly 300 each); provider C lists
    ``news`` (monthly 100) and is never bought from unless a test says so."""
    return [
        provider("A", "A Co."),
        provider("B", "B Co."),
        provider("C", "C Co."),
        service("A", "back", "back service", "monthly", 525),
        service("A", "item", "movie rental", "per_purchase", 440),
        service("B", "anime1", "anime 1", "monthly", 300),
        service("B", "anime2", "anime 2", "monthly", 300),
        service("C", "news", "news", "monthly", 100),
    ]


def world(billing: Entry | None = None) -> list[Entry]:
    """The catalog, line ``LINE`` (billed by customer number unless told) and ``taro.1``."""
    return [*catalog(), line(LINE, billing), passport()]


# ---------------------------------------------------------------------------------------------
# The CLI driver


class Matome:
    """Runs ``matome`` in-process against one store and parses what it prints."""

    def __init__(self, db: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
        self.db = db
        self.tmp_path = tmp_path
        self.capsys = capsys
        self.receipts: dict[str, str] = {}
        self._logs = 0

    def run(self, *entries: Entry, again: bool = False) -> list[Entry]:
        """Apply ``entries`` through ``matome run``; check each result; return them all.
        ``again``: ``matome run --again`` (commands this store applied before, on purpose)."""
        results: list[Entry] = []
        piece: list[Entry] = []
        for entry in entries:
            if self._unresolved(entry, piece):
                results += self._run_piece(piece, again)
                piece = []
            piece.append(entry)
        if piece:
            results += self._run_piece(piece, again)
        return results

    def _unresolved(self, entry: Entry, piece: Sequence[Entry]) -> bool:
        ref = entry.get("receipt")
        if not (isinstance(ref, str) and ref.startswith("$")):
            return False
        return ref[1:] not in self.receipts and any(e.get("as") == ref[1:] for e in piece)

    def body(self, entry: Entry) -> Entry:
        """The command as ``matome`` reads it: test-only keys dropped, receipts resolved."""
        body = {k: v for k, v in entry.items() if k not in ("as", "refused")}
        ref = body.get("receipt")
        if isinstance(ref, str) and ref.startswith("$"):
            body["receipt"] = self.receipts[ref[1:]]
        return body

    def _run_piece(self, piece: list[Entry], again: bool = False) -> list[Entry]:
        lines = [json.dumps(self.body(e), ensure_ascii=False).encode() for e in piece]
        results = self.run_raw(lines, "--again") if again else self.run_raw(lines)
        assert len(results) == len(piece)
        for entry, result in zip(piece, results, strict=True):
            expected = entry.get("refused")
            if expected is None:
                assert result["ok"] is True, (entry, result)
            else:
                assert result["ok"] is False, (entry, result)
                assert result["error"]["code"] == expected, (entry, result)
                assert result["error"]["message"], result
            if "as" in entry and result["ok"]:
                self.receipts[entry["as"]] = result["receipt"]
        return results

    def run_raw(self, lines: Sequence[bytes], *args: str) -> list[Entry]:
        """``matome run [ARGS]`` on a log of these lines, written byte for byte; exit 0
        expected."""
        self._logs += 1
        path = self.tmp_path / f"log{self._logs}.jsonl"
        path.write_bytes(b"".join(text + b"\n" for text in lines))
        self.capsys.readouterr()
        assert cli.main(["run", str(path), "--db", self.db, *args]) == 0
        return [json.loads(text) for text in self.capsys.readouterr().out.splitlines()]

    def call(self, *args: str) -> tuple[int, Doc]:
        """``matome ARGS --json --db DB``: the exit code and the parsed JSON it printed."""
        self.capsys.readouterr()
        code = cli.main([*args, "--json", "--db", self.db])
        out = self.capsys.readouterr().out
        return code, json.loads(out)

    def text(self, *args: str) -> tuple[int, str, str]:
        """``matome ARGS --db DB`` without ``--json``: exit code, stdout and stderr."""
        self.capsys.readouterr()
        code = cli.main([*args, "--db", self.db])
        captured = self.capsys.readouterr()
        return code, captured.out, captured.err

    def doc(self, *args: str) -> Doc:
        code, document = self.call(*args)
        assert code == 0, document
        return document

    def bill(self, customer_id: str, month: str) -> Doc:
        return self.doc("bill", customer_id, month)

    def status(self, customer_id: str = LINE) -> Doc:
        return self.doc("status", customer_id)

    def subtotals(self, customer_id: str = LINE, months: Sequence[str] = JAN_TO_APR) -> list[int]:
        return [self.bill(customer_id, m)["subtotal"] for m in months]

    def events(self) -> int:
        """How many events the store holds (to show that a refusal wrote nothing)."""
        engine = Engine.open(self.db, hash_iterations=TEST_ITERATIONS)
        try:
            return engine.internals.recorder.max_notification_id() or 0
        finally:
            engine.close()

    def failures(self, pid: str = PID) -> int:
        """The Passport ID's count of consecutive wrong passwords, as the store knows it."""
        engine = Engine.open(self.db, hash_iterations=TEST_ITERATIONS)
        try:
            passport = engine.passport(pid)
            assert passport is not None
            return passport.consecutive_failures
        finally:
            engine.close()
