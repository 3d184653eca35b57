"""Concurrent commands, on every store: threads in one engine, and two engines on one store.

The engine's guarantee (see :mod:`matome.engine`): every command decides against the states it
loaded and saves all its events in one transaction; a writer that got to one of those streams
first makes the save fail, and the command is decided again.  These tests hammer that:

* many threads buying per-purchase items on ONE Passport ID whose limit allows only some;
* many threads presenting the same idempotency key;
* two engines ("two processes", each with its own cache) on one SQLite file or PostgreSQL
  schema, one buying while the other regulates the line.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any

import attrs
import pytest
from eventsourcing.persistence import Notification, StoredEvent

from matome.aggregates.passport import passport_id_stream, project_passport
from matome.application.eventstore import MEMORY
from matome.engine import Engine
from matome.errors import LimitExceeded, LineRegulated, MonthClosed
from matome.events import subscription as sub_ev
from matome.values import TOKYO, PassportId, YearMonth, Yen
from tests.conftest import EngineFactory

AT = datetime(2024, 6, 3, 10, 0, tzinfo=TOKYO)
MONTH = YearMonth.of(AT)
LINE = "CAF0000000001"
PROVIDER = "prov1"
PASSWORD = "Vq3Zr9Lx"
ACCESS_KEY = "Qz7Kx2Wv"
BILLING = {"method": "phone_bill", "number": "06-1234-5678", "cycle_start_day": 1}
APPLICANT = {"name": "Yamada Taro", "phone": "06-1234-5678", "contract_holder": True}

THREADS = 8
PER_THREAD = 25
PRICE = 300
LIMIT = 5000  # allows LIMIT // PRICE == 16 of the 200 purchases


def setup_line(
    engine: Engine,
    passports: Sequence[str],
    *,
    limit: int = LIMIT,
    services: Sequence[tuple[str, str, int]] = (("item1", "per_purchase", PRICE),),
) -> None:
    """One line holding ``passports`` (each with ``limit``), one provider with ``services``.

    Everything happens at the one instant :data:`AT`, so that racing commands never trip the
    engine's "commands on a line come in time order" check.
    """
    engine.open_line(
        at=AT,
        customer_id=LINE,
        operator="west",
        kind="hikari_next",
        access_key=ACCESS_KEY,
        line_limit=limit * len(passports),
        billing=BILLING,
    )
    engine.register_provider(
        at=AT, provider=PROVIDER, name="Provider One", contact="ops@prov1.jp", goods="information"
    )
    for service, pricing, price in services:
        engine.list_service(
            at=AT, provider=PROVIDER, service=service, name=service, pricing=pricing, price=price
        )
    for pid in passports:
        engine.register_passport(
            at=AT,
            customer_id=LINE,
            access_key=ACCESS_KEY,
            passport_id=pid,
            password=PASSWORD,
            email=f"{pid}@example.jp",
            applicant=APPLICANT,
            limit=limit,
            line_auth=False,
        )


@attrs.define
class Outcomes:
    """What the racing callers were told (appended under the GIL: list.append is atomic)."""

    accepted: list[Any] = attrs.field(factory=list)
    refused: list[Exception] = attrs.field(factory=list)
    errors: list[BaseException] = attrs.field(factory=list)


def run_threads(n: int, work: Callable[[int], None], *, timeout: float = 60.0) -> None:
    """Run ``work(i)`` on ``n`` threads released together; re-raise nothing, join all."""
    barrier = threading.Barrier(n)

    def start(i: int) -> None:
        barrier.wait()
        work(i)

    threads = [threading.Thread(target=start, args=(i,), daemon=True) for i in range(n)]
    for t in threads:
        t.start()
    deadline = time.monotonic() + timeout
    for t in threads:
        t.join(max(0.0, deadline - time.monotonic()))
    assert not any(t.is_alive() for t in threads), "threads still running after the timeout"


def notifications(engine: Engine, topic: str) -> Sequence[Notification]:
    return engine.internals.recorder.select_notifications(start=1, limit=10**6, topics=[topic])


def stored_purchases(engine: Engine) -> list[sub_ev.Purchased]:
    """Every stored ``Purchased`` event, read straight from the store."""
    events = []
    for n in notifications(engine, "matome.subscription.Purchased"):
        event = engine.internals.mapper.to_domain_event(n)
        assert isinstance(event, sub_ev.Purchased)
        events.append(event)
    return events


def before_saving_a_purchase(
    engine: Engine, monkeypatch: pytest.MonkeyPatch, interleave: Callable[[], None]
) -> None:
    """Run ``interleave`` once, after ``engine`` has decided a purchase and just before its
    events reach the store (the race made deterministic)."""
    real_insert = engine.internals.recorder.insert_events
    done: list[bool] = []

    def insert_events(stored_events: Sequence[StoredEvent], **kwargs: Any) -> Any:
        if not done and any(s.topic == "matome.subscription.Purchased" for s in stored_events):
            done.append(True)
            interleave()
        return real_insert(stored_events, **kwargs)

    monkeypatch.setattr(engine.internals.recorder, "insert_events", insert_events)


def is_memory(store_url: str) -> bool:
    return store_url in MEMORY


# ---------------------------------------------------------------------------------------------
# One Passport ID, many buyers


def test_concurrent_purchases_on_one_passport_never_pass_its_limit(
    make_engine: EngineFactory,
) -> None:
    engine = make_engine()
    setup_line(engine, ["alice.a1"])
    out = Outcomes()

    def buy(_: int) -> None:
        for _ in range(PER_THREAD):
            try:
                out.accepted.append(
                    engine.purchase(
                        at=AT,
                        passport_id="alice.a1",
                        password=PASSWORD,
                        provider=PROVIDER,
                        service="item1",
                    )
                )
            except LimitExceeded as e:
                out.refused.append(e)
            except BaseException as e:
                out.errors.append(e)

    started = time.monotonic()
    run_threads(THREADS, buy)
    elapsed = time.monotonic() - started
    assert out.errors == []
    assert len(out.accepted) + len(out.refused) == THREADS * PER_THREAD
    # Exactly as many as the limit allows: none over, and none wrongly refused.
    assert len(out.accepted) == LIMIT // PRICE
    receipts = [r.receipt for r in out.accepted]
    assert len(set(receipts)) == len(receipts)
    assert all(r.charged == Yen(PRICE) for r in out.accepted)

    passport = engine.passport("alice.a1")
    assert passport is not None
    assert passport.purchases == len(out.accepted)
    assert passport.spend(MONTH, once_per_month=True) == Yen(PRICE * len(out.accepted))
    # Never over the limit at any point of the ID's history, not just at the end.
    state = None
    for event in engine.internals.events.get(passport_id_stream(PassportId("alice.a1"))):
        state = project_passport(state, [event])
        assert state is not None
        assert state.spend(MONTH, once_per_month=True) <= state.limit
    # No event lost: every accepted purchase has its stored Subscription, and nothing else does.
    for receipt in receipts:
        sub = engine.subscription(receipt)
        assert sub is not None
        assert sub.passport_id == PassportId("alice.a1")
        assert sub.price == Yen(PRICE)
    assert sorted(e.receipt for e in stored_purchases(engine)) == sorted(receipts)
    assert elapsed < 20, f"{THREADS * PER_THREAD} racing purchases took {elapsed:.1f}s"


def test_one_key_presented_by_many_threads_creates_one_subscription(
    make_engine: EngineFactory,
) -> None:
    engine = make_engine()
    setup_line(engine, ["alice.a1"])
    out = Outcomes()

    def buy(_: int) -> None:
        try:
            out.accepted.append(
                engine.purchase(
                    at=AT,
                    passport_id="alice.a1",
                    password=PASSWORD,
                    provider=PROVIDER,
                    service="item1",
                    key="order-0001",
                )
            )
        except BaseException as e:
            out.errors.append(e)

    run_threads(THREADS, buy)
    assert out.errors == []
    assert len(out.accepted) == THREADS
    assert len({r.receipt for r in out.accepted}) == 1
    assert len(set(out.accepted)) == 1  # the very same answer, charged included
    passport = engine.passport("alice.a1")
    assert passport is not None
    assert passport.purchases == 1
    assert len(notifications(engine, "matome.subscription.Purchased")) == 1
    assert len(notifications(engine, "matome.idempotency.KeyBound")) == 1


# ---------------------------------------------------------------------------------------------
# Two engines on one store: purchases against a regulation

PASSPORTS = ("alice.a1", "alice.a2", "alice.a3", "alice.a4", "alice.a5")
MONTHLY = tuple((f"mon{i}", "monthly", 100) for i in range(1, 9))
SERVICES = (*MONTHLY, ("item1", "per_purchase", 10))
#: These IDs buy only per-purchase items, so they hold no monthly subscription to cancel.
ITEMS_ONLY = ("alice.a4", "alice.a5")


@pytest.fixture
def two_engines(store_url: str, make_engine: EngineFactory) -> tuple[Engine, Engine]:
    """Two engines on one store (for ``memory``, one engine twice: POPO cannot be shared)."""
    first = make_engine()
    second = first if is_memory(store_url) else make_engine()
    setup_line(first, PASSPORTS, services=SERVICES)
    return first, second


def check_regulation_won(engine: Engine, accepted: Sequence[Any]) -> None:
    """After the race: nothing active on the line, nothing bought after the regulation."""
    line = engine.line(LINE)
    assert line is not None
    assert line.regulated
    for pid in PASSPORTS:
        passport = engine.passport(pid)
        assert passport is not None
        active = [r for r, h in passport.holdings.items() if h.active]
        assert active == [], f"{pid} still holds active monthly subscriptions {active}"
    purchased = stored_purchases(engine)
    # No event lost or invented: the callers' receipts are exactly the stored purchases.
    assert sorted(e.receipt for e in purchased) == sorted(r.receipt for r in accepted)
    for e in purchased:
        sub = engine.subscription(e.receipt)
        assert sub is not None
        assert not sub.active, f"monthly subscription {e.receipt} survived the regulation"
    # Notification ids are commit order: every purchase committed before the regulation.
    (regulated,) = notifications(engine, "matome.line.Regulated")
    late = [
        n.id for n in notifications(engine, "matome.subscription.Purchased") if n.id > regulated.id
    ]
    assert late == [], f"purchases saved after the regulation (#{regulated.id}): {late}"


@pytest.mark.parametrize(
    "holding",
    [
        pytest.param(True, id="passport-holds-monthly"),
        # Regulation writes nothing to an ID without subscriptions: the purchase is still
        # refused because the line it read has changed (matome.application.eventstore's read check).
        pytest.param(False, id="passport-holds-nothing"),
    ],
)
def test_a_purchase_decided_before_a_regulation_and_saved_after_it_is_refused(
    holding: bool, two_engines: tuple[Engine, Engine], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The race made deterministic: engine 2 regulates between engine 1's decision and save."""
    first, second = two_engines
    accepted: list[Any] = []
    if holding:
        accepted.append(
            first.purchase(
                at=AT, passport_id="alice.a1", password=PASSWORD, provider=PROVIDER, service="mon1"
            )
        )
    interleaved: list[Any] = []

    def regulate() -> None:
        # Engine 1 has decided the purchase against an unregulated line: regulate now.
        interleaved.append(second.regulate_line(at=AT, customer_id=LINE))

    before_saving_a_purchase(first, monkeypatch, regulate)
    with contextlib.suppress(LineRegulated):
        accepted.append(
            first.purchase(
                at=AT, passport_id="alice.a1", password=PASSWORD, provider=PROVIDER, service="mon2"
            )
        )
    assert interleaved, "the regulation did not run between decision and save"
    check_regulation_won(second, accepted)


def test_purchases_racing_a_regulation_from_another_engine(
    two_engines: tuple[Engine, Engine],
) -> None:
    first, second = two_engines
    out = Outcomes()
    regulated = threading.Event()
    buyers = 4

    def buy(i: int) -> None:
        # Each buyer cycles over the passports (monthly services for some, items for the
        # others) until it has been refused for the regulation a few times.
        seen_regulated = 0
        n = 0
        deadline = time.monotonic() + 15
        while seen_regulated < 3 and time.monotonic() < deadline:
            pid = PASSPORTS[(i + n) % len(PASSPORTS)]
            if pid in ITEMS_ONLY:
                service = "item1"
            else:
                service = MONTHLY[(i * 3 + n // len(PASSPORTS)) % len(MONTHLY)][0]
            n += 1
            try:
                out.accepted.append(
                    first.purchase(
                        at=AT,
                        passport_id=pid,
                        password=PASSWORD,
                        provider=PROVIDER,
                        service=service,
                    )
                )
            except LineRegulated as e:
                seen_regulated += 1
                out.refused.append(e)
            except Exception as e:
                # Already subscribed to that monthly service, or over the limit: fine.
                if getattr(e, "code", None) in ("duplicate", "limit_exceeded"):
                    out.refused.append(e)
                else:
                    out.errors.append(e)

    def regulate() -> None:
        # Let the buyers get going, then regulate through the other engine.
        deadline = time.monotonic() + 10
        while len(out.accepted) < 10 and time.monotonic() < deadline:
            time.sleep(0.001)
        try:
            second.regulate_line(at=AT, customer_id=LINE)
        except BaseException as e:
            out.errors.append(e)
        regulated.set()

    def work(i: int) -> None:
        if i == buyers:
            regulate()
        else:
            buy(i)

    run_threads(buyers + 1, work)
    assert regulated.is_set()
    assert out.errors == []
    assert len(out.accepted) >= 10
    assert any(isinstance(e, LineRegulated) for e in out.refused)
    # Judge with the engine that regulated and with the one that bought.
    check_regulation_won(second, out.accepted)
    check_regulation_won(first, out.accepted)


# ---------------------------------------------------------------------------------------------
# Two engines on one store: a purchase against the closing of its month


def test_a_purchase_decided_before_its_month_closes_and_saved_after_is_refused(
    two_engines: tuple[Engine, Engine], monkeypatch: pytest.MonkeyPatch
) -> None:
    first, second = two_engines
    closed: list[Any] = []

    def close_month() -> None:
        closed.append(second.issue_bills(at=MONTH.end(), month=MONTH))

    before_saving_a_purchase(first, monkeypatch, close_month)
    with contextlib.suppress(MonthClosed):
        first.purchase(
            at=AT, passport_id="alice.a1", password=PASSWORD, provider=PROVIDER, service="item1"
        )
    assert closed, "the month was not closed between decision and save"
    (close,) = notifications(second, "matome.calendar.MonthsClosed")
    late = [n.id for n in notifications(second, "matome.subscription.Purchased") if n.id > close.id]
    assert late == [], f"purchases dated in {MONTH} saved after it was closed: {late}"
