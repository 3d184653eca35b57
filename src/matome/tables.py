"""Plain-text tables for people (``--json`` gives the contract's documents instead)."""

from __future__ import annotations

import unicodedata
from collections.abc import Sequence
from typing import Any

from matome.documents import (
    Audit,
    Bill,
    Contact,
    ContinuityRow,
    ProviderTotal,
    SettlementLine,
    Statement,
    UsageStatus,
    Verification,
)
from matome.values import Consolidated, Yen

__all__ = [
    "audit_table",
    "bill_table",
    "contacts_table",
    "continuity_table",
    "provider_totals_table",
    "settlement_table",
    "statement_table",
    "table",
    "usage_status_table",
    "verification_table",
    "width",
]


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
    return str(value)  # value types print their text (CustomerId, PassportId, dates, ...)


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


def bill_table(bill: Bill) -> str:
    """A bill as a person reads it: heading, one row per provider, subtotal, then charges."""
    account = bill.billing_account
    payer = f"via {account.representative}" if isinstance(account, Consolidated) else account.number
    head = (
        f"Bill {bill.customer_id}  {bill.month}  [{bill.status.value}]  "
        f"issue date {bill.issue_date}  billed to {account.method} {payer}"
    )
    rows = table(
        ["provider", "name", "label", "amount"],
        [[r.provider, r.provider_name, r.label, r.amount.amount] for r in bill.rows],
    )
    charges = table(
        ["receipt", "passport", "provider", "service", "pricing", "started", "amount"],
        [
            [
                c.receipt,
                c.passport_id,
                c.provider,
                c.service,
                c.pricing.value,
                c.started_on,
                c.amount.amount,
            ]
            for c in bill.charges
        ],
    )
    return f"{head}\n{rows}\nsubtotal: {bill.subtotal.amount:,} yen\n\ncharges:\n{charges}"


def statement_table(doc: Statement) -> str:
    """A page of the usage statement [ご利用明細]."""
    head = (
        f"Usage statement {doc.customer_id}  {doc.month}  page {doc.page} "
        f"({len(doc.rows)} of {doc.total} rows)"
    )
    body = table(
        ["receipt", "passport", "provider", "unit price", "qty", "amount", "started"],
        [
            [
                r.receipt,
                r.passport_id,
                r.provider_name,
                r.unit_price.amount,
                r.quantity,
                r.amount.amount,
                r.started_on,
            ]
            for r in doc.rows
        ],
    )
    return f"{head}\n{body}"


def provider_totals_table(doc: Sequence[ProviderTotal]) -> str:
    return table(
        ["provider", "lines", "amount"], [[r.provider, r.lines, r.amount.amount] for r in doc]
    )


def contacts_table(doc: Sequence[Contact]) -> str:
    return table(["provider", "name", "contact"], [[r.provider, r.name, r.contact] for r in doc])


def settlement_table(doc: Sequence[SettlementLine]) -> str:
    def yen(value: Yen | None) -> int | None:
        return None if value is None else value.amount

    return table(
        ["provider", "operator", "gross", "lines", "average/line", "fee", "tax", "net", "status"],
        [
            [
                r.provider,
                r.operator.value,
                r.gross.amount,
                r.lines,
                r.average_per_line,
                yen(r.fee),
                yen(r.tax),
                yen(r.net),
                r.status.value,
            ]
            for r in doc
        ],
    )


def continuity_table(doc: Sequence[ContinuityRow]) -> str:
    return table(
        ["customer ID", "at", "change", "new ID", "kept", "cancelled", "deleted"],
        [
            [
                r.customer_id,
                r.at.isoformat(),
                r.change.value,
                r.new_customer_id,
                r.kept,
                list(r.cancelled),
                list(r.deleted),
            ]
            for r in doc
        ],
    )


def usage_status_table(doc: UsageStatus) -> str:
    """A line's status and its Passport IDs, as the service page lists them (§2)."""
    head = f"Line {doc.customer_id}  [{doc.status}]"
    body = table(
        ["passport", "status", "limit", "line auth"],
        [[p.passport_id, p.status, p.limit.amount, p.line_auth] for p in doc.passports],
    )
    return f"{head}\n{body}"


def audit_table(doc: Audit) -> str:
    """A bill and why each yen was — or was not — charged, for support staff and auditors."""
    cut = []
    if doc.as_of is not None:
        cut.append(f"as of {doc.as_of.isoformat()}")
    if doc.recorded_as_of is not None:
        cut.append(f"as recorded by {doc.recorded_as_of.isoformat()}")
    head = f"Audit {doc.customer_id}  {doc.month}  {' '.join(cut) or 'now'}"
    explained = table(
        ["receipt", "passport", "provider", "service", "charged", "amount", "rule", "why"],
        [
            [
                e.receipt,
                e.passport_id,
                e.provider,
                e.service,
                e.charged,
                e.amount.amount,
                e.rule.value,
                e.why,
            ]
            for e in doc.explanations
        ],
    )
    parts = [head, bill_table(doc.bill), "", "why:", explained]
    if doc.issued is not None:
        same = "the same as" if not doc.differences else "DIFFERENT from"
        parts += ["", f"the bill recomputed from the events is {same} the bill issued"]
        for d in doc.differences:
            was = "-" if d.issued is None else f"{d.issued.amount:,}"
            now = "-" if d.now is None else f"{d.now.amount:,}"
            parts.append(f"  {d.receipt} {d.kind.value}: issued {was}, now {now}: {d.why}")
    for later in doc.after_issue:
        parts.append(f"  later: {later.receipt} {later.event.type}: {later.why}")
    return "\n".join(parts)


def verification_table(doc: Verification) -> str:
    """What ``matome verify`` checked, and every break it found (the first one first)."""
    verdict = "OK: the history is intact" if doc.ok else f"BROKEN: {len(doc.breaks)} break(s)"
    head = (
        f"{verdict}\n{doc.events:,} events in {doc.streams:,} streams "
        f"({doc.chained:,} with a recorded hash), {doc.bills:,} issued bills checked\n"
        f"seal {doc.seal}"
    )
    if doc.ok:
        return head
    body = table(
        ["position", "stream", "version", "kind", "what"],
        [[b.position, b.stream, b.version, b.kind.value, b.message] for b in doc.breaks],
    )
    return f"{head}\n{body}"
