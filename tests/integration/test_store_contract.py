"""One backend contract, run against every store (in-memory POPO, SQLite file, PostgreSQL).

Whatever the store, matome must get back exactly what it wrote, rebuild the same states after a
restart, write each command's events in one transaction (or not at all), keep idempotency keys
across restarts, validate stored events when loading them, store stable topics only, and never
store a secret in clear text.

"Restart" means a second :class:`~matome.engine.Engine` on the same store, with empty caches.
The in-memory store lives inside its engine (POPO), so for ``memory`` the *same* engine stands
in for the second one with its state cache emptied: states are still rebuilt from the stored
events, but nothing outside the process is exercised.  Tests whose point is the process
boundary say so and skip for ``memory``.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID, uuid4

import attrs
import pytest
from eventsourcing.persistence import MapperDeserialisationError, Notification, StoredEvent

from matome.aggregates.passport import passport_id_stream
from matome.application.eventstore import MEMORY
from matome.engine import Engine
from matome.errors import IdempotencyConflict, StoreUnavailable, WrongPassword
from matome.events import EVENT_TOPICS, DomainEvent
from matome.events import passport as passport_ev
from matome.values import TOKYO, PassportId
from tests.conftest import EngineFactory

# ---------------------------------------------------------------------------------------------
# A small world written through the engine

T0 = datetime(2024, 6, 3, 10, 0, tzinfo=TOKYO)
LINE_A = "CAF0000000001"
LINE_B = "CAF0000000002"
PASSPORTS_A = ("alice.a1", "alice.a2", "alice.a3")
PASSPORT_B = "bob.b1"
PROVIDER = "prov1"
#: Distinctive secrets, so that a byte scan of the store cannot match anything by chance.
ACCESS_KEYS = {LINE_A: "Qz7Kx2Wv", LINE_B: "Jm4Rt8Yp"}
PASSWORDS = {
    "alice.a1": "Vq3Zr9Lx",
    "alice.a2": "Hn5Wd2Kc",
    "alice.a3": "Tb8Fy6Gm",
    PASSPORT_B: "Ps4Xj7Nq",
}
NEW_PASSWORD = "Cw2Ek9Ru"  # alice.a2 changes to this
WRONG_PASSWORD = "Zx9Yw8Vu"  # presented once for alice.a3 (refused, counted)
#: Memory-hard key-derivation schemes a stored credential hash may name (docs/rules.md §10).
MEMORY_HARD = ("scrypt", "argon2id", "argon2")
ALL_SECRETS = (*ACCESS_KEYS.values(), *PASSWORDS.values(), NEW_PASSWORD, WRONG_PASSWORD)
BILLING = {"method": "phone_bill", "number": "06-1234-5678", "cycle_start_day": 1}
APPLICANT = {"name": "Yamada Taro", "phone": "06-1234-5678", "contract_holder": True}


@attrs.define
class World:
    """What :func:`build_world` wrote, so tests can check it."""

    clock: datetime
    receipts: list[str] = attrs.field(factory=list)
    #: Receipts of monthly subscriptions still active, by line.
    active: dict[str, list[str]] = attrs.field(factory=dict)
    keyed_receipt: str = ""
    keyed_at: datetime = T0

    def tick(self) -> datetime:
        self.clock += timedelta(minutes=1)
        return self.clock


def build_world(engine: Engine) -> World:
    """Two lines, four Passport IDs, monthly and per-purchase buys, a key, a wrong password."""
    w = World(clock=T0)
    for cid in (LINE_A, LINE_B):
        engine.open_line(
            at=w.tick(),
            customer_id=cid,
            operator="west",
            kind="hikari_next",
            access_key=ACCESS_KEYS[cid],
            line_limit=20_000,
            billing=BILLING,
        )
    engine.register_provider(
        at=w.tick(),
        provider=PROVIDER,
        name="Provider One",
        contact="ops@prov1.jp",
        goods="information",
    )
    for service, pricing, price in (
        ("mon1", "monthly", 500),
        ("mon2", "monthly", 800),
        ("item1", "per_purchase", 300),
    ):
        engine.list_service(
            at=w.tick(),
            provider=PROVIDER,
            service=service,
            name=f"Service {service}",
            pricing=pricing,
            price=price,
        )
    for cid, pids in ((LINE_A, PASSPORTS_A), (LINE_B, (PASSPORT_B,))):
        for pid in pids:
            engine.register_passport(
                at=w.tick(),
                customer_id=cid,
                access_key=ACCESS_KEYS[cid],
                passport_id=pid,
                password=PASSWORDS[pid],
                email=f"{pid}@example.jp",
                applicant=APPLICANT,
                limit=5000,
                line_auth=False,
            )
    w.active = {LINE_A: [], LINE_B: []}
    buys = [
        ("alice.a1", "mon1", LINE_A),
        ("alice.a1", "mon2", LINE_A),
        ("alice.a1", "item1", None),
        ("alice.a2", "mon1", LINE_A),
        ("alice.a3", "item1", None),
        (PASSPORT_B, "mon1", LINE_B),
        (PASSPORT_B, "item1", None),
    ]
    for pid, service, line in buys:
        r = engine.purchase(
            at=w.tick(),
            passport_id=pid,
            password=PASSWORDS[pid],
            provider=PROVIDER,
            service=service,
        )
        w.receipts.append(r.receipt)
        if line is not None:
            w.active[line].append(r.receipt)
    w.keyed_at = w.tick()
    r = engine.purchase(
        at=w.keyed_at,
        passport_id="alice.a3",
        password=PASSWORDS["alice.a3"],
        provider=PROVIDER,
        service="mon2",
        key="order-0001",
    )
    w.keyed_receipt = r.receipt
    w.receipts.append(r.receipt)
    w.active[LINE_A].append(r.receipt)
    with pytest.raises(WrongPassword):
        engine.purchase(
            at=w.tick(),
            passport_id="alice.a3",
            password=WRONG_PASSWORD,
            provider=PROVIDER,
            service="item1",
        )
    engine.change_passport_details(
        at=w.tick(), passport_id="alice.a2", access_key=ACCESS_KEYS[LINE_A], password=NEW_PASSWORD
    )
    return w


# ---------------------------------------------------------------------------------------------
# Helpers


def is_memory(store_url: str) -> bool:
    return store_url in MEMORY


Reopen = Callable[[Engine], Engine]


@pytest.fixture
def reopen(store_url: str, make_engine: EngineFactory) -> Reopen:
    """A "restarted" engine on the store of ``first`` (see the module docstring for memory)."""

    def again(first: Engine) -> Engine:
        if is_memory(store_url):
            first.internals.forget_cached_states()
            return first
        return make_engine()

    return again


@pytest.fixture
def restart_only(store_url: str) -> None:
    if is_memory(store_url):
        pytest.skip(
            "the in-memory (POPO) store lives inside one engine and is gone with it: "
            "there is nothing to restart onto"
        )


def notifications(engine: Engine) -> Sequence[Notification]:
    return engine.internals.recorder.select_notifications(start=1, limit=10**6)


def max_id(engine: Engine) -> int:
    return engine.internals.recorder.max_notification_id() or 0


def row(n: Notification) -> tuple[int, UUID, int, str, bytes]:
    """A notification as plain values (PostgreSQL hands back ``memoryview``/native UUIDs)."""
    return (n.id, UUID(str(n.originator_id)), n.originator_version, n.topic, bytes(n.state))


def without_personal_digests(state: bytes) -> Any:
    """A stored event's JSON state with the salted digests of its personal values blanked."""
    data = json.loads(state)
    for value in data.values():
        if isinstance(value, dict) and "personal" in value:
            value["digest"] = "…"
    return data


def all_states(engine: Engine, world: World) -> dict[str, Any]:
    states: dict[str, Any] = {}
    for cid in (LINE_A, LINE_B):
        states[f"line:{cid}"] = engine.line(cid)
    for pid in (*PASSPORTS_A, PASSPORT_B):
        states[f"passport:{pid}"] = engine.passport(pid)
    for receipt in world.receipts:
        states[f"subscription:{receipt}"] = engine.subscription(receipt)
    states["provider"] = engine.provider(PROVIDER)
    states["closed_through"] = engine.closed_through()
    return states


@attrs.define
class InsertSpy:
    """Records every batch of stored events handed to the recorder's ``insert_events``."""

    calls: list[list[StoredEvent]] = attrs.field(factory=list)


@pytest.fixture
def spy_inserts(monkeypatch: pytest.MonkeyPatch) -> Callable[[Engine], InsertSpy]:
    def install(engine: Engine) -> InsertSpy:
        spy = InsertSpy()
        real = engine.internals.recorder.insert_events

        def insert_events(stored_events: Sequence[StoredEvent], **kwargs: Any) -> Any:
            spy.calls.append(list(stored_events))
            return real(stored_events, **kwargs)

        monkeypatch.setattr(engine.internals.recorder, "insert_events", insert_events)
        return spy

    return install


# ---------------------------------------------------------------------------------------------
# Reading back


def test_a_second_engine_reads_back_exactly_the_events_written(
    make_engine: EngineFactory, reopen: Reopen
) -> None:
    first = make_engine()
    build_world(first)
    written = [row(n) for n in notifications(first)]
    decoded = [first.internals.mapper.to_domain_event(n) for n in notifications(first)]

    second = reopen(first)
    read = notifications(second)
    assert [row(n) for n in read] == written
    again = [second.internals.mapper.to_domain_event(n) for n in read]
    assert again == decoded
    # The wire format is canonical: decoding and encoding again gives the very same bytes —
    # but for the salted digests of personal values, drawn afresh each time (the values live
    # apart from their events, so that erasure can delete them).
    assert [
        without_personal_digests(second.internals.mapper.to_stored_event(e).state) for e in again
    ] == [without_personal_digests(r[4]) for r in written]
    # Per stream, in version order, too.
    for stream in {r[1] for r in written}:
        expected = [e for e in decoded if e.originator_id == stream]
        assert list(second.internals.events.get(stream)) == expected


def test_states_rebuild_equal_after_restart(make_engine: EngineFactory, reopen: Reopen) -> None:
    first = make_engine()
    world = build_world(first)
    before = all_states(first, world)
    assert all(v is not None for k, v in before.items() if k != "closed_through")

    second = reopen(first)
    assert all_states(second, world) == before
    # And the rebuilt engine decides as the first one would have.
    passport = second.passport("alice.a1")
    assert passport is not None
    assert passport.purchases == 3
    assert {h.service.value for h in passport.holdings.values() if h.active} == {"mon1", "mon2"}
    locked_out = second.passport("alice.a3")
    assert locked_out is not None
    assert locked_out.consecutive_failures == 1
    r = second.purchase(
        at=world.tick(),
        passport_id="alice.a2",
        password=NEW_PASSWORD,
        provider=PROVIDER,
        service="item1",
    )
    assert second.subscription(r.receipt) is not None


# ---------------------------------------------------------------------------------------------
# One command, one transaction


@pytest.mark.parametrize("command", ["regulate_line", "change_line"])
def test_a_multi_stream_command_writes_all_its_events_in_one_transaction(
    command: str,
    make_engine: EngineFactory,
    reopen: Reopen,
    spy_inserts: Callable[[Engine], InsertSpy],
) -> None:
    engine = make_engine()
    world = build_world(engine)
    active = world.active[LINE_A]
    assert len(active) == 4  # spread over alice.a1 (2), alice.a2 and alice.a3
    before = max_id(engine)
    spy = spy_inserts(engine)

    at = world.tick()
    if command == "regulate_line":
        result: Any = engine.regulate_line(at=at, customer_id=LINE_A)
        expected = {"matome.line.Regulated": 1}
    else:
        result = engine.change_line(at=at, customer_id=LINE_A, change="cancellation")
        expected = {"matome.line.LineMoved": 1, "matome.passport.PassportDeleted": 3}
        assert sorted(p.value for p in result.deleted) == sorted(PASSPORTS_A)
    expected |= {"matome.subscription.Cancelled": 4, "matome.passport.HoldingEnded": 4}
    assert sorted(result.cancelled) == sorted(active)

    assert len(spy.calls) == 1, "the command was saved in more than one insert"
    batch = spy.calls[0]
    counts: dict[str, int] = {}
    for s in batch:
        counts[s.topic] = counts.get(s.topic, 0) + 1
    assert counts == expected
    # All present, with consecutive notification ids (nobody else wrote in between).
    after = max_id(engine)
    new = engine.internals.recorder.select_notifications(start=before + 1, limit=10**6)
    assert [n.id for n in new] == list(range(before + 1, after + 1))
    assert len(new) == len(batch)
    assert {(UUID(str(n.originator_id)), n.originator_version) for n in new} == {
        (UUID(str(s.originator_id)), s.originator_version) for s in batch
    }
    # A restarted engine sees the command's whole effect.
    second = reopen(engine)
    for receipt in active:
        sub = second.subscription(receipt)
        assert sub is not None
        assert not sub.active
    line = second.line(LINE_A)
    assert line is not None
    assert line.regulated if command == "regulate_line" else line.ended


# ---------------------------------------------------------------------------------------------
# Idempotency keys


def test_idempotency_keys_survive_a_restart(make_engine: EngineFactory, reopen: Reopen) -> None:
    first = make_engine()
    world = build_world(first)
    at = world.tick()
    body: dict[str, Any] = {
        "passport_id": PASSPORT_B,
        "password": PASSWORDS[PASSPORT_B],
        "provider": PROVIDER,
        "service": "item1",
    }
    answer = first.purchase(at=at, key="order-0002", **body)
    written = max_id(first)

    second = reopen(first)
    # The same key and body answers the first result, and writes nothing.
    assert second.purchase(at=at, key="order-0002", **body) == answer
    # The same instant written in another offset is the same body.
    assert second.purchase(at=at.astimezone(UTC), key="order-0002", **body) == answer
    # The key bound by build_world, too.
    assert (
        second.purchase(
            at=world.keyed_at,
            passport_id="alice.a3",
            password=PASSWORDS["alice.a3"],
            provider=PROVIDER,
            service="mon2",
            key="order-0001",
        ).receipt
        == world.keyed_receipt
    )
    assert max_id(second) == written

    # A different body under the same key is a conflict, and writes nothing.
    with pytest.raises(IdempotencyConflict) as refused:
        second.purchase(at=at, key="order-0002", **(body | {"service": "mon2"}))
    assert refused.value.code == "idempotency_conflict"
    assert max_id(second) == written
    # A different secret under the same key is no free guess (contract 2, docs/rules.md §10): it is
    # a wrong password, counted — and the key still answers its first result.
    with pytest.raises(WrongPassword):
        second.purchase(at=at, key="order-0002", **(body | {"password": "Other123"}))
    new = second.internals.recorder.select_notifications(start=written + 1, limit=10)
    assert [n.topic for n in new] == ["matome.passport.PasswordRejected"]
    assert second.purchase(at=at, key="order-0002", **body) == answer
    passport = second.passport(PASSPORT_B)
    assert passport is not None
    assert passport.purchases == 3
    assert passport.consecutive_failures == 1


def test_keys_are_answered_by_an_engine_that_never_saw_them(
    make_engine: EngineFactory, restart_only: None
) -> None:
    """Across a real process boundary: the new engine's hasher has a new key and no memo."""
    first = make_engine()
    world = build_world(first)
    second = make_engine()
    assert second.internals.hasher._verified == {}
    r = second.purchase(
        at=world.keyed_at,
        passport_id="alice.a3",
        password=PASSWORDS["alice.a3"],
        provider=PROVIDER,
        service="mon2",
        key="order-0001",
    )
    assert r.receipt == world.keyed_receipt


# ---------------------------------------------------------------------------------------------
# Failures while saving


def _purchase_a1_item(engine: Engine, world: World) -> str:
    return engine.purchase(
        at=world.clock,
        passport_id="alice.a1",
        password=PASSWORDS["alice.a1"],
        provider=PROVIDER,
        service="item1",
        key="order-fail",
    ).receipt


def test_a_failing_save_leaves_nothing_written(
    make_engine: EngineFactory, reopen: Reopen, monkeypatch: pytest.MonkeyPatch
) -> None:
    engine = make_engine()
    world = build_world(engine)
    states = all_states(engine, world)
    before = max_id(engine)
    handed: list[StoredEvent] = []

    def broken(stored_events: Sequence[StoredEvent], **_: Any) -> Any:
        handed.extend(stored_events)
        raise OSError("disk on fire")

    world.tick()
    with monkeypatch.context() as m:
        m.setattr(engine.internals.recorder, "insert_events", broken)
        # A failing store is reported as ``store_unavailable``, naming the cause.
        with pytest.raises(StoreUnavailable, match="disk on fire") as failed:
            _purchase_a1_item(engine, world)
    assert isinstance(failed.value.__cause__, OSError)
    assert {s.topic for s in handed} == {
        "matome.subscription.Purchased",
        "matome.passport.HoldingAdded",
        "matome.idempotency.KeyBound",
    }
    assert max_id(engine) == before
    assert all_states(engine, world) == states  # the engine's caches did not move either
    # The key was not bound: retrying the command does it, once.
    receipt = _purchase_a1_item(engine, world)
    assert _purchase_a1_item(reopen(engine), world) == receipt
    assert max_id(engine) == before + 3


def _insert_then_fail_sqlite(engine: Engine, seen: list[int]) -> Callable[..., Any]:
    recorder: Any = engine.internals.recorder
    real = recorder._insert_events

    def insert_then_fail(c: Any, stored_events: Sequence[StoredEvent], **kw: Any) -> Any:
        real(c, stored_events, **kw)
        c.execute(f"SELECT COUNT(*) FROM {recorder.events_table_name}")
        seen.append(c.fetchone()[0])
        raise OSError("connection lost after the insert")

    return insert_then_fail


def _insert_then_fail_postgres(engine: Engine, seen: list[int]) -> Callable[..., Any]:
    recorder: Any = engine.internals.recorder
    # ``_insert_events`` is PostgresApplicationRecorder's hook, called inside the write
    # transaction just before the insert: do the insert there, look, then fail.
    real_insert = recorder._insert_stored_events

    def insert_then_fail(curs: Any, stored_events: Sequence[StoredEvent], **kw: Any) -> Any:
        real_insert(curs, stored_events, **kw)
        schema, table = recorder.datastore.schema, recorder.events_table_name
        curs.execute(f'SELECT COUNT(*) AS n FROM "{schema}"."{table}"')
        seen.append(curs.fetchone()["n"])
        raise OSError("connection lost after the insert")

    return insert_then_fail


def test_a_failure_after_the_insert_rolls_the_whole_command_back(
    store_url: str, make_engine: EngineFactory, reopen: Reopen, monkeypatch: pytest.MonkeyPatch
) -> None:
    if is_memory(store_url):
        pytest.skip(
            "the POPO store has no transactions to roll back; a save that fails before "
            "writing is covered by test_a_failing_save_leaves_nothing_written"
        )
    engine = make_engine()
    world = build_world(engine)
    states = all_states(engine, world)
    before = max_id(engine)
    count_before = len(notifications(engine))
    seen: list[int] = []
    if store_url.startswith("postgres"):
        broken = _insert_then_fail_postgres(engine, seen)
    else:
        broken = _insert_then_fail_sqlite(engine, seen)

    world.tick()
    with monkeypatch.context() as m:
        m.setattr(engine.internals.recorder, "_insert_events", broken)
        with pytest.raises(StoreUnavailable, match="after the insert"):
            engine.regulate_line(at=world.clock, customer_id=LINE_A)
    # Inside the transaction the rows were there (4 cancellations, 4 holdings ended, the line).
    assert seen == [count_before + 9]
    assert max_id(engine) == before
    assert len(notifications(engine)) == count_before
    assert all_states(engine, world) == states
    assert all_states(reopen(engine), world) == states


# ---------------------------------------------------------------------------------------------
# What is stored


def _valid_state(**changes: Any) -> bytes:
    from matome.wire import dumps

    state: dict[str, Any] = {
        "at": "2024-06-03T10:00:00+09:00",
        "timestamp": "2024-06-03T01:00:00+00:00",
        "limit": 3000,
    }
    for k, v in changes.items():
        if v is None:
            del state[k]
        else:
            state[k] = v
    return dumps(state).encode()


BAD_EVENTS = [
    pytest.param("matome.passport.LimitChanged", _valid_state(limit="lots"), id="yen-not-int"),
    pytest.param("matome.passport.LimitChanged", _valid_state(limit=12.5), id="yen-float"),
    pytest.param(
        "matome.passport.LimitChanged", _valid_state(at="2024-06-03T10:00:00"), id="naive-time"
    ),
    pytest.param("matome.passport.LimitChanged", _valid_state(limit=None), id="missing-field"),
    pytest.param("matome.passport.Vanished", _valid_state(), id="unknown-topic"),
    pytest.param("matome.events.passport:LimitChanged", _valid_state(), id="module-path-topic"),
    pytest.param("matome.passport.LimitChanged", b"{not json", id="not-json"),
]


@pytest.mark.parametrize(("topic", "state"), BAD_EVENTS)
def test_stored_events_are_validated_on_load(
    topic: str, state: bytes, make_engine: EngineFactory
) -> None:
    engine = make_engine()
    good_id, bad_id = uuid4(), uuid4()
    good = StoredEvent(
        originator_id=good_id,
        originator_version=1,
        topic="matome.passport.LimitChanged",
        state=_valid_state(),
    )
    bad = StoredEvent(originator_id=bad_id, originator_version=1, topic=topic, state=state)
    engine.internals.recorder.insert_events([good, bad])
    # The hand-made good row loads (so the bad one fails for its content, not its envelope).
    (loaded,) = engine.internals.events.get(good_id)
    assert isinstance(loaded, passport_ev.LimitChanged)
    assert loaded.limit.amount == 3000
    with pytest.raises(MapperDeserialisationError):
        list(engine.internals.events.get(bad_id))


def test_a_corrupt_event_on_a_stream_stops_its_aggregate_from_loading(
    make_engine: EngineFactory, reopen: Reopen
) -> None:
    engine = make_engine()
    build_world(engine)
    passport = engine.passport("alice.a1")
    assert passport is not None
    bad = StoredEvent(
        originator_id=passport_id_stream(PassportId("alice.a1")),
        originator_version=passport.version + 1,
        topic="matome.passport.LimitChanged",
        state=_valid_state(limit="5000"),
    )
    engine.internals.recorder.insert_events([bad])
    with pytest.raises(StoreUnavailable, match="does not load") as failed:
        reopen(engine).passport("alice.a1")
    assert isinstance(failed.value.__cause__, MapperDeserialisationError)


def test_every_stored_topic_is_a_stable_registered_topic(make_engine: EngineFactory) -> None:
    engine = make_engine()
    world = build_world(engine)
    engine.regulate_line(at=world.tick(), customer_id=LINE_B)
    engine.issue_bills(at=datetime(2024, 7, 1, tzinfo=TOKYO), month="2024-06")
    stored = notifications(engine)
    topics = {n.topic for n in stored}
    assert topics <= set(EVENT_TOPICS)
    assert len(topics) >= 12
    for topic in topics:
        assert ":" not in topic  # not module:QualName
        assert topic.startswith("matome.")
    for n in stored:
        event = engine.internals.mapper.to_domain_event(n)
        assert isinstance(event, DomainEvent)
        assert n.topic == event.TOPIC
    # Topics are stable names, not derived from where the classes live.
    for topic, cls in EVENT_TOPICS.items():
        assert topic == cls.TOPIC
        assert cls.__module__ not in topic


def test_no_secret_is_stored_in_clear_text(make_engine: EngineFactory) -> None:
    """docs/rules.md §10: credentials are never stored in clear text — only salted hashes of a
    memory-hard KDF (one per access key, password, changed password, idempotency secret)."""
    engine = make_engine()
    build_world(engine)
    states = [bytes(n.state) for n in notifications(engine)]
    hashes = [
        value
        for state in states
        for key, value in json.loads(state).items()
        if key.endswith("_hash") and isinstance(value, str)
    ]
    assert len(hashes) >= len(ACCESS_KEYS) + len(PASSWORDS) + 1
    assert all(h.split("$")[0] in MEMORY_HARD for h in hashes), hashes
    stored = b"\n".join(states)
    for secret in ALL_SECRETS:
        for form in {secret, secret.lower(), secret.upper()}:
            assert form.encode() not in stored, "a secret is stored in clear text"
