"""The architecture and design pages name only code that exists.

``docs/architecture.md`` and ``docs/design.md`` tell a reader where each job lives.  A module
renamed or split, and a page not updated, sends the reader to nothing; so every file path
(``src/matome/engine.py``, ``application/handlers.py``, ``tests/unit/test_deciders.py``,
``events/``) must exist and every dotted name (``matome.charging.until``) must import.
"""

from __future__ import annotations

import importlib
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PAGES = ["architecture.md", "design.md"]
#: Where a path the pages give relative to something is looked for: the repository, the
#: package (``engine.py``, ``application/``), the source tree.
BASES = [ROOT, ROOT / "src" / "matome", ROOT / "src"]

#: A Python file, with its directories: ``values.py``, ``src/matome/application/uow.py``.
_FILE = re.compile(r"(?<![\w/.<>*-])((?:[\w-]+/)*[\w-]+\.py)\b")
#: A directory in code: ``events/``, ``tests/fixtures/``.
_DIRECTORY = re.compile(r"`((?:[\w-]+/)+)`")
#: A dotted name under matome: ``matome.errors.REFUSAL_ORDER``.
_DOTTED = re.compile(r"(?<![\w/.-])(matome(?:\.[A-Za-z_]\w*)+)")


def _text(page: str) -> str:
    return (ROOT / "docs" / page).read_text(encoding="utf-8")


def _exists(relative: str) -> bool:
    return any((base / relative).exists() for base in BASES)


def _resolves(dotted: str) -> bool:
    """The longest importable module prefix, then attributes for the rest."""
    parts = dotted.split(".")
    for cut in range(len(parts), 0, -1):
        try:
            obj: object = importlib.import_module(".".join(parts[:cut]))
        except ModuleNotFoundError:
            continue
        for name in parts[cut:]:
            if not hasattr(obj, name):
                return False
            obj = getattr(obj, name)
        return True
    return False


@pytest.mark.parametrize("page", PAGES)
def test_every_file_and_directory_a_page_names_exists(page: str) -> None:
    text = _text(page)
    paths = set(_FILE.findall(text)) | set(_DIRECTORY.findall(text))
    assert paths, f"{page} names no file: the pattern is wrong"
    assert sorted(p for p in paths if not _exists(p)) == []


@pytest.mark.parametrize("page", PAGES)
def test_every_dotted_name_a_page_gives_imports(page: str) -> None:
    names = set(_DOTTED.findall(_text(page)))
    assert names, f"{page} names no module: the pattern is wrong"
    assert sorted(n for n in names if not _resolves(n)) == []


def test_the_checks_catch_a_name_that_does_not_exist() -> None:
    assert not _exists("matome_recorders.py")
    assert not _resolves("matome.recorders")
    assert not _resolves("matome.charging.no_such_rule")
    assert _resolves("matome.charging.until")
