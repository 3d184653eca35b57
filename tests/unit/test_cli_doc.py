"""docs/cli.md, the command-line reference: its Python runs, it covers every command, and its
exit codes are the command line's."""

from __future__ import annotations

import re
from pathlib import Path

from matome import cli

ROOT = Path(__file__).resolve().parents[2]
PAGE = (ROOT / "docs" / "cli.md").read_text(encoding="utf-8")


def _blocks(language: str) -> list[str]:
    return re.findall(rf"^```{language}\n(.*?)^```", PAGE, flags=re.S | re.M)


def test_cli_doc_python_blocks_run() -> None:
    blocks = _blocks("python")
    assert blocks
    namespace: dict[str, object] = {"__name__": "docs_cli"}
    for block in blocks:
        exec(compile(block, "docs/cli.md", "exec"), namespace)


def test_cli_doc_names_every_command_and_shows_examples() -> None:
    for name in cli.EXAMPLES:
        assert re.search(rf"`{name}\b", PAGE), name
    examples = "\n".join(_blocks("sh"))
    for name in ("run", "demo", "bill", "statement", "settle", "audit", "verify"):
        assert f"matome {name}" in examples, name


def test_cli_doc_exit_codes_are_the_command_lines() -> None:
    table = dict(re.findall(r"^\| (\d) \| (.*) \|$", PAGE, flags=re.M))
    assert set(table) == {"0", "1", "2", "3", "4", "5"}
    assert "store_not_found" in table[str(cli.EXIT_STORE_NOT_FOUND)]
    assert "store_unavailable" in table[str(cli.EXIT_STORE_UNAVAILABLE)]
    assert "busy" in table[str(cli.EXIT_BUSY)]
    assert "refusal" in table[str(cli.EXIT_REFUSED)]
    assert "usage" in table[str(cli.EXIT_USAGE)]


def test_cli_doc_options_cover_json_csv_progress_and_colour() -> None:
    for words in ("`--json`", "`--csv`", "`--version`", "`--db STORE`", "NO_COLOR", "progress"):
        assert words in PAGE, words
