"""Store settings: which store a ``--db`` / ``MATOME_DB`` names, and how a person names it.

Why its own module: the settings are matome's own (an SQLite path, ``:memory:``, or a
``postgresql://`` URL whose every parameter is checked, never ignored), read from its options
and ``MATOME_*`` variables only, and turned into eventsourcing's environment here — before any
store is opened, so a mistyped setting is refused without touching one.
"""

from __future__ import annotations

import base64
import os
import re
from collections.abc import Mapping
from urllib.parse import parse_qs, unquote, urlsplit

from matome.errors import InvalidInput, InvalidSetting, StoreNotFound, StoreUnavailable

#: The default store: an SQLite file in the working directory.
DEFAULT_DB = "matome.sqlite"
#: Names of the in-memory store (eventsourcing's POPO recorders), for tests and dry runs.
MEMORY = (":memory:", "memory:", "popo:")


def cipher_env(key: str | None) -> dict[str, str]:
    """Settings for encryption at rest with AES-GCM (eventsourcing's cipher, the
    ``cryptography`` package): ``key`` is 16, 24 or 32 random bytes in base64, or ``None``
    (``MATOME_CIPHER_KEY``, or no encryption)."""
    key = key or os.environ.get("MATOME_CIPHER_KEY")
    if not key:
        return {}
    try:
        size = len(base64.b64decode(key, validate=True))
    except ValueError:
        raise InvalidInput("the cipher key must be base64 (matome keygen makes one)") from None
    if size not in (16, 24, 32):
        raise InvalidInput(f"the cipher key must be 16, 24 or 32 bytes, not {size}")
    return {"CIPHER_TOPIC": "eventsourcing.cryptography:AESCipher", "CIPHER_KEY": key}


def store_env(db: str | None = None) -> dict[str, str]:
    """The settings of the store named by ``db`` (matome's own: the process environment is
    read for ``MATOME_*`` variables only).

    ``db`` is, in order of preference, the argument, the ``MATOME_DB`` environment variable, or
    ``matome.sqlite``.  It may be a file path (SQLite), ``:memory:`` (in-process, nothing kept),
    or a ``postgresql://user:password@host:port/dbname?schema=name&connect_timeout=5`` URL.
    """
    db = db or os.environ.get("MATOME_DB") or DEFAULT_DB
    if db in MEMORY:
        return {"PERSISTENCE_MODULE": "eventsourcing.popo"}
    if db.startswith(("postgresql://", "postgres://")):
        return _postgres_env(db)
    if "://" in db:
        raise InvalidSetting(f"store {db!r}: use a file path, :memory: or a postgresql:// URL")
    return {
        "PERSISTENCE_MODULE": "matome.application.eventstore:SQLiteFactory",
        "SQLITE_DBNAME": db,
        "APPLICATION_RECORDER_TOPIC": "matome.application.eventstore:SQLiteRecorder",
        # Writers queue for the database lock rather than fail at once.
        "SQLITE_LOCK_TIMEOUT": os.environ.get("MATOME_SQLITE_LOCK_TIMEOUT", "30"),
        "SQLITE_POOL_TIMEOUT": os.environ.get("MATOME_SQLITE_POOL_TIMEOUT", "60"),
    }


def check_store(settings: Mapping[str, str]) -> None:
    """Refuse, before anything is created, to open a store that does not exist: only the
    commands that write a history (``run``, ``demo``) create one — a mistyped ``--db`` path
    must not silently answer ``unknown_line`` from a new empty database."""
    if store_kind(settings) != "sqlite":
        return
    path = settings["SQLITE_DBNAME"]
    if not os.path.exists(path):
        raise StoreNotFound(f"there is no store at {path} (matome run or matome demo creates one)")
    if os.path.isdir(path):
        raise StoreUnavailable(f"{path} is a directory, not a matome store")
    if os.path.getsize(path) == 0:
        # SQLite would take an empty file for an empty database and write its tables into
        # it: a read command must leave a file that holds no store as it found it.
        raise StoreNotFound(f"{path} is an empty file, not a matome store")


def store_kind(settings: Mapping[str, str]) -> str:
    """``sqlite``, ``postgres`` or ``memory``: the kind of store ``settings`` name."""
    module = settings.get("PERSISTENCE_MODULE", "")
    if "sqlite" in module.lower():
        return "sqlite"
    if "postgres" in module.lower():
        return "postgres"
    return "memory"


def describe(settings: Mapping[str, str]) -> str:
    """The store as a person names it (no password)."""
    kind = store_kind(settings)
    if kind == "sqlite":
        return f"SQLite store {settings['SQLITE_DBNAME']}"
    if kind == "postgres":
        schema = settings.get("POSTGRES_SCHEMA", "public")
        return (
            f"PostgreSQL store {settings['POSTGRES_USER']}@{settings['POSTGRES_HOST']}:"
            f"{settings['POSTGRES_PORT']}/{settings['POSTGRES_DBNAME']} (schema {schema})"
        )
    return "in-memory store"


def _redacted(url: str) -> str:
    """``url`` with any password between ``:`` and ``@`` masked (secrets are never echoed)."""
    return re.sub(r"(//[^:/@]*:)[^@]*@", r"\1***@", url)


#: The parameters a ``postgresql://`` URL may carry.  Any other is refused, never ignored: a
#: mistyped ``?schmea=billing`` would otherwise send every write to ``public``.
_URL_PARAMETERS = ("schema", "connect_timeout", "pool_size", "max_overflow")
#: A schema name matome puts in SQL: a plain PostgreSQL identifier (letters, digits and
#: ``_``, not starting with a digit, at most 63 bytes — NAMEDATALEN - 1; ``pg_`` is the
#: server's own prefix).
SCHEMA_NAME = re.compile(r"(?!pg_)[A-Za-z_][A-Za-z0-9_]{0,62}", flags=re.ASCII)


def _postgres_env(url: str) -> dict[str, str]:
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as e:  # an unclosed "[", a port out of range or not a number
        raise InvalidSetting(f"store URL {_redacted(url)!r} is malformed: {e}") from None
    try:
        # Blank values are kept (``?schema=`` is a mistake to report, not to drop).
        query = parse_qs(parts.query, keep_blank_values=True, strict_parsing=bool(parts.query))
    except ValueError:
        raise InvalidSetting(
            f"store URL: the query {parts.query[:80]!r} is not name=value pairs joined by &"
        ) from None
    if parts.fragment:
        raise InvalidSetting("store URL: a '#' part means nothing to matome")
    unknown = sorted(set(query) - set(_URL_PARAMETERS))
    if unknown:
        raise InvalidSetting(
            f"store URL: unknown parameter {unknown[0][:40]!r} (matome knows "
            f"{', '.join(_URL_PARAMETERS)})"
        )
    for name, values in query.items():
        if len(values) > 1:
            raise InvalidSetting(f"store URL: {name} is given {len(values)} times")
    for name, least in (("pool_size", 1), ("max_overflow", 0), ("connect_timeout", 1)):
        for value in query.get(name, []):
            if not value.isdigit() or int(value) < least:
                raise InvalidSetting(
                    f"store URL: {name} must be a whole number of at least {least}, got {value!r}"
                )
    for value in query.get("schema", []):
        if not SCHEMA_NAME.fullmatch(value):
            raise InvalidSetting(
                f"store URL: schema {value[:80]!r} is not a plain PostgreSQL identifier "
                "(letters, digits and _, not starting with a digit or pg_, at most 63)"
            )
    dbname = unquote(parts.path.lstrip("/")) or "postgres"
    env = {
        "PERSISTENCE_MODULE": "eventsourcing.postgres",
        "APPLICATION_RECORDER_TOPIC": "matome.application.eventstore:PostgresRecorder",
        "POSTGRES_DBNAME": dbname,
        "POSTGRES_HOST": parts.hostname or "127.0.0.1",
        "POSTGRES_PORT": str(port or 5432),
        "POSTGRES_USER": unquote(parts.username or "postgres"),
        "POSTGRES_PASSWORD": unquote(parts.password or ""),
        # Writers wait for the table lock a bounded time, then the unit of work retries.
        "POSTGRES_LOCK_TIMEOUT": "10",
        # A server that does not answer is reported in seconds, not after a 30-second hang.
        "POSTGRES_CONNECT_TIMEOUT": query.get(
            "connect_timeout", [os.environ.get("MATOME_PG_CONNECT_TIMEOUT", "5")]
        )[0],
        # Connections kept open, and how many more a busy process may open: one at start,
        # so that many processes starting together do not exhaust the server's
        # max_connections (eventsourcing opens pool_size connections up front).
        "POSTGRES_POOL_SIZE": query.get("pool_size", ["1"])[0],
        "POSTGRES_MAX_OVERFLOW": query.get("max_overflow", ["15"])[0],
    }
    if "schema" in query:
        env["POSTGRES_SCHEMA"] = query["schema"][0]
    return env
