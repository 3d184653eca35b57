"""The scale benchmark cannot rot: ``bench/run.py --quick`` runs every phase at tiny sizes,
exits 0, prints every row of its table and the command of each, and writes JSON with every
phase's figures.

Nothing here asserts a timing or a ratio's value (a shared CI machine makes them noise at
these sizes); only that each figure was measured.  PostgreSQL rows are left out (``--no-pg``)
unless ``MATOME_REQUIRE_POSTGRES=1``, which makes them required.
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

#: End to end and seconds long: run by CI (``pytest -m 'system and not slow'``), not by a
#: plain ``pytest``.
pytestmark = pytest.mark.system

ROOT = Path(__file__).resolve().parents[2]
PHASES = ("ingest", "throughput", "rebuild", "billing", "queries")
REQUIRE_PG = os.environ.get("MATOME_REQUIRE_POSTGRES") == "1"


def _finite(value: Any) -> bool:
    return isinstance(value, int | float) and math.isfinite(value)


def test_quick_benchmark_runs_every_phase(tmp_path: Path) -> None:
    out = tmp_path / "bench.json"
    command = [
        sys.executable,
        str(ROOT / "bench" / "run.py"),
        "--quick",
        "--dir",
        str(tmp_path / "stores"),
        "--build-dir",
        str(tmp_path / "build"),
        "--json",
        str(out),
    ]
    if not REQUIRE_PG:
        command.append("--no-pg")
    proc = subprocess.run(
        command, cwd=ROOT, capture_output=True, text=True, timeout=600, check=False
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr

    data = json.loads(out.read_text())
    assert set(PHASES) <= set(data["phases"]), data["phases"].keys()
    rows = data["rows"]
    names = [row["phase"] for row in rows]
    stores = ["sqlite", "postgres"] if REQUIRE_PG else ["sqlite"]
    expected = [
        f"ingest {when} {store} {kdf} KDF"
        for store in stores
        for kdf in ("production", "testing")
        for when in ("cold", "warm")
    ]
    expected += [
        "purchase (warm) sqlite",
        "purchase (warm) sqlite tmpfs",
        "rebuild vs read+mapper",
        "rebuild vs ES transcoder",
        "billing run",
        "billing growth",
        "billing history",
    ]
    expected += [
        f"query {q}" for q in ("bill", "statement", "audit", "provider_totals", "settlement")
    ]
    for name in expected:
        assert name in names, f"no row {name!r} in {names}"
    if not REQUIRE_PG:
        assert not any("postgres" in name for name in names)
        assert "postgres" in data["skipped"]

    for row in rows:
        assert _finite(row["ratio"]), row
        assert row["command"].startswith("python bench/"), row
    # Every row, and its command, is printed.
    table = proc.stdout
    for i, row in enumerate(rows, 1):
        assert row["phase"] in table
        assert f"{i:>2}. python bench/" in table or f"{i:>2}. (same as" in table
    # The measured figures are there (values are not judged).
    for result in data["phases"]["ingest"]:
        for when in ("cold", "warm"):
            assert result[when]["events"] > 0
            assert result[when]["commands"] > 0
            assert _finite(result[when]["baseline_eps"])
            assert _finite(result[when]["raw_eps"])
            # The baselines replayed matome's transactions: as many, of as many events.
            assert result[when]["transactions"] > 0
            assert set(result[when]["ratio_spread"]) == {"min", "median", "max"}
        assert result["peak_rss_mb"] > 0
    for measured in data["phases"]["throughput"].values():
        assert _finite(measured["ratio_same"])
        assert measured["events_per_purchase"] > 0
    for measured in data["phases"]["billing"]["measures"].values():
        assert measured["bills"] > 0
    for sized in data["phases"]["queries"].values():
        assert set(sized["queries"]) == {
            "bill",
            "statement",
            "audit",
            "provider_totals",
            "settlement",
        }
