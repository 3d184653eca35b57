"""The command log of the interchange contract (docs/contract.md, "Command log"): one JSON line in,
one result object out.

:func:`parse_line` reads one line of a command log into a command, enforcing the contract's
bounds on the text itself (a line of at most 64 KiB, valid UTF-8 and Unicode, no duplicate
keys, numbers and nesting a JSON reader can hold); :func:`apply_line` applies it to an engine
and answers the contract's result object.  Nothing a line contains can end a run: every
problem is that line's ``invalid_input``.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import Any

import attrs

from matome.application.eventstore import LogPosition
from matome.commands import DEFAULT_CONTRACT, Command, check_contract, parse_command
from matome.engine import Engine
from matome.errors import InvalidInput, MatomeError

__all__ = [
    "MAX_LINE_BYTES",
    "LogLine",
    "apply_line",
    "apply_lines",
    "declared_contract",
    "log_lines",
    "parse_line",
]

#: The longest command-log line accepted (docs/contract.md, bounds): 64 KiB.
MAX_LINE_BYTES = 64 * 1024


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    # {"password":"WRONG","password":"right"} must not pass as either.
    out: dict[str, Any] = {}
    for key, value in pairs:
        if key in out:
            raise InvalidInput(f"field {key!r} appears twice in one object")
        out[key] = value
    return out


#: Digits beyond which a JSON integer is not converted (every bound of the contract is far
#: below; Python itself refuses more than 4,300 digits, without saying where).
_MAX_DIGITS = 30


class _HugeInteger:
    """A JSON integer too long to convert: refused by :func:`_check_text`, naming its field."""

    def __init__(self, digits: str) -> None:
        self.digits = len(digits.lstrip("-"))


def _parse_int(text: str) -> int | _HugeInteger:
    return _HugeInteger(text) if len(text) > _MAX_DIGITS else int(text)


def _check_text(value: Any, where: str) -> None:
    """Every string (and key) must be valid Unicode — JSON escapes can spell lone surrogates,
    and bytes that are not UTF-8 arrive as such (``surrogateescape``) — and every integer of
    a convertible length."""
    if isinstance(value, str):
        try:
            value.encode("utf-8")
        except UnicodeEncodeError as e:
            what = "not UTF-8" if "\udc80" <= value[e.start] <= "\udcff" else "a lone surrogate"
            raise InvalidInput(f"{where} is not valid Unicode text ({what})") from None
    elif isinstance(value, _HugeInteger):
        raise InvalidInput(f"{where}: an integer of {value.digits:,} digits is out of bounds")
    elif isinstance(value, Mapping):
        for key, item in value.items():
            _check_text(key, f"a field name in {where}")
            _check_text(item, key if where == "the command" else f"{where}.{key}")
    elif isinstance(value, list):
        for item in value:
            _check_text(item, where)


def parse_line(text: str | bytes, contract: int = DEFAULT_CONTRACT) -> Command[Any]:
    """The command on one line of a command log, read under ``contract``; anything off is
    ``invalid_input``."""
    size = len(text) if isinstance(text, bytes) else len(text.encode("utf-8", "surrogatepass"))
    if size > MAX_LINE_BYTES:
        raise InvalidInput(f"the line is {size:,} bytes; at most {MAX_LINE_BYTES:,} are read")
    if isinstance(text, bytes):
        # Bytes that are not UTF-8 become lone surrogates: inside a string, _check_text names
        # the field that holds them; elsewhere the line is not valid JSON.
        text = text.decode("utf-8", "surrogateescape")
    try:
        obj = json.loads(text, object_pairs_hook=_no_duplicates, parse_int=_parse_int)
    except json.JSONDecodeError as e:
        raise InvalidInput(f"not valid JSON: {e.msg} at column {e.colno}") from None
    except RecursionError:
        raise InvalidInput("the JSON is nested too deeply") from None
    except ValueError as e:  # e.g. an integer of more digits than Python converts
        raise InvalidInput(f"not a JSON value matome can read: {e}") from None
    _check_text(obj, "the command")
    return parse_command(obj, contract)


def apply_line(
    engine: Engine, number: int, text: str | bytes, position: LogPosition | None = None
) -> dict[str, Any]:
    """Apply one command-log line; return its contract result object (never raises for
    anything the line contains).  ``position``, if given, is recorded with what the command
    writes (see :func:`log_lines`)."""
    try:
        result = engine.execute(parse_line(text, engine.contract), position)
    except MatomeError as e:
        return {"line": number, "ok": False, "error": e.to_json()}
    return {"line": number, "ok": True, **result.to_json()}


def apply_lines(engine: Engine, lines: Sequence[LogLine]) -> list[dict[str, Any]]:
    """Apply several command-log lines as one batch (:meth:`Engine.execute_batch`: the
    decisions of one line at a time, recorded together); return their result objects, in
    order.  A line that does not parse is answered ``invalid_input`` in its place.  A failure
    of the store is raised: nothing of the batch is kept."""
    results: list[dict[str, Any] | None] = []
    items: list[tuple[Command[Any], LogPosition | None]] = []
    slots: list[int] = []
    for line in lines:
        try:
            command = parse_line(line.text, engine.contract)
        except MatomeError as e:
            results.append({"line": line.number, "ok": False, "error": e.to_json()})
            continue
        slots.append(len(results))
        results.append(None)
        items.append((command, line.position))
    for slot, outcome in zip(slots, engine.execute_batch(items), strict=True):
        number = lines[slot].number  # one result per line: slot is the line's index
        if isinstance(outcome, MatomeError):
            results[slot] = {"line": number, "ok": False, "error": outcome.to_json()}
        else:
            results[slot] = {"line": number, "ok": True, **outcome.to_json()}
    return [r for r in results if r is not None]


@attrs.frozen
class LogLine:
    """One command line of a log: its number (from 1, counting every physical line), its
    text, and the log's position after it."""

    number: int
    text: bytes
    position: LogPosition


def log_lines(stream: Iterable[bytes]) -> Iterator[LogLine]:
    """The command lines of a log — blank lines and ``#`` comments skipped — each with the
    position a store records when it applies it.

    A log is known by the SHA-256 of its first line; the position chains the SHA-256 of every
    line up to the one applied, so that resuming can check that the lines skipped are the lines
    that were applied (``matome run --resume``).
    """
    log_id = ""
    digest = ""
    for number, raw in enumerate(stream, start=1):
        line = raw.rstrip(b"\r\n")
        if number == 1:
            log_id = hashlib.sha256(line).hexdigest()
        digest = hashlib.sha256(f"{digest}:".encode() + line).hexdigest()
        stripped = line.strip()
        if number == 1 and _declaration(stripped) is not _NOT_DECLARED:
            continue  # the contract declaration is not a command
        if stripped and not stripped.startswith(b"#"):
            yield LogLine(number, stripped, LogPosition(log_id, number, digest))


def declared_contract(first_line: bytes) -> int | None:
    """The contract a log's first line declares (``{"contract": 3}``), or ``None`` when the
    line is not a declaration — a log that declares none is read under contract 2, forever
    (docs/contract.md, "Contract versions").  A declaration of a contract this matome does not
    read is ``invalid_input``: the log cannot be read with the meaning it asks for."""
    declared = _declaration(first_line)
    return None if declared is _NOT_DECLARED else check_contract(declared)


_NOT_DECLARED = object()


def _declaration(line: bytes) -> object:
    """What a declaration line says the contract is (any JSON value), or ``_NOT_DECLARED``."""
    text = line.strip()
    if not text.startswith(b"{") or b'"contract"' not in text:
        return _NOT_DECLARED  # a command, a comment or a blank line: not worth a JSON parse
    try:
        obj = json.loads(text)
    except (ValueError, RecursionError):
        return _NOT_DECLARED
    if not isinstance(obj, dict) or set(obj) != {"contract"}:
        return _NOT_DECLARED
    return obj["contract"]
