"""The billing run (``issue_bills``) on stores of N lines: bills/s against bare eventsourcing,
and how its time grows with the number of lines and with the months of history.

    python bench/billing.py build --lines 10000 --months 7 --snapshot 3 --dir DIR [--reuse]
    python bench/billing.py measure --store DIR/billing-s1-n10000-m7.at3.sqlite --month 2024-03

**build** writes a store through the engine: the log of ``matome.generate.generate_log(lines,
months, seed=...)`` applied as ``matome run`` applies it (``matome.interchange.log_lines`` +
``apply_lines`` in batches of ``matome.cli.DEFAULT_BATCH``) on ``Engine.open(db,
kdf=matome.credentials.TESTING)`` — the cheap KDF, stated: building with the production one
would cost ≈ 0.5 s per access key and password (hours at 100,000 lines) and changes nothing in
the billing run, which hashes nothing. The log issues the bills of every month but the last
(``issue_bills`` on the 1st of the next month), so the last month is the one left to bill.
``--snapshot K`` also keeps a copy of the store as it is after K months (before the bills of
month K are issued): the same lines with K − 1 months of history instead of ``months`` − 1. The
views are caught up before each copy is saved. The store is built in ``--build-dir`` (default a
directory in ``/dev/shm``, tmpfs: building is 3× faster without fsyncs) and then copied to
``--dir`` (on disk), where it is measured. ``--reuse`` keeps a store whose description (lines,
months, seed, snapshot, and a digest of the log's first commands) matches.

**measure** copies the store to a scratch file next to it, opens an engine on the copy,
catches the views up and makes the process's first-write check of the store (``check_writable``:
the kinds of every event recorded since the last process's check — on a built store, a scan of
the whole log; reported apart as ``first_write_check_seconds``, not timed with the run), and
times ``engine.issue_bills(at=<1st of the next month,
00:30>, month=<the last month>)``: closing the month and the billing run, which issues one
``BillIssued`` per line with charges (``matome.billing.BillingProcess``: 500 lines at a time,
their charges and accounts read from the views with their events' chain hashes joined in the
same queries, one bill per line composed and digested, recorded in one transaction and written
to the bill views from memory at their positions — nothing read back).  ``--pg [URL]``
measures on PostgreSQL instead: each round copies the built store, row for row, into a new
schema (``copy_to_postgres``: its events at the same notification ids, chains, keys and
caught-up views) and the baseline runs on PostgreSQL too.  Then, in the same process on a
file in the same directory, the **baseline**: bare eventsourcing saving the same number of
events, each on a new aggregate, 500 per ``app.save`` — the floor cost of recording that many
new streams with the library, in the same batches.  ``--rounds`` fresh copies are measured (median).

**ratio = matome bills/s ÷ baseline events/s** (CPU-time ratio too).  ``run.py`` adds the
growth of the billing run's time from the small to the large store (10× the lines should take
≤ 11× the time) and its flatness in history (month 3 with 2 months of history vs month 7 with
6 at the same number of lines).
"""

from __future__ import annotations

import argparse
import cProfile
import hashlib
import io
import itertools
import json
import pstats
import shutil
import statistics
import sys
import tempfile
import time
from collections import deque
from collections.abc import Iterator, Sequence
from contextlib import ExitStack
from datetime import timedelta
from pathlib import Path
from typing import Any
from uuid import UUID

from _common import (
    DEFAULT_PG,
    Baseline,
    Clock,
    copy_sqlite,
    fresh_schema,
    load_average,
    log,
    peak_rss_mb,
    pg_dsn,
    remove_sqlite,
    write_json,
)

from matome.cli import DEFAULT_BATCH
from matome.credentials import TESTING
from matome.engine import Engine
from matome.generate import generate_log
from matome.interchange import LogLine, apply_lines, log_lines
from matome.values import YearMonth

#: The first month of generate_log's logs (its default ``start``).
START = YearMonth(2024, 1)
#: The billing run records this many bills per transaction (matome.billing._CHUNK).
BILLS_PER_SAVE = 500
#: Commands of the log whose digest identifies it for --reuse.
DIGEST_COMMANDS = 2000


def month_number(k: int) -> YearMonth:
    """The ``k``-th month of a generated log (from 1)."""
    month = START
    for _ in range(k - 1):
        month = month.next()
    return month


def store_path(folder: Path, seed: int, lines: int, months: int, at: int | None = None) -> Path:
    stem = f"billing-s{seed}-n{lines}-m{months}"
    return folder / (f"{stem}.sqlite" if at is None else f"{stem}.at{at}.sqlite")


def log_digest(lines: int, months: int, seed: int) -> str:
    h = hashlib.sha256()
    for body in itertools.islice(generate_log(lines, months, seed=seed), DIGEST_COMMANDS):
        h.update(json.dumps(body, sort_keys=True).encode())
    return h.hexdigest()


def _encoded(bodies: Iterator[dict[str, Any]]) -> Iterator[tuple[dict[str, Any], bytes]]:
    for body in bodies:
        yield body, json.dumps(body, ensure_ascii=False, separators=(",", ":")).encode()


# ---------------------------------------------------------------------------------------------
# build


def build(args: argparse.Namespace) -> dict[str, Any]:
    folder: Path = args.dir
    folder.mkdir(parents=True, exist_ok=True)
    final = store_path(folder, args.seed, args.lines, args.months)
    snapshot = (
        store_path(folder, args.seed, args.lines, args.months, args.snapshot)
        if args.snapshot
        else None
    )
    meta_path = final.with_name(final.name + ".json")
    meta = {
        "lines": args.lines,
        "months": args.months,
        "seed": args.seed,
        "snapshot": args.snapshot,
        "log_digest": log_digest(args.lines, args.months, args.seed),
    }
    wanted = [final] + ([snapshot] if snapshot else [])
    if args.reuse and all(p.exists() for p in wanted):
        try:
            stored = json.loads(meta_path.read_text())
        except (OSError, ValueError):
            stored = None
        if stored is not None and stored.get("meta") == meta:
            log(f"billing build: reusing {final}" + (f" and {snapshot}" if snapshot else ""))
            return {**stored, "reused": True}

    with ExitStack() as stack:
        build_dir: Path = args.build_dir or (
            Path(stack.enter_context(tempfile.TemporaryDirectory(dir=_fast_dir())))
        )
        build_dir.mkdir(parents=True, exist_ok=True)
        work = build_dir / f"build-{final.name}"
        remove_sqlite(work)
        stack.callback(remove_sqlite, work)
        engine = Engine.open(str(work), kdf=TESTING)
        stack.callback(engine.close)
        log(
            f"billing build: {args.lines:,} lines x {args.months} months (seed {args.seed}) "
            f"through the engine (cheap KDF) in {work}, then copied to {folder}"
        )
        started = time.perf_counter()
        last = started
        commands = accepted = 0
        month_now = START
        snapshot_info: dict[str, Any] | None = None
        bodies = _encoded(generate_log(args.lines, args.months, seed=args.seed))
        pending: list[tuple[dict[str, Any], LogLine]] = []
        snapshot_month = str(month_number(args.snapshot)) if snapshot is not None else None

        def flush() -> None:
            # As ``matome run`` applies a file: DEFAULT_BATCH commands decided one at a time,
            # recorded in one transaction (identical decisions, tested).
            nonlocal commands, accepted, month_now, last
            if not pending:
                return
            for result in apply_lines(engine, [line for _, line in pending]):
                accepted += bool(result["ok"])
            commands += len(pending)
            month_now = YearMonth.parse(pending[-1][0]["at"][:7])
            pending.clear()
            now = time.perf_counter()
            if now - last >= 15:
                last = now
                events = engine.internals.recorder.max_notification_id() or 0
                log(
                    f"  built {commands:,} commands, {events:,} events, business month "
                    f"{month_now} of {month_number(args.months)}; "
                    f"{commands / (now - started):,.0f} commands/s, {now - started:,.0f}s"
                )

        queued: deque[dict[str, Any]] = deque()

        def raw_lines() -> Iterator[bytes]:
            for body, text in bodies:
                queued.append(body)
                yield text

        for line in log_lines(raw_lines()):
            body = queued.popleft()  # a generated log has no blank or comment lines
            if (
                snapshot is not None
                and snapshot_info is None
                and body["command"] == "issue_bills"
                and body["month"] == snapshot_month
            ):
                flush()
                snapshot_info = _save_copy(engine, work, snapshot, commands, started)
            pending.append((body, line))
            if len(pending) >= DEFAULT_BATCH:
                flush()
        flush()
        if snapshot is not None and snapshot_info is None:
            raise SystemExit(f"--snapshot {args.snapshot}: the log never issues that month")
        final_info = _save_copy(engine, work, final, commands, started)
        seconds = time.perf_counter() - started
        log(
            f"billing build: {commands:,} commands ({commands - accepted:,} refused) in "
            f"{seconds:,.0f}s; {final_info['events']:,} events"
        )
    out = {
        "meta": meta,
        "store": str(final),
        "snapshot": None if snapshot is None else str(snapshot),
        "final": final_info,
        "at_snapshot": snapshot_info,
        "commands": commands,
        "accepted": accepted,
        "build_seconds": seconds,
        "reused": False,
    }
    meta_path.write_text(json.dumps(out, indent=2) + "\n")
    return out


def _fast_dir() -> str | None:
    shm = Path("/dev/shm")
    return str(shm) if shm.is_dir() else None


def _save_copy(
    engine: Engine, work: Path, dest: Path, commands: int, started: float
) -> dict[str, Any]:
    projection, _ = engine.internals.views
    projection.catch_up()
    copy_sqlite(work, dest)
    events = engine.internals.recorder.max_notification_id() or 0
    log(
        f"  saved {dest.name}: {commands:,} commands, {events:,} events, "
        f"{dest.stat().st_size / 2**20:,.0f} MB, {time.perf_counter() - started:,.0f}s"
    )
    return {"commands": commands, "events": events, "bytes": dest.stat().st_size}


# ---------------------------------------------------------------------------------------------
# measure


def measure(args: argparse.Namespace) -> dict[str, Any]:
    store: Path = args.store
    month = YearMonth.parse(args.month)
    at = month.next().start() + timedelta(minutes=30)
    rounds: list[dict[str, Any]] = []
    profiler = cProfile.Profile() if args.profile is not None else None
    scratch = store.with_name(f"{store.stem}.scratch.sqlite")
    base_path = store.with_name(f"{store.stem}.scratch-baseline.sqlite")
    load_before = load_average()
    for r in range(args.rounds):
        with ExitStack() as stack:
            one = _round(args, stack, store, scratch, base_path, month, at, r, profiler)
        log(
            f"  billing {store.name}: {one['bills']:,} bills in {one['seconds']:.2f}s (CPU "
            f"{one['cpu_seconds']:.2f}s) = {one['bills_per_s']:,.0f} bills/s; baseline "
            f"{one['baseline_eps']:,.0f} ev/s; ratio {one['ratio']:.2f}"
        )
        rounds.append(one)

    def median(key: str) -> float:
        return statistics.median(float(x[key]) for x in rounds)

    out: dict[str, Any] = {
        "store": str(store),
        "store_bytes": store.stat().st_size,
        "month": str(month),
        "bills": rounds[-1]["bills"],
        "bill_rows": rounds[-1]["bill_rows"],
        "events_before": rounds[-1]["events_before"],
        "seconds": median("seconds"),
        "cpu_seconds": median("cpu_seconds"),
        "baseline_seconds": median("baseline_seconds"),
        "bills_per_s": median("bills_per_s"),
        "baseline_eps": median("baseline_eps"),
        "ratio": median("ratio"),
        "ratio_cpu": median("ratio_cpu"),
        "rounds": rounds,
        "load": [load_before, load_average()],
        "peak_rss_mb": peak_rss_mb(),
        "profiled": profiler is not None,
    }
    print(
        f"{store.name} {month}: {out['bills']:,} bills, {out['bill_rows']:,} rows; "
        f"{out['seconds']:.2f}s (CPU {out['cpu_seconds']:.2f}s) = {out['bills_per_s']:,.0f} "
        f"bills/s; baseline {out['baseline_eps']:,.0f} ev/s; ratio {out['ratio']:.2f} "
        f"(CPU {out['ratio_cpu']:.2f}); peak RSS {out['peak_rss_mb']:.0f} MB"
    )
    if profiler is not None:
        profiler.dump_stats(args.profile)
        text = io.StringIO()
        pstats.Stats(profiler, stream=text).sort_stats("cumulative").print_stats(30)
        print(f"profile of the billing run, saved to {args.profile}:\n{text.getvalue()}")
    return out


#: The tables of a matome store copied to PostgreSQL (events by notification id), and the
#: views with them (caught up when the store was saved).
_PG_TABLES = (
    "matome_chain",
    "matome_personal",
    "matome_log_positions",
    "matome_meta",
    "matome_keys",
    "matome_global_chain",
    "matome_chain_adoption",
)


def copy_to_postgres(store: Path, url: str) -> None:
    """Copy a built SQLite store, row for row, into the empty PostgreSQL schema of ``url``
    (the tables made by ``Engine.open``): its events at the same notification ids, its chains,
    personal values, keys, positions and caught-up views — the same store on PostgreSQL,
    without replaying 150,000 commands through the engine."""
    import sqlite3

    import psycopg

    from matome.application.eventstore import store_env

    env = store_env(url)
    schema = env["POSTGRES_SCHEMA"]
    made = Engine.open(url, kdf=TESTING, master_key=_master_key(store))
    made.internals.views  # noqa: B018  (creates the view tables)
    made.close()
    source = sqlite3.connect(f"file:{store}?mode=ro", uri=True)
    names = [r[0] for r in source.execute("SELECT name FROM sqlite_master WHERE type='table'")]
    with psycopg.connect(pg_dsn(url), autocommit=False) as conn:
        conn.execute(f'SET search_path TO "{schema}"')
        views = [n for n in names if n.startswith("mv_")]
        for name in views:
            conn.execute(f"DELETE FROM {name}")
        copies = [
            (
                "stored_events",
                "matome_events",
                "rowid, originator_id, originator_version, topic, state",
                "notification_id, originator_id, originator_version, topic, state",
            ),
        ]
        for name in (*_PG_TABLES, *views):
            if name in names:
                columns = ", ".join(r[1] for r in source.execute(f"PRAGMA table_info({name})"))
                copies.append((name, name, columns, columns))
        for src, dst, src_columns, dst_columns in copies:
            if dst != "matome_events":
                conn.execute(f"DELETE FROM {dst}")
            uuid_at = [i for i, c in enumerate(src_columns.split(", ")) if c == "originator_id"]
            with conn.cursor().copy(f"COPY {dst} ({dst_columns}) FROM STDIN") as copy:
                for row in source.execute(f"SELECT {src_columns} FROM {src}"):
                    if uuid_at:
                        row = list(row)
                        for i in uuid_at:
                            row[i] = str(UUID(row[i]))
                    copy.write_row(row)
        conn.execute(
            "SELECT setval(pg_get_serial_sequence('matome_events', 'notification_id'), "
            "(SELECT max(notification_id) FROM matome_events))"
        )
        conn.commit()
    source.close()


def _master_key(store: Path) -> str | None:
    key = Path(f"{store}.master-key")
    return key.read_text().strip() if key.exists() else None


def _round(
    args: argparse.Namespace,
    stack: ExitStack,
    store: Path,
    scratch: Path,
    base_path: Path,
    month: YearMonth,
    at: Any,
    r: int,
    profiler: cProfile.Profile | None,
) -> dict[str, Any]:
    """One measured round on a fresh copy of ``store`` (an SQLite file, or with ``--pg`` a
    new PostgreSQL schema), then the baseline on the same kind of store."""
    if args.pg is not None:
        url = stack.enter_context(fresh_schema(args.pg, "billing"))
        log(f"  billing {store.name}: copying the store to PostgreSQL")
        copy_to_postgres(store, url)
        engine = Engine.open(url, kdf=TESTING, master_key=_master_key(store))
    else:
        copy_sqlite(store, scratch)
        engine = Engine.open(str(scratch), kdf=TESTING)
    try:
        projection, documents = engine.internals.views
        projection.catch_up()
        before = engine.internals.recorder.max_notification_id() or 0
        if documents.issued_bills(month):
            raise SystemExit(f"{store}: bills of {month} are issued already")
        # A process's first write checks the kinds of the events recorded since the last
        # process's check (``check_writable``): on a built store that is every event after the
        # build's first write — a scan of the whole store, paid once by whatever writes first,
        # not by the billing run.  Done (and timed) here, apart.
        check = Clock()
        with check.timing():
            engine._store.check_writable()
        matome = Clock()
        log(f"  billing {store.name}: issue_bills {month} (round {r + 1}/{args.rounds})")
        with matome.timing():
            if profiler is not None:
                profiler.enable()
            engine.issue_bills(at=at, month=str(month))
            if profiler is not None:
                profiler.disable()
        bills = len(documents.issued_bills(month))
        events_after = engine.internals.recorder.max_notification_id() or 0
        rows = projection.query("SELECT count(*) FROM mv_bill_rows WHERE month = ?", (str(month),))[
            0
        ][0]
    finally:
        engine.close()
    if args.pg is not None:
        baseline = Baseline(pg_url=stack.enter_context(fresh_schema(args.pg, "billing_base")))
    else:
        baseline = Baseline(path=base_path)
    base = Clock()
    try:
        with base.timing():
            baseline.batch_of_new(bills, BILLS_PER_SAVE)
    finally:
        baseline.close()
        if args.pg is None:
            remove_sqlite(base_path)
    one: dict[str, Any] = {
        "bills": bills,
        "bill_rows": int(rows),
        "events_before": before,
        "events_written": events_after - before,
        "seconds": matome.wall,
        "cpu_seconds": matome.cpu,
        "baseline_seconds": base.wall,
        "baseline_cpu_seconds": base.cpu,
        "first_write_check_seconds": check.wall,
    }
    one["bills_per_s"] = bills / matome.wall
    one["baseline_eps"] = bills / base.wall if base.wall else 0.0
    one["ratio"] = one["bills_per_s"] / one["baseline_eps"] if one["baseline_eps"] else 0.0
    one["ratio_cpu"] = base.cpu / matome.cpu if matome.cpu else 0.0
    if args.pg is None:
        if r == args.rounds - 1 and args.keep_billed is not None:
            remove_sqlite(args.keep_billed)
            shutil.move(scratch, args.keep_billed)
            key = Path(f"{scratch}.master-key")
            if key.exists():  # the copy's personal data are read with it
                shutil.move(key, f"{args.keep_billed}.master-key")
        remove_sqlite(scratch)
    return one


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    sub = parser.add_subparsers(dest="mode", required=True)
    b = sub.add_parser("build", help="build a store through the engine")
    b.add_argument("--lines", type=int, required=True)
    b.add_argument("--months", type=int, required=True)
    b.add_argument("--snapshot", type=int, default=0, help="also keep the store after K months")
    b.add_argument("--seed", type=int, default=1)
    b.add_argument("--dir", type=Path, required=True, help="where the stores are kept (disk)")
    b.add_argument("--build-dir", type=Path, default=None, help="build here (default tmpfs)")
    b.add_argument("--reuse", action="store_true", help="keep a matching store built before")
    b.add_argument("--json", type=Path, default=None)
    m = sub.add_parser("measure", help="time issue_bills on a copy of a built store")
    m.add_argument("--store", type=Path, required=True)
    m.add_argument("--month", required=True, help="the month to bill (YYYY-MM)")
    m.add_argument("--rounds", type=int, default=1)
    m.add_argument("--keep-billed", type=Path, default=None, help="keep the billed copy here")
    m.add_argument("--profile", type=Path, default=None, help="cProfile the billing run")
    m.add_argument(
        "--pg",
        nargs="?",
        const=DEFAULT_PG,
        default=None,
        help="measure on PostgreSQL: the store copied into a new schema at this URL",
    )
    m.add_argument("--json", type=Path, default=None)
    args = parser.parse_args(argv)
    if args.mode == "build":
        if args.lines < 1 or args.months < 2 or not 0 <= args.snapshot < args.months:
            parser.error("need --lines >= 1, --months >= 2 and 0 <= --snapshot < --months")
        out = build(args)
        out["peak_rss_mb"] = peak_rss_mb()
    else:
        if args.rounds < 1:
            parser.error("--rounds must be positive")
        out = measure(args)
    write_json(args.json, out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
