"""Billing documents through the command line: a small command log in, JSON documents out.

Every case writes a short command log (JSON Lines) to ``tmp_path``, applies it with
``matome run LOG --db DB`` and reads the documents back with ``matome bill|statement|
providers|settle|contacts|continuity|rebuild --json --db DB``; each runs on an SQLite file and
on PostgreSQL (DOMAIN.md §4–§8, INTERCHANGE.md "Documents out" and "Command line").

The CLI runs in-process (``matome.cli.main``).  Its engines are opened with the tests' cheap
PBKDF2 round count (the scheme is the same; stored hashes carry their own round count), and one
test runs the real ``matome`` console script in a subprocess with production settings.

Receipt numbers are only known once a purchase has been applied, so a log entry may carry two
test-only keys that never reach ``matome``: ``"as": NAME`` on a purchase names its receipt, and
``"$NAME"`` in a ``receipt`` field refers to it (the log is run in as many pieces as needed);
``"refused": CODE`` expects the command to be refused with that error code.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from argparse import Namespace
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
PID = "taro.1"
PID2 = "hanako.2"
PW = "Pass1234"
LABEL = "フレッツ・まとめて支払い料金"
APPLICANT: Entry = {"name": "山田 太郎", "phone": "06-1234-5678", "contract_holder": True}
BY_NUMBER: Entry = {"method": "customer_number", "number": "0012345678"}
BY_PHONE: Entry = {"method": "phone_bill", "number": "06-1234-5678", "cycle_start_day": 6}
JAN_TO_APR = ("2024-01", "2024-02", "2024-03", "2024-04")


def jst(day: str, time: str = "10:00:00") -> str:
    """A business time in 2024, written with the Tokyo offset (``day`` is ``MM-DD``)."""
    return f"2024-{day}T{time}+09:00"


# ---------------------------------------------------------------------------------------------
# Command-log builders


def provider(code: str, name: str, at: str = "2023-12-01T09:00:00+09:00") -> Entry:
    return {
        "command": "register_provider",
        "at": at,
        "provider": code,
        "name": name,
        "contact": f"0120-000-{ord(code[0]):03d}",
        "goods": "information",
    }


def service(code: str, svc: str, name: str, pricing: str, price: int) -> Entry:
    return {
        "command": "list_service",
        "at": "2023-12-01T09:05:00+09:00",
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
) -> Entry:
    return {
        "command": "open_line",
        "at": at,
        "customer_id": customer_id,
        "operator": "west",
        "kind": kind,
        "access_key": "Ak3y0001",
        "line_limit": 10000,
        "billing": billing if billing is not None else BY_NUMBER,
    }


def passport(
    pid: str = PID, customer_id: str = LINE, at: str = "2023-12-02T10:00:00+09:00"
) -> Entry:
    return {
        "command": "register_passport",
        "at": at,
        "customer_id": customer_id,
        "passport_id": pid,
        "password": PW,
        "email": f"{pid}@example.jp",
        "applicant": APPLICANT,
        "limit": 5000,
        "line_auth": False,
    }


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


def buy(
    at: str,
    svc: str = "back",
    *,
    provider: str = "A",
    pid: str = PID,
    name: str | None = None,
    refused: str | None = None,
) -> Entry:
    entry: Entry = {
        "command": "purchase",
        "at": at,
        "passport_id": pid,
        "password": PW,
        "provider": provider,
        "service": svc,
    }
    if name is not None:
        entry["as"] = name
    if refused is not None:
        entry["refused"] = refused
    return entry


def cancel(at: str, name: str) -> Entry:
    return {"command": "cancel", "at": at, "receipt": f"${name}"}


def refund(at: str, name: str, amount: int, refused: str | None = None) -> Entry:
    entry: Entry = {
        "command": "refund",
        "at": at,
        "receipt": f"${name}",
        "amount": amount,
        "reason": "配信不良",
    }
    if refused is not None:
        entry["refused"] = refused
    return entry


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
    return {"command": "change_line", "at": at, "customer_id": customer_id, "change": change, **kw}


def change_billing(at: str, billing: Entry, reason: str, customer_id: str = LINE) -> Entry:
    return {
        "command": "change_billing",
        "at": at,
        "customer_id": customer_id,
        "billing": billing,
        "reason": reason,
    }


def issue(at: str, month: str, refused: str | None = None) -> Entry:
    entry: Entry = {"command": "issue_bills", "at": at, "month": month}
    if refused is not None:
        entry["refused"] = refused
    return entry


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

    def run(self, *entries: Entry) -> list[Entry]:
        """Apply ``entries`` through ``matome run``; check each result; return them all."""
        results: list[Entry] = []
        piece: list[Entry] = []
        for entry in entries:
            if self._unresolved(entry, piece):
                results += self._run_piece(piece)
                piece = []
            piece.append(entry)
        if piece:
            results += self._run_piece(piece)
        return results

    def _unresolved(self, entry: Entry, piece: Sequence[Entry]) -> bool:
        ref = entry.get("receipt")
        if not (isinstance(ref, str) and ref.startswith("$")):
            return False
        return ref[1:] not in self.receipts and any(e.get("as") == ref[1:] for e in piece)

    def _run_piece(self, piece: list[Entry]) -> list[Entry]:
        bodies = []
        for entry in piece:
            body = {k: v for k, v in entry.items() if k not in ("as", "refused")}
            ref = body.get("receipt")
            if isinstance(ref, str) and ref.startswith("$"):
                body["receipt"] = self.receipts[ref[1:]]
            bodies.append(body)
        self._logs += 1
        path = self.tmp_path / f"log{self._logs}.jsonl"
        path.write_text(
            "".join(json.dumps(b, ensure_ascii=False) + "\n" for b in bodies), encoding="utf-8"
        )
        self.capsys.readouterr()
        assert cli.main(["run", str(path), "--db", self.db]) == 0
        results = [json.loads(text) for text in self.capsys.readouterr().out.splitlines()]
        assert len(results) == len(piece)
        for entry, result in zip(piece, results, strict=True):
            expected = entry.get("refused")
            if expected is None:
                assert result["ok"] is True, (entry, result)
            else:
                assert result["ok"] is False, (entry, result)
                assert result["error"]["code"] == expected, (entry, result)
            if "as" in entry:
                self.receipts[entry["as"]] = result["receipt"]
        return results

    def call(self, *args: str) -> tuple[int, Doc]:
        """``matome ARGS --json --db DB``: the exit code and the parsed JSON it printed."""
        self.capsys.readouterr()
        code = cli.main([*args, "--json", "--db", self.db])
        out = self.capsys.readouterr().out
        return code, json.loads(out)

    def doc(self, *args: str) -> Doc:
        code, document = self.call(*args)
        assert code == 0, document
        return document

    def bill(self, customer_id: str, month: str) -> Doc:
        return self.doc("bill", customer_id, month)

    def subtotals(self, customer_id: str = LINE, months: Sequence[str] = JAN_TO_APR) -> list[int]:
        return [self.bill(customer_id, m)["subtotal"] for m in months]


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def db(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """An SQLite file, or a fresh PostgreSQL schema (skipped or failed per conftest)."""
    if request.param == "sqlite":
        return str(tmp_path / "matome.sqlite")
    url: str = request.getfixturevalue("pg_url")
    return url


@pytest.fixture
def matome(
    db: str, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> Matome:
    def engine(args: Namespace) -> Engine:
        return Engine.open(args.db, hash_iterations=TEST_ITERATIONS)

    monkeypatch.setattr(cli, "_engine", engine)
    return Matome(db, tmp_path, capsys)


# ---------------------------------------------------------------------------------------------
# §4: the six charging patterns of the monthly-flat table

PATTERNS: dict[str, tuple[list[Entry], list[int]]] = {
    # purchase in N, cancel in N+2 → N, N+1, N+2
    "1-purchase-N-cancel-N+2": (
        [buy(jst("01-15"), name="s"), cancel(jst("03-10"), "s")],
        [525, 525, 525, 0],
    ),
    # purchase in N, cancel in N+1 → N, N+1
    "2-purchase-N-cancel-N+1": (
        [buy(jst("01-15"), name="s"), cancel(jst("02-10"), "s")],
        [525, 525, 0, 0],
    ),
    # purchase and cancel in N → N
    "3-purchase-and-cancel-N": (
        [buy(jst("01-15"), name="s"), cancel(jst("01-20"), "s")],
        [525, 0, 0, 0],
    ),
    # purchase in N+1, in N+2 cancel then purchase again → N+1, N+2 once (and on while held)
    "4-cancel-then-rebuy-N+2": (
        [buy(jst("02-10"), name="s"), cancel(jst("03-05"), "s"), buy(jst("03-20"), name="t")],
        [0, 525, 525, 525],
    ),
    # the same case, churned: cancel/re-buy three times in N+2, the last one cancelled too
    "5-cancel-rebuy-churn-N+2": (
        [
            buy(jst("02-10"), name="s"),
            cancel(jst("03-05"), "s"),
            buy(jst("03-06"), name="t"),
            cancel(jst("03-07"), "t"),
            buy(jst("03-08"), name="u"),
            cancel(jst("03-31", "23:59:59"), "u"),
        ],
        [0, 525, 525, 0],
    ),
    # purchase in N, cancel on the 1st of N+1 → N only
    "6-cancel-on-the-1st": (
        [buy(jst("01-15"), name="s"), cancel(jst("02-01", "08:00:00"), "s")],
        [525, 0, 0, 0],
    ),
    # the exception: purchase and cancel on the same 1st → that month is charged
    "6-exception-purchase-and-cancel-on-the-1st": (
        [buy(jst("02-01", "00:10:00"), name="s"), cancel(jst("02-01", "23:00:00"), "s")],
        [0, 525, 0, 0],
    ),
}


@pytest.mark.parametrize("pattern", list(PATTERNS))
def test_monthly_flat_is_charged_per_the_six_patterns(matome: Matome, pattern: str) -> None:
    """DOMAIN.md §4 (monthly flat, patterns 1–6 and the 1st-day exception): the full price for
    each charged month, never pro-rated, and at most once per (ID, service, month)."""
    commands, expected = PATTERNS[pattern]
    matome.run(*world(), *commands)
    bills = [matome.bill(LINE, month) for month in JAN_TO_APR]
    assert [b["subtotal"] for b in bills] == expected
    for bill, amount in zip(bills, expected, strict=True):
        # never pro-rated, never doubled: a charged month has exactly one 525 charge
        assert [c["amount"] for c in bill["charges"]] == ([525] if amount else [])
        assert all(c["pricing"] == "monthly" and c["quantity"] == 1 for c in bill["charges"])


def test_rebuy_in_same_month_is_charged_once_and_the_earliest_subscription_carries_it(
    matome: Matome,
) -> None:
    """DOMAIN.md §4 (Decision, patterns 4 and 5): a month with a cancel and a re-purchase is
    charged once; the earlier subscription carries it, the later one from the next month."""
    matome.run(
        *world(),
        buy(jst("02-10"), name="s"),
        cancel(jst("03-05"), "s"),
        buy(jst("03-20"), name="t"),
    )
    s, t = matome.receipts["s"], matome.receipts["t"]
    assert [c["receipt"] for c in matome.bill(LINE, "2024-03")["charges"]] == [s]
    assert [c["receipt"] for c in matome.bill(LINE, "2024-04")["charges"]] == [t]


# ---------------------------------------------------------------------------------------------
# §4: the billing month is the Tokyo calendar month


@pytest.mark.parametrize(
    ("cancelled_at", "expected"),
    [
        pytest.param("2024-02-29T15:30:00+00:00", [525, 525, 0], id="00:30-JST-on-the-1st"),
        pytest.param("2024-02-29T14:59:59+00:00", [525, 525, 0], id="23:59:59-JST-last-day"),
        pytest.param("2024-03-01T15:00:00+00:00", [525, 525, 525], id="00:00-JST-on-the-2nd"),
    ],
)
def test_cancellation_given_in_utc_is_judged_on_the_tokyo_date(
    matome: Matome, cancelled_at: str, expected: list[int]
) -> None:
    """DOMAIN.md §4 (billing month in Asia/Tokyo; cancellation on the 1st): 2024-02-29T15:30Z is
    2024-03-01 00:30 JST, a cancellation on the 1st, so March is not charged."""
    matome.run(*world(), buy(jst("01-15"), name="s"), cancel(cancelled_at, "s"))
    assert matome.subtotals(months=JAN_TO_APR[:3]) == expected


@pytest.mark.parametrize("svc", ["back", "item"])
def test_purchase_at_tokyo_midnight_given_in_utc_is_charged_in_the_new_month(
    matome: Matome, svc: str
) -> None:
    """DOMAIN.md §4 (billing month in Asia/Tokyo): a purchase at 2024-02-29T15:30Z (2024-03-01
    00:30 JST) is charged in March, not February, and starts on 2024-03-01."""
    matome.run(*world(), buy("2024-02-29T15:30:00+00:00", svc))
    price = 525 if svc == "back" else 440
    assert matome.bill(LINE, "2024-02")["subtotal"] == 0
    march = matome.bill(LINE, "2024-03")
    assert march["subtotal"] == price
    assert [c["started_on"] for c in march["charges"]] == ["2024-03-01"]


# ---------------------------------------------------------------------------------------------
# §7: the bill document


def test_guide_worked_example_rows_per_provider_sorted_by_code(matome: Matome) -> None:
    """DOMAIN.md §7 (worked example): A "back service" 525; B "anime 1" 300 + "anime 2" 300 →
    rows A 525, B 600 labelled フレッツ・まとめて支払い料金, subtotal 1,125, sorted by code."""
    matome.run(
        *world(),
        buy(jst("01-15", "20:00:00"), "anime1", provider="B"),
        buy(jst("01-15", "20:05:00"), "back"),
        buy(jst("01-15", "20:06:00"), "anime2", provider="B"),
    )
    bill = matome.bill(LINE, "2024-01")
    assert bill["customer_id"] == LINE
    assert bill["month"] == "2024-01"
    assert bill["status"] == "preview"
    assert bill["rows"] == [
        {"provider": "A", "provider_name": "A Co.", "label": LABEL, "amount": 525},
        {"provider": "B", "provider_name": "B Co.", "label": LABEL, "amount": 600},
    ]
    assert bill["subtotal"] == 1125 == sum(r["amount"] for r in bill["rows"])
    assert sorted((c["provider"], c["service"], c["amount"]) for c in bill["charges"]) == [
        ("A", "back", 525),
        ("B", "anime1", 300),
        ("B", "anime2", 300),
    ]
    for charge in bill["charges"]:
        assert {
            "receipt",
            "passport_id",
            "provider",
            "service",
            "pricing",
            "unit_price",
            "quantity",
            "amount",
            "started_on",
        } <= set(charge)
        assert charge["passport_id"] == PID
        assert charge["started_on"] == "2024-01-15"
        assert charge["unit_price"] * charge["quantity"] == charge["amount"]


def test_month_without_charges_has_no_rows_and_zero_subtotal(matome: Matome) -> None:
    """INTERCHANGE.md ("Bill"), DOMAIN.md §7: a month with no charges yields a bill with no rows
    and subtotal 0 (also a month before the line opened)."""
    matome.run(*world())
    for month in ("2023-11", "2024-01"):
        bill = matome.bill(LINE, month)
        assert bill["rows"] == []
        assert bill["charges"] == []
        assert bill["subtotal"] == 0


def test_per_purchase_is_charged_once_in_its_month_every_time_bought(matome: Matome) -> None:
    """DOMAIN.md §4 (per purchase): each purchase is charged once, in the month it was made;
    buying the same item again is charged again."""
    matome.run(
        *world(),
        buy(jst("01-10"), "item"),
        buy(jst("01-20"), "item"),
        buy(jst("02-05"), "item"),
    )
    january, february, march = (matome.bill(LINE, m) for m in JAN_TO_APR[:3])
    assert [january["subtotal"], february["subtotal"], march["subtotal"]] == [880, 440, 0]
    assert [c["amount"] for c in january["charges"]] == [440, 440]
    assert len({c["receipt"] for c in january["charges"]}) == 2
    assert all(c["pricing"] == "per_purchase" for c in january["charges"])
    assert january["rows"] == [
        {"provider": "A", "provider_name": "A Co.", "label": LABEL, "amount": 880}
    ]


def test_refund_is_charged_negatively_in_the_month_recorded(matome: Matome) -> None:
    """DOMAIN.md §4 (per purchase): a provider's refund is its own event, charged negatively in
    the month it is recorded; the purchase month is not rewritten."""
    matome.run(
        *world(),
        buy(jst("01-20"), "item", name="m"),
        refund(jst("02-10"), "m", 200),
        refund(jst("02-11"), "m", 241, refused="refund_exceeds_charge"),
    )
    assert matome.bill(LINE, "2024-01")["subtotal"] == 440
    february = matome.bill(LINE, "2024-02")
    assert february["subtotal"] == -200
    assert february["rows"] == [
        {"provider": "A", "provider_name": "A Co.", "label": LABEL, "amount": -200}
    ]
    [charge] = february["charges"]
    assert charge["receipt"] == matome.receipts["m"]
    assert charge["amount"] == -200
    assert matome.bill(LINE, "2024-03")["subtotal"] == 0


def test_line_with_ended_service_still_has_its_past_bills(matome: Matome) -> None:
    """DOMAIN.md §6–§7, INTERCHANGE.md ("Command line"): a line whose service has ended (access
    line cancelled) still has its past bills; the cancellation month is charged."""
    matome.run(
        *world(),
        buy(jst("01-15")),
        change_line(jst("03-10"), "cancellation"),
        buy(jst("03-11"), "item", refused="unknown_passport"),
    )
    bills = [matome.bill(LINE, m) for m in JAN_TO_APR]
    assert [b["subtotal"] for b in bills] == [525, 525, 525, 0]
    assert bills[0]["rows"] == [
        {"provider": "A", "provider_name": "A Co.", "label": LABEL, "amount": 525}
    ]


# ---------------------------------------------------------------------------------------------
# §5: regulation ends charges


@pytest.mark.parametrize(
    ("regulated_at", "expected"),
    [
        pytest.param(jst("02-15"), [825, 825, 0, 0], id="mid-month"),
        pytest.param(jst("02-01", "09:00:00"), [825, 0, 0, 0], id="on-the-1st"),
        pytest.param("2024-01-31T15:00:00+00:00", [825, 0, 0, 0], id="on-the-1st-given-in-utc"),
    ],
)
def test_regulation_cancels_subscriptions_at_the_regulation_instant(
    matome: Matome, regulated_at: str, expected: list[int]
) -> None:
    """DOMAIN.md §5: regulation cancels every subscription on the line at its instant, so the
    regulation month is charged — unless it is the 1st; lifting does not revive them."""
    matome.run(
        *world(),
        buy(jst("01-15")),
        buy(jst("01-16"), "anime1", provider="B"),
        regulate(regulated_at),
        buy(jst("02-20"), "item", refused="line_regulated"),
        lift(jst("02-25")),
    )
    assert matome.subtotals() == expected


# ---------------------------------------------------------------------------------------------
# §6: line changes and the continuity table


def test_line_changes_that_end_the_service_stop_charges_and_fill_the_continuity_table(
    matome: Matome,
) -> None:
    """DOMAIN.md §6: a menu change and an access-line cancellation end the service — monthly
    subscriptions cancelled and Passport IDs deleted at that instant — and the continuity table
    lists each change with kept/cancelled/deleted."""
    matome.run(
        *world(),
        line(LINE2),
        passport(PID2, LINE2),
        buy(jst("01-15"), name="a"),
        buy(jst("01-15"), "anime1", provider="B", pid=PID2, name="b"),
        change_line(jst("02-10"), "menu_change", LINE, new_kind="hikari_light"),
        change_line(jst("02-12"), "cancellation", LINE2),
    )
    assert matome.subtotals(LINE) == [525, 525, 0, 0]
    assert matome.subtotals(LINE2) == [300, 300, 0, 0]
    assert matome.doc("continuity") == [
        {
            "customer_id": LINE,
            "at": "2024-02-10T10:00:00+09:00",
            "change": "menu_change",
            "new_customer_id": None,
            "kept": False,
            "cancelled": [matome.receipts["a"]],
            "deleted": [PID],
        },
        {
            "customer_id": LINE2,
            "at": "2024-02-12T10:00:00+09:00",
            "change": "cancellation",
            "new_customer_id": None,
            "kept": False,
            "cancelled": [matome.receipts["b"]],
            "deleted": [PID2],
        },
    ]
    assert [r["customer_id"] for r in matome.doc("continuity", LINE2)] == [LINE2]


def test_renumbering_change_ends_the_service_and_names_the_new_customer_id(
    matome: Matome,
) -> None:
    """DOMAIN.md §6: a relocation with a changed customer ID does not keep the service; the
    table records the new customer ID, and the new line starts without charges."""
    matome.run(
        *world(),
        buy(jst("01-15"), name="a"),
        change_line(jst("02-01", "09:00:00"), "relocation", new_customer_id=LINE3),
    )
    [row] = matome.doc("continuity")
    assert row["change"] == "relocation"
    assert row["new_customer_id"] == LINE3
    assert row["kept"] is False
    assert row["cancelled"] == [matome.receipts["a"]]
    assert row["deleted"] == [PID]
    # ended on the 1st of February: February is not charged (§4 pattern 6 applies)
    assert matome.subtotals(LINE) == [525, 0, 0, 0]
    assert matome.subtotals(LINE3) == [0, 0, 0, 0]


def test_kept_change_keeps_charging(matome: Matome) -> None:
    """DOMAIN.md §6: a relocation with the customer ID unchanged (and a rename) keeps the
    service: the subscription keeps being billed and the ID keeps buying."""
    matome.run(
        *world(),
        buy(jst("01-15")),
        change_line(jst("02-10"), "relocation"),
        change_line(jst("03-10"), "rename"),
        buy(jst("03-11"), "item"),
    )
    assert matome.subtotals() == [525, 525, 965, 525]
    rows = matome.doc("continuity")
    assert [(r["change"], r["kept"], r["cancelled"], r["deleted"]) for r in rows] == [
        ("relocation", True, [], []),
        ("rename", True, [], []),
    ]


# ---------------------------------------------------------------------------------------------
# §7: billing account and issue schedule


@pytest.mark.parametrize(
    ("changed_at", "february_account"),
    [
        pytest.param(jst("02-20"), "new", id="during-the-month"),
        pytest.param(jst("03-01", "00:00:00"), "old", id="on-the-1st-of-next-month"),
        pytest.param("2024-02-29T15:00:00+00:00", "old", id="tokyo-midnight-given-in-utc"),
        pytest.param("2024-02-29T14:59:59+00:00", "new", id="last-second-of-the-month"),
    ],
)
def test_bill_goes_to_the_billing_account_in_force_at_month_end(
    matome: Matome, changed_at: str, february_account: str
) -> None:
    """DOMAIN.md §7 (Decision): month M's charges go to the billing account in force at the end
    of month M (Tokyo), and its issue date follows that account's schedule."""
    matome.run(
        *world(BY_NUMBER),
        buy(jst("01-15")),
        change_billing(changed_at, BY_PHONE, "billing_phone_change"),
    )
    accounts = {"old": (BY_NUMBER, "2024-03-17"), "new": (BY_PHONE, "2024-03-22")}
    february = matome.bill(LINE, "2024-02")
    assert (february["billing_account"], february["issue_date"]) == accounts[february_account]
    assert february["subtotal"] == 525
    assert matome.bill(LINE, "2024-01")["billing_account"] == BY_NUMBER
    assert matome.bill(LINE, "2024-03")["billing_account"] == BY_PHONE


@pytest.mark.parametrize(
    ("representative_billing", "issue_date"),
    [
        pytest.param(BY_NUMBER, "17", id="customer-number"),
        pytest.param(BY_PHONE, "22", id="phone-bill"),
    ],
)
def test_issue_schedule_follows_the_billing_method(
    matome: Matome, representative_billing: Entry, issue_date: str
) -> None:
    """DOMAIN.md §7 (schedule): a "00" customer number is billed around the 17th of M+1, a
    phone bill around the 22nd of M+1; a consolidated line follows its representative."""
    consolidated = {"method": "consolidated", "representative": LINE}
    matome.run(
        *world(representative_billing),
        line(LINE2, consolidated),
        passport(PID2, LINE2),
        buy(jst("01-15")),
        buy(jst("01-16"), "back", pid=PID2),
    )
    for customer_id in (LINE, LINE2):
        january = matome.bill(customer_id, "2024-01")
        assert january["issue_date"] == f"2024-02-{issue_date}"
        assert january["subtotal"] == 525
        # December's bill is issued in the January of the next year
        assert matome.bill(customer_id, "2023-12")["issue_date"] == f"2024-01-{issue_date}"
    assert matome.bill(LINE, "2024-01")["billing_account"] == representative_billing
    assert matome.bill(LINE2, "2024-01")["billing_account"] == consolidated


# ---------------------------------------------------------------------------------------------
# §7: closing a month


def test_issued_bill_is_immutable_and_its_month_closed(matome: Matome) -> None:
    """DOMAIN.md §7: ``issue_bills`` only after the month has ended in Tokyo; the bill becomes
    "issued" and immutable — commands dated in that month are refused (month_closed), closing
    again changes nothing, and later months stay previews."""
    matome.run(
        *world(),
        buy(jst("01-15"), name="s"),
        buy(jst("01-20"), "item", name="m"),
        issue("2024-01-31T14:59:59+00:00", "2024-01", refused="invalid_input"),
    )
    preview = matome.bill(LINE, "2024-01")
    assert preview["status"] == "preview"
    matome.run(
        issue("2024-01-31T15:00:00+00:00", "2024-01"),
        buy(jst("01-31", "23:00:00"), "item", refused="month_closed"),
        refund(jst("01-31", "23:30:00"), "m", 100, refused="month_closed"),
        buy("2024-01-31T14:00:00+00:00", "item", pid="nobody", refused="month_closed"),
    )
    issued = matome.bill(LINE, "2024-01")
    assert issued["status"] == "issued"
    assert {k: v for k, v in issued.items() if k != "status"} == {
        k: v for k, v in preview.items() if k != "status"
    }
    matome.run(
        cancel(jst("02-01", "08:00:00"), "s"),
        refund(jst("02-02"), "m", 100),
        change_billing(jst("02-03"), BY_PHONE, "billing_phone_change"),
        issue(jst("02-04"), "2024-01"),
    )
    assert matome.bill(LINE, "2024-01") == issued
    february = matome.bill(LINE, "2024-02")
    assert february["status"] == "preview"
    assert february["subtotal"] == -100


def test_issuing_a_month_closes_the_months_before_it(matome: Matome) -> None:
    """DOMAIN.md §7: closing March closes every month through March; their bills are issued."""
    matome.run(*world(), buy(jst("01-15")), issue(jst("04-01", "09:00:00"), "2024-03"))
    for month in JAN_TO_APR[:3]:
        assert matome.bill(LINE, month)["status"] == "issued"
    assert matome.bill(LINE, "2024-04")["status"] == "preview"
    matome.run(buy(jst("02-10"), "item", refused="month_closed"))


# ---------------------------------------------------------------------------------------------
# Documents that do not exist


@pytest.mark.parametrize(
    "args",
    [
        pytest.param(("bill", "CAF9999999999", "2024-01"), id="bill"),
        pytest.param(("statement", "CAF9999999999", "2024-01"), id="statement"),
        pytest.param(("contacts", "CAF9999999999"), id="contacts"),
    ],
)
def test_unknown_customer_id_is_an_unknown_line_error(
    matome: Matome, args: tuple[str, ...]
) -> None:
    """INTERCHANGE.md ("Command line"): a document asked for an unknown customer ID prints
    ``{"error": {"code": "unknown_line", ...}}`` and exits 1."""
    matome.run(*world())
    code, document = matome.call(*args)
    assert code == 1
    assert set(document) == {"error"}
    assert document["error"]["code"] == "unknown_line"
    assert document["error"]["message"]


@pytest.mark.parametrize(
    "args",
    [
        pytest.param(("bill", LINE, "2024-13"), id="month-13"),
        pytest.param(("bill", LINE, "2024-1"), id="one-digit-month"),
        pytest.param(("bill", LINE, "202401"), id="no-dash"),
        pytest.param(("statement", LINE, "2024/01"), id="statement-slash"),
        pytest.param(("providers", "Jan-2024"), id="providers"),
        pytest.param(("settle", "2024-00"), id="settle"),
        pytest.param(("bill", "caf0000000001", "2024-01"), id="lower-case-customer-id"),
        pytest.param(("statement", LINE, "2024-01", "--page", "0"), id="page-0"),
    ],
)
def test_malformed_request_is_invalid_input(matome: Matome, args: tuple[str, ...]) -> None:
    """INTERCHANGE.md ("Command line"), DOMAIN.md §1 (formats): a malformed month (or customer
    ID, or page) prints ``{"error": {"code": "invalid_input", ...}}`` and exits 1."""
    code, document = matome.call(*args)
    assert code == 1
    assert document["error"]["code"] == "invalid_input"


# ---------------------------------------------------------------------------------------------
# §7: usage statement and provider contacts; §8: provider totals and settlement


def test_statement_pages_and_filters_by_passport(matome: Matome) -> None:
    """DOMAIN.md §7 (usage statement): searched by month, optionally one Passport ID, paged;
    columns receipt, Passport ID, provider name, unit price, quantity, amount, start date."""
    matome.run(
        *world(),
        passport(PID2, LINE, at="2023-12-03T10:00:00+09:00"),
        buy(jst("01-10"), "back", name="a"),
        buy(jst("01-11"), "anime1", provider="B", pid=PID2, name="b"),
        buy(jst("01-12"), "item", name="c"),
        buy(jst("02-12"), "item"),
    )
    first = matome.doc("statement", LINE, "2024-01", "--per-page", "2")
    second = matome.doc("statement", LINE, "2024-01", "--per-page", "2", "--page", "2")
    third = matome.doc("statement", LINE, "2024-01", "--per-page", "2", "--page", "3")
    assert (first["total"], first["page"], len(first["rows"])) == (3, 1, 2)
    assert (second["total"], second["page"], len(second["rows"])) == (3, 2, 1)
    assert (third["total"], third["page"], third["rows"]) == (3, 3, [])
    rows = first["rows"] + second["rows"]
    assert sorted(r["receipt"] for r in rows) == sorted(matome.receipts[n] for n in "abc")
    whole = matome.doc("statement", LINE, "2024-01")
    assert whole["rows"] == rows
    for row in rows:
        assert {
            "receipt",
            "passport_id",
            "provider_name",
            "unit_price",
            "quantity",
            "amount",
            "started_on",
        } <= set(row)
    by_receipt = {r["receipt"]: r for r in rows}
    b = by_receipt[matome.receipts["b"]]
    assert (b["passport_id"], b["provider_name"], b["unit_price"], b["quantity"]) == (
        PID2,
        "B Co.",
        300,
        1,
    )
    assert (b["amount"], b["started_on"]) == (300, "2024-01-11")
    assert sum(r["amount"] for r in rows) == matome.bill(LINE, "2024-01")["subtotal"] == 1265

    only = matome.doc("statement", LINE, "2024-01", "--passport", PID)
    assert only["total"] == 2
    assert {r["passport_id"] for r in only["rows"]} == {PID}
    assert {r["receipt"] for r in only["rows"]} == {matome.receipts["a"], matome.receipts["c"]}
    assert matome.doc("statement", LINE, "2024-01", "--passport", "someone")["total"] == 0


def test_contacts_lists_only_the_providers_the_line_bought_from(matome: Matome) -> None:
    """DOMAIN.md §7 (provider contacts): name and contact of the providers the line has bought
    from — not every registered provider, and each once."""
    matome.run(
        *world(),
        buy(jst("01-10"), "anime1", provider="B"),
        buy(jst("01-11"), "item"),
        buy(jst("01-12"), "item"),
    )
    assert matome.doc("contacts", LINE) == [
        {"provider": "A", "name": "A Co.", "contact": "0120-000-065"},
        {"provider": "B", "name": "B Co.", "contact": "0120-000-066"},
    ]


def _two_lines_buying() -> list[Entry]:
    return [
        *world(),
        line(LINE2, BY_PHONE),
        passport(PID2, LINE2),
        buy(jst("01-10"), "back"),
        buy(jst("01-11"), "anime1", provider="B"),
        buy(jst("01-12"), "back", pid=PID2),
    ]


def test_provider_totals_across_lines(matome: Matome) -> None:
    """DOMAIN.md §8, INTERCHANGE.md ("Other documents"): provider totals for a month across all
    lines, ``[{"provider", "lines", "amount"}]`` sorted by provider."""
    matome.run(*_two_lines_buying())
    assert matome.doc("providers", "2024-01") == [
        {"provider": "A", "lines": 2, "amount": 1050},
        {"provider": "B", "lines": 1, "amount": 300},
    ]
    assert matome.doc("providers", "2023-11") == []


def test_settlement_shape_and_default_fee(matome: Matome) -> None:
    """DOMAIN.md §8: per provider gross, lines, average per line, fee and net; 2024 usage under
    the 2012 schedule — averages up to 900 pay the existing fee (31.5 yen per line when under
    600) plus 10% consumption tax, rounded down."""
    matome.run(*_two_lines_buying())
    assert matome.doc("settle", "2024-01") == [
        # 2 lines × 31.5 × 1.10 = 69.3 → 69
        {
            "provider": "A",
            "gross": 1050,
            "lines": 2,
            "average_per_line": "525.00",
            "fee": 69,
            "net": 981,
        },
        # 1 line × 31.5 × 1.10 = 34.65 → 34
        {
            "provider": "B",
            "gross": 300,
            "lines": 1,
            "average_per_line": "300.00",
            "fee": 34,
            "net": 266,
        },
    ]


def test_settlement_refuses_an_unconfigured_flat_fee(matome: Matome) -> None:
    """DOMAIN.md §8 (Decision): an average of 901–1,500 yen needs the 2012 flat fee, which the
    sources do not state; the default schedule refuses to settle (fee_not_configured, exit 1)."""
    matome.run(*world(), buy(jst("01-10"), "back"), buy(jst("01-11"), "item"))
    code, document = matome.call("settle", "2024-01")
    assert code == 1
    assert document["error"]["code"] == "fee_not_configured"


def test_settlement_of_a_refund_month_formats_a_negative_average(matome: Matome) -> None:
    """DOMAIN.md §4, §8: refunds recorded in a month with no sales make the provider's gross
    negative; no fee is taken, and the average per line is still the true average."""
    matome.run(
        *world(),
        line(LINE2),
        passport(PID2, LINE2),
        buy(jst("01-10"), "item", name="m"),
        buy(jst("01-11"), "item", pid=PID2, name="n"),
        refund(jst("02-10"), "m", 100),
        refund(jst("02-11"), "n", 101),
    )
    assert matome.doc("settle", "2024-02") == [
        {
            "provider": "A",
            "gross": -201,
            "lines": 2,
            "average_per_line": "-100.50",
            "fee": 0,
            "net": -201,
        }
    ]


# ---------------------------------------------------------------------------------------------
# Rebuilding the read models


def test_rebuild_leaves_every_document_unchanged(matome: Matome) -> None:
    """DOMAIN.md §6–§8 (the projections are derived from the log): ``matome rebuild --json``
    replays the log into fresh views; bills (issued and previews), statement, continuity,
    contacts, provider totals and settlement are unchanged."""
    matome.run(
        *_two_lines_buying(),
        buy(jst("01-20"), "item", name="m"),
        issue(jst("02-01", "09:00:00"), "2024-01"),
        refund(jst("02-10"), "m", 40),
        change_line(jst("02-11"), "relocation"),
        change_line(jst("02-12"), "cancellation", LINE2),
    )

    def documents() -> list[Doc]:
        out: list[Doc] = [matome.doc("continuity"), matome.doc("contacts", LINE)]
        for month in ("2024-01", "2024-02"):
            out += [matome.doc("providers", month)]
            out += [matome.bill(cid, month) for cid in (LINE, LINE2)]
        out += [matome.doc("statement", LINE, "2024-02"), matome.doc("settle", "2024-02")]
        return out

    before = documents()
    summary = matome.doc("rebuild")
    assert set(summary) >= {"positions", "seconds"}
    assert isinstance(summary["positions"], int)
    assert summary["positions"] > 0
    assert documents() == before
    assert matome.bill(LINE, "2024-01")["status"] == "issued"
    assert matome.bill(LINE, "2024-02")["status"] == "preview"


# ---------------------------------------------------------------------------------------------
# The real console script


def test_console_script_runs_a_log_and_prints_the_bill(tmp_path: Path) -> None:
    """INTERCHANGE.md ("Command line"): ``matome run`` then ``matome bill --json`` in separate
    processes (production hashing), the guide's worked example (DOMAIN.md §7)."""
    log = tmp_path / "log.jsonl"
    entries = [
        *world(),
        buy(jst("01-15", "20:00:00"), "back"),
        buy(jst("01-15", "20:05:00"), "anime1", provider="B"),
        buy(jst("01-15", "20:06:00"), "anime2", provider="B"),
    ]
    log.write_text("".join(json.dumps(e, ensure_ascii=False) + "\n" for e in entries), "utf-8")
    db = str(tmp_path / "m.sqlite")
    env = {k: v for k, v in os.environ.items() if k != "MATOME_DB"}
    script = [sys.executable, "-m", "matome.cli"]
    run = subprocess.run(
        [*script, "run", str(log), "--db", db], capture_output=True, text=True, env=env, check=False
    )
    assert run.returncode == 0, run.stderr
    assert all(json.loads(r)["ok"] for r in run.stdout.splitlines())
    bill = subprocess.run(
        [*script, "bill", LINE, "2024-01", "--json", "--db", db],
        capture_output=True,
        text=True,
        env=env,
        check=False,
    )
    assert bill.returncode == 0, bill.stderr
    document = json.loads(bill.stdout)
    assert [(r["provider"], r["amount"]) for r in document["rows"]] == [("A", 525), ("B", 600)]
    assert document["subtotal"] == 1125
