"""A log is applied once (docs/contract.md, "Contract 3: a log is applied once"; issue #15): N
``matome run`` processes of the same log started at once — N = 2, 3 and 5, on SQLite and PostgreSQL,
one line per transaction or a hundred, with and without ``--resume`` — and the same with one of them
SIGKILLed mid-run and the log then resumed: the store must equal one uninterrupted run's
(every event, bill, issued-bill digest, wrong-password count, view; ``verify`` green).

Before the position was claimed in the transaction that records a line, it was read at the
start of a run only: two runs of one log applied it twice (a bill of 600 yen instead of 300).
The harness is :mod:`tests.reliability.crash` (its generated log, fork server, snapshot and
comparison).
"""

from __future__ import annotations

import random
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import _pg_dsn, require_postgres
from tests.reliability.crash import (
    KILLED,
    ForkServer,
    Launcher,
    LogSpec,
    Proc,
    Reference,
    Stores,
    differences,
    follow,
    generate_log,
    reference,
    scratch_directory,
    snapshot,
    write_variant,
)

pytestmark = pytest.mark.system

#: ~120 commands over four months: three billing runs, lockouts, cancels, refunds, erasures.
SPEC = LogSpec(seed=15, lines=16, months=3, activity=24, skip_issue=0)
RACERS = [2, 3, 5]
#: ``--batch``: one line per transaction (standard input's default) or a file's default.
BATCHES = ["1", "100"]
EXIT_APPLIED_BEFORE = 2
#: ``matome.cli.EXIT_BUSY``: the store stayed locked past the timeout.
EXIT_BUSY = 5


@pytest.fixture(scope="module")
def launcher() -> Iterator[Launcher]:
    server = ForkServer()
    yield server
    server.close()


@pytest.fixture(scope="module")
def workdir() -> Iterator[Path]:
    with scratch_directory("matome-once-") as path:
        yield path


class Setup:
    """One store kind, the log, and its uninterrupted run (the reference)."""

    def __init__(self, stores: Stores, launcher: Launcher, workdir: Path) -> None:
        self.stores = stores
        self.launcher = launcher
        self.workdir = workdir
        path = workdir / f"once-{stores.kind}.jsonl"
        write_variant(path, generate_log(SPEC), "plain")
        self.ref: Reference = reference(launcher, stores, path, workdir)
        self.count = 0

    def start(self, db: str, *args: str) -> Proc:
        self.count += 1
        stem = self.workdir / f"once-{self.stores.kind}-{self.count:04d}"
        argv = ["--db", db, "run", str(self.ref.log_path), "--quiet", *args]
        return self.launcher.start(argv, stem.with_suffix(".out"), stem.with_suffix(".err"))


@pytest.fixture(
    scope="module", params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)]
)
def setup(request: pytest.FixtureRequest, launcher: Launcher, workdir: Path) -> Iterator[Setup]:
    if request.param == "postgres":
        require_postgres()
        stores = Stores("postgres", workdir, _pg_dsn())
    else:
        stores = Stores("sqlite", workdir)
    try:
        yield Setup(stores, launcher, workdir)
    finally:
        stores.close()


def _race(setup: Setup, db: str, argvs: list[list[str]], kill: float | None = None) -> list[int]:
    """Start one ``matome run`` per ``argvs`` at once; SIGKILL the first ``kill`` seconds
    after its start (if given); the exit codes."""
    procs = [setup.start(db, *argv) for argv in argvs]
    codes: list[int] = [0] * len(procs)

    def watch(index: int) -> None:
        kill_at = None
        if index == 0 and kill is not None:
            kill_at = lambda _output, started: started + kill  # noqa: E731 - one use
        codes[index] = follow(procs[index], kill_at)[0]

    threads = [threading.Thread(target=watch, args=(i,)) for i in range(len(procs))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    for proc, code in zip(procs, codes, strict=True):
        err = proc.stderr.read_text(encoding="utf-8", errors="replace")
        if code == EXIT_APPLIED_BEFORE:
            # A plain run that started after another had recorded the log's first lines.
            assert "--resume" in err, err
        elif code == EXIT_BUSY and kill is not None:
            # SQLite: a writer SIGKILLed inside its transaction can leave the lock held a
            # moment (the crash harness restarts such a run too); the --resume after the
            # race completes the log, which is what is compared.
            assert "busy" in err, err
        else:
            assert code in (0, KILLED), f"exit {code}:\n{err}"
    return codes


def _compare(setup: Setup, db: str) -> None:
    """The store equals the uninterrupted run's: nothing lost, nothing applied twice."""
    got = snapshot(db, setup.ref.log)
    found = differences(setup.ref.snapshot, got)
    assert not found, "\n".join(map(str, found))
    assert len(got.events) == len(setup.ref.snapshot.events)
    assert got.bills == setup.ref.snapshot.bills


@pytest.mark.parametrize("batch", BATCHES)
@pytest.mark.parametrize("racers", RACERS)
def test_racing_runs_of_one_log_apply_each_line_once(setup: Setup, racers: int, batch: str) -> None:
    """N runs at once, half with ``--resume``: every line applied exactly once."""
    db = setup.stores.new()
    argvs = [["--batch", batch, *(["--resume"] if i % 2 else [])] for i in range(racers)]
    codes = _race(setup, db, argvs)
    assert 0 in codes
    _compare(setup, db)


@pytest.mark.parametrize("batch", BATCHES)
@pytest.mark.parametrize("racers", RACERS)
def test_racing_runs_with_one_killed_then_resumed_apply_each_line_once(
    setup: Setup, racers: int, batch: str
) -> None:
    """N runs at once with ``--resume``, one SIGKILLed at a random moment of the run; then
    ``--resume`` once more: every line applied exactly once."""
    rng = random.Random(f"{setup.stores.kind}-{racers}-{batch}")
    db = setup.stores.new()
    # Within the first half of one uninterrupted run: the racers together take longer.
    kill = rng.uniform(0.02, 0.5) * setup.ref.duration
    codes = _race(setup, db, [["--batch", batch, "--resume"]] * racers, kill=kill)
    assert codes[0] == KILLED, "the run was not killed mid-run: nothing proved about kills"
    assert setup.start(db, "--resume").wait() == 0
    _compare(setup, db)
