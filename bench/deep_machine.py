"""Run the engine-vs-model state machine long, and report examples, steps and time.

    python bench/deep_machine.py [--steps 20000] [--step-count 100] [--seed 0]

Runs BillingMachine under the ``deep`` profile until at least ``--steps`` rule steps have
been executed (several Hypothesis runs if needed), stopping at the first failure.
"""

from __future__ import annotations

import argparse
import sys
import time
from typing import Any, ClassVar

from hypothesis import HealthCheck, settings
from hypothesis.stateful import run_state_machine_as_test

from matome.testing.machine import BillingMachine


class Counting(BillingMachine):
    examples: ClassVar[int] = 0
    steps_total: ClassVar[int] = 0

    def __init__(self) -> None:
        super().__init__()
        Counting.examples += 1

    def apply(self, command: dict[str, Any]) -> dict[str, Any] | None:
        Counting.steps_total += 1
        return super().apply(command)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--steps", type=int, default=20_000)
    parser.add_argument("--step-count", type=int, default=100)
    parser.add_argument("--examples", type=int, default=500, help="examples per Hypothesis run")
    args = parser.parse_args(argv)
    start = time.monotonic()
    runs = 0
    while Counting.steps_total < args.steps:
        runs += 1
        run_state_machine_as_test(  # type: ignore[no-untyped-call, unused-ignore]  # untyped in Hypothesis
            Counting,
            settings=settings(
                max_examples=args.examples,
                stateful_step_count=args.step_count,
                deadline=None,
                suppress_health_check=list(HealthCheck),
                database=None,
            ),
        )
        elapsed = time.monotonic() - start
        print(
            f"run {runs}: {Counting.examples} examples, {Counting.steps_total} commands "
            f"applied to engine and model, {elapsed:.0f}s",
            flush=True,
        )
    elapsed = time.monotonic() - start
    print(
        f"deep run finished: {Counting.examples} examples, {Counting.steps_total} commands "
        f"(engine and model in lockstep), {elapsed:.0f}s, no disagreement"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
