"""``matome run`` (:mod:`matome.cli`): applying a command log to a store — the run's plan
(resume, again, another run at the same time), batches, and its summary line.
"""

from __future__ import annotations

import argparse
import itertools
import sys
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any, BinaryIO, TextIO

import attrs

from matome._cli_output import (
    EXIT_LOG_UNREADABLE,
    EXIT_REFUSED,
    EXIT_STORE_UNAVAILABLE,
    EXIT_USAGE,
    _dumps,
    _fail,
    _Progress,
    _say,
)
from matome.application.eventstore import LogPosition
from matome.commands import DEFAULT_CONTRACT, Command
from matome.engine import Engine
from matome.errors import (
    InvalidInput,
    MatomeError,
    StoreNotFound,
    StoreUnavailable,
)
from matome.interchange import (
    MAX_LINE_BYTES,
    AppliedElsewhere,
    LogLine,
    apply_lines,
    apply_log_line,
    count_commands,
    declared_contract,
    line_command,
    log_lines,
    resumes,
)

#: Lines of a log file recorded per transaction by ``matome run`` (``--batch``).
DEFAULT_BATCH = 100


class _StoreFailed(Exception):
    """A run stopped because the store failed (not because of a line)."""

    def __init__(self, error: MatomeError, number: int) -> None:
        super().__init__(error.message)
        self.error = error
        self.number = number


def run_log(
    engine: Engine,
    stream: BinaryIO | Iterable[bytes],
    out: TextIO,
    total: int | None = None,
    *,
    batch: int = 1,
    resume: bool = False,
    again: bool = False,
    name: str = "the log",
    skipped: list[int] | None = None,
) -> tuple[int, int]:
    """Apply a command log, printing one JSON result per command; return how many commands
    were accepted and refused (``skipped``, if given, gets the number of commands skipped as
    applied already appended).

    A log is the sequence of its commands in canonical form (:func:`matome.interchange.
    log_lines`).  If this store has applied some of them before, the run is refused
    (:class:`_AppliedBefore`) unless ``resume`` — skip the commands applied, after checking
    they are these — or ``again`` — apply it all again, its positions kept apart as a new
    run (``ID+N``) of the log.

    Every command records the log's position with what it writes, and *claims* it in the same
    transaction: another run of the same log at once cannot record a command twice; a run
    that loses the race skips what the other applied and goes on.  With ``batch`` > 1, that
    many lines are decided one after another and recorded in one transaction
    (:func:`matome.interchange.apply_lines`: the same decisions, fewer commits); their
    results are printed once the batch is recorded.  A failure of the store stops the run
    (it is not a refusal of the line): :class:`_StoreFailed`.
    """
    counts = [0, 0, 0]
    hasher = engine.internals.hasher
    progress = _Progress(total, "commands", beside=("derivations", lambda: hasher.derivations))
    pending: list[LogLine] = []
    lines = log_lines(stream)
    first = next(lines, None)
    if first is None:
        return 0, 0
    plan = _plan(engine, first, resume=resume, again=again, name=name)

    def record(results: list[dict[str, Any]]) -> None:
        for result in results:
            if not result["ok"] and result["error"]["code"] in (
                StoreNotFound.code,
                StoreUnavailable.code,
            ):
                progress.close()
                raise _StoreFailed(StoreUnavailable(result["error"]["message"]), result["line"])
            counts[0] += result["ok"]
            counts[1] += not result["ok"]
            out.write(_dumps(result) + "\n")
        progress.step(len(results))

    def flush() -> None:
        while pending:
            try:
                if len(pending) == 1:
                    results = [apply_log_line(engine, pending[0])]
                else:
                    results = apply_lines(engine, pending)
            except (StoreNotFound, StoreUnavailable) as e:
                progress.close()
                raise _StoreFailed(StoreUnavailable(e.message), pending[0].number) from None
            except AppliedElsewhere as e:
                # Another run of this log recorded commands of this batch: what this run
                # recorded before them stands; the rest up to the store's position is the
                # other run's, and is skipped.
                record(e.results)
                done = {r["line"] for r in e.results}
                rest = [line for line in pending if line.number not in done]
                plan.overtaken(e.stored)
                pending[:] = [line for line in rest if not skip(line)]
                if len(pending) == len(rest):  # the store's position is past the claim
                    raise RuntimeError(f"{e}: no line of the batch was applied") from None
                progress.step(len(rest) - len(pending))
                if pending:
                    catch_up()
                continue
            record(results)
            pending.clear()

    billing = [False]

    def skip(line: LogLine) -> bool:
        if not plan.skips(line):
            return False
        counts[2] += 1
        # An issue_bills another run applied: its billing run may be going on, or have been
        # cut short (a kill); what follows is applied once it is complete, as after one run.
        command = _command(engine, line)
        billing[0] = billing[0] or (command is not None and bool(command.FOLLOWED_BY))
        return True

    def catch_up() -> None:
        if billing[0]:
            billing[0] = False
            engine.complete_billing()

    for line in itertools.chain([first], lines):
        if skip(line):
            continue
        catch_up()
        line = plan.own(line)
        alone = batch > 1 and (command := _command(engine, line)) is not None and command.ALONE
        if alone:
            # The engine runs it in a transaction of its own anyway: what came before is
            # recorded and printed first, so that a printed result is always a recorded one
            # (a billing run can take minutes) and a store failure names this line.
            flush()
            pending.append(line)
            flush()
            continue
        pending.append(line)
        if len(pending) >= batch:
            flush()
    flush()
    catch_up()
    plan.finish()
    progress.close()
    if skipped is not None:
        skipped.append(counts[2])
    return counts[0], counts[1]


class _AppliedBefore(InvalidInput):
    """``matome run`` of a log this store has applied commands of, without ``--resume`` or
    ``--again`` (docs/contract.md, contract 3): exit 2."""


class _Plan:
    """Which commands of a log a run skips, and under which identity it records positions.

    ``after`` commands (or, resuming positions matome 0.2 recorded, physical lines:
    ``legacy``) were applied before — by an earlier run or, once :meth:`overtaken`, by
    another run at the same time — and are skipped; the last of them is checked against the
    stored position's digest, so that only the log that was applied is resumed."""

    def __init__(self, name: str, log_id: str) -> None:
        self.name = name
        self.log_id = log_id
        self.after = 0
        self.expect: LogPosition | None = None
        self.legacy = False
        #: Resuming a run cut short: say where, once the point is reached and checked.
        self.resuming = False

    def skips(self, line: LogLine) -> bool:
        """Whether ``line`` was applied before (checking the log where it can)."""
        position = line.legacy if self.legacy and line.legacy is not None else line.position
        if position.line > self.after:
            return False
        if position.line == self.after and self.expect is not None:
            if not resumes(line, self.expect, legacy=self.legacy):
                raise InvalidInput(
                    f"{self.name} is not the log this store applied through command "
                    f"{self.after} (its commands differ); it cannot be resumed"
                )
            self.expect = None  # checked
            if self.resuming:
                self.resuming = False
                print(
                    f"matome run: resuming {self.name} after line {line.number} "
                    + ("(positions of matome 0.2)" if self.legacy else f"(command {self.after})"),
                    file=sys.stderr,
                )
        return True

    def own(self, line: LogLine) -> LogLine:
        """``line`` with the position this run records (its run of the log)."""
        if line.position.log_id == self.log_id:
            return line
        return attrs.evolve(line, position=attrs.evolve(line.position, log_id=self.log_id))

    def overtaken(self, stored: LogPosition) -> None:
        """Another run of the log recorded it through ``stored``: skip that far too."""
        self.legacy = self.resuming = False
        self.after = max(self.after, stored.line)
        self.expect = stored if stored.line == self.after else None

    def finish(self) -> None:
        """The log ended.  Shorter than the commands the store applied (a part of the log
        resumed): nothing was left to apply and nothing could be checked — said, not
        refused."""
        if self.expect is not None:
            print(
                f"matome run: {self.name} has fewer commands than the {self.after} this store "
                "applied of it: nothing to apply",
                file=sys.stderr,
            )


def _positions(engine: Engine, log_id: str) -> list[LogPosition]:
    """The runs of a log this store recorded: the first under ``log_id``, those applied
    ``--again`` under ``log_id+N`` (N = 1, 2, ...)."""
    found: list[LogPosition] = []
    while True:
        key = log_id if not found else f"{log_id}+{len(found)}"
        known = engine.log_position(key)
        if known is None:
            return found
        found.append(known)


def _plan(engine: Engine, first: LogLine, *, resume: bool, again: bool, name: str) -> _Plan:
    """How a run of the log beginning with ``first`` goes on this store (see :func:`run_log`)."""
    base = first.position.log_id
    runs = _positions(engine, base)
    legacy = None
    if not runs and first.legacy is not None:
        legacy = engine.log_position(first.legacy.log_id)
    if again:
        # A run of its own: positions kept apart from every earlier run's, so that its claims
        # do not collide with theirs and --resume continues it.
        return _Plan(name, f"{base}+{len(runs)}" if runs else base)
    if not resume:
        applied = runs[-1] if runs else legacy
        if applied is not None:
            through = f"line {applied.line}" if legacy is not None else f"command {applied.line}"
            raise _AppliedBefore(
                f"this store has already applied {name} (or a log beginning with the same "
                f"command) through {through}: run it with --resume to apply only what was "
                "not applied, or with --again to apply all of it again"
            )
        return _Plan(name, base)
    plan = _Plan(name, runs[-1].log_id if runs else base)
    known = runs[-1] if runs else legacy
    if known is not None:
        plan.after = known.line
        plan.expect = known
        plan.legacy = not runs
        plan.resuming = True
    return plan


def _command(engine: Engine, line: LogLine) -> Command[Any] | None:
    """The line's command, whose traits (``ALONE``, ``FOLLOWED_BY``: see
    :class:`matome.commands.Command`) say how it runs; ``None`` for a line that is no command
    (it is refused in its place).  The line is parsed once: applying it reuses the command."""
    try:
        return line_command(line, engine.contract)
    except MatomeError:
        return None


def _cmd_run(args: argparse.Namespace) -> int:
    path = args.log
    if args.resume and args.again:
        _say(args, InvalidInput("--resume and --again exclude each other"))
        return EXIT_USAGE
    try:
        if path == "-":
            source: BinaryIO = sys.stdin.buffer
            total = None
        else:
            source = Path(path).open("rb")  # noqa: SIM115 - closed below
            total = count_commands(source)
            source.seek(0)
    except OSError as e:
        _say(args, InvalidInput(f"cannot read {path}: {e.strerror or e}"))
        return EXIT_LOG_UNREADABLE
    try:
        contract = _log_contract(source)
    except InvalidInput as e:  # a contract this matome does not read: the log is unreadable
        if source is not sys.stdin.buffer:
            source.close()
        _say(args, e)
        return EXIT_LOG_UNREADABLE
    try:
        engine = Engine.open(args.db, contract=contract or DEFAULT_CONTRACT)
    except MatomeError as e:
        if source is not sys.stdin.buffer:
            source.close()
        return _fail(args, e)
    try:
        if args.resume:
            # A billing process cut short with the log (a run killed between an issue_bills
            # and its last bill) is completed before going on.  (A plain run writes nothing
            # it was not asked to — an old store's first run included; the next issue_bills
            # completes the process then, from its tracking position.)
            engine.complete_billing()
        batch = args.batch if args.batch is not None else (1 if path == "-" else DEFAULT_BATCH)
        events_before = _events(engine)
        started = time.monotonic()
        skipped: list[int] = []
        accepted, refused = run_log(
            engine,
            source,
            sys.stdout,
            total,
            batch=max(1, batch),
            resume=args.resume,
            again=args.again,
            name="standard input" if path == "-" else path,
            skipped=skipped,
        )
        elapsed = time.monotonic() - started
        events = _events(engine) - events_before
    except _StoreFailed as stopped:
        _say(
            args,
            StoreUnavailable(
                f"stopped at line {stopped.number}: {stopped.error.message}; the lines before "
                "it are applied — fix the store and run again with --resume"
            ),
        )
        return EXIT_STORE_UNAVAILABLE
    except InvalidInput as e:
        # The log is not the one applied (--resume), or was applied before (neither --resume
        # nor --again): nothing of it was applied by this run.
        _say(args, e)
        return EXIT_LOG_UNREADABLE
    except MatomeError as e:
        return _fail(args, e)
    finally:
        if source is not sys.stdin.buffer:
            source.close()
        engine.close()
    if not args.quiet:
        print(
            run_summary(accepted, refused, sum(skipped), events, elapsed)
            + (
                f"; contract {contract} (declared)"
                if contract
                else f"; contract {DEFAULT_CONTRACT} (the log declares none)"
            ),
            file=sys.stderr,
        )
    return EXIT_REFUSED if args.strict and refused else 0


def _log_contract(source: BinaryIO) -> int | None:
    """The contract the log's first line declares (``None``: none, so contract 2), read
    without consuming it: a file is rewound; standard input is peeked at."""
    peek = getattr(source, "peek", None)
    if source.seekable():
        where = source.tell()
        first = source.readline(MAX_LINE_BYTES)
        source.seek(where)
    elif peek is not None:  # a pipe: what is buffered holds a declaration line whole
        first = peek(MAX_LINE_BYTES).split(b"\n", 1)[0]
    else:
        return None
    return declared_contract(first)


def _events(engine: Engine) -> int:
    """How many events the store holds (its last notification id)."""
    return engine.internals.recorder.max_notification_id() or 0


def run_summary(applied: int, refused: int, skipped: int, events: int, seconds: float) -> str:
    """The line ``matome run`` ends with on stderr: what it applied, refused and skipped (the
    lines ``--resume`` found already applied), and how fast it recorded events."""
    rate = events / seconds if seconds > 0 else 0.0
    return (
        f"matome run: {applied:,} applied, {refused:,} refused, {skipped:,} skipped; "
        f"{events:,} events in {seconds:.1f}s ({rate:,.0f} events/s)"
    )
