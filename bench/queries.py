"""Query latency on a billed store: p50 / p99 of the engine's document queries.

    python bench/queries.py --store DIR/billing-s1-n10000-m7.at3.billed.sqlite --month 2024-03

On a store built and billed by ``billing.py`` (the month's bills issued), with the views
caught up first (not timed), it times, one call at a time, over ``--samples`` lines drawn at
random (seeded) among the lines billed that month, in a random order:

* ``engine.bill(customer_id, month)`` — the issued bill (from the views);
* ``engine.statement(customer_id, month)`` — the usage statement, first page of 50;
* ``engine.audit(customer_id, month)`` — the bill rebuilt from the line's own streams and
  explained charge by charge;

and ``--month-samples`` times each of the whole-month documents:

* ``engine.provider_totals(month)`` and ``engine.settlement(month)``.

Each query is called once untimed first (warm-up: first-use setup, SQLite's page cache).
Reported per query: p50, p99 and mean of the wall clock and the median CPU time, in ms.
``run.py`` compares the p50 at two store sizes (the same queries at 10× the lines): the
baseline of a query is itself on the smaller store, so the ratio shows how it scales.
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from _common import load_average, log, peak_rss_mb, percentile, write_json

from matome.credentials import TESTING
from matome.engine import Engine
from matome.values import YearMonth

LINE_QUERIES = ("bill", "statement", "audit")
MONTH_QUERIES = ("provider_totals", "settlement")


def timed(call: Callable[[], object]) -> tuple[float, float]:
    wall, cpu = time.perf_counter(), time.process_time()
    call()
    return time.perf_counter() - wall, time.process_time() - cpu


def summary(walls: list[float], cpus: list[float]) -> dict[str, Any]:
    return {
        "n": len(walls),
        "p50_ms": percentile(walls, 50) * 1000,
        "p99_ms": percentile(walls, 99) * 1000,
        "mean_ms": statistics.fmean(walls) * 1000,
        "cpu_p50_ms": percentile(cpus, 50) * 1000,
    }


def measure(
    store: Path | str, month: YearMonth, samples: int, month_samples: int, seed: int
) -> Any:
    """Time the queries on ``store`` (an SQLite file, or a PostgreSQL URL: ``pg_scale.py``)."""
    label = store.name if isinstance(store, Path) else str(store).split("?")[-1]
    engine = Engine.open(str(store), kdf=TESTING, create=False)
    try:
        projection, documents = engine.internals.views
        caught = projection.catch_up()
        billed = sorted(documents.issued_bills(month))
        if not billed:
            raise SystemExit(f"{store}: no bill of {month} is issued (run billing.py first)")
        events = engine.internals.recorder.max_notification_id() or 0
        rng = random.Random(seed)
        lines = rng.sample(billed, min(samples, len(billed)))
        m = str(month)
        line_calls: dict[str, Callable[[str], object]] = {
            "bill": lambda cid: engine.bill(cid, m),
            "statement": lambda cid: engine.statement(cid, m),
            "audit": lambda cid: engine.audit(cid, m),
        }
        month_calls: dict[str, Callable[[], object]] = {
            "provider_totals": lambda: engine.provider_totals(m),
            "settlement": lambda: engine.settlement(m),
        }
        for line_call in line_calls.values():  # warm-up
            line_call(lines[0])
        # The month-wide documents have a row per provider (and operator): their size.
        rows = {name: len(month_call()) for name, month_call in month_calls.items()}  # type: ignore[arg-type]
        walls: dict[str, list[float]] = {q: [] for q in (*LINE_QUERIES, *MONTH_QUERIES)}
        cpus: dict[str, list[float]] = {q: [] for q in walls}
        log(
            f"  queries {label}: {len(lines)} lines x {len(LINE_QUERIES)} queries, "
            f"{month_samples} x {len(MONTH_QUERIES)} month queries"
        )
        for cid in lines:
            order = list(LINE_QUERIES)
            rng.shuffle(order)
            for name in order:
                wall, cpu = timed(lambda: line_calls[name](cid))  # noqa: B023  (called at once)
                walls[name].append(wall)
                cpus[name].append(cpu)
        for _ in range(month_samples):
            for name, month_call in month_calls.items():
                wall, cpu = timed(month_call)
                walls[name].append(wall)
                cpus[name].append(cpu)
        return {
            "store": str(store),
            "month": m,
            "events": events,
            "billed_lines": len(billed),
            "caught_up_before": caught,
            "queries": {
                q: {**summary(walls[q], cpus[q]), **({"rows": rows[q]} if q in rows else {})}
                for q in walls
            },
        }
    finally:
        engine.close()


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--store", type=Path, required=True, help="a billed store")
    parser.add_argument("--month", required=True, help="its billed month (YYYY-MM)")
    parser.add_argument("--samples", type=int, default=300, help="lines queried")
    parser.add_argument("--month-samples", type=int, default=30, help="calls of month queries")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args(argv)
    if args.samples < 1 or args.month_samples < 1:
        parser.error("--samples and --month-samples must be positive")
    load_before = load_average()
    out = measure(
        args.store, YearMonth.parse(args.month), args.samples, args.month_samples, args.seed
    )
    out["load"] = [load_before, load_average()]
    out["peak_rss_mb"] = peak_rss_mb()
    print(f"{args.store.name} {args.month}: {out['billed_lines']:,} billed lines")
    for name, q in out["queries"].items():
        print(
            f"  {name:<16} n={q['n']:>4}  p50 {q['p50_ms']:8.2f} ms  p99 {q['p99_ms']:8.2f} ms"
            f"  mean {q['mean_ms']:8.2f} ms  CPU p50 {q['cpu_p50_ms']:8.2f} ms"
        )
    write_json(args.json, out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
