"""Cold ingestion at the pace of the key derivation (issue 18, "Key derivation at the pace of
the hardware").

A cold log — every line opened, every Passport ID registered, every password checked for the
first time — costs key derivations, and each production derivation (Argon2id, see
:mod:`matome.credentials`) costs tens of milliseconds of one core.  The target: such a log runs
within 1.2× of *derivations needed × one derivation's time ÷ cores*.

For a generated log (``matome.generate.generate_log``: ``--lines`` access lines over
``--months`` months) on a fresh SQLite store, with the production KDF, applied as ``matome
run`` does (``apply_lines`` on batches of ``--batch`` commands), this prints one row per run:

* ``derivations``: the derivations the run did (``Hasher.derivations``);
* ``t1``: one derivation's time, measured alone just before (median of ``--samples`` hashes);
* ``cores``: the pool's workers (``os.cpu_count()``, or ``--workers``);
* ``expected`` = derivations × t1 ÷ cores, ``actual`` the wall time, ``ratio`` their quotient;
* ``cpu``: the CPU time of all the process's threads, and ``cores got`` = cpu ÷ actual — how
  much of the machine the run had (on a shared machine, less than ``cores``).

Rows: ``serial`` (no pool: one derivation at a time, the figure before this issue's pool) and
``pool`` (the batch's derivations on the pool).  The machine is shared: the load average
before and after is printed with the rows.

Then, whether the derivations leave the GIL free (what lets a thread pool run them side by
side): the pace a pure-Python thread keeps while Argon2id, scrypt, and a GIL-holding control
run in another thread.

    python bench/kdf.py                 # 30 lines, 2 months
    python bench/kdf.py --lines 40 --json out.json
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from matome.application._derive import DerivationPool
from matome.cli import DEFAULT_BATCH
from matome.credentials import PRODUCTION, Hasher
from matome.engine import Engine
from matome.generate import generate_log
from matome.interchange import apply_lines, log_lines


def one_derivation(samples: int) -> float:
    """The median time of one production hash, alone on the machine's load."""
    hasher = Hasher(PRODUCTION)
    times = []
    for i in range(samples):
        start = time.perf_counter()
        hasher.hash(f"Sample{i:04d}")
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def gil_kept(work: Callable[[], object], seconds: float = 1.0) -> float:
    """The share of its own pace a pure-Python thread keeps while ``work`` runs in a loop in
    another thread: near 1 (or near what the machine's load leaves it) when ``work`` releases
    the GIL, near 0 when it holds it (a C call that keeps the GIL for ~50 ms blocks every
    other thread that long)."""

    def spin(stop: threading.Event, out: list[int]) -> None:
        n = 0
        while not stop.is_set():
            n += 1
        out.append(n)

    def paced(during: Callable[[], None]) -> float:
        stop, out = threading.Event(), list[int]()
        spinner = threading.Thread(target=spin, args=(stop, out))
        start = time.perf_counter()
        spinner.start()
        during()
        stop.set()
        spinner.join()
        return out[0] / (time.perf_counter() - start)

    def busy() -> None:
        end = time.perf_counter() + seconds
        while time.perf_counter() < end:
            work()

    alone = paced(lambda: time.sleep(seconds))
    return paced(busy) / alone


def run(log: Path, store: Path, batch: int, workers: int | None) -> tuple[int, float, float, int]:
    """Apply ``log`` to a fresh store; (derivations, wall seconds, CPU seconds of all the
    process's threads, commands)."""
    engine = Engine.open(str(store), kdf=PRODUCTION)
    try:
        service = engine._commands  # the command service: the pool is its knob
        service.pool = None if workers == 0 else DerivationPool(service.hasher, workers)
        hasher = service.hasher
        before = hasher.derivations
        start, cpu = time.perf_counter(), time.process_time()
        commands = 0
        with log.open("rb") as f:
            taken = list(log_lines(f))
        for i in range(0, len(taken), batch):
            commands += len(apply_lines(engine, taken[i : i + batch]))
        wall, cpu = time.perf_counter() - start, time.process_time() - cpu
        if service.pool is not None:
            service.pool.close()
        return hasher.derivations - before, wall, cpu, commands
    finally:
        engine.close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--lines", type=int, default=30, help="access lines generated")
    parser.add_argument("--months", type=int, default=2)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--batch", type=int, default=DEFAULT_BATCH)
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--samples", type=int, default=7)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args(argv)

    rows: list[dict[str, Any]] = []
    load = [os.getloadavg()[0]]
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        log = folder / "cold.jsonl"
        with log.open("w") as out:
            for body in generate_log(args.lines, args.months, seed=args.seed):
                out.write(json.dumps(body, ensure_ascii=False) + "\n")
        t1 = one_derivation(args.samples)
        for name, workers in (("serial", 0), ("pool", args.workers)):
            derivations, wall, cpu, commands = run(
                log, folder / f"{name}.sqlite", args.batch, workers
            )
            cores = max(1, workers)
            expected = derivations * t1 / cores
            rows.append(
                {
                    "run": name,
                    "commands": commands,
                    "derivations": derivations,
                    "t1": t1,
                    "cores": cores,
                    "expected": expected,
                    "actual": wall,
                    "cpu": cpu,
                    "ratio": wall / expected if expected else float("nan"),
                }
            )
    load.append(os.getloadavg()[0])
    print(
        f"cold log: {args.lines} lines x {args.months} months, production KDF {PRODUCTION}, "
        f"batch {args.batch}; load average {load[0]:.2f} -> {load[1]:.2f} "
        f"on {os.cpu_count()} cores"
    )
    print(
        f"{'run':8}{'commands':>9}{'derivations':>12}{'t1 ms':>8}{'cores':>6}"
        f"{'expected s':>11}{'actual s':>10}{'ratio':>7}{'cpu s':>7}{'cores got':>10}"
    )
    for r in rows:
        print(
            f"{r['run']:8}{r['commands']:>9}{r['derivations']:>12}{r['t1'] * 1000:>8.1f}"
            f"{r['cores']:>6}{r['expected']:>11.2f}{r['actual']:>10.2f}{r['ratio']:>7.2f}"
            f"{r['cpu']:>7.2f}{r['cpu'] / r['actual']:>10.2f}"
        )
    hasher = Hasher(PRODUCTION)
    checks = {
        "argon2id (production)": lambda: hasher.hash("Sample00"),
        "scrypt N=2^15 r=8 p=3 (before)": lambda: hashlib.scrypt(
            b"Sample00", salt=bytes(16), n=2**15, r=8, p=3, maxmem=2**26
        ),
        "control: sum(range()) holds the GIL": lambda: sum(range(2_000_000)),
    }
    gil = {name: gil_kept(work) for name, work in checks.items()}
    print("pace a pure-Python thread keeps beside each (1.0 = GIL released, load permitting):")
    for name, kept in gil.items():
        print(f"  {name:40}{kept:6.2f}")
    if args.json is not None:
        args.json.write_text(
            json.dumps({"rows": rows, "load": load, "gil_kept": gil}, indent=2) + "\n"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
