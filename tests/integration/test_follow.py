"""Projection workers (``matome follow``): the views follow the log, also with several workers
at once and across processes, without applying an event twice; on PostgreSQL a NOTIFY wakes
them, and a lost one only delays them until the next poll."""

from __future__ import annotations

import io
import threading
import time
from pathlib import Path

import pytest

from matome.demo import run_demo
from matome.engine import Engine
from tests.conftest import TEST_ITERATIONS


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def db(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return str(tmp_path / "follow.sqlite")
    url: str = request.getfixturevalue("pg_url")
    return url


def test_several_workers_follow_the_log_without_applying_an_event_twice(db: str) -> None:
    writer = Engine.open(db, hash_iterations=TEST_ITERATIONS)
    stop = threading.Event()
    workers = [Engine.open(db, hash_iterations=TEST_ITERATIONS) for _ in range(3)]
    threads = [
        threading.Thread(target=w.follow, args=(stop.is_set,), kwargs={"poll": 0.05})
        for w in workers
    ]
    for t in threads:
        t.start()
    try:
        run_demo(writer, io.StringIO())
        deadline = time.monotonic() + 20
        last = writer.internals.recorder.max_notification_id()
        while (
            workers[0].internals.views[0].position() < (last or 0) and time.monotonic() < deadline
        ):
            time.sleep(0.05)
    finally:
        stop.set()
        for t in threads:
            t.join(timeout=30)
    followed = workers[0].internals.views[0].dump()
    writer.rebuild_views()
    assert followed == writer.internals.views[0].dump()
    for w in (writer, *workers):
        w.close()


@pytest.mark.postgres
def test_a_notify_wakes_a_postgres_worker_long_before_its_poll(pg_url: str) -> None:
    writer = Engine.open(pg_url, hash_iterations=TEST_ITERATIONS)
    worker = Engine.open(pg_url, hash_iterations=TEST_ITERATIONS)
    worker.internals.views[0].catch_up()
    stop = threading.Event()
    thread = threading.Thread(target=worker.follow, args=(stop.is_set,), kwargs={"poll": 30})
    thread.start()
    try:
        time.sleep(0.5)  # the worker is waiting on its 30-second poll
        writer.register_provider(
            at="2024-01-01T09:00:00+09:00", provider="A", name="A", contact="0", goods="information"
        )
        start = time.monotonic()
        while worker.internals.views[0].position() < 1 and time.monotonic() - start < 10:
            time.sleep(0.02)
        assert worker.internals.views[0].position() >= 1
        assert time.monotonic() - start < 10  # far less than the 30-second poll
    finally:
        stop.set()
        writer.register_provider(  # wake it to notice the stop
            at="2024-01-01T09:00:00+09:00", provider="B", name="B", contact="0", goods="information"
        )
        thread.join(timeout=40)
        writer.close()
        worker.close()
