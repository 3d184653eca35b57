"""matome's PostgreSQL recorder (eventsourcing's, extended).

Why its own module: the extension (:mod:`matome.application._recorder`) in PostgreSQL's SQL,
under the table lock that serialises writers, with psycopg's pipelines.  psycopg is an
optional extra: nothing imports this module until a PostgreSQL store is opened (the recorder
topic names ``matome.application.eventstore:PostgresRecorder``, which that module resolves
lazily).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any
from uuid import UUID

import psycopg
from eventsourcing.persistence import IntegrityError, PersistenceError, StoredEvent
from eventsourcing.postgres import PostgresApplicationRecorder
from psycopg.sql import SQL, Identifier

from matome.application._chains import (
    Adoption,
    ChainRow,
    Logged,
    adoption_rows,
    as_uuid,
    global_rows,
)
from matome.application._gate import GATE_LOCK
from matome.application._keyring import KEYS_TABLE, Keyring
from matome.application._recorder import (
    ADOPTION_TABLE,
    CHAIN_TABLE,
    CREATE_LOCK,
    GLOBAL_TABLE,
    LOOKUP,
    META_DDL,
    META_TABLE,
    PERSONAL_TABLE,
    POSITIONS_TABLE,
    Extra,
    LogPosition,
    check_claim,
    keyring_of,
    raise_if_stale,
    subjects_of,
)
from matome.application._vault import PersonalRow


class _Undo(BaseException):
    """An error raised in a write after its events' insert, carried out of eventsourcing's
    ``insert_events``: that method catches an ``Exception`` raised there and re-raises it
    only after leaving the transaction's block — which commits the events.  A
    ``BaseException`` leaves the block as a failure, so the transaction rolls back;
    :meth:`PostgresRecorder.insert_events` then raises the error itself."""

    def __init__(self, error: Exception) -> None:
        super().__init__(str(error))
        self.error = error


class PostgresRecorder(PostgresApplicationRecorder):
    """Checks the versions of the streams a command read after taking the table lock
    that serialises writers, so they cannot change before the commit; writes the chain
    and the personal values in the same transaction."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        schema = Identifier(self.datastore.schema)
        self.sql_create_statements += [
            SQL(
                "CREATE TABLE IF NOT EXISTS {0}.{1} (originator_id uuid, "
                "originator_version bigint, hash text NOT NULL, "
                "PRIMARY KEY (originator_id, originator_version))"
            ).format(schema, Identifier(CHAIN_TABLE)),
            SQL(
                "CREATE TABLE IF NOT EXISTS {0}.{1} (ref text PRIMARY KEY, "
                "subject text NOT NULL, data text NOT NULL, salt text NOT NULL)"
            ).format(schema, Identifier(PERSONAL_TABLE)),
            SQL("CREATE INDEX IF NOT EXISTS {0} ON {1}.{2} (subject)").format(
                Identifier(PERSONAL_TABLE + "_subject"), schema, Identifier(PERSONAL_TABLE)
            ),
            SQL(
                "CREATE TABLE IF NOT EXISTS {0}.{1} (log_id text PRIMARY KEY, "
                "line bigint NOT NULL, digest text NOT NULL)"
            ).format(schema, Identifier(POSITIONS_TABLE)),
            SQL(META_DDL).format(self._table(META_TABLE)),
            SQL(
                "CREATE TABLE IF NOT EXISTS {0}.{1} (subject text PRIMARY KEY, "
                "wrapped text NOT NULL)"
            ).format(schema, Identifier(KEYS_TABLE)),
            SQL(
                "CREATE TABLE IF NOT EXISTS {0}.{1} (position bigint PRIMARY KEY, "
                "hash text NOT NULL)"
            ).format(schema, Identifier(GLOBAL_TABLE)),
            SQL(
                "CREATE TABLE IF NOT EXISTS {0}.{1} (id int PRIMARY KEY CHECK (id = 1), "
                "through bigint NOT NULL, adopted bigint NOT NULL, at text NOT NULL)"
            ).format(schema, Identifier(ADOPTION_TABLE)),
        ]

    #: Set by the application: seals personal values under their subjects' keys.
    keyring: Keyring | None = None

    def create_table(self) -> None:
        # Processes that start together would race on CREATE ... IF NOT EXISTS ("tuple
        # concurrently updated"): one of them creates, the others wait on this lock, then
        # find everything there.
        with self.datastore.get_connection() as conn:
            conn.execute("SELECT pg_advisory_lock(%s)", (CREATE_LOCK,))
            try:
                super().create_table()
            finally:
                conn.execute("SELECT pg_advisory_unlock(%s)", (CREATE_LOCK,))

    def _table(self, name: str) -> Any:
        return SQL("{0}.{1}").format(Identifier(self.datastore.schema), Identifier(name))

    def _insert_stored_events(
        self, curs: Any, stored_events: Sequence[StoredEvent], **kwargs: Any
    ) -> None:
        # The stale-read check comes after the lock that serialises writers (the versions
        # cannot change before the commit) and before the events' insert.  It raises here,
        # inside eventsourcing's pipeline error handling, having written nothing.
        if not kwargs.get("gate_held"):
            # The writers' gate, shared (see WriterGate), before the table lock: the
            # exclusive holder takes them in the same order.
            curs.execute("SELECT pg_advisory_xact_lock_shared(%s)", (GATE_LOCK,))
        read_versions: Mapping[UUID, int] | None = kwargs.get("read_versions")
        extra: Extra = kwargs.get("extra") or Extra()
        if extra.position is not None:
            # The claim, under the table lock that serialises writers (the position can
            # only move in a write holding it), before anything is written.
            self._lock_table(curs)
            p = extra.position
            curs.execute(
                SQL("SELECT log_id, line, digest FROM {0} WHERE log_id = %s").format(
                    self._table(POSITIONS_TABLE)
                ),
                (p.log_id,),
            )
            row = curs.fetchone()
            if row is not None:
                check_claim(p, LogPosition(row["log_id"], int(row["line"]), row["digest"]))
        if read_versions:
            self._lock_table(curs)
            curs.execute(
                SQL(
                    "SELECT originator_id, MAX(originator_version) AS version FROM {0} "
                    "WHERE originator_id = ANY(%s) GROUP BY originator_id"
                ).format(self._table(self.events_table_name)),
                (list(read_versions),),
            )
            current = {
                UUID(str(row["originator_id"])): int(row["version"]) for row in curs.fetchall()
            }
            raise_if_stale(read_versions, current)
        super()._insert_stored_events(curs, stored_events, **kwargs)

    def _fetch_ids_after_insert_events(
        self, curs: Any, stored_events: Sequence[StoredEvent], **kwargs: Any
    ) -> Sequence[int] | None:
        ids = super()._fetch_ids_after_insert_events(curs, stored_events, **kwargs)
        extra: Extra = kwargs.get("extra") or Extra()
        try:
            if extra.chain:
                self._write_global(curs, ids or (), extra.chain)
            if extra != Extra():
                # Written only once the events' insert succeeded (the pipeline synced).  A
                # statement that failed before the events' insert would make PostgreSQL skip
                # the rest of the pipeline, and psycopg would then believe in prepared
                # statements the server never kept ("prepared statement _pg3_N does not
                # exist" on that connection's next write).  The nested pipeline syncs on
                # exit, so a failure here is raised inside eventsourcing's error handling.
                conn = curs.connection
                with conn.pipeline(), conn.cursor() as more:
                    self._write_extra(more, extra)
        except psycopg.Error:
            raise  # the server aborted the transaction: its commit keeps nothing
        except Exception as e:
            # Not a failure of the server (a personal value that cannot be sealed, a global
            # chain that would go back): eventsourcing's error handling would commit the
            # events before re-raising it.  Carried past that handling, it rolls back.
            raise _Undo(e) from e
        return ids

    def insert_events(
        self, stored_events: Sequence[StoredEvent], **kwargs: Any
    ) -> Sequence[int] | None:
        try:
            ids: Sequence[int] | None = super().insert_events(stored_events, **kwargs)
        except _Undo as undo:
            raise undo.error from undo.error.__cause__
        return ids

    def _write_global(self, curs: Any, ids: Sequence[int], chain: Sequence[ChainRow]) -> None:
        # The head is read here, after eventsourcing's LOCK TABLE ... IN EXCLUSIVE MODE
        # (taken before the events' insert, held to the commit): no other writer can
        # extend the chain in between.  Notification ids may have gaps (a rolled-back
        # insert still used its sequence numbers): the chain hashes positions, it does
        # not expect them consecutive.
        conn = curs.connection
        with conn.pipeline(), conn.cursor() as more:
            more.execute(
                SQL("SELECT position, hash FROM {0} ORDER BY position DESC LIMIT 1").format(
                    self._table(GLOBAL_TABLE)
                )
            )
            row = more.fetchone()
            head = None if row is None else (int(row["position"]), str(row["hash"]))
            more.executemany(
                SQL("INSERT INTO {0} (position, hash) VALUES (%s, %s)").format(
                    self._table(GLOBAL_TABLE)
                ),
                global_rows(head, ids, chain),
            )

    def _write_extra(self, curs: Any, extra: Extra) -> None:
        if extra.chain:
            curs.executemany(
                SQL(
                    "INSERT INTO {0} (originator_id, originator_version, hash) VALUES (%s, %s, %s)"
                ).format(self._table(CHAIN_TABLE)),
                list(extra.chain),
            )
        for subject in extra.erase:  # first: the values written with these events stay
            curs.execute(
                SQL("DELETE FROM {0} WHERE subject = %s").format(self._table(PERSONAL_TABLE)),
                (subject,),
            )
            curs.execute(
                SQL("DELETE FROM {0} WHERE subject = %s").format(self._table(KEYS_TABLE)),
                (subject,),
            )
        for subject, field in extra.replace:
            curs.execute(
                SQL("DELETE FROM {0} WHERE subject = %s AND ref LIKE %s").format(
                    self._table(PERSONAL_TABLE)
                ),
                (subject, f"%/{field}"),
            )
        if extra.personal or extra.rotate:
            self._write_personal(curs, extra)
        if extra.position is not None:
            p = extra.position
            curs.execute(
                SQL(
                    "INSERT INTO {0} (log_id, line, digest) VALUES (%s, %s, %s) "
                    "ON CONFLICT (log_id) DO UPDATE SET line = EXCLUDED.line, "
                    "digest = EXCLUDED.digest"
                ).format(self._table(POSITIONS_TABLE)),
                (p.log_id, p.line, p.digest),
            )
        for stream, version, state in extra.rewrite:
            curs.execute(
                SQL(
                    "UPDATE {0} SET state = %s WHERE originator_id = %s AND originator_version = %s"
                ).format(self._table(self.events_table_name)),
                (state, stream, version),
            )

    def _write_personal(self, curs: Any, extra: Extra) -> None:
        """Seal the new personal values under their subjects' keys, found or made in the
        write transaction (which holds the events' table lock: no other writer can
        destroy or make a key meanwhile)."""
        subjects = subjects_of(extra)
        keys_table = self._table(KEYS_TABLE)
        # Reads on a cursor of their own: ``curs`` runs in a pipeline after executemany()
        # inserts, and a fetch on it could be handed an insert's result instead of the
        # query's ("the last operation didn't produce records").
        with curs.connection.cursor() as query:
            # The subjects' keys, and one key of the store (the last row) to check a new
            # key is wrapped by the same master key: one round trip.
            query.execute(
                SQL(
                    "SELECT subject, wrapped FROM {0} WHERE subject = ANY(%s) UNION ALL "
                    "(SELECT subject, wrapped FROM {0} LIMIT 1)"
                ).format(keys_table),
                (subjects,),
            )
            found = [(r["subject"], r["wrapped"]) for r in query.fetchall()]
            survivors: list[tuple[str, str, str]] = []
            if extra.rotate:
                query.execute(
                    SQL("SELECT ref, subject, data FROM {0} WHERE subject = ANY(%s)").format(
                        self._table(PERSONAL_TABLE)
                    ),
                    (list(extra.rotate),),
                )
                survivors = [(r["ref"], r["subject"], r["data"]) for r in query.fetchall()]
        keys = {s: w for s, w in found if s in subjects}
        any_key = found[-1] if found else None
        plan = keyring_of(self).plan(
            keys,
            any_key,
            [(r.ref, r.subject, r.salt, r.data) for r in extra.personal],
            extra.rotate,
            survivors,
        )
        for subject in plan.delete_keys:
            curs.execute(SQL("DELETE FROM {0} WHERE subject = %s").format(keys_table), (subject,))
        if plan.insert_keys:
            curs.executemany(
                SQL("INSERT INTO {0} (subject, wrapped) VALUES (%s, %s)").format(keys_table),
                list(plan.insert_keys),
            )
        if plan.update_rows:
            curs.executemany(
                SQL("UPDATE {0} SET data = %s WHERE ref = %s").format(self._table(PERSONAL_TABLE)),
                [(data, ref) for ref, data in plan.update_rows],
            )
        if plan.insert_rows:
            curs.executemany(
                SQL("INSERT INTO {0} (ref, subject, data, salt) VALUES (%s, %s, %s, %s)").format(
                    self._table(PERSONAL_TABLE)
                ),
                list(plan.insert_rows),
            )

    def has_unsealed_personal(self, subjects: Sequence[str]) -> bool:
        rows = self._select(
            SQL(
                "SELECT 1 FROM {0} WHERE subject = ANY(%s) AND data NOT LIKE 'k1:%%' LIMIT 1"
            ).format(self._table(PERSONAL_TABLE)),
            (list(subjects),),
        )
        return bool(rows)

    def scrub(self, *, personal_table: bool) -> None:
        """After an erasure: rewrite the keys table (and, when it held values of an
        earlier version, the personal table) so that the deleted rows are in no page of
        PostgreSQL's heap.  A plain VACUUM frees their space but leaves their bytes."""
        tables = [KEYS_TABLE] + ([PERSONAL_TABLE] if personal_table else [])
        with self.datastore.get_connection() as conn:  # autocommit: VACUUM needs it
            for table in tables:
                conn.execute(SQL("VACUUM FULL {0}").format(self._table(table)))

    def _select(self, sql: Any, params: Sequence[Any]) -> list[Any]:
        with self.datastore.transaction(commit=False) as curs:
            curs.execute(sql, params)
            return list(curs.fetchall())

    def stream_versions(self, streams: Sequence[UUID]) -> dict[UUID, int]:
        out: dict[UUID, int] = {}
        for start in range(0, len(streams), LOOKUP):
            rows = self._select(
                SQL(
                    "SELECT originator_id, MAX(originator_version) AS version FROM {0} "
                    "WHERE originator_id = ANY(%s) GROUP BY originator_id"
                ).format(self._table(self.events_table_name)),
                (list(streams[start : start + LOOKUP]),),
            )
            for row in rows:
                out[UUID(str(row["originator_id"]))] = int(row["version"])
        return out

    def chain_hashes(self, keys: Sequence[tuple[UUID, int]]) -> dict[tuple[UUID, int], str]:
        out: dict[tuple[UUID, int], str] = {}
        for start in range(0, len(keys), LOOKUP):
            part = keys[start : start + LOOKUP]
            rows = self._select(
                SQL(
                    "SELECT c.originator_id, c.originator_version, c.hash FROM {0} c "
                    "JOIN unnest(%s::uuid[], %s::bigint[]) AS k(id, v) "
                    "ON c.originator_id = k.id AND c.originator_version = k.v"
                ).format(self._table(CHAIN_TABLE)),
                ([s for s, _ in part], [v for _, v in part]),
            )
            for row in rows:
                out[UUID(str(row["originator_id"])), int(row["originator_version"])] = row["hash"]
        return out

    def all_chain_hashes(self) -> dict[tuple[UUID, int], str]:
        rows = self._select(
            SQL("SELECT originator_id, originator_version, hash FROM {0}").format(
                self._table(CHAIN_TABLE)
            ),
            (),
        )
        return {
            (UUID(str(r["originator_id"])), int(r["originator_version"])): r["hash"] for r in rows
        }

    def vault_get(self, refs: Sequence[str]) -> dict[str, PersonalRow]:
        return {
            row.ref: row
            for row in self._personal_select(SQL("WHERE p.ref = ANY(%s)"), (list(refs),))
        }

    def personal_rows(self) -> dict[str, PersonalRow]:
        return {row.ref: row for row in self._personal_select(SQL(""), ())}

    def _personal_select(self, where: Any, params: Sequence[Any]) -> list[PersonalRow]:
        try:
            rows = self._select(
                SQL(
                    "SELECT p.ref, p.subject, p.data, p.salt, k.wrapped FROM {0} p "
                    "LEFT JOIN {1} k ON k.subject = p.subject {2}"
                ).format(self._table(PERSONAL_TABLE), self._table(KEYS_TABLE), where),
                params,
            )
        except Exception as e:
            if KEYS_TABLE not in str(e):
                raise
            # A store of matome 0.2 opened read-only: no keys table until its first write.
            rows = self._select(
                SQL(
                    "SELECT p.ref, p.subject, p.data, p.salt, NULL AS wrapped FROM {0} p {1}"
                ).format(self._table(PERSONAL_TABLE), where),
                params,
            )
        return [
            PersonalRow(r["ref"], r["subject"], r["data"], r["salt"], r["wrapped"]) for r in rows
        ]

    def log_position(self, log_id: str) -> LogPosition | None:
        rows = self._select(
            SQL("SELECT log_id, line, digest FROM {0} WHERE log_id = %s").format(
                self._table(POSITIONS_TABLE)
            ),
            (log_id,),
        )
        return (
            LogPosition(rows[0]["log_id"], int(rows[0]["line"]), rows[0]["digest"])
            if rows
            else None
        )

    def store_meta(self) -> dict[str, int]:
        try:
            rows = self._select(
                SQL("SELECT name, value FROM {0}").format(self._table(META_TABLE)), ()
            )
        except PersistenceError as e:
            if "does not exist" not in str(e):
                raise
            return {}  # no matome since 0.2 wrote to it, or opened only to read so far
        return {str(r["name"]): int(r["value"]) for r in rows}

    def raise_store_meta(self, rows: Mapping[str, int]) -> None:
        with self.datastore.transaction(commit=True) as curs:
            # Made here too for a store opened without creating tables; under the lock
            # that serialises creators (CREATE ... IF NOT EXISTS races otherwise).
            curs.execute("SELECT pg_advisory_xact_lock(%s)", (CREATE_LOCK,))
            curs.execute(SQL(META_DDL).format(self._table(META_TABLE)))
            curs.executemany(
                SQL(
                    "INSERT INTO {0} AS m (name, value) VALUES (%s, %s) ON CONFLICT (name) "
                    "DO UPDATE SET value = EXCLUDED.value WHERE EXCLUDED.value > m.value"
                ).format(self._table(META_TABLE)),
                list(rows.items()),
            )

    def topics_after(self, position: int) -> dict[str, int]:
        rows = self._select(
            SQL(
                "SELECT topic, MAX(notification_id) AS last FROM {0} "
                "WHERE notification_id > %s GROUP BY topic"
            ).format(self._table(self.events_table_name)),
            (position,),
        )
        return {str(r["topic"]): int(r["last"]) for r in rows}

    def global_range(self, start: int, stop: int) -> list[tuple[int, str]]:
        rows = self._select(
            SQL(
                "SELECT position, hash FROM {0} WHERE position BETWEEN %s AND %s ORDER BY position"
            ).format(self._table(GLOBAL_TABLE)),
            (start, stop),
        )
        return [(int(r["position"]), str(r["hash"])) for r in rows]

    def global_after(self, position: int) -> list[tuple[int, str]]:
        rows = self._select(
            SQL("SELECT position, hash FROM {0} WHERE position > %s ORDER BY position").format(
                self._table(GLOBAL_TABLE)
            ),
            (position,),
        )
        return [(int(r["position"]), str(r["hash"])) for r in rows]

    def adoption(self) -> Adoption | None:
        try:
            rows = self._select(
                SQL("SELECT through, adopted, at FROM {0}").format(self._table(ADOPTION_TABLE)),
                (),
            )
        except (psycopg.Error, PersistenceError):
            return None  # a store no writer of this version has opened yet
        if not rows:
            return None
        return Adoption(int(rows[0]["through"]), int(rows[0]["adopted"]), str(rows[0]["at"]))

    def adopt(self, content_of: Any, at: str) -> Adoption:
        table = self._table(ADOPTION_TABLE)
        with self.datastore.transaction(commit=True) as curs:
            # Writers are held off by the events table's lock (the one they take), so no
            # event is recorded between the read and the adoption's rows.
            self._lock_table(curs)
            curs.execute(
                SQL(
                    "INSERT INTO {0} (id, through, adopted, at) VALUES (1, 0, 0, %s) "
                    "ON CONFLICT (id) DO NOTHING"
                ).format(table),
                (at,),
            )
            if curs.rowcount == 1:
                curs.execute(
                    SQL(
                        "SELECT notification_id, originator_id, originator_version, topic, "
                        "state FROM {0} ORDER BY notification_id"
                    ).format(self._table(self.events_table_name))
                )
                notifications = [
                    Logged(
                        int(r["notification_id"]),
                        as_uuid(r["originator_id"]),
                        int(r["originator_version"]),
                        str(r["topic"]),
                        bytes(r["state"]),
                    )
                    for r in curs.fetchall()
                ]
                curs.execute(
                    SQL("SELECT originator_id, originator_version, hash FROM {0}").format(
                        self._table(CHAIN_TABLE)
                    )
                )
                recorded = {
                    (as_uuid(r["originator_id"]), int(r["originator_version"])): str(r["hash"])
                    for r in curs.fetchall()
                }
                missing, global_ = adoption_rows(notifications, recorded, content_of)
                if missing:
                    curs.executemany(
                        SQL(
                            "INSERT INTO {0} (originator_id, originator_version, hash) "
                            "VALUES (%s, %s, %s)"
                        ).format(self._table(CHAIN_TABLE)),
                        missing,
                    )
                if global_:
                    curs.executemany(
                        SQL("INSERT INTO {0} (position, hash) VALUES (%s, %s)").format(
                            self._table(GLOBAL_TABLE)
                        ),
                        global_,
                    )
                through = notifications[-1].id if notifications else 0
                curs.execute(
                    SQL("UPDATE {0} SET through = %s, adopted = %s WHERE id = 1").format(table),
                    (through, len(missing)),
                )
            curs.execute(SQL("SELECT through, adopted, at FROM {0}").format(table))
            row = curs.fetchone()
        if row is None:  # inserted above in this transaction, or by another adopter
            raise IntegrityError("the chain adoption row is missing")
        return Adoption(int(row["through"]), int(row["adopted"]), str(row["at"]))
