"""The workload generator (``matome generate``): reproducible, contract 2, mostly accepted."""

from __future__ import annotations

import json
from collections import Counter

from matome.engine import Engine
from matome.generate import generate_log
from matome.interchange import apply_line
from matome.values import YearMonth


def test_the_same_seed_gives_the_same_log_and_another_seed_another() -> None:
    a = list(generate_log(20, 3, seed=5))
    assert a == list(generate_log(20, 3, seed=5))
    assert a != list(generate_log(20, 3, seed=6))


def test_the_log_is_in_business_time_order_and_keyed() -> None:
    log = list(generate_log(20, 3, seed=5))
    times = [body["at"] for body in log]
    assert times == sorted(times)
    assert all("key" in body for body in log)
    assert not any("key" in body for body in generate_log(5, 1, keys=False))


def test_a_generated_log_runs_mostly_accepted_with_every_kind_of_command() -> None:
    """The mix a billing month sees: purchases (monthly and per purchase, with quantities),
    cancellations, refunds, wrong passwords, limit changes, billing runs — and refusals only
    where life has them (over a limit, a wrong password)."""
    engine = Engine.open(":memory:", hash_iterations=1)
    log = list(generate_log(60, 4, seed=11, start=YearMonth(2024, 2)))
    results = [apply_line(engine, n, json.dumps(body)) for n, body in enumerate(log, start=1)]
    outcome = Counter("ok" if r["ok"] else r["error"]["code"] for r in results)
    assert outcome["ok"] / len(results) > 0.8, outcome
    kinds = Counter(body["command"] for body in log)
    for kind in ("purchase", "cancel", "issue_bills", "open_line", "register_passport"):
        assert kinds[kind], kinds
    assert any(body.get("quantity", 1) > 1 for body in log)
    assert outcome["wrong_password"] > 0
    engine.close()
