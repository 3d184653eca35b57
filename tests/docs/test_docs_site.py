"""The documentation site builds without a warning, and the code on its pages runs.

``mkdocs build --strict`` fails on any warning: a page missing from the navigation or a
navigation entry without a page, a link to a page or a heading that does not exist, a
snippet whose file is missing, a docstring the API reference cannot render.  The build runs
in a subprocess, as a reader would run it.  It is skipped only where mkdocs is not installed
and ``MATOME_REQUIRE_DOCS`` is not ``1``; the ``test`` extra installs it, so it runs in CI.
"""

from __future__ import annotations

import importlib.util
import os
import re
import shlex
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from matome import cli
from matome.engine import Engine

ROOT = Path(__file__).resolve().parents[2]
DOCS = ROOT / "docs"
REFERENCE = ROOT / "src" / "matome" / "reference"

#: A pymdownx.snippets include line: ``--8<-- "path/from/the/repository/root"``.
_SNIPPET = re.compile(r'^--8<-- "([^"]+)"\s*$', flags=re.M)

#: The pages whose ``python`` blocks run here, in one namespace per page, block after block
#: (testing.md's run in test_testing_doc.py).
PAGES_WITH_CODE = ["index.md", "tutorial.md", "contract.md", "rules.md"]


def page_text(name: str) -> str:
    """The Markdown of ``docs/<name>`` with its snippet includes expanded, as mkdocs sees it."""
    text = (DOCS / name).read_text(encoding="utf-8")
    return _SNIPPET.sub(lambda m: (ROOT / m.group(1)).read_text(encoding="utf-8"), text)


def blocks(text: str, language: str) -> list[str]:
    return re.findall(rf"^```{language}\n(.*?)^```", text, flags=re.S | re.M)


def _mkdocs_missing() -> str | None:
    for module in ("mkdocs", "material", "mkdocstrings", "mkdocstrings_handlers.python"):
        if importlib.util.find_spec(module.split(".")[0]) is None:
            return f"{module} is not installed (pip install -e '.[docs]')"
    return None


def test_the_site_builds_strictly_without_a_warning(tmp_path: Path) -> None:
    missing = _mkdocs_missing()
    if missing is not None:
        if os.environ.get("MATOME_REQUIRE_DOCS") == "1":
            pytest.fail(f"MATOME_REQUIRE_DOCS=1 but {missing}")
        pytest.skip(missing)
    site = tmp_path / "site"
    env = {**os.environ, "NO_MKDOCS_2_WARNING": "1"}
    done = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(site)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    output = done.stdout + done.stderr
    assert done.returncode == 0, output
    assert "WARNING" not in output, output
    for page in ("tutorial", "rules", "contract", "api", "changelog"):
        assert (site / page / "index.html").is_file(), page
    changelog = (site / "changelog" / "index.html").read_text(encoding="utf-8")
    versions = re.findall(r"^## \[([^\]]+)\]", page_text("changelog.md"), flags=re.M)
    assert versions, "CHANGELOG.md has no version headings"
    assert all(version in changelog for version in versions), versions
    api = (site / "api" / "index.html").read_text(encoding="utf-8")
    for name in ("matome.engine.Engine", "matome.errors.MatomeError", "matome.reference.text"):
        assert f'id="{name}"' in api, name


def test_the_rules_and_the_contract_pages_are_the_shipped_documents() -> None:
    """One source of truth: the site's pages include the package's files and add nothing."""
    for name in ("rules", "contract"):
        text = (DOCS / f"{name}.md").read_text(encoding="utf-8")
        assert _SNIPPET.findall(text) == [f"src/matome/reference/{name}.md"]
        assert not [line for line in text.splitlines() if line.startswith("#")]


def test_the_changelog_page_includes_the_changelog() -> None:
    assert _SNIPPET.findall((DOCS / "changelog.md").read_text(encoding="utf-8")) == ["CHANGELOG.md"]


@pytest.mark.parametrize("name", PAGES_WITH_CODE)
def test_the_python_examples_of_the_page_run(
    name: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, cheap_hashing: None
) -> None:
    monkeypatch.chdir(tmp_path)
    namespace: dict[str, Any] = {"__name__": f"docs_{name[:-3]}"}
    try:
        for block in blocks(page_text(name), "python"):
            exec(compile(block, str(DOCS / name), "exec"), namespace)
    finally:
        engine = namespace.get("engine")
        if isinstance(engine, Engine):
            engine.close()


def test_the_tutorial_has_examples_for_each_step() -> None:
    text = page_text("tutorial.md")
    assert len(blocks(text, "python")) >= 6
    assert "matome audit" in "\n".join(blocks(text, "sh"))


def test_the_tutorials_command_lines_run_on_the_store_it_built(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    cheap_hashing: None,
) -> None:
    """After the tutorial's Python, each of its ``matome`` lines exits 0, and the audit says
    what the page shows it saying."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("MATOME_DB", raising=False)
    text = page_text("tutorial.md")
    namespace: dict[str, Any] = {"__name__": "docs_tutorial"}
    for block in blocks(text, "python"):
        exec(compile(block, "tutorial.md", "exec"), namespace)
    lines = [
        shlex.split(line, comments=True)[1:]
        for block in blocks(text, "sh")
        for line in block.splitlines()
        if line.startswith("matome ")
    ]
    assert lines
    shown = "\n".join(blocks(text, "text"))
    for args in lines:
        capsys.readouterr()
        assert cli.main(args) == 0, args
        out = capsys.readouterr().out
        if args[0] == "audit":
            for rule in ("per_purchase", "purchase_month"):
                assert rule in shown
                assert rule in out
            assert "with no pro-rating (§4)" in out
            assert "the same as the bill issued" in out


def test_the_contracts_command_log_is_accepted_line_by_line(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    cheap_hashing: None,
) -> None:
    [log] = blocks(page_text("contract.md"), "jsonl")
    (tmp_path / "log.jsonl").write_text(log, encoding="utf-8")
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("MATOME_DB", raising=False)
    assert cli.main(["run", "log.jsonl", "--quiet"]) == 0
    results = capsys.readouterr().out.splitlines()
    assert len(results) == len(log.splitlines())
    assert all('"ok": true' in r for r in results), results


def test_the_contract_lists_every_error_code_and_the_order_of_refusals() -> None:
    """Every error code of a refusal is in the contract's table, and its order of refusals is
    the engine's (``matome.errors.REFUSAL_ORDER``)."""
    from matome import errors

    text = page_text("contract.md")
    table = re.findall(r"^\| `([a-z_]+)` \|", text.split("### Error codes")[1], flags=re.M)
    codes = {
        cls.code
        for cls in vars(errors).values()
        if isinstance(cls, type) and issubclass(cls, errors.MatomeError)
    } - {"error", "store_not_found", "store_unavailable"}
    assert codes <= set(table), codes - set(table)
    order = text.split("### Order of refusals")[1].split("\n## ")[0]
    listed = [re.findall(r"`([a-z_*]+)`", m) for m in re.findall(r"^\d+\. (.*)$", order, re.M)]
    expected = [list(rank) for rank in errors.REFUSAL_ORDER]
    expected = [["unknown_*"] if r[0].startswith("unknown_") else r for r in expected]
    # ``busy`` is not a rule's refusal: it is answered only when no decision could be saved.
    assert listed == [*expected, ["busy"]]


def test_the_api_reference_lists_every_command_method_and_the_contract_every_command() -> None:
    """The engine's command methods are generated (not seen by the docstring reader), so the
    API page lists them in a table: one row per command, and the contract has each too."""
    from matome import commands

    names = {
        k.NAME
        for k in vars(commands).values()
        if isinstance(k, type) and issubclass(k, commands.Command) and k is not commands.Command
    }
    assert len(names) >= 20
    assert all(callable(getattr(Engine, name)) for name in names)
    api = page_text("api.md").split("### Commands")[1].split("###")[0]
    assert set(re.findall(r"^\| `(\w+)` \|", api, flags=re.M)) == names
    contract = page_text("contract.md").split("### Commands")[1].split("###")[0]
    assert set(re.findall(r"^\| `(\w+)` \|", contract, flags=re.M)) == names


def test_the_contract_names_every_field_of_every_command() -> None:
    import attrs

    from matome import commands

    contract = page_text("contract.md").split("### Commands")[1].split("###")[0]
    rows = dict(re.findall(r"^\| `(\w+)` \| (.*) \|$", contract, flags=re.M))
    missing = [
        f"{k.NAME}.{field.name}"
        for k in vars(commands).values()
        if isinstance(k, type) and issubclass(k, commands.Command) and k is not commands.Command
        for field in attrs.fields(k)
        if field.name not in {"at", "key"} and f"`{field.name}`" not in rows[k.NAME]
    ]
    assert missing == []
