"""How ``matome`` (:mod:`matome.cli`) reports: progress on a terminal, JSON text, one-line
errors and the exit codes (docs/reliability.md).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections.abc import Callable
from typing import Any, TextIO

from matome.errors import (
    Busy,
    InvalidSetting,
    MatomeError,
    StoreNotFound,
    StoreUnavailable,
)


class _Progress:
    """Events/s and ETA on a terminal's stderr; silent when stderr is not a terminal."""

    def __init__(
        self,
        total: int | None,
        what: str,
        stream: TextIO = sys.stderr,
        *,
        beside: tuple[str, Callable[[], int]] | None = None,
    ) -> None:
        self.total = total
        self.what = what
        self.stream = stream
        #: A second rate drawn beside the first: its name and a counter to read (``matome
        #: run``: the key derivations, which set a cold log's pace).
        self.beside = beside
        self.beside_start = beside[1]() if beside is not None else 0
        self.enabled = stream.isatty()
        self.start = time.monotonic()
        self.last = 0.0
        self.done = 0

    def report(self, done: int, total: int) -> None:
        """A long operation's progress callback (``Progress``: done so far, in all)."""
        self.total = total
        self.step(done - self.done)

    def step(self, n: int = 1) -> None:
        self.done += n
        now = time.monotonic()
        if self.enabled and now - self.last >= 0.5:
            self.last = now
            self._draw(now)

    def _draw(self, now: float) -> None:
        elapsed = max(now - self.start, 1e-9)
        rate = self.done / elapsed
        text = f"\r{self.what}: {self.done:,}"
        if self.total:
            eta = (self.total - self.done) / rate if rate else 0.0
            text += f"/{self.total:,} ({100 * self.done / self.total:.0f}%)  ETA {eta:,.0f}s"
        text += f"  {rate:,.0f}/s"
        if self.beside is not None:
            name, counter = self.beside
            text += f"  {(counter() - self.beside_start) / elapsed:,.1f} {name}/s"
        text += " "
        self.stream.write(text)
        self.stream.flush()

    def close(self) -> None:
        if self.enabled and self.done:
            self._draw(time.monotonic())
            self.stream.write("\n")


#: Exit codes (docs/reliability.md): a document that does not exist or a refusal (with
#: ``--strict``) is 1, as the contract says; the rest say what went wrong with the store.
EXIT_REFUSED = 1
EXIT_LOG_UNREADABLE = 2
#: A command line that cannot be read (argparse's own exit code).
EXIT_USAGE = 2
EXIT_STORE_NOT_FOUND = 3
EXIT_STORE_UNAVAILABLE = 4
EXIT_BUSY = 5
_STORE_EXITS = {
    StoreNotFound.code: EXIT_STORE_NOT_FOUND,
    StoreUnavailable.code: EXIT_STORE_UNAVAILABLE,
    Busy.code: EXIT_BUSY,
}


def _dumps(obj: Any, **kwargs: Any) -> str:
    """JSON as UTF-8 text: readable (``ensure_ascii=False``) unless it holds text that is
    not valid Unicode — a path given in bytes that are not UTF-8 — which is escaped instead,
    so that the output stays valid UTF-8 JSON."""
    text = json.dumps(obj, ensure_ascii=False, **kwargs)
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return json.dumps(obj, **kwargs)
    return text


def exit_code(error: MatomeError) -> int:
    """The exit code of the command line for ``error``."""
    if isinstance(error, InvalidSetting):  # --db or a MATOME_* setting: fix the invocation
        return EXIT_USAGE
    return _STORE_EXITS.get(error.code, EXIT_REFUSED)


def _say(args: argparse.Namespace, error: MatomeError) -> None:
    """Report ``error`` in one line: the contract's error object on stdout with ``--json``,
    else ``matome COMMAND: code: message`` on stderr."""
    if getattr(args, "json", False):
        print(_dumps({"error": error.to_json()}), flush=True)
    else:
        command = getattr(args, "command", None)
        where = f"matome {command}" if command else "matome"
        print(f"{where}: {error.code}: {error.message}", file=sys.stderr, flush=True)


def _fail(args: argparse.Namespace, error: MatomeError) -> int:
    """Report ``error`` in one line (the contract's JSON with ``--json``); its exit code."""
    _say(args, error)
    return exit_code(error)


def _colour(stream: TextIO | None = None) -> bool:
    """Colour only on a terminal (stdout by default), and never with ``NO_COLOR`` set
    (https://no-color.org)."""
    return (stream or sys.stdout).isatty() and not os.environ.get("NO_COLOR")
