"""The writers' gate: a command that keeps losing races gets the store to itself.

A regulation (docs/rules.md §5) reads every Passport ID and subscription of its line; without the
gate a steady stream of purchases on the line starves it (each purchase lands between its
read and its save).  See ``matome.application.eventstore.WriterGate``.
"""

from __future__ import annotations

import multiprocessing
import threading
import time
from pathlib import Path

import pytest

from matome.application.eventstore import FileGate, WriterGate


def test_a_waiting_exclusive_holder_is_not_starved_by_shared_holders() -> None:
    gate = WriterGate()
    stop = threading.Event()
    got_it = threading.Event()

    def reader() -> None:
        # Overlapping shared holds: without writer preference there is never a gap.
        while not stop.is_set():
            with gate.shared():
                time.sleep(0.001)

    readers = [threading.Thread(target=reader) for _ in range(4)]
    for t in readers:
        t.start()
    try:
        time.sleep(0.02)

        def writer() -> None:
            with gate.exclusive():
                got_it.set()

        w = threading.Thread(target=writer)
        w.start()
        assert got_it.wait(5), "the exclusive holder waited behind shared holders for 5 s"
        w.join()
    finally:
        stop.set()
        for t in readers:
            t.join()


def test_the_exclusive_holder_passes_its_own_shared_gate() -> None:
    gate = WriterGate()
    with gate.exclusive():
        assert gate.held()
        with gate.shared():  # its own save: must not wait for itself
            pass
        with gate.exclusive():  # re-entrant
            assert gate.held()
    assert not gate.held()


def test_shared_holders_do_not_exclude_each_other() -> None:
    gate = WriterGate()
    with gate.shared(), gate.shared():
        pass


def _hold_exclusive(path: str, ready: object, release: object) -> None:
    gate = FileGate(path)
    with gate.exclusive():
        ready.set()  # type: ignore[attr-defined]
        release.wait(10)  # type: ignore[attr-defined]


def test_a_file_gate_excludes_writers_of_another_process(tmp_path: Path) -> None:
    path = str(tmp_path / "store.sqlite.gate")
    ctx = multiprocessing.get_context("spawn")
    ready, release = ctx.Event(), ctx.Event()
    holder = ctx.Process(target=_hold_exclusive, args=(path, ready, release))
    holder.start()
    try:
        assert ready.wait(30)
        entered = threading.Event()

        def write() -> None:
            with FileGate(path).shared():
                entered.set()

        t = threading.Thread(target=write)
        t.start()
        assert not entered.wait(0.3), "a shared write passed an exclusive gate held elsewhere"
        release.set()
        assert entered.wait(10)
        t.join()
    finally:
        release.set()
        holder.join(10)
    assert holder.exitcode == 0


@pytest.mark.parametrize("kind", ["memory", "sqlite"])
def test_a_command_that_keeps_losing_races_takes_the_gate_and_lands(
    kind: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from eventsourcing.persistence import IntegrityError

    from matome.application import service as service_module
    from matome.engine import Engine

    engine = Engine.open(
        str(tmp_path / "m.sqlite") if kind == "sqlite" else ":memory:", hash_iterations=1
    )
    app = engine._store
    held: list[bool] = []
    real = app.record
    losses = service_module.ESCALATE_AFTER

    def record(*args: object, **kwargs: object) -> None:
        # Lose the race until the command holds the gate (a writer always got in first).
        held.append(app.gate.held())
        if not app.gate.held():
            raise IntegrityError("a concurrent writer got in first")
        real(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(app, "record", record)
    engine.register_provider(
        at="2025-01-10T10:00:00+09:00", provider="p1", name="P", contact="c", goods="information"
    )
    assert held == [False] * losses + [True]
