"""Fuzzing the ``matome`` command line: no traceback, only the documented exit codes.

In-process (``matome.cli.main`` with captured standard streams, the tests' cheap password
hashing, a working directory of its own and no ``MATOME_*`` variables): argv of every
subcommand with odd arguments, odd ``--db`` values (a store, ``:memory:``, nothing, a missing
path, a directory, a file that is no database, an unreachable PostgreSQL server, another
scheme), with ``--json`` or not, never let an exception out of ``main`` (a traceback in a real
process), print no ``Traceback`` and exit 0, 1, 2 (argparse's usage errors included), 3, 4 or
5; what is printed is UTF-8, and a ``--json`` error is one JSON object.  ``matome run`` on a
log of fuzzed lines exits 0 and prints exactly one JSON result per non-blank, non-comment line,
numbered as the file's lines.  A few runs go through the real console script in a subprocess,
with a strict UTF-8 stdout.

Safety: ``--db`` and ``--html`` (the only arguments that make ``matome`` write) take values
from fixed lists inside the test's directory — never a reachable PostgreSQL server — and no
free-text argument starts with ``-``, so none can be read as those options.  Real argv holds
no NUL and no surrogates other than ``surrogateescape``'s (U+DC80–U+DCFF); nor do these.
"""

from __future__ import annotations

import contextlib
import io
import itertools
import json
import os
import shutil
import signal
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any
from unittest import mock

import attrs
import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from matome.cli import main
from matome.engine import Engine
from tests.fuzz import EAST, ITERATIONS, LINE, PID, history_lines, seeded_engine
from tests.fuzz.test_log_reader_fuzz import (
    broken_commands,
    command_shaped,
    json_values,
    token_soup,
)

#: The documented exit codes (docs/reliability.md; argparse's usage errors are 2).
EXIT_CODES = frozenset({0, 1, 2, 3, 4, 5})

FUZZ = settings(suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])

_real_open = Engine.open


def _cheap_open(db: str | None = None, **kwargs: Any) -> Engine:
    kwargs.setdefault("hash_iterations", ITERATIONS)
    return _real_open(db, **kwargs)


@attrs.frozen
class Outcome:
    code: int
    out: str
    err: str
    #: An exception that escaped ``main`` (a traceback in a real process).
    escaped: BaseException | None = None


def run_main(argv: Sequence[str], workdir: Path, stdin: bytes = b"") -> Outcome:
    """``matome argv`` in-process, in ``workdir``, with ``stdin``; its exit code and output."""
    out, err = io.StringIO(), io.StringIO()
    handlers = {
        s: signal.getsignal(s)
        for name in ("SIGPIPE", "SIGXFSZ")
        if (s := getattr(signal, name, None)) is not None
    }
    environ = {k: v for k, v in os.environ.items() if not k.startswith("MATOME_")}
    escaped: BaseException | None = None
    try:
        with (
            contextlib.chdir(workdir),
            mock.patch.dict(os.environ, environ, clear=True),
            mock.patch.object(Engine, "open", staticmethod(_cheap_open)),
            mock.patch.object(sys, "stdin", io.TextIOWrapper(io.BytesIO(stdin))),
            contextlib.redirect_stdout(out),
            contextlib.redirect_stderr(err),
        ):
            try:
                code = main(list(argv))
            except SystemExit as e:  # argparse: --help (0) and usage errors (2)
                code = e.code if isinstance(e.code, int) else -1
            except Exception as e:
                code, escaped = -1, e
    finally:
        for sig, handler in handlers.items():
            signal.signal(sig, handler)
    return Outcome(code, out.getvalue(), err.getvalue(), escaped)


def check(outcome: Outcome, argv: Sequence[str]) -> None:
    """No exception out of ``main``, no traceback, a documented exit code, UTF-8 output."""
    if outcome.escaped is not None:
        raise AssertionError(
            f"matome {argv!r} raised {type(outcome.escaped).__name__}: {outcome.escaped}"
        ) from outcome.escaped
    assert outcome.code in EXIT_CODES, (argv, outcome)
    assert "Traceback" not in outcome.out, (argv, outcome.out)
    assert "Traceback" not in outcome.err, (argv, outcome.err)
    outcome.out.encode("utf-8")  # the contract's JSON is UTF-8: no lone surrogate in it


# ---------------------------------------------------------------------------------------------
# The working directory: a store with the history, and things that are not stores


@attrs.frozen
class Workdir:
    root: Path
    store: Path
    log: Path

    def db_values(self) -> list[str]:
        """Every ``--db`` value the fuzzer may pass (all inside ``root``, or unreachable)."""
        r = self.root
        return [
            str(self.store),
            ":memory:",
            "",
            str(r / "missing.sqlite"),
            "relative.sqlite",
            str(r / "no" / "such" / "dir" / "x.sqlite"),
            str(r / "notadb.sqlite"),
            str(r / "adir"),
            str(r / "empty.sqlite"),
            str(self.log),
            # Refused at once, but tried again for a while: one value, a short timeout.
            "postgres://fuzz:pw@127.0.0.1:1/db?schema=s&connect_timeout=1",
            "sqlite:///x.sqlite",
            "mysql://x@127.0.0.1/db",
            "file:x.sqlite?mode=ro",
            "-",
            " ",
        ]

    def html_values(self) -> list[str]:
        r = self.root
        return [
            str(r / "report.html"),
            "report2.html",
            str(r / "no" / "such" / "dir" / "x.html"),
            str(r / "adir"),
            str(r),
        ]


@pytest.fixture(scope="module")
def workdir(tmp_path_factory: pytest.TempPathFactory) -> Workdir:
    root = tmp_path_factory.mktemp("fuzz-cli")
    store = root / "store.sqlite"
    seeded_engine(str(store)).close()
    (root / "notadb.sqlite").write_bytes(b"\x00\xffnot a database\n" * 64)
    (root / "empty.sqlite").write_bytes(b"")
    (root / "adir").mkdir()
    log = root / "history.jsonl"
    log.write_text("\n".join(history_lines()) + "\n", encoding="utf-8")
    return Workdir(root, store, log)


# ---------------------------------------------------------------------------------------------
# argv


def argv_text() -> st.SearchStrategy[str]:
    """A free-text argument: no NUL, surrogates only as ``surrogateescape`` makes them, never
    starting with ``-`` (so never an option)."""
    chars = st.one_of(
        st.characters(exclude_characters="\x00", exclude_categories=["Cs"]),
        st.integers(0xDC80, 0xDCFF).map(chr),
    )
    return st.lists(chars, max_size=24).map("".join).filter(lambda s: not s.startswith("-"))


#: Option-like arguments that are safe anywhere (none is, or abbreviates, --db or --html).
OPTION_LIKE = [
    "-",
    "--",
    "-h",
    "--help",
    "--json",
    "--jso",
    "--nope",
    "-x",
    "--page",
    "--per-page=-1",
    "--resume",
    "--strict",
    "--quiet",
    "--as-of",
    "--passport",
]

IDS = [LINE, EAST, "CAF0000000003", "CAF0000000009", "COP00000002", PID]
MONTHS = ["2024-01", "2024-02", "2024-13", "1999-12", "0001-01", "9999-12", "2024-1", "24-01"]
TIMES = [
    "2024-02-10T10:00:00+09:00",
    "2024-02-10T10:00:00",
    "0001-01-01T00:00:00+09:00",
    "9999-12-31T23:59:59-23:59",
    "now",
    "",
]
NUMBERS = ["1", "0", "-1", "500", "501", "99999999999999999999999", "1.5", "x", "１"]

#: Each subcommand's positional arguments and its options (with how their values are drawn).
SUBCOMMANDS: dict[str, tuple[list[str], dict[str, str | None]]] = {
    "run": (["log"], {"--resume": None, "--strict": None, "--quiet": None}),
    "bill": (["id", "month"], {"--json": None}),
    "statement": (
        ["id", "month"],
        {"--json": None, "--passport": "id", "--page": "number", "--per-page": "number"},
    ),
    "providers": (["month"], {"--json": None}),
    "contacts": (["id"], {"--json": None}),
    "settle": (["month"], {"--json": None}),
    "continuity": (["id?"], {"--json": None}),
    "audit": (
        ["id", "month"],
        {"--json": None, "--as-of": "time", "--recorded-as-of": "time", "--html": "html"},
    ),
    "verify": ([], {"--json": None}),
    "status": (["id"], {"--json": None}),
    "keygen": ([], {}),
    "rebuild": ([], {"--json": None}),
}


@st.composite
def argvs(draw: st.DrawFn, workdir: Workdir) -> list[str]:
    """``matome`` argv: a subcommand (or not), its arguments right, missing, extra or odd, its
    options with odd values, ``--db`` before or after it."""

    def value(kind: str) -> str:
        pools = {
            "id": IDS,
            "month": MONTHS,
            "time": TIMES,
            "number": NUMBERS,
            "log": [str(workdir.log), "-", "missing.jsonl", str(workdir.root / "adir")],
        }
        if kind == "html":
            return draw(st.sampled_from(workdir.html_values()))
        pool = pools[kind.rstrip("?")]
        return draw(st.one_of(st.sampled_from(pool), argv_text()))

    dbs = st.sampled_from(workdir.db_values())
    head: list[str] = []
    if draw(st.integers(0, 3)) == 0:
        head += ["--db", draw(dbs)]
    command = draw(st.one_of(st.sampled_from(sorted(SUBCOMMANDS)), st.just("nosuch")))
    if command not in SUBCOMMANDS:
        return [*head, draw(st.one_of(argv_text(), st.just("")))]
    positionals, options = SUBCOMMANDS[command]
    tail = [value(kind) for kind in positionals if not kind.endswith("?") or draw(st.booleans())]
    if tail and draw(st.integers(0, 5)) == 0:
        tail.pop(draw(st.integers(0, len(tail) - 1)))  # one missing
    for _ in range(draw(st.integers(0, 1))):
        tail.append(draw(argv_text()))  # one too many
    for option, kind in options.items():
        if draw(st.booleans()):
            tail += [option] if kind is None else [option, value(kind)]
    if draw(st.booleans()):
        tail += ["--db", draw(dbs)]
    if draw(st.integers(0, 4)) == 0:
        tail.append(draw(st.sampled_from(OPTION_LIKE)))
    if draw(st.booleans()):
        tail = draw(st.permutations(tail))  # options anywhere (pairs may come apart)
    return [*head, command, *tail]


def _json_requested(argv: Sequence[str]) -> bool:
    """Whether ``--json`` is an option of this argv (not a value nor after ``--``)."""
    if "--" in argv or "--json" not in argv:
        return False
    before = argv[argv.index("--json") - 1]
    return before not in ("--db", "--passport", "--page", "--per-page", "--as-of", "--html")


# ---------------------------------------------------------------------------------------------
# Properties


@FUZZ
@given(data=st.data())
def test_odd_argv_never_prints_a_traceback(workdir: Workdir, data: st.DataObject) -> None:
    argv = data.draw(argvs(workdir), label="argv")
    stdin = "\n".join(history_lines()).encode()
    outcome = run_main(argv, workdir.root, stdin)
    command = next((a for a in argv if a in SUBCOMMANDS), "no command")
    event(f"{command}: exit {outcome.code}")
    check(outcome, argv)
    # An error with --json is the contract's {"error": {"code", "message"}} (but `run`'s
    # results, and verify's broken chain, which is its own document).
    if (
        _json_requested(argv)
        and outcome.code in (1, 3, 4, 5)
        and command not in ("run", "verify")
        and outcome.out.strip()
    ):
        document = json.loads(outcome.out)
        assert set(document["error"]) == {"code", "message"}, outcome.out


def fuzzed_lines() -> st.SearchStrategy[bytes]:
    """One physical line (without its newline) of a fuzzed log."""
    text = st.one_of(
        json_values().map(lambda v: json.dumps(v, ensure_ascii=False)),
        token_soup(),
        command_shaped().map(json.dumps),
    ).map(lambda s: s.encode("utf-8", "backslashreplace"))
    return st.one_of(
        text,
        broken_commands().map(
            lambda c: c[0] if isinstance(c[0], bytes) else c[0].encode("utf-8", "backslashreplace")
        ),
        st.binary(max_size=80),
        st.sampled_from(
            [b"", b"   ", b"\t", b"\r", b"\x0c", b"# a comment", b"  # indented comment", b"#"]
        ),
        st.sampled_from([line.encode() for line in history_lines()]),
    ).map(lambda b: b.replace(b"\n", b" "))


def expected_numbers(data: bytes) -> list[int]:
    """The numbers of the lines ``matome run`` must answer: every line but blank ones and
    ``#`` comments (counted independently of ``matome.interchange.log_lines``)."""
    lines = data.split(b"\n")
    if lines and lines[-1] == b"":
        lines.pop()
    return [
        n
        for n, line in enumerate(lines, start=1)
        if line.strip(b" \t\r\x0b\x0c")[:1] not in (b"", b"#")
    ]


_runs = itertools.count()


@FUZZ
@given(
    lines=st.lists(fuzzed_lines(), max_size=25),
    with_history=st.booleans(),
    crlf=st.booleans(),
    final_newline=st.booleans(),
    how=st.sampled_from(["memory", "memory", "memory", "memory", "file", "stdin"]),
)
def test_run_answers_every_line_and_exits_0(
    workdir: Workdir,
    lines: list[bytes],
    with_history: bool,
    crlf: bool,
    final_newline: bool,
    how: str,
) -> None:
    history = [line.encode() for line in history_lines()] if with_history else []
    data = (b"\r\n" if crlf else b"\n").join(history + lines)
    if final_newline and data:
        data += b"\n"
    log = workdir.root / "fuzz.jsonl"
    log.write_bytes(data)
    if how == "memory":
        argv = ["run", str(log), "--db", ":memory:"]
    elif how == "file":
        argv = ["run", str(log), "--db", str(workdir.root / f"run-{next(_runs)}.sqlite")]
    else:
        argv = ["run", "-", "--db", ":memory:"]
    outcome = run_main(argv, workdir.root, data)
    check(outcome, argv)
    assert outcome.code == 0, outcome
    printed = outcome.out.split("\n")
    assert printed.pop() == "", outcome.out  # every result ends with a newline
    results = [json.loads(line) for line in printed]
    assert [r["line"] for r in results] == expected_numbers(data), (data, outcome.out)
    for r in results:
        assert r["ok"] in (True, False)
        assert r["ok"] or set(r["error"]) == {"code", "message"}, r
    event(f"{sum(not r['ok'] for r in results)} refused" if results else "empty log")


# ---------------------------------------------------------------------------------------------
# The real console script


def _matome(*argv: str, cwd: Path, stdin: bytes = b"") -> subprocess.CompletedProcess[bytes]:
    exe = shutil.which("matome")
    command = [exe] if exe else [sys.executable, "-m", "matome.cli"]
    env = {k: v for k, v in os.environ.items() if not k.startswith("MATOME_")}
    env["PYTHONIOENCODING"] = "utf-8"  # strict, as under any UTF-8 locale but C/POSIX
    return subprocess.run(
        [*command, *argv], cwd=cwd, env=env, input=stdin, capture_output=True, timeout=120
    )


#: A log of nasty lines: each is one invalid_input result, the run goes on.
NASTY = [
    b"\xff\xfe not UTF-8",
    b'{"command": "register_provider", "name": "\\ud800"}',
    b'{"command": "purchase", "password": "a", "password": "b"}',
    b'{"command": "list_service", "price": 1e400}',
    b'{"command": "list_service", "price": NaN}',
    b'{"command": "list_service", "price": ' + b"9" * 5000 + b"}",
    b"[" * 40_000 + b"]" * 40_000,
    b'{"command": "register_provider", "name": "' + b"x" * 70_000 + b'"}',
    b"",
    b"# a comment",
    b"null",
    b'"\\udc80"',
    b"{}",
]


def test_the_console_script_runs_a_nasty_log(tmp_path: Path) -> None:
    log = tmp_path / "nasty.jsonl"
    data = b"\n".join([*NASTY, history_lines()[0].encode()]) + b"\n"
    log.write_bytes(data)
    done = _matome("run", str(log), "--db", ":memory:", cwd=tmp_path)
    assert done.returncode == 0, done
    assert b"Traceback" not in done.stderr + done.stdout, done
    results = [json.loads(line) for line in done.stdout.decode("utf-8").splitlines()]
    assert [r["line"] for r in results] == expected_numbers(data)
    assert [r["ok"] for r in results] == [False] * (len(results) - 1) + [True]
    assert {r["error"]["code"] for r in results[:-1]} == {"invalid_input"}


@pytest.mark.parametrize(
    ("argv", "codes"),
    [
        (["bill", "--json", "--db", "missing.sqlite", LINE, "2024-01"], {3}),
        (["statement", "--db", ":memory:", LINE, "2024-01", "--page", "x"], {2}),
        (["audit", "--json", "--db", ":memory:", LINE, "2024-01", "--as-of", "now"], {1}),
        (["nosuch"], {2}),
        (["--db", "notadb", "verify", "--json"], {4}),
        (["status", "--db", "postgresql://fuzz@127.0.0.1:1/db?connect_timeout=1", LINE], {4}),
    ],
    ids=["missing-store", "page-not-a-number", "bad-as-of", "no-such-command", "not-a-db", "pg"],
)
def test_the_console_script_on_odd_argv(tmp_path: Path, argv: list[str], codes: set[int]) -> None:
    (tmp_path / "notadb").write_bytes(b"not a database" * 100)
    done = _matome(*argv, cwd=tmp_path)
    assert done.returncode in codes, done
    assert b"Traceback" not in done.stderr + done.stdout, done
    done.stdout.decode("utf-8")


# ---------------------------------------------------------------------------------------------
# Bugs the fuzzing found, fixed: each minimal reproducer now fails in one line, no traceback

FIXED_CLI_BUGS = {
    "pg-url-bad-ipv6": (
        ["status", "--db", "postgresql://[::1", LINE],
        "cli: a malformed PostgreSQL URL escapes as ValueError (urlsplit: Invalid IPv6 URL)",
    ),
    "pg-url-port-out-of-range": (
        ["status", "--db", "postgresql://fuzz@127.0.0.1:99999/db", LINE],
        "cli: a port out of range escapes as ValueError (urlsplit's .port)",
    ),
    "pg-url-port-not-a-number": (
        ["run", "--db", "postgresql://fuzz@127.0.0.1:abc/db", "-"],
        "cli: a port that is not a number escapes as ValueError (urlsplit's .port)",
    ),
    "pg-url-negative-pool-size": (
        ["status", "--db", "postgresql://fuzz@127.0.0.1:1/db?pool_size=-5", LINE],
        "cli: pool_size=-5 escapes as ValueError ('min_size cannot be negative')",
    ),
    "db-path-not-utf-8-with-json": (
        ["bill", "--json", "--db", "\udcff.sqlite", LINE, "2024-01"],
        "cli: --json prints the --db path raw in the error: a path that is not UTF-8 "
        "(surrogateescape) makes stdout not UTF-8 — a traceback under a strict UTF-8 stdout",
    ),
}


@pytest.mark.parametrize(
    "argv",
    [pytest.param(argv, id=name) for name, (argv, _) in FIXED_CLI_BUGS.items()],
)
def test_a_found_cli_bug_stays_fixed(tmp_path: Path, argv: list[str]) -> None:
    check(run_main(argv, tmp_path), argv)


def test_a_malformed_store_url_fails_in_one_line_in_a_real_process(tmp_path: Path) -> None:
    done = _matome("status", "--db", "postgresql://[::1", LINE, cwd=tmp_path)
    assert b"Traceback" not in done.stderr, done.stderr.decode()
    assert done.returncode == 2, done  # invalid_input in a setting: fix the invocation
