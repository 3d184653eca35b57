"""Crash-safety soak: SIGKILL ``matome run``, ``matome rebuild`` and the billing run many times
and check that nothing is lost or applied twice.

The harness is ``tests/reliability/crash.py`` (the same one the CI test
``tests/reliability/test_crash_safety.py`` runs, smaller).  For each store and scenario it
builds the store once with an uninterrupted ``matome run`` of a generated contract-2 log, then
kills and restarts ``matome`` at seeded random moments until the scenario has its kills, and
compares the result with the uninterrupted store: events (topic, stream, version, decoded
state minus the recorded time), every bill of every line and month, issued-bill digests,
wrong-password counts, views, ``verify``.

Scenarios:

* ``run-keys`` — every command keyed; after a kill ``matome run --resume``;
* ``run-resume`` — no keys; after a kill ``matome run --resume``;
* ``billing-keys`` / ``billing-resume`` / ``billing-again`` — kills aimed at the billing runs
  of the log's ``issue_bills`` lines, every command keyed, none, or all but ``issue_bills``;
  each completed by ``matome run --resume`` (contract 3: a keyed log is resumed, not run
  again from the top — a replayed password that no longer opens its ID is counted);
* ``rebuild`` — ``matome rebuild`` killed, then rebuilt again or caught up by a query.

Usage::

    python bench/soak.py                                 # 100 kills per scenario, both stores
    python bench/soak.py --kills 500 --lines 240 --store sqlite
    python bench/soak.py --scenarios run-resume,billing-resume --spawn --kills 30

It prints one row per scenario and store: kills survived, processes started, commands, bills
issued, events, and anything lost, doubled or otherwise different (must be nothing), and exits
1 if anything was.
"""

from __future__ import annotations

import argparse
import os
import random
import sys
import time
from collections.abc import Sequence
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.reliability.crash import (
    ForkServer,
    Launcher,
    LogSpec,
    Outcome,
    Reference,
    SpawnLauncher,
    Stores,
    crash_billing,
    crash_rebuild,
    crash_run,
    generate_log,
    reference,
    scratch_directory,
    write_variant,
)

SCENARIOS = (
    "run-keys",
    "run-resume",
    "billing-keys",
    "billing-resume",
    "billing-again",
    "rebuild",
)
#: The log variant each scenario runs: every command keyed, none, or all but issue_bills.
VARIANT = {
    "run-keys": "keys",
    "run-resume": "plain",
    "billing-keys": "keys",
    "billing-resume": "plain",
    "billing-again": "again",
    "rebuild": "plain",
}
DEFAULT_PG = os.environ.get("MATOME_TEST_PG", "postgresql://postgres@127.0.0.1:5432/test")


def soak(
    launcher: Launcher,
    stores: Stores,
    spec: LogSpec,
    scenarios: Sequence[str],
    kills: int,
    workdir: Path,
    seed: int,
) -> list[Outcome]:
    log = generate_log(spec)
    refs: dict[str, Reference] = {}
    outcomes = []
    for index, scenario in enumerate(scenarios):
        variant = VARIANT[scenario]
        if variant not in refs:
            path = write_variant(workdir / f"log-{variant}-{stores.kind}.jsonl", log, variant)
            refs[variant] = reference(launcher, stores, path, workdir)
        ref = refs[variant]
        rng = random.Random(seed * 100 + index)
        if scenario.startswith("run-"):
            out = crash_run(
                launcher, stores, ref, workdir, keyed=variant == "keys", kills=kills, rng=rng
            )
        elif scenario.startswith("billing-"):
            mode = scenario.removeprefix("billing-")
            out = crash_billing(launcher, stores, ref, workdir, mode=mode, kills=kills, rng=rng)
        else:
            out = crash_rebuild(launcher, stores, ref, workdir, kills=kills, rng=rng)
        outcomes.append(out)
        _print_row(out)
    return outcomes


_HEADER = (
    f"{'scenario':<16} {'store':<9} {'kills':>6} {'starts':>6} {'stores':>6} {'commands':>8} "
    f"{'bills':>7} {'events':>7} {'lost':>5} {'doubled':>7} {'other':>5} "
    f"{'wall s':>7} {'cpu s':>7}"
)


def _print_row(out: Outcome) -> None:
    print(
        f"{out.scenario:<16} {out.store:<9} {out.kills:>6} {out.starts:>6} "
        f"{out.trajectories:>6} {out.commands:>8} {out.bills:>7} {out.events:>7} "
        f"{out.lost:>5} {out.doubled:>7} {out.other:>5} "
        f"{out.seconds:>7.1f} {out.cpu:>7.1f}",
        flush=True,
    )


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--kills", type=int, default=100, help="kills per scenario (100)")
    parser.add_argument(
        "--lines", type=int, default=240, help="access lines: about the bills per run (240)"
    )
    parser.add_argument("--months", type=int, default=4, help="months of activity (4)")
    parser.add_argument("--activity", type=int, default=40, help="commands per month (40)")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument(
        "--store", choices=["sqlite", "postgres", "both"], default="both", help="(both)"
    )
    parser.add_argument("--pg", default=DEFAULT_PG, help=f"PostgreSQL server ({DEFAULT_PG})")
    parser.add_argument("--scenarios", default=",".join(SCENARIOS), help="comma-separated (all)")
    parser.add_argument(
        "--spawn",
        action="store_true",
        help="start a fresh interpreter per process (slower; default: a fork server)",
    )
    parser.add_argument("--dir", default=None, help="where the SQLite stores go (/dev/shm)")
    args = parser.parse_args(argv)
    scenarios = [s.strip() for s in args.scenarios.split(",") if s.strip()]
    unknown = sorted(set(scenarios) - set(SCENARIOS))
    if unknown:
        parser.error(f"unknown scenarios {unknown}; choose from {', '.join(SCENARIOS)}")
    spec = LogSpec(seed=args.seed, lines=args.lines, months=args.months, activity=args.activity)
    kinds = ["sqlite", "postgres"] if args.store == "both" else [args.store]
    launcher: Launcher = SpawnLauncher() if args.spawn else ForkServer()
    print(
        f"soak: {args.kills} kills per scenario; log: {args.lines} lines, {args.months} "
        f"months, {args.activity} commands a month, seed {args.seed}; {launcher.name} launcher"
    )
    print(_HEADER)
    outcomes: list[Outcome] = []
    started = time.monotonic()
    try:
        for kind in kinds:
            with scratch_directory() as scratch:
                workdir = Path(args.dir) if args.dir else scratch
                workdir.mkdir(parents=True, exist_ok=True)
                stores = Stores(kind, workdir, args.pg if kind == "postgres" else None)
                try:
                    outcomes += soak(
                        launcher, stores, spec, scenarios, args.kills, workdir, args.seed
                    )
                finally:
                    stores.close()
    finally:
        launcher.close()
    print(f"total: {sum(o.kills for o in outcomes)} kills in {time.monotonic() - started:.0f}s")
    failed = [o for o in outcomes if o.lost or o.doubled or o.other]
    for out in outcomes:
        for problem in out.problems:
            print(f"{out.scenario} on {out.store}: {problem}", file=sys.stderr)
    for out in outcomes:
        if out.states:
            where = ", ".join(f"{k}: {v}" for k, v in sorted(out.states.items()))
            print(f"{out.scenario} on {out.store}: kills left the store {where}")
    if failed:
        print(f"FAILED: {len(failed)} scenario(s) lost, doubled or changed something")
        return 1
    print("OK: nothing lost, nothing doubled")
    return 0


if __name__ == "__main__":
    sys.exit(main())
