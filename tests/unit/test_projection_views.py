"""The views declared once (issue 17): each table's DDL, statements and typed row come from one
declaration; the view functions are pure (row changes as data, lookups through an interface);
every reader classifies every registered event topic."""

from __future__ import annotations

import sqlite3
from datetime import datetime
from pathlib import Path
from typing import Any, NamedTuple
from uuid import uuid4

import pytest
from eventsourcing.persistence import MapperDeserialisationError, StoredEvent

from matome import audit
from matome.documents import BillStatus, bill_status
from matome.engine import Engine
from matome.events import EVENT_TOPICS
from matome.events import bill as bill_ev
from matome.events import ledger as ledger_ev
from matome.events import subscription as sub_ev
from matome.projections import _writer
from matome.projections import views as v
from matome.projections.memory import MemoryViews
from matome.projections.tables import Index, Insert, MemoryTables, Table, Update, Upsert
from matome.values import CustomerId, YearMonth
from tests.unit.helpers import CID, ITEM, buy, cancel, setup_world

# ---------------------------------------------------------------------------------------------
# Declarations


class _Row(NamedTuple):
    key: str
    other: str
    amount: int
    note: str | None


_TABLE = Table(
    "sample", _Row, key=("key",), unique=("other",), indexes=(Index("mv_s", ("amount",)),)
)


def test_ddl_is_derived_from_the_declaration_for_each_dialect() -> None:
    (sqlite,) = _TABLE.ddl("sqlite")
    (postgres,) = _TABLE.ddl("postgres")
    assert sqlite == (
        "CREATE TABLE IF NOT EXISTS mv_sample (key TEXT NOT NULL, other TEXT NOT NULL, "
        "amount INTEGER NOT NULL, note TEXT, PRIMARY KEY (key), UNIQUE (other))"
    )
    assert "amount BIGINT NOT NULL" in postgres
    assert "note TEXT," in postgres  # nullable: no NOT NULL
    assert _TABLE.query_index_ddl() == {
        "mv_s": "CREATE INDEX IF NOT EXISTS mv_s ON mv_sample (amount)"
    }
    assert _TABLE.insert_sql == (
        "INSERT INTO mv_sample (key, other, amount, note) VALUES (?, ?, ?, ?)"
    )


def test_a_declaration_refuses_a_column_type_the_views_cannot_store() -> None:
    class Bad(NamedTuple):
        key: str
        at: datetime

    with pytest.raises(TypeError, match=r"Bad\.at"):
        Table("bad", Bad, key=("key",))
    with pytest.raises(ValueError, match="no column"):
        Table("bad", _Row, key=("missing",))


def test_keys_and_looked_up_columns_are_never_updated() -> None:
    """The runner's reordering relies on it (the lookups read rows it has not written yet)."""
    with pytest.raises(ValueError, match="cannot update"):
        _TABLE.update_sql("key", ("other",))
    with pytest.raises(ValueError, match="cannot update"):
        v.SUBS.update_sql("stream", ("purchased_at",))
    with pytest.raises(ValueError, match="unique column"):
        _TABLE.update_sql("amount", ("note",))
    assert _TABLE.update_sql("other", ("amount", "note")) == (
        "UPDATE mv_sample SET amount = ?, note = ? WHERE other = ?"
    )


def _sample(table: Table[Any], n: int) -> Any:
    values: list[str | int | None] = []
    for i, column in enumerate(table.columns):
        if column.nullable and (n + i) % 2:
            values.append(None)
        else:
            values.append(f"{column.name}-{n}" if column.type is str else n * 1000 + i)
    return table.read(values)


@pytest.mark.parametrize("table", v.TABLES, ids=lambda t: t.name)
def test_every_view_table_round_trips_its_typed_row_through_sqlite(table: Table[Any]) -> None:
    db = sqlite3.connect(":memory:")
    for ddl in (*table.ddl("sqlite"), *table.query_index_ddl().values()):
        db.execute(ddl)
    rows = [_sample(table, n) for n in (1, 2)]
    db.executemany(table.insert_sql, rows)
    read = [
        table.read(r) for r in db.execute(f"SELECT {table.select_columns()} FROM {table.sql_name}")
    ]
    assert sorted(read) == sorted(rows)
    assert all(type(r) is table.row for r in read)
    # The same changes in memory give the same rows.
    memory = MemoryTables([table])
    memory.apply(Insert(table, r) for r in rows)
    assert sorted(memory.rows(table)) == sorted(read)


def test_an_upsert_sets_or_adds_the_same_in_sql_and_in_memory() -> None:
    db = sqlite3.connect(":memory:")
    for ddl in v.PROVIDER_MONTHS.ddl("sqlite"):
        db.execute(ddl)
    columns = v.PROVIDER_MONTHS.column_names
    changes = [
        Upsert(v.PROVIDER_MONTHS, columns, ("2024-01", "A", "east", 500, 1), ("amount", "lines")),
        Upsert(v.PROVIDER_MONTHS, columns, ("2024-01", "A", "east", 300, 1), ("amount", "lines")),
        Upsert(v.PROVIDER_MONTHS, columns, ("2024-01", "B", "east", 100, 1), ("amount", "lines")),
    ]
    for c in changes:
        db.execute(v.PROVIDER_MONTHS.upsert_sql(c.columns, c.add), c.values)
    memory = MemoryTables([v.PROVIDER_MONTHS])
    memory.apply(changes)
    in_sql = sorted(
        db.execute(f"SELECT {v.PROVIDER_MONTHS.select_columns()} FROM mv_provider_months")
    )
    assert [tuple(r) for r in memory.rows(v.PROVIDER_MONTHS)] == in_sql
    assert in_sql[0] == ("2024-01", "A", "east", 800, 2)


def test_the_runner_refuses_to_reorder_changes_that_do_not_commute() -> None:
    kind = Update(v.LINES, "customer_id", "C1", ("kind",), ("x",))
    kind_and_end = Update(v.LINES, "customer_id", "C1", ("kind", "ended_at"), ("y", "z"))
    with pytest.raises(RuntimeError, match="mv_lines"):
        _writer._check_commute([_writer._shape(kind), _writer._shape(kind_and_end)])
    ended = Update(v.LINES, "customer_id", "C1", ("ended_at", "successor"), ("z", None))
    _writer._check_commute([_writer._shape(kind), _writer._shape(ended)])  # disjoint: fine


# ---------------------------------------------------------------------------------------------
# The view functions, without a database


class _Lookups:
    """Lookups answered by dictionaries."""

    def __init__(self) -> None:
        self.purchases: dict[str, tuple[str, datetime]] = {}
        self.lines: dict[str, str] = {}
        self.operators: dict[str, str] = {}

    def purchase(self, stream: str) -> tuple[str, datetime] | None:
        return self.purchases.get(stream)

    def customer(self, stream: str) -> str | None:
        return self.lines.get(stream)

    def operator(self, customer_id: str) -> str | None:
        return self.operators.get(customer_id)


def _purchased(pricing: str, ends: str | None) -> v.Raw:
    state = {
        "at": "2024-01-10T10:00:00+09:00",
        "receipt": "R1",
        "customer_id": "C1",
        "passport_id": "p.1",
        "provider": "A",
        "service": "back",
        "service_name": "Back",
        "pricing": pricing,
        "price": 525,
        "quantity": 1,
        "period_ends_at": ends,
    }
    return v.Raw("S1", 1, state)


def test_a_monthly_subscription_with_a_period_is_inserted_ended_at_its_period_end() -> None:
    """§11: the period's end is a cancellation fixed at purchase."""
    (change,) = v.WHEN[sub_ev.Purchased](
        _purchased("monthly", "2024-04-01T00:00:00+09:00"), _Lookups()
    )
    assert isinstance(change, Insert)
    assert change.table is v.SUBS
    row = change.row
    assert isinstance(row, v.SubRow)
    assert row.purchased_month == "2024-01"
    assert row.cancelled_at == row.period_ends_at == "2024-03-31T15:00:00.000000Z"
    assert row.cancelled_month == "2024-03"
    assert row.cancel_reason == sub_ev.CancelReason.PERIOD_ENDED.value
    (item,) = v.WHEN[sub_ev.Purchased](
        _purchased("per_purchase", "2024-04-01T00:00:00+09:00"), _Lookups()
    )
    assert isinstance(item, Insert)
    assert isinstance(item.row, v.SubRow)
    assert item.row.cancelled_at is None


def test_a_cancellation_updates_its_purchase_found_through_the_lookups() -> None:
    cancel = v.Raw("S1", 2, {"at": "2024-02-03T10:00:00+09:00", "reason": "customer"})
    look = _Lookups()
    with pytest.raises(LookupError, match="unknown subscription"):
        v.WHEN[sub_ev.Cancelled](cancel, look)
    look.purchases["S1"] = ("R1", datetime.fromisoformat("2024-01-10T10:00:00+09:00"))
    (change,) = v.WHEN[sub_ev.Cancelled](cancel, look)
    assert change == Update(
        v.SUBS,
        "stream",
        "S1",
        ("cancelled_at", "cancelled_month", "cancel_reason", "cancel_version"),
        ("2024-02-03T01:00:00.000000Z", "2024-02", "customer", 2),
    )


def test_a_refund_of_an_unknown_purchase_changes_nothing() -> None:
    refund = v.Raw("S9", 3, {"at": "2024-02-03T10:00:00+09:00", "amount": 100, "reason": "x"})
    assert v.WHEN[sub_ev.Refunded](refund, _Lookups()) == ()


def test_an_issued_bill_adds_its_rows_to_the_month_totals_of_its_line_operator() -> None:
    text = '{"rows":[{"amount":525,"provider":"A"},{"amount":300,"provider":"B"}]}'
    state = {"customer_id": "C1", "month": "2024-01", "document": text, "digest": "d"}
    issued = v.Raw("B1", 1, state)
    look = _Lookups()
    unknown = v.WHEN[bill_ev.BillIssued](issued, look)
    assert [c.table for c in unknown] == [v.BILLS, v.BILL_ROWS, v.BILL_ROWS]
    # The view keeps the stored text itself, byte for byte: what verify hashes is what it shows.
    first = unknown[0]
    assert isinstance(first, Insert)
    assert first.row[2] == text
    look.operators["C1"] = "west"
    changes = v.WHEN[bill_ev.BillIssued](issued, look)
    totals = [c for c in changes if isinstance(c, Upsert)]
    assert [c.values for c in totals] == [
        ("2024-01", "A", "west", 525, 1),
        ("2024-01", "B", "west", 300, 1),
    ]
    assert all(c.add == ("amount", "lines") for c in totals)


def test_closing_months_and_completing_runs_set_separate_calendar_columns() -> None:
    memory = MemoryTables([v.CALENDAR])
    for cls, through in (
        (ledger_ev.MonthsClosed, "2024-02"),
        (ledger_ev.BillingRunCompleted, "2024-01"),
    ):
        memory.apply(v.WHEN[cls](v.Raw("cal", 1, {"through": through}), _Lookups()))
    assert memory.rows(v.CALENDAR) == [v.CalendarRow(1, "2024-02", "2024-01")]


# ---------------------------------------------------------------------------------------------
# Every reader classifies every topic


@pytest.mark.parametrize(
    ("reader", "handled", "ignored"),
    [("views", v.HANDLED, v.IGNORED), ("audit", audit.HANDLED, audit.IGNORED)],
)
def test_every_registered_topic_is_handled_or_ignored_never_both(
    reader: str, handled: frozenset[type], ignored: frozenset[type]
) -> None:
    registered = set(EVENT_TOPICS.values())
    assert handled | ignored == registered, (
        f"{reader}: unclassified {registered - handled - ignored}"
    )
    assert not handled & ignored, f"{reader}: both handled and ignored: {handled & ignored}"


def test_the_views_fail_on_a_topic_they_neither_handle_nor_ignore(tmp_path: Path) -> None:
    engine = Engine.open(str(tmp_path / "store.sqlite"))
    try:
        setup_world(engine)
        engine.internals.recorder.insert_events(
            [
                StoredEvent(
                    originator_id=uuid4(),
                    originator_version=1,
                    topic="matome.future.Unknown",
                    state=b"{}",
                )
            ]
        )
        projection, _ = engine.internals.views
        with pytest.raises(MapperDeserialisationError, match="neither handle nor ignore"):
            projection.rebuild()
    finally:
        engine.close()


def test_the_views_in_memory_fail_on_an_event_class_nobody_classified() -> None:
    class Unclassified(ledger_ev.MonthsClosed):
        pass

    event = Unclassified(
        originator_id=uuid4(),
        originator_version=1,
        timestamp=datetime.fromisoformat("2024-01-01T00:00:00+00:00"),
        at=datetime.fromisoformat("2024-01-01T00:00:00+09:00"),
        through=YearMonth(2024, 1),
    )
    with pytest.raises(LookupError, match="neither handle nor ignore"):
        MemoryViews().apply([event])


def test_one_lines_streams_read_the_same_in_memory_as_in_sql(tmp_path: Path) -> None:
    """The audit's in-memory views and the SQL views are the same functions on the same log."""
    engine = Engine.open(str(tmp_path / "store.sqlite"))
    try:
        setup_world(engine)
        monthly = buy(engine, "2024-01-10T10:00:00+09:00")
        buy(engine, "2024-01-11T10:00:00+09:00", ITEM)
        cancel(engine, "2024-02-03T10:00:00+09:00", monthly.receipt)
        projection, _ = engine.internals.views
        projection.catch_up()
        history = audit.read_line(engine._store, CustomerId(CID))
        dumped = projection.dump()
        tables: tuple[Table[Any], ...] = (v.LINES, v.BILLING, v.PROVIDERS, v.PASSPORTS, v.SUBS)
        for table in (*tables, v.CALENDAR):
            in_memory = [tuple(r) for r in history.views.tables.rows(table)]
            assert in_memory == dumped[table.name], table.name
        assert len(dumped["subs"]) == 2
    finally:
        engine.close()


# ---------------------------------------------------------------------------------------------
# One bill status


@pytest.mark.parametrize(
    ("closed", "issued", "charged", "status"),
    [
        (None, False, False, BillStatus.PREVIEW),  # nothing closed: a preview
        ("2024-01", True, True, BillStatus.ISSUED),  # its BillIssued is recorded
        ("2024-01", False, True, BillStatus.PREVIEW),  # closed, run cut short: not yet issued
        ("2024-01", False, False, BillStatus.ISSUED),  # closed and nothing to bill: final
        ("2023-12", False, False, BillStatus.PREVIEW),  # a later month stays open
    ],
)
def test_a_bills_status_is_issued_once_recorded_or_final_when_empty_and_closed(
    closed: str | None, issued: bool, charged: bool, status: BillStatus
) -> None:
    """§7: a bill is a preview until issued; a closed month's empty bill is final."""
    through = None if closed is None else YearMonth.parse(closed)
    got = bill_status(YearMonth(2024, 1), through, issued=issued, charged=charged)
    assert got is status


def test_upserts_that_add_merged_per_key_give_the_rows_of_running_them_in_turn() -> None:
    """The runner merges a part's upserts of one key that add (a month's totals, one per bill
    row) into one statement: the rows equal those of the same changes applied one by one."""
    import sqlite3

    columns = v.PROVIDER_MONTHS.column_names
    added = ("amount", "lines")
    changes = [
        Upsert(v.PROVIDER_MONTHS, columns, ("2024-03", "P1", "east", 100, 1), added),
        Upsert(v.PROVIDER_MONTHS, columns, ("2024-03", "P2", "east", 50, 1), added),
        Upsert(v.PROVIDER_MONTHS, columns, ("2024-03", "P1", "east", -30, 1), added),
        Upsert(v.PROVIDER_MONTHS, columns, ("2024-03", "P1", "west", 7, 1), added),
        Upsert(v.PROVIDER_MONTHS, columns, ("2024-03", "P1", "east", 5, 1), added),
    ]
    conn = sqlite3.connect(":memory:")
    cur = conn.cursor()
    for ddl in v.PROVIDER_MONTHS.ddl("sqlite"):
        cur.execute(ddl)
    cur.execute(v.PROVIDER_MONTHS.insert_sql, ("2024-03", "P2", "east", 1000, 10))
    statements: list[tuple[str, int]] = []

    class Counting:
        def __getattr__(self, name: str) -> Any:
            return getattr(cur, name)

        def executemany(self, sql: str, params: Any) -> Any:
            rows = list(params)
            statements.append((sql, len(rows)))
            return cur.executemany(sql, rows)

    writer = _writer._Writer(Counting())
    writer.apply(changes[:3])
    writer.apply(changes[3:])
    writer.flush()
    memory = MemoryTables([v.PROVIDER_MONTHS])
    memory.apply([Insert(v.PROVIDER_MONTHS, ("2024-03", "P2", "east", 1000, 10)), *changes])
    got = sorted(
        cur.execute(f"SELECT {v.PROVIDER_MONTHS.select_columns()} FROM mv_provider_months")
    )
    assert got == sorted(tuple(r) for r in memory.rows(v.PROVIDER_MONTHS))
    assert ("2024-03", "P1", "east", 75, 3) in got
    assert statements == [(statements[0][0], 3)]  # one row per key, not one per change
