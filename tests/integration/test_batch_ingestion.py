"""Batched ingestion (``matome run --batch N``): many lines of a log recorded in one
transaction, decided exactly as one line at a time.

The promise: for any log and any batch size, the result of every line, the events stored,
the documents and the hash chains are those of running the log one command at a time; a
writer that changes what a batch read makes the batch be decided again one at a time; a
store failure keeps nothing of the batch, and ``--resume`` finishes the log.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from matome import cli
from matome.application import service as service_module
from matome.credentials import TESTING
from matome.engine import Engine
from matome.errors import LineRegulated, UnknownLine
from matome.generate import generate_log
from matome.interchange import apply_lines, log_lines
from matome.wire import dumps, to_json


def _write_log(path: Path, commands: list[dict[str, Any]]) -> Path:
    path.write_text(
        "".join(json.dumps(c, ensure_ascii=False) + "\n" for c in commands), encoding="utf-8"
    )
    return path


def _run(db: str, log: Path, batch: int, capsys: pytest.CaptureFixture[str]) -> list[Any]:
    assert cli.main(["run", str(log), "--db", db, "--batch", str(batch), "--quiet"]) == 0
    return [json.loads(x) for x in capsys.readouterr().out.splitlines()]


def _comparable(value: Any) -> Any:
    """A stored state without what differs between two runs of one log: recorded times,
    salted hashes, and digests over the hash chain (which covers the recorded times);
    personal values keep their reference."""
    if isinstance(value, dict):
        if "personal" in value:
            return {"personal": value["personal"]}
        return {
            k: _comparable(v)
            for k, v in value.items()
            if k not in ("timestamp", "secrets", "events_digest") and "hash" not in k
        }
    if isinstance(value, list):
        return [_comparable(v) for v in value]
    return value


def _history(db: str) -> list[tuple[str, str, int, Any]]:
    engine = Engine.open(db, kdf=TESTING, create=False)
    try:
        mapper = engine.internals.mapper
        return [
            (
                n.topic,
                str(n.originator_id),
                n.originator_version,
                _comparable(
                    mapper.stored_state(n)  # type: ignore[attr-defined]  # matome's EventMapper
                ),
            )
            for n in engine.internals.recorder.select_notifications(start=1, limit=10**9)
        ]
    finally:
        engine.close()


def _documents(db: str, lines: list[str], months: list[str]) -> list[Any]:
    engine = Engine.open(db, kdf=TESTING, create=False)
    try:
        docs: list[Any] = [engine.verify().ok]
        for month in months:
            docs.append(dumps(to_json(engine.provider_totals(month))))
            for line in lines:
                try:
                    bill = engine.bill(line, month)
                except UnknownLine:  # its open_line was refused (in both runs)
                    docs.append((line, month, None))
                    continue
                docs.append((line, month, bill.subtotal.amount, len(bill.charges)))
        return docs
    finally:
        engine.close()


def _check_same(
    tmp_path: Path,
    db_one: str,
    db_many: str,
    commands: list[dict[str, Any]],
    batch: int,
    capsys: pytest.CaptureFixture[str],
) -> None:
    log = _write_log(tmp_path / "log.jsonl", commands)
    one = _run(db_one, log, 1, capsys)
    many = _run(db_many, log, batch, capsys)
    assert many == one
    assert _history(db_many) == _history(db_one)
    lines = sorted({c["customer_id"] for c in commands if c["command"] == "open_line"})
    months = sorted({c["month"] for c in commands if c["command"] == "issue_bills"})
    assert _documents(db_many, lines[:40], months) == _documents(db_one, lines[:40], months)


@pytest.mark.parametrize("batch", [2, 7, 100])
def test_a_batched_run_decides_and_records_exactly_as_one_line_at_a_time(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], cheap_hashing: None, batch: int
) -> None:
    """Every kind of command of the generated mix (refusals, wrong passwords, keys, refunds
    by reference, line changes, billing runs in the middle of the log)."""
    commands = list(generate_log(60, 3, seed=batch))
    _check_same(
        tmp_path,
        str(tmp_path / "one.sqlite"),
        str(tmp_path / "many.sqlite"),
        commands,
        batch,
        capsys,
    )


@pytest.mark.postgres
def test_a_batched_run_on_postgres_is_the_one_line_at_a_time_run(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], cheap_hashing: None, pg_url: str
) -> None:
    commands = list(generate_log(40, 3, seed=11))
    _check_same(tmp_path, str(tmp_path / "one.sqlite"), pg_url, commands, 50, capsys)


@settings(
    max_examples=8,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(seed=st.integers(0, 10**6), batch=st.integers(2, 40))
def test_any_log_and_any_batch_size_give_the_same_results(
    tmp_path_factory: pytest.TempPathFactory,
    capsys: pytest.CaptureFixture[str],
    cheap_hashing: None,
    seed: int,
    batch: int,
) -> None:
    tmp = tmp_path_factory.mktemp("batch")
    commands = list(generate_log(15, 2, seed=seed, keys=seed % 2 == 0))
    # Repeat a stretch of the log: its keyed lines are answered again inside one batch.
    commands += commands[len(commands) // 2 : len(commands) // 2 + 30]
    log = _write_log(tmp / "log.jsonl", commands)
    one = _run(str(tmp / "one.sqlite"), log, 1, capsys)
    many = _run(str(tmp / "many.sqlite"), log, batch, capsys)
    assert many == one
    assert _history(str(tmp / "many.sqlite")) == _history(str(tmp / "one.sqlite"))


def _world() -> list[dict[str, Any]]:
    at = "2024-03-01T10:00:00+09:00"
    return [
        {
            "command": "register_provider",
            "at": at,
            "provider": "A",
            "name": "A",
            "contact": "0120",
            "goods": "information",
        },
        {
            "command": "list_service",
            "at": at,
            "provider": "A",
            "service": "item",
            "name": "item",
            "pricing": "per_purchase",
            "price": 100,
        },
        {
            "command": "open_line",
            "at": at,
            "customer_id": "CAF0000000001",
            "operator": "west",
            "kind": "hikari_next",
            "access_key": "Key12345",
            "line_limit": 10000,
            "billing": {"method": "customer_number", "number": "0012345678"},
        },
        {
            "command": "register_passport",
            "at": at,
            "customer_id": "CAF0000000001",
            "access_key": "Key12345",
            "passport_id": "taro.1",
            "password": "Pass1234",
            "email": "t@example.jp",
            "applicant": {"name": "T", "phone": "06-1234-5678", "contract_holder": True},
            "limit": 5000,
            "line_auth": False,
        },
    ]


def _purchase(minute: int) -> dict[str, Any]:
    return {
        "command": "purchase",
        "at": f"2024-03-02T10:{minute:02d}:00+09:00",
        "passport_id": "taro.1",
        "password": "Pass1234",
        "provider": "A",
        "service": "item",
    }


def test_a_writer_that_changes_what_a_batch_read_makes_it_decided_again_one_at_a_time(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The line is regulated by another engine after the batch decided its purchases and
    before it recorded them: the batch is not kept, and decided again its purchases are
    refused (§5) — as they would be one at a time."""
    db = str(tmp_path / "m.sqlite")
    engine = Engine.open(db, kdf=TESTING)
    other = Engine.open(db, kdf=TESTING)
    log = _write_log(tmp_path / "log.jsonl", [*_world(), *(_purchase(m) for m in range(5))])
    lines = list(log_lines(log.open("rb")))
    apply_lines(engine, lines[:4])
    real = service_module.CommandService._commit
    fired: list[bool] = []

    def commit(self: Any, batch: Any, position: Any) -> None:
        if not fired:
            fired.append(True)
            other.regulate_line(at="2024-03-02T09:00:00+09:00", customer_id="CAF0000000001")
        real(self, batch, position)

    monkeypatch.setattr(service_module.CommandService, "_commit", commit)
    results = apply_lines(engine, lines[4:])
    assert fired
    assert [r["error"]["code"] for r in results] == [LineRegulated.code] * 5
    assert (
        engine.internals.recorder.max_notification_id()
        == other.internals.recorder.max_notification_id()
    )
    engine.close()
    other.close()


def test_a_store_failure_keeps_nothing_of_the_batch_and_resume_finishes_the_log(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    cheap_hashing: None,
) -> None:
    commands = list(generate_log(30, 2, seed=5))
    log = _write_log(tmp_path / "log.jsonl", commands)
    clean = _run(str(tmp_path / "clean.sqlite"), log, 1, capsys)
    db = str(tmp_path / "m.sqlite")
    real = service_module.CommandService._commit
    calls = [0]

    def failing(self: Any, batch: Any, position: Any) -> None:
        calls[0] += 1
        if calls[0] == 3:
            raise OSError(28, "No space left on device")
        real(self, batch, position)

    with monkeypatch.context() as mp:
        mp.setattr(service_module.CommandService, "_commit", failing)
        code = cli.main(["run", str(log), "--db", db, "--batch", "25", "--quiet"])
    assert code == cli.EXIT_STORE_UNAVAILABLE
    first = [json.loads(x) for x in capsys.readouterr().out.splitlines()]
    assert first == clean[: len(first)]
    assert cli.main(["run", str(log), "--db", db, "--resume", "--batch", "25", "--quiet"]) == 0
    rest = [json.loads(x) for x in capsys.readouterr().out.splitlines()]
    # The batch that failed is applied by the resumed run, from its first line.
    assert {r["line"] for r in first} | {r["line"] for r in rest} == {r["line"] for r in clean}
    assert _history(db) == _history(str(tmp_path / "clean.sqlite"))


def test_a_billing_run_in_a_batched_log_comes_after_the_lines_before_it_are_printed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, cheap_hashing: None
) -> None:
    """``issue_bills`` runs in a transaction of its own: the lines before it are recorded and
    their results printed before the billing run starts (a printed result is a recorded one,
    and a crash or store failure during a billing run minutes long names its line)."""
    import io

    from matome import commands as cmd

    commands = list(generate_log(20, 3, seed=7))
    log = _write_log(tmp_path / "log.jsonl", commands)
    issue_lines = [i for i, c in enumerate(commands, 1) if c["command"] == "issue_bills"]
    assert len(issue_lines) >= 2
    out = io.StringIO()
    seen: list[tuple[int, int]] = []
    real = Engine.execute

    def watching(self: Engine, command: Any, position: Any = None) -> Any:
        if isinstance(command, cmd.IssueBills):
            printed = [json.loads(x)["line"] for x in out.getvalue().splitlines()]
            seen.append((len(printed), max(printed, default=0)))
        return real(self, command, position)

    monkeypatch.setattr(Engine, "execute", watching)
    engine = Engine.open(str(tmp_path / "s.sqlite"), kdf=TESTING)
    try:
        with log.open("rb") as stream:
            cli.run_log(engine, stream, out, batch=100)
    finally:
        engine.close()
    # Every line before each issue_bills had been printed when its billing run started.
    assert seen == [(n - 1, n - 1) for n in issue_lines]
