"""Failures of the store, translated into matome's errors (contract codes).

Why its own module: a store fails in the words of three libraries (sqlite3, psycopg,
eventsourcing); a person needs one line naming the store and the cause — busy, unreadable,
read-only, full, missing, refused — and a caller needs matome's error with its code.
"""

from __future__ import annotations

import os
import sqlite3
import tempfile
from collections.abc import Mapping

from eventsourcing.persistence import (
    ConnectionUnavailableError,
    MapperDeserialisationError,
    PersistenceError,
)

from matome.application._recorder import LogPositionTaken
from matome.application._settings import describe, store_kind
from matome.errors import Busy, MatomeError, StoreUnavailable


def _sqlite_directory_problem(path: str) -> str | None:
    """Why SQLite cannot open ``path`` when the cause is its directory: SQLite needs to
    write its journal files (WAL) beside the database, for reads too."""
    folder = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(folder):
        return f"its directory {folder} does not exist"
    try:
        with tempfile.TemporaryFile(dir=folder):
            pass
    except OSError:
        return (
            f"its directory {folder} is read-only (SQLite writes its journal files beside "
            "the database, for reads too)"
        )
    return None


def translate_store_error(error: BaseException, settings: Mapping[str, str]) -> MatomeError | None:
    """The matome error a failure of the store becomes: one line naming the store and the
    cause (``None``: not a failure of the store)."""
    if isinstance(error, LogPositionTaken):
        # Not a failure: another run of the log got there first (raised, perhaps, while a
        # version conflict was being handled — which the chain below would find).
        return None
    store = describe(settings)
    chain: list[BaseException] = []
    seen: BaseException | None = error
    while seen is not None and seen not in chain:
        chain.append(seen)
        seen = seen.__cause__ or seen.__context__
    text = " | ".join(str(e) for e in chain).lower()
    if (
        any(isinstance(e, ConnectionUnavailableError) for e in chain)
        or "database is locked" in text
    ):
        return Busy(f"{store} is busy (locked by another writer); try again")
    if any(isinstance(e, MapperDeserialisationError) for e in chain):
        cause = "its events cannot be read"
        if "invalidtag" in text or "decrypt" in text or "tag" in text:
            cause = "its events cannot be decrypted: wrong MATOME_CIPHER_KEY?"
        return StoreUnavailable(f"{store}: {cause} ({chain[0]})")
    causes = (
        ("readonly", "it is read-only"),
        ("read-only", "it is read-only"),
        ("disk is full", "the disk is full"),
        ("no space left", "the disk is full"),
        ("file too large", "the file size limit was reached"),
        ("disk i/o error", "a disk I/O error occurred (full disk or file size limit?)"),
        ("file is not a database", "the file is not a database"),
        ("not a database", "the file is not a database"),
        ("unable to open database", "the database file cannot be opened (missing directory?)"),
        # The database or role named in the settings, not some other object ("prepared
        # statement ... does not exist" is a driver fault, reported with its own text).
        ('database "', "it does not exist (no such database)"),
        ('role "', "the user does not exist"),
        ('relation "', "it is not a matome store (no event table; schema missing or empty)"),
        ("connection refused", "the server refused the connection"),
        ("timeout", "the server did not answer in time"),
        ("timed out", "the server did not answer in time"),
        ("could not translate host", "the host name is unknown"),
        ("password authentication failed", "the password was refused"),
        ("no such table", "it is not a matome store"),
    )
    store_failure = any(
        isinstance(e, PersistenceError | sqlite3.Error | OSError)
        or type(e).__module__.startswith("psycopg")
        for e in chain
    )
    if not store_failure:
        return None
    if "pooltimeout" in text or "couldn't get a connection" in text or "pool initial" in text:
        text += " | " + _postgres_diagnosis(settings).lower()
    if "unable to open database" in text and store_kind(settings) == "sqlite":
        problem = _sqlite_directory_problem(settings["SQLITE_DBNAME"])
        if problem is not None:
            return StoreUnavailable(f"{store}: {problem}")
    for needle, cause in causes:
        if needle in text and (not needle.endswith('"') or "does not exist" in text):
            return StoreUnavailable(f"{store}: {cause}")
    # The driver's own words, first line only (PostgreSQL adds the SQL and a caret below).
    detail = (str(chain[-1]).strip().splitlines() or [""])[0]
    return StoreUnavailable(f"{store}: {chain[-1].__class__.__name__}: {detail}")


def _postgres_diagnosis(settings: Mapping[str, str]) -> str:
    """Why a PostgreSQL server gives no connection (the pool only says it timed out)."""
    if store_kind(settings) != "postgres":
        return ""
    try:
        import psycopg

        with psycopg.connect(
            dbname=settings["POSTGRES_DBNAME"],
            host=settings["POSTGRES_HOST"],
            port=int(settings["POSTGRES_PORT"]),
            user=settings["POSTGRES_USER"],
            password=settings.get("POSTGRES_PASSWORD") or None,
            connect_timeout=int(settings.get("POSTGRES_CONNECT_TIMEOUT", "5")),
        ):
            return ""
    except Exception as e:
        return str(e)
