"""How the projection runner writes a chunk's view changes (:class:`_Writer`): buffered,
run with ``executemany`` per statement in an order that gives the same rows as the log's, and
the view functions' lookups answered from the chunk itself or from one query per chunk.

Private to :mod:`matome.projections.runner` (split from it to keep each module short).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from matome.events import bill as bill_ev
from matome.events import subscription as sub_ev
from matome.projections.tables import Change, Insert, Update
from matome.projections.views import LINES, SUBS, TABLES, LineRow, Raw, SubRow, parse_utc
from matome.projections.viewstore import Cursor

#: Topics whose view function looks its purchase up by stream (prefetched a chunk at a time).
_BY_PURCHASE = frozenset((sub_ev.Cancelled.TOPIC, sub_ev.Refunded.TOPIC))
_ISSUED = bill_ev.BillIssued.TOPIC
_PREFETCH_TOPICS = _BY_PURCHASE | {_ISSUED}

# Statements by rank: inserts (in the order of TABLES), then upserts, then updates.
_INSERT, _UPSERT, _UPDATE = 0, 1, 2
_TABLE_RANK = {table.name: rank for rank, table in enumerate(TABLES)}
#: Streams (or customer IDs) per prefetching query (below every SQL engine's limit on
#: parameters).
_PREFETCH = 500
_SUB_BY_STREAM = "SELECT receipt, purchased_at FROM mv_subs WHERE stream = ?"
_LINE_BY_STREAM = "SELECT customer_id, operator FROM mv_lines WHERE stream = ?"
_LINE_BY_ID = "SELECT customer_id, operator FROM mv_lines WHERE customer_id = ?"
_SUBS_BY_STREAMS = (
    "SELECT stream, receipt, purchased_at FROM mv_subs "
    f"WHERE stream IN ({', '.join('?' * _PREFETCH)})"
)
_LINES_BY_IDS = (
    "SELECT customer_id, operator FROM mv_lines "
    f"WHERE customer_id IN ({', '.join('?' * _PREFETCH)})"
)


class _Writer:
    """Applies the view functions' changes of one batch, and answers their :class:`Lookups`.

    Changes are buffered and run with ``executemany`` when a chunk of the batch ends
    (:meth:`flush`), grouped by statement: every insert (table by table, in the order of
    :data:`TABLES`), then every upsert, then every update; within a statement, in the order
    of the log.  That gives the same rows as running every change at once, in the order of
    the log, because:

    * an update changes a row whose view function has checked first that it was inserted
      before (a purchase by its stream, a line by its customer ID; else it raises), or
      changes nothing either way (a Passport ID deleted that was never registered); so
      running it after every insert of the chunk finds the same row;
    * two changes of one column keep their order (one statement); the statements that update
      (or upsert) one table change disjoint columns, so they commute — :meth:`flush` checks
      it — and adding to a column (a month's totals) commutes with adding;
    * no table is both inserted into and upserted in one chunk (checked too);
    * the view functions read nothing but their lookups: a purchase's receipt and time, a
      line's customer ID and operator — columns no update may change (``fixed``, checked
      by the table's statements) — answered from the rows inserted earlier in the chunk,
      else from the tables (so the buffered writes need not run before those reads).

    A failing statement fails the batch's transaction, as before: nothing of it is kept.
    """

    def __init__(self, cur: Cursor) -> None:
        self._cur = cur
        #: Buffered parameters by statement; the statement's (rank, table, columns changed).
        self._pending: defaultdict[str, list[Sequence[Any]]] = defaultdict(list)
        self._shape: dict[str, tuple[int, str, frozenset[str]]] = {}
        #: Upserts that add, merged by statement and key (see :meth:`apply`), and each such
        #: statement's positions of the key and of the columns added.
        self._merged: defaultdict[str, dict[tuple[Any, ...], list[Any]]] = defaultdict(dict)
        self._positions: dict[str, tuple[tuple[int, ...], frozenset[int]]] = {}
        #: Purchases by stream: inserted earlier in this chunk (purchase time as text), or read.
        self._subs: dict[str, tuple[str, str]] = {}
        #: Lines by stream, and operators by customer ID: opened earlier in this chunk, or read.
        self._lines: dict[str, str] = {}
        self._operators: dict[str, str] = {}

    def apply(self, changes: Sequence[Change]) -> None:
        # The hot path of a rebuild (every handled event): type() tests and a defaultdict.
        pending = self._pending
        for change in changes:
            kind = type(change)
            table = change[0]
            if kind is Insert:
                row = change[1]
                sql = table.insert_sql
                # As a plain tuple: sqlite3 binds a tuple subclass's items more slowly.
                params: Sequence[Any] = tuple(row)
                if table is SUBS:
                    sub: SubRow = row  # type: ignore[assignment]
                    self._subs[sub.stream] = (sub.receipt, sub.purchased_at)
                elif table is LINES:
                    line: LineRow = row  # type: ignore[assignment]
                    self._lines[line.stream] = line.customer_id
                    self._operators[line.customer_id] = line.operator
            elif kind is Update:
                _, by, key, columns, values = change  # type: ignore[misc]
                sql = table.update_sql(by, columns)
                params = (*values, key)
            else:
                _, columns, params, add = change  # type: ignore[misc]
                sql = table.upsert_sql(columns, add)
                if add:
                    # Upserts of one key that add (a month's totals: one per bill row) are
                    # merged into one — added columns summed, the others the last value —,
                    # which gives the same row as running them in turn, with one statement
                    # per key instead of one per bill row updating the same few rows.
                    if sql not in self._shape:
                        self._shape[sql] = _shape(change)
                        self._positions[sql] = (
                            tuple(columns.index(k) for k in table.key),
                            frozenset(columns.index(a) for a in add),
                        )
                    keys, added = self._positions[sql]
                    merged = self._merged[sql]
                    key = tuple(params[i] for i in keys)
                    found = merged.get(key)
                    if found is None:
                        merged[key] = list(params)
                    else:
                        for i, value in enumerate(params):
                            found[i] = found[i] + value if i in added else value
                    continue
            if sql not in self._shape:
                self._shape[sql] = _shape(change)
            pending[sql].append(params)

    def flush(self) -> None:
        """Run every buffered change (see the class's docstring for the order)."""
        for sql, merged in self._merged.items():
            self._pending[sql] += [tuple(values) for values in merged.values()]
        self._merged.clear()
        if not self._pending:
            return
        pending, self._pending = self._pending, defaultdict(list)
        order = sorted(
            pending, key=lambda sql: (self._shape[sql][0], _TABLE_RANK[self._shape[sql][1]])
        )
        _check_commute([self._shape[sql] for sql in order])
        for sql in order:
            self._cur.executemany(sql, pending[sql])

    def forget(self) -> None:
        """Drop what the lookups remember (after a :meth:`flush`, the rows answer them)."""
        self._subs.clear()
        self._lines.clear()
        self._operators.clear()

    def prefetch(self, events: Sequence[tuple[str, Raw]]) -> None:
        """Read what the view functions of ``events`` (with their topics) will look up —
        purchases by stream, lines' operators by customer ID — written before this chunk,
        with few queries (columns no statement changes: no flush needed)."""
        streams = [e.stream for topic, e in events if topic in _BY_PURCHASE]
        customers = [e.state["customer_id"] for topic, e in events if topic == _ISSUED]
        for stream, receipt, purchased_at in self._fetch_in(_SUBS_BY_STREAMS, streams, self._subs):
            self._subs[stream] = (receipt, purchased_at)
        for customer_id, operator in self._fetch_in(_LINES_BY_IDS, customers, self._operators):
            self._operators[customer_id] = operator

    def _fetch_in(self, sql: str, keys: Sequence[str], known: dict[str, Any]) -> list[Any]:
        todo = [k for k in dict.fromkeys(keys) if k not in known]
        out: list[Any] = []
        for start in range(0, len(todo), _PREFETCH):
            chunk = todo[start : start + _PREFETCH]
            # Always _PREFETCH parameters (the last one repeated): one statement to prepare
            # and cache, not one per length.
            chunk += chunk[-1:] * (_PREFETCH - len(chunk))
            self._cur.execute(sql, chunk)
            out += self._cur.fetchall()
        return out

    # Lookups

    def purchase(self, stream: str) -> tuple[str, datetime] | None:
        found = self._subs.get(stream)
        if found is None:
            self._cur.execute(_SUB_BY_STREAM, (stream,))
            row = self._cur.fetchone()
            if row is None:
                return None
            found = self._subs[stream] = (row[0], row[1])
        return found[0], parse_utc(found[1])

    def customer(self, stream: str) -> str | None:
        found = self._lines.get(stream)
        if found is not None:
            return found
        self._cur.execute(_LINE_BY_STREAM, (stream,))
        row = self._cur.fetchone()
        if row is None:
            return None
        self._lines[stream] = found = str(row[0])
        self._operators[found] = str(row[1])
        return found

    def operator(self, customer_id: str) -> str | None:
        found = self._operators.get(customer_id)
        if found is not None:
            return found
        self._cur.execute(_LINE_BY_ID, (customer_id,))
        row = self._cur.fetchone()
        if row is None:
            return None
        self._operators[customer_id] = found = str(row[1])
        return found


def _shape(change: Change) -> tuple[int, str, frozenset[str]]:
    if isinstance(change, Insert):
        return _INSERT, change.table.name, frozenset()
    if isinstance(change, Update):
        return _UPDATE, change.table.name, frozenset(change.columns)
    return _UPSERT, change.table.name, frozenset(change.columns) - set(change.table.key)


def _check_commute(shapes: Sequence[tuple[int, str, frozenset[str]]]) -> None:
    """The reordering of :class:`_Writer` keeps the rows only if, per table, the statements
    changing rows change disjoint columns and no table is inserted into and upserted."""
    seen: dict[str, tuple[int, frozenset[str]]] = {}
    for rank, table, columns in shapes:
        before = seen.get(table)
        if before is not None and (
            {rank, before[0]} == {_INSERT, _UPSERT} or (rank != _INSERT and before[1] & columns)
        ):
            raise RuntimeError(f"view changes of mv_{table} that do not commute")
        seen[table] = (
            max(rank, before[0]) if before else rank,
            (before[1] if before else frozenset()) | columns,
        )
