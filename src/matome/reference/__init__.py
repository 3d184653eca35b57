"""The reference documents shipped with matome: the rules it enforces and its contract.

An installed matome carries its own reference, so that a service using it can read what the
engine decides without the source tree or the documentation site:

- ``rules.md`` — every business rule, numbered by section (§1–§10), with the code that
  decides it and the tests that check it;
- ``contract.md`` — the interchange contract: the command log, the result objects, the error
  codes and the order of refusals, the JSON documents, and the command line;
- ``command-log.schema.json`` — the JSON Schema of one line of a command log (``matome schema``
  prints it).

These files are the single source of the "Domain rules" and "Interchange contract" pages of
the documentation site.  Their relative links (``design.md#…``) point to other pages of that
site.

Example:
    ```python
    from matome import reference

    rules = reference.text("rules")
    assert rules.startswith("# The business rules")
    assert "contract.md" in reference.names()
    ```
"""

from __future__ import annotations

from importlib import resources

__all__ = ["names", "text"]


def names() -> list[str]:
    """The file names of the shipped reference documents, sorted (``["contract.md", …]``)."""
    root = resources.files(__name__)
    return sorted(
        entry.name
        for entry in root.iterdir()
        if entry.is_file() and not entry.name.endswith((".py", ".pyc"))
    )


def text(name: str) -> str:
    """The text of the shipped reference document ``name``.

    Args:
        name: a document's file name (``"rules.md"``, ``"contract.md"``), or a Markdown
            document's name without its suffix (``"rules"``, ``"contract"``).

    Returns:
        The document's text, decoded as UTF-8.

    Raises:
        LookupError: matome ships no document of that name; the message lists those it ships.
    """
    available = names()
    for candidate in (name, f"{name}.md"):
        if candidate in available:
            return resources.files(__name__).joinpath(candidate).read_text(encoding="utf-8")
    raise LookupError(
        f"matome ships no reference document {name!r}; it ships: {', '.join(available)}"
    )
