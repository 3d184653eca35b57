"""Command throughput of matome against bare eventsourcing, both on a fresh SQLite file.

    python bench/command_throughput.py [--n 5000] [--db PATH] [--lines 200] [--rounds 3]

(a) **baseline**: an ``eventsourcing.application.Application`` (``eventsourcing.sqlite``)
    saving one event of a minimal ``Aggregate`` per transaction (``app.save(agg)``), spread
    over 100 aggregates: the cost of the library and SQLite for one small write.
(b) **matome**: ``Engine.purchase`` of a per-purchase item, cycling over ``--lines`` lines with
    one Passport ID each.  Every purchase is a whole command: it loads the calendar, the ID,
    the provider and the line, checks the password and the limit, and saves two events
    (``Purchased`` and ``HoldingAdded``) in one transaction.

Only the loops are timed.  Setup (lines, IDs, provider) and one warm-up purchase per ID run
before the clock starts: passwords are hashed with the production PBKDF2 iterations, and the
first check of each ID's password pays a full PBKDF2; the engine's verify cache makes every
later check of the same password cheap, which is the steady state being measured.

The figure to read is the ratio matome purchases/s ÷ baseline events/s (both are "one
transaction per operation"); the target is >= 0.5.  Absolute numbers vary a lot between
machines and runs (±30%), so compare ratios measured in the same run.  See bench/README.md.
"""

from __future__ import annotations

import argparse
import cProfile
import io
import pstats
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import datetime, timedelta
from functools import partial
from pathlib import Path
from typing import Any
from uuid import UUID

from eventsourcing.application import Application
from eventsourcing.domain import Aggregate, event

from matome.credentials import DEFAULT_ITERATIONS
from matome.engine import Engine
from matome.values import TOKYO

TARGET_RATIO = 0.5
BASELINE_AGGREGATES = 100
START = datetime(2024, 6, 3, 9, 0, tzinfo=TOKYO)
PRICE = 100
PASSWORD = "Vq3Zr9Lx"
BILLING = {"method": "phone_bill", "number": "06-1234-5678", "cycle_start_day": 1}
APPLICANT = {"name": "Yamada Taro", "phone": "06-1234-5678", "contract_holder": True}


# ---------------------------------------------------------------------------------------------
# (a) Baseline: bare eventsourcing


class Till(Aggregate):
    """A minimal aggregate whose event carries about what a purchase event carries."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.sales = 0
        self.total = 0

    @event("Sold")
    def sell(self, receipt: str, service: str, price: int, at: datetime) -> None:
        self.sales += 1
        self.total += price


class Shop(Application[UUID]):
    name = "baseline"


def baseline_setup(path: Path) -> tuple[Shop, list[Till]]:
    app = Shop(env={"PERSISTENCE_MODULE": "eventsourcing.sqlite", "SQLITE_DBNAME": str(path)})
    tills = [Till(name=f"till-{i}") for i in range(BASELINE_AGGREGATES)]
    app.save(*tills)
    return app, tills


def baseline_loop(app: Shop, tills: list[Till], n: int, offset: int) -> None:
    for i in range(offset, offset + n):
        till = tills[i % len(tills)]
        till.sell(
            receipt=f"R{i:020d}", service="item1", price=PRICE, at=START + timedelta(seconds=i)
        )
        app.save(till)


# ---------------------------------------------------------------------------------------------
# (b) matome purchases


def customer_id(i: int) -> str:
    return f"CAF{i:010d}"


def passport_id(i: int) -> str:
    return f"bench.p{i:05d}"


def matome_setup(engine: Engine, lines: int, purchases_per_id: int) -> None:
    """Lines with one ID each, limits high enough for every purchase, a warm-up purchase each."""
    needed = (purchases_per_id + 1) * PRICE
    at = START - timedelta(hours=1)
    engine.register_provider(
        at=at, provider="prov1", name="Provider One", contact="ops@prov1.jp", goods="information"
    )
    engine.list_service(
        at=at, provider="prov1", service="item1", name="Item", pricing="per_purchase", price=PRICE
    )
    for i in range(lines):
        engine.open_line(
            at=at,
            customer_id=customer_id(i),
            operator="west",
            kind="hikari_next",
            access_key="Qz7Kx2Wv",
            line_limit=max(needed, 5000),
            billing=BILLING,
        )
        engine.register_passport(
            at=at,
            customer_id=customer_id(i),
            access_key="Qz7Kx2Wv",
            passport_id=passport_id(i),
            password=PASSWORD,
            email=f"p{i}@example.jp",
            applicant=APPLICANT,
            limit=min(needed, 5000),  # the most a registration may ask (§2)...
            line_auth=False,
        )
        if needed > 5000:  # ...then raised to what the run needs
            engine.change_passport_limit(
                at=at, passport_id=passport_id(i), access_key="Qz7Kx2Wv", limit=needed
            )
        # Warm-up: the first check of this password pays a full scrypt, later ones hit the
        # engine's verify cache.
        engine.purchase(
            at=at, passport_id=passport_id(i), password=PASSWORD, provider="prov1", service="item1"
        )


def matome_loop(engine: Engine, lines: int, n: int, offset: int) -> None:
    for i in range(offset, offset + n):
        engine.purchase(
            at=START + timedelta(seconds=i),
            passport_id=passport_id(i % lines),
            password=PASSWORD,
            provider="prov1",
            service="item1",
        )


# ---------------------------------------------------------------------------------------------


def timed(loop: Callable[[], None]) -> float:
    started = time.perf_counter()
    loop()
    return time.perf_counter() - started


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--n", type=int, default=5000, help="operations per timed round")
    parser.add_argument(
        "--db",
        type=Path,
        default=None,
        help="matome's SQLite file, new (default: in a temp dir); the baseline's goes next to it",
    )
    parser.add_argument("--lines", type=int, default=200, help="lines (one Passport ID each)")
    parser.add_argument("--rounds", type=int, default=3, help="timed rounds (median reported)")
    parser.add_argument(
        "--chunk", type=int, default=250, help="alternate baseline and matome every CHUNK ops"
    )
    parser.add_argument(
        "--hash-iterations",
        type=int,
        default=DEFAULT_ITERATIONS,
        help=f"PBKDF2 iterations (default: production, {DEFAULT_ITERATIONS})",
    )
    parser.add_argument(
        "--profile", type=Path, default=None, help="also profile one matome round into this file"
    )
    args = parser.parse_args(argv)
    if args.n < 1 or args.lines < 1 or args.rounds < 1:
        parser.error("--n, --lines and --rounds must be positive")

    with tempfile.TemporaryDirectory(prefix="matome-bench-") as tmp:
        db: Path = args.db if args.db is not None else Path(tmp) / "matome.sqlite"
        # The baseline lives next to matome's file: same file system, same fsync cost.
        baseline_db = db.with_name(f"{db.stem}.baseline.sqlite")
        for path in (db, baseline_db):
            if path.exists():
                parser.error(f"{path} exists; the benchmark needs fresh files")
        db.parent.mkdir(parents=True, exist_ok=True)
        return run(args, db, baseline_db)


def run(args: Any, db: Path, baseline_db: Path) -> int:
    n: int = args.n
    lines: int = args.lines
    rounds: int = args.rounds
    print(f"python {sys.version.split()[0]}; {n} operations x {rounds} rounds; SQLite files")
    print(f"  matome:   {db}")
    print(f"  baseline: {baseline_db}")

    app, tills = baseline_setup(baseline_db)
    started = time.perf_counter()
    engine = Engine.open(str(db), hash_iterations=args.hash_iterations)
    purchases_per_id = -(-n * (rounds + (args.profile is not None)) // lines)
    matome_setup(engine, lines, purchases_per_id)
    print(
        f"setup: {lines} lines/IDs, hash iterations {args.hash_iterations}, "
        f"{time.perf_counter() - started:.1f}s (not timed)"
    )

    base_rates: list[float] = []
    matome_rates: list[float] = []
    chunk: int = max(1, min(args.chunk, n))
    for r in range(rounds):
        # Alternate the two in chunks, so that drift of the machine (the disk's fsync latency
        # above all) hits both alike.
        base_time = matome_time = 0.0
        for start in range(r * n, (r + 1) * n, chunk):
            size = min(chunk, (r + 1) * n - start)
            base_time += timed(partial(baseline_loop, app, tills, size, start))
            matome_time += timed(partial(matome_loop, engine, lines, size, start))
        base_rates.append(n / base_time)
        matome_rates.append(n / matome_time)
        print(
            f"round {r + 1}: baseline {base_rates[-1]:8.0f} events/s   "
            f"matome {matome_rates[-1]:8.0f} purchases/s   "
            f"ratio {matome_rates[-1] / base_rates[-1]:.2f}"
        )

    base = statistics.median(base_rates)
    rate = statistics.median(matome_rates)
    ratio = rate / base
    print()
    print(f"baseline (eventsourcing, 1 event per save): {base:8.0f} events/s   (median)")
    print(
        f"matome purchases (2 events per save):      {rate:8.0f} purchases/s (median), "
        f"{2 * rate:.0f} events/s"
    )
    verdict = "meets" if ratio >= TARGET_RATIO else "BELOW"
    print(f"RATIO matome/baseline: {ratio:.2f}  ({verdict} the target of >= {TARGET_RATIO})")

    if args.profile is not None:
        profile(engine, lines, n, rounds * n, args.profile)
    engine.close()
    app.close()
    return 0


def profile(engine: Engine, lines: int, n: int, offset: int, out: Path) -> None:
    profiler = cProfile.Profile()
    profiler.enable()
    matome_loop(engine, lines, n, offset)
    profiler.disable()
    profiler.dump_stats(out)
    text = io.StringIO()
    pstats.Stats(profiler, stream=text).sort_stats("cumulative").print_stats(30)
    print(f"\nprofile of one matome round ({n} purchases), saved to {out}:")
    print(text.getvalue())


if __name__ == "__main__":
    raise SystemExit(main())
