"""Commands carry their own traits (issue #17): how a command runs — alone or batched, in a
closed month or not, followed by which process — is read from its class
(:class:`matome.commands.Command`), never decided by a module that recognises a command class.
"""

from __future__ import annotations

import ast
import contextlib
import io
import json
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest

import matome
from matome import _cli_run, cli, interchange
from matome import commands as cmd
from matome.application.eventstore import LogPosition
from matome.application.service import CommandService
from matome.engine import Engine
from matome.errors import MatomeError, MonthClosed
from matome.events.bill import BillIssued
from matome.interchange import LogLine

SOURCE = Path(matome.__file__).parent
#: The modules that run commands.  ``application/handlers.py`` is the table from command
#: class to decider (dispatch, not a special case) and is left out.
RUNNERS = (
    "engine.py",
    "_engine_methods.py",
    "application/service.py",
    "cli.py",
    "_cli_run.py",
    "_cli_commands.py",
    "interchange.py",
    "billing.py",
)
COMMAND_CLASSES = {c.__name__ for c in cmd.COMMANDS.values()}

AT = "2024-01-04T09:00:00+09:00"


def _class_named(node: ast.expr) -> str | None:
    """The command class an expression names (``cmd.IssueBills``, ``IssueBills``), if any."""
    name = node.attr if isinstance(node, ast.Attribute) else getattr(node, "id", None)
    return name if name in COMMAND_CLASSES else None


def _names_a_command(value: str | bytes) -> bool:
    """A constant holding a command's name as a line's JSON does (``"issue_bills"``, quotes
    included): a search of the raw text instead of asking the parsed command.  (A bare name
    is also a row kind — a statement's ``refund`` — and not looked for.)"""
    text = value.decode("utf-8", "replace") if isinstance(value, bytes) else value
    return any(f'"{name}"' in text for name in cmd.COMMANDS)


def _special_cases(tree: ast.Module) -> Iterator[str]:
    docstrings = {
        id(node.body[0].value)
        for node in ast.walk(tree)
        if isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef)
        and node.body
        and isinstance(node.body[0], ast.Expr)
        and isinstance(node.body[0].value, ast.Constant)
    }
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and getattr(node.func, "id", None) == "isinstance":
            classes = node.args[1:]
            for arg in classes:
                elements = arg.elts if isinstance(arg, ast.Tuple) else [arg]
                for element in elements:
                    if (found := _class_named(element)) is not None:
                        yield f"line {node.lineno}: isinstance(..., {found})"
        if isinstance(node, ast.Compare) and any(
            isinstance(side, ast.Call) and getattr(side.func, "id", None) == "type"
            for side in [node.left, *node.comparators]
        ):
            yield f"line {node.lineno}: a comparison of type(command)"
        if (
            isinstance(node, ast.Constant)
            and id(node) not in docstrings
            and isinstance(node.value, str | bytes)
            and _names_a_command(node.value)
        ):
            yield f"line {node.lineno}: the command name in {node.value!r}"


@pytest.mark.parametrize("module", RUNNERS)
def test_no_module_that_runs_commands_special_cases_a_command_class(module: str) -> None:
    """A trait lives on the command class; the engine, the command service, the command
    line, the log reader and the billing process ask the command, so a new command that runs
    alone (say) needs no change in any of them."""
    tree = ast.parse((SOURCE / module).read_text(encoding="utf-8"))
    assert list(_special_cases(tree)) == []


def test_the_special_case_finder_finds_a_special_case() -> None:
    tree = ast.parse(
        "if isinstance(command, cmd.IssueBills):\n    pass\n"
        "if type(command) in ALONE:\n    pass\n"
        "MARK = b'\"issue_bills\"'\n"
    )
    assert len(list(_special_cases(tree))) == 3


def _provider(code: str, name: str | None = None) -> cmd.RegisterProvider:
    return cmd.RegisterProvider(
        at=AT,
        provider=code,
        name=name or f"{code} Co.",
        contact="0120-000-111",
        goods="information",
    )


def test_a_command_class_that_runs_alone_is_never_batched(
    engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``ALONE``: the engine records what came before it, runs it in a transaction of its
    own, and batches what follows."""
    batches: list[list[str]] = []
    real = CommandService.execute_batch

    def spy(
        self: CommandService, items: Sequence[tuple[cmd.Command[Any], LogPosition | None]]
    ) -> Any:
        batches.append([str(getattr(c, "provider", c.NAME)) for c, _ in items])
        return real(self, items)

    monkeypatch.setattr(CommandService, "execute_batch", spy)
    engine.execute_batch([(_provider(code), None) for code in ("A", "B")])
    assert batches == [["A", "B"]]
    batches.clear()
    monkeypatch.setattr(cmd.RegisterProvider, "ALONE", True)
    outcomes = engine.execute_batch([(_provider(code), None) for code in ("C", "D")])
    assert batches == []
    assert outcomes == [cmd.Done(), cmd.Done()]
    with pytest.raises(ValueError, match="cannot be batched"):
        CommandService.execute_batch(engine._commands, [(_provider("E"), None)])


def test_only_a_command_class_that_may_name_a_closed_month_is_accepted_in_one(
    engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    """§7: a command dated in a closed month is ``month_closed`` unless its class says
    ``MAY_NAME_CLOSED_MONTH`` (``issue_bills``: closing a closed month changes nothing)."""
    engine.issue_bills(at="2024-02-01T09:00:00+09:00", month="2024-01")
    with pytest.raises(MonthClosed):
        engine.execute(_provider("A"))
    assert engine.issue_bills(at="2024-02-02T09:00:00+09:00", month="2024-01").closed == ()
    monkeypatch.setattr(cmd.RegisterProvider, "MAY_NAME_CLOSED_MONTH", True)
    assert engine.execute(_provider("A")) == cmd.Done()


def test_a_command_is_followed_by_the_processes_its_class_names(
    engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``FOLLOWED_BY``: ``issue_bills`` returns once the billing process has issued the bills
    of the months it closed; a class that names no process returns at once."""
    from matome.demo import DEMO_LOG

    monkeypatch.setattr(cmd.IssueBills, "FOLLOWED_BY", ())
    first_issue = next(i for i, e in enumerate(DEMO_LOG) if e["command"] == "issue_bills")
    for entry in DEMO_LOG[: first_issue + 1]:
        with contextlib.suppress(MatomeError):
            engine.execute(cmd.parse_command(entry))

    def bills() -> int:
        found = engine.internals.recorder.select_notifications(start=1, limit=10_000)
        return sum(n.topic == BillIssued.TOPIC for n in found)

    assert engine.closed_through() is not None
    assert bills() == 0
    monkeypatch.setattr(cmd.IssueBills, "FOLLOWED_BY", (cmd.BILLING_PROCESS,))
    engine.execute(cmd.parse_command(DEMO_LOG[first_issue]))  # answered again: and followed
    assert bills() == 2


def test_matome_run_batches_a_line_that_only_mentions_a_command_that_runs_alone(
    engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The command line parses a line and asks its command (``ALONE``) whether to cut the
    batch there — a provider named "issue_bills" does not cut it (the line's raw text is not
    searched)."""
    groups: list[list[int]] = []
    real = interchange.apply_lines

    def spy(engine: Engine, lines: Sequence[LogLine]) -> list[dict[str, Any]]:
        groups.append([line.number for line in lines])
        return real(engine, lines)

    monkeypatch.setattr(_cli_run, "apply_lines", spy)  # where run_log finds it
    log = [
        {
            "command": "register_provider",
            "at": AT,
            "provider": "A",
            "name": "issue_bills",
            "contact": "0120-000-111",
            "goods": "information",
        },
        {
            "command": "register_provider",
            "at": AT,
            "provider": "B",
            "name": "B Co.",
            "contact": "0120-000-111",
            "goods": "information",
        },
        {"command": "issue_bills", "at": "2024-02-01T09:00:00+09:00", "month": "2024-01"},
        {
            "command": "register_provider",
            "at": "2024-02-02T09:00:00+09:00",
            "provider": "C",
            "name": "C Co.",
            "contact": "0120-000-111",
            "goods": "information",
        },
        {
            "command": "register_provider",
            "at": "2024-02-02T09:00:00+09:00",
            "provider": "D",
            "name": "D Co.",
            "contact": "0120-000-111",
            "goods": "information",
        },
    ]
    text = "".join(json.dumps(e) + "\n" for e in log).encode()
    accepted, refused = cli.run_log(engine, io.BytesIO(text), io.StringIO(), batch=10)
    assert (accepted, refused) == (5, 0)
    assert groups == [[1, 2], [4, 5]]  # issue_bills ran alone, between them
