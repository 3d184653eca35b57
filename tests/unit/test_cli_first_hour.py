"""The command line's first hour (issue #12): ``--version`` and ``python -m matome``, ``--db``
anywhere, one-line errors (JSON with ``--json``), ``run --strict`` and its summary, a demo that
tells its story and the truth on a re-run, refund rows with their kind and reason, a settlement
preview, ``unknown_passport``, ``--csv``, colour on a terminal only, and an example in every
``--help``.

Documents are read from one demo store per module (an SQLite file); tests that write copy it.
"""

from __future__ import annotations

import csv
import io
import json
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from matome import __version__, cli
from matome.demo import DEMO_LOG, demo_log_jsonl, run_demo
from matome.engine import Engine
from tests.conftest import TEST_ITERATIONS

ROOT = Path(__file__).resolve().parents[2]
LINE1, LINE2 = "CAF9000000001", "CAF9000000002"


@pytest.fixture(scope="module")
def demo_db(tmp_path_factory: pytest.TempPathFactory) -> str:
    path = tmp_path_factory.mktemp("demo") / "demo.sqlite"
    engine = Engine.open(str(path), create=True, hash_iterations=TEST_ITERATIONS)
    try:
        assert run_demo(engine, io.StringIO()) == 0
    finally:
        engine.close()
    return str(path)


@pytest.fixture
def own_demo(demo_db: str, tmp_path: Path) -> str:
    """A copy of the demo store this test may write to (with its master key, the default file
    beside it: a store copied without it cannot write personal data — docs/reliability.md)."""
    copy = tmp_path / "demo.sqlite"
    shutil.copy(demo_db, copy)
    shutil.copy(demo_db + ".master-key", str(copy) + ".master-key")
    return str(copy)


def matome(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    capsys.readouterr()
    code = cli.main(list(args))
    out, err = capsys.readouterr()
    return code, out, err


# ---------------------------------------------------------------------------------------------
# --version, python -m matome, --db before and after the command


def test_version_flag_prints_the_package_version(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as stopped:
        cli.main(["--version"])
    assert stopped.value.code == 0
    assert capsys.readouterr().out.strip() == f"matome {__version__}"


def test_python_dash_m_matome_runs_the_command_line() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "matome", "--version"],
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == f"matome {__version__}"


@pytest.mark.parametrize(
    "args",
    [
        ("--db", "{db}", "bill", LINE1, "2024-01", "--json"),
        ("bill", "--db", "{db}", LINE1, "2024-01", "--json"),
        ("bill", LINE1, "2024-01", "--json", "--db", "{db}"),
        ("--json", "--db", "{db}", "bill", LINE1, "2024-01"),
    ],
    ids=["before", "after-command", "at-the-end", "json-before-too"],
)
def test_db_option_works_before_and_after_the_command(
    capsys: pytest.CaptureFixture[str], demo_db: str, args: tuple[str, ...]
) -> None:
    code, out, _ = matome(capsys, *(a.format(db=demo_db) for a in args))
    assert code == 0
    assert json.loads(out)["subtotal"] == 1125


def test_db_option_after_the_command_wins_over_the_one_before(
    capsys: pytest.CaptureFixture[str], demo_db: str, tmp_path: Path
) -> None:
    missing = str(tmp_path / "nothing.sqlite")
    code, out, _ = matome(capsys, "--db", missing, "bill", LINE1, "2024-01", "--db", demo_db)
    assert code == 0, out


# ---------------------------------------------------------------------------------------------
# Errors: one line; one JSON line with --json; no traceback


@pytest.mark.parametrize(
    "args",
    [
        ("bill", LINE1, "2024-01", "--json", "--db", "{missing}"),
        ("--json", "--db", "{missing}", "status", LINE1),
        ("--json", "--db", "ftp://nowhere", "verify"),
        ("--json", "run", "{missing_log}"),
        ("--json", "bill", LINE1),  # a usage error
        ("--json", "nonsense"),
        ("--json", "--db", "{db}", "bill", "CAF0000000042", "2024-01"),
    ],
    ids=["bad-db", "bad-db-first", "bad-url", "unreadable-log", "usage", "no-command", "unknown"],
)
def test_json_errors_are_one_json_line_with_the_contracts_error_object(
    capsys: pytest.CaptureFixture[str], demo_db: str, tmp_path: Path, args: tuple[str, ...]
) -> None:
    paths = {
        "missing": str(tmp_path / "none" / "x.sqlite"),
        "missing_log": str(tmp_path / "none.jsonl"),
        "db": demo_db,
    }
    code, out, err = matome(capsys, *(a.format(**paths) for a in args))
    assert code != 0
    [line] = out.splitlines()
    error = json.loads(line)["error"]
    assert set(error) == {"code", "message"}
    assert re.fullmatch(r"[a-z_]+", error["code"])
    assert "Traceback" not in err


@pytest.mark.parametrize(
    ("args", "code", "words"),
    [
        (("--db", "{missing}", "bill", LINE1, "2024-01"), 3, "store_not_found"),
        (("bill", LINE1), 2, "the following arguments are required: month"),
        (("generate", "--lines", "1", "--out", "{missing}"), 2, "No such file"),
        (("audit", LINE1, "2024-01", "--db", "{db}", "--html", "{missing}"), 1, "cannot write"),
    ],
    ids=["store", "usage", "output-file", "html-file"],
)
def test_errors_without_json_are_one_clear_line_without_a_traceback(
    capsys: pytest.CaptureFixture[str],
    demo_db: str,
    tmp_path: Path,
    args: tuple[str, ...],
    code: int,
    words: str,
) -> None:
    paths = {"missing": str(tmp_path / "none" / "x"), "db": demo_db}
    got, out, err = matome(capsys, *(a.format(**paths) for a in args))
    assert got == code
    assert out == ""
    first = err.splitlines()[0]
    assert first.startswith("matome"), err
    assert words in first
    assert "Traceback" not in err


# ---------------------------------------------------------------------------------------------
# run: --strict, the summary on stderr, stdout stays the contract


def _write(path: Path, lines: list[str]) -> str:
    path.write_text("".join(line + "\n" for line in lines), encoding="utf-8")
    return str(path)


def test_run_strict_exits_1_when_any_command_is_refused(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, cheap_hashing: None
) -> None:
    log = _write(
        tmp_path / "log.jsonl",
        [json.dumps(DEMO_LOG[0]), '{"command": "no_such_command"}'],
    )
    db = str(tmp_path / "s.sqlite")
    assert matome(capsys, "run", log, "--db", db)[0] == 0
    code, out, _ = matome(capsys, "run", log, "--db", str(tmp_path / "t.sqlite"), "--strict")
    assert code == 1
    assert [json.loads(r)["ok"] for r in out.splitlines()] == [True, False]


def test_run_strict_exits_0_when_every_command_is_applied(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, cheap_hashing: None
) -> None:
    log = str(ROOT / "examples" / "first-bill.jsonl")
    code, _, _ = matome(capsys, "run", log, "--db", str(tmp_path / "s.sqlite"), "--strict")
    assert code == 0


SUMMARY = re.compile(
    r"matome run: (?P<applied>[\d,]+) applied, (?P<refused>[\d,]+) refused, "
    r"(?P<skipped>[\d,]+) skipped; (?P<events>[\d,]+) events in [\d.]+s "
    r"\((?P<rate>[\d,]+) events/s\)"
)


@pytest.mark.parametrize("batch", ["1", "100"])
def test_run_summary_on_stderr_counts_applied_refused_skipped_and_events_per_second(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, cheap_hashing: None, batch: str
) -> None:
    log = _write(
        tmp_path / "log.jsonl",
        [*(json.dumps(c) for c in DEMO_LOG[:6]), "not json"],
    )
    db = str(tmp_path / "s.sqlite")
    code, out, err = matome(capsys, "run", log, "--db", db, "--batch", batch)
    assert code == 0
    assert len(out.splitlines()) == 7  # stdout: one result per line and nothing else
    assert all("line" in json.loads(r) for r in out.splitlines())
    summary = SUMMARY.search(err)
    assert summary, err
    assert (summary["applied"], summary["refused"], summary["skipped"]) == ("6", "1", "0")
    assert int(summary["events"].replace(",", "")) >= 6
    # Resumed: the lines already applied are skipped, and said so; the refused last line
    # recorded nothing, so it is answered again.
    code, out, err = matome(capsys, "run", log, "--db", db, "--resume", "--batch", batch)
    summary = SUMMARY.search(err)
    assert summary, err
    assert (summary["applied"], summary["refused"], summary["skipped"]) == ("0", "1", "6")
    assert [json.loads(r)["line"] for r in out.splitlines()] == [7]


def test_run_quiet_prints_no_summary(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, cheap_hashing: None
) -> None:
    log = _write(tmp_path / "log.jsonl", [json.dumps(DEMO_LOG[0])])
    _, _, err = matome(capsys, "run", log, "--db", str(tmp_path / "s.sqlite"), "--quiet")
    assert err == ""


# ---------------------------------------------------------------------------------------------
# demo: a story, the truth on a re-run, where the store is, what to try next


def test_demo_tells_the_story_over_several_months_and_ends_with_the_store_and_next_steps(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, cheap_hashing: None
) -> None:
    db = tmp_path / "story.sqlite"
    code, out, _ = matome(capsys, "demo", "--db", str(db))
    assert code == 0
    for chapter in ("January 2024", "1 February", "a refund and a regulation", "1 March"):
        assert chapter in out
    assert "the line moves" in out
    assert "A 525 yen, B 600 yen" in out
    assert "cancelled on the\n1st is not charged" in out
    assert "settlement 2024-01:" in out
    assert f"matome demo: {len(DEMO_LOG)} commands applied to the store." in out
    assert str(db.resolve()) in out
    tail = out.split("Try next:", 1)[1]
    assert f"matome audit {LINE1} 2024-02 --db {db}" in tail
    assert f"matome verify --db {db}" in tail


def test_demo_run_again_says_that_nothing_new_was_applied(
    capsys: pytest.CaptureFixture[str], own_demo: str, cheap_hashing: None
) -> None:
    code, out, _ = matome(capsys, "demo", "--db", own_demo)
    assert code == 0
    assert "commands applied to the store" not in out
    assert "nothing new applied" in out
    assert f"already holds the demo's {len(DEMO_LOG)} commands" in out


def test_demo_json_prints_only_the_bills(
    capsys: pytest.CaptureFixture[str], own_demo: str, cheap_hashing: None
) -> None:
    code, out, _ = matome(capsys, "demo", "--json", "--db", own_demo)
    assert code == 0
    bills = [json.loads(line) for line in out.splitlines()]
    assert len(bills) == 6
    assert bills[0]["rows"][0]["amount"] == 525


def test_examples_demo_log_is_the_demos_log() -> None:
    shipped = (ROOT / "examples" / "demo.jsonl").read_text(encoding="utf-8")
    assert shipped == demo_log_jsonl()
    assert "$" not in shipped
    assert '"ref": "demo-anime2"' in shipped
    assert '"purchase_ref": "demo-anime2"' in shipped


def test_examples_demo_log_run_gives_the_demos_bills(
    capsys: pytest.CaptureFixture[str], demo_db: str, tmp_path: Path, cheap_hashing: None
) -> None:
    db = str(tmp_path / "from-log.sqlite")
    log = str(ROOT / "examples" / "demo.jsonl")
    assert matome(capsys, "run", log, "--db", db, "--strict")[0] == 0
    for customer_id in (LINE1, LINE2):
        for month in ("2024-01", "2024-02", "2024-03"):
            from_log = matome(capsys, "bill", customer_id, month, "--json", "--db", db)[1]
            from_demo = matome(capsys, "bill", customer_id, month, "--json", "--db", demo_db)[1]
            assert from_log == from_demo


# ---------------------------------------------------------------------------------------------
# Refund rows, settlement preview, unknown_passport


def test_refund_rows_show_their_kind_and_reason_in_the_bill_and_the_statement(
    capsys: pytest.CaptureFixture[str], demo_db: str
) -> None:
    _, bill, _ = matome(capsys, "bill", LINE2, "2024-02", "--db", demo_db)
    [refund] = [line for line in bill.splitlines() if " refund " in line]
    assert "-440" in refund
    assert "配信不良" in refund
    _, statement, _ = matome(capsys, "statement", LINE2, "2024-02", "--db", demo_db)
    [refund] = [line for line in statement.splitlines() if " refund " in line]
    assert "配信不良" in refund
    charges = [line for line in statement.splitlines() if " charge " in line]
    assert charges


def test_settle_of_a_month_not_yet_closed_is_marked_preview(
    capsys: pytest.CaptureFixture[str], demo_db: str
) -> None:
    code, text, _ = matome(capsys, "settle", "2024-03", "--db", demo_db)
    assert code == 0
    assert text.startswith("PREVIEW: 2024-03 is not closed yet (closed through 2024-02)")
    _, closed, _ = matome(capsys, "settle", "2024-02", "--db", demo_db)
    assert "PREVIEW" not in closed


def test_settle_json_keeps_the_contract_and_adds_a_preview_field(
    capsys: pytest.CaptureFixture[str], demo_db: str
) -> None:
    contract = {"provider", "operator", "gross", "lines", "average_per_line", "fee", "tax"}
    contract |= {"net", "status"}
    _, open_month, _ = matome(capsys, "settle", "2024-03", "--json", "--db", demo_db)
    _, closed_month, _ = matome(capsys, "settle", "2024-02", "--json", "--db", demo_db)
    for text, preview in ((open_month, True), (closed_month, False)):
        lines = json.loads(text)
        assert lines
        for line in lines:
            assert set(line) == contract | {"preview"}
            assert line["preview"] is preview


@pytest.mark.parametrize("as_json", [False, True])
def test_statement_of_an_unknown_passport_is_unknown_passport(
    capsys: pytest.CaptureFixture[str], demo_db: str, as_json: bool
) -> None:
    args = ["statement", LINE1, "2024-01", "--passport", "nobody", "--db", demo_db]
    code, out, err = matome(capsys, *args, *(["--json"] if as_json else []))
    assert code == cli.EXIT_REFUSED
    if as_json:
        assert json.loads(out)["error"]["code"] == "unknown_passport"
    else:
        assert "unknown_passport" in err
        assert out == ""


def test_statement_of_a_known_passport_still_lists_its_rows(
    capsys: pytest.CaptureFixture[str], demo_db: str
) -> None:
    args = ["statement", LINE1, "2024-01", "--passport", "yamada.taro", "--json"]
    code, out, _ = matome(capsys, *args, "--db", demo_db)
    assert code == 0
    assert json.loads(out)["total"] == 3


# ---------------------------------------------------------------------------------------------
# --csv


CSV_DOCUMENTS = {
    "bill": ((LINE2, "2024-02"), "kind", 2),
    "statement": ((LINE2, "2024-02"), "reason", 2),
    "providers": (("2024-01",), "amount", 2),
    "settle": (("2024-01",), "net", 2),
    "continuity": ((), "change", 1),
    "status": ((LINE2,), "passport_id", 1),
    "contacts": ((LINE1,), "contact", 2),
}


@pytest.mark.parametrize("command", sorted(CSV_DOCUMENTS))
def test_csv_prints_a_header_and_one_row_per_item_of_every_tabular_document(
    capsys: pytest.CaptureFixture[str], demo_db: str, command: str
) -> None:
    args, column, rows = CSV_DOCUMENTS[command]
    code, out, _ = matome(capsys, command, *args, "--csv", "--db", demo_db)
    assert code == 0
    assert out.endswith("\r\n")
    table = list(csv.DictReader(io.StringIO(out, newline="")))
    assert len(table) == rows
    assert column in table[0]
    assert "," not in "".join(v for r in table for v in r.values() if v and v.isdigit())


def test_csv_refund_row_has_its_kind_reason_and_a_negative_amount(
    capsys: pytest.CaptureFixture[str], demo_db: str
) -> None:
    out = matome(capsys, "bill", LINE2, "2024-02", "--csv", "--db", demo_db)[1]
    [refund] = [r for r in csv.DictReader(io.StringIO(out, newline="")) if r["kind"] == "refund"]
    assert (refund["amount"], refund["reason"]) == ("-440", "配信不良")


def test_csv_is_accepted_before_the_command_too(
    capsys: pytest.CaptureFixture[str], demo_db: str
) -> None:
    out = matome(capsys, "--csv", "--db", demo_db, "providers", "2024-01")[1]
    assert out.startswith("provider,lines,amount\r\n")


# ---------------------------------------------------------------------------------------------
# Colour only on a terminal; progress only on a terminal


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_colour_only_on_a_terminal_and_never_with_no_color(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], demo_db: str
) -> None:
    monkeypatch.delenv("NO_COLOR", raising=False)
    assert "\x1b[" not in matome(capsys, "settle", "2024-03", "--db", demo_db)[1]
    terminal = _Terminal()
    monkeypatch.setattr(sys, "stdout", terminal)
    assert cli.main(["settle", "2024-03", "--db", demo_db]) == 0
    assert "\x1b[33mPREVIEW:\x1b[0m" in terminal.getvalue()
    monkeypatch.setenv("NO_COLOR", "1")
    terminal = _Terminal()
    monkeypatch.setattr(sys, "stdout", terminal)
    assert cli.main(["settle", "2024-03", "--db", demo_db]) == 0
    assert "\x1b[" not in terminal.getvalue()


def test_json_and_csv_are_never_coloured(monkeypatch: pytest.MonkeyPatch, demo_db: str) -> None:
    monkeypatch.delenv("NO_COLOR", raising=False)
    for option in ("--json", "--csv"):
        terminal = _Terminal()
        monkeypatch.setattr(sys, "stdout", terminal)
        assert cli.main(["settle", "2024-03", option, "--db", demo_db]) == 0
        assert "\x1b[" not in terminal.getvalue()


def test_run_shows_no_progress_when_stderr_is_not_a_terminal(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, cheap_hashing: None
) -> None:
    log = str(ROOT / "examples" / "first-bill.jsonl")
    _, _, err = matome(capsys, "run", log, "--db", str(tmp_path / "s.sqlite"))
    assert "\r" not in err
    assert len(err.splitlines()) == 1  # the summary only


# ---------------------------------------------------------------------------------------------
# --help


def _subcommands() -> dict[str, object]:
    parser = cli.build_parser()
    [action] = [a for a in parser._actions if a.dest == "command"]
    return dict(action.choices)  # type: ignore[arg-type]


@pytest.mark.parametrize("name", sorted(_subcommands()))
def test_help_of_every_command_shows_an_example_and_the_exit_codes(
    capsys: pytest.CaptureFixture[str], name: str
) -> None:
    with pytest.raises(SystemExit) as stopped:
        cli.main([name, "--help"])
    assert stopped.value.code == 0
    text = capsys.readouterr().out
    example = text.split("example:\n", 1)[1]
    assert f"matome {name}" in example.split("exit codes:")[0]
    assert "exit codes:" in text


def test_every_command_has_an_example() -> None:
    assert set(cli.EXAMPLES) == set(_subcommands())


def test_top_level_help_shows_the_first_hour(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        cli.main(["--help"])
    text = capsys.readouterr().out
    assert "matome demo" in text
    assert "--version" in text


def _runnable_examples() -> list[list[str]]:
    """The ``--help`` examples that read or write only the store (no pipes, files, servers,
    seal keys: tests/integration/test_tamper.py runs those)."""
    lines = []
    skipped = ("|", ">", "big.jsonl", "--html", "follow", "postgresql", "seal")
    for text in cli.EXAMPLES.values():
        for line in text.splitlines():
            args = shlex.split(line.strip(), comments=True)
            if args[0] != "matome" or any(word in line for word in skipped):
                continue
            lines.append(args[1:])
    return lines


def test_help_examples_run_against_the_demo_store(
    capsys: pytest.CaptureFixture[str],
    own_demo: str,
    monkeypatch: pytest.MonkeyPatch,
    cheap_hashing: None,
) -> None:
    monkeypatch.chdir(ROOT)  # examples/ is where the examples say
    examples = _runnable_examples()
    assert {args[0] for args in examples} >= {"bill", "statement", "settle", "verify", "run"}
    for n, args in enumerate(examples):
        db = own_demo if args[0] != "run" else f"{own_demo}.{n}.sqlite"  # a log, a new store
        code, out, _ = matome(capsys, *args, "--db", db)
        assert code == 0, args
        assert out, args
