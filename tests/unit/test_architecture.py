"""The shape of the code, checked: the lists kept by hand cannot drift from the registries.

A command is declared once, in ``matome.commands`` (``COMMANDS``); an event once, by its topic
(``EVENT_TOPICS``).  Everything else that must know every command or every event is checked
against those two registries here, so that adding one and forgetting a place fails a test
instead of silently doing nothing (docs/architecture.md, "Targets"):

* every command has a handler, an ``Engine`` method that builds it, an entry in the JSON
  Schema (generated and shipped), a strategy in the kit, a case in the reference model, and a
  row in the contract's table of commands;
* every event is named in the design notes' table of streams;
* no module of ``src/matome`` grows past :data:`MAX_LINES` lines unless it is private and
  single-purpose, and then it is listed in :data:`LONG_PRIVATE_MODULES` with its reason.
"""

from __future__ import annotations

import json
import re
import types
from importlib import resources
from pathlib import Path
from typing import Any

import attrs
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from matome import schema
from matome.application.handlers import HANDLERS
from matome.commands import COMMANDS, Command, parse_command
from matome.engine import Engine
from matome.events import EVENT_TOPICS
from matome.testing import strategies as mst
from matome.testing.model import ReferenceModel

ROOT = Path(__file__).resolve().parents[2]
SOURCE = ROOT / "src" / "matome"
BY_NAME = [pytest.param(name, id=name) for name in sorted(COMMANDS)]

#: The most lines a module of ``src/matome`` may have (the issue's "about 600"): past it a
#: module is doing more than one job, and a reader (or a reviewer of a diff) loses its shape.
MAX_LINES = 600

#: Private (``_``-prefixed), single-purpose modules allowed past :data:`MAX_LINES`, each with
#: the reason it stays one module.  Public modules are never allowed: split them.
LONG_PRIVATE_MODULES: dict[str, str] = {}


# ---------------------------------------------------------------------------------------------
# Commands: one registry, every place that must know every command


def test_the_registry_names_each_command_by_its_own_name() -> None:
    assert len(COMMANDS) >= 20
    for name, cls in COMMANDS.items():
        assert issubclass(cls, Command)
        assert name == cls.NAME


def test_every_registered_command_has_exactly_one_handler() -> None:
    """``application/handlers.py``'s ``HANDLERS``: a command without one could only fail at
    run time, with a ``KeyError`` in the service."""
    assert set(HANDLERS) == set(COMMANDS.values())


def test_every_registered_command_is_in_the_generated_and_the_shipped_json_schema() -> None:
    generated = schema.command_log_schema()
    shipped = json.loads(
        resources.files("matome.reference").joinpath("command-log.schema.json").read_text("utf-8")
    )
    for document in (generated, shipped):
        assert set(document["$defs"]) == set(COMMANDS)
        assert document["properties"]["command"]["enum"] == sorted(COMMANDS)


def test_every_registered_command_has_a_row_in_the_contracts_table_of_commands() -> None:
    """``src/matome/reference/contract.md`` (the page ``docs/contract.md`` includes), section
    "Commands": one row per command, and no row for a command that does not exist."""
    text = resources.files("matome.reference").joinpath("contract.md").read_text("utf-8")
    table = text.split("### Commands", 1)[1].split("\n#", 1)[0]
    assert set(re.findall(r"^\| `(\w+)` \|", table, flags=re.M)) == set(COMMANDS)


@pytest.mark.parametrize("name", BY_NAME)
@settings(max_examples=5, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_every_registered_command_has_a_strategy_an_engine_method_and_a_model_case(
    name: str, data: st.DataObject
) -> None:
    """One drawn body per command: the kit's strategy produces it (``matome.testing``), the
    parser builds the registered class, ``Engine.<name>`` builds the same command from its
    keyword arguments, and the reference model decides it (its ``match`` has a case: the
    model raises ``TypeError`` for a command it does not know)."""
    body = data.draw(mst._command_json(name))  # LookupError: no strategy for the command
    command = parse_command(body)
    assert type(command) is COMMANDS[name]

    built: list[Command[Any]] = []
    engine = types.SimpleNamespace(execute=lambda c, *a, **k: built.append(c))
    kwargs = {f.name: getattr(command, f.name) for f in attrs.fields(type(command)) if f.init}
    getattr(Engine, name)(engine, **kwargs)
    assert built == [command]

    result = ReferenceModel().apply(command)
    assert result.ok or result.code is not None


# ---------------------------------------------------------------------------------------------
# Events: one registry, the places that list every event


def _streams_table() -> str:
    design = (ROOT / "docs" / "design.md").read_text(encoding="utf-8")
    return design.split("\n## Streams\n", 1)[1].split("\n## ", 1)[0]


def test_every_registered_event_is_named_in_the_design_notes_table_of_streams() -> None:
    """``docs/design.md``, "Streams": the table names each event on its stream; an event
    registered and not named there (or named and gone) is a stale page."""
    header, _rule, *rows = [line for line in _streams_table().splitlines() if line.startswith("|")]
    assert header.split("|")[3].strip() == "events"
    named = {name for row in rows for name in re.findall(r"`(\w+)`", row.split("|")[3])}
    assert named == {cls.__name__ for cls in EVENT_TOPICS.values()}


# ---------------------------------------------------------------------------------------------
# Module size


def _lines(path: Path) -> int:
    return len(path.read_text(encoding="utf-8").splitlines())


def test_no_module_is_longer_than_600_lines_unless_private_and_single_purpose() -> None:
    """Past :data:`MAX_LINES` lines, a module must be private (its name starts with ``_``) and
    listed with its one purpose in :data:`LONG_PRIVATE_MODULES`; a public module is split."""
    sizes = {path.relative_to(SOURCE).as_posix(): _lines(path) for path in SOURCE.rglob("*.py")}
    too_long = {
        module: lines
        for module, lines in sorted(sizes.items())
        if lines > MAX_LINES and module not in LONG_PRIVATE_MODULES
    }
    assert too_long == {}, f"split these modules (lines > {MAX_LINES}): {too_long}"


def test_every_allowed_long_module_exists_is_private_and_gives_its_reason() -> None:
    for relative, reason in LONG_PRIVATE_MODULES.items():
        path = SOURCE / relative
        assert path.is_file(), relative
        assert path.name.startswith("_"), relative
        assert reason.strip(), relative
