"""Properties of the billing projection over random small histories (docs/rules.md §4–§8).

Hypothesis draws a few lines and Passport IDs and a chronological run of purchases, cancels,
refunds, regulations and lifts, billing changes, deletions, line changes and month closings
spread over 2–4 months of 2024 — with times on Tokyo midnights, written in JST or in UTC — and
applies them to an in-memory engine (refused commands are part of the game).  Then:

* every bill adds up: sum of rows == subtotal == sum of its charges == sum of the statement
  amounts over all its pages;
* the incremental views equal views rebuilt from the log;
* each event is applied exactly once (so many view rows as events of their kind);
* a rebuild interrupted mid-way resumes from its last committed batch to the same views.

One non-Hypothesis case runs the rebuild properties on every store (memory, SQLite, PostgreSQL).
"""

from __future__ import annotations

import io
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from typing import Any

import attrs
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from matome.demo import DEMO_LINES, run_demo
from matome.engine import Engine
from matome.errors import MatomeError
from matome.events import bill as bill_ev
from matome.events import line as line_ev
from matome.events import passport as passport_ev
from matome.events import subscription as sub_ev
from matome.events.base import DomainEvent
from matome.projections import runner
from matome.projections.tables import Change
from matome.projections.views import Lookups, Raw, When
from matome.values import TOKYO
from matome.wire import to_json
from tests.conftest import TEST_ITERATIONS, EngineFactory

PW = "Pass1234"
#: Every line's access key (the line holder's credential, contract 2).
KEY = "Ak3y0001"
APPLICANT: dict[str, Any] = {
    "name": "Yamada Taro",
    "phone": "06-1234-5678",
    "contract_holder": True,
}
BILLINGS: tuple[dict[str, Any], ...] = (
    {"method": "customer_number", "number": "0012345678"},
    {"method": "phone_bill", "number": "06-1234-5678", "cycle_start_day": 6},
)
#: (provider, service, pricing, price)
CATALOG = (
    ("P1", "m1", "monthly", 300),
    ("P1", "pp", "per_purchase", 200),
    ("P2", "m2", "monthly", 500),
    ("P2", "m1", "monthly", 300),
    ("P2", "pp", "per_purchase", 150),
)
SETUP_AT = "2023-12-01T09:00:00+09:00"
#: Every month a history can touch, with a margin on both sides.
MONTHS = ("2023-12", "2024-01", "2024-02", "2024-03", "2024-04", "2024-05")
#: Times of day that sit on or next to the Tokyo midnight, and one ordinary time.
CLOCKS = ((0, 0, 0), (0, 30, 0), (12, 0, 0), (23, 59, 59))


def cid(n: int) -> str:
    return f"CAF{n + 1:010d}"


def pid(n: int) -> str:
    return f"pass.{n + 1}"


@attrs.frozen
class Op:
    """One drawn command: ``kind``, its Tokyo instant, its offset, and small-integer args."""

    kind: str
    at: datetime
    utc: bool
    args: tuple[int, ...]

    @property
    def at_text(self) -> str:
        return (self.at.astimezone(UTC) if self.utc else self.at).isoformat()


@attrs.frozen
class History:
    lines: int
    passport_lines: tuple[int, ...]
    ops: tuple[Op, ...]


KINDS = (
    ("purchase", 8),
    ("cancel", 4),
    ("refund", 2),
    ("regulate", 1),
    ("lift", 1),
    ("change_billing", 1),
    ("delete_passport", 1),
    ("change_line", 1),
    ("issue", 1),
)


@st.composite
def instants(draw: st.DrawFn, months: int) -> datetime:
    month = draw(st.integers(1, months))
    last = (datetime(2024, month + 1, 1) - timedelta(days=1)).day
    day = draw(st.sampled_from((1, 2, 15, last)) | st.integers(1, last))
    hour, minute, second = draw(st.sampled_from(CLOCKS))
    return datetime(2024, month, day, hour, minute, second, tzinfo=TOKYO)


@st.composite
def histories(draw: st.DrawFn) -> History:
    lines = draw(st.integers(1, 3))
    passport_lines = tuple(draw(st.lists(st.integers(0, lines - 1), min_size=1, max_size=3)))
    months = draw(st.integers(2, 4))
    weighted = [kind for kind, weight in KINDS for _ in range(weight)]
    ops = draw(
        st.lists(
            st.builds(
                Op,
                kind=st.sampled_from(weighted),
                at=instants(months),
                utc=st.booleans(),
                args=st.tuples(st.integers(0, 50), st.integers(0, 600)),
            ),
            min_size=1,
            max_size=20,
        )
    )
    return History(lines, passport_lines, tuple(sorted(ops, key=lambda op: op.at)))


def new_engine() -> Engine:
    return Engine.open(":memory:", hash_iterations=TEST_ITERATIONS)


def setup(engine: Engine, history: History) -> None:
    for code in sorted({p for p, *_ in CATALOG}):
        engine.register_provider(
            at=SETUP_AT, provider=code, name=f"{code} Co.", contact="0120-1", goods="information"
        )
    for code, svc, pricing, price in CATALOG:
        engine.list_service(
            at=SETUP_AT, provider=code, service=svc, name=svc, pricing=pricing, price=price
        )
    for n in range(history.lines):
        engine.open_line(
            at=SETUP_AT,
            customer_id=cid(n),
            operator="west",
            kind="hikari_next",
            access_key=KEY,
            line_limit=20000,
            billing=BILLINGS[n % 2],
        )
    for n, line in enumerate(history.passport_lines):
        engine.register_passport(
            at="2023-12-02T09:00:00+09:00",
            customer_id=cid(line),
            passport_id=pid(n),
            password=PW,
            email=f"p{n}@example.jp",
            applicant=APPLICANT,
            limit=5000,
            line_auth=False,
            access_key=KEY,
        )


def apply(
    engine: Engine, history: History, after_each: Callable[[], object] | None = None
) -> Counter[str]:
    """Set up the world and apply every op; return how many were accepted/refused by code.

    ``after_each`` runs after every op (e.g. a projection catch-up)."""
    setup(engine, history)
    receipts: list[str] = []
    outcome: Counter[str] = Counter()
    for op in history.ops:
        a, b = op.args
        at = op.at_text
        line = cid(a % history.lines)
        try:
            if op.kind == "purchase":
                provider, svc, _, _ = CATALOG[b % len(CATALOG)]
                result = engine.purchase(
                    at=at,
                    passport_id=pid(a % len(history.passport_lines)),
                    password=PW,
                    provider=provider,
                    service=svc,
                )
                receipts.append(result.receipt)
            elif op.kind == "cancel" and receipts:
                engine.cancel(at=at, receipt=receipts[a % len(receipts)], password=PW)
            elif op.kind == "refund" and receipts:
                engine.refund(
                    at=at, receipt=receipts[a % len(receipts)], amount=b % 300 + 1, reason="r"
                )
            elif op.kind == "regulate":
                engine.regulate_line(at=at, customer_id=line)
            elif op.kind == "lift":
                engine.lift_regulation(at=at, customer_id=line, channel="written")
            elif op.kind == "change_billing":
                engine.change_billing(
                    at=at, customer_id=line, billing=BILLINGS[b % 2], reason="customer_number"
                )
            elif op.kind == "delete_passport":
                engine.delete_passport(
                    at=at, passport_id=pid(a % len(history.passport_lines)), access_key=KEY
                )
            elif op.kind == "change_line":
                change = ("relocation", "rename", "menu_change", "cancellation")[b % 4]
                new_kind = "hikari_light" if change == "menu_change" else None
                engine.change_line(at=at, customer_id=line, change=change, new_kind=new_kind)
            elif op.kind == "issue":
                month = op.at.replace(day=1) - timedelta(days=1)
                engine.issue_bills(at=at, month=f"{month.year:04d}-{month.month:02d}")
            else:
                continue
            outcome["ok"] += 1
        except MatomeError as e:
            outcome[e.code] += 1
        if after_each is not None:
            after_each()
    return outcome


def line_ids(engine: Engine) -> list[str]:
    projection, _ = engine.internals.views
    projection.catch_up()
    return [r[0] for r in projection.query("SELECT customer_id FROM mv_lines")]


def check_documents_add_up(engine: Engine) -> None:
    for customer_id in line_ids(engine):
        for month in MONTHS:
            bill = to_json(engine.bill(customer_id, month))
            rows = sum(r["amount"] for r in bill["rows"])
            charges = sum(c["amount"] for c in bill["charges"])
            assert rows == bill["subtotal"] == charges, (customer_id, month, bill)
            assert [r["provider"] for r in bill["rows"]] == sorted(
                {c["provider"] for c in bill["charges"]}
            )
            statement: list[dict[str, Any]] = []
            page = 1
            while True:
                doc = to_json(engine.statement(customer_id, month, page=page, per_page=2))
                assert doc["total"] == len(bill["charges"])
                statement += doc["rows"]
                if len(doc["rows"]) < 2:
                    break
                page += 1
            assert len(statement) == len(bill["charges"])
            assert sum(r["amount"] for r in statement) == bill["subtotal"]


def topic_counts(engine: Engine) -> Counter[str]:
    notifications = engine.internals.recorder.select_notifications(start=1, limit=10**9)
    return Counter(n.topic for n in notifications)


#: Event class → the view table that holds exactly one row per event of it.
ONE_ROW_PER_EVENT: dict[type[DomainEvent], str] = {
    sub_ev.Purchased: "subs",
    sub_ev.Refunded: "refunds",
    line_ev.LineOpened: "lines",
    line_ev.LineMoved: "continuity",
    passport_ev.Registered: "passports",
    bill_ev.BillIssued: "bills",
}


def check_exactly_once(engine: Engine) -> None:
    projection, _ = engine.internals.views
    projection.catch_up()
    topics = topic_counts(engine)
    dump = projection.dump()
    for event_class, table in ONE_ROW_PER_EVENT.items():
        assert len(dump[table]) == topics[event_class.TOPIC], (event_class, table)
    cancelled = sum(1 for row in projection.query("SELECT cancelled_at FROM mv_subs") if row[0])
    assert cancelled == topics[sub_ev.Cancelled.TOPIC]
    # Nothing is left to apply, and applying "again" changes nothing.
    assert projection.catch_up() == 0
    assert projection.position() == (engine.internals.recorder.max_notification_id() or 0)
    assert projection.dump() == dump


def check_rebuild_equals_incremental(engine: Engine) -> None:
    projection, _ = engine.internals.views
    projection.catch_up()
    incremental = projection.dump()
    engine.rebuild_views()
    assert projection.dump() == incremental


class Fault(Exception):
    """Raised by a view handler to interrupt a rebuild."""


@contextmanager
def faulty_handlers(fail_at: int) -> Iterator[list[int]]:
    """Make the ``fail_at``-th event handled (1-based) raise; yields the handled count."""
    handled = [0]

    def wrap(when: When) -> When:
        def faulty(event: Raw, lookups: Lookups) -> Sequence[Change]:
            handled[0] += 1
            if handled[0] == fail_at:
                raise Fault(f"fault at event {fail_at}")
            return when(event, lookups)

        return faulty

    with pytest.MonkeyPatch.context() as mp:
        for topic, when in list(runner.HANDLERS.items()):
            mp.setitem(runner.HANDLERS, topic, wrap(when))
        yield handled


def check_interrupted_rebuild_resumes(engine: Engine, fail_at: int, batch: int = 3) -> None:
    """Interrupt a rebuild at the ``fail_at``-th handled event, with ``batch`` events per
    transaction; the committed batches stay, and a catch-up finishes the same views."""
    projection, _ = engine.internals.views
    projection.catch_up()
    clean = projection.dump()
    handled_ids = [
        n.id
        for n in engine.internals.recorder.select_notifications(
            start=1, limit=10**9, topics=list(runner.TOPICS)
        )
    ]
    assert 1 <= fail_at <= len(handled_ids)
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(runner, "BATCH", batch)
        with faulty_handlers(fail_at), pytest.raises(Fault):
            engine.rebuild_views()
        committed = (fail_at - 1) // batch
        assert projection.position() == (handled_ids[committed * batch - 1] if committed else 0)
        # The fault is gone: the next catch-up resumes where the rebuild stopped.
        assert projection.catch_up() > 0
    assert projection.position() == (engine.internals.recorder.max_notification_id() or 0)
    assert projection.dump() == clean
    engine.rebuild_views()
    assert projection.dump() == clean


# ---------------------------------------------------------------------------------------------
# Hypothesis


@settings(max_examples=25, deadline=None)
@given(history=histories())
def test_bill_rows_subtotal_and_statement_agree(history: History) -> None:
    """docs/rules.md §7, docs/contract.md ("Bill of one line for one month"): for every line and
    month, the rows add up to the subtotal, as do the charges and the usage statement over all its
    pages."""
    engine = new_engine()
    try:
        apply(engine, history)
        check_documents_add_up(engine)
    finally:
        engine.close()


@settings(max_examples=25, deadline=None)
@given(history=histories())
def test_incremental_views_equal_rebuilt_views(history: History) -> None:
    """docs/rules.md §4–§8 (documents are projections of the log): the views kept up to date
    command by command equal the views rebuilt from the whole log."""
    engine = new_engine()
    try:
        # Catch up after each command, as queries would, so "incremental" is really so.
        apply(engine, history, after_each=lambda: engine.internals.views[0].catch_up())
        check_rebuild_equals_incremental(engine)
    finally:
        engine.close()


@settings(max_examples=25, deadline=None)
@given(history=histories())
def test_every_event_is_applied_exactly_once(history: History) -> None:
    """docs/rules.md §4 (each purchase and refund is its own charge): the views hold one row per
    purchase, refund, line, line change, Passport ID and issued bill in the log — none
    skipped, none applied twice — and a further catch-up applies nothing."""
    engine = new_engine()
    try:
        apply(engine, history)
        check_exactly_once(engine)
    finally:
        engine.close()


@settings(max_examples=25, deadline=None)
@given(history=histories(), data=st.data())
def test_interrupted_rebuild_resumes_to_the_same_views(
    history: History, data: st.DataObject
) -> None:
    """docs/rules.md §7 (bills must not change by being recomputed): a rebuild that fails mid-way
    keeps its committed batches; once the fault is gone, a catch-up resumes from the tracked
    position and yields exactly the views of a clean rebuild."""
    engine = new_engine()
    try:
        apply(engine, history)
        total = len(
            engine.internals.recorder.select_notifications(
                start=1, limit=10**9, topics=list(runner.TOPICS)
            )
        )
        fail_at = data.draw(st.integers(1, total), label="fail_at")
        batch = data.draw(st.integers(1, 4), label="batch")
        check_interrupted_rebuild_resumes(engine, fail_at, batch)
    finally:
        engine.close()


def test_generated_histories_exercise_the_rules() -> None:
    """A sanity check of the generator itself (not of matome): a fixed busy history gets both
    accepted and refused commands, including charges and refunds (docs/rules.md §4–§5)."""
    jan = datetime(2024, 1, 1, tzinfo=TOKYO)
    ops = tuple(
        Op(kind, jan + timedelta(days=day, minutes=30), utc, args)
        for day, kind, utc, args in [
            (0, "purchase", True, (0, 0)),
            (1, "purchase", False, (0, 1)),
            (2, "purchase", False, (0, 0)),  # duplicate
            (31, "cancel", True, (0, 0)),  # Feb 1st 00:30 JST
            (32, "refund", False, (1, 50)),
            (33, "issue", False, (0, 0)),
            (40, "regulate", False, (0, 0)),
            (41, "purchase", False, (0, 1)),  # regulated
        ]
    )
    engine = new_engine()
    try:
        outcome = apply(engine, History(1, (0,), ops))
        assert outcome == Counter({"ok": 6, "duplicate": 1, "line_regulated": 1})
        assert to_json(engine.bill(cid(0), "2024-01"))["subtotal"] == 500
        assert to_json(engine.bill(cid(0), "2024-02"))["subtotal"] == -51
        check_documents_add_up(engine)
        check_exactly_once(engine)
    finally:
        engine.close()


# ---------------------------------------------------------------------------------------------
# Every store


def test_rebuild_and_interrupted_rebuild_on_every_store(
    make_engine: EngineFactory, store_url: str
) -> None:
    """docs/rules.md §4–§8 on memory, SQLite and PostgreSQL: after the demo history (§7's worked
    example, a refund, a regulation, a relocation, two closed months) the incremental views equal
    the rebuilt ones, every event is applied once, and an interrupted rebuild resumes."""
    engine = make_engine()
    assert run_demo(engine, io.StringIO()) == 0
    check_documents_add_up(engine)
    check_exactly_once(engine)
    check_rebuild_equals_incremental(engine)
    total = len(
        engine.internals.recorder.select_notifications(
            start=1, limit=10**9, topics=list(runner.TOPICS)
        )
    )
    check_interrupted_rebuild_resumes(engine, fail_at=total // 2 + 1, batch=3)
    check_interrupted_rebuild_resumes(engine, fail_at=1, batch=3)
    if store_url == ":memory:":
        return  # nothing is shared between in-memory engines
    # A second engine on the same store (another process) reads the same views.
    other = make_engine()
    assert to_json(other.bill(DEMO_LINES[0], "2024-01")) == to_json(
        engine.bill(DEMO_LINES[0], "2024-01")
    )
    assert other.internals.views[0].dump() == engine.internals.views[0].dump()
