"""Rebuild benchmark: replay a synthetic log of ≥ 1,000,000 events into the billing views.

The requirement: on an SQLite file holding a synthetic log of at least a million events, a
rebuild of the views (``Engine.rebuild_views``) runs at **≥ 0.6 × the speed of bare
eventsourcing reading and decoding the same log** (measured in the same run), and its **peak
memory does not grow with the number of events** beyond the size of the views.

What it does:

1. **Generates** a seeded log fast, without going through ``Engine`` (no store read, unit of
   work or production-strength hash per command), but by the engine's own rules: every group
   of events is decided by the engine's deciders (``decide_open_line``,
   ``decide_register_passport``, ``decide_purchase``, ``decide_cancel``, ``decide_refund``,
   ``decide_change_billing``, ``decide_change_line``, and the catalog's) with a
   :class:`~matome.aggregates.decision.Decision` at the generator's business time, against
   states the generator keeps from ``d.states``; a command the decider refuses (a purchase of a
   monthly service held already, or above the Passport ID's limit) is skipped.  Events are
   saved 5,000 per transaction with the adapter's ``record`` (what the engine's save does, less
   its unit of work and bookkeeping).  A prefix of the log (``--small`` events) is copied aside
   so that the same log can be measured at two sizes.
2. **Measures**, for each size, each phase in a fresh child process (so that its peak RSS is
   its own):

   * ``raw``: ``recorder.select_notifications`` over the whole log, no decoding;
   * ``baseline``: the same plus ``engine.mapper.to_domain_event`` (matome's cattrs
     ``EventMapper``) on every notification — "bare eventsourcing reading and decoding the
     log";
   * ``baseline-topics``: the same restricted to the topics the projection reads;
   * ``rebuild``: ``Engine.rebuild_views()`` (drops the views, replays the log into them);
   * ``rebuild-tracemalloc``: the rebuild again under ``tracemalloc`` (not timed) for the
     peak of Python allocations.

   The ratio is (log positions / rebuild seconds) ÷ (notifications / baseline seconds), both
   counts being every event of the log; the best of ``--rounds`` runs of each phase is taken.
   It is also given with each process's CPU time instead of the wall clock (steadier when
   other work shares the machine), and against ``baseline-topics``.  Peak RSS is sampled every
   5 ms in the rebuild's own process.

Usage::

    python bench/rebuild.py                      # 1,000,000 events (and a 250,000 prefix)
    python bench/rebuild.py --events 20000 --check   # small log + coherence check
    python bench/rebuild.py --reuse --db /tmp/log.sqlite
"""

from __future__ import annotations

import argparse
import json
import os
import random
import resource
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
import tracemalloc
from collections.abc import Iterator, Sequence
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any
from uuid import UUID

import attrs

from matome import commands as cmd
from matome.aggregates.catalog import Provider, decide_list_service, decide_register_provider
from matome.aggregates.decision import Decision
from matome.aggregates.line import (
    AccessLine,
    cap_holders,
    decide_change_billing,
    decide_change_line,
    decide_open_line,
    line_id,
)
from matome.aggregates.passport import (
    Passport,
    decide_cancel,
    decide_purchase,
    decide_refund,
    decide_register_passport,
    passport_id_stream,
)
from matome.aggregates.subscription import Subscription, subscription_id
from matome.charging import charged_in
from matome.commands import Result
from matome.credentials import Hasher
from matome.engine import Engine
from matome.events import EVENT_TOPICS
from matome.events import subscription as sub_ev
from matome.events.base import DomainEvent
from matome.policy import DEFAULT_POLICY
from matome.projections.runner import CHUNK, IGNORED_TOPICS
from matome.projections.views import TABLES
from matome.values import (
    TOKYO,
    Applicant,
    BillingAccount,
    BillingChangeReason,
    ChangeKind,
    Consolidated,
    CustomerId,
    CustomerNumber,
    Goods,
    LineKind,
    Operator,
    PassportId,
    PhoneBill,
    Pricing,
    ProviderCode,
    ServiceCode,
    YearMonth,
)
from matome.wire import to_json

#: Events per save (one transaction each).
SAVE_BATCH = 5_000
#: Bumped when the generator changes, so that ``--reuse`` does not reuse an older log.
GENERATOR_VERSION = 2

PASSWORD = "Pass1234"
ACCESS_KEY = "Key12345"
#: Business time runs from START to END over the log (before the self-registration cutoff).
START = datetime(2019, 1, 1, 9, 0, tzinfo=TOKYO)
END = datetime(2024, 11, 28, 23, 0, tzinfo=TOKYO)
#: Recent purchases that refunds are drawn from.
RECENT = 20_000
#: The view tables (``mv_<name>``), for counting their rows.
VIEWS = tuple(table.name for table in TABLES)
#: The topics a catch-up reads and decodes: every topic but those the views declare ignored
#: (the runner selects ``topic NOT IN`` those, so an unknown topic is met and fails).
TOPICS = tuple(sorted(t for t in EVENT_TOPICS if t not in IGNORED_TOPICS))


# ---------------------------------------------------------------------------------------------
# The synthetic log


@attrs.frozen
class _Listing:
    provider: ProviderCode
    service: ServiceCode
    pricing: Pricing


class _Credentials:
    """One ``Hasher(1)`` whose hash of each secret is computed once and reused.

    Every synthetic secret is one of two constants, so every line and Passport ID stores the
    same hash of it (a hash carries its own iteration count: the engine verifies them as
    they are).  Verifying goes through the hasher, whose memo makes it cheap after the first.
    """

    def __init__(self) -> None:
        self.hasher = Hasher(1)
        self._hashes: dict[str, str] = {}

    def hash(self, secret: str) -> str:
        stored = self._hashes.get(secret)
        if stored is None:
            stored = self._hashes[secret] = self.hasher.hash(secret)
        return stored

    def verify(self, secret: str, stored: str) -> bool:
        return self.hasher.verify(secret, stored)

    def needs_rehash(self, stored: str) -> bool:
        return self.hasher.needs_rehash(stored)


class LogGenerator:
    """Seeded groups of events, each decided by the engine's own deciders.

    Each group is what one command of the engine would save (a new line and its Passport IDs,
    or the catalog, are several commands of one instant): the generator draws a command, calls
    its decider (``matome.aggregates``) with a :class:`Decision` at business time
    :meth:`now`, against the states it keeps, and takes ``d.events`` and ``d.states`` when
    nothing is refused.  A refused purchase (a monthly service held already, the ID's limit)
    is skipped and another drawn.

    Per ~10 events: about three purchases (``Purchased`` + ``HoldingAdded``), a cancellation
    (``Cancelled`` + ``HoldingEnded``), half a refund, and new lines with their Passport IDs
    (``LineOpened``, ``Registered`` + ``PassportAttached``); rarely a ``BillingChanged`` or a
    ``LineMoved`` (relocation, item change).

    Memory stays bounded: subscriptions are kept while active or among the ``RECENT`` latest
    purchases (refunds are drawn from those), then forgotten.
    """

    def __init__(self, seed: int, target: int, *, providers: int = 24, keep: bool = False) -> None:
        self.rng = random.Random(seed)
        self.target = target
        self.emitted = 0
        self.credentials = _Credentials()
        self.n_providers = providers
        self.listings: list[_Listing] = []
        self.providers: dict[ProviderCode, Provider] = {}
        self.lines: dict[UUID, AccessLine] = {}
        self.line_streams: list[UUID] = []
        self.passports: dict[UUID, Passport] = {}
        self.passport_streams: list[UUID] = []
        self.subs: dict[UUID, Subscription] = {}
        self.active: list[UUID] = []  # active monthly subscriptions (swap-remove)
        self.active_at: dict[UUID, int] = {}
        self.recent: list[UUID] = []  # ring of recent purchases, for refunds
        self.recent_pos = 0
        self.recent_set: set[UUID] = set()
        self.n_lines = 0
        self.n_passports = 0
        #: Purchases the decider refused (and the generator skipped), by refusal code.
        self.refused: dict[str, int] = {}
        #: Every event, when ``keep`` (for the coherence check at small sizes).
        self.kept: list[DomainEvent] | None = [] if keep else None
        self.counts: dict[str, int] = {}

    # Time and bookkeeping

    def now(self) -> datetime:
        fraction = min(1.0, self.emitted / self.target)
        return START + (END - START) * fraction

    def _emit(self, group: list[DomainEvent]) -> list[DomainEvent]:
        self.emitted += len(group)
        for event in group:
            name = type(event).__name__
            self.counts[name] = self.counts.get(name, 0) + 1
        if self.kept is not None:
            self.kept.extend(group)
        return group

    def groups(self) -> Iterator[list[DomainEvent]]:
        """Groups of events until at least ``target`` events were emitted."""
        yield self._emit(self._catalog())
        while self.emitted < self.target:
            group = self._next_group()
            if group:
                yield self._emit(group)

    # Deciding

    def _decision(self) -> Decision:
        at = self.now()
        return Decision(at=at, recorded_at=at, policy=DEFAULT_POLICY, credentials=self.credentials)

    def _accepted(self, d: Decision, result: Result | None) -> bool:
        """Whether the decider accepted; if so, take the states it decided into."""
        refusal = d.verdict()
        if refusal is not None:
            return False
        if result is None:
            raise RuntimeError("the decider neither refused nor decided")
        for stream, state in d.states.items():
            if isinstance(state, Subscription):
                self.subs[stream] = state
            elif isinstance(state, Passport):
                self.passports[stream] = state
            elif isinstance(state, AccessLine):
                self.lines[stream] = state
            elif isinstance(state, Provider):
                self.providers[state.code] = state
            else:
                raise TypeError(f"unexpected state {type(state).__name__}")
        return True

    def _decided(self, d: Decision, result: Result | None, what: str) -> list[DomainEvent]:
        """``d.events`` of a command the generator draws only when it must be accepted."""
        if not self._accepted(d, result):
            raise RuntimeError(f"the generator's {what} was refused: {d.verdict()!r}")
        return d.events

    # Actions

    def _next_group(self) -> list[DomainEvent]:
        if len(self.line_streams) < 20:
            return self._open_line()
        r = self.rng.random()
        if r < 0.62:
            return self._purchase() or self._open_line()
        if r < 0.79:
            return self._cancel() or self._purchase()
        if r < 0.915:
            return self._refund() or self._purchase()
        if r < 0.98:
            return self._open_line()
        if r < 0.99:
            return self._change_billing()
        return self._move_line()

    def _catalog(self) -> list[DomainEvent]:
        at = self.now()
        events: list[DomainEvent] = []
        for p in range(1, self.n_providers + 1):
            code = ProviderCode(f"P{p:03d}")
            register = cmd.RegisterProvider(
                at=at,
                provider=code,
                name=f"Provider {p} K.K.",
                contact=f"0120-{p:03d}-{p:03d}",
                goods=Goods.INFORMATION,
            )
            d = self._decision()
            result = decide_register_provider(self.providers.get(code), register, d)
            events += self._decided(d, result, "provider")
            offers = [
                ("m1", Pricing.MONTHLY, self.rng.choice((100, 300, 525, 980))),
                ("m2", Pricing.MONTHLY, self.rng.choice((210, 315, 500))),
                ("i1", Pricing.PER_PURCHASE, self.rng.choice((50, 100, 300))),
                ("i2", Pricing.PER_PURCHASE, self.rng.choice((200, 400, 800))),
            ]
            for service, pricing, price in offers:
                listing = _Listing(code, ServiceCode(service), pricing)
                d = self._decision()
                result = decide_list_service(
                    self.providers[code],
                    cmd.ListService(
                        at=at,
                        provider=code,
                        service=service,
                        name=f"{code.value} {service}",
                        pricing=pricing,
                        price=price,
                    ),
                    d,
                )
                events += self._decided(d, result, "listing")
                self.listings.append(listing)
        return events

    def _billing(self) -> BillingAccount:
        r = self.rng.random()
        if r < 0.05 and self.line_streams:
            rep = self.lines[self.rng.choice(self.line_streams)]
            if not isinstance(rep.billing, Consolidated):
                return Consolidated(representative=rep.customer_id)
        if r < 0.7:
            return self._customer_number()
        return PhoneBill(
            number=f"06-{self.rng.randrange(10**4):04d}-{self.rng.randrange(10**4):04d}",
            cycle_start_day=self.rng.randint(1, 28),
        )

    def _customer_number(self) -> CustomerNumber:
        return CustomerNumber(number=f"00{self.rng.randrange(10**8):08d}")

    def _representative(self, billing: BillingAccount) -> AccessLine | None:
        if not isinstance(billing, Consolidated):
            return None
        return self.lines.get(line_id(billing.representative))

    def _open_line(self) -> list[DomainEvent]:
        at = self.now()
        self.n_lines += 1
        operator = Operator.WEST if self.rng.random() < 0.6 else Operator.EAST
        if operator is Operator.EAST and self.rng.random() < 0.3:
            cid = CustomerId(f"COP{self.n_lines:08d}")
        else:
            cid = CustomerId(f"CAF{self.n_lines:010d}")
        kinds = [k for k in LineKind if k.offered_by(operator)]
        stream = line_id(cid)
        open_line = cmd.OpenLine(
            at=at,
            customer_id=cid,
            operator=operator,
            kind=self.rng.choice(kinds),
            access_key=ACCESS_KEY,
            line_limit=self.rng.choice((10_000, 20_000, 30_000)),
            billing=self._billing(),
        )
        d = self._decision()
        result = decide_open_line(
            self.lines.get(stream), self._representative(open_line.billing), open_line, d
        )
        events = list(self._decided(d, result, "new line"))
        for _ in range(self.rng.choices((1, 2, 3), weights=(6, 3, 1))[0]):
            limit = self.rng.choice((1_000, 2_000, 3_000, 5_000))
            pid = PassportId(f"fp{self.n_passports + 1:07d}.user")
            register = cmd.RegisterPassport(
                at=at,
                customer_id=cid,
                passport_id=pid,
                password=PASSWORD,
                email=f"user{self.n_passports + 1}@example.jp",
                applicant=Applicant(name="Yamada Taro", phone="06-1234-5678", contract_holder=True),
                limit=limit,
                line_auth=False,
                access_key=ACCESS_KEY,
            )
            d = self._decision()
            existing = self.passports.get(passport_id_stream(pid))
            line = self.lines[stream]
            spenders = {
                p: self.passports.get(passport_id_stream(p))
                for p in cap_holders(line, YearMonth.of(at))
            }
            registered = decide_register_passport(line, existing, None, spenders, register, d)
            if not self._accepted(d, registered):
                break  # the line's cap (or its five IDs) is reached
            self.n_passports += 1
            self.passport_streams.append(passport_id_stream(pid))
            events += d.events
        self.line_streams.append(stream)
        return events

    def _purchase(self) -> list[DomainEvent]:
        if not self.passport_streams:
            return []
        at = self.now()
        for _ in range(4):
            passport = self.passports[self.rng.choice(self.passport_streams)]
            listing = self.rng.choice(self.listings)
            purchase = cmd.Purchase(
                at=at,
                passport_id=passport.passport_id,
                password=PASSWORD,
                provider=listing.provider,
                service=listing.service,
                presented_line=passport.customer_id,
            )
            d = self._decision()
            result = decide_purchase(
                passport,
                self.lines[line_id(passport.customer_id)],
                self.providers[listing.provider],
                purchase,
                d,
            )
            if not self._accepted(d, result):
                refusal = d.verdict()
                code = getattr(refusal, "code", type(refusal).__name__)
                self.refused[code] = self.refused.get(code, 0) + 1
                continue  # a monthly service held already, or the ID's limit: draw again
            assert isinstance(result, cmd.PurchaseResult)
            stream = subscription_id(result.receipt)
            if listing.pricing is Pricing.MONTHLY:
                self.active_at[stream] = len(self.active)
                self.active.append(stream)
            self._remember(stream)
            return d.events
        return []

    def _remember(self, stream: UUID) -> None:
        if len(self.recent) < RECENT:
            self.recent.append(stream)
        else:
            old = self.recent[self.recent_pos]
            self.recent[self.recent_pos] = stream
            self.recent_pos = (self.recent_pos + 1) % RECENT
            self.recent_set.discard(old)
            if old not in self.active_at:
                del self.subs[old]
        self.recent_set.add(stream)

    def _cancel(self) -> list[DomainEvent]:
        if not self.active:
            return []
        i = self.rng.randrange(len(self.active))
        stream = self.active[i]
        last = self.active.pop()
        if last != stream:
            self.active[i] = last
            self.active_at[last] = i
        del self.active_at[stream]
        sub = self.subs[stream]
        d = self._decision()
        result = decide_cancel(
            sub,
            self.passports[passport_id_stream(sub.passport_id)],
            cmd.Cancel(at=d.at, receipt=sub.receipt, password=PASSWORD),
            d,
        )
        events = self._decided(d, result, "cancellation")
        if stream not in self.recent_set:
            del self.subs[stream]  # neither active nor recent: forgotten
        return events

    def _refund(self) -> list[DomainEvent]:
        if not self.recent:
            return []
        stream = self.rng.choice(self.recent)
        sub = self.subs[stream]
        left = sub.price.amount - sub.refunded.amount
        if left <= 0:
            return []
        d = self._decision()
        refund = cmd.Refund(
            at=d.at,
            receipt=sub.receipt,
            amount=self.rng.randint(1, left),
            reason=self.rng.choice(("service outage", "goodwill", "double charge")),
        )
        passport = self.passports.get(passport_id_stream(sub.passport_id))
        result = decide_refund(sub, passport, refund, d)
        # Over what was charged so far (a same-month re-purchase): the provider would be
        # refused; the generator draws something else.
        return d.events if self._accepted(d, result) else []

    def _change_billing(self) -> list[DomainEvent]:
        line = self.lines[self.rng.choice(self.line_streams)]
        reason = self.rng.choice(list(BillingChangeReason))
        billing: BillingAccount
        if reason is BillingChangeReason.WIDE_AREA_CONSOLIDATED:
            rep = self.lines[self.rng.choice(self.line_streams)]
            if rep.id == line.id or isinstance(rep.billing, Consolidated):
                reason, billing = BillingChangeReason.CUSTOMER_NUMBER, self._customer_number()
            else:
                billing = Consolidated(representative=rep.customer_id)
        elif reason is BillingChangeReason.CUSTOMER_NUMBER:
            billing = self._customer_number()
        else:
            billing = PhoneBill(
                number=f"06-{self.rng.randrange(10**4):04d}-{self.rng.randrange(10**4):04d}",
                cycle_start_day=self.rng.randint(1, 28),
            )
        d = self._decision()
        change = cmd.ChangeBilling(
            at=d.at, customer_id=line.customer_id, billing=billing, reason=reason
        )
        result = decide_change_billing(line, self._representative(billing), change, d)
        return self._decided(d, result, "billing change")

    def _move_line(self) -> list[DomainEvent]:
        line = self.lines[self.rng.choice(self.line_streams)]
        if line.operator is Operator.EAST and self.rng.random() < 0.5:
            # An item change never switches Hikari Next <-> Light (that is a menu change).
            kinds = [
                k
                for k in LineKind
                if k.offered_by(line.operator)
                and not (k.is_next_or_light and line.kind.is_next_or_light and k is not line.kind)
            ]
            change, new_kind = ChangeKind.ITEM_CHANGE, self.rng.choice(kinds)
        else:
            change, new_kind = ChangeKind.RELOCATION, None
        d = self._decision()
        move = cmd.ChangeLine(
            at=d.at, customer_id=line.customer_id, change=change, new_kind=new_kind
        )
        # A relocation or item change keeping the customer ID keeps the service (§6): no
        # Passport ID or subscription is decided against.
        result = decide_change_line(line, {}, {}, None, move, d)
        return self._decided(d, result, "line change")


def _remove_db(path: Path) -> None:
    for suffix in ("", "-wal", "-shm", "-journal", ".master-key"):
        Path(str(path) + suffix).unlink(missing_ok=True)


def _copy_db(src: Path, dst: Path) -> None:
    """A consistent copy of an SQLite database (committed data, WAL included), with its
    default master-key file (the personal data of the copy is read with it)."""
    _remove_db(dst)
    source, target = sqlite3.connect(src), sqlite3.connect(dst)
    try:
        source.backup(target)
    finally:
        target.close()
        source.close()
    key = Path(f"{src}.master-key")
    if key.exists():
        shutil.copy2(key, f"{dst}.master-key")


def generate(
    db: Path, seed: int, events: int, prefixes: dict[int, Path], *, keep: bool = False
) -> LogGenerator:
    """Write the seeded log of ``events`` events to ``db``; copy its first N events aside."""
    _remove_db(db)
    engine = Engine.open(str(db))
    gen = LogGenerator(seed, events, keep=keep)
    pending: list[DomainEvent] = []
    todo = sorted(prefixes)
    started = time.perf_counter()
    try:
        for group in gen.groups():
            pending += group
            due = bool(todo) and gen.emitted >= todo[0]
            if len(pending) >= SAVE_BATCH or due:
                engine._store.record(pending)
                pending.clear()
            if due:
                _copy_db(db, prefixes[todo.pop(0)])
            if gen.emitted % 100_000 < len(group):
                rate = gen.emitted / (time.perf_counter() - started)
                _log(f"  generated {gen.emitted:,} events ({rate:,.0f}/s)")
        if pending:
            engine._store.record(pending)
    finally:
        engine.close()
    return gen


# ---------------------------------------------------------------------------------------------
# Phases (each run in its own process)


def _rss_mb() -> float:
    with open("/proc/self/statm") as f:
        pages = int(f.read().split()[1])
    return pages * os.sysconf("SC_PAGE_SIZE") / 2**20


def _peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


class _RssSampler:
    """The highest RSS seen while running (sampled every 5 ms by a thread)."""

    def __init__(self) -> None:
        self.peak = _rss_mb()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.wait(0.005):
            self.peak = max(self.peak, _rss_mb())

    def __enter__(self) -> _RssSampler:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, _rss_mb())


def _read(engine: Engine, *, decode: bool, topics: Sequence[str] = ()) -> int:
    """Read (and decode) every notification like a bare eventsourcing reader; return how many."""
    recorder = engine.internals.recorder
    to_event = engine.internals.mapper.to_domain_event
    stop = recorder.max_notification_id() or 0
    start = 1
    count = 0
    while start <= stop:
        # Pages of CHUNK notifications: the page size the projection reads with.
        batch = recorder.select_notifications(start=start, limit=CHUNK, stop=stop, topics=topics)
        if not batch:
            break
        if decode:
            for notification in batch:
                to_event(notification)
        count += len(batch)
        start = batch[-1].id + 1
    return count


def run_phase(phase: str, db: Path) -> dict[str, Any]:
    engine = Engine.open(str(db))
    try:
        positions = engine.internals.recorder.max_notification_id() or 0
        if phase.startswith("rebuild"):
            engine.internals.views  # noqa: B018  (open the view store outside the measured time)
        rss_before = _rss_mb()
        trace = phase == "rebuild-tracemalloc"
        if trace:
            tracemalloc.start()
        with _RssSampler() as rss:
            started, cpu_started = time.perf_counter(), time.process_time()
            if phase == "raw":
                count = _read(engine, decode=False)
            elif phase == "baseline":
                count = _read(engine, decode=True)
            elif phase == "baseline-topics":
                count = _read(engine, decode=True, topics=TOPICS)
            elif phase in ("rebuild", "rebuild-tracemalloc"):
                count = engine.rebuild_views()
            else:
                raise SystemExit(f"unknown phase {phase}")
            seconds = time.perf_counter() - started
            cpu_seconds = time.process_time() - cpu_started
        out: dict[str, Any] = {
            "phase": phase,
            "positions": positions,
            "count": count,
            "seconds": seconds,
            "cpu_seconds": cpu_seconds,
            "rss_before_mb": rss_before,
            "peak_rss_mb": rss.peak,
            "max_rss_mb": _peak_rss_mb(),
        }
        if trace:
            out["traced_peak_mb"] = tracemalloc.get_traced_memory()[1] / 2**20
            tracemalloc.stop()
        if phase.startswith("rebuild"):
            projection, _ = engine.internals.views
            out["view_rows"] = sum(
                projection.query(f"SELECT count(*) FROM mv_{table}")[0][0] for table in VIEWS
            )
        return out
    finally:
        engine.close()


def _child(phase: str, db: Path) -> dict[str, Any]:
    proc = subprocess.run(
        [sys.executable, __file__, "--phase", phase, "--db", str(db)],
        check=True,
        capture_output=True,
        text=True,
    )
    result: dict[str, Any] = json.loads(proc.stdout.strip().splitlines()[-1])
    return result


# ---------------------------------------------------------------------------------------------
# Coherence check (small sizes)


def _expected_bill(events: Sequence[DomainEvent], customer_id: str, month: YearMonth) -> int:
    """The subtotal of a line's bill for a month, from the generated events and §4's rules."""
    subs: dict[UUID, sub_ev.Purchased] = {}
    cancelled: dict[UUID, datetime] = {}
    refunds: list[tuple[UUID, sub_ev.Refunded]] = []
    for e in events:
        if isinstance(e, sub_ev.Purchased) and e.customer_id.value == customer_id:
            subs[e.originator_id] = e
        elif isinstance(e, sub_ev.Cancelled):
            cancelled[e.originator_id] = e.at
        elif isinstance(e, sub_ev.Refunded):
            refunds.append((e.originator_id, e))
    total = 0
    seen: set[tuple[str, str, str]] = set()
    for stream, p in sorted(subs.items(), key=lambda kv: (kv[1].at, kv[1].receipt)):
        if p.pricing is Pricing.MONTHLY:
            key = (p.passport_id.value, p.provider.value, p.service.value)
            if charged_in(p.at, cancelled.get(stream), month) and key not in seen:
                seen.add(key)
                total += p.price.amount
        elif YearMonth.of(p.at) == month:
            total += p.price.amount
    for stream, r in refunds:
        if stream in subs and YearMonth.of(r.at) == month:
            total -= r.amount.amount
    return total


def _ensure(condition: bool, what: str) -> None:
    if not condition:
        raise SystemExit(f"check failed: {what}")


def check(db: Path, gen: LogGenerator) -> None:
    """Open the generated log with ``Engine.open`` and check that it is coherent."""
    assert gen.kept is not None
    purchases: dict[str, list[sub_ev.Purchased]] = {}
    for e in gen.kept:
        if isinstance(e, sub_ev.Purchased):
            purchases.setdefault(e.customer_id.value, []).append(e)
    customer_id, bought = max(purchases.items(), key=lambda kv: len(kv[1]))
    months: dict[YearMonth, int] = {}
    for p in bought:
        months[YearMonth.of(p.at)] = months.get(YearMonth.of(p.at), 0) + 1
    month = max(months, key=lambda m: months[m])

    with tempfile.TemporaryDirectory() as tmp:
        copy = Path(tmp) / "check.sqlite"
        _copy_db(db, copy)  # the live commands below must not change the benchmark's log
        engine = Engine.open(str(copy))
        try:
            bill = to_json(engine.bill(customer_id, month))
            expected = _expected_bill(gen.kept, customer_id, month)
            _ensure(bill["subtotal"] == expected, f"bill {bill['subtotal']} != {expected}")
            _log(
                f"check: bill of {customer_id} for {month}: subtotal {bill['subtotal']} yen in "
                f"{len(bill['charges'])} charges (expected {expected}) — ok"
            )
            # Aggregates rebuilt by the engine match the states the generator decided against.
            for stream, line in list(gen.lines.items())[:200]:
                got = engine.line(line.customer_id)
                _ensure(got is not None and got.version == line.version, f"line {stream}")
            for passport in list(gen.passports.values())[:500]:
                got_p = engine.passport(passport.passport_id)
                _ensure(got_p == passport, f"Passport ID {passport.passport_id}")
            _log("check: 200 lines and 500 Passport IDs load with the generator's states — ok")
            # Live commands after the end of the log: the log is one the engine can go on from.
            at = END + timedelta(days=5)
            passport = gen.passports[passport_id_stream(PassportId(bought[-1].passport_id.value))]
            item = next(x for x in gen.listings if x.pricing is Pricing.PER_PURCHASE)
            result = engine.purchase(
                at=at,
                passport_id=passport.passport_id,
                password=PASSWORD,
                provider=item.provider,
                service=item.service.value,
            )
            active = gen.subs[gen.active[0]]
            engine.cancel(at=at, receipt=active.receipt, password=PASSWORD)
            engine.refund(at=at, receipt=result.receipt, amount=1, reason="check")
            after = to_json(engine.bill(customer_id, YearMonth.of(at)))
            _log(
                f"check: live purchase {result.receipt}, cancel {active.receipt} and refund "
                f"accepted; {customer_id} {YearMonth.of(at)} subtotal {after['subtotal']} — ok"
            )
            # An incremental catch-up and a rebuild give the same views.
            projection, _ = engine.internals.views
            before = projection.dump()
            engine.rebuild_views()
            _ensure(projection.dump() == before, "rebuilt views differ")
            _log("check: rebuilt views equal the incrementally built ones — ok")
        finally:
            engine.close()


# ---------------------------------------------------------------------------------------------
# Driver


def _log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def _prefix_path(db: Path, n: int) -> Path:
    return db.with_name(f"{db.stem}.prefix{n}{db.suffix}")


def _meta(db: Path) -> Path:
    return db.with_name(db.name + ".json")


def _reusable(db: Path, meta: dict[str, Any], paths: Sequence[Path]) -> bool:
    try:
        stored = json.loads(_meta(db).read_text())
    except (OSError, ValueError):
        return False
    return stored == meta and all(p.exists() for p in paths)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--events", type=int, default=1_000_000, help="events in the log")
    parser.add_argument(
        "--small",
        type=int,
        default=None,
        help="also measure the log's first N events (default events/4; 0: no)",
    )
    parser.add_argument("--seed", type=int, default=20240601)
    parser.add_argument("--db", type=Path, default=None, help="SQLite file (default: temp dir)")
    parser.add_argument("--reuse", action="store_true", help="reuse a log generated before")
    parser.add_argument("--rounds", type=int, default=1, help="timed rounds per phase (best)")
    parser.add_argument("--check", action="store_true", help="check the log is coherent")
    parser.add_argument("--no-tracemalloc", action="store_true")
    parser.add_argument("--json", type=Path, default=None, help="also write results here")
    parser.add_argument("--phase", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)

    if args.phase:
        assert args.db is not None
        print(json.dumps(run_phase(args.phase, args.db)))
        return 0

    events: int = args.events
    small: int = events // 4 if args.small is None else args.small
    db: Path = (
        args.db or Path(tempfile.gettempdir()) / f"matome-rebuild-s{args.seed}-n{events}.sqlite"
    )
    db.parent.mkdir(parents=True, exist_ok=True)
    prefixes = {small: _prefix_path(db, small)} if 0 < small < events else {}
    meta = {
        "seed": args.seed,
        "events": events,
        "prefixes": sorted(prefixes),
        "v": GENERATOR_VERSION,
    }

    if args.reuse and not args.check and _reusable(db, meta, [db, *prefixes.values()]):
        _log(f"reusing {db}")
    else:
        _log(f"generating {events:,} events into {db} (seed {args.seed})")
        started = time.perf_counter()
        gen = generate(db, args.seed, events, prefixes, keep=args.check)
        seconds = time.perf_counter() - started
        _log(
            f"generated {gen.emitted:,} events in {seconds:.1f}s ({gen.emitted / seconds:,.0f}/s): "
            f"{gen.n_lines:,} lines, {gen.n_passports:,} Passport IDs; "
            + ", ".join(f"{k} {v:,}" for k, v in sorted(gen.counts.items()))
        )
        _log(
            "purchases refused by decide_purchase (skipped, another drawn): "
            + (", ".join(f"{k} {v:,}" for k, v in sorted(gen.refused.items())) or "none")
        )
        _meta(db).write_text(json.dumps(meta))
        if args.check:
            check(db, gen)
        del gen

    phases = ["raw", "baseline", "baseline-topics", "rebuild"]
    rows: list[dict[str, Any]] = []
    for path in [*(prefixes[n] for n in sorted(prefixes)), db]:
        results: dict[str, list[dict[str, Any]]] = {p: [] for p in phases}
        for _ in range(args.rounds):
            for phase in phases:
                r = _child(phase, path)
                _log(
                    f"  {path.name}: {phase:<16} {r['count']:>9,} in {r['seconds']:7.2f}s "
                    f"(CPU {r['cpu_seconds']:6.2f}s; {r['count'] / r['seconds']:>9,.0f}/s), "
                    f"peak RSS {r['peak_rss_mb']:.0f} MB"
                )
                results[phase].append(r)
        traced = None if args.no_tracemalloc else _child("rebuild-tracemalloc", path)
        rows.append(_row(results, traced))

    _report(rows, args.seed, args.rounds)
    if args.json:
        args.json.write_text(json.dumps(rows, indent=2))
    return 0


def _row(results: dict[str, list[dict[str, Any]]], traced: dict[str, Any] | None) -> dict[str, Any]:
    """One line of the table from the phases' results (the best of the rounds of each)."""

    def best(phase: str, key: str) -> float:
        return min(float(r[key]) for r in results[phase])

    rebuild = results["rebuild"][0]
    positions = int(rebuild["positions"])
    baseline_count = int(results["baseline"][0]["count"])
    row: dict[str, Any] = {
        "events": positions,
        "topic_events": int(results["baseline-topics"][0]["count"]),
        "raw_eps": int(results["raw"][0]["count"]) / best("raw", "seconds"),
        "baseline_eps": baseline_count / best("baseline", "seconds"),
        "rebuild_eps": positions / best("rebuild", "seconds"),
        # Per log position, like the rebuild: the projection's reads cover every position too.
        "baseline_topics_eps": positions / best("baseline-topics", "seconds"),
        "baseline_cpu_eps": baseline_count / best("baseline", "cpu_seconds"),
        "rebuild_cpu_eps": positions / best("rebuild", "cpu_seconds"),
        "rebuild_seconds": [round(float(r["seconds"]), 2) for r in results["rebuild"]],
        "baseline_seconds": [round(float(r["seconds"]), 2) for r in results["baseline"]],
        "peak_rss_mb": max(float(r["peak_rss_mb"]) for r in results["rebuild"]),
        "rss_before_mb": float(rebuild["rss_before_mb"]),
        "baseline_peak_rss_mb": max(float(r["peak_rss_mb"]) for r in results["baseline"]),
        "traced_peak_mb": None if traced is None else float(traced["traced_peak_mb"]),
        "view_rows": int(rebuild["view_rows"]),
    }
    row["ratio"] = row["rebuild_eps"] / row["baseline_eps"]
    row["ratio_cpu"] = row["rebuild_cpu_eps"] / row["baseline_cpu_eps"]
    row["ratio_topics"] = row["rebuild_eps"] / row["baseline_topics_eps"]
    return row


def _report(rows: list[dict[str, Any]], seed: int, rounds: int) -> None:
    print()
    print(
        f"rebuild benchmark — SQLite file, seed {seed}, Python {sys.version.split()[0]}, "
        f"best of {rounds} round(s)"
    )
    header = (
        f"{'events':>10} | {'baseline ev/s':>13} | {'rebuild ev/s':>12} | {'ratio':>5} | "
        f"{'ratio CPU':>9} | {'ratio*':>6} | {'peak RSS MB':>11} | {'py peak MB':>10} | "
        f"{'view rows':>9}"
    )
    print(header)
    print("-" * len(header))
    for row in rows:
        traced_mb = "—" if row["traced_peak_mb"] is None else f"{row['traced_peak_mb']:.1f}"
        print(
            f"{row['events']:>10,} | {row['baseline_eps']:>13,.0f} | "
            f"{row['rebuild_eps']:>12,.0f} | {row['ratio']:>5.2f} | {row['ratio_cpu']:>9.2f} | "
            f"{row['ratio_topics']:>6.2f} | {row['peak_rss_mb']:>11.1f} | {traced_mb:>10} | "
            f"{row['view_rows']:>9,}"
        )
    print(
        "\nbaseline: bare eventsourcing — recorder.select_notifications + the engine's mapper "
        "(matome's\n  EventMapper).to_domain_event over every event of the log, in the same run "
        "on the same file.\nrebuild: Engine.rebuild_views() — every log position, views written "
        "to SQLite.\nratio = rebuild events/s ÷ baseline events/s, wall clock (target ≥ 0.6); "
        "ratio CPU: the same with\n  each process's CPU time (steadier on a shared machine); "
        "ratio*: against reading and decoding\n  only the topics the projection reads.\n"
        "peak RSS: highest RSS of the rebuild's process while it ran (sampled every 5 ms; "
        "the process\n  holds ~{:.0f} MB before); py peak: tracemalloc peak of a rebuild "
        "(Python objects only).".format(rows[0]["rss_before_mb"] if rows else 0)
    )
    for row in rows:
        print(
            f"  {row['events']:,} events: raw read {row['raw_eps']:,.0f}/s; rebuild runs "
            f"{row['rebuild_seconds']} s, baseline runs {row['baseline_seconds']} s; baseline "
            f"peak RSS {row['baseline_peak_rss_mb']:.1f} MB; {row['topic_events']:,} events "
            "of the projection's topics"
        )
    if len(rows) == 2:
        a, b = rows
        print(
            f"events ×{b['events'] / a['events']:.1f}: rebuild peak RSS "
            f"{a['peak_rss_mb']:.1f} → {b['peak_rss_mb']:.1f} MB"
            + (
                ""
                if a["traced_peak_mb"] is None
                else f", Python peak {a['traced_peak_mb']:.1f} → {b['traced_peak_mb']:.1f} MB"
            )
            + f"; view rows ×{b['view_rows'] / max(1, a['view_rows']):.1f}"
        )


if __name__ == "__main__":
    raise SystemExit(main())
