"""Contract versions (docs/rules.md §11, docs/contract.md "Contract versions"; issue #16): a log
that declares no contract is read under contract 2 forever, and keeps its exact results.

The corpus (tests/fixtures/contract2/corpus.jsonl) was answered by the build before contract
versions existed: the shipped examples, ``matome generate`` logs, and logs drawn from
``matome.testing.strategies`` with invalid lines mixed in — among them the passwords of 11–12
characters and phone numbers of 12 digits that contract 3 accepts.  Every line's result and
every document must be what it was.
"""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings

from matome import cli
from matome.testing import strategies as mst

ROOT = Path(__file__).resolve().parents[2]
CORPUS_DIR = ROOT / "tests" / "fixtures" / "contract2"


def _corpus_module() -> Any:
    spec = importlib.util.spec_from_file_location("make_corpus", CORPUS_DIR / "make_corpus.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


MAKE = _corpus_module()
CORPUS = [json.loads(line) for line in (CORPUS_DIR / "corpus.jsonl").open(encoding="utf-8")]


def test_the_corpus_holds_the_examples_generated_logs_and_the_widened_values() -> None:
    names = [entry["name"] for entry in CORPUS]
    shipped = sorted(f"examples/{p.name}" for p in (ROOT / "examples").glob("*.jsonl"))
    assert shipped
    assert set(shipped) <= set(names)
    assert any(n.startswith("generate ") for n in names)
    messages = [
        r["error"]["message"]
        for entry in CORPUS
        for r in entry["outcome"]["results"]
        if not r["ok"]
    ]
    assert any("password must be 4–10" in m for m in messages)
    assert any("10–11 digits" in m for m in messages)


@pytest.mark.parametrize("entry", CORPUS, ids=[e["name"] for e in CORPUS])
def test_an_undeclared_log_keeps_every_result_and_document_of_contract_2(
    entry: dict[str, Any],
) -> None:
    assert MAKE.outcome(entry["log"]) == entry["outcome"]


def test_the_shipped_examples_are_in_the_corpus_as_they_are_now() -> None:
    """The examples the corpus answered are the examples shipped (else re-check them)."""
    logs = {entry["name"]: entry["log"] for entry in CORPUS}
    for path in sorted((ROOT / "examples").glob("*.jsonl")):
        assert logs[f"examples/{path.name}"] == path.read_text(encoding="utf-8")


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(log=mst.command_logs(max_steps=25))
def test_declaring_contract_2_changes_nothing_of_a_generated_log(log: list[Any]) -> None:
    """``{"contract": 2}`` on the first line reads the log exactly as no declaration does (the
    declaration line is no command: the results keep their line numbers, one further on)."""
    text = mst.format_log(log)
    undeclared = MAKE.outcome(text)
    declared = MAKE.outcome('{"contract": 2}\n' + text)
    shifted = [{**r, "line": r["line"] - 1} for r in declared["results"]]
    assert shifted == undeclared["results"]
    assert declared["documents"] == undeclared["documents"]


def test_a_declared_contract_3_log_is_read_under_contract_3_and_the_run_says_so(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], cheap_hashing: None
) -> None:
    """The same registration without consent: accepted in an undeclared log, and
    ``consent_required`` in a log declaring ``{"contract": 3}``; ``matome run`` says once, on
    stderr, which contract it applied."""
    lines = (ROOT / "examples" / "first-bill.jsonl").read_text(encoding="utf-8").splitlines()
    upto = next(i for i, raw in enumerate(lines) if '"register_passport"' in raw)
    log = "\n".join(lines[: upto + 1]) + "\n"
    seen = {}
    for name, text in (("plain", log), ("declared", '{"contract": 3}\n' + log)):
        path = tmp_path / f"{name}.jsonl"
        path.write_text(text, encoding="utf-8")
        assert cli.main(["run", str(path), "--db", str(tmp_path / f"{name}.sqlite")]) == 0
        out, err = capsys.readouterr()
        seen[name] = ([json.loads(r) for r in out.splitlines()], err)
    plain, plain_err = seen["plain"]
    declared, declared_err = seen["declared"]
    assert plain[-1]["ok"] is True
    assert declared[-1]["error"]["code"] == "consent_required"
    assert [r["line"] for r in declared] == list(range(2, len(plain) + 2))
    assert plain_err.count("contract") == 1
    assert "contract 2 (the log declares none)" in plain_err
    assert declared_err.count("contract") == 1
    assert "contract 3 (declared)" in declared_err


def test_a_log_declaring_a_contract_matome_does_not_read_is_not_run(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "future.jsonl"
    path.write_text('{"contract": 99}\n', encoding="utf-8")
    assert cli.main(["run", str(path), "--db", str(tmp_path / "s.sqlite")]) == 2
    assert "contract 99" in capsys.readouterr().err
    assert not (tmp_path / "s.sqlite").exists()  # nothing was applied, not even a store made
