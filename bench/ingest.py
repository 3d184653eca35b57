"""Ingestion through the command-log path (``matome run``) against bare eventsourcing.

    python bench/ingest.py --store sqlite --kdf production --lines 20 --months 2
    python bench/ingest.py --store postgres --kdf testing --lines 1000 --months 2 --json out.json

What it measures, in one process on one store:

* **cold** — a log from ``matome.generate.generate_log(lines, months, seed=...)`` (the
  catalog, lines opened, Passport IDs registered, a few months of purchases, cancellations,
  refunds, line changes, and ``issue_bills`` on the 1st of every month) applied the way
  ``matome run`` applies a file: ``matome.interchange.log_lines`` over the file's bytes and
  ``apply_lines`` on batches of ``--batch`` commands (default ``matome.cli.DEFAULT_BATCH``,
  as ``matome run FILE``; ``--batch 1``: ``apply_line`` one command per transaction, as
  ``matome run -``), on ``Engine.open(db, kdf=...)``.  With the production KDF
  (scrypt, ≈ 0.5 s a derivation) every access key and password is hashed once and every wrong
  password costs a derivation: this is the first pass, with those costs in it.
* **warm** — then, on the same engine, a second log of purchases only, by the same Passport
  IDs with their passwords, in the months after the first log (the verify cache remembers
  the passwords: no derivation), ``--batch`` commands a transaction as in the cold pass.

**baseline** — bare eventsourcing (``command_throughput.py``'s ``Shop``/``Till``) on the same
kind of store, saving **the same number of events in the same transactions**: every write
transaction matome commits is counted as the store reports it (``_common.Transactions``: the
notification ids each ``insert_events`` call returns), and after each chunk of ``--chunk`` log
lines the baseline commits one ``app.save`` per matome transaction, of as many events
(``Baseline.save_batches``).  A second reference, **raw rows**: plain ``sqlite3`` / ``psycopg``
inserting the same number of rows in the same transactions into an events-shaped table
(``_common.RawRows``) — the disk's and the database's cost with no library above it.  The
three alternate chunk by chunk, so that drift of the machine (the disk's fsync latency above
all) hits them alike; ``--rounds`` repeats everything on fresh stores.

**ratio = matome events/s ÷ baseline events/s** per round (min / median / max over the
rounds), also in CPU time of this process (which excludes the PostgreSQL server's work).
Before issue 18 the baseline committed one event per transaction while matome committed a
batch of ~300: batching against no batching, ratios above 1 that said nothing of matome's own
cost ("old (unequal transactions)" in ``docs/scaling.md``).

The SQLite files are created in ``--dir`` (default a temp dir: on disk here, not tmpfs — the
configuration users run); PostgreSQL gets two fresh schemas (matome's, the baseline's),
dropped afterwards.
"""

from __future__ import annotations

import argparse
import cProfile
import io
import itertools
import json
import pstats
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator, Sequence
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
    filesystem,
    fresh_schema,
    load_average,
    log,
    peak_rss_mb,
    pg_unreachable,
    remove_sqlite,
    spread,
    write_json,
)

from matome.cli import DEFAULT_BATCH
from matome.credentials import PRODUCTION, TESTING, Scheme
from matome.engine import Engine
from matome.generate import generate_log
from matome.interchange import LogLine, apply_line, apply_lines, log_lines
from matome.values import YearMonth

KDFS: dict[str, Scheme] = {"production": PRODUCTION, "testing": TESTING}
#: The first month of generate_log's logs (its default ``start``).
START = YearMonth(2024, 1)


def write_log(path: Path, commands: Iterator[dict[str, Any]]) -> int:
    """Write a command log as ``matome generate`` does; return how many commands."""
    n = 0
    with path.open("w", encoding="utf-8") as out:
        for body in commands:
            out.write(json.dumps(body, ensure_ascii=False, separators=(",", ":")) + "\n")
            n += 1
    return n


def warm_purchases(cold: Path, months: int, count: int) -> Iterator[dict[str, Any]]:
    """``count`` purchases by the Passport IDs the cold log registered, with their passwords,
    of the cheapest per-purchase item, in the months after the cold log's last month.

    Each ID buys at most ~500 yen a month (every ID may spend at least 1,000), round-robin
    over the IDs, in business-time order; a purchase the engine refuses (an ID deleted by a
    line transfer, a line regulated) is still a command of the log."""
    passports: list[tuple[str, str, str]] = []
    items: list[tuple[int, str, str]] = []
    with cold.open("rb") as f:
        for raw in f:
            body = json.loads(raw)
            if body["command"] == "register_passport":
                passports.append((body["passport_id"], body["password"], body["customer_id"]))
            elif body["command"] == "list_service" and body["pricing"] == "per_purchase":
                items.append((body["price"], body["provider"], body["service"]))
    if not passports or not items:
        return
    price, provider, service = min(items)
    per_month = max(1, 500 // price)
    slots = len(passports) * per_month
    month = START
    for _ in range(months):
        month = month.next()
    for i in range(count):
        m, slot = divmod(i, slots)
        current = month
        for _ in range(m):
            current = current.next()
        # Spread evenly over days 2–26 of the month, in order.
        at = current.start() + timedelta(days=1, seconds=slot * (25 * 86_400 // slots))
        pid, password, customer_id = passports[slot % len(passports)]
        yield {
            "command": "purchase",
            "at": at.isoformat(),
            "passport_id": pid,
            "password": password,
            "provider": provider,
            "service": service,
            "presented_line": customer_id,
            "ref": f"warm{i}",
            "key": f"warm-{i}",
        }


def ingest_pass(
    name: str,
    engine: Engine,
    baseline: Baseline,
    raw: RawRows,
    log_path: Path,
    chunk: int,
    profiler: cProfile.Profile | None = None,
    batch: int = DEFAULT_BATCH,
) -> dict[str, Any]:
    """Apply the log in chunks of ``chunk`` lines, each followed by the baseline and the raw
    rows committing the transactions the chunk committed (as many, of as many events each);
    return the figures."""
    matome, base, bare = Clock(), Clock(), Clock()
    commands = accepted = events = transactions = largest = 0
    derivations = engine.internals.hasher.derivations
    recorder = engine.internals.recorder
    before = recorder.max_notification_id() or 0
    last_progress = time.monotonic()
    with log_path.open("rb") as f, Transactions(recorder) as tx:
        lines: Iterator[LogLine] = log_lines(f)
        while True:
            with matome.timing():
                if profiler is not None:
                    profiler.enable()
                taken = list(itertools.islice(lines, chunk))
                n = len(taken)
                if batch == 1:
                    for line in taken:
                        result = apply_line(engine, line.number, line.text, line.position)
                        accepted += bool(result["ok"])
                else:
                    for start in range(0, n, batch):
                        results = apply_lines(engine, taken[start : start + batch])
                        accepted += sum(bool(r["ok"]) for r in results)
                if profiler is not None:
                    profiler.disable()
            if not n:
                break
            commands += n
            sizes = tx.take()
            events += sum(sizes)
            transactions += len(sizes)
            largest = max([largest, *sizes])
            with base.timing():
                baseline.save_batches(sizes)
            with bare.timing():
                raw.save_batches(sizes)
            if time.monotonic() - last_progress > 10:
                last_progress = time.monotonic()
                log(
                    f"  {name}: {commands:,} commands, {events:,} events in {transactions:,} "
                    f"transactions (matome {events / matome.wall:,.0f} ev/s, baseline "
                    f"{events / max(base.wall, 1e-9):,.0f} ev/s)"
                )
    stored = (recorder.max_notification_id() or 0) - before
    if stored != events:  # a PostgreSQL sequence can skip ids (a rolled-back try): say so
        log(
            f"  {name}: the store's positions moved by {stored:,}, its transactions held {events:,}"
        )
    out = {
        "commands": commands,
        "accepted": accepted,
        "refused": commands - accepted,
        "events": events,
        "transactions": transactions,
        "events_per_transaction": events / transactions if transactions else 0.0,
        "largest_transaction": largest,
        "derivations": engine.internals.hasher.derivations - derivations,
        "seconds": matome.wall,
        "cpu_seconds": matome.cpu,
        "baseline_seconds": base.wall,
        "baseline_cpu_seconds": base.cpu,
        "raw_seconds": bare.wall,
        "eps": events / matome.wall if matome.wall else 0.0,
        "baseline_eps": events / base.wall if base.wall else 0.0,
        "raw_eps": events / bare.wall if bare.wall else 0.0,
        "commands_per_s": commands / matome.wall if matome.wall else 0.0,
    }
    out["ratio"] = out["eps"] / out["baseline_eps"] if out["baseline_eps"] else 0.0
    out["ratio_raw"] = out["eps"] / out["raw_eps"] if out["raw_eps"] else 0.0
    out["ratio_cpu"] = matome_cpu_ratio(matome, base)
    return out


def summarise(rounds: list[dict[str, Any]]) -> dict[str, Any]:
    """The medians of the rounds' figures, the spread of the ratios, and every round."""
    out: dict[str, Any] = {}
    for key, value in rounds[0].items():
        if isinstance(value, int | float):
            out[key] = statistics.median(float(x[key]) for x in rounds)
    for key in ("commands", "accepted", "refused", "events", "transactions", "derivations"):
        out[key] = int(rounds[-1][key])
    out["ratio_spread"] = spread([x["ratio"] for x in rounds])
    out["ratio_raw_spread"] = spread([x["ratio_raw"] for x in rounds])
    out["rounds"] = rounds
    return out


def matome_cpu_ratio(matome: Clock, base: Clock) -> float:
    """(events / matome CPU) ÷ (events / baseline CPU) = baseline CPU ÷ matome CPU."""
    return base.cpu / matome.cpu if matome.cpu else 0.0


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--store", choices=("sqlite", "postgres"), default="sqlite")
    parser.add_argument("--kdf", choices=sorted(KDFS), default="production")
    parser.add_argument("--lines", type=int, default=20, help="lines in the cold log")
    parser.add_argument("--months", type=int, default=2, help="months in the cold log")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument(
        "--warm-purchases", type=int, default=1000, help="purchases in the warm log"
    )
    parser.add_argument("--chunk", type=int, default=100, help="alternate every CHUNK lines")
    parser.add_argument("--rounds", type=int, default=1, help="repeat on fresh stores")
    parser.add_argument(
        "--batch",
        type=int,
        default=DEFAULT_BATCH,
        help=f"commands per transaction, as matome run --batch (default {DEFAULT_BATCH}, what "
        "matome run does with a file; 1: one transaction per command, as from stdin)",
    )
    parser.add_argument("--dir", type=Path, default=None, help="files here (default: temp dir)")
    parser.add_argument("--pg", default=DEFAULT_PG, help="PostgreSQL server (--store postgres)")
    parser.add_argument("--json", type=Path, default=None, help="write the figures here")
    parser.add_argument(
        "--profile", type=Path, default=None, help="cProfile matome's part of the warm pass"
    )
    args = parser.parse_args(argv)
    if args.batch < 1:
        parser.error("--batch must be at least 1")
    if min(args.lines, args.months, args.chunk, args.rounds) < 1 or args.warm_purchases < 0:
        parser.error("sizes must be positive")

    if args.store == "postgres":
        reason = pg_unreachable(args.pg)
        if reason is not None:
            log(f"ingest: skipped: {reason}")
            write_json(args.json, {"skipped": reason, "store": "postgres", "kdf": args.kdf})
            return 0

    with ExitStack() as outer:
        folder: Path = args.dir or Path(outer.enter_context(tempfile.TemporaryDirectory()))
        folder.mkdir(parents=True, exist_ok=True)
        stem = f"ingest-s{args.seed}-n{args.lines}-m{args.months}"
        cold = folder / f"{stem}.cold.jsonl"
        warm = folder / f"{stem}.warm{args.warm_purchases}.jsonl"
        n_cold = write_log(cold, generate_log(args.lines, args.months, seed=args.seed))
        n_warm = write_log(warm, warm_purchases(cold, args.months, args.warm_purchases))
        load_before = load_average()
        results: dict[str, Any] = {
            "store": args.store,
            "kdf": args.kdf,
            "kdf_params": repr(KDFS[args.kdf]),
            "lines": args.lines,
            "months": args.months,
            "seed": args.seed,
            "chunk": args.chunk,
            "batch": args.batch,
            "rounds": args.rounds,
        }
        passes: dict[str, list[dict[str, Any]]] = {"cold": [], "warm": []}
        for r in range(args.rounds):
            with ExitStack() as stack:
                tag = f"{args.store}-{args.kdf}-{uuid.uuid4().hex[:8]}"
                if args.store == "postgres":
                    db = stack.enter_context(fresh_schema(args.pg, "matome_bench"))
                    baseline = Baseline(
                        pg_url=stack.enter_context(fresh_schema(args.pg, "es_bench"))
                    )
                    raw = RawRows(pg_url=stack.enter_context(fresh_schema(args.pg, "raw_bench")))
                    where = f"PostgreSQL {args.pg.split('?')[0]} (fresh schemas)"
                else:
                    path = folder / f"ingest-{tag}.sqlite"
                    db = str(path)
                    baseline = Baseline(path=folder / f"ingest-{tag}.baseline.sqlite")
                    raw = RawRows(path=folder / f"ingest-{tag}.raw.sqlite")
                    where = f"SQLite files in {folder} ({filesystem(folder)})"
                    for suffix in ("", ".baseline", ".raw"):
                        stack.callback(remove_sqlite, folder / f"ingest-{tag}{suffix}.sqlite")
                stack.callback(raw.close)
                stack.callback(baseline.close)
                engine = Engine.open(db, kdf=KDFS[args.kdf])
                stack.callback(engine.close)
                log(
                    f"ingest ({args.store}, {args.kdf} KDF) round {r + 1}/{args.rounds}: cold "
                    f"log {n_cold:,} commands ({args.lines:,} lines, {args.months} months), "
                    f"warm log {n_warm:,} purchases; {where}"
                )
                results["where"] = where
                passes["cold"].append(
                    ingest_pass("cold", engine, baseline, raw, cold, args.chunk, batch=args.batch)
                )
                last = r == args.rounds - 1
                profiler = cProfile.Profile() if args.profile is not None and last else None
                passes["warm"].append(
                    ingest_pass(
                        "warm", engine, baseline, raw, warm, args.chunk, profiler, args.batch
                    )
                )
                for name in ("cold", "warm"):
                    one = passes[name][-1]
                    log(
                        f"  round {r + 1} {name}: ratio {one['ratio']:.2f} "
                        f"(raw {one['ratio_raw']:.2f}), {one['events_per_transaction']:.1f} "
                        "events per transaction"
                    )
        for name in ("cold", "warm"):
            results[name] = summarise(passes[name])
        results["load"] = [load_before, load_average()]
        results["peak_rss_mb"] = peak_rss_mb()
        if profiler is not None:
            profiler.dump_stats(args.profile)
            text = io.StringIO()
            pstats.Stats(profiler, stream=text).sort_stats("cumulative").print_stats(25)
            print(f"profile of the warm pass, saved to {args.profile}:\n{text.getvalue()}")
            results["profiled"] = True

    for name in ("cold", "warm"):
        r = results[name]
        print(
            f"{args.store} {args.kdf:<10} {name}: {r['commands']:>7,} commands "
            f"({r['refused']:,} refused), {r['events']:>8,} events, "
            f"{r['derivations']:,} KDF derivations | matome {r['eps']:>7,.0f} ev/s "
            f"({r['commands_per_s']:,.0f} commands/s) | baseline {r['baseline_eps']:>7,.0f} "
            f"ev/s | raw rows {r['raw_eps']:>7,.0f} ev/s | {r['events_per_transaction']:.1f} "
            f"ev/transaction | ratio {r['ratio']:.2f} (min {r['ratio_spread']['min']:.2f}, max "
            f"{r['ratio_spread']['max']:.2f}; CPU {r['ratio_cpu']:.2f}; raw {r['ratio_raw']:.2f})"
        )
    print(f"peak RSS {results['peak_rss_mb']:.0f} MB")
    write_json(args.json, results)
    return 0


if __name__ == "__main__":
    sys.exit(main())
