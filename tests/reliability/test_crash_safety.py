"""Crash safety as a property: ``matome run``, ``matome rebuild`` and the billing run are killed
with SIGKILL at random moments and restarted; the store must end up as one uninterrupted run
leaves it — the same events, bills, issued-bill digests and wrong-password counts, views equal
to a clean rebuild, and ``verify`` green.

The harness is :mod:`tests.reliability.crash`; ``bench/soak.py`` runs it longer.  Each
scenario here kills at least :data:`KILLS` times on SQLite and on PostgreSQL, with a small log
(the same generator, smaller): the default run stays well under two minutes.  The ``slow``
variants use the full-size log (over 200 bills per billing run) and a fresh interpreter per
start.
"""

from __future__ import annotations

import json
import random
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from matome import cli
from matome.engine import Engine
from matome.events.bill import BillIssued
from tests.conftest import TEST_ITERATIONS, _pg_dsn, require_postgres
from tests.reliability.crash import (
    DOUBLED,
    ForkServer,
    Launcher,
    LogSpec,
    Outcome,
    Reference,
    SpawnLauncher,
    Stores,
    crash_billing,
    crash_rebuild,
    crash_run,
    differences,
    follow,
    generate_log,
    reference,
    scratch_directory,
    snapshot,
    write_variant,
)

#: End to end and seconds long: run by CI (``pytest -m 'system and not slow'``), not by a
#: plain ``pytest``.
pytestmark = pytest.mark.system

#: Kills per scenario and store.
KILLS = 20
#: The CI log: ~190 commands, three billing runs of ~40 bills (one closing two months).
SMALL = LogSpec(seed=7, lines=40, months=4, activity=20, skip_issue=2)
#: The full-size log: ~900 commands, every billing run over 200 bills.
FULL = LogSpec(seed=11, lines=240, months=4, activity=40, skip_issue=2)

STORES = ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)]


@pytest.fixture(scope="module")
def launcher() -> Iterator[Launcher]:
    server = ForkServer()
    yield server
    server.close()


@pytest.fixture(scope="module")
def workdir() -> Iterator[Path]:
    with scratch_directory() as path:
        yield path


def _stores(kind: str, directory: Path) -> Stores:
    if kind == "postgres":
        require_postgres()
        return Stores(kind, directory, _pg_dsn())
    return Stores(kind, directory)


@dataclass
class Logs:
    """One generated log in its variants, and the uninterrupted run of each on one store."""

    stores: Stores
    launcher: Launcher
    workdir: Path
    spec: LogSpec
    commands: list[dict[str, object]] = field(default_factory=list)
    references: dict[str, Reference] = field(default_factory=dict)

    def reference(self, variant: str) -> Reference:
        """``keys`` (every command keyed), ``plain`` (none), ``again`` (all but issue_bills)."""
        if variant not in self.references:
            if not self.commands:
                self.commands = generate_log(self.spec)
            path = self.workdir / f"log-{self.spec.seed}-{variant}-{self.stores.kind}.jsonl"
            write_variant(path, self.commands, variant)
            self.references[variant] = reference(self.launcher, self.stores, path, self.workdir)
        return self.references[variant]


@pytest.fixture(scope="module", params=STORES)
def small(request: pytest.FixtureRequest, launcher: Launcher, workdir: Path) -> Iterator[Logs]:
    stores = _stores(request.param, workdir)
    try:
        yield Logs(stores, launcher, workdir, SMALL)
    finally:
        stores.close()


def check(out: Outcome, kills: int = KILLS) -> None:
    """The scenario killed enough, and the stores equal the uninterrupted run's."""
    # The kill counts, for the record (shown with ``pytest -s``).
    print(
        f"\n{out.scenario} on {out.store}: {out.kills} kills, {out.starts} starts, "
        f"{out.trajectories} stores compared, {len(out.problems)} problems"
    )
    assert out.kills >= kills, f"{out.scenario}: only {out.kills} kills"
    assert not out.problems, f"{out.scenario} on {out.store}:\n" + "\n".join(map(str, out.problems))


# ---------------------------------------------------------------------------------------------
# matome run, killed and restarted


def test_run_killed_and_rerun_with_keys(small: Logs, workdir: Path) -> None:
    """Every command keyed, resumed after each kill: each command applied once, wrong
    passwords counted once, the keys bound before a kill kept (contract 3: a keyed log is
    resumed, not run again from the top)."""
    ref = small.reference("keys")
    out = crash_run(
        small.launcher, small.stores, ref, workdir, keyed=True, kills=KILLS, rng=random.Random(1)
    )
    check(out)


def test_run_killed_and_resumed_without_keys(small: Logs, workdir: Path) -> None:
    """No keys: ``matome run --resume`` continues after the last line the store applied."""
    ref = small.reference("plain")
    out = crash_run(
        small.launcher, small.stores, ref, workdir, keyed=False, kills=KILLS, rng=random.Random(2)
    )
    check(out)


@pytest.mark.parametrize("small", ["sqlite"], indirect=True)
def test_a_rerun_without_keys_or_resume_is_seen_to_double(small: Logs, workdir: Path) -> None:
    """The comparison has teeth: a log without keys cut short (here: its last month's bills
    not issued yet) and then run again from the top with ``--again`` (not ``--resume``) applies some
    commands twice — the last command on a stream is not earlier than the stream, so the time
    order does not refuse it — and the harness says so."""
    ref = small.reference("plain")
    lines = ref.log_path.read_text(encoding="utf-8").splitlines(keepends=True)
    last_issue = max(n for n, c in ref.log.items() if c["command"] == "issue_bills")
    cut = workdir / "cut.jsonl"
    cut.write_text("".join(lines[: last_issue - 1]), encoding="utf-8")
    db = small.stores.new()
    for argv in (["run", str(cut)], ["run", str(ref.log_path), "--again"]):
        # --again: a plain rerun of a log whose start was applied exits 2 (test_log_once.py).
        proc = small.launcher.start(
            ["--db", db, *argv, "--quiet"], workdir / "twice.out", workdir / "twice.err"
        )
        assert follow(proc)[0] == 0
    found = differences(ref.snapshot, snapshot(db, ref.log))
    assert any(p.kind in DOUBLED for p in found), found


# ---------------------------------------------------------------------------------------------
# The billing run, killed and completed


@pytest.mark.parametrize(
    ("variant", "mode"),
    [
        ("keys", "keys"),
        ("plain", "resume"),
        pytest.param("again", "again", marks=pytest.mark.slow),
    ],
)
def test_billing_run_killed_and_completed(
    small: Logs, workdir: Path, variant: str, mode: str
) -> None:
    """Killed mid-billing, the run is completed by the keyed ``issue_bills`` answered again,
    by ``--resume``, or by issuing the month again: exactly the bills of an uninterrupted run,
    never two for one line and month."""
    ref = small.reference(variant)
    out = crash_billing(
        small.launcher, small.stores, ref, workdir, mode=mode, kills=KILLS, rng=random.Random(3)
    )
    check(out)
    # Some kills left a month closed with its bills not (all) issued: the case to complete.
    assert out.states["closed, no bill issued"] + out.states["closed, some bills issued"] > 0


# ---------------------------------------------------------------------------------------------
# matome rebuild, killed


def test_rebuild_killed_then_rebuilt_or_caught_up(small: Logs, workdir: Path) -> None:
    """A rebuild killed anywhere, then run again or followed by a query that catches the views
    up, gives the views of a clean rebuild (rows and indexes)."""
    ref = small.reference("plain")
    out = crash_rebuild(
        small.launcher, small.stores, ref, workdir, kills=KILLS, rng=random.Random(4)
    )
    check(out)


# ---------------------------------------------------------------------------------------------
# A billing run completed by --resume, deterministically


def test_resume_issues_late_bills_at_the_business_time_of_the_issue(tmp_path: Path) -> None:
    """A billing run interrupted after ``issue_bills`` closed the month and completed by
    ``matome run --resume`` issues the bills an uninterrupted run issues — with the same
    business time, so that an audit as of a time after the issue finds them issued.

    (``--resume`` once completed the run with the wall clock as business time: ``BillIssued``
    carried the day of the restart, and an audit ``--as-of`` the day after the issue said the
    bill was not issued.)  Deterministic: the billing run is made to stop instead of being
    killed, which leaves the store as a kill there does.
    """
    log = [
        _provider(),
        _service(),
        _open_line(),
        _passport(),
        _purchase(),
        {"command": "issue_bills", "at": "2024-02-01T09:00:00+09:00", "month": "2024-01"},
    ]
    path = tmp_path / "billing.jsonl"
    path.write_text("".join(json.dumps(c) + "\n" for c in log), encoding="utf-8")
    clean, crashed = str(tmp_path / "clean.sqlite"), str(tmp_path / "crashed.sqlite")
    with pytest.MonkeyPatch.context() as mp:
        real_open = Engine.open
        mp.setattr(
            Engine,
            "open",
            staticmethod(lambda db=None, **kw: real_open(db, **{"hash_iterations": 1, **kw})),
        )
        assert cli.main(["--db", clean, "run", str(path), "--quiet"]) == 0

        def killed(*_: object, **__: object) -> int:
            raise KeyboardInterrupt("the billing run was killed")

        with pytest.MonkeyPatch.context() as crash:
            crash.setattr(Engine, "_run_billing", killed)
            with pytest.raises(KeyboardInterrupt):
                cli.main(["--db", crashed, "run", str(path), "--quiet"])
        assert _bills_issued(crashed) == []
        assert cli.main(["--db", crashed, "run", str(path), "--resume", "--quiet"]) == 0
    assert (
        _bills_issued(crashed)
        == _bills_issued(clean)
        == [("2024-02-01T09:00:00+09:00", _bills_issued(clean)[0][1])]
    )
    as_of = "2024-03-01T00:00:00+09:00"
    assert _issued_as_of(clean, as_of)
    assert _issued_as_of(crashed, as_of)


def _issued_as_of(db: str, as_of: str) -> bool:
    engine = Engine.open(db, hash_iterations=TEST_ITERATIONS, create=False)
    try:
        return engine.audit("CAF0000000001", "2024-01", as_of=as_of).issued is not None
    finally:
        engine.close()


def _bills_issued(db: str) -> list[tuple[str, str]]:
    engine = Engine.open(db, hash_iterations=TEST_ITERATIONS, create=False)
    try:
        out = []
        for n in engine.internals.recorder.select_notifications(start=1, limit=1000):
            event = engine.internals.mapper.to_domain_event(n)
            if isinstance(event, BillIssued):
                out.append((event.at.isoformat(), event.digest))
        return out
    finally:
        engine.close()


def _provider() -> dict[str, object]:
    return {
        "command": "register_provider",
        "at": "2024-01-04T09:00:00+09:00",
        "provider": "A",
        "name": "A Co.",
        "contact": "0120-000-111",
        "goods": "information",
    }


def _service() -> dict[str, object]:
    return {
        "command": "list_service",
        "at": "2024-01-04T09:01:00+09:00",
        "provider": "A",
        "service": "back",
        "name": "back",
        "pricing": "monthly",
        "price": 525,
    }


def _open_line() -> dict[str, object]:
    return {
        "command": "open_line",
        "at": "2024-01-05T10:00:00+09:00",
        "customer_id": "CAF0000000001",
        "operator": "west",
        "kind": "hikari_next",
        "access_key": "Ak3y0001",
        "line_limit": 10000,
        "billing": {"method": "customer_number", "number": "0012345678"},
    }


def _passport() -> dict[str, object]:
    return {
        "command": "register_passport",
        "at": "2024-01-06T11:00:00+09:00",
        "customer_id": "CAF0000000001",
        "access_key": "Ak3y0001",
        "passport_id": "yamada.taro",
        "password": "Pass1234",
        "email": "taro@example.jp",
        "applicant": {"name": "Yamada", "phone": "06-1234-5678", "contract_holder": True},
        "limit": 5000,
        "line_auth": False,
    }


def _purchase() -> dict[str, object]:
    return {
        "command": "purchase",
        "at": "2024-01-15T20:00:00+09:00",
        "passport_id": "yamada.taro",
        "password": "Pass1234",
        "provider": "A",
        "service": "back",
    }


# ---------------------------------------------------------------------------------------------
# The generator and the launchers


def test_the_generated_log_is_realistic() -> None:
    """Seeded (the same log twice), every kind of command, refusals a real history has, and
    at least ``lines`` bills in each billing run of the full-size log."""
    log = generate_log(SMALL)
    assert log == generate_log(SMALL)
    kinds = {c["command"] for c in log}
    assert kinds >= {
        "register_provider",
        "list_service",
        "set_fee",
        "open_line",
        "register_passport",
        "purchase",
        "cancel",
        "refund",
        "issue_bills",
    }
    assert sum(c["command"] == "issue_bills" for c in log) == 3
    wrong = [c for c in log if c.get("password") == "Wrong000"]
    assert len(wrong) >= 3
    assert any("quantity" in c for c in log)


@pytest.mark.parametrize(
    "store", ["sqlite", pytest.param("postgres", marks=[pytest.mark.postgres, pytest.mark.slow])]
)
def test_a_fresh_interpreter_killed_mid_run_resumes(store: str, workdir: Path) -> None:
    """The same with ``python -c`` started afresh each time (no fork server): a few kills."""
    launcher = SpawnLauncher()
    stores = _stores(store, workdir)
    try:
        spec = LogSpec(seed=3, lines=10, months=2, activity=10, skip_issue=0)
        path = write_variant(workdir / f"spawn-{store}.jsonl", generate_log(spec), "plain")
        ref = reference(launcher, stores, path, workdir)
        out = crash_run(
            launcher,
            stores,
            ref,
            workdir,
            keyed=False,
            kills=3,
            rng=random.Random(5),
            per_trajectory=3,
        )
        check(out, kills=3)
    finally:
        stores.close()


# ---------------------------------------------------------------------------------------------
# Full size (slow): over 200 bills per billing run, SQLite and PostgreSQL


@pytest.fixture(scope="module", params=STORES)
def full(request: pytest.FixtureRequest, launcher: Launcher, workdir: Path) -> Iterator[Logs]:
    stores = _stores(request.param, workdir)
    try:
        yield Logs(stores, launcher, workdir, FULL)
    finally:
        stores.close()


@pytest.mark.slow
@pytest.mark.parametrize(("variant", "keyed"), [("keys", True), ("plain", False)])
def test_full_size_run_killed(full: Logs, workdir: Path, variant: str, keyed: bool) -> None:
    ref = full.reference(variant)
    out = crash_run(
        full.launcher, full.stores, ref, workdir, keyed=keyed, kills=KILLS, rng=random.Random(6)
    )
    check(out)


@pytest.mark.slow
@pytest.mark.parametrize(
    ("variant", "mode"), [("keys", "keys"), ("plain", "resume"), ("again", "again")]
)
def test_full_size_billing_run_killed(full: Logs, workdir: Path, variant: str, mode: str) -> None:
    ref = full.reference(variant)
    assert min(_bills_per_month(ref).values()) >= 200
    out = crash_billing(
        full.launcher, full.stores, ref, workdir, mode=mode, kills=KILLS, rng=random.Random(7)
    )
    check(out)


@pytest.mark.slow
def test_full_size_rebuild_killed(full: Logs, workdir: Path) -> None:
    ref = full.reference("plain")
    out = crash_rebuild(full.launcher, full.stores, ref, workdir, kills=KILLS, rng=random.Random(8))
    check(out)


def _bills_per_month(ref: Reference) -> dict[str, int]:
    out: dict[str, int] = {}
    for _, month in ref.snapshot.issued:
        out[month] = out.get(month, 0) + 1
    return out
