"""Mixed concurrency: every command and every query at once, on one store.

The reliability issue's promise: threads on one :class:`~matome.engine.Engine`, and several OS
processes on one store (SQLite file, PostgreSQL schema), mixing every command of the contract
and every query, never see an error other than a :class:`~matome.errors.MatomeError` — and of
the store's failures only ``busy``, after bounded retries —, lose no event, break no invariant,
and leave views equal to a rebuild.

The workload is seeded: each worker draws its operations from ``random.Random(seed)``.  Business
time follows the wall clock (``SPEED`` days of business time per second), so a run of a few
seconds crosses months: purchases, cancellations and refunds land in months that other workers
close meanwhile with ``issue_bills``.  Racing commands that lose are decided again by the
engine and may then be refused (a command now out of time order, a month now closed): those
are ordinary refusals and are only counted.

After the run, the history itself is judged, read back from the store by a fresh engine:

* every caller got a result or a ``MatomeError`` (anything else is a failure, with its
  traceback); ``busy`` escapes only after ``BUSY_RETRIES`` retries by the caller;
* no event lost or invented: the receipts the callers were given are exactly the stored
  purchases; accepted cancellations, refunds and registrations are exactly the stored ones;
* at every version of every line, the sum of its Passport IDs' limits ≤ its cap (§3);
* after every purchase, the Passport ID's spend in that month ≤ its limit (§3);
* in commit order, no purchase after its line's regulation and before its lifting (§5), and no
  event dated in a month already closed (§7);
* every accepted purchase is charged in its month's bill (a monthly service bought again in
  one month is charged once: the month's earliest subscription carries it), and each bill's
  subtotal is the sum of its rows and of its statement;
* the views kept up to date while the workers ran equal a rebuild from the log;
* ``matome verify`` (a separate process) says the history is intact.
"""

from __future__ import annotations

import contextlib
import io
import multiprocessing
import queue
import random
import subprocess
import sys
import threading
import time
import traceback
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from matome import cli
from matome.aggregates.line import AccessLine, project_line
from matome.aggregates.passport import Passport, project_passport
from matome.commands import COMMANDS, parse_command
from matome.engine import Engine
from matome.errors import Busy, MatomeError
from matome.events import ledger as ledger_ev
from matome.events import subscription as sub_ev
from matome.events.base import DomainEvent
from matome.values import TOKYO, YearMonth
from matome.wire import to_json

#: End to end and seconds long: run by CI (``pytest -m 'system and not slow'``), not by a
#: plain ``pytest``.
pytestmark = pytest.mark.system

# ---------------------------------------------------------------------------------------------
# The world every worker starts from

#: One PBKDF2 round, as in every test (tests.conftest is not imported: spawned processes
#: import this module, and should not pay for Hypothesis).
TEST_ITERATIONS = 1
PW = "Pass1234"
WRONG_PW = "Wrong000"
SETUP_AT = datetime(2024, 1, 5, 10, 0, tzinfo=TOKYO)
#: Business time of a worker's first command; it then follows the wall clock.
BASE = datetime(2024, 1, 10, 9, 0, tzinfo=TOKYO)
#: Business days per wall-clock second: a three-second run spans two months.
SPEED = 20.0
#: How often a caller retries a command answered ``busy`` before giving up (and counting it).
BUSY_RETRIES = 5
#: An operation that takes longer than this (on a store nobody else uses) has stalled.
STALL_SECONDS = 10.0
#: (customer ID, operator); two lines of each operator.
LINES = (
    ("CAF0000000001", "west"),
    ("CAF0000000002", "west"),
    ("COP00000003", "east"),
    ("COP00000004", "east"),
)
LINE_CAP = 6000
PASSPORT_LIMIT = 2000
#: (provider, service, pricing, price)
SERVICES = (
    ("P1", "m1", "monthly", 300),
    ("P1", "m2", "monthly", 500),
    ("P1", "i1", "per_purchase", 100),
    ("P2", "m3", "monthly", 200),
    ("P2", "i2", "per_purchase", 250),
)
MONTHLY = tuple(s for s in SERVICES if s[2] == "monthly")
ITEMS = tuple(s for s in SERVICES if s[2] == "per_purchase")
#: Failures of the store that a healthy store under concurrency must never report.
STORE_FAILURES = ("store_unavailable", "store_not_found")
APPLICANT = {"name": "Yamada Taro", "phone": "06-1234-5678", "contract_holder": True}

#: Events that are not dated in the month they change (the calendar and the billing run).
UNDATED_TOPICS = (
    "matome.calendar.MonthsClosed",
    "matome.billing.BillingRunCompleted",
    "matome.bill.BillIssued",
    "matome.idempotency.KeyBound",
)


def access_key(customer_id: str) -> str:
    return f"Ak3y{customer_id[-4:]}"


def initial_passports() -> dict[str, str]:
    """Passport ID → its line: two per line."""
    return {f"u{i}.{k}": cid for i, (cid, _) in enumerate(LINES, start=1) for k in (1, 2)}


def setup_log() -> list[dict[str, Any]]:
    """The commands that build the world, all at :data:`SETUP_AT`."""
    at = SETUP_AT.isoformat()
    log: list[dict[str, Any]] = []
    for provider in sorted({s[0] for s in SERVICES}):
        log.append(
            {
                "command": "register_provider",
                "provider": provider,
                "name": f"{provider} Co.",
                "contact": "0120-000-111",
                "goods": "information",
            }
        )
    for provider, svc, pricing, price in SERVICES:
        log.append(
            {
                "command": "list_service",
                "provider": provider,
                "service": svc,
                "name": f"{svc} service",
                "pricing": pricing,
                "price": price,
            }
        )
    for i, (cid, operator) in enumerate(LINES, start=1):
        log.append(
            {
                "command": "open_line",
                "customer_id": cid,
                "operator": operator,
                "kind": "hikari_next",
                "access_key": access_key(cid),
                "line_limit": LINE_CAP,
                "billing": {"method": "customer_number", "number": f"00{i:08d}"},
            }
        )
    for pid, cid in initial_passports().items():
        log.append(register(pid, cid, PASSPORT_LIMIT))
    for operator in ("east", "west"):
        log.append(
            {
                "command": "set_fee",
                "operator": operator,
                "effective_from": "2024-01",
                "flat_fee": 20,
            }
        )
    return [{**entry, "at": at} for entry in log]


def register(pid: str, cid: str, limit: int) -> dict[str, Any]:
    return {
        "command": "register_passport",
        "customer_id": cid,
        "access_key": access_key(cid),
        "passport_id": pid,
        "password": PW,
        "email": f"{pid}@example.jp",
        "applicant": APPLICANT,
        "limit": limit,
        "line_auth": False,
    }


def build_world(engine: Engine) -> None:
    for entry in setup_log():
        engine.execute(parse_command(entry))


# ---------------------------------------------------------------------------------------------
# What the workers were told


@dataclass
class Tally:
    """One worker's outcomes (picklable: processes send it back to the test)."""

    worker: int
    outcomes: Counter[str] = field(default_factory=Counter)  # "operation:code"
    failures: list[str] = field(default_factory=list)
    busy_retries: int = 0
    busy_gave_up: int = 0
    receipts: dict[str, str] = field(default_factory=dict)  # accepted purchase → pricing
    cancelled: list[str] = field(default_factory=list)  # accepted customer cancellations
    refunds: int = 0
    registered: list[str] = field(default_factory=list)
    slowest: float = 0.0  # seconds

    def count(self, operation: str, code: str) -> None:
        self.outcomes[f"{operation}:{code}"] += 1

    @property
    def operations(self) -> int:
        return sum(self.outcomes.values())


@dataclass
class Shared:
    """What the workers of one process know of the world (guarded by ``lock``)."""

    lock: threading.Lock = field(default_factory=threading.Lock)
    lines: list[str] = field(default_factory=lambda: [cid for cid, _ in LINES])
    passports: dict[str, str] = field(default_factory=initial_passports)
    monthly: list[str] = field(default_factory=list)  # receipts of monthly subscriptions
    receipts: list[str] = field(default_factory=list)  # every accepted receipt

    def pick_line(self, rng: random.Random) -> str:
        with self.lock:
            return rng.choice(self.lines)

    def pick_passport(self, rng: random.Random) -> tuple[str, str]:
        with self.lock:
            pid = rng.choice(sorted(self.passports))
            return pid, self.passports[pid]

    def pick_receipt(self, rng: random.Random, *, monthly: bool) -> str | None:
        with self.lock:
            pool = self.monthly if monthly else self.receipts
            return rng.choice(pool) if pool else None


class Clock:
    """Business time: :data:`BASE` at ``epoch`` (a wall-clock time), then ``SPEED`` days a
    second.  Processes given the same epoch share one clock."""

    def __init__(self, epoch: float) -> None:
        self.epoch = epoch

    def now(self) -> datetime:
        return BASE + timedelta(days=(time.time() - self.epoch) * SPEED)


# ---------------------------------------------------------------------------------------------
# The workload


class Worker:
    """One thread of the workload: a seeded stream of commands and queries on ``engine``."""

    def __init__(
        self, engine: Engine, shared: Shared, clock: Clock, worker: int, seed: int
    ) -> None:
        self.engine = engine
        self.shared = shared
        self.clock = clock
        self.rng = random.Random(seed)
        self.tally = Tally(worker)
        self.serial = 0
        self.operations: list[tuple[Callable[[], None], int]] = [
            (self.buy_item, 22),
            (self.buy_monthly, 12),
            (self.buy_with_wrong_password, 2),
            (self.cancel, 6),
            (self.refund, 4),
            (self.change_passport_limit, 4),
            (self.change_line_limit, 2),
            (self.regulate_line, 2),
            (self.lift_regulation, 3),
            (self.register_passport, 3),
            (self.delete_passport, 1),
            (self.change_passport_details, 1),
            (self.reset_password, 1),
            (self.erase_personal_data, 1),
            (self.set_notification, 1),
            (self.change_billing, 1),
            (self.change_line, 1),
            (self.open_line, 1),
            (self.register_provider, 1),
            (self.list_service, 1),
            (self.set_fee, 1),
            (self.issue_bills, 2),
            (self.query_bill, 5),
            (self.query_statement, 3),
            (self.query_provider_totals, 2),
            (self.query_settlement, 2),
            (self.query_contacts, 1),
            (self.query_continuity, 1),
            (self.query_status, 2),
            (self.query_audit, 2),
            (self.query_states, 2),
            (self.query_verify, 0),  # once per worker, at the start (it reads everything)
        ]

    # Running

    def run(self, seconds: float) -> Tally:
        """Every operation once (shuffled), then weighted random ones for ``seconds``."""
        deadline = time.monotonic() + seconds
        first = [op for op, _ in self.operations]
        self.rng.shuffle(first)
        ops = [op for op, _ in self.operations]
        weights = [w for _, w in self.operations]
        while True:
            op = first.pop() if first else self.rng.choices(ops, weights)[0]
            started = time.monotonic()
            op()
            took = time.monotonic() - started
            self.tally.slowest = max(self.tally.slowest, took)
            if took > STALL_SECONDS:
                # A stall (a lock waited out to its timeout) is a failure; stop this worker
                # so that the test reports it in seconds, not minutes.
                self.tally.failures.append(f"{op.__name__} stalled for {took:.1f}s")
                return self.tally
            if not first and time.monotonic() >= deadline:
                return self.tally

    def unique(self) -> int:
        self.serial += 1
        return self.serial

    def command(self, body: dict[str, Any]) -> dict[str, Any] | None:
        """Execute one command-log object, dated now; its result, or ``None`` if refused."""
        body = {**body, "at": self.clock.now().isoformat()}
        name = body["command"]
        for attempt in range(BUSY_RETRIES + 1):
            try:
                result: dict[str, Any] = self.engine.execute(parse_command(body)).to_json()
            except Busy:
                self.tally.busy_retries += 1
                time.sleep(0.005 * (attempt + 1) * (1 + self.rng.random()))
                continue
            except MatomeError as e:
                self.refused(name, e)
                return None
            except Exception:
                self.tally.count(name, "FAILURE")
                self.tally.failures.append(f"{name} {body}:\n{traceback.format_exc()}")
                return None
            self.tally.count(name, "ok")
            return result
        self.tally.count(name, "busy")
        self.tally.busy_gave_up += 1
        return None

    def refused(self, name: str, error: MatomeError) -> None:
        """A refusal is counted; a failure of the store other than ``busy`` is a failure."""
        self.tally.count(name, error.code)
        if error.code in STORE_FAILURES:
            self.tally.failures.append(f"{name}: {error!r}\n{traceback.format_exc()}")

    def query(self, name: str, ask: Callable[[], Any]) -> None:
        for attempt in range(BUSY_RETRIES + 1):
            try:
                answer = ask()
                to_json(answer) if answer is not None and not isinstance(answer, tuple) else None
            except Busy:
                self.tally.busy_retries += 1
                time.sleep(0.005 * (attempt + 1))
                continue
            except MatomeError as e:
                self.refused(name, e)
                return
            except Exception:
                self.tally.count(name, "FAILURE")
                self.tally.failures.append(f"{name}:\n{traceback.format_exc()}")
                return
            self.tally.count(name, "ok")
            return
        self.tally.count(name, "busy")
        self.tally.busy_gave_up += 1

    def month(self) -> YearMonth:
        """This month or the one before (the latter is often closed)."""
        now = YearMonth.of(self.clock.now())
        return now if self.rng.random() < 0.6 else now.previous()

    # Purchases and what follows them

    def _buy(self, service: tuple[str, str, str, int], password: str) -> None:
        pid, cid = self.shared.pick_passport(self.rng)
        provider, svc, pricing, _ = service
        body: dict[str, Any] = {
            "command": "purchase",
            "passport_id": pid,
            "password": password,
            "provider": provider,
            "service": svc,
        }
        if pricing == "per_purchase":
            body["quantity"] = self.rng.randint(1, 3)
        if self.rng.random() < 0.5:
            body["presented_line"] = cid
        result = self.command(body)
        if result is None:
            return
        receipt = result["receipt"]
        self.tally.receipts[receipt] = pricing
        with self.shared.lock:
            self.shared.receipts.append(receipt)
            if pricing == "monthly":
                self.shared.monthly.append(receipt)

    def buy_item(self) -> None:
        self._buy(self.rng.choice(ITEMS), PW)

    def buy_monthly(self) -> None:
        self._buy(self.rng.choice(MONTHLY), PW)

    def buy_with_wrong_password(self) -> None:
        self._buy(self.rng.choice(SERVICES), WRONG_PW)

    def cancel(self) -> None:
        receipt = self.shared.pick_receipt(self.rng, monthly=True)
        if receipt is None:
            self.buy_monthly()
            return
        if self.command({"command": "cancel", "receipt": receipt, "password": PW}) is not None:
            self.tally.cancelled.append(receipt)

    def refund(self) -> None:
        receipt = self.shared.pick_receipt(self.rng, monthly=False)
        if receipt is None:
            self.buy_item()
            return
        body = {"command": "refund", "receipt": receipt, "amount": 50, "reason": "返金"}
        if self.command(body) is not None:
            self.tally.refunds += 1

    # The line holder's commands

    def change_passport_limit(self) -> None:
        pid, cid = self.shared.pick_passport(self.rng)
        limit = self.rng.choice([500, 1000, 1500, 2000, 3000])
        self.command(
            {
                "command": "change_passport_limit",
                "passport_id": pid,
                "access_key": access_key(cid),
                "limit": limit,
            }
        )

    def register_passport(self) -> None:
        cid = self.shared.pick_line(self.rng)
        pid = f"w{self.tally.worker}.n{self.unique()}"
        if self.command(register(pid, cid, self.rng.choice([300, 500, 1000]))) is not None:
            self.tally.registered.append(pid)
            with self.shared.lock:
                self.shared.passports[pid] = cid

    def delete_passport(self) -> None:
        pid, cid = self.shared.pick_passport(self.rng)
        if pid in initial_passports() and self.rng.random() < 0.8:
            return  # keep the first IDs buying most of the time
        self.command(
            {"command": "delete_passport", "passport_id": pid, "access_key": access_key(cid)}
        )

    def change_passport_details(self) -> None:
        pid, cid = self.shared.pick_passport(self.rng)
        self.command(
            {
                "command": "change_passport_details",
                "passport_id": pid,
                "access_key": access_key(cid),
                "email": f"new{self.unique()}.{pid}@example.jp",
            }
        )

    def set_notification(self) -> None:
        cid = self.shared.pick_line(self.rng)
        self.command(
            {
                "command": "set_notification",
                "customer_id": cid,
                "access_key": access_key(cid),
                "provider": self.rng.choice(["P1", "P2"]),
                "notify": self.rng.random() < 0.5,
                "consent": True,
                "channel": "web",
            }
        )

    # The operator's commands

    def change_line_limit(self) -> None:
        cid = self.shared.pick_line(self.rng)
        limit = self.rng.choice([3000, 4000, LINE_CAP, 8000])
        self.command({"command": "change_line_limit", "customer_id": cid, "line_limit": limit})

    def regulate_line(self) -> None:
        self.command({"command": "regulate_line", "customer_id": self.shared.pick_line(self.rng)})

    def lift_regulation(self) -> None:
        cid = self.shared.pick_line(self.rng)
        self.command({"command": "lift_regulation", "customer_id": cid, "channel": "written"})

    def reset_password(self) -> None:
        pid, _ = self.shared.pick_passport(self.rng)
        self.command(
            {"command": "reset_password", "passport_id": pid, "password": PW, "channel": "phone"}
        )

    def erase_personal_data(self) -> None:
        pid, _ = self.shared.pick_passport(self.rng)
        self.command(
            {"command": "erase_personal_data", "passport_id": pid, "reason": "本人からの請求"}
        )

    def change_billing(self) -> None:
        cid = self.shared.pick_line(self.rng)
        self.command(
            {
                "command": "change_billing",
                "customer_id": cid,
                "billing": {
                    "method": "customer_number",
                    "number": f"00{self.rng.randrange(10**8):08d}",
                },
                "reason": "customer_number",
            }
        )

    def change_line(self) -> None:
        cid = self.shared.pick_line(self.rng)
        change = self.rng.choice(["relocation", "rename"])
        self.command({"command": "change_line", "customer_id": cid, "change": change})

    def open_line(self) -> None:
        cid = f"CAF{self.tally.worker:04d}{self.unique():06d}"
        body = {
            "command": "open_line",
            "customer_id": cid,
            "operator": "west",
            "kind": "hikari_light",
            "access_key": access_key(cid),
            "line_limit": 2000,
            "billing": {"method": "phone_bill", "number": "06-1234-5678", "cycle_start_day": 1},
        }
        if self.command(body) is not None:
            with self.shared.lock:
                self.shared.lines.append(cid)

    def register_provider(self) -> None:
        code = f"Q{self.tally.worker}x{self.unique()}"
        self.command(
            {
                "command": "register_provider",
                "provider": code,
                "name": f"{code} Co.",
                "contact": "0120-222-333",
                "goods": self.rng.choice(["information", "physical"]),
            }
        )

    def list_service(self) -> None:
        provider = self.rng.choice(["P1", "P2"])
        self.command(
            {
                "command": "list_service",
                "provider": provider,
                "service": f"s{self.tally.worker}x{self.unique()}",
                "name": "extra",
                "pricing": self.rng.choice(["monthly", "per_purchase"]),
                "price": self.rng.choice([100, 200]),
            }
        )

    def set_fee(self) -> None:
        self.command(
            {
                "command": "set_fee",
                "operator": self.rng.choice(["east", "west"]),
                "effective_from": str(YearMonth.of(self.clock.now()).next()),
                "flat_fee": self.rng.choice([20, 30, 40]),
            }
        )

    def issue_bills(self) -> None:
        month = YearMonth.of(self.clock.now()).previous()
        self.command({"command": "issue_bills", "month": str(month)})

    # Queries

    def query_bill(self) -> None:
        cid, month = self.shared.pick_line(self.rng), self.month()
        self.query("bill", lambda: self.engine.bill(cid, month))

    def query_statement(self) -> None:
        cid, month = self.shared.pick_line(self.rng), self.month()
        self.query("statement", lambda: self.engine.statement(cid, month, per_page=20))

    def query_provider_totals(self) -> None:
        month = self.month()
        self.query("provider_totals", lambda: self.engine.provider_totals(month))

    def query_settlement(self) -> None:
        month = self.month()
        self.query("settlement", lambda: self.engine.settlement(month))

    def query_contacts(self) -> None:
        cid = self.shared.pick_line(self.rng)
        self.query("provider_contacts", lambda: self.engine.provider_contacts(cid))

    def query_continuity(self) -> None:
        self.query("continuity", lambda: self.engine.continuity())

    def query_status(self) -> None:
        cid = self.shared.pick_line(self.rng)
        self.query("usage_status", lambda: self.engine.usage_status(cid))

    def query_audit(self) -> None:
        cid, month = self.shared.pick_line(self.rng), self.month()
        self.query("audit", lambda: self.engine.audit(cid, month))

    def query_states(self) -> None:
        pid, cid = self.shared.pick_passport(self.rng)
        receipt = self.shared.pick_receipt(self.rng, monthly=False)
        self.query("line", lambda: self.engine.line(cid))
        self.query("passport", lambda: self.engine.passport(pid))
        if receipt is not None:
            self.query("subscription", lambda: self.engine.subscription(receipt))
        self.query("closed_through", lambda: self.engine.closed_through())

    def query_verify(self) -> None:
        self.query("verify", lambda: self.engine.verify())


def run_workers(
    engine: Engine,
    threads: int,
    seconds: float,
    seed: int,
    *,
    first_worker: int = 0,
    epoch: float | None = None,
) -> list[Tally]:
    """``threads`` workers on ``engine``, released together, for ``seconds``."""
    shared = Shared()
    barrier = threading.Barrier(threads)
    clock = Clock(time.time() if epoch is None else epoch)
    tallies: list[Tally] = []
    workers = [
        Worker(engine, shared, clock, first_worker + i, seed * 1000 + first_worker + i)
        for i in range(threads)
    ]

    def start(worker: Worker) -> None:
        barrier.wait()
        try:
            tallies.append(worker.run(seconds))
        except BaseException:  # the workload itself broke: report it as a failure
            worker.tally.failures.append(f"worker crashed:\n{traceback.format_exc()}")
            tallies.append(worker.tally)

    pool = [threading.Thread(target=start, args=(w,), daemon=True) for w in workers]
    for t in pool:
        t.start()
    for t in pool:
        t.join(seconds + 120)
    assert not any(t.is_alive() for t in pool), "workers still running two minutes late"
    return tallies


# ---------------------------------------------------------------------------------------------
# Processes


def process_main(
    db: str, index: int, threads: int, seconds: float, seed: int, barrier: Any, results: Any
) -> None:
    """One OS process of the workload: its own engine on ``db``, ``threads`` workers."""
    tallies: list[Tally]
    try:
        engine = Engine.open(db, hash_iterations=TEST_ITERATIONS)
        try:
            barrier.wait(timeout=60)
            epoch = time.time()
            tallies = run_workers(
                engine, threads, seconds, seed, first_worker=index * 10, epoch=epoch
            )
        finally:
            engine.close()
    except BaseException:
        crashed = Tally(index * 10)
        crashed.failures.append(f"process {index} crashed:\n{traceback.format_exc()}")
        tallies = [crashed]
    results.put(tallies)


def run_processes(db: str, processes: int, threads: int, seconds: float, seed: int) -> list[Tally]:
    """``processes`` spawned processes on ``db``, each with ``threads`` workers."""
    ctx = multiprocessing.get_context("spawn")
    barrier = ctx.Barrier(processes)
    results = ctx.Queue()
    procs = [
        ctx.Process(target=process_main, args=(db, i + 1, threads, seconds, seed, barrier, results))
        for i in range(processes)
    ]
    for p in procs:
        p.start()
    tallies: list[Tally] = []
    try:
        for _ in procs:
            tallies += results.get(timeout=seconds + 120)
    except queue.Empty:
        pytest.fail("a workload process sent no result (crashed or hung)")
    finally:
        for p in procs:
            p.join(30)
            if p.is_alive():
                p.kill()
    assert [p.exitcode for p in procs] == [0] * processes
    return tallies


# ---------------------------------------------------------------------------------------------
# Judging the history


@dataclass
class Verdict:
    events: int = 0
    purchases: int = 0
    bills_checked: int = 0
    violations: list[str] = field(default_factory=list)


def check_callers(tallies: Sequence[Tally]) -> None:
    failures = [f for t in tallies for f in t.failures]
    if failures:
        kinds = Counter(f.splitlines()[0][:200] for f in failures)
        pytest.fail(
            f"{len(failures)} failures (a non-matome error, a store failure other than busy, "
            "or a stall):\n"
            + "\n".join(f"  {n} x {k}" for k, n in kinds.most_common(10))
            + f"\nthe first in full:\n{failures[0]}"
        )
    operations = sum(t.operations for t in tallies)
    gave_up = sum(t.busy_gave_up for t in tallies)
    assert gave_up <= max(3, operations // 20), f"busy after retries {gave_up}/{operations} times"
    outcomes = sum((t.outcomes for t in tallies), Counter[str]())
    tried = {k.split(":")[0] for k in outcomes}
    # Every registered command (the setup log's and the workers'), and every query.
    every = set(COMMANDS) | {
        "bill", "statement", "provider_totals", "settlement", "provider_contacts", "continuity",
        "usage_status", "audit", "verify",
    }  # fmt: skip
    assert every <= tried, f"never tried: {sorted(every - tried)}"
    accepted = {k.split(":")[0] for k, n in outcomes.items() if k.endswith(":ok") and n}
    # Enough got through for the checks below to mean something.
    for name in ("purchase", "cancel", "refund", "issue_bills", "bill", "audit"):
        assert name in accepted, f"no {name} was accepted: {outcomes}"


def _events(engine: Engine) -> Iterator[tuple[int, str, DomainEvent]]:
    start = 1
    while True:
        batch = engine.internals.recorder.select_notifications(start=start, limit=1000)
        for n in batch:
            event = engine.internals.mapper.to_domain_event(n)
            assert isinstance(event, DomainEvent)
            yield n.id, n.topic, event
        if len(batch) < 1000:
            return
        start = batch[-1].id + 1


def check_history(engine: Engine, tallies: Sequence[Tally]) -> Verdict:
    """Judge the stored history against the callers' outcomes and the invariants."""
    verdict = Verdict()
    bad = verdict.violations
    lines: dict[Any, AccessLine | None] = {}
    passports: dict[Any, Passport | None] = {}
    regulated: set[Any] = set()
    line_of: dict[str, Any] = {}  # customer ID → line stream
    closed: YearMonth | None = None
    purchased: dict[str, sub_ev.Purchased] = {}
    customer_cancels: list[str] = []
    refunds = registrations = 0
    for nid, topic, event in _events(engine):
        verdict.events += 1
        stream = event.originator_id
        if topic not in UNDATED_TOPICS and closed is not None and YearMonth.of(event.at) <= closed:
            bad.append(f"#{nid} {topic} dated {event.at} saved after {closed} was closed")
        if topic == "matome.calendar.MonthsClosed":
            assert isinstance(event, ledger_ev.MonthsClosed)
            closed = event.through if closed is None else max(closed, event.through)
        elif topic.startswith("matome.line."):
            state = project_line(lines.get(stream), [event])
            lines[stream] = state
            if state is not None:
                line_of[str(state.customer_id)] = stream
                if state.limit_sum > state.line_limit:
                    bad.append(
                        f"#{nid}: line {state.customer_id} ID limits {state.limit_sum} > cap"
                    )
            if topic == "matome.line.Regulated":
                regulated.add(stream)
            elif topic == "matome.line.RegulationLifted":
                regulated.discard(stream)
        elif topic.startswith("matome.passport."):
            passport = project_passport(passports.get(stream), [event])
            passports[stream] = passport
            if topic == "matome.passport.Registered":
                registrations += 1
            if topic == "matome.passport.HoldingAdded" and passport is not None:
                month = YearMonth.of(event.at)
                spend = passport.spend(month, once_per_month=True)
                if spend > passport.limit:
                    bad.append(f"#{nid}: {passport.passport_id} spends {spend} > {passport.limit}")
        elif isinstance(event, sub_ev.Purchased):
            purchased[event.receipt] = event
            if line_of.get(str(event.customer_id)) in regulated:
                bad.append(f"#{nid}: purchase {event.receipt} on regulated {event.customer_id}")
        elif isinstance(event, sub_ev.Cancelled) and event.reason == sub_ev.CancelReason.CUSTOMER:
            customer_cancels.append(str(event.originator_id))
        elif isinstance(event, sub_ev.Refunded):
            refunds += 1
    verdict.purchases = len(purchased)

    # No event lost or invented.
    given = {r for t in tallies for r in t.receipts}
    if given != set(purchased):
        missing = sorted(given - set(purchased))[:5]
        unannounced = sorted(set(purchased) - given)[:5]
        bad.append(
            f"receipts given {len(given)} != stored {len(purchased)}: missing {missing}, "
            f"unannounced {unannounced}"
        )
    cancels = sum(len(t.cancelled) for t in tallies)
    if cancels != len(customer_cancels):
        bad.append(f"{cancels} cancellations accepted, {len(customer_cancels)} stored")
    if sum(t.refunds for t in tallies) != refunds:
        bad.append(f"{sum(t.refunds for t in tallies)} refunds accepted, {refunds} stored")
    expected_registrations = len(initial_passports()) + sum(len(t.registered) for t in tallies)
    if registrations != expected_registrations:
        bad.append(f"{expected_registrations} registrations accepted, {registrations} stored")

    # Every accepted purchase is charged in its month's bill; bills add up.
    bills: dict[tuple[str, YearMonth], dict[str, Any]] = {}
    for receipt, event in sorted(purchased.items()):
        key = (str(event.customer_id), YearMonth.of(event.at))
        if key not in bills:
            bills[key] = check_bill(engine, *key, bad)
        charges = [c for c in bills[key]["charges"] if c.get("kind", "charge") == "charge"]
        if any(c["receipt"] == receipt for c in charges):
            continue
        same = [
            c
            for c in charges
            if c["pricing"] == "monthly"
            and (c["passport_id"], c["provider"], c["service"])
            == (str(event.passport_id), str(event.provider), str(event.service))
        ]
        if str(event.pricing) != "monthly" or not same:
            bad.append(f"purchase {receipt} ({event.pricing}) is not in its bill {key}")
    verdict.bills_checked = len(bills)
    return verdict


def check_bill(engine: Engine, cid: str, month: YearMonth, bad: list[str]) -> dict[str, Any]:
    bill: dict[str, Any] = to_json(engine.bill(cid, month))
    if sum(r["amount"] for r in bill["rows"]) != bill["subtotal"]:
        bad.append(f"bill {cid} {month}: rows do not add up to its subtotal")
    rows: list[dict[str, Any]] = []
    page = 1
    while True:
        statement = to_json(engine.statement(cid, month, page=page, per_page=500))
        rows += statement["rows"]
        if len(rows) >= statement["total"] or not statement["rows"]:
            break
        page += 1
    if sum(r["amount"] for r in rows) != bill["subtotal"]:
        bad.append(f"statement {cid} {month} does not add up to its bill")
    return bill


def check_views_and_verify(engine: Engine, db: str) -> None:
    """The views ``engine`` kept up to date equal a rebuild; ``matome verify`` says OK."""
    projection, _ = engine.internals.views
    projection.catch_up()
    incremental = projection.dump()
    projection.rebuild()
    rebuilt = projection.dump()
    differ = [t for t in rebuilt if rebuilt[t] != incremental.get(t)]
    assert differ == [], f"views kept up to date concurrently differ from a rebuild in {differ}"
    assert engine.verify().ok
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        code = cli.main(["verify", "--db", db])
    assert code == 0, out.getvalue()
    assert "OK" in out.getvalue()


def judge(db: str, tallies: Sequence[Tally], label: str, views: Engine | None = None) -> None:
    """Judge the callers' outcomes, the stored history, and the views (those of ``views``,
    the engine the workers shared, or else a fresh engine's)."""
    check_callers(tallies)
    engine = Engine.open(db, hash_iterations=TEST_ITERATIONS, create=False)
    try:
        verdict = check_history(engine, tallies)
        assert verdict.violations == [], "\n".join(verdict.violations[:20])
        check_views_and_verify(views or engine, db)
    finally:
        engine.close()
    outcomes = sum((t.outcomes for t in tallies), Counter[str]())
    refusals: Counter[str] = Counter()
    for key, n in outcomes.items():
        if not key.endswith(":ok"):
            refusals[key.split(":")[1]] += n
    print(
        f"\n[{label}] {len(tallies)} workers, {sum(t.operations for t in tallies)} operations "
        f"(slowest {max(t.slowest for t in tallies):.2f}s), {verdict.events} events, "
        f"{verdict.purchases} purchases, {verdict.bills_checked} bills checked; busy retries "
        f"{sum(t.busy_retries for t in tallies)}, busy after retries "
        f"{sum(t.busy_gave_up for t in tallies)}; refusals {dict(refusals.most_common())}"
    )


# ---------------------------------------------------------------------------------------------
# The tests


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def db(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return str(tmp_path / "matome.sqlite")
    url: str = request.getfixturevalue("pg_url")
    return url


def fresh_world(db: str, *, views: bool = False) -> None:
    """Build the world on ``db``; with ``views``, also catch its views up (so that workers
    start from a store in its steady state)."""
    engine = Engine.open(db, hash_iterations=TEST_ITERATIONS)
    try:
        build_world(engine)
        if views:
            engine.internals.views[0].catch_up()
    finally:
        engine.close()


THREADS = 6
SECONDS = 2.0


def test_threads_on_one_engine_mix_every_command_and_query(db: str) -> None:
    # Views caught up first (the steady state): the first catch-up of a store's views by
    # several at once has a test of its own (test_first_catch_up_of_the_views_at_once).
    fresh_world(db, views=True)
    engine = Engine.open(db, hash_iterations=TEST_ITERATIONS)
    try:
        tallies = run_workers(engine, THREADS, SECONDS, seed=20240601)
        # The views of the engine the threads shared, kept up to date under the race.
        judge(db, tallies, f"{THREADS} threads", views=engine)
    finally:
        engine.close()


def test_processes_on_one_store_mix_every_command_and_query(db: str) -> None:
    # Views caught up first, as above.
    fresh_world(db, views=True)
    tallies = run_processes(db, processes=3, threads=2, seconds=SECONDS, seed=20240602)
    judge(db, tallies, "3 processes x 2 threads")


@pytest.mark.slow
@pytest.mark.parametrize("seed", [1, 2, 3])
def test_long_mixed_run_of_threads_and_processes(db: str, seed: int) -> None:
    fresh_world(db, views=True)
    engine = Engine.open(db, hash_iterations=TEST_ITERATIONS)
    try:
        threads: list[Tally] = []
        runner = threading.Thread(
            target=lambda: threads.extend(run_workers(engine, 4, 20.0, seed, first_worker=90))
        )
        runner.start()
        tallies = run_processes(db, processes=3, threads=3, seconds=20.0, seed=seed)
        runner.join(200)
    finally:
        engine.close()
    judge(db, [*threads, *tallies], f"long seed {seed}")


# ---------------------------------------------------------------------------------------------
# Processes starting together on one PostgreSQL schema

#: A process that imports everything, says it is ready, waits for the signal, then opens the
#: store and uses it: ``python -c CHILD URL GO READY ACTION ARG``.
CHILD = r"""
import pathlib, sys, time
import psycopg, eventsourcing.postgres  # imported before the start: only opening is timed
from matome.engine import Engine
from matome.errors import MatomeError

url, go, ready, action, arg = sys.argv[1:]
engine = None
if action == "query":
    engine = Engine.open(url, hash_iterations=1, create=False)
    engine.views
pathlib.Path(ready).touch()
while not pathlib.Path(go).exists():
    time.sleep(0.002)
try:
    if action == "open":
        engine = Engine.open(url, hash_iterations=1)
        engine.register_provider(at="2024-01-04T09:00:00+09:00", provider=arg, name=arg,
                                 contact="0120-000-111", goods="information")
    print(len(engine.provider_totals("2024-01")))
except MatomeError as e:
    sys.exit(f"{e.code}: {e.message}")
finally:
    if engine is not None:
        engine.close()
"""


def start_together(url: str, tmp_path: Path, n: int, action: str) -> list[tuple[int, str]]:
    """``n`` processes doing ``action`` on ``url`` released at one instant; (exit, stderr)."""
    go = tmp_path / "go"
    ready = [tmp_path / f"ready{i}" for i in range(n)]
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", CHILD, url, str(go), str(ready[i]), action, f"S{i}"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        for i in range(n)
    ]
    try:
        deadline = time.monotonic() + 120
        while not all(r.exists() for r in ready):
            assert time.monotonic() < deadline, "the processes did not get ready"
            died = [p.stderr.read() for p in procs if p.poll() is not None and p.stderr]
            assert not died, f"a process died before the start:\n{died[0]}"
            time.sleep(0.01)
        go.touch()
        return [(p.wait(timeout=120), p.stderr.read() if p.stderr else "") for p in procs]
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
            if p.stderr:
                p.stderr.close()


@pytest.mark.postgres
@pytest.mark.parametrize("n", [8, pytest.param(20, marks=pytest.mark.slow)])
def test_processes_open_a_fresh_postgres_schema_at_once(
    pg_url: str, tmp_path: Path, n: int
) -> None:
    """Start-up (table creation) is serialised, so processes starting together all work —
    with the default settings, on a server with PostgreSQL's default 100 connections."""
    results = start_together(pg_url, tmp_path, n, "open")
    failed = [(code, err.strip()) for code, err in results if code]
    assert failed == [], f"{len(failed)} of {n} processes failed to start:\n{failed[0][1]}"
    engine = Engine.open(pg_url, hash_iterations=TEST_ITERATIONS, create=False)
    try:
        assert all(engine.provider(f"S{i}") is not None for i in range(n))
        projection, _ = engine.internals.views
        projection.catch_up()
        assert len(projection.dump()["providers"]) == n
    finally:
        engine.close()


@pytest.mark.postgres
@pytest.mark.parametrize("by", ["processes", "threads"])
def test_first_catch_up_of_the_views_at_once(pg_url: str, tmp_path: Path, by: str) -> None:
    """The first queries on a store whose views were never caught up all catch them up at
    once — 4 processes, or 4 threads of one engine: each event is applied exactly once, and
    every query answers."""
    fresh_world(pg_url)
    if by == "processes":
        results = start_together(pg_url, tmp_path, 4, "query")
        failed = [err.strip() for code, err in results if code]
    else:
        engine = Engine.open(pg_url, hash_iterations=TEST_ITERATIONS, create=False)
        failed = []
        barrier = threading.Barrier(4)

        def ask() -> None:
            barrier.wait()
            try:
                engine.provider_totals("2024-01")
            except MatomeError as e:
                failed.append(repr(e))

        askers = [threading.Thread(target=ask) for _ in range(4)]
        try:
            for t in askers:
                t.start()
            for t in askers:
                t.join(60)
        finally:
            engine.close()
    assert failed == [], f"{len(failed)} of 4 first queries failed:\n{failed[0]}"
    engine = Engine.open(pg_url, hash_iterations=TEST_ITERATIONS, create=False)
    try:
        projection, _ = engine.internals.views
        incremental = projection.dump()
        projection.rebuild()
        assert projection.dump() == incremental
    finally:
        engine.close()
