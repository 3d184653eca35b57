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

(c) **the same transactions**: a second bare-eventsourcing file saving, after each chunk,
    as many events in as many transactions as matome's purchases of that chunk committed
    (counted from the store by ``_common.Transactions``): the same writes, nothing decided.

Two ratios, each per round (min / median / max over ``--rounds`` interleaved rounds): matome
purchases/s ÷ one-event transactions/s — the issue's target, >= 0.5 ("a warm purchase within
2× of the least write the library can do") — and matome events/s ÷ (c)'s events/s, which
compares the same events in the same transactions.  Run it with ``--db`` on tmpfs and on
disk: on disk a commit's fsync dominates both sides.  Absolute numbers vary a lot between
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
    parser.add_argument("--json", type=Path, default=None, help="write the figures here")
    args = parser.parse_args(argv)
    if args.n < 1 or args.lines < 1 or args.rounds < 1:
        parser.error("--n, --lines and --rounds must be positive")

    with tempfile.TemporaryDirectory(prefix="matome-bench-") as tmp:
        db: Path = args.db if args.db is not None else Path(tmp) / "matome.sqlite"
        # The baseline lives next to matome's file: same file system, same fsync cost.
        baseline_db = db.with_name(f"{db.stem}.baseline.sqlite")
        same_db = db.with_name(f"{db.stem}.baseline.same.sqlite")
        for path in (db, baseline_db, same_db):
            if path.exists():
                parser.error(f"{path} exists; the benchmark needs fresh files")
        db.parent.mkdir(parents=True, exist_ok=True)
        return run(args, db, baseline_db)


def baseline_batches(app: Shop, tills: list[Till], sizes: list[int], offset: int) -> int:
    """One ``app.save`` per size, of that many events over the tills in turn (the same
    transactions as matome's); return the new offset."""
    for k in sizes:
        touched: dict[int, Till] = {}
        for i in range(offset, offset + k):
            j = i % len(tills)
            tills[j].sell(
                receipt=f"R{i:020d}", service="item1", price=PRICE, at=START + timedelta(seconds=i)
            )
            touched[j] = tills[j]
        if touched:
            app.save(*touched.values())
        offset += k
    return offset


def run(args: Any, db: Path, baseline_db: Path) -> int:
    from _common import Transactions, filesystem, peak_rss_mb, spread, write_json

    n: int = args.n
    lines: int = args.lines
    rounds: int = args.rounds
    fs = filesystem(db.parent)
    print(f"python {sys.version.split()[0]}; {n} operations x {rounds} rounds; SQLite on {fs}")
    print(f"  matome:   {db}")
    print(f"  baseline: {baseline_db} (and {baseline_db.stem}.same.sqlite)")

    app, tills = baseline_setup(baseline_db)
    same_app, same_tills = baseline_setup(baseline_db.with_name(f"{baseline_db.stem}.same.sqlite"))
    started = time.perf_counter()
    engine = Engine.open(str(db), hash_iterations=args.hash_iterations)
    purchases_per_id = -(-n * (rounds + (args.profile is not None)) // lines)
    matome_setup(engine, lines, purchases_per_id)
    print(
        f"setup: {lines} lines/IDs, hash iterations {args.hash_iterations}, "
        f"{time.perf_counter() - started:.1f}s (not timed)"
    )

    per_round: list[dict[str, float]] = []
    chunk: int = max(1, min(args.chunk, n))
    same_offset = 0
    with Transactions(engine.internals.recorder) as tx:
        for r in range(rounds):
            # Interleaved in chunks, so that drift of the machine (the disk's fsync latency
            # above all) hits all three alike.
            base_time = matome_time = same_time = 0.0
            events = transactions = 0
            for start in range(r * n, (r + 1) * n, chunk):
                size = min(chunk, (r + 1) * n - start)
                base_time += timed(partial(baseline_loop, app, tills, size, start))
                matome_time += timed(partial(matome_loop, engine, lines, size, start))
                sizes = tx.take()
                events += sum(sizes)
                transactions += len(sizes)
                t0 = time.perf_counter()
                same_offset = baseline_batches(same_app, same_tills, sizes, same_offset)
                same_time += time.perf_counter() - t0
            one = {
                "baseline_tps": n / base_time,
                "purchases_per_s": n / matome_time,
                "events_per_purchase": events / n,
                "transactions_per_purchase": transactions / n,
                "matome_eps": events / matome_time,
                "same_eps": events / same_time,
            }
            one["ratio"] = one["purchases_per_s"] / one["baseline_tps"]
            one["ratio_same"] = one["matome_eps"] / one["same_eps"]
            per_round.append(one)
            print(
                f"round {r + 1}: one-event transactions {one['baseline_tps']:8.0f}/s   "
                f"matome {one['purchases_per_s']:8.0f} purchases/s "
                f"({one['events_per_purchase']:.1f} events each)   ratio {one['ratio']:.2f}; "
                f"same transactions: baseline {one['same_eps']:.0f} ev/s, "
                f"matome {one['matome_eps']:.0f} ev/s, ratio {one['ratio_same']:.2f}"
            )

    def median(key: str) -> float:
        return statistics.median(x[key] for x in per_round)

    out: dict[str, Any] = {
        "filesystem": fs,
        "n": n,
        "rounds": per_round,
        "baseline_tps": median("baseline_tps"),
        "purchases_per_s": median("purchases_per_s"),
        "events_per_purchase": median("events_per_purchase"),
        "matome_eps": median("matome_eps"),
        "same_eps": median("same_eps"),
        "ratio": median("ratio"),
        "ratio_spread": spread([x["ratio"] for x in per_round]),
        "ratio_same": median("ratio_same"),
        "ratio_same_spread": spread([x["ratio_same"] for x in per_round]),
    }
    ratio = out["ratio"]
    print()
    print(
        f"baseline (eventsourcing, 1 event per save): {out['baseline_tps']:8.0f} events/s (median)"
    )
    print(
        f"matome purchases ({out['events_per_purchase']:.1f} events per save):      "
        f"{out['purchases_per_s']:8.0f} purchases/s (median), {out['matome_eps']:.0f} events/s"
    )
    verdict = "meets" if ratio >= TARGET_RATIO else "BELOW"
    print(
        f"RATIO matome/baseline: {ratio:.2f} (min {out['ratio_spread']['min']:.2f}, max "
        f"{out['ratio_spread']['max']:.2f}; {verdict} the target of >= {TARGET_RATIO})"
    )
    print(
        f"same events in the same transactions: baseline {out['same_eps']:.0f} events/s; "
        f"RATIO {out['ratio_same']:.2f} (min {out['ratio_same_spread']['min']:.2f}, max "
        f"{out['ratio_same_spread']['max']:.2f})"
    )

    if args.profile is not None:
        profile(engine, lines, n, rounds * n, args.profile)
    engine.close()
    app.close()
    same_app.close()
    out["peak_rss_mb"] = peak_rss_mb()
    write_json(args.json, out)
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
