"""Where read models live: SQL tables beside the events, one schema for every store.

* SQLite store → the same database file (its own tables, its own connection);
* in-memory store → an in-memory SQLite database (the same SQL, nothing kept);
* PostgreSQL store → the same database and schema.

Each view update is written in one transaction together with the view's tracking position, so
a batch of events is applied exactly once: a crash before the commit leaves both unchanged, and
the next catch-up starts again from the tracked position.
"""

from __future__ import annotations

import sqlite3
import threading
import zlib
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any, Protocol

from matome.projections.views import TABLES

# The key of the advisory lock PostgreSQL start-up holds (matome.application.eventstore).
CREATE_LOCK = 0x6D61746F6D65
__all__ = [
    "SCHEMA_VERSION",
    "VIEW_LOGIC",
    "Cursor",
    "ViewStore",
    "ddl_digest",
    "open_view_store",
    "schema_version",
]

#: Bump when a ``when`` function's meaning changes without a change of the tables' declarations
#: (those change :data:`SCHEMA_VERSION` by themselves).  History of the hand-kept version, which
#: this continues: 2: purchases' quantity; the fee settings of ``set_fee``.  3: the rows of
#: issued bills (per-month totals), how far the billing run completed.  4: per month, provider
#: and operator, the totals of the issued bills kept as they are issued.  5: purchases' service
#: period end (docs/rules.md §11).  6: the tables' DDL derived from their declarations
#: (:mod:`matome.projections.views`): every integer column BIGINT on PostgreSQL, keys NOT NULL.
VIEW_LOGIC = 6


def ddl_digest() -> int:
    """A stable digest (CRC-32, the same in every process and on every machine) of the DDL
    every view table's declaration gives, in both dialects, with its indexes."""
    text = "\n".join(
        ddl
        for table in TABLES
        for ddl in (
            *table.ddl("sqlite"),
            *table.ddl("postgres"),
            *table.query_index_ddl().values(),
        )
    )
    return zlib.crc32(text.encode("utf-8"))


def schema_version(view_logic: int, digest: int) -> int:
    """The views' schema version: ``view_logic`` and the DDL's digest in one number that fits
    ``mv_tracking.schema_version`` (an ``INTEGER``: 32-bit signed on PostgreSQL)."""
    version = view_logic * 1_000_000 + digest % 1_000_000
    if not 0 < version < 2**31:
        raise ValueError(f"view schema version {version} does not fit a 32-bit INTEGER")
    return version


#: The views' schema version: a store tracked at another version is rebuilt from the log.  It
#: is derived — :data:`VIEW_LOGIC` and the digest of the tables' declared DDL — so adding,
#: removing or retyping a column changes it without anyone remembering to.
SCHEMA_VERSION = schema_version(VIEW_LOGIC, ddl_digest())
#: The SQLite view connection's page cache, in MiB.
CACHE_MIB = 32


def _ddl(dialect: str) -> list[str]:
    """Every view table's DDL (and the indexes view updates use)."""
    return [ddl for table in TABLES for ddl in table.ddl(dialect)]


#: Indexes that only queries use (no view update reads through them).  A rebuild drops them
#: and builds each once at the end, which is faster than keeping them up to date row by row.
_QUERY_INDEXES = {name: ddl for table in TABLES for name, ddl in table.query_index_ddl().items()}

_TRACKING_DDL = """CREATE TABLE IF NOT EXISTS mv_tracking (
    view TEXT PRIMARY KEY, position BIGINT NOT NULL, schema_version INTEGER NOT NULL)"""


class Cursor(Protocol):
    def execute(self, sql: str, params: Sequence[Any] = ...) -> Any: ...

    def executemany(self, sql: str, params: Sequence[Sequence[Any]]) -> Any: ...

    def fetchone(self) -> Any: ...

    def fetchall(self) -> list[Any]: ...


class ViewStore:
    """A connection to the view tables with a transaction helper.

    SQL is written with ``?`` placeholders; the PostgreSQL store rewrites them to ``%s``.
    """

    dialect = "sqlite"

    def __init__(self) -> None:
        self._lock = threading.RLock()

    @contextmanager
    def transaction(self, *, write: bool) -> Iterator[Cursor]:
        raise NotImplementedError

    def create(self) -> None:
        """Create the tables (idempotent)."""
        with self.transaction(write=True) as cur:
            cur.execute(_TRACKING_DDL)
            for ddl in (*_ddl(self.dialect), *_QUERY_INDEXES.values()):
                cur.execute(ddl)

    def drop_views(self, cur: Cursor) -> None:
        for table in TABLES:
            cur.execute(f"DROP TABLE IF EXISTS {table.sql_name}")
        for ddl in (*_ddl(self.dialect), *_QUERY_INDEXES.values()):
            cur.execute(ddl)

    def drop_query_indexes(self, cur: Cursor) -> None:
        """Drop the indexes that only queries use (:meth:`create_query_indexes` restores them;
        so does :meth:`create`, when a store is opened)."""
        for name in _QUERY_INDEXES:
            cur.execute(f"DROP INDEX IF EXISTS {name}")

    def create_query_indexes(self, cur: Cursor) -> None:
        for ddl in _QUERY_INDEXES.values():
            cur.execute(ddl)

    def close(self) -> None:
        raise NotImplementedError


class SQLiteViewStore(ViewStore):
    def __init__(self, path: str) -> None:
        super().__init__()
        #: The views share the events' database file (not so for an in-memory store): a
        #: catch-up reads the events through this connection, inside its own transaction.
        self.beside_events = path != ":memory:"
        # Autocommit mode: transactions are begun explicitly (BEGIN IMMEDIATE for writers, so
        # two catch-ups never interleave their reads of the tracking position).
        self._conn = sqlite3.connect(
            path, timeout=30, isolation_level=None, check_same_thread=False
        )
        if path != ":memory:":
            self._conn.execute("PRAGMA journal_mode=WAL")
        self._conn.execute("PRAGMA synchronous=NORMAL")
        # A page cache of at most CACHE_MIB (SQLite's default is 2 MiB): a catch-up inserts
        # purchases keyed by receipt and stream, at random places in those indexes, and a
        # larger cache keeps more of them from being read again.  Bounded whatever the log's size.
        self._conn.execute(f"PRAGMA cache_size=-{CACHE_MIB * 1024}")

    def create_query_indexes(self, cur: Cursor) -> None:
        # Building an index sorts its keys in memory up to the cache's size, then in temporary
        # files: build with SQLite's default cache, so that this peak stays small too.
        cur.execute("PRAGMA cache_size=-2000")
        try:
            super().create_query_indexes(cur)
        finally:
            cur.execute(f"PRAGMA cache_size=-{CACHE_MIB * 1024}")

    @contextmanager
    def transaction(self, *, write: bool) -> Iterator[Cursor]:
        with self._lock:
            cur = self._conn.cursor()
            cur.execute("BEGIN IMMEDIATE" if write else "BEGIN")
            try:
                yield cur
            except BaseException:
                cur.execute("ROLLBACK")
                raise
            else:
                cur.execute("COMMIT")
            finally:
                cur.close()

    def close(self) -> None:
        with self._lock:
            self._conn.close()


class _PgCursor:
    """A psycopg cursor that accepts ``?`` placeholders."""

    def __init__(self, cur: Any) -> None:
        self._cur = cur

    def execute(self, sql: str, params: Sequence[Any] = ()) -> Any:
        return self._cur.execute(sql.replace("?", "%s"), params)

    def executemany(self, sql: str, params: Sequence[Sequence[Any]]) -> Any:
        return self._cur.executemany(sql.replace("?", "%s"), params)

    def fetchone(self) -> Any:
        return self._cur.fetchone()

    def fetchall(self) -> list[Any]:
        rows: list[Any] = self._cur.fetchall()
        return rows


class PostgresViewStore(ViewStore):
    """The views in the event store's PostgreSQL database and schema, through a connection
    pool (queries from several threads run side by side).

    With ``pool``, the event store's own pool (its connections' search path set to the
    schema): one command then needs one connection, not one for the events and one for the
    views, and a catch-up reads the events through the views' transaction (``beside_events``),
    so that it never holds one connection of the pool while it waits for another.
    """

    dialect = "postgres"

    def __init__(self, env: dict[str, str], pool: Any = None) -> None:
        super().__init__()
        from psycopg_pool import ConnectionPool

        self.settings = env
        schema = env.get("POSTGRES_SCHEMA")
        kwargs: dict[str, Any] = {
            "dbname": env["POSTGRES_DBNAME"],
            "host": env["POSTGRES_HOST"],
            "port": int(env["POSTGRES_PORT"]),
            "user": env["POSTGRES_USER"],
            "password": env.get("POSTGRES_PASSWORD") or None,
            "connect_timeout": int(env.get("POSTGRES_CONNECT_TIMEOUT", "5")),
            "autocommit": False,
        }
        if schema:
            kwargs["options"] = f"-c search_path={schema}"
        self._kwargs = kwargs
        self.beside_events = self._shared = pool is not None
        if pool is not None:
            self._pool = pool
            return
        self._pool = ConnectionPool(
            kwargs=kwargs,
            min_size=1,
            max_size=int(env.get("POSTGRES_POOL_SIZE", "1"))
            + int(env.get("POSTGRES_MAX_OVERFLOW", "15")),
            timeout=float(env.get("POSTGRES_CONNECT_TIMEOUT", "5")),
            open=True,
        )
        # Until its first connection is made, a request finds the pool empty and makes it
        # open a second one: wait for the first (one connection for one reader).
        self._pool.wait(timeout=float(env.get("POSTGRES_CONNECT_TIMEOUT", "5")))

    def create(self) -> None:
        # Processes that start together would race on CREATE ... IF NOT EXISTS: serialise
        # them on the advisory lock the event store's creation uses too.
        with self.transaction(write=True) as cur:
            cur.execute("SELECT pg_advisory_xact_lock(%s)", (CREATE_LOCK,))
            cur.execute(_TRACKING_DDL)
            for ddl in (*_ddl(self.dialect), *_QUERY_INDEXES.values()):
                cur.execute(ddl)

    @contextmanager
    def transaction(self, *, write: bool) -> Iterator[Cursor]:
        from psycopg.rows import tuple_row

        # Rows as tuples: the event store's connections make dictionaries by default.
        with (
            self._pool.connection() as conn,
            conn.transaction(),
            conn.cursor(row_factory=tuple_row) as cur,
        ):
            yield _PgCursor(cur)

    def wait_for_events(self, channel: str, timeout: float) -> bool:
        """Wait up to ``timeout`` seconds for a NOTIFY on ``channel`` (eventsourcing's
        PostgreSQL recorder sends one with every insert); whether one came.  A lost
        notification only delays the caller until its next poll."""
        import psycopg
        from psycopg import sql

        with psycopg.connect(**{**self._kwargs, "autocommit": True}) as conn:
            conn.execute(sql.SQL("LISTEN {}").format(sql.Identifier(channel)))
            for _ in conn.notifies(timeout=timeout, stop_after=1):
                return True
        return False

    def close(self) -> None:
        if not self._shared:  # the event store closes its own pool
            self._pool.close()


def open_view_store(env: dict[str, str], pool: Any = None) -> ViewStore:
    """The view store beside the event store that ``env`` configures (on PostgreSQL, through
    the event store's connection ``pool`` when given)."""
    module = env.get("PERSISTENCE_MODULE", "eventsourcing.popo").lower()
    if "sqlite" in module:
        store: ViewStore = SQLiteViewStore(env["SQLITE_DBNAME"])
    elif "postgres" in module:
        store = PostgresViewStore(env, pool)
    else:
        store = SQLiteViewStore(":memory:")
    store.create()
    return store
