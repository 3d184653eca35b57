"""Engine-wide records: the billing calendar and idempotency keys."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any
from uuid import UUID

import attrs

from matome import commands as cmd
from matome.aggregates.base import make_projector, stream_id
from matome.aggregates.decision import Decision
from matome.errors import InvalidInput, MonthClosed
from matome.events import ledger as ev
from matome.values import YearMonth

__all__ = [
    "CALENDAR_ID",
    "Calendar",
    "KeyRecord",
    "check_month_open",
    "decide_issue_bills",
    "key_id",
    "project_calendar",
    "project_key",
]

CALENDAR_ID = stream_id("calendar", "billing")


def key_id(key: str) -> UUID:
    return stream_id("idempotency", key)


@attrs.frozen(kw_only=True)
class Calendar:
    """Which billing months are closed (bills issued, immutable, §7)."""

    id: UUID
    version: int
    last_at: datetime
    closed_through: YearMonth | None = None

    def is_closed(self, month: YearMonth) -> bool:
        return self.closed_through is not None and month <= self.closed_through


project_calendar = make_projector(
    {
        ev.MonthsClosed: lambda s, e: Calendar(
            id=e.originator_id,
            version=e.originator_version,
            last_at=e.at,
            closed_through=e.through,
        )
    }
)


@attrs.frozen(kw_only=True)
class KeyRecord:
    id: UUID
    version: int
    last_at: datetime
    key: str
    command: str
    digest: str
    secrets: Mapping[str, str]
    result: Mapping[str, Any]


project_key = make_projector(
    {
        ev.KeyBound: lambda _, e: KeyRecord(
            id=e.originator_id,
            version=e.originator_version,
            last_at=e.at,
            key=e.key,
            command=e.command,
            digest=e.digest,
            secrets=e.secrets,
            result=e.result,
        )
    }
)


# ---------------------------------------------------------------------------------------------
# Deciders


def check_month_open(calendar: Calendar | None, d: Decision) -> None:
    """§7: after a month is closed, any command whose business time falls in it is refused
    (``month_closed``) — it could change a bill already issued."""
    month = YearMonth.of(d.at)
    if calendar is not None and calendar.is_closed(month):
        d.refuse(
            MonthClosed(
                f"{month} is closed (bills issued through {calendar.closed_through}); "
                "a command dated in it cannot change them"
            )
        )


def decide_issue_bills(
    calendar: Calendar | None, c: cmd.IssueBills, d: Decision
) -> cmd.IssueResult | None:
    """Close a month once it has ended in Tokyo time, and every month before it (§7).

    Closing a closed month again is accepted and changes nothing.
    """
    d.require(
        c.at >= c.month.end(),
        lambda: InvalidInput(f"{c.month} has not ended in Tokyo time at {c.at.isoformat()}"),
    )
    if d.refused:
        return None
    if calendar is not None and calendar.is_closed(c.month):
        return cmd.IssueResult(month=c.month)
    if calendar is None:
        d.create(CALENDAR_ID, ev.MonthsClosed, through=c.month)
    else:
        d.emit(calendar, ev.MonthsClosed, through=c.month)
    return cmd.IssueResult(month=c.month, closed=(c.month,))
