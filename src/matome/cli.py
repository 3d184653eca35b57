"""``matome`` — the command line of the interchange contract (docs/contract.md, "Command line";
``matome.reference.text("contract")``).

Entry points stay thin: parsing arguments, calling the engine, printing.  ``--json`` output is
the contract; without it, tables for people.
"""

from __future__ import annotations

import argparse
import base64
import itertools
import json
import os
import secrets
import shlex
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any, BinaryIO, NoReturn, TextIO

import attrs

from matome import __version__
from matome.application.eventstore import LogPosition
from matome.commands import DEFAULT_CONTRACT, Command
from matome.documents import BillStatus, bill_status, check_page
from matome.engine import Engine
from matome.errors import (
    Busy,
    InvalidInput,
    InvalidSetting,
    MatomeError,
    StoreNotFound,
    StoreUnavailable,
    UnknownPassport,
)
from matome.interchange import (
    MAX_LINE_BYTES,
    AppliedElsewhere,
    LogLine,
    apply_line,
    apply_lines,
    apply_log_line,
    count_commands,
    declared_contract,
    line_command,
    log_lines,
    resumes,
)
from matome.report import audit_html
from matome.schema import schema_text
from matome.tables import (
    Rows,
    audit_table,
    bill_rows,
    bill_table,
    contacts_rows,
    contacts_table,
    continuity_rows,
    continuity_table,
    highlight,
    provider_totals_rows,
    provider_totals_table,
    settlement_rows,
    settlement_table,
    statement_rows,
    statement_table,
    to_csv,
    usage_status_rows,
    usage_status_table,
    verification_table,
)
from matome.values import CustomerId, PassportId, YearMonth
from matome.verify import new_seal_key, read_seal
from matome.wire import to_json

__all__ = [
    "apply_line",
    "build_parser",
    "exit_code",
    "main",
    "run_log",
]


class _Progress:
    """Events/s and ETA on a terminal's stderr; silent when stderr is not a terminal."""

    def __init__(self, total: int | None, what: str, stream: TextIO = sys.stderr) -> None:
        self.total = total
        self.what = what
        self.stream = stream
        self.enabled = stream.isatty()
        self.start = time.monotonic()
        self.last = 0.0
        self.done = 0

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
        text += f"  {rate:,.0f}/s "
        self.stream.write(text)
        self.stream.flush()

    def close(self) -> None:
        if self.enabled and self.done:
            self._draw(time.monotonic())
            self.stream.write("\n")


#: Exit codes (docs/reliability.md): a document that does not exist or a refusal (with
#: ``--strict``) is 1, as the contract says; the rest say what went wrong with the store.
#: Lines of a log file recorded per transaction by ``matome run`` (``--batch``).
DEFAULT_BATCH = 100
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
    progress = _Progress(total, "commands")
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


def _cmd_demo(args: argparse.Namespace) -> int:
    from matome.demo import run_demo

    try:
        engine = _engine(args, create=True)
        try:
            db_option = f" --db {shlex.quote(args.db)}" if args.db else ""
            return run_demo(engine, sys.stdout, as_json=args.json, db_option=db_option)
        finally:
            engine.close()
    except MatomeError as e:
        return _fail(args, e)


def _engine(args: argparse.Namespace, *, create: bool = False) -> Engine:
    """The engine on the store of ``--db``; only ``run`` and ``demo`` create a store."""
    return Engine.open(args.db, create=create)


def _check_request(args: argparse.Namespace) -> None:
    """A malformed request is ``invalid_input`` whatever the store holds: check it first."""
    if getattr(args, "month", None) is not None:
        YearMonth.parse(args.month)
    if getattr(args, "customer_id", None) is not None:
        CustomerId(args.customer_id)
    if getattr(args, "passport", None) is not None:
        PassportId(args.passport)
    if getattr(args, "page", None) is not None:
        check_page(args.page, args.per_page)


def _document(
    args: argparse.Namespace,
    build: Callable[[Engine], Any],
    render: Callable[[Any], str],
    rows: Callable[[Any], Rows] | None = None,
    extra: Callable[[Engine, Any], Any] | None = None,
    added: Callable[[Any], dict[str, Any]] | None = None,
) -> int:
    """Print a document: the contract's JSON with ``--json``, CSV with ``--csv`` (``rows``),
    a table otherwise; exit 1 with the error when it does not exist (docs/contract.md, "Command
    line").  ``extra`` reads what else the table needs from the store (given to ``render`` and
    ``rows`` as a pair with the document); ``added`` gives the fields added to every item of
    the JSON (the contract allows additions, never renames)."""
    try:
        _check_request(args)
        engine = _engine(args)
    except MatomeError as e:
        return _fail(args, e)
    try:
        document = build(engine)
        shown = document if extra is None else (document, extra(engine, document))
    except MatomeError as e:
        return _fail(args, e)
    finally:
        engine.close()
    if args.json:
        data = to_json(document)
        if added is not None:
            data = [{**item, **added(shown)} for item in data]
        print(_dumps(data))
    elif getattr(args, "csv", False) and rows is not None:
        sys.stdout.write(to_csv(rows(shown)))
    else:
        text = render(shown)
        print(highlight(text) if _colour() else text)
    return 0


def _cmd_bill(args: argparse.Namespace) -> int:
    return _document(args, lambda e: e.bill(args.customer_id, args.month), bill_table, bill_rows)


def _statement(args: argparse.Namespace, engine: Engine) -> Any:
    """The statement page; a Passport ID the store has never known is ``unknown_passport``
    (not an empty page)."""
    if args.passport is not None and engine.passport(args.passport) is None:
        raise UnknownPassport(f"no Passport ID {args.passport}")
    return engine.statement(
        args.customer_id,
        args.month,
        passport_id=args.passport,
        page=args.page,
        per_page=args.per_page,
    )


def _refund_reasons(engine: Engine, statement: Any) -> dict[str, str]:
    """receipt → reason of the refunds on the statement (the bill's charges carry them)."""
    if not any(getattr(r.kind, "value", r.kind) == "refund" for r in statement.rows):
        return {}
    bill = engine.bill(statement.customer_id, statement.month)
    return {c.receipt: c.reason for c in bill.charges if c.reason is not None}


def _cmd_statement(args: argparse.Namespace) -> int:
    return _document(
        args,
        lambda e: _statement(args, e),
        lambda shown: statement_table(*shown),
        lambda shown: statement_rows(*shown),
        extra=_refund_reasons,
    )


def _cmd_providers(args: argparse.Namespace) -> int:
    return _document(
        args, lambda e: e.provider_totals(args.month), provider_totals_table, provider_totals_rows
    )


def _cmd_contacts(args: argparse.Namespace) -> int:
    return _document(
        args, lambda e: e.provider_contacts(args.customer_id), contacts_table, contacts_rows
    )


def _cmd_settle(args: argparse.Namespace) -> int:
    """A settlement; while its month is not closed it is a preview (its amounts may still
    change): a heading says so, and every line of the JSON gets ``"preview": true``."""
    month = YearMonth.parse(args.month)

    def preview(shown: Any) -> bool:
        return bill_status(month, shown[1]) is BillStatus.PREVIEW

    return _document(
        args,
        lambda e: e.settlement(month),
        lambda shown: settlement_table(shown[0], month, shown[1]),
        lambda shown: settlement_rows(shown[0], preview(shown)),
        extra=lambda e, _: e.closed_through(),
        added=lambda shown: {"preview": preview(shown)},
    )


def _cmd_continuity(args: argparse.Namespace) -> int:
    return _document(
        args, lambda e: e.continuity(args.customer_id), continuity_table, continuity_rows
    )


def _cmd_audit(args: argparse.Namespace) -> int:
    def build(e: Engine) -> Any:
        audit = e.audit(
            args.customer_id, args.month, as_of=args.as_of, recorded_as_of=args.recorded_as_of
        )
        if args.html:
            try:
                Path(args.html).write_text(audit_html(audit), encoding="utf-8")
            except OSError as error:
                raise InvalidInput(f"cannot write {args.html}: {error.strerror}") from None
        return audit

    return _document(args, build, audit_table)


def _read_file(path: str, what: str) -> bytes:
    try:
        return Path(path).read_bytes()
    except OSError as error:
        raise InvalidInput(f"cannot read the {what} {path}: {error.strerror}") from None


def _cmd_verify(args: argparse.Namespace) -> int:
    progress = _Progress(None, "verify (log positions)")

    def report(done: int, total: int) -> None:
        progress.total = total
        progress.step(done - progress.done)

    try:
        against = None
        public_key = None
        if args.against is not None:
            against = read_seal(_read_file(args.against, "seal").decode("utf-8", "replace"))
            path = args.public_key or os.environ.get("MATOME_SEAL_PUBLIC_KEY")
            if not path:
                raise InvalidInput(
                    "verify --against needs the seal's public key: --public-key FILE or "
                    "MATOME_SEAL_PUBLIC_KEY (matome keygen --seal writes it)"
                )
            public_key = _read_file(path, "seal public key")
        engine = _engine(args)
        try:
            result = engine.verify(report, against=against, public_key=public_key)
            progress.close()
        finally:
            engine.close()
    except MatomeError as e:
        return _fail(args, e)
    if args.json:
        print(_dumps(to_json(result)))
    else:
        print(verification_table(result))
    return 0 if result.ok else 1


def _cmd_seal(args: argparse.Namespace) -> int:
    """Verify the store and write a signed checkpoint of its global chain."""
    progress = _Progress(None, "seal (log positions)")

    def report(done: int, total: int) -> None:
        progress.total = total
        progress.step(done - progress.done)

    try:
        path = args.key or os.environ.get("MATOME_SEAL_KEY")
        if not path:
            raise InvalidInput(
                "matome seal needs the seal's private key: --key FILE or MATOME_SEAL_KEY "
                "(matome keygen --seal makes one; keep it outside the store)"
            )
        private_key = _read_file(path, "seal key")
        # A writer (once the store is known to exist): the first open of a store older than
        # the global chain adopts its events, so that it can be sealed.
        _engine(args).close()
        engine = _engine(args, create=True)
        try:
            result, seal = engine.seal(private_key, report)
            progress.close()
        finally:
            engine.close()
        if seal is None:
            if args.json:
                print(_dumps(to_json(result)))
            else:
                print(verification_table(result))
            print("matome seal: the store does not verify; not sealed", file=sys.stderr)
            return 1
        text = _dumps(seal) + "\n"
        if args.out == "-":
            sys.stdout.write(text)
        else:
            try:
                Path(args.out).write_text(text, encoding="utf-8")
            except OSError as error:
                raise InvalidInput(f"cannot write {args.out}: {error.strerror}") from None
            print(
                f"matome seal: position {seal['position']:,}, head {seal['head']} → {args.out}",
                file=sys.stderr,
            )
    except MatomeError as e:
        return _fail(args, e)
    return 0


def _cmd_generate(args: argparse.Namespace) -> int:
    from matome.generate import generate_log

    try:
        start = YearMonth.parse(args.start)
    except MatomeError as e:
        return _fail(args, e)
    out: TextIO = sys.stdout if args.out == "-" else Path(args.out).open("w", encoding="utf-8")  # noqa: SIM115
    try:
        n = 0
        for body in generate_log(
            args.lines, args.months, seed=args.seed, start=start, keys=not args.no_keys
        ):
            out.write(_dumps(body, separators=(",", ":")) + "\n")
            n += 1
    finally:
        if out is not sys.stdout:
            out.close()
    print(f"matome generate: {n:,} commands", file=sys.stderr)
    return 0


def _cmd_follow(args: argparse.Namespace) -> int:
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    try:
        engine = _engine(args)
        try:
            applied = engine.follow(stop.is_set, poll=args.poll)
        finally:
            engine.close()
    except MatomeError as e:
        return _fail(args, e)
    print(f"matome follow: applied {applied:,} log positions", file=sys.stderr)
    return 0


def _cmd_keygen(args: argparse.Namespace) -> int:
    """Print a new random key for encryption at rest, or with ``--master`` the master key
    that wraps the per-Passport-ID keys of personal data (keep either apart from the store);
    with ``--seal``, write a new Ed25519 key pair for seals."""
    if not args.seal:
        print(base64.b64encode(secrets.token_bytes(32)).decode())
        return 0
    private, public = new_seal_key()
    out = Path(args.out)
    try:
        # The private key is created for its owner only, and never over an existing key.
        fd = os.open(out, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as f:
            f.write(private)
        Path(f"{out}.pub").write_bytes(public)
    except OSError as error:
        return _fail(args, InvalidInput(f"cannot write {error.filename}: {error.strerror}"))
    print(
        f"matome keygen: seal key {out} (private: keep it outside the store), "
        f"public key {out}.pub (give it to whoever verifies)",
        file=sys.stderr,
    )
    return 0


def _cmd_status(args: argparse.Namespace) -> int:
    return _document(
        args, lambda e: e.usage_status(args.customer_id), usage_status_table, usage_status_rows
    )


def _cmd_rebuild(args: argparse.Namespace) -> int:
    progress = _Progress(None, "rebuild (log positions)")
    start = time.monotonic()

    def report(done: int, total: int) -> None:
        progress.total = total
        progress.step(done - progress.done)

    try:
        engine = _engine(args)
        try:
            processed = engine.rebuild_views(report)
            progress.close()
        finally:
            engine.close()
    except MatomeError as e:
        return _fail(args, e)
    elapsed = time.monotonic() - start
    summary = {"positions": processed, "seconds": round(elapsed, 3)}
    if args.json:
        print(json.dumps(summary))
    else:
        print(f"rebuilt the views from {processed:,} log positions in {elapsed:.1f}s")
    return 0


# ---------------------------------------------------------------------------------------------
# ``matome schema``: the command log's JSON Schema, generated from the command classes


def _cmd_schema(args: argparse.Namespace) -> int:
    sys.stdout.write(schema_text())
    return 0


#: An example for every command (``--help`` prints it); they run against the demo store
#: (``matome demo``) and the logs in ``examples/``.
EXAMPLES: dict[str, str] = {
    "run": """\
  matome run examples/first-bill.jsonl            # one JSON result per line on stdout
  matome run examples/first-bill.jsonl --strict   # exit 1 if any command was refused
  matome run big.jsonl --batch 500 --resume       # continue a run cut short
  matome generate --lines 10 | matome run -       # standard input, answered line by line""",
    "demo": """\
  matome demo                     # the story, on matome.sqlite (or --db / $MATOME_DB)
  matome demo --json              # only the demo's bills, one JSON document per line""",
    "bill": """\
  matome bill CAF9000000001 2024-01
  matome bill CAF9000000001 2024-01 --json      # the contract's document
  matome bill CAF9000000001 2024-02 --csv       # its charges, one CSV row each""",
    "statement": """\
  matome statement CAF9000000001 2024-01 --passport yamada.taro
  matome statement CAF9000000002 2024-02 --csv  # a refund is a refund row with its reason""",
    "providers": """\
  matome providers 2024-01
  matome providers 2024-01 --csv""",
    "contacts": """\
  matome contacts CAF9000000001""",
    "settle": """\
  matome settle 2024-01                # a closed month: what each provider is paid
  matome settle 2024-03 --json         # not closed yet: every line says "preview": true""",
    "continuity": """\
  matome continuity                    # every line change
  matome continuity CAF9000000001""",
    "audit": """\
  matome audit CAF9000000001 2024-01
  matome audit CAF9000000001 2024-01 --html audit.html
  matome audit CAF9000000001 2024-01 --as-of 2024-01-20T00:00:00+09:00""",
    "verify": """\
  matome verify                        # exit 1 when any hash chain or issued bill is broken
  matome verify --json
  matome verify --against seal-2024-03.json --public-key matome-seal.key.pub""",
    "seal": """\
  matome seal --key matome-seal.key --out seal-2024-03.json   # then keep it elsewhere""",
    "status": """\
  matome status CAF9000000002          # regulated, with its Passport IDs""",
    "generate": """\
  matome generate --lines 1000 --months 12 --out big.jsonl
  matome generate --lines 10 --months 2 | matome run - --db :memory:""",
    "follow": """\
  matome follow --db postgresql://matome@db:5432/billing --poll 2""",
    "keygen": """\
  matome keygen > cipher.key           # keep it apart from the store
  export MATOME_CIPHER_KEY=$(cat cipher.key)
  (umask 077; matome keygen --master > /etc/matome/master.key)   # apart from the store
  export MATOME_MASTER_KEY_FILE=/etc/matome/master.key
  matome keygen --seal --out matome-seal.key   # and matome-seal.key.pub""",
    "rebuild": """\
  matome rebuild
  matome rebuild --json""",
    "schema": """\
  matome schema > command-log.schema.json""",
}

_EXIT_CODES = f"""\
exit codes:
  0  done
  {EXIT_REFUSED}  refused, or the document does not exist (run: only with --strict)
  2  usage error, or a log file that cannot be read
  {EXIT_STORE_NOT_FOUND}  no store at --db
  {EXIT_STORE_UNAVAILABLE}  the store cannot be read or written
  {EXIT_BUSY}  the store is busy (another writer); try again"""


class _UsageError(Exception):
    """A command line argparse cannot read (reported by :func:`main`, not by argparse)."""

    def __init__(self, prog: str, message: str) -> None:
        super().__init__(message)
        self.prog = prog
        self.message = message


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        raise _UsageError(self.prog, message)


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="matome",
        description="Event-sourced billing for FLET'S collect-on-behalf payments.",
        epilog="first hour:\n  matome demo\n  matome bill CAF9000000001 2024-01\n"
        "  matome audit CAF9000000001 2024-01\n  matome verify\n\n"
        "matome COMMAND --help shows an example for each command.\n\n" + _EXIT_CODES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"matome {__version__}")
    db_help = (
        "store: an SQLite file path (default matome.sqlite, or $MATOME_DB), :memory:, or a "
        "postgresql:// URL"
    )
    json_help = "print the contract's JSON (errors too: one JSON line)"
    parser.add_argument("--db", default=None, help=db_help)
    parser.add_argument("--json", action="store_true", default=False, help=json_help)
    parser.add_argument(
        "--csv", action="store_true", default=False, help="tabular documents as CSV"
    )
    common = argparse.ArgumentParser(add_help=False)
    # Given after the command they win; not given there, the global options stand.
    common.add_argument("--db", default=argparse.SUPPRESS, help=db_help)
    common.add_argument("--json", action="store_true", default=argparse.SUPPRESS, help=json_help)
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def command(name: str, help: str, *parents: argparse.ArgumentParser, **kw: Any) -> Any:
        return sub.add_parser(
            name,
            parents=list(parents),  # type: ignore[arg-type]
            help=help,
            description=kw.pop("description", help[0].upper() + help[1:] + "."),
            epilog=f"example:\n{EXAMPLES[name]}\n\n{_EXIT_CODES}",
            formatter_class=argparse.RawDescriptionHelpFormatter,
            **kw,
        )

    run = command(
        "run",
        "apply a command log (JSON Lines); print one result each",
        common,
        description="Apply a command log (JSON Lines, docs/contract.md): one JSON result per "
        "line on stdout, and a summary on stderr (applied, refused, skipped, events/s). "
        "Progress shows on a terminal's stderr only.",
    )
    run.add_argument("log", help="the command log file, or - for standard input")
    run.add_argument(
        "--resume",
        action="store_true",
        help="continue after the last command this store applied from this log (after a "
        "crash; also on standard input): a log is known by its commands, not its bytes",
    )
    run.add_argument(
        "--again",
        action="store_true",
        help="apply a log this store has applied before once more, on purpose (without "
        "--resume or --again, such a run exits 2)",
    )
    run.add_argument("--strict", action="store_true", help="exit 1 when any command was refused")
    run.add_argument("--quiet", action="store_true", help="no summary line on stderr")
    run.add_argument(
        "--batch",
        type=int,
        default=None,
        metavar="N",
        help=f"lines recorded per transaction, decided exactly as one at a time (default "
        f"{DEFAULT_BATCH} for a file, 1 for standard input, where each line is answered at once)",
    )
    run.set_defaults(func=_cmd_run)

    demo = command(
        "demo",
        "tell the demo story: three months of two lines, applied once, and their bills",
        common,
    )
    demo.set_defaults(func=_cmd_demo)

    doc = argparse.ArgumentParser(add_help=False, parents=[common])
    table = argparse.ArgumentParser(add_help=False, parents=[doc])
    table.add_argument(
        "--csv",
        action="store_true",
        default=argparse.SUPPRESS,
        help="print the rows as CSV (a header line first)",
    )

    bill = command("bill", "the bill of one line for one month", table)
    bill.add_argument("customer_id")
    bill.add_argument("month", help="YYYY-MM")
    bill.set_defaults(func=_cmd_bill)

    statement = command("statement", "the usage statement of a line for a month", table)
    statement.add_argument("customer_id")
    statement.add_argument("month", help="YYYY-MM")
    statement.add_argument("--passport", default=None, help="only this Passport ID")
    statement.add_argument("--page", type=int, default=1)
    statement.add_argument("--per-page", type=int, default=50)
    statement.set_defaults(func=_cmd_statement)

    providers = command("providers", "provider totals for a month across all lines", table)
    providers.add_argument("month", help="YYYY-MM")
    providers.set_defaults(func=_cmd_providers)

    contacts = command("contacts", "the providers a line bought from, with contacts", table)
    contacts.add_argument("customer_id")
    contacts.set_defaults(func=_cmd_contacts)

    settle = command(
        "settle",
        "settlement to providers for a month (a preview until the month is closed)",
        table,
    )
    settle.add_argument("month", help="YYYY-MM")
    settle.set_defaults(func=_cmd_settle)

    continuity = command("continuity", "the line-move continuity table", table)
    continuity.add_argument("customer_id", nargs="?", default=None)
    continuity.set_defaults(func=_cmd_continuity)

    audit = command(
        "audit",
        "explain a bill from the events behind it",
        doc,
        description="Rebuild one line's bill for one month from the line's own events and "
        "explain every charge (and every month a subscription was not charged).",
    )
    audit.add_argument("customer_id")
    audit.add_argument("month", help="YYYY-MM")
    audit.add_argument(
        "--as-of", default=None, help="business time to cut the history at (ISO-8601, offset)"
    )
    audit.add_argument(
        "--recorded-as-of",
        default=None,
        help="recorded time: the history as the store knew it then (ISO-8601, offset)",
    )
    audit.add_argument(
        "--html", default=None, metavar="FILE", help="also write a self-contained HTML report"
    )
    audit.set_defaults(func=_cmd_audit)

    verify = command(
        "verify", "check every hash chain and every issued bill; exit 1 on any break", doc
    )
    verify.add_argument(
        "--against",
        default=None,
        metavar="SEAL",
        help="also prove that the store still extends this seal (matome seal)",
    )
    verify.add_argument(
        "--public-key",
        default=None,
        metavar="FILE",
        help="the seal's trusted public key (default: $MATOME_SEAL_PUBLIC_KEY)",
    )
    verify.set_defaults(func=_cmd_verify)

    seal = command(
        "seal",
        "verify the store and write a signed checkpoint of its history (keep it elsewhere)",
        doc,
    )
    seal.add_argument(
        "--key", default=None, metavar="FILE", help="the seal key (default: $MATOME_SEAL_KEY)"
    )
    seal.add_argument("--out", default="-", help="the seal file (- for stdout)")
    seal.set_defaults(func=_cmd_seal)

    status = command("status", "the usage status of a line and its Passport IDs", table)
    status.add_argument("customer_id")
    status.set_defaults(func=_cmd_status)

    generate = command(
        "generate",
        "write a synthetic, realistic command log (JSON Lines) for N lines over M months",
    )
    generate.add_argument("--lines", type=int, default=1000, help="access lines (1000)")
    generate.add_argument("--months", type=int, default=12, help="months (12)")
    generate.add_argument("--seed", type=int, default=1, help="the same seed, the same log")
    generate.add_argument("--start", default="2024-01", help="first month, YYYY-MM")
    generate.add_argument("--no-keys", action="store_true", help="no idempotency keys")
    generate.add_argument("--out", default="-", help="output file (- for stdout)")
    generate.set_defaults(func=_cmd_generate)

    follow = command(
        "follow",
        "a projection worker: keep the views up to date with the log until stopped",
        common,
    )
    follow.add_argument(
        "--poll", type=float, default=1.0, help="seconds between polls (NOTIFY wakes sooner)"
    )
    follow.set_defaults(func=_cmd_follow)

    keygen = command(
        "keygen",
        "print a new key for encryption at rest (MATOME_CIPHER_KEY), or with --master the "
        "master key of personal data (MATOME_MASTER_KEY or a file named by "
        "MATOME_MASTER_KEY_FILE)",
    )
    keygen.add_argument(
        "--master",
        action="store_true",
        help="a master key: it wraps the per-Passport-ID keys that erasure destroys",
    )
    keygen.add_argument(
        "--seal",
        action="store_true",
        help="write a new Ed25519 key pair for seals instead (FILE and FILE.pub)",
    )
    keygen.add_argument(
        "--out", default="matome-seal.key", help="with --seal: the private key file"
    )
    keygen.set_defaults(func=_cmd_keygen)

    rebuild = command("rebuild", "drop and replay the read models", doc)
    rebuild.set_defaults(func=_cmd_rebuild)

    schema = command(
        "schema",
        "print the JSON Schema (draft 2020-12) of a command-log line",
        description="Print the JSON Schema (draft 2020-12) of one command-log line, generated "
        "from matome.commands: every command, its fields, required ones, enums and formats. "
        "The same file ships as matome/reference/command-log.schema.json.",
    )
    schema.set_defaults(func=_cmd_schema)

    return parser


def _wants_json(argv: Sequence[str]) -> bool:
    return "--json" in argv


def main(argv: Sequence[str] | None = None) -> int:
    """The ``matome`` console script."""
    if hasattr(signal, "SIGPIPE"):
        # ``matome bill ... | head`` should stop quietly, not with a traceback.
        signal.signal(signal.SIGPIPE, signal.SIG_DFL)
    if hasattr(signal, "SIGXFSZ"):
        # Past a file size limit (ulimit -f) a write fails and is reported; by default the
        # signal would kill the process mid-transaction without a word.
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    argv = list(sys.argv[1:] if argv is None else argv)
    try:
        args = build_parser().parse_args(argv)
    except _UsageError as e:
        # Argparse's own messages, in the one-line form of every other error.
        error = InvalidInput(e.message)
        if _wants_json(argv):
            print(_dumps({"error": error.to_json()}), flush=True)
        else:
            print(f"{e.prog}: {error.code}: {e.message}", file=sys.stderr)
            print(f"try: {e.prog} --help", file=sys.stderr)
        return EXIT_USAGE
    try:
        code: int = args.func(args)
    except MatomeError as e:  # e.g. a malformed --db
        return _fail(args, e)
    except OSError as e:  # a file named on the command line (--out, --html, ...)
        where = f" {e.filename}" if e.filename else ""
        _say(args, InvalidInput(f"cannot use{where}: {e.strerror or e}"))
        return EXIT_USAGE
    return code


if __name__ == "__main__":
    sys.exit(main())
