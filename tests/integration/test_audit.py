"""Audit replays of disputed bills, tamper evidence and erasure, through the command line.

Each dispute a customer states in one sentence is answered by ``matome audit`` (docs/audit.md);
``matome verify`` catches every kind of tampering with the stored events, on SQLite and on
PostgreSQL; erasing personal data keeps every chain and every bill intact.  The histories are
written with the Python API (the same commands a log carries) on the store the CLI then reads.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import shutil
import sqlite3
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from matome import cli
from matome.engine import Engine
from matome.wire import to_json
from tests.conftest import TEST_ITERATIONS

LINE = "CAF0000000001"
PID = "taro.1"
PW = "Pass1234"
KEY = "Key12345"
APPLICANT = {"name": "山田 太郎", "phone": "06-1234-5678", "contract_holder": True}


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def db(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return str(tmp_path / "audit.sqlite")
    url: str = request.getfixturevalue("pg_url")
    return url


@pytest.fixture
def engine(db: str) -> Iterator[Engine]:
    e = Engine.open(db, hash_iterations=TEST_ITERATIONS)
    yield e
    e.close()


def matome(db: str, *args: str) -> tuple[int, Any]:
    """Run ``matome ARGS --db DB --json`` in-process; its exit code and its JSON output."""
    out = io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(io.StringIO()):
        code = cli.main([*args, "--db", db, "--json"])
    return code, json.loads(out.getvalue())


def world(e: Engine) -> None:
    """Provider A (monthly ``back`` 525, ``news`` 300; per-purchase ``item`` 440), a West line
    and one Passport ID, registered in December 2023."""
    e.register_provider(
        at="2023-12-01T09:00:00+09:00",
        provider="A",
        name="A Co.",
        contact="0120",
        goods="information",
    )
    for service, pricing, price in (
        ("back", "monthly", 525),
        ("news", "monthly", 300),
        ("item", "per_purchase", 440),
    ):
        e.list_service(
            at="2023-12-01T09:00:00+09:00",
            provider="A",
            service=service,
            name=service,
            pricing=pricing,
            price=price,
        )
    e.open_line(
        at="2023-12-01T10:00:00+09:00",
        customer_id=LINE,
        operator="west",
        kind="hikari_next",
        access_key=KEY,
        line_limit=10_000,
        billing={"method": "customer_number", "number": "0012345678"},
    )
    e.register_passport(
        at="2023-12-02T10:00:00+09:00",
        customer_id=LINE,
        access_key=KEY,
        passport_id=PID,
        password=PW,
        email="taro@example.jp",
        applicant=APPLICANT,
        limit=5000,
        line_auth=False,
    )


def buy(e: Engine, at: str, service: str = "back") -> str:
    return e.purchase(at=at, passport_id=PID, password=PW, provider="A", service=service).receipt


def explanation(audit: dict[str, Any], receipt: str) -> dict[str, Any]:
    found: list[dict[str, Any]] = [
        x for x in audit["explanations"] if x["receipt"] == receipt and x["rule"] != "refund"
    ]
    assert len(found) == 1, found
    return found[0]


# ---------------------------------------------------------------------------------------------
# Disputes stated in one sentence


def test_i_cancelled_on_the_31st_but_was_charged_for_the_next_month(
    db: str, engine: Engine
) -> None:
    """docs/rules.md §4 (billing months are Tokyo's): the customer sent the cancellation late on
    1 February in New York — 2 February in Tokyo — so February is the cancellation month and
    charged in full; the audit says so with the Tokyo date."""
    world(engine)
    receipt = buy(engine, "2024-01-10T10:00:00+09:00")
    engine.cancel(at="2024-02-01T20:00:00-05:00", receipt=receipt, password=PW)
    code, audit = matome(db, "audit", LINE, "2024-02")
    assert code == 0
    why = explanation(audit, receipt)
    assert why["rule"] == "cancel_month"
    assert why["charged"] is True
    assert "2024-02-02" in why["why"]
    assert [e["type"] for e in why["events"]] == ["Purchased", "Cancelled"]
    assert why["events"][1]["at"] == "2024-02-02T10:00:00+09:00"
    assert audit["bill"]["subtotal"] == 525


def test_a_cancellation_on_the_31st_in_tokyo_is_not_charged_the_next_month(
    db: str, engine: Engine
) -> None:
    """docs/rules.md §4: cancelled on 31 January (Tokyo): February is not charged, and the audit of
    February says why."""
    world(engine)
    receipt = buy(engine, "2024-01-10T10:00:00+09:00")
    engine.cancel(at="2024-01-31T23:30:00+09:00", receipt=receipt, password=PW)
    _, audit = matome(db, "audit", LINE, "2024-02")
    why = explanation(audit, receipt)
    assert (why["rule"], why["charged"], why["amount"]) == ("cancelled_before_month", False, 0)
    assert "2024-01-31" in why["why"]
    assert audit["bill"]["subtotal"] == 0


def test_i_was_charged_twice_for_the_same_service(db: str, engine: Engine) -> None:
    """docs/rules.md §4 patterns 4–5: cancelled and bought again in March, charged once; the audit
    names the once-per-month rule for the second subscription."""
    world(engine)
    first = buy(engine, "2024-03-02T10:00:00+09:00")
    engine.cancel(at="2024-03-05T10:00:00+09:00", receipt=first, password=PW)
    second = buy(engine, "2024-03-20T10:00:00+09:00")
    _, audit = matome(db, "audit", LINE, "2024-03")
    assert audit["bill"]["subtotal"] == 525
    assert explanation(audit, first)["charged"] is True
    again = explanation(audit, second)
    assert (again["rule"], again["charged"]) == ("same_month_repurchase", False)
    assert "at most once per month" in again["why"]


def test_my_line_was_regulated_why_was_i_charged_that_month(db: str, engine: Engine) -> None:
    """docs/rules.md §5: regulation cancels every subscription at its instant; the month of
    cancellation is charged in full.  The audit names the regulation and lists its event."""
    world(engine)
    receipt = buy(engine, "2024-01-10T10:00:00+09:00")
    engine.regulate_line(at="2024-02-20T09:00:00+09:00", customer_id=LINE)
    _, audit = matome(db, "audit", LINE, "2024-02")
    why = explanation(audit, receipt)
    assert (why["rule"], why["charged"], why["amount"]) == ("cancel_month", True, 525)
    assert "regulation" in why["why"]
    assert [e["type"] for e in why["events"]] == ["Purchased", "Cancelled", "Regulated"]
    _, march = matome(db, "audit", LINE, "2024-03")
    assert explanation(march, receipt)["rule"] == "cancelled_before_month"


def test_this_bill_changed_after_it_was_issued(db: str, engine: Engine) -> None:
    """docs/rules.md §4, §7: January was issued; a refund recorded in February is charged in
    February.  The issued January bill and January recomputed now are the same; the audit lists
    the later refund and the month it belongs to."""
    world(engine)
    receipt = buy(engine, "2024-01-10T10:00:00+09:00", "item")
    engine.issue_bills(at="2024-02-01T09:00:00+09:00", month="2024-01")
    engine.refund(at="2024-02-10T12:00:00+09:00", receipt=receipt, amount=440, reason="broken")
    _, january = matome(db, "audit", LINE, "2024-01")
    assert january["issued"]["subtotal"] == january["bill"]["subtotal"] == 440
    assert january["differences"] == []
    (later,) = january["after_issue"]
    assert later["receipt"] == receipt
    assert later["event"]["type"] == "Refunded"
    assert "2024-02" in later["why"]
    _, february = matome(db, "audit", LINE, "2024-02")
    (refund,) = [x for x in february["explanations"] if x["rule"] == "refund"]
    assert refund["amount"] == -440


def test_the_audit_as_of_a_business_time_and_as_recorded_then(db: str, engine: Engine) -> None:
    """``--as-of`` cuts by business time, ``--recorded-as-of`` by what the store knew."""
    world(engine)
    buy(engine, "2024-01-10T10:00:00+09:00")
    buy(engine, "2024-01-20T10:00:00+09:00", "news")
    _, early = matome(db, "audit", LINE, "2024-01", "--as-of", "2024-01-15T00:00:00+09:00")
    assert early["bill"]["subtotal"] == 525
    assert early["as_of"] == "2024-01-15T00:00:00+09:00"
    _, now = matome(db, "audit", LINE, "2024-01")
    assert now["bill"]["subtotal"] == 825
    _, before = matome(
        db, "audit", LINE, "2024-01", "--recorded-as-of", "2000-01-01T00:00:00+00:00"
    )
    assert before["error"]["code"] == "unknown_line"


def test_the_audit_bill_equals_the_bill_of_the_views(engine: Engine) -> None:
    """The replay of one line from its own streams and the projection agree (no cutoff)."""
    world(engine)
    a = buy(engine, "2024-01-10T10:00:00+09:00")
    buy(engine, "2024-01-11T10:00:00+09:00", "item")
    engine.cancel(at="2024-03-01T08:00:00+09:00", receipt=a, password=PW)
    engine.issue_bills(at="2024-02-01T09:00:00+09:00", month="2024-01")
    for month in ("2023-12", "2024-01", "2024-02", "2024-03", "2024-04"):
        assert to_json(engine.audit(LINE, month).bill) == to_json(engine.bill(LINE, month))


# ---------------------------------------------------------------------------------------------
# Tamper evidence


def _history(engine: Engine) -> None:
    world(engine)
    a = buy(engine, "2024-01-10T10:00:00+09:00")
    buy(engine, "2024-01-12T10:00:00+09:00", "item")
    engine.cancel(at="2024-02-10T10:00:00+09:00", receipt=a, password=PW)
    engine.issue_bills(at="2024-03-01T09:00:00+09:00", month="2024-02")


Edit = Callable[[Callable[[str, tuple[Any, ...]], list[Any]]], None]


def _sqlite_sql(path: str) -> Callable[[str, tuple[Any, ...]], list[Any]]:
    def run(sql: str, params: tuple[Any, ...] = ()) -> list[Any]:
        with contextlib.closing(sqlite3.connect(path)) as conn:
            rows = conn.execute(sql.replace("%s", "?"), params).fetchall()
            conn.commit()
            return rows

    return run


def _postgres_sql(url: str) -> Callable[[str, tuple[Any, ...]], list[Any]]:
    import psycopg

    dsn, _, query = url.partition("?")
    schema = query.split("schema=")[1]

    def run(sql: str, params: tuple[Any, ...] = ()) -> list[Any]:
        # eventsourcing names the PostgreSQL events table after the application.
        sql = sql.replace("stored_events", "matome_events")
        with psycopg.connect(dsn, autocommit=True) as conn:
            conn.execute(f'SET search_path TO "{schema}"')
            cur = conn.execute(sql, params)
            return cur.fetchall() if cur.description else []

    return run


def _event(
    sql: Callable[[str, tuple[Any, ...]], list[Any]], topic: str
) -> tuple[Any, int, dict[str, Any]]:
    stream, version, state = sql(
        "SELECT originator_id, originator_version, state FROM stored_events WHERE topic = %s",
        (topic,),
    )[0]
    return stream, version, json.loads(bytes(state))


def _edit_price(sql: Callable[[str, tuple[Any, ...]], list[Any]]) -> None:
    stream, version, state = _event(sql, "matome.subscription.Purchased")
    state["price"] = 52_500
    sql(
        "UPDATE stored_events SET state = %s WHERE originator_id = %s AND originator_version = %s",
        (json.dumps(state).encode(), stream, version),
    )


def _edit_cancellation_time(sql: Callable[[str, tuple[Any, ...]], list[Any]]) -> None:
    stream, version, state = _event(sql, "matome.subscription.Cancelled")
    state["at"] = "2024-02-01T08:00:00+09:00"
    sql(
        "UPDATE stored_events SET state = %s WHERE originator_id = %s AND originator_version = %s",
        (json.dumps(state).encode(), stream, version),
    )


def _delete_row(sql: Callable[[str, tuple[Any, ...]], list[Any]]) -> None:
    stream, _, _ = _event(sql, "matome.passport.HoldingAdded")
    sql("DELETE FROM stored_events WHERE originator_id = %s AND originator_version = 2", (stream,))


def _reorder_versions(sql: Callable[[str, tuple[Any, ...]], list[Any]]) -> None:
    stream, _, _ = _event(sql, "matome.passport.HoldingAdded")
    for old, new in ((2, -1), (3, 2), (-1, 3)):
        sql(
            "UPDATE stored_events SET originator_version = %s "
            "WHERE originator_id = %s AND originator_version = %s",
            (new, stream, old),
        )


@pytest.mark.parametrize(
    ("edit", "kinds"),
    [
        pytest.param(_edit_price, {"changed", "bill_changed"}, id="price"),
        pytest.param(_edit_cancellation_time, {"changed"}, id="cancellation-time"),
        pytest.param(_delete_row, {"missing"}, id="deleted-row"),
        pytest.param(_reorder_versions, {"reordered", "changed"}, id="reordered-version"),
    ],
)
def test_verify_catches_an_event_edited_in_the_database(
    db: str, engine: Engine, edit: Edit, kinds: set[str]
) -> None:
    """docs/audit.md: every event is chained to the previous one of its stream; editing the
    stored events directly (SQL, not matome) breaks a link that ``matome verify`` names, and it
    exits 1."""
    _history(engine)
    engine.close()
    assert matome(db, "verify")[0] == 0
    edit(_sqlite_sql(db) if not db.startswith("postgresql") else _postgres_sql(db))
    code, report = matome(db, "verify")
    assert code == 1
    assert report["ok"] is False
    assert report["first_break"] is not None
    assert kinds <= {b["kind"] for b in report["breaks"]}


def test_verify_catches_a_personal_value_edited_in_the_database(db: str, engine: Engine) -> None:
    world(engine)
    engine.close()
    sql = _sqlite_sql(db) if not db.startswith("postgresql") else _postgres_sql(db)
    sql("UPDATE matome_personal SET data = %s WHERE ref LIKE %s", ('"eve@example.jp"', "%/email"))
    code, report = matome(db, "verify")
    assert code == 1
    assert {b["kind"] for b in report["breaks"]} == {"personal_changed"}


# ---------------------------------------------------------------------------------------------
# Erasure


def test_erasing_personal_data_keeps_every_chain_and_every_bill(db: str, engine: Engine) -> None:
    """An applicant's name, phone and e-mail — every version — are erased on request; the
    events and their hashes never held them, so ``verify`` stays green and bills unchanged."""
    _history(engine)
    engine.change_passport_details(
        at="2024-03-02T10:00:00+09:00", passport_id=PID, access_key=KEY, email="new@example.jp"
    )
    bills = {m: to_json(engine.bill(LINE, m)) for m in ("2024-01", "2024-02", "2024-03")}
    engine.erase_personal_data(at="2024-03-03T10:00:00+09:00", passport_id=PID, reason="request")
    engine.close()
    again = Engine.open(db, hash_iterations=TEST_ITERATIONS)
    try:
        assert {m: to_json(again.bill(LINE, m)) for m in bills} == bills
        registered, *rest = again.internals.events.get(again.passport(PID).id)  # type: ignore[union-attr]
        assert str(registered.email) == str(registered.applicant) == "(erased)"  # type: ignore[attr-defined]
        assert all("new@example.jp" not in repr(e) for e in rest)
    finally:
        again.close()
    code, report = matome(db, "verify")
    assert (code, report["ok"]) == (0, True)
    sql = _sqlite_sql(db) if not db.startswith("postgresql") else _postgres_sql(db)
    assert sql("SELECT count(*) FROM matome_personal", ())[0][0] == 0
    text = " ".join(bytes(r[0]).decode() for r in sql("SELECT state FROM stored_events", ()))
    assert "taro@example.jp" not in text
    assert "山田" not in text


def test_erasing_personal_data_of_a_0_1_store_redacts_its_old_events(tmp_path: Path) -> None:
    """Events written before 0.2 held personal values in clear: erasure redacts those fields
    (outside every hash), and the store still verifies."""
    path = tmp_path / "old.sqlite"
    shutil.copy(Path(__file__).parent.parent / "fixtures" / "store-v0.1.sqlite", path)
    e = Engine.open(str(path), hash_iterations=TEST_ITERATIONS)
    try:
        e.erase_personal_data(at="2024-04-20T10:00:00+09:00", passport_id="kato.ichi", reason="x")
        assert e.verify().ok
    finally:
        e.close()
    text = " ".join(
        r[0].decode() for r in _sqlite_sql(str(path))("SELECT state FROM stored_events", ())
    )
    assert "kato.ichi@example.jp" not in text
    assert "kato.new@example.jp" not in text


# ---------------------------------------------------------------------------------------------
# The HTML report, in a real browser


def test_the_html_report_loads_in_a_browser_without_errors(tmp_path: Path) -> None:
    """``matome audit --html FILE`` writes one self-contained page; headless Chromium loads it
    with no console error and takes a screenshot (look at it: tmp_path/audit.png)."""
    chromium = shutil.which("chromium")
    if chromium is None:
        if os.environ.get("MATOME_REQUIRE_BROWSER") == "1":
            pytest.fail("MATOME_REQUIRE_BROWSER=1 but Debian's chromium is not installed")
        pytest.skip("Debian's chromium is not installed (.ci/run installs it)")
    db = str(tmp_path / "html.sqlite")
    e = Engine.open(db, hash_iterations=TEST_ITERATIONS)
    world(e)
    receipt = buy(e, "2024-01-10T10:00:00+09:00")
    buy(e, "2024-01-11T10:00:00+09:00", "news")
    e.cancel(at="2024-03-01T08:00:00+09:00", receipt=receipt, password=PW)
    e.regulate_line(at="2024-03-15T09:00:00+09:00", customer_id=LINE)
    e.close()
    page = tmp_path / "audit.html"
    assert matome(db, "audit", LINE, "2024-03", "--html", str(page))[0] == 0
    html = page.read_text(encoding="utf-8")
    assert "<svg" in html
    assert "http://" not in html.replace('xmlns="http://www.w3.org/2000/svg"', "")
    assert "<script" not in html
    shot = tmp_path / "audit.png"
    flags = [
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        f"--user-data-dir={tmp_path / 'profile'}",
        "--enable-logging=stderr",
        "--v=0",
    ]
    result = subprocess.run(
        [chromium, *flags, f"--screenshot={shot}", "--window-size=1300,1100", page.as_uri()],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert shot.exists()
    assert shot.stat().st_size > 10_000
    console = [line for line in result.stderr.splitlines() if "CONSOLE" in line]
    assert console == [], console
    dom = subprocess.run(
        [chromium, *flags, "--dump-dom", page.as_uri()],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert "Why each yen was" in dom.stdout
    assert dom.stdout.count("<rect") >= 3
