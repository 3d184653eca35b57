"""Old stores keep working: events are forever (README, "Design decisions"; docs/architecture.md).

``tests/fixtures/store-v0.1.sqlite`` was written by matome 0.1 (``make_store_v0_1.py``, run once
at commit 4971a73) with every kind of event, two idempotency keys and three closed months, and
``store-v0.1.expected.json`` holds the documents 0.1 answered from it.  Every later version
must load every event of it (upcasting the shapes that changed, never rewriting them), rebuild
its views, and answer the same documents — a document may gain members, never lose or change
one (docs/contract.md, its opening).

One document changed meaning in contract 2: the settlement (docs/rules.md §8, design "Settlement
fees").  It is answered in the new shape, per provider and operator with ``tax`` and
``status``, and its numbers follow the corrected rule (see
:func:`test_the_0_1_store_settles_in_the_contract_2_shape_without_counting_tax_twice`).
"""

from __future__ import annotations

import contextlib
import json
import shutil
import sqlite3
from collections.abc import Iterator
from fractions import Fraction
from pathlib import Path
from typing import Any

import pytest

from matome.aggregates.passport import Passport, passport_id_stream, project_passport
from matome.engine import Engine
from matome.events.bill import BillIssued
from matome.events.passport import HoldingAdded
from matome.fees import schedule_with_flat_fee
from matome.values import PassportId
from matome.wire import issued_bill, text_digest, to_json
from tests.conftest import TEST_ITERATIONS
from tests.integration.logs import Matome

FIXTURES = Path(__file__).parent.parent / "fixtures"
EXPECTED: dict[str, Any] = json.loads((FIXTURES / "store-v0.1.expected.json").read_text())


@pytest.fixture
def old_store(tmp_path: Path) -> Iterator[Engine]:
    """A copy of the 0.1 store (the fixture itself is never written to)."""
    path = tmp_path / "store-v0.1.sqlite"
    shutil.copy(FIXTURES / "store-v0.1.sqlite", path)
    engine = Engine.open(
        str(path), hash_iterations=TEST_ITERATIONS, fee_schedule=schedule_with_flat_fee(50)
    )
    yield engine
    engine.close()


def contains(expected: Any, actual: Any, where: str = "") -> None:
    """``actual`` answers everything ``expected`` did: same values, members only added."""
    if isinstance(expected, dict):
        assert isinstance(actual, dict), where
        for key, value in expected.items():
            assert key in actual, f"{where}.{key} is gone"
            contains(value, actual[key], f"{where}.{key}")
    elif isinstance(expected, list):
        assert isinstance(actual, list), where
        assert len(actual) == len(expected), where
        for i, (e, a) in enumerate(zip(expected, actual, strict=True)):
            contains(e, a, f"{where}[{i}]")
    else:
        assert actual == expected, f"{where}: {actual!r} != {expected!r}"


def documents(engine: Engine) -> dict[str, Any]:
    out: dict[str, Any] = {"bills": {}, "statements": {}}
    for key in EXPECTED["bills"]:
        customer_id, month = key.split()
        out["bills"][key] = to_json(engine.bill(customer_id, month))
        out["statements"][key] = to_json(engine.statement(customer_id, month))
    out["contacts"] = {c: to_json(engine.provider_contacts(c)) for c in EXPECTED["contacts"]}
    out["providers"] = {m: to_json(engine.provider_totals(m)) for m in EXPECTED["providers"]}
    out["continuity"] = to_json(engine.continuity())
    out["status"] = {c: to_json(engine.usage_status(c)) for c in EXPECTED["status"]}
    out["closed_through"] = str(engine.closed_through())
    return out


def test_every_event_of_the_0_1_store_loads(old_store: Engine) -> None:
    notifications = old_store.internals.recorder.select_notifications(start=1, limit=10_000)
    assert len(notifications) == EXPECTED["events"]
    events = [old_store.internals.mapper.to_domain_event(n) for n in notifications]
    assert len(events) == EXPECTED["events"]


def test_bills_issued_by_0_1_are_upcast_to_their_canonical_text_with_their_digest_intact(
    old_store: Engine,
) -> None:
    """``BillIssued`` v1 stored an untyped document; it is read as v4's canonical JSON text,
    the digest 0.1 recorded is the SHA-256 of exactly that text, and the text reads as a
    typed bill."""
    notifications = old_store.internals.recorder.select_notifications(
        start=1, limit=10_000, topics=[BillIssued.TOPIC]
    )
    assert notifications, "the fixture has issued bills"
    for notification in notifications:
        assert b'"document"' in notification.state  # stored as 0.1 wrote it, not rewritten
        event = old_store.internals.mapper.to_domain_event(notification)
        assert isinstance(event, BillIssued)
        assert text_digest(event.document) == event.digest
        assert to_json(issued_bill(event)) == json.loads(event.document)


def test_the_0_1_store_answers_the_documents_it_answered(old_store: Engine) -> None:
    """Bills, statements, contacts, provider totals, continuity and the usage status: every
    member 0.1 answered is still there with its value (the status gained ``line_auth``)."""
    contains(
        {
            k: EXPECTED[k]
            for k in ("bills", "statements", "contacts", "providers", "continuity", "status")
        },
        documents(old_store),
    )
    for status in documents(old_store)["status"].values():
        assert all(isinstance(p["line_auth"], bool) for p in status["passports"])
    assert documents(old_store)["closed_through"] == EXPECTED["closed_through"]


def test_the_0_1_store_answers_the_same_documents_after_a_rebuild(old_store: Engine) -> None:
    before = documents(old_store)
    old_store.rebuild_views()
    assert documents(old_store) == before


def test_the_0_1_store_takes_new_commands_and_answers_old_keys(old_store: Engine) -> None:
    """The history goes on: a purchase on an ID registered by 0.1, and an idempotency key
    bound by 0.1 answers its first result again."""
    log = [
        json.loads(line) for line in (FIXTURES / "store-v0.1.log.jsonl").read_text().splitlines()
    ]
    (refund,) = [c for c in log if c.get("key") == "fixture:refund"]
    again = old_store.refund(**{k: v for k, v in refund.items() if k != "command"})
    assert again.refunded_total.amount == 200
    bought = old_store.purchase(
        at="2024-04-10T10:00:00+09:00",
        passport_id="sato.jiro",
        password="Secret77",
        provider="B",
        service="movie",
    )
    assert bought.price.amount == 440
    assert to_json(old_store.bill("CAF9000000003", "2024-04"))["subtotal"] == 440 + 330 - 330


#: The settlement of the 0.1 store in contract 2, with the flat fee of 50 yen 0.1 was asked with.
#: (provider, operator, gross, lines, average_per_line, fee, tax, net) per month.
SETTLEMENT_2: dict[str, list[tuple[str, str, int, int, str, int, int, int]]] = {
    "2024-01": [
        ("A", "west", 525, 1, "525.00", 30, 3, 492),
        ("B", "west", 1340, 2, "670.00", 67, 6, 1267),
    ],
    "2024-02": [
        ("A", "west", 525, 1, "525.00", 30, 3, 492),
        ("B", "west", 160, 2, "80.00", 60, 6, 94),
    ],
    "2024-03": [
        ("A", "west", 1705, 3, "568.33", 90, 9, 1606),
        ("B", "west", 1340, 4, "335.00", 120, 12, 1208),
        ("G", "east", 1200, 1, "1200.00", 50, 5, 1145),
    ],
    "2024-04": [
        ("A", "west", 525, 2, "262.50", 60, 6, 459),
        ("B", "west", 300, 1, "300.00", 30, 3, 267),
    ],
}


def test_the_0_1_store_settles_in_the_contract_2_shape_without_counting_tax_twice(
    old_store: Engine,
) -> None:
    """Contract 2 changed what a settlement says (docs/rules.md §8 Decisions; design "Settlement
    fees"), so 0.1's numbers are not expected back; its members are, plus ``operator``,
    ``tax`` and ``status``.

    Why the numbers differ: 0.1 had one ``fee`` that included 10% consumption tax on top of the
    schedule's amounts.  For averages under 600 yen the 2011 schedule's "31.5 yen per line" is
    already 30 yen + 5% tax, so 0.1 took 31.5 × 1.10 per line — tax counted twice (1 line:
    34 yen).  Contract 2 takes the fee before tax (30 yen per line) and lists the tax apart
    (3 yen): providers get 1 yen more per line.  Where the 5% rule or the 50-yen flat fee
    applied, 0.1's fee equals contract 2's fee + tax, and the net is unchanged.  Every
    provider sold on the lines of one operator here, so the rows are the same rows as 0.1's.
    """
    old = EXPECTED["settlement_flat_fee_50"]
    assert sorted(old) == sorted(SETTLEMENT_2)
    for month, rows in SETTLEMENT_2.items():
        settlement = to_json(old_store.settlement(month))
        assert settlement == [
            {
                "provider": provider,
                "operator": operator,
                "gross": gross,
                "lines": lines,
                "average_per_line": average,
                "fee": fee,
                "tax": tax,
                "net": net,
                "status": "settled",
            }
            for provider, operator, gross, lines, average, fee, tax, net in rows
        ]
        for was, now in zip(old[month], settlement, strict=True):
            same = ("provider", "gross", "lines", "average_per_line")
            assert {k: now[k] for k in same} == {k: was[k] for k in same}
            assert now["net"] == now["gross"] - now["fee"] - now["tax"]
            if Fraction(now["gross"], now["lines"]) < 600:
                # 0.1: 31.5 yen (tax included) × 1.10; contract 2: 30 yen + 10% tax.
                assert was["fee"] == int(Fraction(315, 10) * now["lines"] * Fraction(11, 10))
                assert (now["fee"], now["tax"]) == (30 * now["lines"], 3 * now["lines"])
                assert now["fee"] + now["tax"] < was["fee"]
            else:
                assert now["fee"] + now["tax"] == was["fee"]
                assert now["net"] == was["net"]


def test_keys_bound_by_contract_1_commands_answer_their_first_result_to_contract_2_logs(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], cheap_hashing: None
) -> None:
    """``matome run`` on the 0.1 store with the fixture log's keyed commands, as a contract-2
    log would carry them: the purchase needs nothing new (a contract-2 purchase carries the
    same fields), and a ``quantity`` at its default is left out of the key's digest, so the
    keys 0.1 bound answer their first results — the receipt 0.1 gave, the refund total — and
    nothing is written (without the keys the purchase would now be out of time order, in a
    closed month)."""
    path = tmp_path / "store-v0.1.sqlite"
    shutil.copy(FIXTURES / "store-v0.1.sqlite", path)

    matome = Matome(str(path), tmp_path, capsys)
    events = matome.events()
    log = [
        json.loads(line) for line in (FIXTURES / "store-v0.1.log.jsonl").read_text().splitlines()
    ]
    news = next(c for c in log if c.get("key") == "fixture:news")
    refund = next(c for c in log if c.get("key") == "fixture:refund")
    cancelled = next(c for c in log if c["command"] == "cancel")["receipt"]

    news_again, with_quantity, refund_again = matome.run(news, {**news, "quantity": 1}, refund)
    first = {"ok": True, "receipt": cancelled, "price": 330, "charged": 330}
    assert {k: news_again[k] for k in first} == first
    assert {**with_quantity, "line": news_again["line"]} == news_again
    assert {k: refund_again[k] for k in ("ok", "receipt", "refunded_total")} == {
        "ok": True,
        "receipt": refund["receipt"],
        "refunded_total": 200,
    }
    assert matome.events() == events
    # Without its key the same purchase is decided afresh: out of time order now.
    unkeyed = {k: v for k, v in news.items() if k != "key"}
    matome.run(unkeyed | {"refused": "invalid_input"})


# ---------------------------------------------------------------------------------------------
# The 0.2 store (make_store_v0_2.py): a password change 0.2 hashed with its empty e-mail


def test_the_0_2_store_verifies_with_the_hashes_0_2_recorded_for_empty_personal_fields(
    tmp_path: Path,
) -> None:
    """0.2 stored a ``change_passport_details`` without an e-mail as ``"email": null`` and
    hashed it so, while its ``verify`` folded the event without it: a store with a password
    change failed 0.2's own ``verify``.  ``verify`` now accepts the hash as 0.2 wrote it
    (contract 3, "Tamper evidence"), and an edit of that event is still a break."""
    path = tmp_path / "store-v0.2.sqlite"
    shutil.copy(FIXTURES / "store-v0.2.sqlite", path)
    engine = Engine.open(str(path), hash_iterations=TEST_ITERATIONS)
    try:
        report = engine.verify()
        assert report.ok, report.breaks
        assert report.events == 26
        assert engine.bill("CAF0000000001", "2024-02").subtotal.amount == 3525
    finally:
        engine.close()
    with contextlib.closing(sqlite3.connect(path)) as conn:
        rows = conn.execute(
            "SELECT rowid, CAST(state AS TEXT) FROM stored_events "
            "WHERE topic LIKE '%DetailsChanged%'"
        ).fetchall()
        assert len(rows) == 1
        assert '"email":null' in rows[0][1]
        edited = rows[0][1].replace('"email":null', '"email":null,"x":1')
        conn.execute(
            "UPDATE stored_events SET state = ? WHERE rowid = ?", (edited.encode(), rows[0][0])
        )
        conn.commit()
    engine = Engine.open(str(path), hash_iterations=TEST_ITERATIONS)
    try:
        assert not engine.verify().ok
    finally:
        engine.close()


# ---------------------------------------------------------------------------------------------
# The 0.2.1 store (make_store_v0_2_1.py, commit f1b8f2c): contract 3, issued bills as v3


EXPECTED_0_2_1: dict[str, Any] = json.loads((FIXTURES / "store-v0.2.1.expected.json").read_text())


@pytest.fixture
def store_0_2_1(tmp_path: Path) -> Iterator[Engine]:
    """A copy of the 0.2.1 store and of the master-key file beside it (its default place):
    without the key its personal data cannot be read."""
    path = tmp_path / "store-v0.2.1.sqlite"
    shutil.copy(FIXTURES / "store-v0.2.1.sqlite", path)
    shutil.copy(FIXTURES / "store-v0.2.1.sqlite.master-key", f"{path}.master-key")
    engine = Engine.open(str(path), hash_iterations=TEST_ITERATIONS)
    yield engine
    engine.close()


def documents_0_2_1(engine: Engine) -> dict[str, Any]:
    out: dict[str, Any] = {"bills": {}, "statements": {}, "audits": {}}
    for key in EXPECTED_0_2_1["bills"]:
        customer_id, month = key.split()
        out["bills"][key] = to_json(engine.bill(customer_id, month))
        out["statements"][key] = to_json(engine.statement(customer_id, month))
        out["audits"][key] = to_json(engine.audit(customer_id, month))
    out["providers"] = {m: to_json(engine.provider_totals(m)) for m in EXPECTED_0_2_1["providers"]}
    out["settlement"] = {m: to_json(engine.settlement(m)) for m in EXPECTED_0_2_1["settlement"]}
    out["status"] = {c: to_json(engine.usage_status(c)) for c in EXPECTED_0_2_1["status"]}
    out["closed_through"] = str(engine.closed_through())
    return out


def test_every_event_of_the_0_2_1_store_loads(store_0_2_1: Engine) -> None:
    recorder = store_0_2_1.internals.recorder
    notifications = recorder.select_notifications(start=1, limit=10_000)
    assert len(notifications) == EXPECTED_0_2_1["events"]
    events = [store_0_2_1.internals.mapper.to_domain_event(n) for n in notifications]
    assert len(events) == EXPECTED_0_2_1["events"]
    issued = [n for n in notifications if n.topic == BillIssued.TOPIC]
    assert len(issued) == 4, "January and February of the two lines that bought"
    for n in issued:
        # Stored as f1b8f2c wrote it (class_version 3, the typed bill), never rewritten.
        state = json.loads(n.state)
        assert state["class_version"] == 3
        assert isinstance(state["bill"], dict)


def test_the_0_2_1_store_verifies(store_0_2_1: Engine) -> None:
    """``matome verify`` is clean on the store: every chain, personal value, issued bill (its
    digest as recorded by v3) and what the views show of the bills."""
    report = store_0_2_1.verify()
    assert report.ok, report.breaks
    assert report.events == EXPECTED_0_2_1["verify"]["events"]


def test_the_0_2_1_store_answers_the_documents_it_answered(store_0_2_1: Engine) -> None:
    """Bills, statements, audits, provider totals, settlement and usage status: every member
    f1b8f2c answered is still there with its value (documents may gain members)."""
    expected = {
        k: EXPECTED_0_2_1[k]
        for k in (
            "bills",
            "statements",
            "audits",
            "providers",
            "settlement",
            "status",
            "closed_through",
        )
    }
    contains(expected, documents_0_2_1(store_0_2_1))


def test_the_0_2_1_store_answers_the_same_documents_after_a_rebuild(
    store_0_2_1: Engine,
) -> None:
    before = documents_0_2_1(store_0_2_1)
    store_0_2_1.rebuild_views()
    after = documents_0_2_1(store_0_2_1)
    assert after == before
    contains({k: EXPECTED_0_2_1[k] for k in ("bills", "providers", "settlement")}, after)


def test_a_store_with_bills_issued_as_v3_and_as_v4_verifies(
    store_0_2_1: Engine,
) -> None:
    """The billing run goes on over the 0.2.1 store: March's bills are recorded as
    ``BillIssued`` v4 (the canonical JSON text) beside January's and February's v3 (the typed
    bill), and ``verify`` checks both against their digests — v4 over the stored bytes, v3
    over its stored bill in canonical form."""
    store_0_2_1.issue_bills(at="2024-04-01T09:00:00+09:00", month="2024-03")
    recorder = store_0_2_1.internals.recorder
    versions = sorted(
        json.loads(n.state)["class_version"]
        for n in recorder.select_notifications(start=1, limit=10_000, topics=[BillIssued.TOPIC])
    )
    assert versions == [3, 3, 3, 3, 4]
    report = store_0_2_1.verify()
    assert report.ok, report.breaks
    assert report.bills == 5
    march = to_json(store_0_2_1.bill("CAF0000000001", "2024-03"))
    assert march["status"] == "issued"
    assert march["subtotal"] == EXPECTED_0_2_1["bills"]["CAF0000000001 2024-03"]["subtotal"]


def test_holdings_recorded_before_v4_replay_to_the_state_they_had(store_0_2_1: Engine) -> None:
    """``HoldingAdded`` v3 did not carry the re-purchase fact (§4 patterns 4–5); read back as
    v4 without it, the Passport ID's state derives it as the v3 applier did: the
    subscription f1b8f2c answered ``charged: 0`` (bought again in January after a
    cancellation) is the one re-purchase on record, and the others were charged."""
    results = EXPECTED_0_2_1["results"]
    rebought = {r["receipt"] for r in results if r.get("charged") == 0 and "price" in r}
    assert len(rebought) == 1
    stream = passport_id_stream(PassportId("yamada.taro"))
    internals = store_0_2_1.internals
    events = [
        internals.mapper.to_domain_event(n)
        for n in internals.recorder.select_notifications(start=1, limit=10_000)
        if n.originator_id == stream
    ]
    held = [e for e in events if isinstance(e, HoldingAdded)]
    assert len(held) == 4
    assert all(e.rebought is None for e in held), "recorded before the fact was"
    state = project_passport(None, events)
    assert isinstance(state, Passport)
    assert set(state.rebought) == rebought
    for e in held:
        charged = state.first_month_charged(e.receipt, once_per_month=True)
        assert charged is (e.receipt not in rebought)
