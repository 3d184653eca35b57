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
  the passwords: no derivation).  A purchase is one command, two events, one transaction.

**baseline** — bare eventsourcing (``command_throughput.py``'s ``Shop``/``Till``) on the same
kind of store, saving **the same number of events**, one event per ``app.save`` (one
transaction each).  The two alternate every ``--chunk`` log lines: after each chunk of
commands, the baseline saves exactly as many events as the chunk recorded in matome's store
(counted from the store: ``recorder.max_notification_id()``), so that drift of the machine
(the disk's fsync latency above all) hits both alike.

**ratio = matome events/s ÷ baseline events/s** (also in CPU time of this process, which
excludes the PostgreSQL server's work).  A matome command writes several events in one
transaction where the baseline commits each event, so on a disk, where a commit's fsync
dominates, the ratio can exceed 1; on the cheap KDF it shows what a command costs beyond its
writes, on the production KDF what the password hashing adds.

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
    fresh_schema,
    load_average,
    log,
    peak_rss_mb,
    pg_unreachable,
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
    log_path: Path,
    chunk: int,
    profiler: cProfile.Profile | None = None,
    batch: int = DEFAULT_BATCH,
) -> dict[str, Any]:
    """Apply the log in chunks of ``chunk`` lines, each followed by the baseline saving as many
    events as the chunk recorded; return the figures."""
    matome, base = Clock(), Clock()
    commands = accepted = events = 0
    derivations = engine.internals.hasher.derivations
    before = engine.internals.recorder.max_notification_id() or 0
    base_before = baseline.events()
    last_progress = time.monotonic()
    with log_path.open("rb") as f:
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
            now_events = engine.internals.recorder.max_notification_id() or 0
            written = now_events - before - events
            events += written
            with base.timing():
                baseline.one_per_save(written)
            if time.monotonic() - last_progress > 10:
                last_progress = time.monotonic()
                log(
                    f"  {name}: {commands:,} commands, {events:,} events "
                    f"(matome {events / matome.wall:,.0f} ev/s, baseline "
                    f"{events / max(base.wall, 1e-9):,.0f} ev/s)"
                )
    assert baseline.events() - base_before == events
    out = {
        "commands": commands,
        "accepted": accepted,
        "refused": commands - accepted,
        "events": events,
        "derivations": engine.internals.hasher.derivations - derivations,
        "seconds": matome.wall,
        "cpu_seconds": matome.cpu,
        "baseline_seconds": base.wall,
        "baseline_cpu_seconds": base.cpu,
        "eps": events / matome.wall if matome.wall else 0.0,
        "baseline_eps": events / base.wall if base.wall else 0.0,
        "commands_per_s": commands / matome.wall if matome.wall else 0.0,
    }
    out["ratio"] = out["eps"] / out["baseline_eps"] if out["baseline_eps"] else 0.0
    out["ratio_cpu"] = matome_cpu_ratio(matome, base)
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
    if args.lines < 1 or args.months < 1 or args.chunk < 1 or args.warm_purchases < 0:
        parser.error("sizes must be positive")

    if args.store == "postgres":
        reason = pg_unreachable(args.pg)
        if reason is not None:
            log(f"ingest: skipped: {reason}")
            write_json(args.json, {"skipped": reason, "store": "postgres", "kdf": args.kdf})
            return 0

    with ExitStack() as stack:
        folder: Path = args.dir or Path(stack.enter_context(tempfile.TemporaryDirectory()))
        folder.mkdir(parents=True, exist_ok=True)
        stem = f"ingest-s{args.seed}-n{args.lines}-m{args.months}"
        cold = folder / f"{stem}.cold.jsonl"
        warm = folder / f"{stem}.warm{args.warm_purchases}.jsonl"
        n_cold = write_log(cold, generate_log(args.lines, args.months, seed=args.seed))
        n_warm = write_log(warm, warm_purchases(cold, args.months, args.warm_purchases))
        tag = f"{args.store}-{args.kdf}-{uuid.uuid4().hex[:8]}"
        if args.store == "postgres":
            db = stack.enter_context(fresh_schema(args.pg, "matome_bench"))
            baseline = Baseline(pg_url=stack.enter_context(fresh_schema(args.pg, "es_bench")))
            where = f"PostgreSQL {args.pg.split('?')[0]} (fresh schemas)"
        else:
            path = folder / f"ingest-{tag}.sqlite"
            db = str(path)
            baseline = Baseline(path=folder / f"ingest-{tag}.baseline.sqlite")
            where = f"SQLite files in {folder}"
        stack.callback(baseline.close)
        engine = Engine.open(db, kdf=KDFS[args.kdf])
        stack.callback(engine.close)
        log(
            f"ingest ({args.store}, {args.kdf} KDF): cold log {n_cold:,} commands "
            f"({args.lines:,} lines, {args.months} months), warm log {n_warm:,} purchases; "
            f"{where}"
        )
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
        }
        results["cold"] = ingest_pass("cold", engine, baseline, cold, args.chunk, batch=args.batch)
        profiler = cProfile.Profile() if args.profile is not None else None
        results["warm"] = ingest_pass(
            "warm", engine, baseline, warm, args.chunk, profiler, batch=args.batch
        )
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
            f"ev/s | ratio {r['ratio']:.2f} (CPU {r['ratio_cpu']:.2f})"
        )
    print(f"peak RSS {results['peak_rss_mb']:.0f} MB")
    write_json(args.json, results)
    return 0


if __name__ == "__main__":
    sys.exit(main())
