"""The README's code runs (and its set-up commands are the ones CI uses)."""

from __future__ import annotations

import re
from pathlib import Path

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
