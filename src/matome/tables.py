"""Plain-text tables for people (``--json`` gives the contract's documents instead), and the
same rows as CSV (``--csv``, through the :mod:`csv` module).

Every tabular document has one ``*_rows`` function giving its column names and rows of plain
values (whole yen as ``int``); the text table and the CSV are both written from it, so the two
never disagree.
"""

from __future__ import annotations

import csv
import io
import re
import unicodedata
from collections.abc import Mapping, Sequence
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
    "PREVIEW_MARK",
    "Rows",
    "audit_table",
    "bill_rows",
    "bill_table",
    "contacts_rows",
    "contacts_table",
    "continuity_rows",
    "continuity_table",
    "highlight",
    "provider_totals_rows",
    "provider_totals_table",
    "settlement_rows",
    "settlement_table",
    "statement_rows",
    "statement_table",
    "table",
    "to_csv",
    "usage_status_rows",
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


#: Column names and rows of plain values: what a table and a CSV are written from.
Rows = tuple[list[str], list[list[Any]]]

#: The word that marks a document of a month not yet closed: its amounts may still change.
PREVIEW_MARK = "PREVIEW"


#: What a spreadsheet reads as the start of a formula (or, for tab and carriage return, of a
#: cell it may re-split): such a cell is written with a leading ``'`` (contract 3, "Output that
#: cannot hurt its reader").  A ``-`` that starts a number is a number, and stays one.
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")
_NUMBER = re.compile(r"-?[0-9]+(?:\.[0-9]+)?")


def _defused(text: str) -> str:
    """``text`` as a CSV cell no spreadsheet runs: a provider's name, a service's name or a
    refund's reason comes from a command log, and ``=HYPERLINK(...)`` there must reach the
    operator's spreadsheet as text."""
    if text.startswith(_FORMULA_START) and not _NUMBER.fullmatch(text):
        return "'" + text
    return text


def _csv_cell(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return ""
    if isinstance(value, int):
        return str(value)  # whole yen, negative for a refund: a number
    if isinstance(value, list | tuple):
        return _defused(" ".join(str(v) for v in value))
    return _defused(str(value))


def to_csv(rows: Rows) -> str:
    """``rows`` as CSV (RFC 4180 quoting, ``\r\n`` line ends, the header first): whole yen
    without separators, booleans ``true``/``false``, nothing for a missing value, and a
    ``'`` before a text that a spreadsheet would take for a formula."""
    headers, body = rows
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(headers)
    writer.writerows([_csv_cell(v) for v in row] for row in body)
    return out.getvalue()


_MARKERS = re.compile(rf"^(?:{PREVIEW_MARK}:|BROKEN:|OK:)|\[{PREVIEW_MARK}\]", flags=re.M)
_COLOURS = {"B": "31", "O": "32"}  # red, green; a preview is yellow (33)


def highlight(text: str) -> str:
    """``text`` with its markers in colour (ANSI), for a terminal: a preview in yellow, a
    broken history in red, an intact one in green."""
    return _MARKERS.sub(lambda m: f"\x1b[{_COLOURS.get(m[0][0], '33')}m{m[0]}\x1b[0m", text)


def _kind(kind: Any) -> str:
    return str(getattr(kind, "value", kind))


def bill_rows(bill: Bill) -> Rows:
    """A bill's charges, one row each (a refund is a ``refund`` row with its reason), with the
    bill's line, month and status on every row."""
    return (
        [
            "customer_id",
            "month",
            "status",
            "provider",
            "receipt",
            "passport_id",
            "service",
            "pricing",
            "kind",
            "unit_price",
            "quantity",
            "amount",
            "started_on",
            "reason",
        ],
        [
            [
                bill.customer_id,
                bill.month,
                bill.status.value,
                c.provider,
                c.receipt,
                c.passport_id,
                c.service,
                c.pricing.value,
                c.kind.value,
                c.unit_price.amount,
                c.quantity,
                c.amount.amount,
                c.started_on,
                c.reason,
            ]
            for c in bill.charges
        ],
    )


def bill_table(bill: Bill) -> str:
    """A bill as a person reads it: heading, one row per provider, subtotal, then charges (a
    refund shows as a ``refund`` row with its reason)."""
    account = bill.billing_account
    payer = f"via {account.representative}" if isinstance(account, Consolidated) else account.number
    status = PREVIEW_MARK if bill.status.value == "preview" else bill.status.value
    head = (
        f"Bill {bill.customer_id}  {bill.month}  [{status}]  "
        f"issue date {bill.issue_date}  billed to {account.method} {payer}"
    )
    rows = table(
        ["provider", "name", "label", "amount"],
        [[r.provider, r.provider_name, r.label, r.amount.amount] for r in bill.rows],
    )
    charges = table(
        ["receipt", "passport", "provider", "service", "kind", "started", "amount", "reason"],
        [
            [
                c.receipt,
                c.passport_id,
                c.provider,
                c.service,
                c.kind.value,
                c.started_on,
                c.amount.amount,
                c.reason,
            ]
            for c in bill.charges
        ],
    )
    return f"{head}\n{rows}\nsubtotal: {bill.subtotal.amount:,} yen\n\ncharges:\n{charges}"


def statement_rows(doc: Statement, reasons: Mapping[str, str] | None = None) -> Rows:
    """The rows of a statement page; ``reasons`` (receipt → a refund's reason, from the bill)
    fills the reason of refund rows.  A page with a purchase that has a service period
    (docs/rules.md §11, contract 3) adds the column ``ends_on``; no other page has it, so every
    page of a contract-2 log keeps its exact columns."""
    reasons = reasons or {}
    ends = any(r.ends_on is not None for r in doc.rows)
    head, rows = (
        [
            "receipt",
            "passport_id",
            "provider",
            "provider_name",
            "service_name",
            "kind",
            "unit_price",
            "quantity",
            "amount",
            "started_on",
            "reason",
        ],
        [
            [
                r.receipt,
                r.passport_id,
                r.provider,
                r.provider_name,
                r.service_name,
                _kind(r.kind),
                r.unit_price.amount,
                r.quantity,
                r.amount.amount,
                r.started_on,
                reasons.get(r.receipt) if _kind(r.kind) == "refund" else None,
            ]
            for r in doc.rows
        ],
    )
    if ends:
        head.append("ends_on")
        for row, r in zip(rows, doc.rows, strict=True):
            row.append(r.ends_on)
    return head, rows


def statement_table(doc: Statement, reasons: Mapping[str, str] | None = None) -> str:
    """A page of the usage statement [ご利用明細]: a refund is a ``refund`` row (its amount
    negative) with its reason."""
    head = (
        f"Usage statement {doc.customer_id}  {doc.month}  page {doc.page} "
        f"({len(doc.rows)} of {doc.total} rows)"
    )
    columns, rows = statement_rows(doc, reasons)
    ends = columns[-1] == "ends_on"  # §11: an item's access end, a subscription's period end
    body = table(
        [
            "receipt",
            "passport",
            "provider",
            "kind",
            "unit price",
            "qty",
            "amount",
            "started",
            "reason",
            *(["ends"] if ends else []),
        ],
        [[r[0], r[1], r[3], r[5], r[6], r[7], r[8], r[9], r[10], *r[11:]] for r in rows],
    )
    return f"{head}\n{body}"


def provider_totals_rows(doc: Sequence[ProviderTotal]) -> Rows:
    return ["provider", "lines", "amount"], [[r.provider, r.lines, r.amount.amount] for r in doc]


def provider_totals_table(doc: Sequence[ProviderTotal]) -> str:
    return table(*provider_totals_rows(doc))


def contacts_rows(doc: Sequence[Contact]) -> Rows:
    return ["provider", "name", "contact"], [[r.provider, r.name, r.contact] for r in doc]


def contacts_table(doc: Sequence[Contact]) -> str:
    return table(*contacts_rows(doc))


_SETTLEMENT_COLUMNS = (
    "provider",
    "operator",
    "gross",
    "lines",
    "average_per_line",
    "fee",
    "tax",
    "net",
    "status",
)


def settlement_rows(doc: Sequence[SettlementLine], preview: bool = False) -> Rows:
    """Settlement lines; ``preview``: the month is not closed yet (a column says so)."""

    def yen(value: Yen | None) -> int | None:
        return None if value is None else value.amount

    return (
        [*_SETTLEMENT_COLUMNS, "preview"],
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
                preview,
            ]
            for r in doc
        ],
    )


def settlement_table(
    doc: Sequence[SettlementLine], month: Any = None, closed_through: Any = None
) -> str:
    """Settlement lines; when ``month`` is given and is after ``closed_through``, a heading
    marks the whole table as a preview (the month is not closed: amounts may still change)."""
    preview = month is not None and (closed_through is None or str(month) > str(closed_through))
    _, rows = settlement_rows(doc)
    body = table(
        ["provider", "operator", "gross", "lines", "average/line", "fee", "tax", "net", "status"],
        [r[:-1] for r in rows],
    )
    if not preview:
        return body
    closed = f"closed through {closed_through}" if closed_through else "no month closed yet"
    return (
        f"{PREVIEW_MARK}: {month} is not closed yet ({closed}); these amounts may still change "
        f"until issue_bills closes it\n{body}"
    )


def continuity_rows(doc: Sequence[ContinuityRow]) -> Rows:
    return (
        ["customer_id", "at", "change", "new_customer_id", "kept", "cancelled", "deleted"],
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


def continuity_table(doc: Sequence[ContinuityRow]) -> str:
    _, rows = continuity_rows(doc)
    return table(["customer ID", "at", "change", "new ID", "kept", "cancelled", "deleted"], rows)


def usage_status_rows(doc: UsageStatus) -> Rows:
    """A line's Passport IDs, with the line and its status on every row."""
    return (
        ["customer_id", "line_status", "passport_id", "status", "limit", "line_auth"],
        [
            [doc.customer_id, doc.status, p.passport_id, p.status, p.limit.amount, p.line_auth]
            for p in doc.passports
        ],
    )


def usage_status_table(doc: UsageStatus) -> str:
    """A line's status and its Passport IDs, as the service page lists them (§2)."""
    head = f"Line {doc.customer_id}  [{doc.status}]"
    _, rows = usage_status_rows(doc)
    body = table(["passport", "status", "limit", "line auth"], [r[2:] for r in rows])
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
        f"head {doc.head} at log position {doc.position:,}\n"
        f"seal {doc.seal}"
    )
    if doc.against is not None:
        verdict = "extends" if doc.against.ok else "does NOT extend"
        head += (
            f"\nthe store {verdict} the seal of log position {doc.against.position:,} "
            f"(recorded {doc.against.recorded_at})"
        )
    if doc.ok:
        return head
    body = table(
        ["position", "stream", "version", "kind", "what"],
        [[b.position, b.stream, b.version, b.kind.value, b.message] for b in doc.breaks],
    )
    return f"{head}\n{body}"
