"""Old stores keep working: events are forever (README, "Design decisions"; docs/architecture.md).

``tests/fixtures/store-v0.1.sqlite`` was written by matome 0.1 (``make_store_v0_1.py``, run once
at commit 4971a73) with every kind of event, two idempotency keys and three closed months, and
``store-v0.1.expected.json`` holds the documents 0.1 answered from it.  Every later version
must load every event of it (upcasting the shapes that changed, never rewriting them), rebuild
its views, and answer the same documents — a document may gain members, never lose or change
one (INTERCHANGE.md).
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from matome.engine import Engine
from matome.events.bill import BillIssued
from matome.fees import schedule_with_flat_fee
from matome.projections.documents import bill_digest
from matome.wire import to_json
from tests.conftest import TEST_ITERATIONS

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
    notifications = old_store.recorder.select_notifications(start=1, limit=10_000)
    assert len(notifications) == EXPECTED["events"]
    events = [old_store.mapper.to_domain_event(n) for n in notifications]
    assert len(events) == EXPECTED["events"]


def test_bills_issued_by_0_1_are_upcast_to_typed_bills_with_their_digest_intact(
    old_store: Engine,
) -> None:
    """``BillIssued`` v1 stored an untyped document; it is read as v2's typed bill, and the
    digest 0.1 recorded is still the digest of that bill's canonical JSON."""
    notifications = old_store.recorder.select_notifications(
        start=1, limit=10_000, topics=[BillIssued.TOPIC]
    )
    assert notifications, "the fixture has issued bills"
    for notification in notifications:
        assert b'"document"' in notification.state  # stored as 0.1 wrote it, not rewritten
        event = old_store.mapper.to_domain_event(notification)
        assert isinstance(event, BillIssued)
        assert bill_digest(event.bill) == event.digest


def test_the_0_1_store_answers_the_documents_it_answered(old_store: Engine) -> None:
    contains(
        {k: EXPECTED[k] for k in ("bills", "statements", "contacts", "providers", "continuity")},
        documents(old_store),
    )
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
