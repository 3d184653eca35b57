"""Choosing the event store: embedded SQLite file (default), in-memory, or PostgreSQL."""

from __future__ import annotations

import os
from urllib.parse import parse_qs, unquote, urlsplit

from matome.errors import InvalidInput

__all__ = ["DEFAULT_DB", "MEMORY", "store_env"]

#: The default store: an SQLite file in the working directory.
DEFAULT_DB = "matome.sqlite"
#: Names of the in-memory store (eventsourcing's POPO recorders), for tests and dry runs.
MEMORY = (":memory:", "memory:", "popo:")


def store_env(db: str | None = None) -> dict[str, str]:
    """eventsourcing settings for the store named by ``db``.

    ``db`` is, in order of preference, the argument, the ``MATOME_DB`` environment variable, or
    ``matome.sqlite``.  It may be a file path (SQLite), ``:memory:`` (in-process, nothing kept),
    or a ``postgresql://user:password@host:port/dbname?schema=name`` URL.
    """
    db = db or os.environ.get("MATOME_DB") or DEFAULT_DB
    if db in MEMORY:
        return {"PERSISTENCE_MODULE": "eventsourcing.popo"}
    if db.startswith(("postgresql://", "postgres://")):
        return _postgres_env(db)
    if "://" in db:
        raise InvalidInput(f"store {db!r}: use a file path, :memory: or a postgresql:// URL")
    return {
        "PERSISTENCE_MODULE": "eventsourcing.sqlite",
        "SQLITE_DBNAME": db,
        "APPLICATION_RECORDER_TOPIC": "matome.recorders:SQLiteRecorder",
        # Writers queue for the database lock rather than fail at once.
        "SQLITE_LOCK_TIMEOUT": "30",
    }


def _postgres_env(url: str) -> dict[str, str]:
    parts = urlsplit(url)
    query = parse_qs(parts.query)
    dbname = unquote(parts.path.lstrip("/")) or "postgres"
    env = {
        "PERSISTENCE_MODULE": "eventsourcing.postgres",
        "APPLICATION_RECORDER_TOPIC": "matome.recorders_postgres:PostgresRecorder",
        "POSTGRES_DBNAME": dbname,
        "POSTGRES_HOST": parts.hostname or "127.0.0.1",
        "POSTGRES_PORT": str(parts.port or 5432),
        "POSTGRES_USER": unquote(parts.username or "postgres"),
        "POSTGRES_PASSWORD": unquote(parts.password or ""),
        # Writers wait for the table lock a bounded time, then the unit of work retries.
        "POSTGRES_LOCK_TIMEOUT": "10",
        "POSTGRES_POOL_SIZE": query.get("pool_size", ["5"])[0],
        "POSTGRES_MAX_OVERFLOW": query.get("max_overflow", ["20"])[0],
    }
    if "schema" in query:
        env["POSTGRES_SCHEMA"] = query["schema"][0]
    return env
