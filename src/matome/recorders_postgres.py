"""The PostgreSQL application recorder with matome's read check (see :mod:`matome.recorders`)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any
from uuid import UUID

from eventsourcing.persistence import StoredEvent
from eventsourcing.postgres import PostgresApplicationRecorder
from psycopg.sql import SQL, Identifier

from matome.recorders import raise_if_stale

__all__ = ["PostgresRecorder"]


class PostgresRecorder(PostgresApplicationRecorder):
    """Checks the versions of the streams a command read after taking the table lock that
    serialises writers, so they cannot change before the commit."""

    def _insert_events(
        self, curs: Any, stored_events: Sequence[StoredEvent], **kwargs: Any
    ) -> None:
        read_versions: Mapping[UUID, int] | None = kwargs.get("read_versions")
        if not read_versions:
            return
        self._lock_table(curs)
        curs.execute(
            SQL(
                "SELECT originator_id, MAX(originator_version) AS version FROM {0}.{1} "
                "WHERE originator_id = ANY(%s) GROUP BY originator_id"
            ).format(Identifier(self.datastore.schema), Identifier(self.events_table_name)),
            (list(read_versions),),
        )
        current = {UUID(str(row["originator_id"])): int(row["version"]) for row in curs.fetchall()}
        raise_if_stale(read_versions, current)
