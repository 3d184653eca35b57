"""The rules and the contract ship in the package, and an installed matome can read them."""

from __future__ import annotations

import fnmatch
import re
import textwrap
import tomllib
from importlib import resources
from pathlib import Path

import pytest

from matome import reference

ROOT = Path(__file__).resolve().parents[2]
SOURCE = ROOT / "src" / "matome" / "reference"


def test_the_rules_and_the_contract_are_package_resources() -> None:
    """Read the way any installed package is read: through importlib.resources."""
    files = resources.files("matome.reference")
    rules = files.joinpath("rules.md").read_text(encoding="utf-8")
    contract = files.joinpath("contract.md").read_text(encoding="utf-8")
    assert rules.startswith("# The business rules")
    assert "## 10. Credentials" in rules
    assert contract.startswith("# The interchange contract")
    assert "## Changes in contract 2" in contract


def test_text_answers_a_shipped_document_by_name_with_or_without_its_suffix() -> None:
    files = resources.files("matome.reference")
    for name in ("rules", "contract"):
        shipped = files.joinpath(f"{name}.md").read_text(encoding="utf-8")
        assert reference.text(name) == shipped
        assert reference.text(f"{name}.md") == shipped
    assert {"contract.md", "rules.md"} <= set(reference.names())
    assert "__init__.py" not in reference.names()


def test_text_refuses_a_name_it_does_not_ship_and_lists_those_it_does() -> None:
    with pytest.raises(LookupError, match=r"'DOMAIN'.*contract\.md.*rules\.md"):
        reference.text("DOMAIN")
    with pytest.raises(LookupError):
        reference.text("../__init__.py")


def test_the_wheel_ships_every_reference_document() -> None:
    """``[tool.setuptools.package-data]`` names every Markdown file of ``matome/reference``,
    so that a built wheel carries them (setuptools ships no data file it is not told of)."""
    config = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    patterns = config["tool"]["setuptools"]["package-data"]["matome"]
    for path in SOURCE.glob("*.md"):
        relative = f"reference/{path.name}"
        assert any(fnmatch.fnmatch(relative, p) for p in patterns), relative


def test_the_module_docstring_example_runs() -> None:
    doc = reference.__doc__
    assert doc is not None
    [example] = re.findall(r"```python\n(.*?)```", doc, flags=re.S)
    exec(compile(textwrap.dedent(example), "matome.reference", "exec"), {})
