"""Events are forever: the newest shapes of ``BillIssued`` and ``HoldingAdded`` and the
upcasters that read every older stored shape (docs/architecture.md, "Events are forever").

* ``BillIssued`` v4 stores the issued bill as its canonical JSON text, the exact bytes its
  ``digest`` is the SHA-256 of; an older bill's stored JSON becomes that text.
* ``HoldingAdded`` v4 records whether the purchase was a same-month re-purchase (§4 patterns
  4–5), so that replaying it never decides that again; older events derive it as before.
* No event module imports a document: events sit below the documents they could embed.
"""

from __future__ import annotations

import ast
import hashlib
import json
import pkgutil
import uuid
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

import matome.events
from matome.aggregates import passport
from matome.application.eventstore import event_from_json, upcast
from matome.events import passport as passport_ev
from matome.events.bill import BillIssued
from matome.values import Pricing, ServiceCode, Yen, canonical_json
from matome.wire import canonical_text, dumps, issued_bill, text_digest, to_json
from tests.unit.test_deciders import (
    A,
    a_line,
    a_passport,
    a_provider,
    decision,
    event,
    purchase,
)

FIXTURES = Path(__file__).parent.parent / "fixtures"
#: A bill issued by f1b8f2c (contract 3), as that version answered it.
ISSUED: dict[str, Any] = json.loads((FIXTURES / "store-v0.2.1.expected.json").read_text())["bills"][
    "CAF0000000001 2024-01"
]
STREAM = uuid.UUID("fb7067ff-b089-56f4-b690-c80f81c027de")


def _stored_v3(bill: dict[str, Any]) -> dict[str, Any]:
    """A ``BillIssued`` as v3 stored it: the bill as JSON, its digest over that JSON."""
    return {
        "class_version": 3,
        "timestamp": "2024-02-01T00:00:00+00:00",
        "at": "2024-02-01T09:00:00+09:00",
        "customer_id": bill["customer_id"],
        "month": bill["month"],
        "bill": bill,
        "digest": hashlib.sha256(dumps(bill).encode()).hexdigest(),
        "sources": [],
        "events_digest": "",
    }


# ---------------------------------------------------------------------------------------------
# BillIssued v4


def test_a_v3_issued_bill_is_read_as_its_canonical_text_whose_sha256_is_its_digest() -> None:
    # Members in another order than sorted: the text is the canonical form, not the order read.
    bill = dict(reversed(list(ISSUED.items())))
    state = _stored_v3(bill)
    event = event_from_json(BillIssued.TOPIC, state, STREAM, 1)
    assert isinstance(event, BillIssued)
    assert event.document == canonical_json(ISSUED)
    assert "ビー株式会社" in event.document or "フレッツ" in event.document  # UTF-8, not \\u
    assert text_digest(event.document) == event.digest == state["digest"]
    assert to_json(issued_bill(event)) == ISSUED
    assert "bill" in state, "the stored state is upcast in a copy, never rewritten"


def test_a_v1_issued_bill_is_upcast_through_every_version_to_its_canonical_text() -> None:
    """0.1 stored the untyped document under ``document``; v2 moved it to ``bill``, v4 makes
    it the canonical text again."""
    state = _stored_v3(ISSUED)
    state["class_version"] = 1
    state["document"] = state.pop("bill")
    del state["sources"], state["events_digest"]
    current = upcast(BillIssued, dict(state))
    assert current["document"] == canonical_json(ISSUED)
    assert (current["sources"], current["events_digest"]) == ([], "")
    assert "bill" not in current


def test_an_old_bill_keeps_its_digest_whatever_todays_bill_type_would_write() -> None:
    """The upcaster does not read an old bill back through today's ``Bill`` type: a member
    that type no longer writes (or never wrote) stays in the text, and the digest recorded
    over the stored JSON is still the SHA-256 of the text — a document change cannot make an
    old bill look broken."""
    bill = {**ISSUED, "remark": "a member of an older document shape"}
    event = event_from_json(BillIssued.TOPIC, _stored_v3(bill), STREAM, 1)
    assert isinstance(event, BillIssued)
    assert '"remark":' in event.document
    assert text_digest(event.document) == event.digest
    assert canonical_text(issued_bill(event)) != event.document  # today's type drops it


def test_a_new_issued_bill_stores_the_text_it_digests() -> None:
    old = event_from_json(BillIssued.TOPIC, _stored_v3(ISSUED), STREAM, 1)
    assert isinstance(old, BillIssued)
    bill = issued_bill(old)
    text = canonical_text(bill)
    issued = BillIssued(
        originator_id=STREAM,
        originator_version=1,
        timestamp=datetime.fromisoformat("2024-02-01T00:00:00+00:00"),
        at=datetime.fromisoformat("2024-02-01T09:00:00+09:00"),
        customer_id=bill.customer_id,
        month=bill.month,
        document=text,
        digest=text_digest(text),
    )
    stored = to_json(issued)
    assert stored["document"] == text
    assert "bill" not in stored
    assert text_digest(stored["document"]) == stored["digest"]


# ---------------------------------------------------------------------------------------------
# No event imports a document


def _imports(module: str) -> set[str]:
    spec = pkgutil.resolve_name(module)
    tree = ast.parse(Path(spec.__file__).read_text())
    out: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module is not None:
            out.add(node.module)
            out.update(f"{node.module}.{a.name}" for a in node.names)
    return out


EVENT_MODULES = sorted(
    f"matome.events.{m.name}" for m in pkgutil.iter_modules(matome.events.__path__)
)


@pytest.mark.parametrize("module", EVENT_MODULES)
def test_no_event_module_imports_a_document(module: str) -> None:
    """Events are below the documents (issue #17): an event that embedded a document type
    would change meaning with it.  An event module imports the values and the event base,
    never ``matome.documents`` nor the wire format (which imports the documents)."""
    assert "bill" in {m.rsplit(".", 1)[-1] for m in EVENT_MODULES}  # the list is the package
    forbidden = ("matome.documents", "matome.wire", "matome.projections")
    found = {m for m in _imports(module) if m.startswith(forbidden)}
    assert not found, f"{module} imports {sorted(found)}"


# ---------------------------------------------------------------------------------------------
# HoldingAdded v4: the re-purchase fact on the event


def test_a_v3_holding_is_upcast_with_its_rebought_fact_unknown() -> None:
    state = {
        "class_version": 3,
        "receipt": "R1",
        "provider": "A",
        "service": "back",
        "pricing": "monthly",
        "price": 525,
        "quantity": 1,
        "period_ends_at": None,
    }
    assert upcast(passport_ev.HoldingAdded, dict(state))["rebought"] is None
    state.update(class_version=1)
    del state["quantity"], state["period_ends_at"]
    current = upcast(passport_ev.HoldingAdded, dict(state))
    assert (current["quantity"], current["period_ends_at"], current["rebought"]) == (1, None, None)


def _apply(state: passport.Passport, *events: Any) -> passport.Passport:
    after = passport.project_passport(state, events)
    assert isinstance(after, passport.Passport)
    return after


def _rebuy_state() -> passport.Passport:
    """The ID holding ``back`` bought on 5 March and cancelled on the 10th (charged in March)."""
    march = datetime.fromisoformat("2024-03-05T10:00:00+09:00")
    held = a_passport(("R1", "back", march))
    cancelled = datetime.fromisoformat("2024-03-10T10:00:00+09:00")
    return _apply(
        held, event(passport_ev.HoldingEnded, held.id, held.version + 1, cancelled, receipt="R1")
    )


def _holding(state: passport.Passport, **fields: Any) -> passport_ev.HoldingAdded:
    added: passport_ev.HoldingAdded = event(
        passport_ev.HoldingAdded,
        state.id,
        state.version + 1,
        datetime.fromisoformat("2024-03-20T10:00:00+09:00"),
        receipt="R2",
        provider=A,
        service=ServiceCode("back"),
        pricing=Pricing.MONTHLY,
        price=Yen(525),
        **fields,
    )
    return added


def test_a_same_month_repurchase_records_that_it_was_rebought() -> None:
    """§4 patterns 4–5: the purchase decides it once and puts it on ``HoldingAdded``."""
    d = decision("2024-03-20T10:00:00+09:00")
    result = passport.decide_purchase(
        _rebuy_state(), a_line(), a_provider(), purchase("2024-03-20T10:00:00+09:00"), d
    )
    assert result is not None
    assert result.charged == Yen(0)
    held = d.events[-1]
    assert isinstance(held, passport_ev.HoldingAdded)
    assert held.rebought is True


def test_a_first_purchase_records_that_it_was_not_rebought() -> None:
    d = decision("2024-03-20T10:00:00+09:00")
    passport.decide_purchase(
        a_passport(), a_line(), a_provider(), purchase("2024-03-20T10:00:00+09:00"), d
    )
    held = d.events[-1]
    assert isinstance(held, passport_ev.HoldingAdded)
    assert held.rebought is False


@pytest.mark.parametrize("fact", [True, False])
def test_the_passport_applier_reads_the_rebought_fact_and_never_decides_it_again(
    fact: bool,
) -> None:
    """Whatever the charging rules would say on replay, a v4 event's fact is what counts: the
    same state gets the re-purchase on record only when the event says so."""
    state = _rebuy_state()
    after = _apply(state, _holding(state, rebought=fact))
    assert ("R2" in after.rebought) is fact
    assert after.first_month_charged("R2", once_per_month=True) is not fact


def test_a_holding_recorded_before_v4_derives_the_fact_as_the_v3_applier_did() -> None:
    """Old stores replay as they did: an event without the fact (``None``) gets it from the
    ID's holdings before it — a re-purchase in the month its first subscription was charged."""
    state = _rebuy_state()
    after = _apply(state, _holding(state))
    assert "R2" in after.rebought
    fresh = a_passport()
    first = _apply(fresh, _holding(fresh))
    assert "R2" not in first.rebought
