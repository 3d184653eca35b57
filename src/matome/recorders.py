"""Application recorders that also check the versions of the streams a command only *read*.

eventsourcing's optimistic concurrency protects the streams a transaction writes: a second
writer at the same (stream, version) fails.  A matome command also decides against streams it
does not write — a purchase reads the line (is it regulated?) and the calendar (is the month
closed?).  Each recorder here accepts ``read_versions`` (stream id → the version the command
saw, 0 for "did not exist") with the events, and inside the write transaction, holding the
store's write lock, checks that none of those streams moved; if one did, it raises
``IntegrityError`` so that the command is decided again on fresh state.  This closes, for
example, a purchase racing a regulation of its line, or a command racing the close of its
month.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any
from uuid import UUID

from eventsourcing.persistence import IntegrityError, StoredEvent
from eventsourcing.popo import POPOApplicationRecorder
from eventsourcing.sqlite import SQLiteApplicationRecorder, SQLiteCursor

# The PostgreSQL recorder is in matome.recorders_postgres (psycopg is an optional extra).
__all__ = ["POPORecorder", "SQLiteRecorder", "raise_if_stale", "stale_reads"]


def stale_reads(
    read_versions: Mapping[UUID, int] | None, current: Mapping[UUID, int]
) -> list[UUID]:
    """The streams whose version moved since the command read them."""
    if not read_versions:
        return []
    return [s for s, v in read_versions.items() if current.get(s, 0) != v]


def raise_if_stale(read_versions: Mapping[UUID, int] | None, current: Mapping[UUID, int]) -> None:
    stale = stale_reads(read_versions, current)
    if stale:
        raise IntegrityError(f"streams read by the command changed meanwhile: {stale}")


class POPORecorder(POPOApplicationRecorder):
    """In-memory recorder with the read check (under the recorder's lock)."""

    def _insert_events(
        self, stored_events: Sequence[StoredEvent], **kwargs: Any
    ) -> Sequence[int] | None:
        read_versions: Mapping[UUID, int] | None = kwargs.get("read_versions")
        with self._database_lock:
            if read_versions:
                current = {}
                for stream in read_versions:
                    versions = self._stored_events_index.get(str(stream))
                    current[stream] = max(versions) if versions else 0
                raise_if_stale(read_versions, current)
            return super()._insert_events(stored_events, **kwargs)


class SQLiteRecorder(SQLiteApplicationRecorder):
    """SQLite recorder with the read check.

    The events are inserted first: the first write of the transaction takes SQLite's write
    lock, so the versions read after it cannot change before the commit.
    """

    def _insert_events(
        self, c: SQLiteCursor, stored_events: Sequence[StoredEvent], **kwargs: Any
    ) -> Sequence[int] | None:
        ids = super()._insert_events(c, stored_events, **kwargs)
        read_versions: Mapping[UUID, int] | None = kwargs.get("read_versions")
        if read_versions:
            streams = list(read_versions)
            marks = ",".join("?" for _ in streams)
            c.execute(
                "SELECT originator_id, MAX(originator_version) "
                f"FROM {self.events_table_name} WHERE originator_id IN ({marks}) "
                "GROUP BY originator_id",
                [s.hex for s in streams],
            )
            current = {UUID(row[0]): int(row[1]) for row in c.fetchall()}
            raise_if_stale(read_versions, current)
        return ids
