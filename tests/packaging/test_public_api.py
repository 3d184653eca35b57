"""matome's public API: what it is, that it is documented, and that earlier names still work.

The public API is the ``__all__`` of :mod:`matome` and of its public modules, and the public
methods of :class:`~matome.engine.Engine` (CHANGELOG.md, "Version policy").  Everything else —
and ``engine.internals`` — may change in any release.
"""

from __future__ import annotations

import ast
import importlib
import importlib.metadata
import inspect
import re
from pathlib import Path
from types import ModuleType

import pytest

import matome
import matome.engine
import matome.errors
import matome.fees
import matome.interchange
from matome.commands import COMMANDS
from matome.engine import Engine, EngineInternals

ROOT = Path(__file__).resolve().parents[2]

PUBLIC_MODULES = [
    "matome",
    "matome.commands",
    "matome.documents",
    "matome.engine",
    "matome.errors",
    "matome.interchange",
    "matome.values",
    "matome.testing",
    "matome.testing.machine",
    "matome.testing.model",
    "matome.testing.profiles",
    "matome.testing.pytest_plugin",
    "matome.testing.strategies",
]

#: One method per registered command (``matome.commands.COMMANDS``), derived: a command added
#: to the registry is part of the surface the day it is added.
COMMAND_METHODS = frozenset(COMMANDS)
#: What a user of the library needs, beside one method per command.
ENGINE_SURFACE = COMMAND_METHODS | {
    # lifecycle
    "open",
    "close",
    # the interchange contract it reads (docs/rules.md §11)
    "contract",
    # commands as objects
    "execute",
    "execute_batch",
    # documents (docs/contract.md "Documents out")
    "bill",
    "statement",
    "provider_contacts",
    "provider_totals",
    "settlement",
    "continuity",
    "usage_status",
    # state
    "line",
    "passport",
    "subscription",
    "provider",
    "closed_through",
    # audit, verification, views, resumption
    "audit",
    "verify",
    "seal",
    "rebuild_views",
    "follow",
    "complete_billing",
    "log_position",
    # the machinery, clearly marked as not public
    "internals",
}
#: The engine's earlier attributes that moved under ``engine.internals``.
MOVED = ["events", "forget_cached_states", "hasher", "mapper", "recorder", "run_billing",
         "store_settings", "views"]  # fmt: skip


def _public(cls: type) -> set[str]:
    return {name for name in dir(cls) if not name.startswith("_")}


def test_the_engine_exposes_what_users_need_and_nothing_of_its_machinery() -> None:
    assert _public(Engine) == ENGINE_SURFACE


def test_the_engine_exposes_no_eventsourcing_application_methods() -> None:
    for name in ("save", "take_snapshot", "repository", "notification_log", "recorder"):
        assert name not in dir(Engine), name


def test_the_engines_machinery_is_reachable_through_internals(engine: Engine) -> None:
    internals = engine.internals
    assert isinstance(internals, EngineInternals)
    assert internals.recorder.max_notification_id() in (None, 0)
    assert internals.store_settings["PERSISTENCE_MODULE"] == "eventsourcing.popo"
    assert internals.views[0] is engine.internals.views[0]


@pytest.mark.parametrize("name", MOVED)
def test_the_engines_earlier_names_of_its_internals_still_answer(engine: Engine, name: str) -> None:
    old = getattr(engine, name)
    new = getattr(engine.internals, name)
    if name in ("events", "hasher", "mapper", "recorder", "views", "store_settings"):
        assert type(old) is type(new)
    else:
        assert old.__func__ is new.__func__
    assert name not in dir(Engine)


def test_an_unknown_engine_attribute_is_still_an_attribute_error(engine: Engine) -> None:
    with pytest.raises(AttributeError, match="no attribute 'no_such_thing'"):
        getattr(engine, "no_such_thing")  # noqa: B009 - the point is the dynamic lookup


@pytest.mark.parametrize("name", sorted(ENGINE_SURFACE))
def test_every_public_engine_method_has_a_docstring(name: str) -> None:
    member = inspect.getattr_static(Engine, name)
    doc = inspect.getdoc(member) or ""
    assert len(doc) > 20, f"Engine.{name} has no docstring"


@pytest.mark.parametrize("name", sorted(_public(EngineInternals)))
def test_every_internals_member_has_a_docstring(name: str) -> None:
    assert inspect.getdoc(inspect.getattr_static(EngineInternals, name))


def test_command_methods_name_their_command_in_their_docstring() -> None:
    for name in COMMAND_METHODS:
        method = getattr(Engine, name)
        assert method.__name__ == name
        assert (method.__doc__ or "").startswith(f"``{name}``: "), name


def _data_is_documented(module: ModuleType, name: str, seen: frozenset[str] = frozenset()) -> bool:
    """A constant is documented by a ``#:`` comment above its assignment, or a string right
    after it; a re-exported one where it is defined."""
    source = inspect.getsource(module)
    tree = ast.parse(source)
    lines = source.splitlines()
    body = tree.body
    for i, node in enumerate(body):
        targets: list[ast.expr] = []
        if isinstance(node, ast.Assign):
            targets = node.targets
        elif isinstance(node, ast.AnnAssign):
            targets = [node.target]
        if any(isinstance(t, ast.Name) and t.id == name for t in targets):
            above = lines[node.lineno - 2].strip() if node.lineno >= 2 else ""
            after = body[i + 1] if i + 1 < len(body) else None
            docstring = (
                isinstance(after, ast.Expr)
                and isinstance(after.value, ast.Constant)
                and isinstance(after.value.value, str)
            )
            return above.startswith("#:") or docstring
        if (
            isinstance(node, ast.ImportFrom)
            and node.module
            and node.module not in seen
            and any((a.asname or a.name) == name for a in node.names)
        ):
            origin = importlib.import_module(node.module)
            return _data_is_documented(origin, name, seen | {module.__name__})
    return False


def _undocumented(module: ModuleType) -> list[str]:
    missing = []
    for name in module.__all__:
        obj = getattr(module, name)
        if inspect.isclass(obj):
            documented = bool(obj.__dict__.get("__doc__"))
        elif (
            inspect.isfunction(obj)
            or inspect.ismodule(obj)
            or inspect.isbuiltin(obj)
            or (callable(obj) and hasattr(obj, "__wrapped__"))  # a pytest fixture, a decorator's
        ):
            documented = bool(obj.__doc__)
        else:
            documented = _data_is_documented(module, name)
        if not documented:
            missing.append(name)
    return missing


@pytest.mark.parametrize("module_name", PUBLIC_MODULES)
def test_every_public_name_has_a_docstring(module_name: str) -> None:
    module = importlib.import_module(module_name)
    assert module.__doc__, f"{module_name} has no module docstring"
    assert hasattr(module, "__all__"), f"{module_name} does not say what is public (__all__)"
    assert not _undocumented(module), f"{module_name}: undocumented {_undocumented(module)}"


def test_every_name_in_all_exists() -> None:
    for module_name in PUBLIC_MODULES:
        module = importlib.import_module(module_name)
        for name in module.__all__:
            assert hasattr(module, name), f"{module_name}.__all__ names {name!r}"


def test_the_busy_and_fee_errors_live_in_matome_errors_and_keep_their_old_paths() -> None:
    assert matome.engine.EngineBusy is matome.errors.EngineBusy is matome.errors.Busy
    assert matome.EngineBusy is matome.errors.Busy
    assert matome.fees.FeeNotConfigured is matome.errors.FeeNotConfigured
    assert {"EngineBusy", "FeeNotConfigured", "Busy"} <= set(matome.errors.__all__)


def test_applying_a_json_command_is_public_api(engine: Engine) -> None:
    assert matome.apply_line is matome.interchange.apply_line
    assert matome.apply_lines is matome.interchange.apply_lines
    result = matome.apply_line(
        engine,
        1,
        '{"command": "register_provider", "at": "2024-01-04T09:00:00+09:00", "provider": "A", '
        '"name": "A Co.", "contact": "0120-000-111", "goods": "information"}',
    )
    assert result == {"line": 1, "ok": True}
    refused = matome.apply_line(engine, 2, "not json")
    assert refused["ok"] is False
    assert refused["error"]["code"] == "invalid_input"


def test_the_testing_guide_uses_the_public_api_to_apply_commands() -> None:
    guide = (ROOT / "docs" / "testing.md").read_text(encoding="utf-8")
    assert "from matome import Engine, apply_line" in guide
    assert not re.search(r"from matome\.cli import", guide)


def test_the_version_has_one_source() -> None:
    """pyproject.toml reads the version from ``matome.__version__``; the installed metadata
    agrees (after ``pip install -e .``)."""
    pyproject = (ROOT / "pyproject.toml").read_text(encoding="utf-8")
    assert 'dynamic = ["version"]' in pyproject
    assert not re.search(r'^version\s*=\s*"', pyproject, flags=re.M)
    assert 'version = { attr = "matome.__version__" }' in pyproject
    assert re.fullmatch(r"\d+\.\d+\.\d+", matome.__version__)
    assert importlib.metadata.version("matome") == matome.__version__


def test_the_changelog_describes_the_current_version_and_the_policy() -> None:
    changelog = (ROOT / "CHANGELOG.md").read_text(encoding="utf-8")
    versions = re.findall(r"^## \[(\d+\.\d+\.\d+)\]", changelog, flags=re.M)
    assert versions[:2] == [matome.__version__, "0.1.0"], versions
    assert "## Version policy" in changelog
