"""The billing run writes the bill views as it records the bills (issue #18; rules §7).

A chunk of lines at a time, the run reads the lines' facts — with the chain hash of each event
a charge or an account came from, joined in the same queries where the store's chain table is
beside the views —, records their bills, and applies them to the views from memory at the
positions they were recorded at, exactly once with the views' tracking position.  Nothing it
has just written is read back, and the views stay equal to a rebuild from the log.
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from typing import Any

import pytest

from matome.billing import chain_hashes, events_digest
from matome.demo import run_demo
from matome.engine import Engine
from matome.events.base import DomainEvent
from matome.events.bill import BillIssued
from matome.projections import runner
from matome.projections.runner import Projection
from matome.values import YearMonth
from tests.conftest import EngineFactory

MARCH = YearMonth(2024, 3)
CLOSE_MARCH = "2024-04-01T09:00:00+09:00"


@pytest.fixture
def engine(make_engine: EngineFactory) -> Engine:
    e = make_engine()
    run_demo(e, io.StringIO())  # January and February billed
    return e


def _bills(engine: Engine) -> list[BillIssued]:
    store = engine._store
    return [
        event
        for n in store.recorder.select_notifications(start=1, limit=10**6)
        if n.topic == BillIssued.TOPIC
        for event in [store.mapper.to_domain_event(n)]
        if isinstance(event, BillIssued)
    ]


def _rebuilt_equal(engine: Engine) -> None:
    projection, _ = engine.internals.views
    projection.catch_up()
    kept = projection.dump()
    engine.rebuild_views()
    assert projection.dump() == kept


def test_the_billing_run_writes_the_bill_views_without_reading_its_bills_back(
    engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    """§7: the bills of March are in the views once the run returns, the views' catch-ups
    decoded none of them, and the views equal a rebuild from the log."""
    decoded: list[str] = []
    real = Projection._raw

    def spy(self: Projection, row: Any, state_of: Any) -> Any:
        decoded.append(row[3])
        return real(self, row, state_of)

    monkeypatch.setattr(Projection, "_raw", spy)
    engine.issue_bills(at=CLOSE_MARCH, month=str(MARCH))
    monkeypatch.undo()
    _, documents = engine.internals.views
    issued = documents.issued_bills(MARCH)
    assert issued
    assert issued == {b.customer_id.value for b in _bills(engine) if b.month == MARCH}
    assert BillIssued.TOPIC not in decoded
    _rebuilt_equal(engine)


def test_bills_a_catch_up_applied_first_are_not_applied_again(
    engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Exactly once: a query's catch-up that reads the bills just recorded before the run
    applies them (another thread, another process) leaves the run nothing to apply."""
    applied: list[bool] = []
    real = Projection.apply_recorded

    def catch_up_first(self: Projection, ids: Sequence[int], events: Sequence[DomainEvent]) -> bool:
        self.catch_up()
        applied.append(real(self, ids, events))
        return applied[-1]

    monkeypatch.setattr(Projection, "apply_recorded", catch_up_first)
    engine.issue_bills(at=CLOSE_MARCH, month=str(MARCH))
    assert applied
    assert not any(applied)
    _rebuilt_equal(engine)


def test_bills_recorded_after_events_the_views_lack_are_applied_after_them(
    engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The views are caught up to the bills' positions in the same transaction first: events
    recorded between the run's own catch-up and its bills (here: the month's closing, which
    the run never read) are applied before the bills, and each once."""
    real_catch_up = Projection.catch_up
    monkeypatch.setattr(Projection, "catch_up", lambda self, progress=None: 0)
    engine.issue_bills(at=CLOSE_MARCH, month=str(MARCH))
    monkeypatch.setattr(Projection, "catch_up", real_catch_up)
    _, documents = engine.internals.views
    assert documents.issued_bills(MARCH)
    assert documents.closed_through() == MARCH
    _rebuilt_equal(engine)


def test_each_bill_digests_the_same_chain_hashes_as_a_lookup_would(engine: Engine) -> None:
    """§7 provenance: the chain hashes read with the charges (joined where the chain table is
    beside the views) are the hashes ``verify`` looks up, so each bill's ``events_digest`` is
    the digest of its sources' recorded hashes."""
    engine.issue_bills(at=CLOSE_MARCH, month=str(MARCH))
    bills = _bills(engine)
    assert any(b.month == MARCH for b in bills)
    for bill in bills:
        hashes = chain_hashes(engine._store, bill.sources)
        assert set(hashes) == set(bill.sources)
        assert bill.events_digest == events_digest(bill.sources, hashes)


def test_a_rebuild_applied_in_parts_of_any_size_gives_the_same_views(
    engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Memory flat in the log's size: events are decoded and applied a part of about
    ``CHUNK_BYTES`` at a time, and read in chunks sized by the last one's bytes; with parts of
    one event and reads of one event, a rebuild gives the same views."""
    engine.issue_bills(at=CLOSE_MARCH, month=str(MARCH))
    projection, _ = engine.internals.views
    projection.catch_up()
    clean = projection.dump()
    sizes: list[int] = []
    real = Projection._apply_part

    def spy(self: Projection, part: Sequence[Any], *args: Any) -> None:
        sizes.append(len(part))
        real(self, part, *args)

    monkeypatch.setattr(runner, "CHUNK_BYTES", 1)
    monkeypatch.setattr(runner, "_MIN_ROWS", 1)
    monkeypatch.setattr(Projection, "_apply_part", spy)
    engine.rebuild_views()
    assert sizes
    assert set(sizes) == {1}
    assert projection.dump() == clean
