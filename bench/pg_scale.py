"""PostgreSQL at size: build a store of N lines, issue a month's bills, time the queries.

    python bench/pg_scale.py --lines 10000 --months 3            # the figures in docs/scaling.md
    python bench/pg_scale.py --lines 200 --months 3 --json out.json   # a small size

On a fresh schema of the server at ``--pg`` (default ``$MATOME_TEST_PG`` or
``postgresql://postgres@127.0.0.1:5432/test``; dropped afterwards):

1. **ingest** — ``matome.generate.generate_log(lines, months, seed)`` applied as ``matome run``
   applies a file: ``log_lines`` + ``apply_lines`` in batches of ``matome.cli.DEFAULT_BATCH``
   on ``Engine.open(url, kdf=matome.credentials.TESTING)`` (the cheap KDF, stated: the
   production one costs ≈ 0.3 s per access key and password, which ``run.py``'s ingest rows
   measure separately, cold and warm).  The log issues the bills of every month but the last.
   **Baseline**: bare eventsourcing on another fresh schema of the same server saving the same
   number of events **in the same transactions** — after each batch, one ``app.save`` per
   transaction the batch committed, of as many events (``_common.Transactions`` counts them
   from the store, ``Baseline.save_batches`` replays them) — and, as a second reference, raw
   ``psycopg`` rows in the same transactions (``_common.RawRows``); ratio = matome's events/s
   ÷ the baseline's.  (Before issue 18 the baseline was a sample of one-event transactions:
   batching against no batching.)
2. **billing run** — ``engine.issue_bills`` of the last month (one ``BillIssued`` per line with
   charges, recorded in chunks); baseline: bare eventsourcing writing as many new streams in
   the same transactions as the run committed (their sizes counted from the store), on its
   schema; ratio = matome's events/s ÷ the baseline's (and bills/s is printed).
3. **queries** — ``queries.measure`` on the billed store: p50 / p99 of bill, statement, audit,
   provider totals and settlement.

Peak RSS (``VmHWM``) of this process is reported.  Nothing here asserts a time.
"""

from __future__ import annotations

import argparse
import cProfile
import io
import os
import pstats
import sys
import time
from collections.abc import Sequence
from contextlib import ExitStack
from datetime import timedelta
from pathlib import Path
from typing import Any

from _common import (
    DEFAULT_PG,
    Baseline,
    Clock,
    RawRows,
    Transactions,
    fresh_schema,
    load_average,
    log,
    peak_rss_mb,
    pg_unreachable,
    write_json,
)
from billing import START, _encoded
from queries import measure as measure_queries

from matome.cli import DEFAULT_BATCH
from matome.credentials import TESTING
from matome.engine import Engine
from matome.generate import generate_log
from matome.interchange import LogLine, apply_lines, log_lines

__all__ = ["main"]


def run(args: argparse.Namespace) -> dict[str, Any]:
    out: dict[str, Any] = {
        "lines": args.lines,
        "months": args.months,
        "seed": args.seed,
        "load": [load_average()],
    }
    last = START
    for _ in range(args.months - 1):
        last = last.next()
    with ExitStack() as stack:
        url = stack.enter_context(fresh_schema(args.pg, "matome_scale"))
        base_url = stack.enter_context(fresh_schema(args.pg, "es_scale"))
        baseline = Baseline(pg_url=base_url)
        stack.callback(baseline.close)
        raw = RawRows(pg_url=stack.enter_context(fresh_schema(args.pg, "raw_scale")))
        stack.callback(raw.close)
        engine = Engine.open(url, kdf=TESTING)
        stack.callback(engine.close)

        # 1. ingest -------------------------------------------------------------------------
        clock, base, bare = Clock(), Clock(), Clock()
        commands = accepted = events = transactions = 0
        started = last_log = time.perf_counter()
        pending: list[LogLine] = []
        tx = stack.enter_context(Transactions(engine.internals.recorder))

        def flush() -> None:
            # One matome batch, then the same transactions by the baseline and the raw rows.
            nonlocal commands, accepted, events, transactions
            with clock.timing():
                accepted += sum(bool(r["ok"]) for r in apply_lines(engine, pending))
            commands += len(pending)
            pending.clear()
            sizes = tx.take()
            events += sum(sizes)
            transactions += len(sizes)
            with base.timing():
                baseline.save_batches(sizes)
            with bare.timing():
                raw.save_batches(sizes)

        for line in log_lines(
            raw_line
            for _, raw_line in _encoded(generate_log(args.lines, args.months, seed=args.seed))
        ):
            pending.append(line)
            if len(pending) < DEFAULT_BATCH:
                continue
            flush()
            now = time.perf_counter()
            if now - last_log >= 15:
                last_log = now
                log(
                    f"  built {commands:,} commands, {commands / (now - started):,.0f}/s, "
                    f"{now - started:,.0f}s; matome {events / clock.wall:,.0f} ev/s, baseline "
                    f"{events / base.wall:,.0f} ev/s"
                )
        flush()
        out["ingest"] = {
            "commands": commands,
            "accepted": accepted,
            "events": events,
            "transactions": transactions,
            "events_per_transaction": events / transactions if transactions else 0.0,
            "seconds": clock.wall,
            "cpu_seconds": clock.cpu,
            "commands_per_s": commands / clock.wall,
            "events_per_s": events / clock.wall,
            "baseline_eps": events / base.wall,
            "raw_eps": events / bare.wall,
            "ratio": base.wall / clock.wall,
            "ratio_raw": bare.wall / clock.wall,
        }
        log(
            f"pg_scale: ingested {commands:,} commands ({commands - accepted:,} refused), "
            f"{events:,} events in {transactions:,} transactions, {clock.wall:,.0f}s = "
            f"{events / clock.wall:,.0f} ev/s; baseline in the same transactions "
            f"{events / base.wall:,.0f} ev/s, raw rows {events / bare.wall:,.0f} ev/s; ratio "
            f"{out['ingest']['ratio']:.2f} (raw {out['ingest']['ratio_raw']:.2f})"
        )

        # 2. the billing run ----------------------------------------------------------------
        projection, documents = engine.internals.views
        projection.catch_up()
        at = last.next().start() + timedelta(minutes=30)
        billing = Clock()
        profiler = cProfile.Profile() if args.profile is not None else None
        with billing.timing():
            if profiler is not None:
                profiler.enable()
            engine.issue_bills(at=at, month=str(last))
            if profiler is not None:
                profiler.disable()
        if profiler is not None:
            profiler.dump_stats(args.profile)
            text = io.StringIO()
            pstats.Stats(profiler, stream=text).sort_stats("tottime").print_stats(30)
            log(f"profile of the billing run, saved to {args.profile}:\n{text.getvalue()}")
        bills = len(documents.issued_bills(last))
        sizes = tx.take()
        base = Clock()
        with base.timing():
            baseline.batch_of_new(sum(sizes), 0, sizes=sizes)
        out["billing"] = {
            "month": str(last),
            "bills": bills,
            "events": sum(sizes),
            "transactions": len(sizes),
            "seconds": billing.wall,
            "cpu_seconds": billing.cpu,
            "bills_per_s": bills / billing.wall,
            "events_per_s": sum(sizes) / billing.wall,
            "baseline_eps": sum(sizes) / base.wall,
            "ratio": base.wall / billing.wall,
        }
        log(
            f"pg_scale: {bills:,} bills of {last} in {billing.wall:.2f}s = "
            f"{bills / billing.wall:,.0f} bills/s ({sum(sizes):,} events in {len(sizes)} "
            f"transactions); baseline in the same transactions "
            f"{out['billing']['baseline_eps']:,.0f} ev/s; ratio {out['billing']['ratio']:.2f}"
        )
        engine.close()

        # 3. queries ------------------------------------------------------------------------
        out["queries"] = measure_queries(
            url, last, args.query_samples, args.month_samples, args.seed
        )["queries"]
        for name, q in out["queries"].items():
            log(f"  {name:<16} p50 {q['p50_ms']:8.2f} ms  p99 {q['p99_ms']:8.2f} ms")
    out["load"].append(load_average())
    out["peak_rss_mb"] = peak_rss_mb()
    return out


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--lines", type=int, default=10_000)
    parser.add_argument("--months", type=int, default=3)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--pg", default=os.environ.get("MATOME_TEST_PG", DEFAULT_PG))
    parser.add_argument("--query-samples", type=int, default=300)
    parser.add_argument("--month-samples", type=int, default=30)
    parser.add_argument("--json", type=Path, default=None)
    parser.add_argument("--profile", type=Path, default=None, help="cProfile the billing run")
    args = parser.parse_args(argv)
    if args.months < 2:
        parser.error("--months must be at least 2 (the last month is billed)")
    why = pg_unreachable(args.pg)
    if why is not None:
        print(f"pg_scale: {why}", file=sys.stderr)
        return 2
    out = run(args)
    write_json(args.json, out)
    i, b = out["ingest"], out["billing"]
    print(
        f"PostgreSQL, {args.lines:,} lines x {args.months} months: "
        f"ingest {i['events_per_s']:,.0f} ev/s (ratio {i['ratio']:.2f}, raw {i['ratio_raw']:.2f}), "
        f"billing run {b['bills']:,} bills in {b['seconds']:.1f}s (ratio {b['ratio']:.2f}), "
        f"peak RSS {out['peak_rss_mb']:,.0f} MB"
    )
    for name, q in out["queries"].items():
        print(f"  {name:<16} p50 {q['p50_ms']:8.2f} ms  p99 {q['p99_ms']:8.2f} ms")
    return 0


if __name__ == "__main__":
    sys.exit(main())
