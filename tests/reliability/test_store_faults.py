"""Faults of the store, through the ``matome`` command line in a separate process.

Each fault is injected for real: a full disk (a 300 KiB tmpfs), a file size limit
(``RLIMIT_FSIZE``, i.e. ``ulimit -f``), an immutable file or directory (``chattr +i``), a
missing directory, a file that is not a database, a PostgreSQL server that is not there, a
database or schema that does not exist.  Each case checks what the reliability issue promises:

* one line on stderr (or one ``{"error": ...}`` line on stdout with ``--json``) naming the
  store and the cause, and never a traceback;
* the documented exit code: 3 store not found, 4 store unavailable (docs: ``matome.cli``);
* no partial write: a run that stops at line N leaves exactly the events of lines 1..N-1,
  the same as a store that was only ever given those lines;
* a clean resume: once the fault is gone, ``matome run --resume`` applies the rest, and the
  store equals one that applied the whole log in one go.

The faults need root (``mount``, ``chattr``); without it those cases skip and say why.
``matome`` runs with one PBKDF2 round (the scheme is the same; the tests are faster).
"""

from __future__ import annotations

import contextlib
import json
import os
import resource
import shutil
import socket
import sqlite3
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest

from matome import cli
from tests.conftest import PG_URL, require_postgres

#: End to end and seconds long: run by CI (``pytest -m 'system and not slow'``), not by a
#: plain ``pytest``.
pytestmark = pytest.mark.system

#: ``python -c RUNNER ARGS...`` is the ``matome`` command with cheap password hashing.
RUNNER = """
import sys
from matome import cli
from matome.engine import Engine

real = Engine.open
def open_cheaply(db=None, **kwargs):
    kwargs.setdefault("hash_iterations", 1)
    return real(db, **kwargs)
Engine.open = staticmethod(open_cheaply)
sys.exit(cli.main(sys.argv[1:]))
"""

EXIT_STORE_NOT_FOUND = 3
EXIT_STORE_UNAVAILABLE = 4

LINE = "CAF0000000001"
AK = "Ak3y0001"
PW = "Pass1234"
#: The read commands, each with its arguments (none of them may create or change a store).
READS: tuple[tuple[str, ...], ...] = (
    ("bill", LINE, "2024-02"),
    ("statement", LINE, "2024-02"),
    ("providers", "2024-02"),
    ("settle", "2024-02"),
    ("contacts", LINE),
    ("continuity",),
    ("status", LINE),
    ("audit", LINE, "2024-02"),
    ("verify",),
)


# ---------------------------------------------------------------------------------------------
# The log


def _at(day: int, minute: int = 0) -> str:
    return f"2024-02-{day:02d}T10:{minute:02d}:00+09:00"


def world() -> list[dict[str, Any]]:
    jan = "2024-01-05T10:00:00+09:00"
    return [
        {
            "command": "register_provider",
            "at": jan,
            "provider": "A",
            "name": "A Co.",
            "contact": "0120-000-111",
            "goods": "information",
        },
        {
            "command": "list_service",
            "at": jan,
            "provider": "A",
            "service": "back",
            "name": "back service",
            "pricing": "monthly",
            "price": 525,
        },
        {
            "command": "list_service",
            "at": jan,
            "provider": "A",
            "service": "stamp",
            "name": "stamps",
            "pricing": "per_purchase",
            "price": 10,
        },
        {
            "command": "open_line",
            "at": jan,
            "customer_id": LINE,
            "operator": "west",
            "kind": "hikari_next",
            "access_key": AK,
            "line_limit": 10000,
            "billing": {"method": "customer_number", "number": "0012345678"},
        },
        {
            "command": "register_passport",
            "at": jan,
            "customer_id": LINE,
            "access_key": AK,
            "passport_id": "yamada.taro",
            "password": PW,
            "email": "taro@example.jp",
            "applicant": {"name": "Yamada", "phone": "06-1234-5678", "contract_holder": True},
            "limit": 5000,
            "line_auth": False,
        },
        {
            "command": "purchase",
            "at": "2024-01-15T20:00:00+09:00",
            "passport_id": "yamada.taro",
            "password": PW,
            "provider": "A",
            "service": "back",
        },
    ]


#: Lines of a log that outgrows a 300 KiB disk (or a 200 KB file) under ``matome run FILE``'s
#: default batches.
FILLING = 1200


def big_log(lines: int = 60) -> list[dict[str, Any]]:
    """The world, then providers with long names and, in the first 60 lines, now and then a
    purchase (every command is a transaction of several pages: a few dozen fill a 300 KiB
    disk one command per transaction; :data:`FILLING` do in batches)."""
    log = world()
    for i in range(lines):
        # In time order: three days of 20 commands, then a day per 60 (a valid February date).
        at = _at(1 + i // 20, i % 20) if i < 60 else _at(4 + (i - 60) // 60, (i - 60) % 60)
        if i % 10 == 9 and i < 60:
            log.append(
                {
                    "command": "purchase",
                    "at": at,
                    "passport_id": "yamada.taro",
                    "password": PW,
                    "provider": "A",
                    "service": "stamp",
                }
            )
        else:
            log.append(
                {
                    "command": "register_provider",
                    "at": at,
                    "provider": f"P{i:04d}",
                    "name": f"provider {i} " + "x" * 180,
                    "contact": "0120-000-222",
                    "goods": "information",
                }
            )
    return log


def write_log(path: Path, entries: Sequence[dict[str, Any]]) -> Path:
    path.write_text("".join(json.dumps(e, ensure_ascii=False) + "\n" for e in entries))
    return path


# ---------------------------------------------------------------------------------------------
# Running matome


class Ran:
    """What one ``matome`` command did: exit code, stdout, stderr, seconds."""

    def __init__(self, code: int, out: str, err: str, seconds: float) -> None:
        self.code = code
        self.out = out
        self.err = err
        self.seconds = seconds

    def __repr__(self) -> str:
        return f"exit {self.code} after {self.seconds:.1f}s\nstdout: {self.out}\nstderr: {self.err}"

    @property
    def results(self) -> list[dict[str, Any]]:
        return [json.loads(line) for line in self.out.splitlines() if line.strip()]


Matome = Callable[..., Ran]


@pytest.fixture
def matome(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, cheap_hashing: None
) -> Matome:
    """``matome ARGS...`` in this process (a fault of the store is one of the file system or
    the server, not of the process): an exception escaping it is what would have been a
    traceback.  The settings are the command's own: no ``MATOME_*`` variable is inherited."""
    for name in list(os.environ):
        if name.startswith("MATOME_"):
            monkeypatch.delenv(name)

    def run(*args: str, env: dict[str, str] | None = None, cwd: Path | None = None) -> Ran:
        with monkeypatch.context() as m:
            for name, value in (env or {}).items():
                m.setenv(name, value)
            if cwd is not None:
                m.chdir(cwd)
            capsys.readouterr()
            started = time.monotonic()
            try:
                code = cli.main(list(args))
            except SystemExit as e:
                code = e.code if isinstance(e.code, int) else 1
            except Exception as e:
                pytest.fail(f"matome {' '.join(args)} raised {e!r}: a traceback, not one line")
            out, err = capsys.readouterr()
        return Ran(code, out, err, time.monotonic() - started)

    return run


def matome_process(
    *args: str, preexec_fn: Callable[[], None] | None = None, timeout: float = 120
) -> Ran:
    """``matome ARGS...`` as a process of its own (for faults of the process, ulimit -f)."""
    environment = {k: v for k, v in os.environ.items() if not k.startswith("MATOME_")}
    started = time.monotonic()
    proc = subprocess.run(
        [sys.executable, "-c", RUNNER, *args],
        capture_output=True,
        text=True,
        env=environment,
        preexec_fn=preexec_fn,
        timeout=timeout,
        check=False,
    )
    return Ran(proc.returncode, proc.stdout, proc.stderr, time.monotonic() - started)


def one_failure(ran: Ran, code: int, *needles: str, json_output: bool = False) -> str:
    """``ran`` failed with exit ``code`` and said so in exactly one line (on stderr, or the
    contract's ``{"error": ...}`` on stdout with ``--json``) containing every needle; that
    line."""
    assert ran.code == code, ran
    assert "Traceback" not in ran.err, ran
    assert "Traceback" not in ran.out, ran
    if json_output:
        lines = [line for line in ran.out.splitlines() if line.strip()]
        assert len(lines) == 1, ran
        error = json.loads(lines[0])["error"]
        assert set(error) >= {"code", "message"}, ran
        line = f"{error['code']}: {error['message']}"
    else:
        # A resumed run says where it resumes; the failure is the one line after that.
        lines = [
            line
            for line in ran.err.splitlines()
            if line.strip() and not line.startswith("matome run: resuming ")
        ]
        assert len(lines) == 1, f"not one line:\n{ran}"
        line = lines[0]
    for needle in needles:
        assert needle.lower() in line.lower(), f"{needle!r} not in {line!r}"
    return line


# ---------------------------------------------------------------------------------------------
# Reading a store directly (what a run left behind)


def stored_events(db: Path) -> list[tuple[str, int, str]]:
    """(stream, version, topic) of every stored event, in the order they were recorded."""
    with contextlib.closing(sqlite3.connect(db)) as conn:
        rows = conn.execute(
            "SELECT originator_id, originator_version, topic FROM stored_events ORDER BY rowid"
        ).fetchall()
    return [(str(r[0]), int(r[1]), str(r[2])) for r in rows]


def applied_through(db: Path) -> int:
    with contextlib.closing(sqlite3.connect(db)) as conn:
        rows = conn.execute("SELECT line FROM matome_log_positions").fetchall()
    return int(rows[0][0]) if rows else 0


def reference(matome: Matome, tmp_path: Path, log: Path, lines: int | None, name: str) -> Path:
    """A store that was given the first ``lines`` lines of ``log`` (all: ``None``) in one run."""
    entries = log.read_text().splitlines(keepends=True)
    part = tmp_path / f"{name}.jsonl"
    part.write_text("".join(entries if lines is None else entries[:lines]))
    db = tmp_path / f"{name}.sqlite"
    ran = matome("run", str(part), "--db", str(db), "--quiet")
    assert ran.code == 0, ran
    return db


def stopped_at(ran: Ran, db: str, after: int = 0) -> int:
    """The line a run (resumed ``after`` a line) stopped at, from its one line on stderr;
    every line before it was answered, and accepted."""
    line = one_failure(ran, EXIT_STORE_UNAVAILABLE, "stopped at line", db, "--resume")
    number = int(line.split("stopped at line ", 1)[1].split(":", 1)[0])
    assert [r["line"] for r in ran.results] == list(range(after + 1, number)), ran
    assert all(r["ok"] for r in ran.results), ran
    return number


def check_stop_and_resume(matome: Matome, tmp_path: Path, log: Path, db: Path, n: int) -> None:
    """A run that stopped at line ``n`` wrote lines 1..n-1 and nothing of line n; ``--resume``
    (the fault gone) completes it as if nothing had happened."""
    assert n > len(world()), "the fault should hit after the world was built"
    assert applied_through(db) == n - 1
    before = reference(matome, tmp_path, log, n - 1, "before")
    assert stored_events(db) == stored_events(before), "a partial write, or a lost one"
    resumed = matome("run", str(log), "--db", str(db), "--resume", "--quiet")
    assert resumed.code == 0, resumed
    assert f"after line {n - 1}" in resumed.err, resumed
    assert resumed.results[0]["line"] == n
    assert all(r["ok"] for r in resumed.results), resumed
    whole = reference(matome, tmp_path, log, None, "whole")
    assert stored_events(db) == stored_events(whole)
    for read in (("bill", LINE, "2024-02", "--json"), ("providers", "2024-02", "--json")):
        mine, theirs = matome(*read, "--db", str(db)), matome(*read, "--db", str(whole))
        assert mine.code == theirs.code == 0, (mine, theirs)
        assert mine.out == theirs.out
    assert matome("verify", "--db", str(db)).code == 0


# ---------------------------------------------------------------------------------------------
# Root-only fault injection


def need_root() -> None:
    if os.geteuid() != 0:
        pytest.skip("injecting this fault needs root (mount, chattr)")


@contextlib.contextmanager
def small_disk(path: Path, size: str = "300k") -> Iterator[Path]:
    """A tmpfs of ``size`` mounted at ``path`` (unmounted afterwards, whatever happens)."""
    need_root()
    path.mkdir()
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)],
        capture_output=True,
        text=True,
        check=False,
    )
    if mounted.returncode:
        pytest.skip(f"cannot mount a tmpfs: {mounted.stderr.strip()}")
    try:
        yield path
    finally:
        subprocess.run(["umount", "-l", str(path)], check=False)


def grow(path: Path, size: str) -> None:
    subprocess.run(["mount", "-o", f"remount,size={size}", str(path)], check=True)


@contextlib.contextmanager
def immutable(*paths: Path) -> Iterator[None]:
    """``chattr +i`` on ``paths`` (even root cannot write them), undone afterwards."""
    need_root()
    if shutil.which("chattr") is None:
        pytest.skip("chattr is not installed")
    done: list[Path] = []
    try:
        for p in paths:
            ran = subprocess.run(["chattr", "+i", str(p)], capture_output=True, text=True)
            if ran.returncode:
                pytest.skip(f"chattr +i does not work here: {ran.stderr.strip()}")
            done.append(p)
        yield
    finally:
        for p in done:
            subprocess.run(["chattr", "-i", str(p)], check=False)


# ---------------------------------------------------------------------------------------------
# SQLite: the disk


def test_a_full_disk_stops_the_run_at_one_line_and_it_resumes(
    matome: Matome, tmp_path: Path
) -> None:
    # Long enough to fill the disk with the file's default batches (few commits, few WAL
    # frames), not only one command per transaction.
    log = write_log(tmp_path / "log.jsonl", big_log(FILLING))
    with small_disk(tmp_path / "disk") as disk:
        db = disk / "store.sqlite"
        failed = matome("run", str(log), "--db", str(db))
        n = stopped_at(failed, str(db))
        assert "disk is full" in failed.err, failed
        # A read on the full disk answers, or fails in one line (its views cannot catch up).
        read = matome("bill", LINE, "2024-01", "--db", str(db), "--json")
        if read.code:
            one_failure(read, EXIT_STORE_UNAVAILABLE, str(db), json_output=True)
        grow(disk, "20m")
        check_stop_and_resume(matome, tmp_path, log, db, n)


def test_a_file_size_limit_stops_the_run_at_one_line_and_it_resumes(
    matome: Matome, tmp_path: Path
) -> None:
    """``ulimit -f``: past the limit a write fails (SIGXFSZ is ignored, not fatal)."""
    log = write_log(tmp_path / "log.jsonl", big_log(FILLING))
    db = tmp_path / "store.sqlite"

    def limit() -> None:
        resource.setrlimit(resource.RLIMIT_FSIZE, (400_000, 400_000))

    failed = matome_process("run", str(log), "--db", str(db), preexec_fn=limit)
    n = stopped_at(failed, str(db))
    assert "file size limit" in failed.err, failed
    check_stop_and_resume(matome, tmp_path, log, db, n)


# ---------------------------------------------------------------------------------------------
# SQLite: permissions and paths

#: How many lines of the log the store of up_to_date_store applied.
APPLIED = 10


def up_to_date_store(
    matome: Matome, tmp_path: Path
) -> tuple[Path, Path, dict[tuple[str, ...], str]]:
    """A store that applied the first lines of a log, its views up to date; the log; every
    read's answer."""
    log = write_log(tmp_path / "log.jsonl", big_log(20))
    db = tmp_path / "store.sqlite"
    first = tmp_path / "first.jsonl"
    first.write_text("".join(log.read_text().splitlines(keepends=True)[:APPLIED]))
    ran = matome("run", str(first), "--db", str(db), "--quiet")
    assert ran.code == 0, ran
    answers = {}
    for read in READS:
        got = matome(*read, "--db", str(db), "--json")
        assert got.code == 0, got
        answers[read] = got.out
    return db, log, answers


def sidecars(db: Path) -> list[Path]:
    return [p for p in (Path(f"{db}-wal"), Path(f"{db}-shm")) if p.exists()]


def test_a_read_only_store_answers_reads_and_refuses_writes(matome: Matome, tmp_path: Path) -> None:
    db, log, answers = up_to_date_store(matome, tmp_path)
    events = stored_events(db)
    with immutable(db):
        for read in READS:
            got = matome(*read, "--db", str(db), "--json")
            assert got.code == 0, got
            assert got.out == answers[read], f"{read} answered differently on a read-only store"
        failed = matome("run", str(log), "--db", str(db), "--resume")
        assert stopped_at(failed, str(db), after=APPLIED) == APPLIED + 1
        assert "read-only" in failed.err, failed
        one_failure(
            matome("rebuild", "--db", str(db)), EXIT_STORE_UNAVAILABLE, str(db), "read-only"
        )
    assert stored_events(db) == events, "a write reached a read-only store"
    check_stop_and_resume(matome, tmp_path, log, db, APPLIED + 1)


def test_demo_on_a_read_only_store_fails_in_one_line(matome: Matome, tmp_path: Path) -> None:
    """``demo`` writes too: on a store it cannot write, one line and exit 4."""
    db, _, _ = up_to_date_store(matome, tmp_path)
    with immutable(db):
        demo = matome("demo", "--db", str(db))
        one_failure(demo, EXIT_STORE_UNAVAILABLE, str(db), "read-only")


def test_a_read_only_store_behind_its_log_fails_reads_in_one_line(
    matome: Matome, tmp_path: Path
) -> None:
    """Views that are not up to date cannot be brought up to date: exit 4, one line."""
    db, log, _ = up_to_date_store(matome, tmp_path)
    assert matome("run", str(log), "--db", str(db), "--resume", "--quiet").code == 0
    with immutable(db):
        got = matome("bill", LINE, "2024-02", "--db", str(db))
        one_failure(got, EXIT_STORE_UNAVAILABLE, str(db), "read-only")


def test_a_read_only_directory(matome: Matome, tmp_path: Path) -> None:
    folder = tmp_path / "locked"
    folder.mkdir()
    log = write_log(tmp_path / "log.jsonl", world())
    db = folder / "store.sqlite"
    with immutable(folder):
        ran = matome("run", str(log), "--db", str(db))
        assert ran.results == []
        for read in READS:
            one_failure(matome(*read, "--db", str(db)), EXIT_STORE_NOT_FOUND, str(db))
        assert list(folder.iterdir()) == []
        one_failure(ran, EXIT_STORE_UNAVAILABLE, str(db), "read-only")


def test_an_existing_store_in_a_read_only_directory(matome: Matome, tmp_path: Path) -> None:
    """A write fails in one line naming the cause; nothing is written."""
    folder = tmp_path / "locked"
    folder.mkdir()
    db, log, _ = up_to_date_store(matome, tmp_path)
    moved = folder / db.name
    db.rename(moved)
    events = stored_events(moved)
    with immutable(folder):
        failed = matome("run", str(log), "--db", str(moved), "--resume")
        assert failed.results == []
        read = matome("bill", LINE, "2024-02", "--db", str(moved))
        assert read.code in (0, EXIT_STORE_UNAVAILABLE), read
        one_failure(failed, EXIT_STORE_UNAVAILABLE, str(moved), "read-only")
    assert stored_events(moved) == events


def test_a_missing_directory(matome: Matome, tmp_path: Path) -> None:
    log = write_log(tmp_path / "log.jsonl", world())
    db = tmp_path / "nowhere" / "store.sqlite"
    one_failure(
        matome("run", str(log), "--db", str(db)), EXIT_STORE_UNAVAILABLE, str(db), "directory"
    )
    for read in READS:
        one_failure(matome(*read, "--db", str(db)), EXIT_STORE_NOT_FOUND, str(db))
        got = matome(*read, "--db", str(db), "--json")
        one_failure(got, EXIT_STORE_NOT_FOUND, str(db), json_output=True)
        assert json.loads(got.out)["error"]["code"] == "store_not_found"
    assert not (tmp_path / "nowhere").exists()


def test_a_file_that_is_not_a_database(matome: Matome, tmp_path: Path) -> None:
    log = write_log(tmp_path / "log.jsonl", world())
    db = tmp_path / "notes.sqlite"
    content = b"these are my notes, not a database\n" * 200
    db.write_bytes(content)
    ran = matome("run", str(log), "--db", str(db))
    one_failure(ran, EXIT_STORE_UNAVAILABLE, str(db), "not a database")
    for read in (*READS, ("rebuild",)):
        got = matome(*read, "--db", str(db), "--json")
        one_failure(got, EXIT_STORE_UNAVAILABLE, str(db), "not a database", json_output=True)
    assert db.read_bytes() == content
    assert sidecars(db) == []


def test_a_mistyped_db_path_for_a_read_command_creates_nothing(
    matome: Matome, tmp_path: Path
) -> None:
    up_to_date_store(matome, tmp_path)
    typo = tmp_path / "stroe.sqlite"
    before = sorted(p.name for p in tmp_path.iterdir())
    for read in (*READS, ("rebuild",)):
        one_failure(matome(*read, "--db", str(typo)), EXIT_STORE_NOT_FOUND, str(typo))
    # MATOME_DB is the same setting.
    got = matome("status", LINE, env={"MATOME_DB": str(typo)})
    one_failure(got, EXIT_STORE_NOT_FOUND, str(typo))
    # The default store (matome.sqlite in the working directory) is not created either.
    got = matome("bill", LINE, "2024-02", cwd=tmp_path)
    one_failure(got, EXIT_STORE_NOT_FOUND, "matome.sqlite")
    assert sorted(p.name for p in tmp_path.iterdir()) == before


def test_a_read_command_leaves_an_empty_file_as_it_was(matome: Matome, tmp_path: Path) -> None:
    empty = tmp_path / "empty.sqlite"
    empty.touch()
    one_failure(matome("status", LINE, "--db", str(empty)), EXIT_STORE_NOT_FOUND, str(empty))
    assert empty.stat().st_size == 0, "a read command wrote to a file that holds no store"


# ---------------------------------------------------------------------------------------------
# PostgreSQL


def pg(dbname: str = "", port: int | None = None, query: str = "") -> str:
    """The test server's URL with another database name, port or query."""
    parts = urlsplit(PG_URL.split("?")[0])
    netloc = parts.netloc if port is None else f"{parts.netloc.rsplit(':', 1)[0]}:{port}"
    return f"postgresql://{netloc}/{dbname or parts.path.lstrip('/')}{query}"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@pytest.mark.postgres
def test_a_wrong_postgres_port_fails_within_the_connect_timeout(
    matome: Matome, tmp_path: Path
) -> None:
    require_postgres()
    port = free_port()
    got = matome("bill", LINE, "2024-02", "--db", pg(port=port))
    one_failure(got, EXIT_STORE_UNAVAILABLE, "PostgreSQL store", f":{port}/", "refused")
    assert got.seconds < 7, f"the default connect timeout is 5 s: {got}"
    log = write_log(tmp_path / "log.jsonl", world())
    ran = matome("run", str(log), "--db", pg(port=port, query="?connect_timeout=1"))
    one_failure(ran, EXIT_STORE_UNAVAILABLE, "PostgreSQL store", f":{port}/", "refused")
    assert ran.seconds < 4, f"?connect_timeout=1: {ran}"
    assert ran.results == []


@pytest.mark.postgres
def test_a_wrong_postgres_database_name(matome: Matome, tmp_path: Path) -> None:
    require_postgres()
    name = f"no_such_db_{uuid.uuid4().hex[:8]}"
    url = pg(name, query="?connect_timeout=1")
    got = matome("status", LINE, "--db", url)
    one_failure(got, EXIT_STORE_NOT_FOUND, "PostgreSQL store", f"/{name} ", "does not exist")
    log = write_log(tmp_path / "log.jsonl", world())
    ran = matome("run", str(log), "--db", url)
    one_failure(ran, EXIT_STORE_UNAVAILABLE, "PostgreSQL store", f"/{name} ", "does not exist")
    assert ran.seconds < 4, ran


def schema_tables(schema: str) -> list[str] | None:
    """The tables of ``schema`` (``None``: there is no such schema)."""
    import psycopg

    with psycopg.connect(PG_URL.split("?")[0]) as conn:
        if not conn.execute(
            "SELECT 1 FROM information_schema.schemata WHERE schema_name = %s", (schema,)
        ).fetchall():
            return None
        rows = conn.execute(
            "SELECT table_name FROM information_schema.tables WHERE table_schema = %s", (schema,)
        ).fetchall()
    return sorted(str(r[0]) for r in rows)


@pytest.mark.postgres
def test_a_missing_postgres_schema(matome: Matome, tmp_path: Path) -> None:
    require_postgres()
    schema = f"no_such_schema_{uuid.uuid4().hex[:8]}"
    url = pg(query=f"?schema={schema}")
    log = write_log(tmp_path / "log.jsonl", world())
    ran = matome("run", str(log), "--db", url)
    one_failure(ran, EXIT_STORE_UNAVAILABLE, "PostgreSQL store", f"schema {schema}")
    for read in (*READS, ("rebuild",)):
        got = matome(*read, "--db", url, "--json")
        one_failure(got, EXIT_STORE_NOT_FOUND, f"schema {schema}", json_output=True)
    got = matome("bill", LINE, "2024-02", "--db", url)
    one_failure(got, EXIT_STORE_NOT_FOUND, "PostgreSQL store", f"schema {schema}")
    assert schema_tables(schema) is None, "a command created the schema"


@pytest.mark.postgres
def test_an_empty_postgres_schema_is_not_a_store(matome: Matome, pg_url: str) -> None:
    schema = pg_url.split("schema=")[1]
    for read in (*READS, ("rebuild",)):
        got = matome(*read, "--db", pg_url, "--json")
        one_failure(got, EXIT_STORE_NOT_FOUND, f"schema {schema}", json_output=True)
    got = matome("status", LINE, "--db", pg_url)
    one_failure(got, EXIT_STORE_NOT_FOUND, "PostgreSQL store", f"schema {schema}")
    assert schema_tables(schema) == [], "a read command created tables"
