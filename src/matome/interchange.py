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
import itertools
import json
import re
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from typing import Any, BinaryIO

import attrs

from matome.application.eventstore import LogPosition, LogPositionTaken
from matome.commands import DEFAULT_CONTRACT, Command, check_contract, parse_command
from matome.engine import Engine
from matome.errors import InvalidInput, MatomeError

__all__ = [
    "MAX_LINE_BYTES",
    "AppliedElsewhere",
    "LogLine",
    "apply_line",
    "apply_lines",
    "apply_log_line",
    "canonical_form",
    "count_commands",
    "declared_contract",
    "line_command",
    "log_lines",
    "parse_line",
    "resumes",
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


#: A run of digits as long as an integer may be, sign left out (in a string or not: either
#: way the walk decides).
_LONG_DIGITS = re.compile(rf"[0-9]{{{_MAX_DIGITS}}}")


def _may_hold_bad_text(text: str) -> bool:
    """Whether the parsed line may hold what :func:`_check_text` refuses: a lone surrogate
    (spelled as a ``\\u`` escape, or a byte that is not UTF-8) or an over-long integer.
    Most lines hold neither, and one C-speed look at the text spares the walk over every
    value (profiled: 10% of ``matome run``'s time was reading the log)."""
    if "\\u" in text or _LONG_DIGITS.search(text):
        return True
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return True
    return False


def _too_long(size: int) -> InvalidInput:
    return InvalidInput(f"the line is {size:,} bytes; at most {MAX_LINE_BYTES:,} are read")


def _command_of(line: LogLine, contract: int) -> Command[Any]:
    # An over-long line was not read whole (log_lines): its size is known, its text is not.
    if line.too_long:
        raise _too_long(line.size)
    return parse_line(line.text, contract)


def line_command(line: LogLine, contract: int) -> Command[Any]:
    """The command on a line of :func:`log_lines`, read under ``contract``; its
    ``invalid_input`` is raised.  Parsed once per line and contract: ``matome run`` asks the
    command how it runs (``ALONE``, ``FOLLOWED_BY``) before applying it."""
    for read_under, outcome in line._parsed:
        if read_under == contract:
            if isinstance(outcome, MatomeError):
                raise outcome
            return outcome
    try:
        command = _command_of(line, contract)
    except MatomeError as e:
        line._parsed.append((contract, e))
        raise
    line._parsed.append((contract, command))
    return command


def parse_line(text: str | bytes, contract: int = DEFAULT_CONTRACT) -> Command[Any]:
    """The command on one line of a command log, read under ``contract``; anything off is
    ``invalid_input``."""
    size = len(text) if isinstance(text, bytes) else len(text.encode("utf-8", "surrogatepass"))
    if size > MAX_LINE_BYTES:
        raise _too_long(size)
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
    if _may_hold_bad_text(text):
        _check_text(obj, "the command")
    return parse_command(obj, contract)


def apply_line(
    engine: Engine, number: int, text: str | bytes, position: LogPosition | None = None
) -> dict[str, Any]:
    """Apply one command-log line; return its contract result object (never raises for
    anything the line contains).  ``position``, if given, is recorded with what the command
    writes (see :func:`log_lines`)."""
    try:
        command = parse_line(text, engine.contract)
    except MatomeError as e:
        return {"line": number, "ok": False, "error": e.to_json()}
    return _execute(engine, number, command, position)


def _execute(
    engine: Engine, number: int, command: Command[Any], position: LogPosition | None
) -> dict[str, Any]:
    try:
        result = engine.execute(command, position)
    except MatomeError as e:
        return {"line": number, "ok": False, "error": e.to_json()}
    except LogPositionTaken as e:
        raise AppliedElsewhere(e.stored, []) from None
    return {"line": number, "ok": True, **result.to_json()}


class AppliedElsewhere(Exception):
    """Another run of the same log recorded commands that these lines were to apply
    (:class:`matome.application.eventstore.LogPositionTaken`): ``stored`` is the store's
    position of the log now; ``results`` are those of the lines this call did record before
    (in order, from the first line given).  The caller skips the commands the store has and
    goes on (``matome run``)."""

    def __init__(self, stored: LogPosition, results: list[dict[str, Any]]) -> None:
        super().__init__(f"another run applied this log through command {stored.line}")
        self.stored = stored
        self.results = results


def apply_log_line(engine: Engine, line: LogLine) -> dict[str, Any]:
    """:func:`apply_line` for a line of :func:`log_lines` (an over-long one included)."""
    try:
        command = line_command(line, engine.contract)
    except MatomeError as e:
        return {"line": line.number, "ok": False, "error": e.to_json()}
    return _execute(engine, line.number, command, line.position)


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
            command = line_command(line, engine.contract)
        except MatomeError as e:
            results.append({"line": line.number, "ok": False, "error": e.to_json()})
            continue
        slots.append(len(results))
        results.append(None)
        items.append((command, line.position))
    try:
        outcomes = engine.execute_batch(items)
    except LogPositionTaken as e:
        _fill(results, slots, lines, e.done)
        done = itertools.takewhile(lambda r: r is not None, results)
        raise AppliedElsewhere(e.stored, [r for r in done if r is not None]) from None
    _fill(results, slots, lines, outcomes)
    return [r for r in results if r is not None]


def _fill(
    results: list[dict[str, Any] | None],
    slots: Sequence[int],
    lines: Sequence[LogLine],
    outcomes: Sequence[Any],
) -> None:
    for slot, outcome in zip(slots, outcomes, strict=False):
        number = lines[slot].number  # one result per line: slot is the line's index
        if isinstance(outcome, MatomeError):
            results[slot] = {"line": number, "ok": False, "error": outcome.to_json()}
        else:
            results[slot] = {"line": number, "ok": True, **outcome.to_json()}


@attrs.frozen
class LogLine:
    """One command line of a log: its number (from 1, counting every physical line), its
    text (at most :data:`MAX_LINE_BYTES` + 1 bytes of it: a longer line is not read into
    memory), its size in bytes, and the log's position after it.

    ``position`` counts commands, not physical lines, and chains the digests of their
    canonical forms (:func:`canonical_form`); ``legacy`` is the position in the form matome
    0.2 recorded (the log known by its first raw line, physical lines, raw bytes chained),
    kept so that a store written then can still be resumed.
    """

    number: int
    text: bytes
    position: LogPosition
    size: int = 0
    legacy: LogPosition | None = None
    #: The line's command (or refusal) by the contract it was read under: see
    #: :func:`line_command`.
    _parsed: list[tuple[int, Command[Any] | MatomeError]] = attrs.field(
        factory=list, init=False, eq=False, repr=False
    )

    @property
    def too_long(self) -> bool:
        """The line is over :data:`MAX_LINE_BYTES` (its ``invalid_input``, unread)."""
        return self.size > MAX_LINE_BYTES


def canonical_form(text: bytes) -> bytes:
    """What identifies one command of a log (docs/contract.md, contract 3, "A log is applied
    once"): its JSON parsed and written again with keys sorted and no insignificant
    whitespace, so that re-indenting a line does not make it another command.  A line that is
    not such JSON (it is that line's ``invalid_input``) is identified by its bytes."""
    try:
        obj = json.loads(
            text.decode("utf-8", "surrogateescape"),
            object_pairs_hook=_no_duplicates,
            parse_int=_parse_int,
        )
        return b"json:" + json.dumps(obj, sort_keys=True, separators=(",", ":")).encode("ascii")
    except (ValueError, TypeError, RecursionError, MatomeError):
        # Not JSON, duplicate keys, an integer too long: the bytes themselves (never equal
        # to a canonical JSON form, which starts with "json:").
        return b"text:" + text


def _chain(previous: str, form: bytes) -> str:
    return hashlib.sha256(previous.encode() + b":" + form).hexdigest()


def _whole_line(line: bytes, legacy_prefix: bytes) -> tuple[bytes, int, str, str]:
    """A line read whole: itself, its size, its link of the legacy chain and the digest of
    its bytes (an over-long line's are computed chunk by chunk, the same way)."""
    return (
        line,
        len(line),
        hashlib.sha256(legacy_prefix + line).hexdigest(),
        hashlib.sha256(line).hexdigest(),
    )


def resumes(line: LogLine, stored: LogPosition, *, legacy: bool = False) -> bool:
    """Whether ``line`` is the command a store recorded its log applied through — the check
    that only the log that was applied is resumed.  ``legacy``: ``stored`` is in the form
    matome 0.2 recorded (:attr:`LogLine.legacy`)."""
    position = line.legacy if legacy and line.legacy is not None else line.position
    return position.line == stored.line and position.digest == stored.digest


#: How much of an over-long line is read at a time while it is skipped.
_CHUNK = 64 * 1024


class _RawLines:
    """The physical lines of a log in bounded memory: each as its first
    ``MAX_LINE_BYTES + 2`` bytes (without the end of line), its full size, and the SHA-256
    digests the legacy chain and an over-long line's identity need — computed while the rest
    of an over-long line is read and dropped, :data:`_CHUNK` bytes at a time."""

    def __init__(self, stream: BinaryIO | Iterable[bytes]) -> None:
        readline: Callable[[int], bytes] | None = getattr(stream, "readline", None)
        self._readline: Callable[[int], bytes] = readline or (lambda _: b"")
        self._iter = None if readline is not None else iter(stream)

    def next(self, legacy_prefix: bytes) -> tuple[bytes, int, str, str] | None:
        """The next line: (head, size, legacy digest, digest of its bytes); ``None`` at the
        end.  ``legacy_prefix`` starts the legacy chain's hash of this line."""
        if self._iter is not None:
            # Lines already in memory (a list, a generator of lines): nothing to bound.
            raw = next(self._iter, None)
            if raw is None:
                return None
            return _whole_line(raw.rstrip(b"\r\n"), legacy_prefix)
        head: bytes = self._readline(MAX_LINE_BYTES + 2)
        if not head:
            return None
        if head.endswith(b"\n") or len(head) < MAX_LINE_BYTES + 2:
            return _whole_line(head.rstrip(b"\r\n"), legacy_prefix)
        # An over-long line: hash the rest as it comes, never holding more than a chunk.
        # Trailing CR/LF bytes are held back until it is known whether they end the line.
        legacy = hashlib.sha256(legacy_prefix)
        whole = hashlib.sha256()
        size = 0
        held = b""
        chunk = head
        while chunk:
            data = held + chunk
            body = data.rstrip(b"\r\n")
            held = data[len(body) :]
            legacy.update(body)
            whole.update(body)
            size += len(body)
            if chunk.endswith(b"\n"):
                break
            chunk = self._readline(_CHUNK)
        return head[: MAX_LINE_BYTES + 1], size, legacy.hexdigest(), whole.hexdigest()


def count_commands(stream: BinaryIO) -> int:
    """How many command lines a log file has (for progress; read in bounded memory, nothing
    parsed)."""
    count = 0
    start = True
    while chunk := stream.readline(_CHUNK):
        if start:
            stripped = chunk.strip()
            count += bool(stripped) and not stripped.startswith(b"#")
        start = chunk.endswith(b"\n")
    return count


def log_lines(stream: BinaryIO | Iterable[bytes]) -> Iterator[LogLine]:
    """The command lines of a log — blank lines and ``#`` comments skipped — each with the
    position a store records when it applies it, read in bounded memory (a file's line of
    any length costs at most :data:`MAX_LINE_BYTES` plus a chunk).

    A log is the sequence of its commands in canonical form (:func:`canonical_form`): the
    position after the k-th command is (the log's identity, k, the chained digest of the
    first k forms), so re-indenting lines, adding comments and blank lines, or piping the
    log on standard input does not change it (docs/contract.md, contract 3, "A log is applied
    once").  The identity is the digest of the first command's form.

    A ``{"contract": N}`` declaration on the first line is not a command (it is neither
    counted nor answered), but a declared contract other than 2 is part of the log's
    identity: the same commands read under another contract are another log, and an
    undeclared log is the same log as one declaring contract 2, which it means.
    """
    reader = _RawLines(stream)
    log_id = ""
    digest = ""
    count = 0
    legacy_id = ""
    legacy = ""
    number = 0
    while True:
        got = reader.next(f"{legacy}:".encode())
        if got is None:
            return
        head, size, legacy, whole = got
        number += 1
        if number == 1:
            legacy_id = whole  # 0.2 knew a log by the SHA-256 of its first raw line
        stripped = head.strip()
        if not stripped or stripped.startswith(b"#"):
            continue
        if number == 1 and (declared := _declaration(stripped)) is not _NOT_DECLARED:
            if declared != DEFAULT_CONTRACT:
                digest = _chain(digest, b"contract:" + _canonical_declaration(declared))
            continue  # the declaration is not a command
        # An over-long line is known by the digest of its bytes (it was not read whole).
        form = b"long:" + whole.encode() if size > MAX_LINE_BYTES else canonical_form(stripped)
        count += 1
        digest = _chain(digest, form)
        if count == 1:
            log_id = digest
        yield LogLine(
            number,
            stripped,
            LogPosition(log_id, count, digest),
            size=size if size > MAX_LINE_BYTES else len(stripped),
            legacy=LogPosition(legacy_id, number, legacy),
        )


def declared_contract(first_line: bytes) -> int | None:
    """The contract a log's first line declares (``{"contract": 3}``), or ``None`` when the
    line is not a declaration — a log that declares none is read under contract 2, forever
    (docs/contract.md, "Contract versions").  A declaration of a contract this matome does not
    read is ``invalid_input``: the log cannot be read with the meaning it asks for."""
    declared = _declaration(first_line)
    return None if declared is _NOT_DECLARED else check_contract(declared)


_NOT_DECLARED = object()


def _canonical_declaration(declared: object) -> bytes:
    """A declared contract in canonical JSON (part of the log's identity)."""
    return json.dumps(declared, sort_keys=True, separators=(",", ":")).encode()


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
