"""Crash-safety harness: SIGKILL ``matome run``, ``matome rebuild`` and the billing run at random
moments, restart them, and compare the store with one built by an uninterrupted run.

Four parts, used by ``tests/reliability/test_crash_safety.py`` (small, CI-sized) and
``bench/soak.py`` (long):

* :func:`generate_log` — a seeded, realistic contract-2 command log.  It is written by driving
  an in-memory engine (the *oracle*) command by command, so the log can name the receipts the
  engine gave (cancels, refunds) and keep most commands acceptable, while still containing the
  refusals a real history has (wrong passwords and lockouts, limits, regulated lines, …).
* :class:`ForkServer` / :class:`SpawnLauncher` — start ``matome`` (``matome.cli.main``) as a
  separate OS process that the harness can ``SIGKILL``.  The fork server imports matome once
  and forks a child per start, so a restart costs milliseconds instead of a Python start-up
  (that is what lets a CI run afford hundreds of kills); the spawn launcher starts a fresh
  interpreter each time.  Both hash secrets with matome's cheap test KDF (the scheme is the
  same; production scrypt would spend half a second per password).
* :func:`snapshot` / :func:`differences` — what must be equal after a crash: every event
  (topic, stream, version, decoded state minus the recorded ``timestamp``), every bill of every
  line and month, the issued bills' digests (and one ``BillIssued`` per line and month), each
  Passport ID's wrong-password count and lock, the views, and ``verify``.
* the scenarios — :func:`crash_run`, :func:`crash_rebuild`, :func:`crash_billing` — each kills
  repeatedly at seeded random moments and returns a :class:`Outcome`.
"""

from __future__ import annotations

import contextlib
import json
import os
import random
import re
import resource
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Protocol

from matome.application.eventstore import event_to_json
from matome.engine import Engine
from matome.events.base import DomainEvent
from matome.events.bill import BillIssued
from matome.interchange import apply_line
from matome.values import TOKYO, YearMonth
from matome.wire import to_json

__all__ = [
    "DOUBLED",
    "KILLED",
    "LOST",
    "VARIANTS",
    "ForkServer",
    "HarnessError",
    "Launcher",
    "LogSpec",
    "Outcome",
    "Problem",
    "Reference",
    "Snapshot",
    "SpawnLauncher",
    "Stores",
    "crash_billing",
    "crash_rebuild",
    "crash_run",
    "differences",
    "follow",
    "generate_log",
    "log_commands",
    "reference",
    "scratch_directory",
    "snapshot",
    "write_variant",
]

#: Secrets are hashed with matome's cheap test KDF in every process the harness starts.
HASH_ITERATIONS = 1

Command = dict[str, Any]

# ---------------------------------------------------------------------------------------------
# 1. A realistic contract-2 command log


@dataclass(frozen=True)
class LogSpec:
    """The shape of a generated log.

    ``lines`` access lines are opened in the first month, each with a Passport ID and a
    monthly subscription, so every billing run issues about ``lines`` bills (a few lines end
    or are regulated on the way).  Each of the ``months`` later months begins with a few
    cancellations on the 1st and ``issue_bills`` for the month before; all but the last then
    carry ``activity`` commands drawn from the whole contract.  ``skip_issue`` names a month
    whose ``issue_bills`` is left out, so that the next one closes two months in one run.
    """

    seed: int = 1
    lines: int = 240
    months: int = 4
    activity: int = 40
    #: The month (1: the second of the log) whose ``issue_bills`` is left out (0: none).
    skip_issue: int = 2


_SERVICES: tuple[tuple[str, str, str, int], ...] = (
    ("A", "back", "monthly", 525),
    ("A", "news", "monthly", 300),
    ("A", "stamp", "per_purchase", 120),
    ("B", "game", "monthly", 980),
    ("B", "coin", "per_purchase", 100),
    ("G", "tea", "per_purchase", 1500),
)
_PROVIDERS = {"A": "information", "B": "information", "G": "physical"}
_WEST_KINDS = ("hikari_next", "hikari_light")
_EAST_KINDS = ("hikari_next", "hikari_light", "hikari_light_plus", "b_flets", "flets_adsl")
_HIKARI = ("hikari_next", "hikari_light", "hikari_light_plus")
WRONG_PASSWORD = "Wrong000"
WRONG_ACCESS_KEY = "Wrong123"

_ACTIONS: tuple[tuple[str, int], ...] = (
    ("purchase", 24),
    ("wrong_password", 6),
    ("lockout", 1),
    ("reset_password", 2),
    ("cancel", 7),
    ("cancel_wrong_password", 2),
    ("refund", 3),
    ("regulate_line", 2),
    ("lift_regulation", 2),
    ("change_line", 2),
    ("change_line_limit", 1),
    ("change_passport_limit", 2),
    ("change_passport_details", 1),
    ("delete_passport", 1),
    ("register_passport", 3),
    ("open_line", 1),
    ("change_billing", 1),
    ("set_notification", 1),
    ("wrong_access_key", 1),
    ("erase_personal_data", 1),
    ("set_fee", 1),
)


class _Writer:
    """Writes a log while an in-memory engine applies it: the generator reads the oracle's
    state to choose the next command and learns the receipts it gives."""

    def __init__(self, rng: random.Random) -> None:
        self.rng = rng
        self.oracle = Engine.open(":memory:", hash_iterations=HASH_ITERATIONS)
        self.log: list[Command] = []
        self.now = datetime(2024, 1, 4, 9, 0, tzinfo=TOKYO)
        self.keys: dict[str, str] = {}  # customer ID -> access key
        self.password: dict[str, str] = {}  # Passport ID -> password
        self.lines: list[str] = []  # customer IDs ever opened
        self.passports: list[str] = []  # Passport IDs ever registered
        self.receipts: list[str] = []
        self.opened = 0
        self.consolidated: set[str] = set()  # lines billed through a representative

    def tick(self, minutes: int = 1) -> None:
        self.now += timedelta(minutes=minutes)

    def emit(self, command: Command) -> dict[str, Any]:
        at = self.now.isoformat()
        if self.rng.random() < 0.2:  # the same instant, written in UTC
            at = self.now.astimezone(UTC).isoformat()
        entry = {"command": command.pop("command"), "at": at, **command}
        self.log.append(entry)
        result = apply_line(self.oracle, len(self.log), json.dumps(entry, ensure_ascii=False))
        if result["ok"] and entry["command"] == "purchase":
            self.receipts.append(result["receipt"])
        return result

    # Choosing subjects from the oracle's state

    def live_lines(self) -> list[str]:
        out = []
        for cid in self.lines:
            state = self.oracle.line(cid)
            if state is not None and not state.ended:
                out.append(cid)
        return out

    def live_passports(self) -> list[str]:
        out = []
        for pid in self.passports:
            state = self.oracle.passport(pid)
            if state is not None and not state.deleted:
                out.append(pid)
        return out

    def new_customer_id(self, operator: str) -> str:
        self.opened += 1
        if operator == "east" and self.opened % 3 == 0:
            return f"COP{self.opened:08d}"
        return f"CAF{self.opened:010d}"

    # Commands

    def open_line(self) -> str:
        rng = self.rng
        operator = rng.choice(["west", "west", "east"])
        cid = self.new_customer_id(operator)
        kind = rng.choice(_WEST_KINDS if operator == "west" else _EAST_KINDS)
        key = f"Ak{self.opened:06d}"
        billing: Command
        roll = rng.random()
        earlier = [c for c in self.lines[-40:] if c not in self.consolidated]
        if roll < 0.1 and earlier:
            billing = {"method": "consolidated", "representative": rng.choice(earlier)}
            self.consolidated.add(cid)
        elif roll < 0.4:
            billing = {
                "method": "phone_bill",
                "number": f"06-{rng.randrange(1000, 9999)}-{rng.randrange(1000, 9999)}",
                "cycle_start_day": rng.randrange(1, 29),
            }
        else:
            billing = {"method": "customer_number", "number": f"00{rng.randrange(10**8):08d}"}
        result = self.emit(
            {
                "command": "open_line",
                "customer_id": cid,
                "operator": operator,
                "kind": kind,
                "access_key": key,
                "line_limit": rng.choice([5000, 10000, 30000]),
                "billing": billing,
            }
        )
        if result["ok"]:
            self.keys[cid] = key
            self.lines.append(cid)
        return cid

    def register(self, cid: str) -> str:
        rng = self.rng
        pid = f"u{len(self.passports) + 1:04d}.{rng.choice(['yamada', 'sato', 'suzuki'])}"
        password = "".join(rng.choice("abcdefghjkmnpqrstuvwxyz23456789") for _ in range(8))
        state = self.oracle.line(cid)
        hikari = state is not None and state.kind.value in _HIKARI
        result = self.emit(
            {
                "command": "register_passport",
                "customer_id": cid,
                "access_key": self.keys.get(cid, WRONG_ACCESS_KEY),
                "passport_id": pid,
                "password": password,
                "email": f"{pid}@example.jp",
                "applicant": {
                    "name": "山田 太郎",
                    "phone": "06-1234-5678",
                    "contract_holder": rng.random() < 0.8,
                },
                "limit": rng.choice([2000, 3000, 5000]),
                "line_auth": hikari and rng.random() < 0.25,
            }
        )
        if result["ok"]:
            self.passports.append(pid)
            self.password[pid] = password
        return pid

    def purchase(self, pid: str, *, monthly: bool | None = None, password: str = "") -> None:
        rng = self.rng
        pool = (
            _SERVICES
            if monthly is None
            else [s for s in _SERVICES if (s[2] == "monthly") == monthly]
        )
        provider, service, pricing, _ = rng.choice(pool)
        command: Command = {
            "command": "purchase",
            "passport_id": pid,
            "password": password or self.password[pid],
            "provider": provider,
            "service": service,
        }
        if pricing == "per_purchase" and rng.random() < 0.4:
            command["quantity"] = rng.choice([2, 3, 5, 12])
        state = self.oracle.passport(pid)
        if state is not None and rng.random() < 0.9:
            command["presented_line"] = state.customer_id.value
        self.emit(command)

    def random_action(self) -> None:
        rng = self.rng
        actions, weights = zip(*_ACTIONS, strict=True)
        action = rng.choices(actions, weights)[0]
        lines = self.live_lines()
        pids = self.live_passports()
        if not lines or not pids:
            action = "open_line"
        cid = rng.choice(lines) if lines else ""
        pid = rng.choice(pids) if pids else ""
        if action == "purchase":
            self.purchase(pid)
        elif action == "wrong_password":
            self.purchase(pid, password=WRONG_PASSWORD)
        elif action == "lockout":
            # Ten wrong passwords in a row lock the ID; the eleventh is locked_out.
            for _ in range(11):
                self.purchase(pid, password=WRONG_PASSWORD)
                self.tick()
        elif action == "reset_password":
            locked = [p for p in pids if (ps := self.oracle.passport(p)) is not None and ps.locked]
            target = rng.choice(locked) if locked else pid
            self.password[target] = "Reset" + "".join(rng.choice("0123456789") for _ in range(3))
            self.emit(
                {
                    "command": "reset_password",
                    "passport_id": target,
                    "password": self.password[target],
                    "channel": rng.choice(["phone", "written"]),
                }
            )
        elif action in ("cancel", "cancel_wrong_password") and self.receipts:
            receipt = rng.choice(self.receipts)
            sub = self.oracle.subscription(receipt)
            owner = sub.passport_id.value if sub is not None else pid
            right = self.password.get(owner, WRONG_PASSWORD)
            self.emit(
                {
                    "command": "cancel",
                    "receipt": receipt,
                    "password": right if action == "cancel" else WRONG_PASSWORD,
                }
            )
        elif action == "refund" and self.receipts:
            self.emit(
                {
                    "command": "refund",
                    "receipt": rng.choice(self.receipts),
                    "amount": rng.choice([50, 100, 300, 525, 2000]),
                    "reason": "返金",
                }
            )
        elif action == "regulate_line":
            self.emit({"command": "regulate_line", "customer_id": cid})
        elif action == "lift_regulation":
            regulated = [
                c for c in lines if (ln := self.oracle.line(c)) is not None and ln.regulated
            ]
            self.emit(
                {
                    "command": "lift_regulation",
                    "customer_id": rng.choice(regulated) if regulated else cid,
                    "channel": rng.choice(["written", "written", "written", "online"]),
                }
            )
        elif action == "change_line":
            self.change_line(cid)
        elif action == "change_line_limit":
            self.emit(
                {
                    "command": "change_line_limit",
                    "customer_id": cid,
                    "line_limit": rng.choice([3000, 10000, 30000]),
                }
            )
        elif action == "change_passport_limit":
            self.emit(
                {
                    "command": "change_passport_limit",
                    "passport_id": pid,
                    "access_key": self._key_of(pid),
                    "limit": rng.choice([0, 1000, 3000, 6000]),
                }
            )
        elif action == "change_passport_details":
            self.password[pid] = "New" + "".join(rng.choice("0123456789") for _ in range(5))
            self.emit(
                {
                    "command": "change_passport_details",
                    "passport_id": pid,
                    "access_key": self._key_of(pid),
                    "password": self.password[pid],
                    "email": f"new.{pid}@example.jp",
                }
            )
        elif action == "delete_passport":
            self.emit(
                {"command": "delete_passport", "passport_id": pid, "access_key": self._key_of(pid)}
            )
        elif action == "register_passport":
            new = self.register(cid)
            if new in self.password:
                self.tick()
                self.purchase(new)
        elif action == "open_line":
            new_line = self.open_line()
            self.tick()
            new_pid = self.register(new_line)
            if new_pid in self.password:
                self.tick()
                self.purchase(new_pid, monthly=True)
        elif action == "change_billing":
            self.emit(
                {
                    "command": "change_billing",
                    "customer_id": cid,
                    "billing": {"method": "customer_number", "number": f"00{self.opened:08d}"},
                    "reason": "customer_number",
                }
            )
        elif action == "set_notification":
            self.emit(
                {
                    "command": "set_notification",
                    "customer_id": cid,
                    "access_key": self.keys[cid],
                    "provider": rng.choice(sorted(_PROVIDERS)),
                    "notify": rng.random() < 0.7,
                    "consent": rng.random() < 0.9,
                    "channel": "web",
                }
            )
        elif action == "wrong_access_key":
            self.emit(
                {
                    "command": "change_passport_limit",
                    "passport_id": pid,
                    "access_key": WRONG_ACCESS_KEY,
                    "limit": 100,
                }
            )
        elif action == "erase_personal_data":
            self.emit(
                {
                    "command": "erase_personal_data",
                    "passport_id": rng.choice(self.passports),
                    "reason": "本人からの請求",
                }
            )
        elif action == "set_fee":
            month = YearMonth.of(self.now)
            self.emit(
                {
                    "command": "set_fee",
                    "operator": rng.choice(["east", "west"]),
                    "effective_from": str(rng.choice([month, month.next()])),
                    "flat_fee": rng.choice([30, 45, 60]),
                }
            )

    def _key_of(self, pid: str) -> str:
        state = self.oracle.passport(pid)
        return self.keys.get(state.customer_id.value, WRONG_ACCESS_KEY) if state else "Nokey000"

    def change_line(self, cid: str) -> None:
        rng = self.rng
        state = self.oracle.line(cid)
        kind = state.kind.value if state is not None else "hikari_next"
        change = rng.choice(["relocation", "rename", "item_change", "transfer", "cancellation"])
        command: Command = {"command": "change_line", "customer_id": cid, "change": change}
        if change in ("relocation", "transfer") and rng.random() < 0.6:
            operator = state.operator.value if state is not None else "west"
            command["new_customer_id"] = self.new_customer_id(operator)
        if change == "item_change" and kind in ("b_flets", "flets_adsl"):
            command["new_kind"] = "hikari_light_plus"
        result = self.emit(command)
        new = result.get("new_customer_id") if result["ok"] else None
        if new:
            self.lines.append(new)
            self.keys[new] = self.keys[cid]


def generate_log(spec: LogSpec) -> list[Command]:
    """A seeded, realistic contract-2 command log (JSON objects, in order, without keys)."""
    rng = random.Random(spec.seed)
    w = _Writer(rng)
    try:
        for code, goods in _PROVIDERS.items():
            w.emit(
                {
                    "command": "register_provider",
                    "provider": code,
                    "name": f"{code} 株式会社",
                    "contact": f"0120-000-{ord(code):03d}",
                    "goods": goods,
                }
            )
        for code, service, pricing, price in _SERVICES:
            w.emit(
                {
                    "command": "list_service",
                    "provider": code,
                    "service": service,
                    "name": f"{service} service",
                    "pricing": pricing,
                    "price": price,
                }
            )
        for operator in ("east", "west"):
            w.emit(
                {
                    "command": "set_fee",
                    "operator": operator,
                    "effective_from": "2024-01",
                    "flat_fee": 45,
                }
            )
        w.tick(60)
        # The first month: every line is opened with an ID and a monthly subscription.
        for _ in range(spec.lines):
            cid = w.open_line()
            w.tick()
            pid = w.register(cid)
            w.tick()
            if pid in w.password:
                w.purchase(pid, monthly=True)
            w.tick()
        month = YearMonth.of(w.now)
        for index in range(1, spec.months + 1):
            month = month.next()
            start = month.start()
            # A few cancellations early on the 1st (pattern 6), then the previous month's bills.
            w.now = max(w.now, start) + timedelta(minutes=10)
            for _ in range(2):
                if w.receipts:
                    receipt = rng.choice(w.receipts)
                    sub = w.oracle.subscription(receipt)
                    if sub is not None:
                        w.emit(
                            {
                                "command": "cancel",
                                "receipt": receipt,
                                "password": w.password.get(sub.passport_id.value, WRONG_PASSWORD),
                            }
                        )
                    w.tick()
            w.now = max(w.now, start + timedelta(hours=9))
            if index != spec.skip_issue:  # if skipped, the next run closes two months
                w.emit({"command": "issue_bills", "month": str(month.previous())})
            if index == spec.months:
                break
            span = (month.next().start() - w.now).total_seconds() / 60 - 60 * 24
            step = max(1, int(span / max(spec.activity, 1)))
            for _ in range(spec.activity):
                w.tick(rng.randrange(1, step + 1))
                w.random_action()
    finally:
        w.oracle.close()
    return w.log


#: The variants of a log: every command keyed; no keys; every command but ``issue_bills``.
VARIANTS = ("keys", "plain", "again")


def write_variant(path: Path, log: Sequence[Command], variant: str) -> Path:
    """Write ``log`` in one of :data:`VARIANTS`: ``keys`` (a rerun after a crash is safe by
    the keys), ``plain`` (``--resume`` makes it safe), ``again`` (keys, but an interrupted
    billing run is completed by running its ``issue_bills`` again)."""
    if variant not in VARIANTS:
        raise ValueError(f"unknown variant {variant!r}")
    with path.open("w", encoding="utf-8") as out:
        out.write(f"# crash-safety log: {len(log)} commands, variant {variant}\n")
        for number, command in enumerate(log, start=1):
            keyed = variant == "keys" or (
                variant == "again" and command["command"] != "issue_bills"
            )
            entry = {**command, "key": f"c{number:05d}"} if keyed else command
            out.write(json.dumps(entry, ensure_ascii=False) + "\n")
    return path


def log_commands(path: Path) -> dict[int, Command]:
    """The commands of a log file by line number (comments and blank lines left out)."""
    out: dict[int, Command] = {}
    with path.open(encoding="utf-8") as source:
        for number, text in enumerate(source, start=1):
            text = text.strip()
            if text and not text.startswith("#"):
                out[number] = json.loads(text)
    return out


# ---------------------------------------------------------------------------------------------
# 2. Starting matome as a process that can be killed

_BOOT = f"""
import os, sys, json, traceback
from matome import cli
from matome.engine import Engine

_open = Engine.open


def _cheap(db=None, **kwargs):
    kwargs.setdefault("hash_iterations", {HASH_ITERATIONS})
    return _open(db, **kwargs)


Engine.open = staticmethod(_cheap)
"""

#: ``python -c SPAWN_MAIN ARGS...``: ``matome ARGS...`` with the tests' cheap hashing.
SPAWN_MAIN = _BOOT + "sys.exit(cli.main(sys.argv[1:]))\n"

#: The fork server: reads one JSON request a line, answers one JSON line.  ``spawn`` forks a
#: child that runs ``matome`` with the request's arguments, its output in the request's files;
#: ``poll`` and ``wait`` reap a child and give its exit code (negative: killed by a signal).
#: It opens no store and starts no thread, so forking it is safe.
FORK_MAIN = (
    _BOOT
    + """
try:  # imported once here rather than in every child
    import psycopg  # noqa: F401
    import eventsourcing.postgres  # noqa: F401
except ImportError:
    pass

_requests = sys.stdin
_answers = os.fdopen(os.dup(1), "w", buffering=1)


def _child(request):
    null = os.open(os.devnull, os.O_RDONLY)
    os.dup2(null, 0)
    for fd, name in ((1, "stdout"), (2, "stderr")):
        target = os.open(request[name], os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        os.dup2(target, fd)
        os.close(target)
    sys.stdout = open(1, "w", encoding="utf-8", buffering=1, closefd=False)
    sys.stderr = open(2, "w", encoding="utf-8", buffering=1, closefd=False)
    code = 70
    try:
        code = cli.main(request["argv"])
    except SystemExit as e:
        code = e.code if isinstance(e.code, int) else 1
    except BaseException:
        traceback.print_exc()
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
    os._exit(code)


while True:
    line = _requests.readline()
    if not line:
        break
    request = json.loads(line)
    if request["op"] == "usage":
        import resource

        usage = resource.getrusage(resource.RUSAGE_CHILDREN)
        _answers.write(json.dumps({"cpu": usage.ru_utime + usage.ru_stime}) + "\\n")
    elif request["op"] == "spawn":
        pid = os.fork()
        if pid == 0:
            _child(request)
        _answers.write(json.dumps({"pid": pid}) + "\\n")
    else:
        flags = os.WNOHANG if request["op"] == "poll" else 0
        done, status = os.waitpid(request["pid"], flags)
        code = os.waitstatus_to_exitcode(status) if done else None
        _answers.write(json.dumps({"code": code}) + "\\n")
"""
)


class Proc(Protocol):
    """A started ``matome`` process."""

    pid: int
    stdout: Path
    stderr: Path

    def poll(self) -> int | None:
        """Its exit code if it has ended (negative: the signal that ended it), else ``None``."""

    def kill(self) -> None:
        """SIGKILL it (nothing if it has ended)."""

    def wait(self) -> int:
        """Wait for it to end; its exit code."""


class Launcher(Protocol):
    """Starts ``matome ARGS...`` as an OS process."""

    name: str

    def start(self, argv: Sequence[str], stdout: Path, stderr: Path) -> Proc: ...

    def cpu(self) -> float:
        """CPU seconds the processes it started and that have ended used so far."""

    def close(self) -> None: ...


@dataclass
class _Forked:
    server: ForkServer
    pid: int
    stdout: Path
    stderr: Path
    code: int | None = None

    def poll(self) -> int | None:
        if self.code is None:
            self.code = self.server.ask({"op": "poll", "pid": self.pid})["code"]
        return self.code

    def kill(self) -> None:
        # Until the server reaps it, the pid is this child's (a zombie at worst): never another
        # process's.
        if self.code is None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.pid, signal.SIGKILL)

    def wait(self) -> int:
        if self.code is None:
            self.code = self.server.ask({"op": "wait", "pid": self.pid})["code"]
        assert self.code is not None
        return self.code


class ForkServer:
    """Starts ``matome`` by forking a server process that has imported it already (see
    :data:`FORK_MAIN`): a child runs ``matome.cli.main`` as the console script does, and is a
    process of its own that SIGKILL ends mid-write like any other."""

    name = "fork"

    def __init__(self) -> None:
        self._server = subprocess.Popen(
            [sys.executable, "-c", FORK_MAIN],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            bufsize=1,
        )
        self._lock = threading.Lock()

    def ask(self, request: dict[str, Any]) -> dict[str, Any]:
        with self._lock:
            assert self._server.stdin is not None
            assert self._server.stdout is not None
            self._server.stdin.write(json.dumps(request) + "\n")
            self._server.stdin.flush()
            answer = self._server.stdout.readline()
        if not answer:
            raise RuntimeError("the fork server has stopped")
        result: dict[str, Any] = json.loads(answer)
        return result

    def start(self, argv: Sequence[str], stdout: Path, stderr: Path) -> Proc:
        request = {"op": "spawn", "argv": list(argv), "stdout": str(stdout), "stderr": str(stderr)}
        return _Forked(self, self.ask(request)["pid"], stdout, stderr)

    def cpu(self) -> float:
        return float(self.ask({"op": "usage"})["cpu"])

    def close(self) -> None:
        if self._server.stdin is not None:
            self._server.stdin.close()
        try:
            self._server.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self._server.kill()
            self._server.wait()
        if self._server.stdout is not None:
            self._server.stdout.close()


@dataclass
class _Spawned:
    popen: subprocess.Popen[bytes]
    stdout: Path
    stderr: Path
    pid: int = 0

    def __post_init__(self) -> None:
        self.pid = self.popen.pid

    def poll(self) -> int | None:
        return self.popen.poll()

    def kill(self) -> None:
        if self.popen.poll() is None:
            self.popen.send_signal(signal.SIGKILL)

    def wait(self) -> int:
        return self.popen.wait()


class SpawnLauncher:
    """Starts ``matome`` in a fresh interpreter each time (``python -c SPAWN_MAIN ARGS``)."""

    name = "spawn"

    def start(self, argv: Sequence[str], stdout: Path, stderr: Path) -> Proc:
        with stdout.open("wb") as out, stderr.open("wb") as err:
            popen = subprocess.Popen(
                [sys.executable, "-c", SPAWN_MAIN, *argv],
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=err,
                env={**os.environ, "PYTHONUNBUFFERED": "1"},
            )
        return _Spawned(popen, stdout, stderr)

    def cpu(self) -> float:
        usage = resource.getrusage(resource.RUSAGE_CHILDREN)
        return usage.ru_utime + usage.ru_stime

    def close(self) -> None:
        pass


class _Output:
    """Follows a process's standard output: the result lines it has printed so far."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._offset = 0
        self._partial = b""
        #: Line numbers of the results printed, in order, with the time each was seen.
        self.lines: list[tuple[int, float]] = []

    def read(self) -> None:
        try:
            with self.path.open("rb") as source:
                source.seek(self._offset)
                data = source.read()
        except FileNotFoundError:
            return
        self._offset += len(data)
        now = time.monotonic()
        chunks = (self._partial + data).split(b"\n")
        self._partial = chunks.pop()
        for chunk in chunks:
            with contextlib.suppress(ValueError, KeyError, TypeError):
                self.lines.append((int(json.loads(chunk)["line"]), now))

    @property
    def last(self) -> int:
        return self.lines[-1][0] if self.lines else 0


#: How often a running process's output is looked at (seconds).
_POLL = 0.001


def follow(
    proc: Proc,
    kill_at: Callable[[_Output, float], float | None] | None = None,
    timeout: float = 600.0,
) -> tuple[int, _Output]:
    """Watch ``proc`` until it ends, asking ``kill_at(output, started)`` at every look when to
    SIGKILL it (a ``time.monotonic()`` instant, or ``None``: not now).  Return its exit code
    (:data:`KILLED` if it was killed) and what it printed."""
    started = time.monotonic()
    output = _Output(proc.stdout)
    while True:
        code = proc.poll()
        output.read()
        if code is not None:
            return code, output
        now = time.monotonic()
        if now - started > timeout:
            proc.kill()
            raise TimeoutError(f"matome (pid {proc.pid}) ran for more than {timeout}s")
        deadline = None if kill_at is None else kill_at(output, started)
        if deadline is not None and now >= deadline:
            proc.kill()
            code = proc.wait()
            output.read()
            return code, output
        time.sleep(_POLL)


KILLED = -signal.SIGKILL


# ---------------------------------------------------------------------------------------------
# 3. Stores


class Stores:
    """Fresh stores of one kind: SQLite files in a directory, or PostgreSQL schemas (dropped
    by :meth:`close`)."""

    def __init__(self, kind: str, directory: Path, pg_dsn: str | None = None) -> None:
        if kind not in ("sqlite", "postgres"):
            raise ValueError(f"unknown store kind {kind!r}")
        if kind == "postgres" and not pg_dsn:
            raise ValueError("a PostgreSQL store needs a server")
        self.kind = kind
        self.directory = directory
        self.pg_dsn = pg_dsn
        self._schemas: list[str] = []
        self._count = 0

    def new(self) -> str:
        """The ``--db`` of a new, empty store."""
        self._count += 1
        if self.kind == "sqlite":
            return str(self.directory / f"store-{self._count}-{uuid.uuid4().hex[:8]}.sqlite")
        import psycopg

        schema = f"matome_crash_{uuid.uuid4().hex[:12]}"
        with psycopg.connect(str(self.pg_dsn), autocommit=True) as conn:
            conn.execute(f'CREATE SCHEMA "{schema}"')
        self._schemas.append(schema)
        return f"{self.pg_dsn}?schema={schema}"

    def close(self) -> None:
        if not self._schemas:
            return
        import psycopg

        with psycopg.connect(str(self.pg_dsn), autocommit=True) as conn:
            for schema in self._schemas:
                conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
        self._schemas.clear()


@contextlib.contextmanager
def scratch_directory(prefix: str = "matome-crash-") -> Iterator[Path]:
    """A temporary directory, in memory (``/dev/shm``) where there is one: a SIGKILL ends the
    process, not the machine, so what the kernel holds is what a restart finds either way, and
    the runs do not wait for the disk."""
    base = "/dev/shm" if os.path.isdir("/dev/shm") and os.access("/dev/shm", os.W_OK) else None
    path = Path(tempfile.mkdtemp(prefix=prefix, dir=base))
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


# ---------------------------------------------------------------------------------------------
# 4. What must be equal after a crash

_SECRET_HASH = re.compile(r"^(scrypt|pbkdf2_sha256)\$")


#: A key record's salted digest of personal fields (``salt$sha256``, contract 3).
_SALTED_DIGEST = re.compile(r"^[0-9a-f]{32}\$[0-9a-f]{64}$")


def _normal(value: Any) -> Any:
    """A decoded event state with what differs between two honest runs masked: secrets'
    salted hashes and key records' salted digests of personal fields (random salts)."""
    if isinstance(value, str) and (_SECRET_HASH.match(value) or _SALTED_DIGEST.match(value)):
        return "<salted hash>"
    if isinstance(value, dict):
        return {k: _normal(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_normal(v) for v in value]
    return value


@dataclass
class Snapshot:
    """What a store holds, in the terms two runs of one log must agree on."""

    #: (stream, version, topic, normalised state) in the order of the notification log.  The
    #: state is decoded (personal values resolved) without the recorded ``timestamp``; an
    #: issued bill's ``events_digest`` is left out too (it digests chain hashes, which cover
    #: the recorded times) — ``verify`` checks it against this store's own chain.
    events: list[tuple[str, int, str, str]]
    #: Every line's bill of every month of the log (the contract's JSON, canonical).
    bills: dict[tuple[str, str], str]
    #: Issued bills: (line, month) → the digest of each ``BillIssued`` (one, or it is doubled).
    issued: dict[tuple[str, str], list[str]]
    #: Passport ID → (consecutive wrong passwords, locked).
    failures: dict[str, tuple[int, bool]]
    #: Every view row (``Projection.dump``).
    views: dict[str, list[Any]]
    #: ``verify``: ok, and the breaks it names.
    verified: bool
    breaks: list[str]
    closed_through: str | None

    @property
    def bill_count(self) -> int:
        return sum(len(v) for v in self.issued.values())


def _months(log: dict[int, Command]) -> list[YearMonth]:
    ats = [datetime.fromisoformat(c["at"]) for c in log.values()]
    month, last = YearMonth.of(min(ats)), YearMonth.of(max(ats)).next()
    out = []
    while month <= last:
        out.append(month)
        month = month.next()
    return out


def snapshot(db: str, log: dict[int, Command], *, views: bool = True) -> Snapshot:
    """Read ``db`` (which must exist) as a :class:`Snapshot`; ``log`` names the lines, IDs
    and months to ask about.  Bills are asked for after a catch-up of the views, as any query."""
    engine = Engine.open(db, hash_iterations=HASH_ITERATIONS, create=False)
    try:
        events: list[tuple[str, int, str, str]] = []
        issued: dict[tuple[str, str], list[str]] = {}
        start = 1
        while True:
            chunk = engine.internals.recorder.select_notifications(start=start, limit=2000)
            if not chunk:
                break
            for n in chunk:
                event = engine.internals.mapper.to_domain_event(n)
                assert isinstance(event, DomainEvent)
                state = event_to_json(event)
                state.pop("timestamp", None)
                if isinstance(event, BillIssued):
                    state.pop("events_digest", None)
                    key = (event.customer_id.value, str(event.month))
                    issued.setdefault(key, []).append(event.digest)
                events.append(
                    (
                        str(n.originator_id),
                        n.originator_version,
                        n.topic,
                        json.dumps(_normal(state), sort_keys=True, ensure_ascii=False),
                    )
                )
            start = chunk[-1].id + 1
        customers = {
            c[f]
            for c in log.values()
            for f in ("customer_id", "new_customer_id")
            if isinstance(c.get(f), str)
        }
        projection = engine.internals.views[0]
        projection.catch_up()
        customers |= {row[0] for row in projection.query("SELECT customer_id FROM mv_lines")}
        bills: dict[tuple[str, str], str] = {}
        for cid in sorted(customers):
            for month in _months(log):
                try:
                    doc: Any = to_json(engine.bill(cid, month))
                except Exception as e:  # an unknown line: its error is what it answers
                    doc = {"error": getattr(e, "code", type(e).__name__)}
                bills[cid, str(month)] = json.dumps(doc, sort_keys=True, ensure_ascii=False)
        failures = {}
        for pid in sorted({c["passport_id"] for c in log.values() if "passport_id" in c}):
            passport = engine.passport(pid)
            if passport is not None:
                failures[pid] = (passport.consecutive_failures, passport.locked)
        verification = engine.verify()
        breaks = [f"{b.kind.value} {b.stream}@{b.version}" for b in verification.breaks]
        closed = engine.closed_through()
        return Snapshot(
            events=events,
            bills=bills,
            issued=issued,
            failures=failures,
            views=projection.dump() if views else {},
            verified=verification.ok,
            breaks=breaks,
            closed_through=None if closed is None else str(closed),
        )
    finally:
        engine.close()


def _differing(expected: str, got: str) -> list[str]:
    """The fields in which two normalised event states differ."""
    a, b = json.loads(expected), json.loads(got)
    return sorted(k for k in set(a) | set(b) if a.get(k) != b.get(k))


def _state_diff(expected: str, got: str) -> str:
    a, b = json.loads(expected), json.loads(got)
    return ", ".join(
        f"{k}: expected {a.get(k)!r} got {b.get(k)!r}"[:200] for k in _differing(expected, got)
    )


@dataclass(frozen=True)
class Problem:
    """One way a crashed store differs from the uninterrupted one."""

    kind: str
    count: int
    detail: str

    def __str__(self) -> str:
        return f"{self.kind}: {self.count}: {self.detail}"


#: Kinds of :class:`Problem` that mean something was lost, or applied twice.
LOST = ("lost events", "issued bills lost")
DOUBLED = ("extra events", "doubled events", "bills issued twice", "issued bills extra")


def differences(expected: Snapshot, got: Snapshot, *, limit: int = 5) -> list[Problem]:
    """What ``got`` lost, doubled or changed against ``expected`` (empty: nothing)."""
    problems: list[Problem] = []

    def note(kind: str, items: Sequence[Any]) -> None:
        if items:
            shown = "; ".join(str(i)[:400] for i in items[:limit])
            more = f" (and {len(items) - limit} more)" if len(items) > limit else ""
            problems.append(Problem(kind, len(items), shown + more))

    want = {(s, v): (t, st) for s, v, t, st in expected.events}
    have = {(s, v): (t, st) for s, v, t, st in got.events}
    counts = Counter((s, v) for s, v, _, _ in got.events)
    note("lost events", [f"{want[k][0]} {k[0]}@{k[1]}" for k in want if k not in have])
    note("extra events", [f"{have[k][0]} {k[0]}@{k[1]}" for k in have if k not in want])
    note("doubled events", [f"{k[0]}@{k[1]}" for k, n in counts.items() if n > 1])
    changed = [k for k in want if k in have and want[k] != have[k]]
    note(
        "changed events",
        [f"{want[k][0]} {k[0]}@{k[1]}: {_state_diff(want[k][1], have[k][1])}" for k in changed],
    )
    order_want = [(s, v) for s, v, _, _ in expected.events if (s, v) in have]
    order_have = [(s, v) for s, v, _, _ in got.events if (s, v) in want]
    if order_want != order_have:
        first = next(
            (i for i, (a, b) in enumerate(zip(order_want, order_have, strict=False)) if a != b),
            min(len(order_want), len(order_have)),
        )
        note("log order differs", [f"from notification {first + 1}"])
    note(
        "bills differ",
        [
            f"{k}: expected {expected.bills.get(k)} got {got.bills.get(k)}"
            for k in sorted(set(expected.bills) | set(got.bills))
            if expected.bills.get(k) != got.bills.get(k)
        ],
    )
    note("bills issued twice", [f"{k} x{len(v)}" for k, v in got.issued.items() if len(v) > 1])
    note("issued bills lost", [str(k) for k in expected.issued if k not in got.issued])
    note("issued bills extra", [str(k) for k in got.issued if k not in expected.issued])
    note(
        "issued digests differ",
        [
            str(k)
            for k in expected.issued
            if k in got.issued and got.issued[k] != expected.issued[k]
        ],
    )
    note(
        "wrong-password counts differ",
        [
            f"{pid}: expected {expected.failures.get(pid)} got {got.failures.get(pid)}"
            for pid in sorted(set(expected.failures) | set(got.failures))
            if expected.failures.get(pid) != got.failures.get(pid)
        ],
    )
    if got.views and expected.views:
        note(
            "views differ",
            [
                t
                for t in sorted(set(expected.views) | set(got.views))
                if expected.views.get(t) != got.views.get(t)
            ],
        )
    if got.closed_through != expected.closed_through:
        note("closed months differ", [f"{expected.closed_through} != {got.closed_through}"])
    if not got.verified:
        note("verify fails", got.breaks or ["(no break named)"])
    return problems


# ---------------------------------------------------------------------------------------------
# 5. The scenarios


class HarnessError(RuntimeError):
    """``matome`` failed in a way no crash explains (an exit code other than 0 or SIGKILL)."""


@dataclass
class Outcome:
    """What one scenario did and found."""

    scenario: str
    store: str
    #: Processes ended by SIGKILL (and restarted).
    kills: int = 0
    #: Fresh stores driven from empty to the end of the log, each compared.
    trajectories: int = 0
    #: Processes started in all.
    starts: int = 0
    commands: int = 0
    bills: int = 0
    events: int = 0
    seconds: float = 0.0
    #: Where the kills left the store (e.g. "closed, no bill issued").
    states: Counter[str] = field(default_factory=Counter)
    problems: list[Problem] = field(default_factory=list)
    #: Results that a restart answered otherwise than the uninterrupted run did (a refusal
    #: that binds no key is judged afresh: docs/contract.md "Command log") — not a difference of the
    #: store.
    answers_differ: int = 0
    #: Restarts that found the store busy (exit 5: a killed writer's lock not yet released)
    #: and were simply started again.
    busy: int = 0
    #: CPU seconds of the scenario: its ``matome`` processes and the harness's own checks.
    cpu: float = 0.0

    def count(self, kinds: Sequence[str]) -> int:
        return sum(p.count for p in self.problems if p.kind in kinds)

    @property
    def lost(self) -> int:
        return self.count(LOST)

    @property
    def doubled(self) -> int:
        return self.count(DOUBLED)

    @property
    def other(self) -> int:
        """Other differences: changed events, bills, counts, views, ``verify``."""
        return sum(p.count for p in self.problems if p.kind not in LOST + DOUBLED)


@dataclass
class Reference:
    """One uninterrupted run of a log: its store, its snapshot and its timing."""

    log_path: Path
    log: dict[int, Command]
    db: str
    snapshot: Snapshot
    #: Seconds from the start of the process to its end.
    duration: float
    #: Line number → seconds from the start of the process to its result being printed.
    arrivals: dict[int, float]
    #: Line number → its result.
    results: dict[int, dict[str, Any]]


class _Runs:
    """Numbered output files for the processes one scenario starts."""

    def __init__(self, launcher: Launcher, directory: Path, name: str) -> None:
        self.launcher = launcher
        self.directory = directory
        self.name = name
        self.count = 0

    def start(self, argv: Sequence[str]) -> Proc:
        self.count += 1
        stem = self.directory / f"{self.name}-{self.count:04d}"
        return self.launcher.start(argv, stem.with_suffix(".out"), stem.with_suffix(".err"))


#: ``matome``'s exit code for a busy store (``matome.cli.EXIT_BUSY``): start it again.
EXIT_BUSY = 5
#: Busy restarts tolerated in one scenario before it gives up.
MAX_BUSY = 50


def _check_exit(code: int, proc: Proc, what: str, out: Outcome | None = None) -> bool:
    """``True`` if the process ended well; ``False`` if it found the store busy and should
    be started again; otherwise :class:`HarnessError` with what it printed."""
    if code == 0:
        return True
    err = ""
    with contextlib.suppress(OSError):
        err = proc.stderr.read_text(encoding="utf-8", errors="replace")[-2000:]
    if code == EXIT_BUSY and out is not None and out.busy < MAX_BUSY:
        out.busy += 1
        return False
    raise HarnessError(f"{what} exited with {code}:\n{err}")


def _cpu(launcher: Launcher) -> float:
    own = resource.getrusage(resource.RUSAGE_SELF)
    return launcher.cpu() + own.ru_utime + own.ru_stime


def _results(path: Path) -> dict[int, dict[str, Any]]:
    out: dict[int, dict[str, Any]] = {}
    if not path.exists():  # killed before it opened its output
        return out
    with path.open(encoding="utf-8", errors="replace") as source:
        for text in source:
            with contextlib.suppress(ValueError, KeyError, TypeError):
                result = json.loads(text)
                out[int(result["line"])] = result
    return out


def reference(launcher: Launcher, stores: Stores, log_path: Path, workdir: Path) -> Reference:
    """Run ``log_path`` once, uninterrupted, on a new store; snapshot and time it."""
    runs = _Runs(launcher, workdir, f"reference-{log_path.stem}-{stores.kind}")
    db = stores.new()
    proc = runs.start(["--db", db, "run", str(log_path), "--quiet"])
    started = time.monotonic()
    code, output = follow(proc)
    duration = time.monotonic() - started
    _check_exit(code, proc, f"matome run {log_path.name} (uninterrupted)")
    log = log_commands(log_path)
    arrivals = {line: seen - started for line, seen in output.lines}
    return Reference(
        log_path, log, db, snapshot(db, log), duration, arrivals, _results(proc.stdout)
    )


def _compare(
    out: Outcome,
    ref: Reference,
    db: str,
    answers: dict[int, dict[str, Any]],
) -> None:
    got = snapshot(db, ref.log)
    out.problems += differences(ref.snapshot, got)
    out.trajectories += 1
    out.commands += len(ref.log)
    out.bills += got.bill_count
    out.events += len(got.events)
    out.answers_differ += sum(
        1 for line, result in answers.items() if ref.results.get(line) != result
    )


def _after(line: int, delay: float) -> Callable[[_Output, float], float | None]:
    """Kill ``delay`` seconds after the process printed the result of ``line`` or a later
    one (``0``: after it started)."""

    def kill_at(output: _Output, started: float) -> float | None:
        if line == 0:
            return started + delay
        return next((seen + delay for n, seen in output.lines if n >= line), None)

    return kill_at


def crash_run(
    launcher: Launcher,
    stores: Stores,
    ref: Reference,
    workdir: Path,
    *,
    keyed: bool,
    kills: int,
    rng: random.Random,
    per_trajectory: int = 20,
) -> Outcome:
    """SIGKILL ``matome run`` at random moments and restart it with ``--resume`` until the
    log (``keyed``: every command carries a key) is applied, on fresh stores until ``kills``
    kills; compare each store with the uninterrupted run's.

    Each kill comes a random delay, uniform over ``2/per_trajectory`` of the uninterrupted
    run's duration, after the restarted process gets back to where the last one stopped — or,
    one time in four, after its start.
    """
    name = "run (keys)" if keyed else "run --resume"
    out = Outcome(name, stores.kind)
    clock, cpu = time.monotonic(), _cpu(launcher)
    runs = _Runs(launcher, workdir, f"run-{'keys' if keyed else 'resume'}-{stores.kind}")
    window = max(0.01, 2 * ref.duration / per_trajectory)
    while out.kills < kills:
        db = stores.new()
        reached = 0  # the last line a process of this store printed
        answers: dict[int, dict[str, Any]] = {}
        first = True
        while True:
            argv = ["--db", db, "run", str(ref.log_path), "--quiet"]
            if not first:
                # Keyed or not, a log cut short is resumed.  Contract 3 ("Idempotency keys are
                # no password oracle"): a keyed command replayed after its ID's password
                # changed, was reset or locked answers what its password gets *now* — counted —
                # so a keyed log run again from the top after a crash is not the log run once
                # when it changes credentials (as these logs do).  --resume applies exactly the
                # commands not applied; the keys bound before the kill are kept and checked.
                argv.append("--resume")
            proc = runs.start(argv)
            out.starts += 1
            delay = rng.uniform(0, window)
            # Resumed, a process starts where the last one stopped (one time in four, the kill
            # comes at its start).
            back = 0 if rng.random() < 0.25 else reached
            code, output = follow(proc, _after(back, delay) if out.kills < kills else None)
            first = False
            reached = max(reached, output.last)
            answers.update(_results(proc.stdout))
            if code == KILLED:
                out.kills += 1
                continue
            if _check_exit(code, proc, f"matome {' '.join(argv[2:])}", out):
                break
        _compare(out, ref, db, answers)
    out.seconds = time.monotonic() - clock
    out.cpu = _cpu(launcher) - cpu
    return out


def _probe(db: str, ref: Reference, month_of_line: str) -> str:
    """Where a kill in the billing run of ``month_of_line`` left the store."""
    engine = Engine.open(db, hash_iterations=HASH_ITERATIONS, create=False)
    try:
        closed = engine.closed_through()
        issued: Counter[str] = Counter()
        start = 1
        while True:
            chunk = engine.internals.recorder.select_notifications(
                start=start, limit=5000, topics=(BillIssued.TOPIC,)
            )
            if not chunk:
                break
            for n in chunk:
                event = engine.internals.mapper.to_domain_event(n)
                assert isinstance(event, BillIssued)
                issued[str(event.month)] += 1
            start = chunk[-1].id + 1
    finally:
        engine.close()
    month = YearMonth.parse(month_of_line)
    if closed is None or closed < month:
        return "month not closed yet"
    after = _closed_before(ref, month)
    expected: Counter[str] = Counter(m for _, m in ref.snapshot.issued)
    due = [m for m in expected if after < YearMonth.parse(m) <= month]
    done = sum(min(issued[m], expected[m]) for m in due)
    if done == sum(expected[m] for m in due):
        return "closed, every bill issued"
    return "closed, no bill issued" if done == 0 else "closed, some bills issued"


def _closed_before(ref: Reference, month: YearMonth) -> YearMonth:
    """The last month closed by an ``issue_bills`` of the log before the one closing
    ``month`` (a month before the log if none)."""
    months = sorted(
        YearMonth.parse(c["month"])
        for c in ref.log.values()
        if c["command"] == "issue_bills" and YearMonth.parse(c["month"]) < month
    )
    return months[-1] if months else YearMonth.parse("2000-01")


class _BillingPlan:
    """When to kill a process of the billing scenario: a random moment of the billing run of
    the next ``issue_bills`` line that still has kills to take.

    A kill comes a random delay, uniform over the billing run's duration in the uninterrupted
    run (scaled down each time the run ended before the kill came: a run that completes an
    interrupted one can be quicker), after the result of the line before it is printed — or,
    when ``--resume`` is to complete an interrupted run, after the process starts.
    """

    def __init__(self, ref: Reference, rng: random.Random, *, resume: bool) -> None:
        self.rng = rng
        self.resume = resume
        lines = sorted(ref.log)
        self.issue = [n for n in lines if ref.log[n]["command"] == "issue_bills"]
        self.prior = {n: max((m for m in lines if m < n), default=0) for n in self.issue}
        #: A billing run's duration in the uninterrupted run, and a process's start-up.
        self.window = {
            n: ref.arrivals.get(n, 0.0) - ref.arrivals.get(self.prior[n], 0.0) for n in self.issue
        }
        self.startup = min(ref.arrivals.values(), default=0.0)
        self.scale = dict.fromkeys(self.issue, 1.1)
        self.left = dict.fromkeys(self.issue, 0)
        #: The last kill came in the billing run of this line (the next start finishes it).
        self.inside: int | None = None
        self.deadline: float | None = None
        self.aimed: int | None = None

    def plan(self, kills: int) -> None:
        """Aim ``kills`` kills at the billing runs of a fresh store, shared between its
        ``issue_bills`` lines."""
        share, extra = divmod(kills, len(self.issue)) if self.issue else (0, 0)
        for index, n in enumerate(self.issue):
            self.left[n] = share + (1 if index < extra else 0)
        self.inside = self.aimed = self.deadline = None

    def target(self, output: _Output) -> int | None:
        """The next ``issue_bills`` line with kills left that the process has not passed; the
        kills left of a line it passed (its billing run ended before the kill came) move on to
        the next line."""
        for index, n in enumerate(self.issue):
            if self.left[n] <= 0:
                continue
            if not any(line >= n for line, _ in output.lines):
                return n
            if self.aimed == n and self.deadline is not None:
                self.scale[n] = max(0.05, self.scale[n] * 0.6)  # missed: aim earlier
            if index + 1 < len(self.issue):
                self.left[self.issue[index + 1]] += self.left[n]
            self.left[n] = 0
        return None

    def __call__(self, output: _Output, started: float) -> float | None:
        n = self.target(output)
        if n != self.aimed:
            self.aimed, self.deadline = n, None
        if n is None:
            return None
        if self.deadline is None:
            if self.resume and self.inside == n:
                # --resume completes the interrupted billing run first thing.
                trigger: float | None = started
                span = self.startup + self.window[n]
            else:
                trigger = next((s for line, s in output.lines if line == self.prior[n]), None)
                span = self.window[n]
            if trigger is None:
                return None
            self.deadline = trigger + self.rng.uniform(0, span * self.scale[n])
        return self.deadline

    def killed(self) -> int | None:
        """Account for a kill; the line whose billing run it was aimed at."""
        n = self.aimed
        if n is not None:
            self.left[n] -= 1
        self.inside, self.aimed, self.deadline = n, None, None
        return n

    def started(self) -> None:
        self.aimed, self.deadline = None, None


def crash_billing(
    launcher: Launcher,
    stores: Stores,
    ref: Reference,
    workdir: Path,
    *,
    mode: str,
    kills: int,
    rng: random.Random,
) -> Outcome:
    """SIGKILL the billing runs of a log's ``issue_bills`` lines at random moments (each
    line's share of ``kills``), restart until the log is applied, and compare with the
    uninterrupted run's store.  ``mode`` says how the run is completed:

    * ``keys`` — every command carries a key;
    * ``resume`` — no keys;
    * ``again`` — the log's ``issue_bills`` carry no key (the rest do).

    In every mode the run is restarted with ``matome run --resume``, which completes the
    interrupted billing run first thing (contract 3: a keyed log is resumed, not run again
    from the top — a replayed command whose password changed since is counted).
    """
    if mode not in ("keys", "resume", "again"):
        raise ValueError(f"unknown mode {mode!r}")
    out = Outcome(f"billing ({mode})", stores.kind)
    clock, cpu = time.monotonic(), _cpu(launcher)
    runs = _Runs(launcher, workdir, f"billing-{mode}-{stores.kind}")
    plan = _BillingPlan(ref, rng, resume=mode == "resume")
    if not plan.issue:
        raise ValueError(f"{ref.log_path} has no issue_bills line")
    while out.kills < kills:
        db = stores.new()
        plan.plan(kills - out.kills)
        answers: dict[int, dict[str, Any]] = {}
        first = True
        while True:
            argv = ["--db", db, "run", str(ref.log_path), "--quiet"]
            if not first:
                # Every mode resumes (see run_with_kills: under contract 3 a keyed log is not
                # run again from the top); the modes differ in the keys the log's lines carry.
                argv.append("--resume")
            proc = runs.start(argv)
            out.starts += 1
            plan.started()
            code, _ = follow(proc, plan)
            first = False
            answers.update(_results(proc.stdout))
            if code == KILLED:
                out.kills += 1
                aimed = plan.killed()
                if aimed is not None:
                    out.states[_probe(db, ref, ref.log[aimed]["month"])] += 1
                continue
            if _check_exit(code, proc, f"matome {' '.join(argv[2:])}", out):
                break
        _compare(out, ref, db, answers)
    out.seconds = time.monotonic() - clock
    out.cpu = _cpu(launcher) - cpu
    return out


def _view_state(db: str) -> tuple[int | None, frozenset[str]]:
    """The views' tracked position and the names of the view indexes, read without opening an
    engine (which would create missing tables and indexes)."""
    if db.startswith("postgresql://"):
        import psycopg

        dsn, _, query = db.partition("?schema=")
        with psycopg.connect(dsn) as conn:
            tracked = conn.execute(
                f'SELECT position FROM "{query}".mv_tracking WHERE view = %s', ("billing",)
            ).fetchone()
            names = conn.execute(
                "SELECT indexname FROM pg_indexes WHERE schemaname = %s AND indexname LIKE 'mv%%'",
                (query,),
            ).fetchall()
    else:
        import sqlite3

        with contextlib.closing(sqlite3.connect(db)) as conn:
            tracked = conn.execute(
                "SELECT position FROM mv_tracking WHERE view = ?", ("billing",)
            ).fetchone()
            names = conn.execute(
                "SELECT name FROM sqlite_master WHERE type = 'index' AND name LIKE 'mv%' "
                "AND sql IS NOT NULL"
            ).fetchall()
    return (None if tracked is None else int(tracked[0])), frozenset(r[0] for r in names)


def _views_of(db: str) -> tuple[bool, dict[str, list[Any]]]:
    """Whether the views had caught up with the whole log, and their rows (caught up)."""
    engine = Engine.open(db, hash_iterations=HASH_ITERATIONS, create=False)
    try:
        projection = engine.internals.views[0]
        current = projection.position() >= (engine.internals.recorder.max_notification_id() or 0)
        projection.catch_up()
        return current, projection.dump()
    finally:
        engine.close()


def crash_rebuild(
    launcher: Launcher,
    stores: Stores,
    ref: Reference,
    workdir: Path,
    *,
    kills: int,
    rng: random.Random,
) -> Outcome:
    """SIGKILL ``matome rebuild`` of the reference store at random moments (uniform over a
    clean rebuild's duration); after each kill, either rebuild again (itself killed, one time
    in three) or ask a query, which catches the views up; then the views — every row, and
    their indexes — must equal a clean rebuild's."""
    out = Outcome("rebuild", stores.kind)
    clock, cpu = time.monotonic(), _cpu(launcher)
    runs = _Runs(launcher, workdir, f"rebuild-{stores.kind}")
    db = ref.db
    line = next(c["customer_id"] for c in ref.log.values() if c["command"] == "open_line")
    month = min(_months(ref.log)).next()

    def rebuild(kill_after: float | None) -> int:
        while True:
            proc = runs.start(["--db", db, "rebuild", "--json"])
            out.starts += 1
            code, _ = follow(proc, None if kill_after is None else lambda _o, s: s + kill_after)
            if code == KILLED or _check_exit(code, proc, "matome rebuild", out):
                return code

    started = time.monotonic()
    rebuild(None)
    duration = time.monotonic() - started
    _, clean = _views_of(db)
    _, indexes = _view_state(db)
    while out.kills < kills:
        if rebuild(rng.uniform(0, duration)) != KILLED:
            continue
        out.kills += 1
        position, present = _view_state(db)
        if position is None:
            out.states["views dropped, not replayed"] += 1
        elif present != indexes:
            out.states["replayed, query indexes missing"] += 1
        else:
            out.states["replayed, indexes built"] += 1
        # Recover: rebuild again (perhaps killed again), or let a query catch the views up.
        while out.kills < kills and rng.random() < 1 / 3:
            if rebuild(rng.uniform(0, duration)) == KILLED:
                out.kills += 1
        if rng.random() < 0.5:
            rebuild(None)
            how = "rebuild"
        else:
            while True:
                proc = runs.start(["--db", db, "bill", line, str(month), "--json"])
                out.starts += 1
                code, _ = follow(proc)
                if _check_exit(code, proc, "matome bill", out):
                    break
            how = "query"
        position, present = _view_state(db)
        if present != indexes:
            out.problems.append(
                Problem("view indexes differ", 1, f"after {how}: {sorted(indexes ^ present)}")
            )
        current, views = _views_of(db)
        if not current:
            out.problems.append(Problem("views behind the log", 1, f"after {how}"))
        if views != clean:
            tables = [t for t in clean if views.get(t) != clean[t]]
            out.problems.append(Problem("views differ", 1, f"after {how}: {tables}"))
        out.trajectories += 1
    out.commands = len(ref.log)
    out.events = len(ref.snapshot.events)
    out.seconds = time.monotonic() - clock
    out.cpu = _cpu(launcher) - cpu
    return out
