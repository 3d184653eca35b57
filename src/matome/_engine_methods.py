"""How :class:`matome.engine.Engine`'s methods are made: the guard that turns a failure of
the store into one matome error, the typed method of each command, and the readers of the
arguments the document and audit methods take as values or text.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from datetime import datetime
from typing import TYPE_CHECKING, Any, Concatenate, ParamSpec, Protocol, TypeVar

from matome import commands as cmd
from matome.application.eventstore import LogPosition, translate_store_error
from matome.errors import InvalidInput, MatomeError
from matome.values import CustomerId, YearMonth, require_aware

if TYPE_CHECKING:
    from matome.application.eventstore import EventStoreApplication
    from matome.application.service import CommandService
    from matome.projections.documents import Documents
    from matome.projections.runner import Projection

R = TypeVar("R", bound=cmd.Result)
P = ParamSpec("P")


T = TypeVar("T")
M = TypeVar("M", bound=Callable[..., Any])


class Engine(Protocol):
    """What the engine's private modules use of a :class:`matome.engine.Engine`, named by its
    shape: ``matome.engine`` imports them, so they do not import it back."""

    _store: EventStoreApplication
    _commands: CommandService

    def execute(self, command: cmd.Command[R], position: LogPosition | None = None) -> R: ...

    def _run_billing(self, through: YearMonth | None = None, at: datetime | None = None) -> int: ...

    def _view_pair(self) -> tuple[Projection, Documents]: ...


def _guarded(method: M) -> M:
    """Failures of the store become one matome error naming the store and the cause
    (``busy``, ``store_unavailable``): no eventsourcing, sqlite3 or psycopg exception escapes."""

    @functools.wraps(method)
    def guarded(self: Engine, *args: Any, **kwargs: Any) -> Any:
        try:
            return method(self, *args, **kwargs)
        except MatomeError:
            raise
        except Exception as e:
            translated = translate_store_error(e, self._store.store_settings)
            if translated is None:
                raise
            raise translated from e

    return guarded  # type: ignore[return-value]  # same signature as method


def _command_method(cls: Callable[P, cmd.Command[R]]) -> Callable[Concatenate[Engine, P], R]:
    """A typed method that builds the command from its keyword arguments and executes it."""

    def method(self: Engine, /, *args: P.args, **kwargs: P.kwargs) -> R:
        return self.execute(cls(*args, **kwargs))

    name = getattr(cls, "NAME", "")
    method.__name__ = name or getattr(cls, "__name__", "command")
    method.__qualname__ = f"Engine.{method.__name__}"
    method.__module__ = "matome.engine"  # where it is an attribute, as before the split
    method.__doc__ = (
        f"``{name}``: {cls.__doc__ or ''}\n\nThe keyword arguments are the fields of "
        f":class:`matome.commands.{getattr(cls, '__name__', '')}`; returns its result or raises "
        "its refusal (a :class:`~matome.errors.MatomeError`)."
    )
    return method


def _cid(value: CustomerId | str) -> str:
    return value.value if isinstance(value, CustomerId) else CustomerId(value).value


def _month(value: YearMonth | str) -> YearMonth:
    return value if isinstance(value, YearMonth) else YearMonth.parse(value)


def _instant(value: datetime | str | None, what: str) -> datetime | None:
    if value is None or isinstance(value, datetime):
        return None if value is None else require_aware(value, what)
    if not isinstance(value, str):
        raise InvalidInput(f"{what} must be a time (ISO-8601 text), got {type(value).__name__}")
    try:
        return require_aware(datetime.fromisoformat(value), what)
    except ValueError:
        raise InvalidInput(f"{what} {value!r} is not an ISO-8601 time with an offset") from None
