"""The eventsourcing adapter's assumptions, checked so that a library upgrade fails loudly here.

matome overrides private hooks of eventsourcing 9.5's recorders and passes a keyword of its
own through the public ``EventStore.put`` (see :mod:`matome.application.eventstore`).  These
tests pin exactly what that relies on; when one fails after an upgrade, read the library's new
recorders before changing anything else.
"""

from __future__ import annotations

import importlib.metadata
import inspect
from datetime import UTC, datetime
from pathlib import Path
from uuid import UUID, uuid4

import pytest
from eventsourcing.persistence import EventStore, IntegrityError, JSONTranscoder, Mapper
from eventsourcing.popo import POPOApplicationRecorder
from eventsourcing.sqlite import SQLiteApplicationRecorder

from matome.application import eventstore
from matome.application.eventstore import EventStoreApplication, store_env
from matome.events.ledger import MonthsClosed
from matome.values import YearMonth
from tests.conftest import require_postgres


def _params(function: object) -> list[str]:
    return list(inspect.signature(function).parameters)  # type: ignore[arg-type]


def test_the_eventsourcing_release_is_the_one_the_overrides_were_written_for() -> None:
    installed = importlib.metadata.version("eventsourcing")
    assert installed.startswith(eventstore.SUPPORTED_EVENTSOURCING + "."), (
        f"eventsourcing {installed}: re-check matome.application.eventstore"
    )


def test_the_private_recorder_hooks_matome_overrides_have_the_expected_shape() -> None:
    assert _params(POPOApplicationRecorder._insert_events) == ["self", "stored_events", "kwargs"]
    assert _params(SQLiteApplicationRecorder._insert_events) == ["self", "c", "stored_events", "_"]
    popo = POPOApplicationRecorder()
    assert hasattr(popo, "_database_lock")
    assert isinstance(popo._stored_events_index, dict)


def test_the_private_postgres_hooks_have_the_expected_shape() -> None:
    postgres = pytest.importorskip("eventsourcing.postgres")
    recorder = postgres.PostgresApplicationRecorder
    assert _params(recorder._insert_events) == ["self", "curs", "stored_events", "_"]
    assert _params(recorder._lock_table) == ["self", "curs"]


def test_the_public_put_passes_keywords_through_to_the_recorder() -> None:
    assert _params(EventStore.put) == ["self", "domain_events", "kwargs"]
    assert "insert_events(stored_events, **kwargs)" in inspect.getsource(EventStore.put)
    mapper: Mapper[UUID] = Mapper(transcoder=JSONTranscoder())
    assert mapper.compressor is None
    assert mapper.cipher is None


def _closed(stream: object, version: int) -> MonthsClosed:
    now = datetime(2024, 2, 1, tzinfo=UTC)
    return MonthsClosed(
        originator_id=stream,  # type: ignore[arg-type]
        originator_version=version,
        timestamp=now,
        at=now,
        through=YearMonth(2024, 1),
    )


@pytest.mark.parametrize("store", ["memory", "sqlite", "postgres"])
def test_a_save_fails_when_a_stream_it_only_read_has_moved(
    store: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    """The read check runs inside the library's write transaction, on every store."""
    if store == "postgres":
        require_postgres()
        db = request.getfixturevalue("pg_url")
    else:
        db = ":memory:" if store == "memory" else str(tmp_path / "adapter.sqlite")
    app = EventStoreApplication(store_env(db))
    try:
        read, written = uuid4(), uuid4()
        app.record([_closed(read, 1)])
        with pytest.raises(IntegrityError):
            app.record([_closed(written, 1)], read_versions={read: 0})
        assert app.recorder.select_notifications(start=1, limit=10)[-1].originator_id == read
        app.record([_closed(written, 1)], read_versions={read: 1})
    finally:
        app.close()
