"""matome's SQLite recorder and infrastructure factory (eventsourcing's, extended).

Why its own module: the extension (:mod:`matome.application._recorder`) in SQLite's SQL,
where the transaction's first write takes the database's one write lock; and the factory
that sizes the connection pool for threads that wait their turn for that lock.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Mapping, Sequence
from typing import Any
from uuid import UUID

import eventsourcing.sqlite
from eventsourcing.persistence import PersistenceError, StoredEvent
from eventsourcing.sqlite import SQLiteApplicationRecorder, SQLiteCursor
from eventsourcing.utils import Environment

from matome.application._chains import Adoption, Logged, adoption_rows, global_rows
from matome.application._keyring import KEYS_TABLE, Keyring
from matome.application._recorder import (
    ADOPTION_TABLE,
    CHAIN_TABLE,
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


class SQLiteRecorder(SQLiteApplicationRecorder):
    """SQLite recorder with the read check, the chain and the personal values.

    The events are inserted first: the first write of the transaction takes SQLite's write
    lock, so the versions read after it cannot change before the commit.
    """

    def construct_create_table_statements(self) -> list[str]:
        return [
            *super().construct_create_table_statements(),
            f"CREATE TABLE IF NOT EXISTS {CHAIN_TABLE} (originator_id TEXT, "
            "originator_version INTEGER, hash TEXT NOT NULL, "
            "PRIMARY KEY (originator_id, originator_version)) WITHOUT ROWID",
            f"CREATE TABLE IF NOT EXISTS {PERSONAL_TABLE} (ref TEXT PRIMARY KEY, "
            "subject TEXT NOT NULL, data TEXT NOT NULL, salt TEXT NOT NULL)",
            f"CREATE INDEX IF NOT EXISTS {PERSONAL_TABLE}_subject ON {PERSONAL_TABLE} (subject)",
            f"CREATE TABLE IF NOT EXISTS {POSITIONS_TABLE} (log_id TEXT PRIMARY KEY, "
            "line INTEGER NOT NULL, digest TEXT NOT NULL)",
            META_DDL.format(META_TABLE),
            f"CREATE TABLE IF NOT EXISTS {KEYS_TABLE} (subject TEXT PRIMARY KEY, "
            "wrapped TEXT NOT NULL)",
            f"CREATE TABLE IF NOT EXISTS {GLOBAL_TABLE} (position INTEGER PRIMARY KEY, "
            "hash TEXT NOT NULL)",
            f"CREATE TABLE IF NOT EXISTS {ADOPTION_TABLE} (id INTEGER PRIMARY KEY "
            "CHECK (id = 1), through INTEGER NOT NULL, adopted INTEGER NOT NULL, "
            "at TEXT NOT NULL)",
        ]

    #: Set by the application: seals personal values under their subjects' keys.
    keyring: Keyring | None = None

    def _insert_events(
        self, c: SQLiteCursor, stored_events: Sequence[StoredEvent], **kwargs: Any
    ) -> Sequence[int] | None:
        extra: Extra = kwargs.get("extra") or Extra()
        if extra.position is not None:
            # First, so that a run that lost the race hears LogPositionTaken rather than a
            # version conflict it would retry.  The claim is the transaction's first write:
            # it takes SQLite's write lock, and no other writer can move the position before
            # the commit.
            p = extra.position
            c.execute(
                f"INSERT INTO {POSITIONS_TABLE} (log_id, line, digest) VALUES (?, ?, ?) "
                "ON CONFLICT (log_id) DO UPDATE SET line = excluded.line, "
                f"digest = excluded.digest WHERE {POSITIONS_TABLE}.line < ?",
                (p.log_id, p.line, p.digest, p.claims_from),
            )
            c.execute("SELECT changes()")
            if c.fetchone()[0] == 0:
                c.execute(
                    f"SELECT log_id, line, digest FROM {POSITIONS_TABLE} WHERE log_id = ?",
                    (p.log_id,),
                )
                row = c.fetchone()
                check_claim(p, LogPosition(row[0], int(row[1]), row[2]))
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
            # Compared by their text (as stored): no UUID parsed per row.
            found = {str(row[0]): int(row[1]) for row in c.fetchall()}
            raise_if_stale(read_versions, {s: found.get(s.hex, 0) for s in streams})
        if extra.chain:
            c.executemany(
                f"INSERT INTO {CHAIN_TABLE} (originator_id, originator_version, hash) "
                "VALUES (?, ?, ?)",
                [(s.hex, v, h) for s, v, h in extra.chain],
            )
            # The global head is read after the events' insert took SQLite's write lock: no
            # other writer can extend the chain before this transaction commits.
            c.execute(f"SELECT position, hash FROM {GLOBAL_TABLE} ORDER BY position DESC LIMIT 1")
            row = c.fetchone()
            head = None if row is None else (int(row[0]), str(row[1]))
            c.executemany(
                f"INSERT INTO {GLOBAL_TABLE} (position, hash) VALUES (?, ?)",
                global_rows(head, ids or (), extra.chain),
            )
        if extra.erase or extra.replace or extra.rewrite:
            # A deletion that is real: SQLite zeroes what it deletes (the WAL is checkpointed
            # and truncated after the commit, EventStoreApplication.record).
            c.execute("PRAGMA secure_delete = ON")
        for subject in extra.erase:  # first: the values written with these events stay
            c.execute(f"DELETE FROM {PERSONAL_TABLE} WHERE subject = ?", (subject,))
            c.execute(f"DELETE FROM {KEYS_TABLE} WHERE subject = ?", (subject,))
        for subject, field in extra.replace:
            c.execute(
                f"DELETE FROM {PERSONAL_TABLE} WHERE subject = ? AND ref LIKE ?",
                (subject, f"%/{field}"),
            )
        if extra.personal or extra.rotate:
            self._write_personal(c, extra)
        for stream, version, state in extra.rewrite:
            c.execute(
                f"UPDATE {self.events_table_name} SET state = ? "
                "WHERE originator_id = ? AND originator_version = ?",
                (state, stream.hex, version),
            )
        return ids

    def _write_personal(self, c: SQLiteCursor, extra: Extra) -> None:
        """Seal the new personal values under their subjects' keys, found or made here, in
        the write transaction (so a key another process destroyed is never reused)."""
        subjects = subjects_of(extra)
        marks = ",".join("?" for _ in subjects)
        # The subjects' keys, and one key of the store (the last row) to check a new key is
        # wrapped by the same master key: one query.
        c.execute(
            f"SELECT subject, wrapped FROM {KEYS_TABLE} WHERE subject IN ({marks}) UNION ALL "
            f"SELECT * FROM (SELECT subject, wrapped FROM {KEYS_TABLE} LIMIT 1)",
            subjects,
        )
        found = [(row[0], row[1]) for row in c.fetchall()]
        keys = {s: w for s, w in found if s in subjects}
        any_key = found[-1] if found else None
        survivors: list[tuple[str, str, str]] = []
        if extra.rotate:
            marks = ",".join("?" for _ in extra.rotate)
            c.execute(
                f"SELECT ref, subject, data FROM {PERSONAL_TABLE} WHERE subject IN ({marks})",
                list(extra.rotate),
            )
            survivors = [(r[0], r[1], r[2]) for r in c.fetchall()]
        plan = keyring_of(self).plan(
            keys,
            any_key,
            [(r.ref, r.subject, r.salt, r.data) for r in extra.personal],
            extra.rotate,
            survivors,
        )
        for subject in plan.delete_keys:
            c.execute(f"DELETE FROM {KEYS_TABLE} WHERE subject = ?", (subject,))
        if plan.insert_keys:
            c.executemany(
                f"INSERT INTO {KEYS_TABLE} (subject, wrapped) VALUES (?, ?)", plan.insert_keys
            )
        if plan.update_rows:
            c.executemany(
                f"UPDATE {PERSONAL_TABLE} SET data = ? WHERE ref = ?",
                [(data, ref) for ref, data in plan.update_rows],
            )
        if plan.insert_rows:
            c.executemany(
                f"INSERT INTO {PERSONAL_TABLE} (ref, subject, data, salt) VALUES (?, ?, ?, ?)",
                plan.insert_rows,
            )

    def has_unsealed_personal(self, subjects: Sequence[str]) -> bool:
        return False  # SQLite's secure_delete and the checkpoint cover every table

    def scrub(self, *, personal_table: bool) -> None:
        """After an erasure: checkpoint the WAL into the database and truncate it, so the
        deleted (zeroed) keys and values survive in no page image."""
        with self.datastore.get_connection(commit=True) as conn:
            cursor = conn.cursor()
            for _ in range(50):
                cursor.execute("PRAGMA wal_checkpoint(TRUNCATE)")
                busy = cursor.fetchone()
                if not busy or not busy[0]:
                    return
                time.sleep(0.05)  # a reader holds an old snapshot: let it finish

    def _select(self, sql: str, params: Sequence[Any]) -> list[Any]:
        with self.datastore.transaction(commit=False) as c:
            c.execute(sql, params)
            return list(c.fetchall())

    def stream_versions(self, streams: Sequence[UUID]) -> dict[UUID, int]:
        out: dict[UUID, int] = {}
        for start in range(0, len(streams), LOOKUP):
            part = streams[start : start + LOOKUP]
            marks = ",".join("?" for _ in part)
            for stream, version in self._select(
                "SELECT originator_id, MAX(originator_version) "
                f"FROM {self.events_table_name} WHERE originator_id IN ({marks}) "
                "GROUP BY originator_id",
                [s.hex for s in part],
            ):
                out[UUID(stream)] = int(version)
        return out

    def chain_hashes(self, keys: Sequence[tuple[UUID, int]]) -> dict[tuple[UUID, int], str]:
        out: dict[tuple[UUID, int], str] = {}
        for start in range(0, len(keys), LOOKUP):
            part = keys[start : start + LOOKUP]
            # A join on a VALUES list walks the primary key once per pair; a chain of ORs
            # made SQLite plan (and scan for) each term.
            values = ",".join("(?, ?)" for _ in part)
            params = [x for s, v in part for x in (s.hex, v)]
            for stream, version, hash_ in self._select(
                f"SELECT c.originator_id, c.originator_version, c.hash FROM (VALUES {values}) "
                f"AS k CROSS JOIN {CHAIN_TABLE} c ON c.originator_id = k.column1 "
                "AND c.originator_version = k.column2",
                params,
            ):
                out[UUID(stream), int(version)] = hash_
        return out

    def all_chain_hashes(self) -> dict[tuple[UUID, int], str]:
        rows = self._select(
            f"SELECT originator_id, originator_version, hash FROM {CHAIN_TABLE}", ()
        )
        return {(UUID(s), int(v)): h for s, v, h in rows}

    def vault_get(self, refs: Sequence[str]) -> dict[str, PersonalRow]:
        out: dict[str, PersonalRow] = {}
        for start in range(0, len(refs), LOOKUP):
            part = refs[start : start + LOOKUP]
            marks = ",".join("?" for _ in part)
            for row in self._personal_select(f"WHERE p.ref IN ({marks})", part):
                out[row.ref] = row
        return out

    def personal_rows(self) -> dict[str, PersonalRow]:
        return {row.ref: row for row in self._personal_select("", ())}

    def _personal_select(self, where: str, params: Sequence[Any]) -> list[PersonalRow]:
        try:
            rows = self._select(
                f"SELECT p.ref, p.subject, p.data, p.salt, k.wrapped FROM {PERSONAL_TABLE} p "
                f"LEFT JOIN {KEYS_TABLE} k ON k.subject = p.subject {where}",
                params,
            )
        except Exception as e:
            if KEYS_TABLE not in str(e):
                raise
            # A store of matome 0.2 opened read-only has no keys table yet (its first write
            # makes it): its values are all of the earlier forms.
            rows = self._select(
                f"SELECT p.ref, p.subject, p.data, p.salt, NULL FROM {PERSONAL_TABLE} p {where}",
                params,
            )
        return [PersonalRow(*r) for r in rows]

    def log_position(self, log_id: str) -> LogPosition | None:
        rows = self._select(
            f"SELECT log_id, line, digest FROM {POSITIONS_TABLE} WHERE log_id = ?", (log_id,)
        )
        return LogPosition(rows[0][0], int(rows[0][1]), rows[0][2]) if rows else None

    def store_meta(self) -> dict[str, int]:
        try:
            rows = self._select(f"SELECT name, value FROM {META_TABLE}", ())
        except (PersistenceError, sqlite3.Error) as e:
            if "no such table" not in str(e):
                raise
            return {}  # no matome since 0.2 wrote to it, or opened only to read so far
        return {str(name): int(value) for name, value in rows}

    def raise_store_meta(self, rows: Mapping[str, int]) -> None:
        upsert = (
            f"INSERT INTO {META_TABLE} (name, value) VALUES (?, ?) ON CONFLICT (name) "
            "DO UPDATE SET value = excluded.value WHERE excluded.value > value"
        )
        try:
            # The write first: a transaction that read (even the schema, as CREATE TABLE IF
            # NOT EXISTS does) before writing cannot wait for another process's write lock —
            # SQLite answers "database is locked" at once instead of calling its busy handler.
            with self.datastore.transaction(commit=True) as c:
                c.executemany(upsert, list(rows.items()))
        except (PersistenceError, sqlite3.Error) as e:
            if "no such table" not in str(e):
                raise
            # A store opened without creating tables (CREATE_TABLE=n) by a read command.
            with self.datastore.transaction(commit=True) as c:
                c.execute(META_DDL.format(META_TABLE))
                c.executemany(upsert, list(rows.items()))

    def topics_after(self, position: int) -> dict[str, int]:
        rows = self._select(
            f"SELECT topic, MAX(rowid) FROM {self.events_table_name} WHERE rowid > ? "
            "GROUP BY topic",
            (position,),
        )
        return {str(topic): int(last) for topic, last in rows}

    def global_range(self, start: int, stop: int) -> list[tuple[int, str]]:
        rows = self._select(
            f"SELECT position, hash FROM {GLOBAL_TABLE} WHERE position BETWEEN ? AND ? "
            "ORDER BY position",
            (start, stop),
        )
        return [(int(p), str(h)) for p, h in rows]

    def global_after(self, position: int) -> list[tuple[int, str]]:
        rows = self._select(
            f"SELECT position, hash FROM {GLOBAL_TABLE} WHERE position > ? ORDER BY position",
            (position,),
        )
        return [(int(p), str(h)) for p, h in rows]

    def adoption(self) -> Adoption | None:
        try:
            rows = self._select(f"SELECT through, adopted, at FROM {ADOPTION_TABLE}", ())
        except (sqlite3.Error, PersistenceError):
            return None  # a store no writer of this version has opened yet
        return Adoption(int(rows[0][0]), int(rows[0][1]), str(rows[0][2])) if rows else None

    def adopt(self, content_of: Any, at: str) -> Adoption:
        with self.datastore.transaction(commit=True) as c:
            # The first write takes SQLite's write lock: one process adopts, the others find
            # its row (the CHECK keeps it to one).
            c.execute(
                f"INSERT INTO {ADOPTION_TABLE} (id, through, adopted, at) VALUES (1, 0, 0, ?) "
                "ON CONFLICT (id) DO NOTHING",
                (at,),
            )
            if c.sqlite_cursor.rowcount == 1:
                c.execute(
                    f"SELECT rowid, originator_id, originator_version, topic, state "
                    f"FROM {self.events_table_name} ORDER BY rowid"
                )
                notifications = [
                    Logged(int(r[0]), UUID(r[1]), int(r[2]), str(r[3]), bytes(r[4]))
                    for r in c.fetchall()
                ]
                c.execute(f"SELECT originator_id, originator_version, hash FROM {CHAIN_TABLE}")
                recorded = {(UUID(r[0]), int(r[1])): str(r[2]) for r in c.fetchall()}
                missing, global_ = adoption_rows(notifications, recorded, content_of)
                c.executemany(
                    f"INSERT INTO {CHAIN_TABLE} (originator_id, originator_version, hash) "
                    "VALUES (?, ?, ?)",
                    [(s.hex, v, h) for s, v, h in missing],
                )
                c.executemany(f"INSERT INTO {GLOBAL_TABLE} (position, hash) VALUES (?, ?)", global_)
                through = notifications[-1].id if notifications else 0
                c.execute(
                    f"UPDATE {ADOPTION_TABLE} SET through = ?, adopted = ? WHERE id = 1",
                    (through, len(missing)),
                )
            c.execute(f"SELECT through, adopted, at FROM {ADOPTION_TABLE}")
            row = c.fetchone()
        return Adoption(int(row[0]), int(row[1]), str(row[2]))


class SQLiteFactory(eventsourcing.sqlite.Factory):
    """eventsourcing's SQLite factory, with the connection pool sized and timed by matome's
    settings (``SQLITE_POOL_SIZE``, ``SQLITE_MAX_OVERFLOW``, ``SQLITE_POOL_TIMEOUT``): the
    library's 5-second pool timeout made busy threads fail with a pool error instead of
    waiting their turn for SQLite's one writer."""

    def __init__(self, env: Environment | Mapping[str, str] | None) -> None:
        super().__init__(env)
        old = self.datastore
        self.datastore = eventsourcing.sqlite.SQLiteDatastore(
            db_name=self.env.get(self.SQLITE_DBNAME) or "",
            lock_timeout=int(self.env.get(self.SQLITE_LOCK_TIMEOUT) or 30),
            pool_size=int(self.env.get("SQLITE_POOL_SIZE") or 8),
            max_overflow=int(self.env.get("SQLITE_MAX_OVERFLOW") or 32),
            pool_timeout=float(self.env.get("SQLITE_POOL_TIMEOUT") or 60),
            single_row_tracking=old.single_row_tracking,
            originator_id_type=old.originator_id_type,
        )
        old.close()
