"""Store differential: the same generated (contract-2) command log on the in-memory store, an
SQLite file and PostgreSQL yields the same results and identical documents — bills,
statements, provider totals, settlements, contacts, usage status and continuity."""

from __future__ import annotations

import json
import tempfile
import uuid
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings

from matome.cli import apply_line
from matome.engine import Engine
from matome.errors import MatomeError
from matome.testing import strategies as mst
from matome.values import YearMonth
from matome.wire import to_json
from tests.conftest import TEST_ITERATIONS, _pg_dsn, require_postgres


def _documents(engine: Engine, log: list[dict[str, Any]]) -> dict[str, Any]:
    def answer(query: Any) -> Any:
        try:
            return query()
        except MatomeError as e:
            return {"error": e.code}

    months = sorted({YearMonth.of(datetime.fromisoformat(c["at"])) for c in log})
    months.append(months[-1].next())
    lines = sorted({c["customer_id"] for c in log if c["command"] == "open_line"})
    lines += sorted({c["new_customer_id"] for c in log if c.get("new_customer_id")} - set(lines))
    out: dict[str, Any] = {"continuity": to_json(engine.continuity())}
    for month in months:
        out[f"providers {month}"] = to_json(engine.provider_totals(month))
        out[f"settle {month}"] = answer(lambda m=month: to_json(engine.settlement(m)))
        for line in lines:
            out[f"bill {line} {month}"] = answer(lambda c=line, m=month: to_json(engine.bill(c, m)))
            out[f"statement {line} {month}"] = answer(
                lambda c=line, m=month: to_json(engine.statement(c, m, per_page=500))
            )
    for line in lines:
        out[f"contacts {line}"] = answer(lambda c=line: to_json(engine.provider_contacts(c)))
        out[f"status {line}"] = answer(lambda c=line: to_json(engine.usage_status(c)))
    return out


def _run(engine: Engine, log: list[dict[str, Any]]) -> tuple[list[Any], dict[str, Any]]:
    try:
        results = [apply_line(engine, n, json.dumps(c)) for n, c in enumerate(log, start=1)]
        return results, _documents(engine, log)
    finally:
        engine.close()


@pytest.mark.postgres
@settings(
    max_examples=6, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(log=mst.command_logs(max_steps=25))
def test_the_same_log_yields_identical_documents_on_every_store(log: list[dict[str, Any]]) -> None:
    require_postgres()
    import psycopg

    schema = f"matome_diff_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(_pg_dsn(), autocommit=True) as conn:
        conn.execute(f'CREATE SCHEMA "{schema}"')
    try:
        with tempfile.TemporaryDirectory() as tmp:
            stores = {
                "memory": ":memory:",
                "sqlite": str(Path(tmp) / "diff.sqlite"),
                "postgres": f"{_pg_dsn()}?schema={schema}",
            }
            outcomes = {
                name: _run(Engine.open(db, hash_iterations=TEST_ITERATIONS), log)
                for name, db in stores.items()
            }
    finally:
        with psycopg.connect(_pg_dsn(), autocommit=True) as conn:
            conn.execute(f'DROP SCHEMA "{schema}" CASCADE')
    results, documents = outcomes["memory"]
    for name in ("sqlite", "postgres"):
        assert outcomes[name][0] == results, f"{name}: command results differ"
        assert outcomes[name][1] == documents, f"{name}: documents differ"
