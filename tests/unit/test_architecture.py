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

import inspect
import json
import re
import types
from importlib import resources
from pathlib import Path
from typing import Any, NamedTuple

import attrs
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from matome import _gen, aggregates, schema
from matome.aggregates import _line_state as line_state
from matome.aggregates import _passport_state as passport_state
from matome.aggregates.base import Appliers, projector_of
from matome.application import handlers
from matome.application.handlers import HANDLERS
from matome.commands import COMMANDS, Command, parse_command
from matome.engine import Engine
from matome.events import EVENT_TOPICS
from matome.events.bill import BillIssued
from matome.projections import views, viewstore
from matome.projections.tables import Table
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


# ---------------------------------------------------------------------------------------------
# Registries by decorator: a function and its registry entry are one place


def _module_functions(module: types.ModuleType) -> dict[str, Any]:
    return {
        name: value
        for name, value in vars(module).items()
        if inspect.isfunction(value) and value.__module__ == module.__name__
    }


def _annotations(function: Any) -> list[str]:
    """The parameter and return annotations of ``function`` as written (text)."""
    signature = inspect.signature(function)
    return [str(p.annotation) for p in signature.parameters.values()] + [
        str(signature.return_annotation)
    ]


def test_every_function_shaped_as_a_handler_is_registered_and_handles_its_own_command() -> None:
    """``@handles(cmd.X)``: a function ``(uow, c: cmd.X, d) -> cmd.Result | None`` in
    ``application/handlers.py`` without the decorator would be dead code, and one registered
    for another command than the one it takes would decide the wrong command."""
    shaped = {
        name: function
        for name, function in _module_functions(handlers).items()
        if _annotations(function)[0] == "UnitOfWork"
        and _annotations(function)[-1] == "cmd.Result | None"
    }
    assert len(shaped) == len(COMMANDS)
    registered = {function.__name__: command for command, function in HANDLERS.items()}
    assert set(shaped) == set(registered)
    for name, function in shaped.items():
        assert _annotations(function)[1] == f"cmd.{registered[name].__name__}", name


def test_every_command_that_presents_a_credential_has_its_check_alone() -> None:
    """``@checks_credential``: contract 3 checks the credential of a command under a used
    idempotency key before answering it; a command with ``CREDENTIAL`` and no check would
    fail with a ``KeyError``."""
    with_credential = {cls for cls in COMMANDS.values() if cls.CREDENTIAL is not None}
    assert set(handlers.CREDENTIALS) == with_credential


def test_every_view_function_is_registered_for_one_event() -> None:
    """``@when(ev.X)``: every function of ``projections/views.py`` shaped
    ``(e: Raw, look: Lookups) -> Changes`` is in ``WHEN`` (an undecorated one would never run
    and its event would fail as neither handled nor ignored)."""
    shaped = {
        name
        for name, function in _module_functions(views).items()
        if _annotations(function) == ["Raw", "Lookups", "Changes"]
    }
    assert shaped == {function.__name__ for function in views.WHEN.values()}
    assert len(set(views.WHEN.values())) == len(views.WHEN)


#: Events on no aggregate's stream that is ever loaded as a state, and why.
NOT_APPLIED = {
    BillIssued: "an issued bill's stream is read by the views, the audit and verify, never "
    "loaded as a state to decide on",
}


def test_every_aggregates_event_class_has_exactly_one_applier() -> None:
    """Each aggregate's ``Appliers`` decorator registers one applier per event class (a second
    one fails at import); together they cover every registered event but those listed."""
    registries = [
        value
        for module in (
            line_state,
            passport_state,
            aggregates.catalog,
            aggregates.ledger,
            aggregates.subscription,
        )
        for value in vars(module).values()
        if isinstance(value, Appliers)
    ]
    assert len(registries) == 9
    applied = [event_class for r in registries for event_class in r.table]
    assert len(applied) == len(set(applied))
    assert set(applied) == set(EVENT_TOPICS.values()) - set(NOT_APPLIED)
    for r in registries:
        for event_class in r.table:
            assert projector_of(event_class) is r.project


def test_a_second_applier_for_an_event_class_fails_at_registration() -> None:
    """Each registry refuses a second function for one key before it registers anything."""
    taken = next(c for c in EVENT_TOPICS.values() if c not in NOT_APPLIED)
    registry = Appliers("Twice")
    with pytest.raises(RuntimeError, match="two appliers"):
        registry(BillIssued, taken)(lambda s, e: s)
    assert registry.table == {}
    with pytest.raises(KeyError):
        projector_of(BillIssued)
    with pytest.raises(RuntimeError, match="two handlers"):
        handlers.handles(next(iter(HANDLERS)))(lambda uow, c, d: None)
    with pytest.raises(RuntimeError, match="two view functions"):
        views.when(next(iter(views.WHEN)))(lambda e, look: ())


# ---------------------------------------------------------------------------------------------
# Generated files: what the generator writes (python -m matome._gen)


def test_the_engines_command_methods_are_what_the_generator_writes() -> None:
    """``src/matome/_engine_commands.py``: one typed method per registered command."""
    shipped = (SOURCE / "_engine_commands.py").read_text(encoding="utf-8")
    assert shipped == _gen.engine_commands_source(), "regenerate: python -m matome._gen"


def test_the_api_pages_table_of_command_methods_is_what_the_generator_writes() -> None:
    api = (ROOT / "docs" / "api.md").read_text(encoding="utf-8")
    table = api.split(_gen.BEGIN + "\n", 1)[1].split(_gen.END, 1)[0]
    assert table == _gen.api_commands_table(), "regenerate: python -m matome._gen"


def test_the_generator_writes_a_command_method_for_a_new_command(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """Registering a command is enough: the generator writes its method and its row, and
    ``--check`` fails until they are written."""
    from matome import commands

    for path in _gen.generated(ROOT):
        copy = tmp_path / path.relative_to(ROOT)
        copy.parent.mkdir(parents=True, exist_ok=True)
        copy.write_text(path.read_text(encoding="utf-8"), encoding="utf-8")
    assert _gen.main(["--check", "--root", str(tmp_path)]) == 0
    monkeypatch.setitem(commands.COMMANDS, "rename_provider", commands.RegisterProvider)
    assert _gen.main(["--check", "--root", str(tmp_path)]) == 1
    assert _gen.main(["--root", str(tmp_path)]) == 0
    written = (tmp_path / "src" / "matome" / "_engine_commands.py").read_text(encoding="utf-8")
    assert "    rename_provider = _command_method(cmd.RegisterProvider)\n" in written
    assert "| `rename_provider` |" in (tmp_path / "docs" / "api.md").read_text(encoding="utf-8")
    shipped = tmp_path / "src" / "matome" / "reference" / "command-log.schema.json"
    assert '"rename_provider"' in shipped.read_text(encoding="utf-8")
    assert _gen.main(["--check", "--root", str(tmp_path)]) == 0


# ---------------------------------------------------------------------------------------------
# The views' schema version: derived from the tables' declarations


def test_the_views_schema_version_is_the_view_logic_and_the_digest_of_the_declared_ddl() -> None:
    derived = viewstore.schema_version(viewstore.VIEW_LOGIC, viewstore.ddl_digest())
    assert derived == viewstore.SCHEMA_VERSION
    assert viewstore.SCHEMA_VERSION // 1_000_000 == viewstore.VIEW_LOGIC
    # mv_tracking.schema_version is an INTEGER: 32-bit signed on PostgreSQL.
    assert 0 < viewstore.SCHEMA_VERSION < 2**31
    with pytest.raises(ValueError, match="32-bit"):
        viewstore.schema_version(2_200, 0)


def test_a_new_column_in_a_tables_declaration_changes_the_views_schema_version(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A column added to one declaration changes the DDL, so the digest, so the version: a
    store at the old version is rebuilt, without anyone bumping a number by hand."""
    before = viewstore.ddl_digest()
    fields = [(f, views.FeeRow.__annotations__[f]) for f in views.FeeRow._fields]
    wider = NamedTuple("FeeRow", [*fields, ("note", "str | None")])  # type: ignore[misc]
    fees = Table("fees", wider, key=("operator", "version"))
    tables = tuple(fees if t is views.FEES else t for t in views.TABLES)
    monkeypatch.setattr(viewstore, "TABLES", tables)
    after = viewstore.ddl_digest()
    assert after != before
    assert viewstore.schema_version(viewstore.VIEW_LOGIC, after) != viewstore.SCHEMA_VERSION


def test_no_module_of_matome_imports_itself_back_even_for_type_checking() -> None:
    """Layers say which way imports run; this says no two modules import each other round a
    loop, ``TYPE_CHECKING`` imports included (a private module split from a public one names
    what it uses of it by shape, a ``Protocol``, instead of importing it back)."""
    grimp = pytest.importorskip("grimp")  # import-linter's graph: a test dependency
    graph = grimp.build_graph("matome")
    loops = [
        (module, imported)
        for module in sorted(graph.modules)
        for imported in sorted(graph.find_modules_directly_imported_by(module))
        if graph.find_shortest_chain(importer=imported, imported=module) is not None
    ]
    assert loops == []
