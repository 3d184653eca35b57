"""Read-model tables declared once: from one :class:`Table` come its DDL (SQLite and
PostgreSQL), its statements, the column list queries select, and the typed row they read.

A table's row is a ``NamedTuple`` whose annotations are its columns: ``str`` is TEXT, ``int``
an integer (INTEGER on SQLite, BIGINT on PostgreSQL), ``X | None`` a column that may be NULL.
A ``NamedTuple`` is the row *and* the statement's parameters (a tuple in column order), so a
rebuild builds each row once and hands it to ``executemany`` as it is.

The view functions (:mod:`matome.projections.views`) say what an event changes as data — an
:class:`Insert`, an :class:`Update` or an :class:`Upsert` — and whoever holds the tables applies
it: the SQL runner (:mod:`matome.projections.runner`) or :class:`MemoryTables` (the audit).
"""

from __future__ import annotations

import types
import typing
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, Generic, NamedTuple, TypeVar

import attrs

__all__ = [
    "Change",
    "Column",
    "Index",
    "Insert",
    "MemoryTables",
    "Table",
    "Update",
    "Upsert",
]

R = TypeVar("R", bound=tuple[Any, ...])

#: SQL types by dialect and Python type.
_SQL_TYPES: dict[str, dict[type, str]] = {
    "sqlite": {str: "TEXT", int: "INTEGER"},
    "postgres": {str: "TEXT", int: "BIGINT"},
}


@attrs.frozen
class Column:
    """One column: its name, Python type (``str`` or ``int``) and whether it may be NULL."""

    name: str
    type: type
    nullable: bool

    def ddl(self, dialect: str) -> str:
        return f"{self.name} {_SQL_TYPES[dialect][self.type]}" + (
            "" if self.nullable else " NOT NULL"
        )


@attrs.frozen
class Index:
    """A secondary index.  ``query_only``: no view update reads through it, so a rebuild drops
    it and builds it once at the end (faster than keeping it up to date row by row)."""

    name: str
    columns: tuple[str, ...]
    query_only: bool = True


def _columns(row: type) -> tuple[Column, ...]:
    out = []
    for name, hint in typing.get_type_hints(row).items():
        args = typing.get_args(hint)
        nullable = isinstance(hint, types.UnionType) and type(None) in args
        base = next(a for a in args if a is not type(None)) if nullable else hint
        if base not in (str, int):
            raise TypeError(f"{row.__name__}.{name}: a view column is str or int, not {hint!r}")
        out.append(Column(name, base, nullable))
    return tuple(out)


class Table(Generic[R]):
    """One read-model table, ``mv_<name>``, declared by its row type and keys.

    ``fixed``: columns that no update may change — what the runner's lookups answer from
    rows it has not written yet (see :mod:`matome.projections.runner`); the key is always
    fixed.
    """

    def __init__(
        self,
        name: str,
        row: type[R],
        *,
        key: Sequence[str],
        unique: Sequence[str] = (),
        indexes: Sequence[Index] = (),
        fixed: Sequence[str] = (),
    ) -> None:
        self.name = name
        self.sql_name = f"mv_{name}"
        self.row = row
        self.columns = _columns(row)
        self.column_names = tuple(c.name for c in self.columns)
        self.key = tuple(key)
        self.unique = tuple(unique)
        self.indexes = tuple(indexes)
        self.fixed = frozenset((*self.key, *self.unique, *fixed))
        for name_ in (*self.key, *self.unique, *fixed, *(c for i in indexes for c in i.columns)):
            if name_ not in self.column_names:
                raise ValueError(f"{self.sql_name} has no column {name_!r}")
        marks = ", ".join("?" * len(self.columns))
        #: The statement that inserts one row (its parameters: the row).
        self.insert_sql = (
            f"INSERT INTO {self.sql_name} ({', '.join(self.column_names)}) VALUES ({marks})"
        )
        self._updates: dict[tuple[str, tuple[str, ...]], str] = {}
        self._upserts: dict[tuple[tuple[str, ...], tuple[str, ...]], str] = {}

    def __repr__(self) -> str:
        return f"Table({self.sql_name})"

    # DDL

    def ddl(self, dialect: str) -> list[str]:
        """``CREATE TABLE`` and its update indexes (query-only ones: :meth:`query_index_ddl`)."""
        parts = [c.ddl(dialect) for c in self.columns]
        parts.append(f"PRIMARY KEY ({', '.join(self.key)})")
        parts += [f"UNIQUE ({u})" for u in self.unique]
        out = [f"CREATE TABLE IF NOT EXISTS {self.sql_name} ({', '.join(parts)})"]
        out += [self._index_ddl(i) for i in self.indexes if not i.query_only]
        return out

    def query_index_ddl(self) -> dict[str, str]:
        """The indexes only queries use, by name."""
        return {i.name: self._index_ddl(i) for i in self.indexes if i.query_only}

    def _index_ddl(self, index: Index) -> str:
        return (
            f"CREATE INDEX IF NOT EXISTS {index.name} ON {self.sql_name} "
            f"({', '.join(index.columns)})"
        )

    # Statements

    def update_sql(self, by: str, columns: tuple[str, ...]) -> str:
        """``UPDATE ... SET <columns> WHERE <by> = ?`` (``by`` the key or a unique column)."""
        found = self._updates.get((by, columns))
        if found is not None:
            return found
        if by not in (*self.key, *self.unique) or (by in self.key and len(self.key) > 1):
            raise ValueError(f"{self.sql_name}: rows are updated by a unique column, not {by!r}")
        if self.fixed.intersection(columns) or not set(columns) <= set(self.column_names):
            raise ValueError(f"{self.sql_name}: cannot update {columns!r}")
        sets = ", ".join(f"{c} = ?" for c in columns)
        sql = self._updates[by, columns] = f"UPDATE {self.sql_name} SET {sets} WHERE {by} = ?"
        return sql

    def upsert_sql(self, columns: tuple[str, ...], add: tuple[str, ...]) -> str:
        """Insert ``columns``; on a key conflict set the non-key ones, adding those of ``add``."""
        found = self._upserts.get((columns, add))
        if found is not None:
            return found
        if not set(self.key) <= set(columns) or not set(add) <= set(columns):
            raise ValueError(f"{self.sql_name}: an upsert names the key and what it adds")
        sets = ", ".join(
            f"{c} = {self.sql_name}.{c} + excluded.{c}" if c in add else f"{c} = excluded.{c}"
            for c in columns
            if c not in self.key
        )
        sql = (
            f"INSERT INTO {self.sql_name} ({', '.join(columns)}) "
            f"VALUES ({', '.join('?' * len(columns))}) "
            f"ON CONFLICT ({', '.join(self.key)}) DO UPDATE SET {sets}"
        )
        self._upserts[columns, add] = sql
        return sql

    def select_columns(self, alias: str = "") -> str:
        """The column list that :meth:`read` reads, in order (``alias.`` before each)."""
        prefix = f"{alias}." if alias else ""
        return ", ".join(prefix + c for c in self.column_names)

    def read(self, values: Iterable[Any]) -> R:
        """The typed row of the values selected by :meth:`select_columns`."""
        row: R = self.row._make(values)  # type: ignore[attr-defined]
        return row


class Insert(NamedTuple):
    """Insert ``row`` (it must not exist: a duplicate key fails, as in SQL)."""

    table: Table[Any]
    row: tuple[Any, ...]


class Update(NamedTuple):
    """Set ``columns`` to ``values`` in the row whose unique column ``by`` is ``key``
    (no such row: nothing changes, as in SQL)."""

    table: Table[Any]
    by: str
    key: Any
    columns: tuple[str, ...]
    values: tuple[Any, ...]


class Upsert(NamedTuple):
    """Insert ``columns`` = ``values``; if the key exists, set them instead, adding to the
    stored value for the columns of ``add``."""

    table: Table[Any]
    columns: tuple[str, ...]
    values: tuple[Any, ...]
    add: tuple[str, ...] = ()


Change = Insert | Update | Upsert


class MemoryTables:
    """Tables held in dictionaries, changed by the same :data:`Change` values as the SQL
    tables (the audit replays one line's streams through them)."""

    def __init__(self, tables: Iterable[Table[Any]]) -> None:
        tables = tuple(tables)
        self._rows: dict[str, dict[tuple[Any, ...], Any]] = {t.name: {} for t in tables}
        #: The key of each row by the value of each unique column (never updated: ``fixed``).
        self._unique: dict[tuple[str, str], dict[Any, tuple[Any, ...]]] = {
            (t.name, u): {} for t in tables for u in t.unique
        }

    def rows(self, table: Table[R]) -> list[R]:
        """The table's rows, in key order."""
        rows = self._rows[table.name]
        return [rows[k] for k in sorted(rows, key=_sortable)]

    def find(self, table: Table[R], column: str, value: Any) -> R | None:
        """The row whose ``column`` (its key or a unique column) is ``value``."""
        rows = self._rows[table.name]
        if table.key == (column,):
            found: R | None = rows.get((value,))
            return found
        key = self._unique[table.name, column].get(value)
        return None if key is None else rows[key]

    def apply(self, changes: Iterable[Change]) -> None:
        for change in changes:
            table = change.table
            rows = self._rows[table.name]
            if isinstance(change, Insert):
                row = table.read(change.row)
                key = tuple(getattr(row, k) for k in table.key)
                if key in rows or any(
                    getattr(row, u) in self._unique[table.name, u] for u in table.unique
                ):
                    raise ValueError(f"{table.sql_name}: a row with key {key!r} exists")
                rows[key] = row
                for u in table.unique:
                    self._unique[table.name, u][getattr(row, u)] = key
            elif isinstance(change, Update):
                table.update_sql(change.by, change.columns)  # the same checks as in SQL
                found = self.find(table, change.by, change.key)
                if found is not None:
                    new = dict(zip(change.columns, change.values, strict=True))
                    rows[tuple(getattr(found, k) for k in table.key)] = found._replace(**new)
            else:
                table.upsert_sql(change.columns, change.add)
                values = dict(zip(change.columns, change.values, strict=True))
                key = tuple(values[k] for k in table.key)
                old = rows.get(key)
                if old is None:
                    missing = {c.name: None for c in table.columns}
                    rows[key] = table.read({**missing, **values}.values())
                    _check_nulls(table, rows[key])
                else:
                    new = {
                        c: getattr(old, c) + v if c in change.add else v for c, v in values.items()
                    }
                    rows[key] = old._replace(**new)


def _check_nulls(table: Table[Any], row: Any) -> None:
    for column in table.columns:
        if not column.nullable and getattr(row, column.name) is None:
            raise ValueError(f"{table.sql_name}.{column.name} may not be NULL")


def _sortable(key: tuple[Any, ...]) -> tuple[Any, ...]:
    return tuple((v is not None, v) for v in key)


def by_name(tables: Iterable[Table[Any]]) -> Mapping[str, Table[Any]]:
    """The tables by name (``subs`` for ``mv_subs``)."""
    return {t.name: t for t in tables}
