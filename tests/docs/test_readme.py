"""The README's code runs (and its set-up commands are the ones CI uses)."""

from __future__ import annotations

import json
import re
import shlex
import shutil
from pathlib import Path

import pytest

from matome import cli

ROOT = Path(__file__).resolve().parents[2]
README = (ROOT / "README.md").read_text(encoding="utf-8")


def _blocks(language: str) -> list[str]:
    return re.findall(rf"```{language}\n(.*?)```", README, flags=re.S)


def test_readme_python_examples_run() -> None:
    blocks = _blocks("python")
    assert blocks, "README has no python example"
    for block in blocks:
        exec(compile(block, "README.md", "exec"), {"__name__": "readme"})


def test_readme_gives_the_two_setup_commands() -> None:
    shell = "\n".join(_blocks("sh"))
    assert "pip install -e . && matome demo" in shell
    assert "pip install -e '.[test]' && pytest" in shell


def test_ci_runs_the_readme_test_command_with_postgres_required() -> None:
    ci = (ROOT / ".ci" / "run").read_text(encoding="utf-8")
    assert "MATOME_REQUIRE_POSTGRES=1" in ci
    assert re.search(r"^pytest$", ci, flags=re.M)
    # The end-to-end tests plain pytest leaves out run in CI too.
    assert re.search(r"^pytest -m 'system and not slow'$", ci, flags=re.M)


def _cli_lines() -> list[list[str]]:
    """The ``matome ...`` lines of README's shell blocks, comments dropped."""
    lines = []
    for block in _blocks("sh"):
        for text in block.splitlines():
            if text.startswith("matome "):
                lines.append(shlex.split(text, comments=True)[1:])
    return lines


def _command_line_section() -> str:
    return README.split("## The command line\n", 1)[1].split("\n## ", 1)[0]


def test_readme_command_line_section_uses_no_placeholders_or_missing_files() -> None:
    """The section's lines name the demo store's lines and files that ship (``examples/``),
    not the in-memory quickstart's customer or a log that does not exist."""
    section = _command_line_section()
    assert "CAF0000000001" not in section
    assert "history.jsonl" not in section
    assert "$" not in "".join(" ".join(args) for args in _cli_lines())
    for args in _cli_lines():
        for arg in args:
            if arg.startswith("examples/"):
                assert (ROOT / arg).is_file(), arg
    assert 4 <= len(_cli_lines()) <= 7, "about five lines"


def test_readme_command_lines_run_against_the_demo_store(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    cheap_hashing: None,
) -> None:
    """After ``pip install -e . && matome demo``, every ``matome`` line of README's
    command-line section runs exactly as written, with exit 0 and some output."""
    shutil.copytree(ROOT / "examples", tmp_path / "examples")
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("MATOME_DB", raising=False)
    assert cli.main(["demo"]) == 0
    commands = _cli_lines()
    assert {c[0] for c in commands} >= {"bill", "statement", "audit", "verify", "run"}
    for args in commands:
        capsys.readouterr()
        assert cli.main(args) == 0, args
        out = capsys.readouterr().out
        assert out, args
        if args[0] == "run":
            results = [json.loads(r) for r in out.splitlines()]
            assert results, args
            assert all(r["ok"] for r in results), results
    assert (tmp_path / "matome.sqlite").exists()
