"""Plain-text tables for people (``--json`` gives the contract's documents instead)."""

from __future__ import annotations

import unicodedata
from collections.abc import Sequence
from typing import Any

__all__ = ["bill_table", "table", "width"]


def width(text: str) -> int:
    """Display width in a terminal: East Asian wide and full-width characters take two cells."""
    return sum(2 if unicodedata.east_asian_width(ch) in "WF" else 1 for ch in text)


def _pad(text: str, cells: int, right: bool) -> str:
    gap = " " * max(cells - width(text), 0)
    return gap + text if right else text + gap


def _cell(value: Any) -> str:
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int):
        return f"{value:,}"
    if value is None:
        return "-"
    if isinstance(value, list | tuple):
        return ", ".join(str(v) for v in value) or "-"
    return str(value)


def table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    """Columns aligned by display width; numbers right-aligned with thousands separators."""
    cells = [[_cell(v) for v in row] for row in rows]
    numeric = [
        bool(rows) and all(isinstance(r[i], int) and not isinstance(r[i], bool) for r in rows)
        for i in range(len(headers))
    ]
    widths = [max([width(h)] + [width(r[i]) for r in cells]) for i, h in enumerate(headers)]
    lines = [
        "  ".join(_pad(h, widths[i], numeric[i]) for i, h in enumerate(headers)).rstrip(),
        "  ".join("-" * w for w in widths),
    ]
    for row in cells:
        lines.append("  ".join(_pad(v, widths[i], numeric[i]) for i, v in enumerate(row)).rstrip())
    if not rows:
        lines.append("(none)")
    return "\n".join(lines)


def bill_table(bill: dict[str, Any]) -> str:
    """A bill as a person reads it: heading, one row per provider, subtotal, then charges."""
    account = bill["billing_account"]
    payer = account.get("number") or f"via {account.get('representative')}"
    head = (
        f"Bill {bill['customer_id']}  {bill['month']}  [{bill['status']}]  "
        f"issue date {bill['issue_date']}  billed to {account['method']} {payer}"
    )
    rows = table(
        ["provider", "name", "label", "amount"],
        [[r["provider"], r["provider_name"], r["label"], r["amount"]] for r in bill["rows"]],
    )
    charges = table(
        ["receipt", "passport", "provider", "service", "pricing", "started", "amount"],
        [
            [
                c["receipt"],
                c["passport_id"],
                c["provider"],
                c["service"],
                c["pricing"],
                c["started_on"],
                c["amount"],
            ]
            for c in bill["charges"]
        ],
    )
    return f"{head}\n{rows}\nsubtotal: {bill['subtotal']:,} yen\n\ncharges:\n{charges}"
