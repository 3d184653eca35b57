"""The rules page cannot rot: every function it names imports, every test it names exists.

The page's text ships in the package (``src/matome/reference/rules.md``, read with
``matome.reference.text("rules")``); the site's ``docs/rules.md`` includes it, so its relative
links are resolved from ``docs/``.

The page maps each business rule to the code that decides it (a backticked dotted name,
``matome.charging.last_charged_month``) and the tests that check it (a backticked pytest node
id, ``tests/unit/test_charging.py::test_pattern_6_...``).  These tests resolve every name by
import and find every test function in its file, check that each rule row names both, and that
the page's links land on headings that exist.  The last test feeds the same checks a page with
broken references, so that they are known to fail when they should.
"""

from __future__ import annotations

import importlib
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
DOCS = ROOT / "docs"
#: Where the page is rendered: its links are relative to this.
RULES = DOCS / "rules.md"
#: The page's text, shipped in the package.
SOURCE = ROOT / "src" / "matome" / "reference" / "rules.md"

#: A backticked span on one line.
_SPAN = re.compile(r"`([^`\n]+)`")
#: A reference to matome's code: ``matome.module[.Class][.function]``.
_CODE_REF = re.compile(r"matome(?:\.[A-Za-z_]\w*)+")
#: A pytest node id: ``tests/dir/test_file.py::test_name`` (or ``::Class::test_name``),
#: optionally with a parametrisation id.
_TEST_REF = re.compile(r"(tests/[\w/]+\.py)((?:::\w+)+)(?:\[[^\]]*\])?")
#: Any dotted name: it must be a matome reference, or it would escape the import check.
_DOTTED = re.compile(r"[a-z_]\w*(?:\.[A-Za-z_]\w*)+")
_FILE_NAME = re.compile(r".*\.(md|py|pyi|json|jsonl|toml|sqlite|html)")
#: A rule row of a table: ``| 4.6 | rule | decided in | checked by |``.
_RULE_ROW = re.compile(r"^\|\s*((?:\d+|R)\.\d+)\s*\|(.*)\|\s*$")
_LINK = re.compile(r"\]\(([^)\s]+)\)")
_HEADING = re.compile(r"^#{1,6}\s+(.*?)\s*$", flags=re.M)


def _spans(text: str) -> list[str]:
    return [s.strip() for s in _SPAN.findall(text)]


def code_refs(text: str) -> list[str]:
    """The backticked references to matome's code, in order, each once."""
    return list(dict.fromkeys(s for s in _spans(text) if _CODE_REF.fullmatch(s)))


def node_ids(text: str) -> list[str]:
    """The backticked pytest node ids, in order, each once."""
    return list(dict.fromkeys(s for s in _spans(text) if _TEST_REF.fullmatch(s)))


def resolve(name: str) -> object:
    """Import the longest module prefix of ``name`` and get the rest as attributes.

    Raises ``LookupError`` naming what is missing.
    """
    parts = name.split(".")
    for cut in range(len(parts), 0, -1):
        module_name = ".".join(parts[:cut])
        try:
            obj: object = importlib.import_module(module_name)
        except ModuleNotFoundError as e:
            # Only "this prefix is not a module" moves on to a shorter prefix; a module that
            # exists but fails to import is an error of its own.
            if e.name is None or not (module_name + ".").startswith(e.name + "."):
                raise
            continue
        for i, attribute in enumerate(parts[cut:], start=cut):
            try:
                obj = getattr(obj, attribute)
            except AttributeError:
                raise LookupError(f"{'.'.join(parts[:i])} has no attribute {attribute!r}") from None
        return obj
    raise LookupError(f"no module {parts[0]!r}")


def broken_code_refs(text: str) -> list[str]:
    """Each code reference that does not resolve, with the reason."""
    broken = []
    for ref in code_refs(text):
        try:
            resolve(ref)
        except (LookupError, ImportError) as e:
            broken.append(f"{ref}: {e}")
    return broken


def _defines(source: str, names: list[str]) -> bool:
    """Whether ``source`` defines the test ``names``: a function, or a class then a method."""
    *classes, function = names
    position = 0
    for cls in classes:
        m = re.compile(rf"^\s*class\s+{re.escape(cls)}\b", flags=re.M).search(source, position)
        if m is None:
            return False
        position = m.end()
    pattern = re.compile(rf"^\s*(?:async\s+)?def\s+{re.escape(function)}\s*\(", flags=re.M)
    return pattern.search(source, position) is not None


def broken_node_ids(text: str, root: Path = ROOT) -> list[str]:
    """Each test reference whose file is missing or does not define the test."""
    broken = []
    sources: dict[Path, str] = {}
    for ref in node_ids(text):
        m = _TEST_REF.fullmatch(ref)
        assert m is not None
        path = root / m.group(1)
        if not path.is_file():
            broken.append(f"{ref}: no file {m.group(1)}")
            continue
        if path not in sources:
            sources[path] = path.read_text(encoding="utf-8")
        if not _defines(sources[path], m.group(2).split("::")[1:]):
            broken.append(f"{ref}: {m.group(1)} defines no such test")
    return broken


def unchecked_references(text: str) -> list[str]:
    """Backticked names that look like references but would escape the checks: a dotted name
    that is neither a matome reference nor a file name (a shorthand like ``charging.spend``),
    or a test reference that is not a node id (``tests/x.py:test_y``)."""
    return [
        s
        for s in dict.fromkeys(_spans(text))
        if (_DOTTED.fullmatch(s) and not _CODE_REF.fullmatch(s) and not _FILE_NAME.fullmatch(s))
        or (s.startswith("tests/") and ":" in s and not _TEST_REF.fullmatch(s))
    ]


def _cells(row: str) -> list[str]:
    return [c.strip() for c in row.strip().strip("|").split("|")]


def rules_without_code_or_tests(text: str) -> list[str]:
    """Each rule row (``| 4.6 | … |``) that names no code or no test, or repeats a number."""
    problems = []
    seen: set[str] = set()
    for line in text.splitlines():
        m = _RULE_ROW.match(line)
        if m is None:
            continue
        number = m.group(1)
        if number in seen:
            problems.append(f"rule {number}: numbered twice")
        seen.add(number)
        cells = _cells(line)
        if len(cells) != 4:
            problems.append(f"rule {number}: {len(cells)} cells, not 4 (# | rule | code | tests)")
            continue
        if not code_refs(cells[2]):
            problems.append(f"rule {number}: names no code that decides it")
        if not node_ids(cells[3]):
            problems.append(f"rule {number}: names no test that checks it")
    return problems


def slug(heading: str) -> str:
    """GitHub's anchor for a heading: lower case, punctuation dropped, spaces to hyphens."""
    return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


#: A snippet include of a site page: ``--8<-- "path/from/the/repository/root"``.
_SNIPPET = re.compile(r'^--8<-- "([^"]+)"\s*$', flags=re.M)


def _read_page(path: Path) -> str:
    """A page of the site as mkdocs renders it: with its snippet includes expanded."""
    text = path.read_text(encoding="utf-8")
    return _SNIPPET.sub(lambda m: (ROOT / m.group(1)).read_text(encoding="utf-8"), text)


def broken_links(text: str, here: Path = RULES) -> list[str]:
    """Relative links to a file that does not exist, or to an anchor no heading has."""
    broken = []
    for target in dict.fromkeys(_LINK.findall(text)):
        if re.match(r"[a-z]+:", target):
            continue  # an absolute URL: not checked offline
        file_part, _, anchor = target.partition("#")
        path = (here.parent / file_part) if file_part else here
        if not path.is_file():
            broken.append(f"{target}: no file {file_part}")
            continue
        if anchor:
            content = text if path == here else _read_page(path)
            if anchor not in {slug(h) for h in _HEADING.findall(content)}:
                broken.append(f"{target}: no heading with anchor #{anchor}")
    return broken


# ---------------------------------------------------------------------------------------------


def _page() -> str:
    return SOURCE.read_text(encoding="utf-8")


def test_the_page_names_code_and_tests_for_many_rules() -> None:
    """A guard on the parser: an empty result would make every other check pass vacuously."""
    text = _page()
    assert len(code_refs(text)) >= 100
    assert len(node_ids(text)) >= 200
    assert sum(1 for line in text.splitlines() if _RULE_ROW.match(line)) >= 80


def test_every_code_reference_imports() -> None:
    assert broken_code_refs(_page()) == []


def test_every_test_reference_exists() -> None:
    assert broken_node_ids(_page()) == []


def test_every_reference_is_written_so_that_it_is_checked() -> None:
    assert unchecked_references(_page()) == []


def test_every_rule_names_the_code_that_decides_it_and_the_tests_that_check_it() -> None:
    assert rules_without_code_or_tests(_page()) == []


def test_every_section_of_the_specification_is_there_in_order_and_the_gaps_last() -> None:
    """Sections keep the specification's numbers (§1–§11), so citations can be followed."""
    headings = re.findall(r"^## (.*)$", _page(), flags=re.M)
    numbered = [int(m.group(1)) for h in headings if (m := re.match(r"(\d+)\. ", h))]
    assert numbered == list(range(1, 12))
    assert headings[-1] == "Gaps"


def test_every_link_lands_on_a_file_and_heading_that_exist() -> None:
    assert broken_links(_page()) == []


def test_the_checks_catch_broken_references(tmp_path: Path) -> None:
    """The checks can fail: a page naming a function, a test, a file and an anchor that do not
    exist, a shorthand name and a rule without tests is reported on every count."""
    (tmp_path / "tests").mkdir()
    (tmp_path / "tests" / "test_x.py").write_text(
        "class TestA:\n    def test_in_class(self) -> None: ...\n\ndef test_here() -> None: ...\n",
        encoding="utf-8",
    )
    page = tmp_path / "rules.md"
    text = (
        "| # | Rule | Decided in | Checked by |\n"
        "|---|---|---|---|\n"
        "| 1.1 | ok | `matome.charging.last_charged_month` | `tests/test_x.py::test_here` |\n"
        "| 1.2 | gone | `matome.charging.no_such_rule` | `tests/test_x.py::test_gone` |\n"
        "| 1.3 | no test | `matome.no_such_module.f` | `tests/test_x.py::TestA::test_in_class` |\n"
        "| 1.3 | again | `matome.values.Yen.no_such_method` | none |\n"
        "See `charging.spend`, `tests/test_x.py:test_here`, `tests/missing.py::test_x`,"
        " `tests/test_x.py::TestB::test_here`,"
        " [a](#no-such-heading), [b](missing.md) and [c](#rule).\n\n## Rule\n"
    )
    page.write_text(text, encoding="utf-8")

    assert [b.split(":")[0] for b in broken_code_refs(text)] == [
        "matome.charging.no_such_rule",
        "matome.no_such_module.f",
        "matome.values.Yen.no_such_method",
    ]
    assert [b.split(": ")[0] for b in broken_node_ids(text, root=tmp_path)] == [
        "tests/test_x.py::test_gone",
        "tests/missing.py::test_x",
        "tests/test_x.py::TestB::test_here",
    ]
    assert unchecked_references(text) == ["charging.spend", "tests/test_x.py:test_here"]
    assert rules_without_code_or_tests(text) == [
        "rule 1.3: numbered twice",
        "rule 1.3: names no test that checks it",
    ]
    assert [b.split(":")[0] for b in broken_links(text, here=page)] == [
        "#no-such-heading",
        "missing.md",
    ]
    assert resolve("matome.charging.last_charged_month") is not None
