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
   **Baseline**: bare eventsourcing on another fresh schema of the same server saving
   ``--baseline-events`` events one per transaction (``_common.Baseline.one_per_save``),
   before and after the build (a sample: saving all of them one by one would take as long as
   the build); ratio = matome's events/s ÷ the baseline's.
2. **billing run** — ``engine.issue_bills`` of the last month (one ``BillIssued`` per line with
   charges, 500 per transaction); baseline: bare eventsourcing writing as many new streams 500
   per ``app.save`` on its schema; ratio = bills/s ÷ baseline events/s.
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
    fresh_schema,
    load_average,
    log,
    peak_rss_mb,
    pg_unreachable,
    write_json,
)
from billing import BILLS_PER_SAVE, START, _encoded
from queries import measure as measure_queries

from matome.cli import DEFAULT_BATCH
from matome.credentials import TESTING
from matome.engine import Engine
from matome.generate import generate_log
from matome.interchange import LogLine, apply_lines, log_lines

__all__ = ["main"]


def _baseline_eps(baseline: Baseline, n: int) -> tuple[float, float]:
    clock = Clock()
    with clock.timing():
        baseline.one_per_save(n)
    return n / clock.wall, n / clock.cpu if clock.cpu else 0.0


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
        engine = Engine.open(url, kdf=TESTING)
        stack.callback(engine.close)

        # 1. ingest -------------------------------------------------------------------------
        before_eps, _ = _baseline_eps(baseline, args.baseline_events)
        log(f"pg_scale: baseline {before_eps:,.0f} one-event transactions/s before the build")
        clock = Clock()
        commands = accepted = 0
        started = last_log = time.perf_counter()
        pending: list[LogLine] = []
        with clock.timing():
            for line in log_lines(
                raw for _, raw in _encoded(generate_log(args.lines, args.months, seed=args.seed))
            ):
                pending.append(line)
                if len(pending) < DEFAULT_BATCH:
                    continue
                accepted += sum(bool(r["ok"]) for r in apply_lines(engine, pending))
                commands += len(pending)
                pending.clear()
                now = time.perf_counter()
                if now - last_log >= 15:
                    last_log = now
                    log(
                        f"  built {commands:,} commands, {commands / (now - started):,.0f}/s, "
                        f"{now - started:,.0f}s"
                    )
            accepted += sum(bool(r["ok"]) for r in apply_lines(engine, pending))
            commands += len(pending)
        events = engine.internals.recorder.max_notification_id() or 0
        after_eps, _ = _baseline_eps(baseline, args.baseline_events)
        base_eps = (before_eps + after_eps) / 2
        out["ingest"] = {
            "commands": commands,
            "accepted": accepted,
            "events": events,
            "seconds": clock.wall,
            "cpu_seconds": clock.cpu,
            "commands_per_s": commands / clock.wall,
            "events_per_s": events / clock.wall,
            "baseline_eps": [before_eps, after_eps],
            "ratio": events / clock.wall / base_eps,
        }
        log(
            f"pg_scale: ingested {commands:,} commands ({commands - accepted:,} refused), "
            f"{events:,} events in {clock.wall:,.0f}s = {events / clock.wall:,.0f} ev/s; "
            f"baseline {base_eps:,.0f} ev/s; ratio {out['ingest']['ratio']:.2f}"
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
        base = Clock()
        with base.timing():
            baseline.batch_of_new(bills, BILLS_PER_SAVE)
        out["billing"] = {
            "month": str(last),
            "bills": bills,
            "seconds": billing.wall,
            "cpu_seconds": billing.cpu,
            "bills_per_s": bills / billing.wall,
            "baseline_eps": bills / base.wall,
            "ratio": (bills / billing.wall) / (bills / base.wall),
        }
        log(
            f"pg_scale: {bills:,} bills of {last} in {billing.wall:.2f}s = "
            f"{bills / billing.wall:,.0f} bills/s; baseline {bills / base.wall:,.0f} ev/s; "
            f"ratio {out['billing']['ratio']:.2f}"
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
    parser.add_argument("--baseline-events", type=int, default=5_000)
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
        f"ingest {i['events_per_s']:,.0f} ev/s (ratio {i['ratio']:.2f}), "
        f"billing run {b['bills']:,} bills in {b['seconds']:.1f}s (ratio {b['ratio']:.2f}), "
        f"peak RSS {out['peak_rss_mb']:,.0f} MB"
    )
    for name, q in out["queries"].items():
        print(f"  {name:<16} p50 {q['p50_ms']:8.2f} ms  p99 {q['p99_ms']:8.2f} ms")
    return 0


if __name__ == "__main__":
    sys.exit(main())
