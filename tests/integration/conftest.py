"""Fixtures of the integration tests that go through the ``matome`` command line."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.integration.logs import Matome


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def db(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """An SQLite file, or a fresh PostgreSQL schema (skipped or failed per tests/conftest)."""
    if request.param == "sqlite":
        return str(tmp_path / "matome.sqlite")
    url: str = request.getfixturevalue("pg_url")
    return url


@pytest.fixture
def matome(
    db: str, tmp_path: Path, capsys: pytest.CaptureFixture[str], cheap_hashing: None
) -> Matome:
    """``matome`` in-process on ``db``; its engines hash with the tests' cheap PBKDF2 round
    count (``cheap_hashing``)."""
    return Matome(db, tmp_path, capsys)
