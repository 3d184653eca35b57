"""Helpers shared by ``bench/run.py`` and the phase scripts it calls (``ingest.py``,
``billing.py``, ``queries.py``): timing (wall clock and CPU time), peak memory, SQLite copies,
fresh PostgreSQL schemas, the bare-eventsourcing baselines, and child processes that report
JSON.

Every ratio these benchmarks print is matome against a baseline measured in the same process
(or the same run), never an absolute time alone: absolute figures move by ±30% on a shared
machine, ratios much less.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import shlex
import shutil
import sqlite3
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import command_throughput  # bench/command_throughput.py: this script's directory is on sys.path

from matome.application.eventstore import store_env

BENCH = Path(__file__).resolve().parent
DEFAULT_PG = os.environ.get("MATOME_TEST_PG", "postgresql://postgres@127.0.0.1:5432/test")

# ---------------------------------------------------------------------------------------------
# Output


def log(message: str) -> None:
    """A progress line on stderr (stdout is kept for results)."""
    print(message, file=sys.stderr, flush=True)


def command_line(script: str, args: Sequence[str]) -> str:
    """The shell command that runs ``bench/<script>`` with ``args`` from the repository root."""
    return shlex.join(["python", f"bench/{script}", *args])


def write_json(path: Path | None, data: Any) -> None:
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(data, indent=2, default=str) + "\n")


# ---------------------------------------------------------------------------------------------
# Time and memory


class Clock:
    """Accumulates wall-clock and CPU seconds over any number of timed sections."""

    def __init__(self) -> None:
        self.wall = 0.0
        self.cpu = 0.0

    @contextlib.contextmanager
    def timing(self) -> Iterator[None]:
        wall, cpu = time.perf_counter(), time.process_time()
        try:
            yield
        finally:
            self.wall += time.perf_counter() - wall
            self.cpu += time.process_time() - cpu


def peak_rss_mb() -> float:
    """The peak resident set of this process so far (``VmHWM``: of this process image only,
    unlike ``ru_maxrss``, which after ``exec`` can carry the parent's high-water mark)."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def load_average() -> list[float]:
    try:
        return [round(x, 2) for x in os.getloadavg()]
    except OSError:
        return []


def filesystem(path: Path) -> str:
    """The type of the file system ``path`` is on (``ext4``, ``tmpfs``, …), from /proc/mounts."""
    target = os.path.realpath(path)
    best, kind = "", "unknown"
    try:
        with open("/proc/mounts") as f:
            for line in f:
                fields = line.split()
                mount = fields[1]
                inside = target == mount or target.startswith(mount.rstrip("/") + "/")
                if inside and len(mount) > len(best):
                    best, kind = mount, fields[2]
    except OSError:
        pass
    return kind


def percentile(values: Sequence[float], p: float) -> float:
    """The ``p``-th percentile (0–100) by linear interpolation between closest ranks."""
    ordered = sorted(values)
    if not ordered:
        return math.nan
    k = (len(ordered) - 1) * p / 100
    lo, hi = math.floor(k), math.ceil(k)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (k - lo)


# ---------------------------------------------------------------------------------------------
# Stores


def remove_sqlite(path: Path) -> None:
    for suffix in ("", "-wal", "-shm", "-journal", ".gate", ".master-key"):
        Path(str(path) + suffix).unlink(missing_ok=True)


def copy_sqlite(src: Path, dst: Path) -> None:
    """A consistent copy of an SQLite database (committed data, WAL included), with its
    default master-key file: without it the copy's personal data cannot be read
    (crypto-shredding keeps the master key outside the database)."""
    remove_sqlite(dst)
    dst.parent.mkdir(parents=True, exist_ok=True)
    source, target = sqlite3.connect(src), sqlite3.connect(dst)
    try:
        source.backup(target, pages=1 << 16)
    finally:
        target.close()
        source.close()
    key = Path(f"{src}.master-key")
    if key.exists():
        shutil.copy2(key, f"{dst}.master-key")


def pg_dsn(url: str) -> str:
    return url.split("?")[0]


def pg_unreachable(url: str) -> str | None:
    """Why no PostgreSQL server can be used at ``url``, or ``None`` when one can."""
    try:
        import psycopg

        with psycopg.connect(pg_dsn(url), connect_timeout=3):
            return None
    except Exception as e:  # any failure means "no usable server"
        return f"no PostgreSQL server reachable at {pg_dsn(url)}: {' '.join(str(e).split())}"


@contextlib.contextmanager
def fresh_schema(url: str, prefix: str) -> Iterator[str]:
    """A PostgreSQL URL with a new schema of its own, dropped afterwards."""
    import psycopg

    schema = f"{prefix}_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(pg_dsn(url), autocommit=True) as conn:
        conn.execute(f'CREATE SCHEMA "{schema}"')
    try:
        yield f"{pg_dsn(url)}?schema={schema}"
    finally:
        with psycopg.connect(pg_dsn(url), autocommit=True) as conn:
            conn.execute(f'DROP SCHEMA "{schema}" CASCADE')


# ---------------------------------------------------------------------------------------------
# The bare eventsourcing baseline


class Transactions:
    """The write transactions of a store, as the store reports them: each call of the
    recorder's ``insert_events`` is one transaction, and the notification ids it returns are
    the events the store took in it (``len(stored_events)`` where a recorder returns none).

    ``with Transactions(engine.internals.recorder) as tx: ...`` records the size of every
    transaction committed inside the block; :meth:`take` hands over (and forgets) the sizes
    recorded so far, in order.  The baselines then save the same number of events in the same
    transactions (:meth:`Baseline.save_batches`, :meth:`RawRows.save_batches`): batching is
    compared with batching, one at a time with one at a time.

    The hook is an attribute on the recorder *instance* (nothing of matome is changed); it
    costs a list append per transaction.
    """

    def __init__(self, recorder: Any) -> None:
        self.recorder = recorder
        self.sizes: list[int] = []
        self._original: Any = None

    def __enter__(self) -> Transactions:
        original = self._original = self.recorder.insert_events
        sizes = self.sizes

        def insert_events(stored_events: Sequence[Any], **kwargs: Any) -> Any:
            ids = original(stored_events, **kwargs)
            sizes.append(len(stored_events) if ids is None else len(ids))
            return ids

        self.recorder.insert_events = insert_events
        return self

    def __exit__(self, *exc: object) -> None:
        with contextlib.suppress(AttributeError):
            del self.recorder.insert_events  # the class's method again

    def take(self) -> list[int]:
        taken = list(self.sizes)
        self.sizes.clear()
        return taken


class Baseline:
    """Bare eventsourcing on the same kind of store as matome's: ``command_throughput.py``'s
    ``Shop`` application and its minimal ``Till`` aggregate, whose one event carries about
    what a purchase carries (receipt, service, price, time).

    * :meth:`save_batches` — for each size *k* given, one ``app.save`` of *k* events (one
      transaction of *k* events) spread over the tills: matome's transactions replayed with
      the same number of events each (:class:`Transactions`).  The baseline of every
      throughput ratio that compares writes;
    * :meth:`one_per_save` — one event per ``app.save``: the floor cost of one small write,
      the reference the warm-purchase target names ("a one-event transaction");
    * :meth:`batch_of_new` — new aggregates (one event each) per ``app.save``, ``size`` per
      transaction, or the given ``sizes``: the floor cost of writing new streams in bulk
      (what the billing run does).

    Without a URL the store is an SQLite file ``path`` (``eventsourcing.sqlite``: WAL,
    ``synchronous=FULL``, like matome's SQLite store); with one, ``eventsourcing.postgres``
    with the same connection settings matome uses (``matome.application.eventstore.store_env``
    minus matome's recorder).
    """

    def __init__(self, path: Path | None = None, pg_url: str | None = None) -> None:
        if pg_url is not None:
            env = store_env(pg_url)
            env.pop("APPLICATION_RECORDER_TOPIC", None)
        else:
            assert path is not None
            remove_sqlite(path)
            env = {"PERSISTENCE_MODULE": "eventsourcing.sqlite", "SQLITE_DBNAME": str(path)}
        self.app = command_throughput.Shop(env=env)
        self.tills = [
            command_throughput.Till(name=f"till-{i}")
            for i in range(command_throughput.BASELINE_AGGREGATES)
        ]
        self.app.save(*self.tills)
        self.saved = 0

    def one_per_save(self, n: int) -> None:
        command_throughput.baseline_loop(self.app, self.tills, n, self.saved)
        self.saved += n

    def save_batches(self, sizes: Sequence[int]) -> None:
        """One transaction per size, of that many events, over the tills in turn."""
        tills, at = self.tills, command_throughput.START
        for k in sizes:
            touched: dict[int, Any] = {}
            for i in range(self.saved, self.saved + k):
                j = i % len(tills)
                tills[j].sell(receipt=f"R{i:020d}", service="item1", price=1, at=at)
                touched[j] = tills[j]
            if touched:
                self.app.save(*touched.values())
            self.saved += k

    def batch_of_new(self, n: int, size: int, sizes: Sequence[int] | None = None) -> None:
        at = command_throughput.START
        if sizes is None:
            sizes = [min(size, n - start) for start in range(0, n, size)]
        for k in sizes:
            batch = []
            for i in range(self.saved, self.saved + k):
                till = command_throughput.Till(name=f"new-{i}")
                till.sell(receipt=f"R{i:020d}", service="bill", price=1, at=at)
                batch.append(till)
            if batch:
                self.app.save(*batch)
            self.saved += k

    def events(self) -> int:
        return self.app.recorder.max_notification_id() or 0

    def close(self) -> None:
        self.app.close()


class RawRows:
    """The second reference of a write: raw ``sqlite3`` (or ``psycopg``) rows, no library.

    A table shaped like eventsourcing's stored events (stream id, version, topic, state; the
    primary key on stream and version, an autoincrement/identity position) on the same kind
    of store — an SQLite file in WAL mode with ``synchronous=FULL``, or a fresh PostgreSQL
    schema — and, for each size *k* of :meth:`save_batches`, one transaction inserting *k*
    rows of about a small event's size (``executemany``).  What the disk and the database
    cost for the same transactions with nothing of Python's above them.
    """

    STATE = (
        b'{"receipt":"R00000000000000000000","service":"item1","price":100,'
        b'"at":"2024-06-03T09:00:00+09:00","timestamp":"2024-06-03T00:00:00.000000+00:00"}'
    )

    def __init__(self, path: Path | None = None, pg_url: str | None = None) -> None:
        self.pg = pg_url is not None
        self.saved = 0
        self.streams = [uuid.uuid4() for _ in range(command_throughput.BASELINE_AGGREGATES)]
        if pg_url is not None:
            import psycopg

            dsn, _, schema = pg_url.partition("?schema=")
            self.conn: Any = psycopg.connect(dsn, autocommit=False)
            if schema:
                self.conn.execute(f'SET search_path TO "{schema}"')
            self.conn.execute(
                "CREATE TABLE raw_events (position BIGSERIAL UNIQUE, stream UUID NOT NULL, "
                "version BIGINT NOT NULL, topic TEXT NOT NULL, state BYTEA NOT NULL, "
                "PRIMARY KEY (stream, version))"
            )
            self.conn.commit()
        else:
            assert path is not None
            remove_sqlite(path)
            self.conn = sqlite3.connect(path, isolation_level=None)
            self.conn.execute("PRAGMA journal_mode = WAL")
            self.conn.execute("PRAGMA synchronous = FULL")
            self.conn.execute(
                "CREATE TABLE raw_events (position INTEGER PRIMARY KEY AUTOINCREMENT, "
                "stream TEXT NOT NULL, version INTEGER NOT NULL, topic TEXT NOT NULL, "
                "state BLOB NOT NULL, UNIQUE (stream, version))"
            )

    def save_batches(self, sizes: Sequence[int]) -> None:
        streams = self.streams
        mark = "%s" if self.pg else "?"
        sql = (
            "INSERT INTO raw_events (stream, version, topic, state) "
            f"VALUES ({mark}, {mark}, {mark}, {mark})"
        )
        for k in sizes:
            rows = []
            for i in range(self.saved, self.saved + k):
                stream = streams[i % len(streams)]
                rows.append(
                    (
                        stream if self.pg else stream.hex,
                        i // len(streams) + 1,
                        "bench:Till.Sold",
                        self.STATE,
                    )
                )
            if self.pg:
                with self.conn.cursor() as cur:
                    cur.executemany(sql, rows)
                self.conn.commit()
            else:
                self.conn.execute("BEGIN IMMEDIATE")
                self.conn.executemany(sql, rows)
                self.conn.execute("COMMIT")
            self.saved += k

    def close(self) -> None:
        self.conn.close()


def spread(values: Sequence[float]) -> dict[str, float]:
    """min / median / max of per-round figures."""
    import statistics

    return {
        "min": min(values),
        "median": statistics.median(values),
        "max": max(values),
    }


# ---------------------------------------------------------------------------------------------
# Child processes


def run_child(
    script: str,
    args: Sequence[str],
    json_file: Path,
    *,
    check: Callable[[int], None] | None = None,
) -> Any:
    """Run ``bench/<script> args... --json json_file`` in a fresh interpreter (so that its peak
    RSS is its own); its stdout goes to our stderr (progress), its results come back through
    ``json_file``."""
    json_file.unlink(missing_ok=True)
    proc = subprocess.run(
        [sys.executable, str(BENCH / script), *args, "--json", str(json_file)],
        stdout=sys.stderr.fileno(),
        check=False,
    )
    if proc.returncode != 0:
        if check is not None:
            check(proc.returncode)
        raise RuntimeError(
            f"{command_line(script, args)} exited with {proc.returncode}; see its output above"
        )
    return json.loads(json_file.read_text())
