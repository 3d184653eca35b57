"""The README's code runs (and its set-up commands are the ones CI uses)."""

from __future__ import annotations

import json
import re
import shlex
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
    assert re.search(r"^pytest\b", ci, flags=re.M)


def _cli_lines() -> list[list[str]]:
    """The ``matome ...`` lines of README's command-line block, comments dropped."""
    lines = []
    for block in _blocks("sh"):
        for text in block.splitlines():
            if text.startswith("matome "):
                lines.append(shlex.split(text, comments=True)[1:])
    return lines


def test_readme_command_log_and_command_lines_run(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    cheap_hashing: None,
) -> None:
    """README's ``history.jsonl`` (contract 2) is accepted line by line by ``matome run``, and
    every ``matome`` line of its command-line block then runs with exit 0."""
    [log] = _blocks("jsonl")
    (tmp_path / "history.jsonl").write_text(log, encoding="utf-8")
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("MATOME_DB", raising=False)
    commands = _cli_lines()
    assert commands[0] == ["run", "history.jsonl"]
    assert {c[0] for c in commands} >= {"bill", "statement", "settle", "status"}
    for args in commands:
        capsys.readouterr()
        assert cli.main(args) == 0, args
        out = capsys.readouterr().out
        assert out, args
        if args[0] == "run":
            results = [json.loads(r) for r in out.splitlines()]
            assert len(results) == len(log.splitlines())
            assert all(r["ok"] for r in results), results
    assert (tmp_path / "matome.sqlite").exists()
