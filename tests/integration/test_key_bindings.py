"""Idempotency keys and purchase references at ingestion speed (issue #18; docs/design.md,
"Trust", "Keys and references in a batch"), on SQLite and on PostgreSQL.

A batch learns which of its keys and references exist in **one** ``IN (…)`` query on the
events' primary key, not one stream read each.  Their bindings stay ``KeyBound`` and
``PurchaseReferenced`` events in both hash chains: a binding edited or deleted in the store is
a break for ``verify``, and a key the engine wrongly believes unused still answers its first
result (rules §10, "same key, same body: applied once").
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from matome import commands as cmd
from matome.aggregates.ledger import key_id
from matome.engine import Engine
from tests.conftest import TEST_ITERATIONS
from tests.integration.test_audit import LINE, PID, PW, world
from tests.integration.test_tamper import Store, broken, kinds, matome


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def db(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return str(tmp_path / "keys.sqlite")
    url: str = request.getfixturevalue("pg_url")
    return url


def purchase(n: int, *, key: str | None = None, ref: str | None = None) -> cmd.Purchase:
    return cmd.Purchase(
        at=f"2024-01-{10 + n % 15:02d}T10:00:00+09:00",
        passport_id=PID,
        password=PW,
        provider="A",
        service="item",
        key=key if key is not None else f"k{n}",
        ref=ref if ref is not None else f"r{n}",
    )


class Counting:
    """Counts the recorder's stream reads and existence queries."""

    def __init__(self, engine: Engine, monkeypatch: pytest.MonkeyPatch) -> None:
        recorder: Any = engine.internals.recorder
        self.reads: list[Any] = []
        self.lookups: list[int] = []
        select, versions = recorder.select_events, recorder.stream_versions

        def counted_select(stream: Any, *args: Any, **kwargs: Any) -> Any:
            self.reads.append(stream)
            return select(stream, *args, **kwargs)

        def counted_versions(streams: Any) -> Any:
            self.lookups.append(len(streams))
            return versions(streams)

        monkeypatch.setattr(recorder, "select_events", counted_select)
        monkeypatch.setattr(recorder, "stream_versions", counted_versions)


def test_a_batch_learns_its_new_keys_and_references_in_one_query(
    db: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    e = Engine.open(db, hash_iterations=TEST_ITERATIONS)
    try:
        world(e)
        counting = Counting(e, monkeypatch)
        outcomes = e.execute_batch([(purchase(n), None) for n in range(4)])
        assert all(isinstance(o, cmd.PurchaseResult) for o in outcomes), outcomes
        assert counting.lookups == [8]  # 4 keys and 4 references, one query
        assert counting.reads == []  # no stream read for any of them
    finally:
        e.close()


def test_a_key_bound_by_another_engine_answers_its_first_result_in_a_batch(db: str) -> None:
    """§10: the second engine believes the key unused (it primed the key as absent before
    the first engine bound it); its batch conflicts on the key's stream and is decided again
    from the store — one purchase, the first result answered."""
    first = Engine.open(db, hash_iterations=TEST_ITERATIONS)
    second = Engine.open(db, hash_iterations=TEST_ITERATIONS)
    try:
        world(first)
        second._commands.cache.prime([key_id("k1")])  # "absent", cached
        bound = first.execute(purchase(1))
        again = second.execute_batch([(purchase(1), None), (purchase(2), None)])
        assert again[0] == bound
        assert isinstance(again[1], cmd.PurchaseResult)
        assert again[1].receipt != bound.receipt
        assert len(first.statement(LINE, "2024-01").rows) == 2
    finally:
        first.close()
        second.close()


@pytest.fixture
def bound(db: str) -> Store:
    """A key and a reference bound through a batch, the store verified intact."""
    e = Engine.open(db, hash_iterations=TEST_ITERATIONS)
    try:
        world(e)
        e.execute_batch([(purchase(n), None) for n in range(3)])
    finally:
        e.close()
    code, report = matome(db, "verify")
    assert (code, report["ok"]) == (0, True), report
    return Store(db)


def test_an_edited_key_binding_is_a_break(bound: Store) -> None:
    """The binding decides what a replay is answered: changing the first result it answers
    is found by ``verify``."""
    stream, version, position, state = bound.event("matome.idempotency.KeyBound", 1)
    state["result"]["price"] = 1
    bound.set_state(stream, version, state)
    report = broken(bound.db)
    assert "changed" in kinds(report)
    assert report["first_break"]["position"] == position


def test_a_deleted_key_binding_is_a_break(bound: Store) -> None:
    """Deleting a binding (which would let the same key apply its body twice) is found."""
    stream, version, position, _ = bound.event("matome.idempotency.KeyBound", 1)
    bound.delete_event(stream, version, rows=True)
    report = broken(bound.db)
    # The next global row no longer chains to the one before the gap.
    assert report["first_break"]["position"] in (position, position + 1)


def test_an_edited_purchase_reference_is_a_break(bound: Store) -> None:
    stream, version, position, state = bound.event("matome.subscription.PurchaseReferenced")
    state["receipt"] = "R" + "0" * 20
    bound.set_state(stream, version, state)
    report = broken(bound.db)
    assert "changed" in kinds(report)
    assert report["first_break"]["position"] == position
