"""``verify`` stays linear in the store: its time at growing store sizes (SQLite).

Each store is filled with the rebuild benchmark's seeded generator (events decided by the
engine's own deciders) through ``EventStoreApplication.record``, so every event gets its
stream-chain and global-chain entries as a real write does; its views are caught up (as
``matome bill`` leaves them) and then ``Engine.verify()`` is timed — every chain folded again,
the global chain compared row by row, every personal value and issued bill, and the views'
issued bills.  The figure that must hold: events/s roughly constant across sizes (the time
ratio between sizes ≈ the size ratio).

    python bench/verify_scale.py --sizes 100000,200000,400000 [--dir DIR [--reuse]] [--json FILE]
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from tempfile import TemporaryDirectory
from typing import Any

import rebuild  # bench/rebuild.py: this script's directory is on sys.path
from _common import write_json

from matome.engine import Engine
from matome.events.base import DomainEvent


def _log(message: str) -> None:
    print(f"[verify_scale] {message}", file=sys.stderr, flush=True)


def fill(db: Path, events: int, seed: int) -> float:
    """A store of about ``events`` generated events; the seconds its writes took."""
    rebuild._remove_db(db)
    engine = Engine.open(str(db), hash_iterations=1)
    store = engine._store  # record() writes both chains with the events
    gen = rebuild.LogGenerator(seed, events)
    pending: list[DomainEvent] = []
    started = time.perf_counter()
    try:
        for group in gen.groups():
            pending += group
            if len(pending) >= rebuild.SAVE_BATCH:
                store.record(pending)
                pending.clear()
            if gen.emitted >= events:
                break
        store.record(pending)
    finally:
        engine.close()
    return time.perf_counter() - started


def measure(db: Path) -> dict[str, Any]:
    engine = Engine.open(str(db), hash_iterations=1, create=False)
    try:
        started = time.perf_counter()
        projection, _ = engine._view_pair()
        projection.catch_up()
        views = time.perf_counter() - started
        started, cpu = time.perf_counter(), time.process_time()
        result = engine.verify()
        seconds, cpu = time.perf_counter() - started, time.process_time() - cpu
    finally:
        engine.close()
    if not result.ok:
        raise SystemExit(f"verify failed: {result.problems[:3]}")
    return {
        "events": result.events,
        "streams": result.streams,
        "bills": result.bills,
        "views_catch_up_s": round(views, 2),
        "verify_s": round(seconds, 2),
        "verify_cpu_s": round(cpu, 2),
        "events_per_s": round(result.events / seconds),
        "events_per_cpu_s": round(result.events / cpu),
    }


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--sizes", default="100000,200000,400000", help="events per store")
    parser.add_argument("--seed", type=int, default=20240601)
    parser.add_argument("--dir", type=Path, default=None, help="keep the stores here")
    parser.add_argument("--json", type=Path, default=None, help="also write the figures here")
    parser.add_argument("--reuse", action="store_true", help="reuse the stores in --dir")
    args = parser.parse_args(argv)
    sizes = [int(s) for s in args.sizes.split(",")]
    rows = []
    with TemporaryDirectory() as tmp:
        folder = args.dir or Path(tmp)
        folder.mkdir(parents=True, exist_ok=True)
        for size in sizes:
            db = folder / f"verify-{size}.sqlite"
            written = None if args.reuse and db.exists() else round(fill(db, size, args.seed), 1)
            row = {"target": size, "fill_s": written, **measure(db)}
            _log(str(row))
            rows.append(row)
    base = rows[0]
    # CPU time as well as wall clock: on a shared machine the wall clock measures the load.
    print(
        f"{'events':>10} {'verify s':>9} {'CPU s':>8} {'events/CPU s':>12} "
        f"{'CPU ratio':>9} {'size ratio':>10}"
    )
    for row in rows:
        print(
            f"{row['events']:>10,} {row['verify_s']:>9.2f} {row['verify_cpu_s']:>8.2f} "
            f"{row['events_per_cpu_s']:>12,} {row['verify_cpu_s'] / base['verify_cpu_s']:>9.2f} "
            f"{row['events'] / base['events']:>10.2f}"
        )
    write_json(args.json, {"verify_scale": rows})
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
