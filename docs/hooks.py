"""MkDocs hooks for this site (``hooks:`` in mkdocs.yml).

- **Root files included in a page.**  ``docs/changelog.md`` includes ``CHANGELOG.md`` from the
  repository root (``--8<-- "CHANGELOG.md"``).  That file links to the pages as a reader of
  the repository sees them (``docs/rules.md``); on the site the pages are siblings
  (``rules.md``).  The include of a file at the root is expanded here, with those links
  rebased, before the page is rendered and its links are checked.
- **reStructuredText roles.**  matome's docstrings cross-reference in roles
  (``:class:`matome.Engine```), which Markdown renders as the role's name followed by the
  code.  The role is dropped and the code kept; a ``~`` prefix keeps only the last component
  of the name, as in Sphinx.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

#: A snippet include of a file at the repository root (no directory): ``--8<-- "NAME.md"``.
_ROOT_SNIPPET = re.compile(r'^--8<-- "([^"/]+\.md)"\s*$', flags=re.M)
#: A Markdown link to a page of the site, written from the repository root.
_ROOT_LINK = re.compile(r"\]\(docs/([^)\s]+)\)")
_ROLE = re.compile(r":(?:class|func|meth|mod|data|attr|exc|obj):<code>(~?)([^<]*)</code>")


def _code(match: re.Match[str]) -> str:
    short, name = match.groups()
    return f"<code>{name.rsplit('.', 1)[-1] if short else name}</code>"


def on_page_markdown(markdown: str, config: Any, **kwargs: Any) -> str:
    """The page's Markdown with each root file it includes expanded, its links rebased."""
    root = Path(config["config_file_path"]).parent

    def include(match: re.Match[str]) -> str:
        text = (root / match.group(1)).read_text(encoding="utf-8")
        return _ROOT_LINK.sub(r"](\1)", text)

    return _ROOT_SNIPPET.sub(include, markdown)


def on_page_content(html: str, **kwargs: Any) -> str:
    """The page's HTML with every reStructuredText role shown as plain code."""
    return _ROLE.sub(_code, html)
