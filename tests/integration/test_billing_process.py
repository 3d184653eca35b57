"""The billing run as a process that follows ``MonthsClosed`` (rules §7; issue #17).

The process issues the bills of the months each ``MonthsClosed`` closed and records, with the
``BillingRunCompleted`` that says so, its tracking position (the notification id of that
``MonthsClosed``).  A run killed at any bill resumes from its position — on the next
``issue_bills``, on ``complete_billing``, when an engine opens the store to write, or when
``matome run`` starts — and ends with exactly the bills of an uninterrupted run, each once.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest

from matome import billing, cli
from matome.application.eventstore import EventStoreApplication, LogPosition
from matome.billing import TRACKING_ID, BillingProcess
from matome.commands import parse_command
from matome.demo import DEMO_LOG
from matome.engine import Engine
from matome.errors import MatomeError
from matome.events.base import DomainEvent
from matome.events.bill import BillIssued
from matome.events.ledger import BillingRunCompleted, MonthsClosed
from matome.values import YearMonth
from tests.conftest import TEST_ITERATIONS

#: The demo closes January and February: two bills each.
DEMO_BILLS = 4


class _Killed(BaseException):
    """A kill: nothing in matome catches it (like SIGKILL, it ends the run where it is)."""


def _open(db: str, *, create: bool = True) -> Engine:
    return Engine.open(db, hash_iterations=TEST_ITERATIONS, create=create)


def _apply(engine: Engine, log: Sequence[dict[str, Any]]) -> None:
    for entry in log:
        with contextlib.suppress(MatomeError):  # the demo's refusals are part of its story
            engine.execute(parse_command(entry))


def _events(engine: Engine) -> list[tuple[str, DomainEvent]]:
    recorder = engine.internals.recorder
    mapper = engine.internals.mapper
    return [
        (n.topic, mapper.to_domain_event(n))  # type: ignore[misc]
        for n in recorder.select_notifications(start=1, limit=100_000)
    ]


def _billing_of(db: str) -> dict[str, Any]:
    """What the billing process left in a store: every bill issued (stream → business time
    and digest, and how many times), the months completed, and the tracking position."""
    engine = _open(db, create=False)
    try:
        events = _events(engine)
        bills = [e for _, e in events if isinstance(e, BillIssued)]
        closings = [
            n.id
            for n in engine.internals.recorder.select_notifications(start=1, limit=100_000)
            if n.topic == MonthsClosed.TOPIC
        ]
        return {
            "bills": sorted((str(b.originator_id), b.at.isoformat(), b.digest) for b in bills),
            "once": len(bills) == len({b.originator_id for b in bills}),
            "completed": [str(e.through) for _, e in events if isinstance(e, BillingRunCompleted)],
            "tracking": engine.log_position(TRACKING_ID),
            "last_closing": closings[-1] if closings else None,
        }
    finally:
        engine.close()


class Kill:
    """``after(n)``: the write that would take the bills issued from now past ``n`` is killed
    (bills are recorded one per transaction, so a month is cut anywhere); ``off()``: none."""

    def __init__(self) -> None:
        self.limit: int | None = None
        self.issued = 0

    def after(self, bills: int) -> None:
        self.limit, self.issued = bills, 0

    def off(self) -> None:
        self.limit = None


@pytest.fixture
def kill(monkeypatch: pytest.MonkeyPatch) -> Kill:
    """Kills the billing process after a number of bills (see :class:`Kill`)."""
    switch = Kill()
    real = EventStoreApplication.record

    def record(
        self: EventStoreApplication,
        events: Sequence[DomainEvent],
        read_versions: Any = None,
        position: LogPosition | None = None,
    ) -> None:
        count = sum(isinstance(e, BillIssued) for e in events)
        if count and switch.limit is not None and switch.issued + count > switch.limit:
            raise _Killed(f"killed after {switch.issued} bills")
        real(self, events, read_versions, position)
        switch.issued += count

    monkeypatch.setattr(EventStoreApplication, "record", record)
    monkeypatch.setattr(billing, "_CHUNK", 1)
    return switch


def _uninterrupted(tmp_path: Path) -> dict[str, Any]:
    db = str(tmp_path / "whole.sqlite")
    engine = _open(db)
    _apply(engine, DEMO_LOG)
    engine.close()
    return _billing_of(db)


@pytest.mark.parametrize("bills", range(DEMO_BILLS))
def test_a_billing_run_killed_at_any_bill_resumes_from_its_position_to_the_same_bills(
    tmp_path: Path, kill: Kill, bills: int
) -> None:
    """§7: killed after any number of bills, the process is taken up again by the next
    ``complete_billing`` (``matome run`` starts with it); it resumes at the ``MonthsClosed``
    it had not completed, skips the bills already issued and ends as an uninterrupted run:
    same bills, same business times, each once, and its position at the last
    ``MonthsClosed``."""
    whole = _uninterrupted(tmp_path)
    db = str(tmp_path / "killed.sqlite")
    engine = _open(db)
    kill.after(bills)
    with pytest.raises(_Killed):
        _apply(engine, DEMO_LOG)
    engine.close()  # the process died here
    kill.off()
    stopped = _billing_of(db)
    assert len(stopped["bills"]) == bills
    assert stopped["tracking"] is None or stopped["tracking"].line < whole["last_closing"]
    done = next(i for i, e in enumerate(DEMO_LOG) if e["command"] == "issue_bills")
    if bills >= 2:  # January's bills were issued and completed: the kill came in February
        done = max(i for i, e in enumerate(DEMO_LOG) if e["command"] == "issue_bills")
    restarted = _open(db)
    restarted.complete_billing()  # what matome run does first
    _apply(restarted, DEMO_LOG[done + 1 :])
    restarted.close()
    resumed = _billing_of(db)
    assert resumed == whole
    assert resumed["once"]
    assert resumed["tracking"].line == whole["last_closing"]


def test_the_process_reads_the_log_on_from_its_tracking_position(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Closing March reads the ``MonthsClosed`` after the one that closed February — not the
    whole log — and moves the position to March's."""
    db = str(tmp_path / "demo.sqlite")
    engine = _open(db)
    _apply(engine, DEMO_LOG)
    before = engine.log_position(TRACKING_ID)
    assert before is not None
    starts: list[int | None] = []
    recorder = engine.internals.recorder
    real = recorder.select_notifications

    def select(start: int | None, limit: int, *args: Any, **kwargs: Any) -> Any:
        if kwargs.get("topics") == [MonthsClosed.TOPIC]:
            starts.append(start)
        return real(start, limit, *args, **kwargs)

    monkeypatch.setattr(recorder, "select_notifications", select)
    engine.issue_bills(at="2024-04-01T09:00:00+09:00", month="2024-03")
    engine.close()
    assert starts == [before.line + 1]
    after = _billing_of(db)
    assert after["tracking"].line == after["last_closing"] > before.line
    assert after["completed"][-1] == str(YearMonth(2024, 3))


def test_opening_a_store_leaves_a_cut_short_billing_run_to_the_next_writer(
    tmp_path: Path, kill: Kill
) -> None:
    """Opening a store writes nothing (an old store opened keeps its events as they are): the
    bills a killed run left unissued are issued by the next ``issue_bills``,
    ``complete_billing`` or ``matome run``."""
    db = str(tmp_path / "killed.sqlite")
    engine = _open(db)
    kill.after(0)
    with pytest.raises(_Killed):
        _apply(engine, DEMO_LOG)
    engine.close()
    kill.off()
    _open(db, create=False).close()
    _open(db).close()
    assert _billing_of(db)["bills"] == []
    writer = _open(db)
    assert writer.complete_billing() == 2  # January's, the month closed so far
    writer.close()
    assert len(_billing_of(db)["bills"]) == 2


def _log(path: Path, entries: Sequence[dict[str, Any]]) -> str:
    path.write_text("".join(json.dumps(e, ensure_ascii=False) + "\n" for e in entries), "utf-8")
    return str(path)


def test_matome_run_resumed_after_a_crash_between_issue_bills_and_its_billing_run(
    tmp_path: Path, cheap_hashing: None
) -> None:
    """``issue_bills`` recorded, then the run killed before its billing process issued a bill:
    ``matome run --resume`` completes the process first — the bills at the business time of
    the ``issue_bills`` (the wall clock is never a business time), its tracking position where
    an uninterrupted run leaves it — and applies the rest of the log."""
    issue = next(i for i, e in enumerate(DEMO_LOG) if e["command"] == "issue_bills")
    log = _log(tmp_path / "demo.jsonl", DEMO_LOG[: issue + 3])  # on past January's closing
    whole = str(tmp_path / "whole.sqlite")
    crashed = str(tmp_path / "crashed.sqlite")
    assert cli.main(["--db", whole, "run", log, "--quiet"]) == 0

    def killed(*_: object, **__: object) -> int:
        raise _Killed("the billing run was killed")

    with pytest.MonkeyPatch.context() as crash:
        crash.setattr(BillingProcess, "run", killed)
        with pytest.raises(_Killed):
            cli.main(["--db", crashed, "run", log, "--quiet"])
    stopped = _billing_of(crashed)
    assert (stopped["bills"], stopped["tracking"]) == ([], None)
    assert stopped["last_closing"] is not None  # the issue_bills itself was recorded
    assert cli.main(["--db", crashed, "run", log, "--resume", "--quiet"]) == 0
    got, expected = _billing_of(crashed), _billing_of(whole)
    assert got == expected
    assert got["bills"] != []
    assert {at for _, at, _ in got["bills"]} == {DEMO_LOG[issue]["at"]}
    assert got["tracking"].line == got["last_closing"]
