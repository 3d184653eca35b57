"""The eventsourcing adapter's assumptions, checked so that a library upgrade fails loudly here.

matome overrides private hooks of eventsourcing 9.5's recorders and passes a keyword of its
own through the public ``EventStore.put`` (see :mod:`matome.application.eventstore` and the
modules it is split into, one per job and one per backend: ``_mapper``, ``_recorder``,
``_popo``, ``_sqlite``, ``_postgres``, ...).  These tests pin exactly what that relies on; when
one fails after an upgrade, read the library's new recorders before changing anything else.
What matome's recorders add is held to one contract on every backend by
``tests/integration/test_recorder_contract.py``.
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
from eventsourcing.utils import resolve_topic

from matome.application import (
    _chains,
    _errors,
    _gate,
    _keyring,
    _mapper,
    _meta,
    _popo,
    _recorder,
    _settings,
    _sqlite,
    _vault,
    eventstore,
)
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
    # matome's recorder overrides these two (the read check before the insert, the extras
    # after it) and calls both from the library's insert_events.
    assert _params(recorder._insert_stored_events) == ["self", "curs", "stored_events", "kwargs"]
    assert _params(recorder._fetch_ids_after_insert_events) == [
        "self",
        "curs",
        "stored_events",
        "_",
    ]
    source = inspect.getsource(recorder.insert_events)
    assert "self._insert_stored_events(curs, stored_events, **kwargs)" in source
    assert "self._fetch_ids_after_insert_events(" in source
    # The library catches an Exception raised after the insert and re-raises it only after
    # the transaction's block, which commits: matome's recorder carries its own errors out as
    # a BaseException (_postgres._Undo) so that the write rolls back.
    assert "except Exception as e:" in source


def test_each_recorder_extends_the_librarys_and_overrides_its_hooks_in_its_own_module() -> None:
    assert issubclass(_popo.POPORecorder, POPOApplicationRecorder)
    assert issubclass(_sqlite.SQLiteRecorder, SQLiteApplicationRecorder)
    assert "_insert_events" in vars(_popo.POPORecorder)
    assert "_insert_events" in vars(_sqlite.SQLiteRecorder)
    assert "construct_create_table_statements" in vars(_sqlite.SQLiteRecorder)
    assert _params(SQLiteApplicationRecorder.construct_create_table_statements) == ["self"]
    postgres = pytest.importorskip("eventsourcing.postgres")
    from matome.application import _postgres

    assert issubclass(_postgres.PostgresRecorder, postgres.PostgresApplicationRecorder)
    for hook in ("insert_events", "_insert_stored_events", "_fetch_ids_after_insert_events"):
        assert hook in vars(_postgres.PostgresRecorder), hook


def test_the_mapper_overrides_the_librarys_public_mapper_methods() -> None:
    assert issubclass(_mapper.EventMapper, Mapper)
    assert _params(Mapper.__init__) == ["self", "transcoder", "compressor", "cipher"]
    assert _params(Mapper.to_stored_event) == ["self", "domain_event"]
    assert _params(Mapper.to_domain_event) == ["self", "stored_event"]
    for method in ("to_stored_event", "to_domain_event"):
        assert method in vars(_mapper.EventMapper), method


def test_the_store_settings_name_the_recorders_and_the_factory_through_eventstore(
    tmp_path: Path,
) -> None:
    """The topics in store settings keep their ``matome.application.eventstore:`` names (a
    person's settings may hold them) and resolve to the classes in their new modules."""
    sqlite = store_env(str(tmp_path / "x.sqlite"))
    assert sqlite["APPLICATION_RECORDER_TOPIC"] == "matome.application.eventstore:SQLiteRecorder"
    assert resolve_topic(sqlite["APPLICATION_RECORDER_TOPIC"]) is _sqlite.SQLiteRecorder
    assert resolve_topic(sqlite["PERSISTENCE_MODULE"]) is _sqlite.SQLiteFactory
    pytest.importorskip("psycopg")
    from matome.application import _postgres

    postgres = store_env("postgresql://u@h/db")
    assert resolve_topic(postgres["APPLICATION_RECORDER_TOPIC"]) is _postgres.PostgresRecorder


def test_eventstore_re_exports_every_name_from_the_module_that_owns_it() -> None:
    """Other modules import these from ``eventstore``: each is the one object of its home."""
    homes = [_chains, _errors, _gate, _keyring, _mapper, _meta, _popo, _recorder, _settings]
    homes += [_sqlite, _vault]
    for name in eventstore.__all__:
        value = getattr(eventstore, name)
        owners = [m.__name__ for m in homes if getattr(m, name, None) is value]
        if name in ("EventStoreApplication", "SUPPORTED_EVENTSOURCING"):
            assert owners == [], name  # defined in eventstore itself
        else:
            assert owners, f"{name} is not the object of any module eventstore is split into"


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
