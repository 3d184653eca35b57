"""Code, tests and pages cite the project's own documents.

The rules are ``docs/rules.md`` (its § numbers are the domain specification's) and the
interchange contract is ``docs/contract.md``; both ship in the package
(``src/matome/reference/``).  The specification files matome was first built from are not part
of the project, so a citation of one sends the reader nowhere.
"""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
#: The documents that are not part of the project, and what replaces each.
GONE = {"DOMAIN.md": "docs/rules.md §N", "INTERCHANGE.md": "docs/contract.md and its section"}
_GONE = re.compile("|".join(re.escape(name) for name in GONE))


def _texts() -> list[Path]:
    paths = [ROOT / "README.md", ROOT / "CHANGELOG.md"]
    for top in ("src", "tests", "docs", "bench", "examples"):
        paths += [p for p in (ROOT / top).rglob("*") if p.suffix in {".py", ".md", ".json"}]
    return [p for p in paths if p.is_file() and p != Path(__file__).resolve()]


def test_no_file_cites_a_specification_that_is_not_part_of_the_project() -> None:
    found = [
        f"{path.relative_to(ROOT)}:{number}"
        for path in _texts()
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1)
        if _GONE.search(line)
    ]
    assert found == [], f"cite {GONE} instead: {found}"
