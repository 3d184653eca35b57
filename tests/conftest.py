"""Shared fixtures: an engine on every store; matome's own tests opt in to the kit's plugin.

PostgreSQL tests skip with a reason when no server is reachable, unless
``MATOME_REQUIRE_POSTGRES=1`` (set by ``.ci/run``), which turns the skip into a failure.
``MATOME_TEST_PG`` names the server (default ``postgresql://postgres@127.0.0.1:5432/test``).
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from matome.engine import Engine
from matome.policy import DEFAULT_POLICY, Policy

# The kit's pytest plugin is opt-in (installing matome loads nothing into other projects'
# pytest): matome's own tests ask for it, as a downstream project would.  It loads the
# Hypothesis profile named by HYPOTHESIS_PROFILE (ci, dev, deep; ci by default).
pytest_plugins = ["matome.testing.pytest_plugin"]

PG_URL = os.environ.get("MATOME_TEST_PG", "postgresql://postgres@127.0.0.1:5432/test")
REQUIRE_PG = os.environ.get("MATOME_REQUIRE_POSTGRES") == "1"
#: Tests hash secrets with one PBKDF2 round: the scheme is the same, only cheaper.
TEST_ITERATIONS = 1


def _pg_reason() -> str | None:
    try:
        import psycopg

        with psycopg.connect(_pg_dsn(), connect_timeout=3):
            return None
    except Exception as e:  # any failure means "no usable server"
        return f"no PostgreSQL server reachable at {PG_URL}: {e}"


def _pg_dsn() -> str:
    return PG_URL.split("?")[0]


_PG_UNAVAILABLE: list[str | None] = []


def require_postgres() -> None:
    """Skip (or, in CI, fail) the calling test when PostgreSQL is not reachable."""
    if not _PG_UNAVAILABLE:
        _PG_UNAVAILABLE.append(_pg_reason())
    reason = _PG_UNAVAILABLE[0]
    if reason is not None:
        if REQUIRE_PG:
            pytest.fail(f"MATOME_REQUIRE_POSTGRES=1 but {reason}")
        pytest.skip(reason)


@pytest.fixture
def pg_url() -> Iterator[str]:
    """A PostgreSQL URL with a fresh schema of its own, dropped afterwards."""
    require_postgres()
    import psycopg

    schema = f"matome_test_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(_pg_dsn(), autocommit=True) as conn:
        conn.execute(f'CREATE SCHEMA "{schema}"')
    try:
        yield f"{_pg_dsn()}?schema={schema}"
    finally:
        with psycopg.connect(_pg_dsn(), autocommit=True) as conn:
            conn.execute(f'DROP SCHEMA "{schema}" CASCADE')


STORES = ["memory", "sqlite", pytest.param("postgres", marks=pytest.mark.postgres)]


@pytest.fixture(params=STORES)
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """The ``db`` string of each store in turn: in-memory, an SQLite file, PostgreSQL."""
    if request.param == "memory":
        return ":memory:"
    if request.param == "sqlite":
        return str(tmp_path / "matome.sqlite")
    url: str = request.getfixturevalue("pg_url")
    return url


EngineFactory = Callable[..., Engine]


@pytest.fixture
def make_engine(store_url: str) -> Iterator[EngineFactory]:
    """Build engines on the parametrised store (several share one store: another process)."""
    made: list[Engine] = []

    def make(policy: Policy = DEFAULT_POLICY) -> Engine:
        engine = Engine.open(store_url, policy=policy, hash_iterations=TEST_ITERATIONS)
        made.append(engine)
        return engine

    yield make
    for engine in made:
        engine.close()


@pytest.fixture
def cheap_hashing(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every engine opened during the test — the ``matome`` command line's included — hashes
    secrets with :data:`TEST_ITERATIONS` unless told otherwise (the scheme is the same; stored
    hashes carry their own round count)."""
    real_open = Engine.open

    def open_cheaply(db: str | None = None, **kwargs: Any) -> Engine:
        kwargs.setdefault("hash_iterations", TEST_ITERATIONS)
        return real_open(db, **kwargs)

    monkeypatch.setattr(Engine, "open", staticmethod(open_cheaply))


@pytest.fixture
def engine() -> Iterator[Engine]:
    """A fast in-memory engine for unit tests of the rules."""
    e = Engine.open(":memory:", hash_iterations=TEST_ITERATIONS)
    yield e
    e.close()
