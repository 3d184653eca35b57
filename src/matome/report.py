"""``matome audit --html FILE``: one self-contained HTML page a person can read.

The page holds the bill, why each yen was — or was not — charged, and a timeline picture
(inline SVG, no external assets, no script) of each subscription across the months around the
audited one: charged months filled, the purchase and cancellation instants marked, and the
line's regulations and line changes drawn across.  Everything shown is taken from the
:class:`~matome.documents.Audit` document; nothing is computed again here.
"""

from __future__ import annotations

from datetime import datetime
from html import escape

from matome.documents import Audit, Bill, Timeline
from matome.values import TOKYO, YearMonth

__all__ = ["audit_html"]

_CSS = """
body { font-family: system-ui, "Hiragino Sans", "Noto Sans JP", sans-serif; margin: 2rem;
       color: #1b1b1b; max-width: 72rem; }
h1 { font-size: 1.4rem; } h2 { font-size: 1.1rem; margin-top: 2rem; }
table { border-collapse: collapse; margin: .5rem 0; }
th, td { border-bottom: 1px solid #ddd; padding: .25rem .6rem; text-align: left;
         vertical-align: top; }
td.num, th.num { text-align: right; font-variant-numeric: tabular-nums; }
.muted { color: #666; } .bad { color: #b00020; font-weight: 600; }
.ok { color: #1b5e20; font-weight: 600; }
svg text { font-size: 11px; font-family: inherit; }
"""

_CHARGED = "#2e7d32"
_NOT_CHARGED = "#eceff1"


def _yen(amount: int) -> str:
    return f"{amount:,}"


def _bill_table(bill: Bill) -> str:
    rows = "".join(
        f"<tr><td>{escape(r.provider.value)}</td><td>{escape(r.provider_name)}</td>"
        f"<td>{escape(r.label)}</td><td class=num>{_yen(r.amount.amount)}</td></tr>"
        for r in bill.rows
    )
    charges = "".join(
        f"<tr><td>{escape(c.receipt)}</td><td>{escape(c.passport_id.value)}</td>"
        f"<td>{escape(c.provider.value)}</td><td>{escape(c.service_name)}</td>"
        f"<td>{escape(c.kind.value)}</td><td class=num>{_yen(c.unit_price.amount)}</td>"
        f"<td class=num>{c.quantity}</td><td class=num>{_yen(c.amount.amount)}</td></tr>"
        for c in bill.charges
    )
    return (
        "<table><tr><th>provider</th><th>name</th><th>label</th><th class=num>amount</th></tr>"
        f"{rows}<tr><th colspan=3>subtotal</th><th class=num>{_yen(bill.subtotal.amount)}</th>"
        "</tr></table><table><tr><th>receipt</th><th>Passport ID</th><th>provider</th>"
        "<th>service</th><th>kind</th><th class=num>unit price</th><th class=num>qty</th>"
        f"<th class=num>amount</th></tr>{charges}</table>"
    )


def _x(at: datetime, months: tuple[YearMonth, ...], left: float, width: float) -> float:
    """The horizontal position of an instant: its month's column, then its day in it."""
    at = at.astimezone(TOKYO)
    month = YearMonth.of(at)
    index = months.index(month) if month in months else (-1 if month < months[0] else len(months))
    span = (month.end() - month.start()).total_seconds()
    into = (at - month.start()).total_seconds() / span
    return left + (index + min(max(into, 0.0), 1.0)) * width


def timeline_svg(timeline: Timeline, audited: YearMonth) -> str:
    """The timeline picture: one row per subscription, one column per month."""
    months = timeline.months
    label_w, col_w, row_h, top = 220.0, 90.0, 28.0, 40.0
    width = label_w + col_w * len(months) + 20
    height = top + row_h * max(len(timeline.rows), 1) + 40
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width:.0f}" height="{height:.0f}" '
        f'viewBox="0 0 {width:.0f} {height:.0f}" role="img" '
        'aria-label="subscriptions across months">'
    ]
    for i, m in enumerate(months):
        x = label_w + i * col_w
        weight = "bold" if m == audited else "normal"
        parts.append(
            f'<text x="{x + col_w / 2:.1f}" y="{top - 12:.1f}" text-anchor="middle" '
            f'font-weight="{weight}">{m}</text>'
        )
        if m == audited:
            parts.append(
                f'<rect x="{x:.1f}" y="{top - 4:.1f}" width="{col_w:.1f}" '
                f'height="{row_h * max(len(timeline.rows), 1) + 8:.1f}" fill="none" '
                'stroke="#1565c0" stroke-dasharray="4 3"/>'
            )
    for r, row in enumerate(timeline.rows):
        y = top + r * row_h
        parts.append(
            f'<text x="4" y="{y + row_h / 2 + 4:.1f}">{escape(row.provider.value)}/'
            f"{escape(row.service.value)} {escape(row.receipt[:9])}…</text>"
        )
        for i, cell in enumerate(row.months):
            x = label_w + i * col_w
            fill = _CHARGED if cell.charged else _NOT_CHARGED
            title = f"{cell.month}: {'charged' if cell.charged else 'not charged'}"
            if cell.rule is not None:
                title += f" ({cell.rule.value})"
            parts.append(
                f'<rect x="{x + 2:.1f}" y="{y + 4:.1f}" width="{col_w - 4:.1f}" '
                f'height="{row_h - 8:.1f}" rx="3" fill="{fill}"><title>{escape(title)}</title>'
                "</rect>"
            )
        bought = _x(row.purchased_at, months, label_w, col_w)
        parts.append(
            f'<circle cx="{bought:.1f}" cy="{y + row_h / 2:.1f}" r="5" fill="#1565c0" '
            f'stroke="white"><title>bought {row.purchased_at.isoformat()}</title></circle>'
        )
        for refunded in row.refunded_at:
            rx, ry = _x(refunded, months, label_w, col_w), y + row_h / 2
            parts.append(
                f'<path d="M{rx:.1f},{ry - 6:.1f} L{rx + 6:.1f},{ry:.1f} L{rx:.1f},{ry + 6:.1f} '
                f'L{rx - 6:.1f},{ry:.1f} Z" fill="#f9a825" stroke="white"><title>refund '
                f"{refunded.isoformat()}</title></path>"
            )
        if row.cancelled_at is not None:
            cx = _x(row.cancelled_at, months, label_w, col_w)
            cy = y + row_h / 2
            by = f" ({row.cancelled_by})" if row.cancelled_by else ""
            parts.append(
                f'<path d="M{cx - 5:.1f},{cy - 5:.1f} L{cx + 5:.1f},{cy + 5:.1f} '
                f'M{cx - 5:.1f},{cy + 5:.1f} L{cx + 5:.1f},{cy - 5:.1f}" stroke="#b00020" '
                f'stroke-width="2.5"><title>cancelled {row.cancelled_at.isoformat()}{by}'
                "</title></path>"
            )
    bottom = top + row_h * max(len(timeline.rows), 1)
    for mark in timeline.marks:
        x = _x(mark.at, months, label_w, col_w)
        parts.append(
            f'<line x1="{x:.1f}" y1="{top - 4:.1f}" x2="{x:.1f}" y2="{bottom + 6:.1f}" '
            f'stroke="#ef6c00" stroke-width="2"><title>{escape(mark.label)} '
            f"{mark.at.isoformat()}</title></line>"
            f'<text x="{x + 3:.1f}" y="{bottom + 20:.1f}" fill="#ef6c00">'
            f"{escape(mark.label)}</text>"
        )
    parts.append(
        f'<text x="4" y="{height - 6:.1f}" class="muted">filled: charged · ● bought · '
        "✕ cancelled · ◆ refund · orange: regulation or line change</text></svg>"
    )
    return "".join(parts)


def audit_html(audit: Audit) -> str:
    """The audit as one self-contained HTML page."""
    cut = "now"
    if audit.as_of is not None:
        cut = f"as of {audit.as_of.isoformat()}"
    if audit.recorded_as_of is not None:
        cut += f", as recorded by {audit.recorded_as_of.isoformat()}"
    explanations = "".join(
        f"<tr><td>{escape(e.receipt)}</td><td>{escape(e.passport_id.value)}</td>"
        f"<td>{escape(e.provider.value)}/{escape(e.service.value)}</td>"
        f"<td class={'ok' if e.charged else 'muted'}>"
        f"{'refunded' if e.amount.amount < 0 else 'charged' if e.charged else 'not charged'}"
        f"</td><td class=num>{_yen(e.amount.amount)}</td><td>{escape(e.rule.value)}</td>"
        f"<td>{escape(e.why)}<br><span class=muted>"
        + ", ".join(
            escape(
                f"{ev.type} v{ev.version} at {ev.at.isoformat()} "
                f"(recorded {ev.recorded_at:%Y-%m-%d %H:%M} UTC)"
            )
            for ev in e.events
        )
        + "</span></td></tr>"
        for e in audit.explanations
    )
    if audit.issued is None:
        issued = "<p class=muted>This month's bill has not been issued.</p>"
    elif not audit.differences:
        issued = (
            "<p class=ok>The bill recomputed from the events is the same as the bill issued.</p>"
        )
    else:
        issued = (
            "<p class=bad>The bill recomputed from the events differs from the bill issued:</p><ul>"
            + "".join(
                f"<li>{escape(d.receipt)} {escape(d.kind.value)}: issued "
                f"{'-' if d.issued is None else _yen(d.issued.amount)}, now "
                f"{'-' if d.now is None else _yen(d.now.amount)} — {escape(d.why)}</li>"
                for d in audit.differences
            )
            + "</ul>"
        )
    later = "".join(
        f"<li>{escape(x.receipt)} {escape(x.event.type)}: {escape(x.why)}</li>"
        for x in audit.after_issue
    )
    picture = timeline_svg(audit.timeline, audit.month) if audit.timeline is not None else ""
    title = f"Audit of {audit.customer_id} for {audit.month}"
    return (
        "<!DOCTYPE html><html lang=ja><head><meta charset=utf-8>"
        f"<title>{escape(title)}</title><style>{_CSS}</style></head><body>"
        f"<h1>{escape(title)}</h1><p class=muted>{escape(cut)} · bill status "
        f"{escape(audit.bill.status.value)} · issue date {audit.bill.issue_date}</p>"
        f"<h2>The bill</h2>{_bill_table(audit.bill)}{issued}"
        + (f"<h2>Recorded after the bill was issued</h2><ul>{later}</ul>" if later else "")
        + "<h2>Why each yen was — or was not — charged</h2><table><tr><th>receipt</th>"
        "<th>Passport ID</th><th>service</th><th>charged?</th><th class=num>amount</th>"
        f"<th>rule</th><th>why, and the events behind it</th></tr>{explanations}</table>"
        f"<h2>Timeline</h2>{picture}</body></html>"
    )
