"""Engine-wide records: the billing calendar and idempotency keys."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any
from uuid import UUID

import attrs

from matome.aggregates.base import make_projector, stream_id
from matome.events import ledger as ev
from matome.values import YearMonth

__all__ = [
    "CALENDAR_ID",
    "Calendar",
    "KeyRecord",
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
