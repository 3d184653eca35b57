"""The views against the issued bills: what the read models show of them, checked by
:func:`matome.verify.verify_store` (which re-exports :class:`Views`).
"""

from __future__ import annotations

import json
from collections import defaultdict
from typing import Any, Protocol

from matome.documents import Break, BreakKind
from matome.events.bill import BillIssued


def log_break(
    kind: BreakKind, message: str, *, position: int | None = None, topic: str | None = None
) -> Break:
    """A break of the log or the views as a whole, not of one stored event's stream (those are
    ``verify._break_at``)."""
    return Break(
        kind=kind, stream="", version=None, position=position, topic=topic, message=message
    )


class Views(Protocol):
    """The read models as ``verify`` reads them (:class:`matome.projections.runner.Projection`)."""

    def position(self) -> int: ...

    def query(self, sql: str, params: tuple[Any, ...] = ()) -> list[Any]: ...


def _check_views(views: Views, issued: dict[tuple[str, str], tuple[int, Any, str]]) -> list[Break]:
    """What the read models show of issued bills against the issued bills in the events (up
    to the position the views include: later bills are not in them yet)."""
    included = views.position()
    expected = {k: v for k, v in issued.items() if v[0] <= included}
    out: list[Break] = []

    def broken(key: tuple[str, str], what: str) -> None:
        position = expected[key][0] if key in expected else None
        out.append(
            log_break(
                BreakKind.VIEW_CHANGED,
                f"the views' bill of {key[0]} for {key[1]}: {what}",
                position=position,
                topic=BillIssued.TOPIC if position is not None else None,
            )
        )

    shown = {
        (str(c), str(m)): (str(doc), str(digest))
        for c, m, doc, digest in views.query(
            "SELECT customer_id, month, document, digest FROM mv_bills"
        )
    }
    for key in sorted(expected.keys() | shown.keys()):
        if key not in shown:
            broken(key, "issued but missing from the views (deleted?)")
        elif key not in expected:
            broken(key, "shown as issued but no bill was issued (inserted?)")
        else:
            _, bill, digest = expected[key]
            document, shown_digest = shown[key]
            if json.loads(document) != bill or shown_digest != digest:
                broken(key, "differs from the bill as issued (edited?)")
    rows: dict[tuple[str, str], list[tuple[str, int]]] = defaultdict(list)
    for c, m, provider, amount in views.query(
        "SELECT customer_id, month, provider, amount FROM mv_bill_rows"
    ):
        rows[str(c), str(m)].append((str(provider), int(amount)))
    totals: dict[tuple[str, str], list[int]] = defaultdict(lambda: [0, 0])
    for key in sorted(expected.keys() | rows.keys()):
        want = sorted(
            (str(r["provider"]), int(r["amount"]))
            for r in (expected[key][1]["rows"] if key in expected and expected[key][1] else ())
        )
        for provider, amount in want:
            total = totals[key[1], provider]
            total[0] += amount
            total[1] += 1
        if sorted(rows.get(key, ())) != want:
            broken(key, "its per-provider rows differ from the bill as issued (edited?)")
    shown_totals: dict[tuple[str, str], list[int]] = defaultdict(lambda: [0, 0])
    for month, provider, amount, lines in views.query(
        "SELECT month, provider, amount, lines FROM mv_provider_months"
    ):
        total = shown_totals[str(month), str(provider)]
        total[0] += int(amount)
        total[1] += int(lines)
    for month, provider in sorted(totals.keys() | shown_totals.keys()):
        if totals.get((month, provider), [0, 0]) != shown_totals.get((month, provider), [0, 0]):
            out.append(
                log_break(
                    BreakKind.VIEW_CHANGED,
                    f"the views' total of provider {provider} for {month} differs "
                    "from the issued bills (edited?)",
                )
            )
    return out
