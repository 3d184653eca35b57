"""``matome`` — the command line of the interchange contract (INTERCHANGE.md, "Command line").

Entry points stay thin: parsing arguments, calling the engine, printing.  ``--json`` output is
the contract; without it, tables for people.
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import json
import secrets
import signal
import sys
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any, BinaryIO, TextIO

from matome.documents import check_page
from matome.engine import Engine
from matome.errors import Busy, InvalidInput, MatomeError, StoreNotFound, StoreUnavailable
from matome.interchange import LogLine, apply_line, apply_lines, log_lines
from matome.report import audit_html
from matome.tables import (
    audit_table,
    bill_table,
    contacts_table,
    continuity_table,
    provider_totals_table,
    settlement_table,
    statement_table,
    usage_status_table,
    verification_table,
)
from matome.values import CustomerId, PassportId, YearMonth
from matome.wire import to_json

__all__ = ["apply_line", "exit_code", "main", "run_log"]


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
    return _STORE_EXITS.get(error.code, EXIT_REFUSED)


def _fail(args: argparse.Namespace, error: MatomeError) -> int:
    """Report ``error`` in one line (the contract's JSON with ``--json``); its exit code."""
    if getattr(args, "json", False):
        print(_dumps({"error": error.to_json()}))
    else:
        print(f"matome {args.command}: {error.code}: {error.message}", file=sys.stderr)
    return exit_code(error)


class _StoreFailed(Exception):
    """A run stopped because the store failed (not because of a line)."""

    def __init__(self, error: MatomeError, number: int) -> None:
        super().__init__(error.message)
        self.error = error
        self.number = number


def run_log(
    engine: Engine,
    stream: BinaryIO,
    out: TextIO,
    total: int | None = None,
    *,
    after: int = 0,
    batch: int = 1,
) -> tuple[int, int]:
    """Apply a command log, printing one JSON result per command, skipping the lines up to
    ``after``; return how many commands were accepted and refused.

    Every command records the log's position with what it writes, so a run cut short can be
    resumed exactly where it stopped (``matome run --resume``).  With ``batch`` > 1, that many
    lines are decided one after another and recorded in one transaction
    (:func:`matome.interchange.apply_lines`: the same decisions, fewer commits); their results
    are printed once the batch is recorded.  A failure of the store stops the run (it is not a
    refusal of the line): :class:`_StoreFailed`.
    """
    counts = [0, 0]
    progress = _Progress(total, "commands")
    pending: list[LogLine] = []

    def flush() -> None:
        if not pending:
            return
        try:
            if len(pending) == 1:
                one = pending[0]
                results = [apply_line(engine, one.number, one.text, one.position)]
            else:
                results = apply_lines(engine, pending)
        except (StoreNotFound, StoreUnavailable) as e:
            progress.close()
            raise _StoreFailed(StoreUnavailable(e.message), pending[0].number) from None
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
        progress.step(len(pending))
        pending.clear()

    for line in log_lines(stream):
        if line.number <= after:
            continue
        pending.append(line)
        if len(pending) >= batch:
            flush()
    flush()
    progress.close()
    return counts[0], counts[1]


def _resume_after(engine: Engine, path: str) -> int:
    """The last line of ``path`` a previous run applied to this store (0: none), after
    checking that the lines before it are the lines that were applied."""
    with Path(path).open("rb") as source:
        first = source.readline().rstrip(b"\r\n")
        log_id = hashlib.sha256(first).hexdigest()
        known = engine.log_position(log_id)
        if known is None:
            return 0
        source.seek(0)
        digest = ""
        for number, raw in enumerate(source, start=1):
            digest = hashlib.sha256(f"{digest}:".encode() + raw.rstrip(b"\r\n")).hexdigest()
            if number == known.line:
                if digest != known.digest:
                    break
                return known.line
    raise InvalidInput(
        f"{path} is not the log this store applied through line {known.line} (its first "
        f"{known.line} lines differ); it cannot be resumed"
    )


def _cmd_run(args: argparse.Namespace) -> int:
    path = args.log
    try:
        if path == "-":
            source: BinaryIO = sys.stdin.buffer
            total = None
        else:
            source = Path(path).open("rb")  # noqa: SIM115 - closed below
            total = sum(1 for _ in log_lines(source))
            source.seek(0)
    except OSError as e:
        print(f"matome run: cannot read {path}: {e.strerror or e}", file=sys.stderr)
        return EXIT_LOG_UNREADABLE
    try:
        engine = Engine.open(args.db)
    except MatomeError as e:
        if source is not sys.stdin.buffer:
            source.close()
        return _fail(args, e)
    try:
        after = 0
        if args.resume and path != "-":
            try:
                after = _resume_after(engine, path)
            except InvalidInput as e:
                print(f"matome run: {e.message}", file=sys.stderr)
                return EXIT_LOG_UNREADABLE
            if after:
                print(f"matome run: resuming {path} after line {after}", file=sys.stderr)
            # A billing run cut short with the log is completed before going on.
            engine.complete_billing()
        batch = args.batch if args.batch is not None else (1 if path == "-" else DEFAULT_BATCH)
        accepted, refused = run_log(
            engine, source, sys.stdout, total, after=after, batch=max(1, batch)
        )
    except _StoreFailed as stopped:
        print(
            f"matome run: stopped at line {stopped.number}: {stopped.error.message}; the lines "
            "before it are applied — fix the store and run again with --resume",
            file=sys.stderr,
        )
        return EXIT_STORE_UNAVAILABLE
    except MatomeError as e:
        return _fail(args, e)
    finally:
        if source is not sys.stdin.buffer:
            source.close()
        engine.close()
    if not args.quiet:
        print(
            f"matome run: {accepted + refused:,} commands: {accepted:,} accepted, "
            f"{refused:,} refused",
            file=sys.stderr,
        )
    return EXIT_REFUSED if args.strict and refused else 0


def _cmd_demo(args: argparse.Namespace) -> int:
    from matome.demo import run_demo

    try:
        engine = _engine(args, create=True)
        try:
            return run_demo(engine, sys.stdout, as_json=args.json)
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


def _document(args: argparse.Namespace, build: Any, render: Any) -> int:
    """Print a document: the contract's JSON with ``--json``, a table otherwise; exit 1 with the
    error when it does not exist (INTERCHANGE.md, "Command line")."""
    try:
        _check_request(args)
        engine = _engine(args)
    except MatomeError as e:
        return _fail(args, e)
    try:
        document = build(engine)
    except MatomeError as e:
        return _fail(args, e)
    finally:
        engine.close()
    if args.json:
        print(_dumps(to_json(document)))
    else:
        print(render(document))
    return 0


def _cmd_bill(args: argparse.Namespace) -> int:
    return _document(args, lambda e: e.bill(args.customer_id, args.month), bill_table)


def _cmd_statement(args: argparse.Namespace) -> int:
    return _document(
        args,
        lambda e: e.statement(
            args.customer_id,
            args.month,
            passport_id=args.passport,
            page=args.page,
            per_page=args.per_page,
        ),
        statement_table,
    )


def _cmd_providers(args: argparse.Namespace) -> int:
    return _document(args, lambda e: e.provider_totals(args.month), provider_totals_table)


def _cmd_contacts(args: argparse.Namespace) -> int:
    return _document(args, lambda e: e.provider_contacts(args.customer_id), contacts_table)


def _cmd_settle(args: argparse.Namespace) -> int:
    return _document(args, lambda e: e.settlement(args.month), settlement_table)


def _cmd_continuity(args: argparse.Namespace) -> int:
    return _document(args, lambda e: e.continuity(args.customer_id), continuity_table)


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


def _cmd_verify(args: argparse.Namespace) -> int:
    progress = _Progress(None, "verify (log positions)")

    def report(done: int, total: int) -> None:
        progress.total = total
        progress.step(done - progress.done)

    try:
        engine = _engine(args)
        try:
            result = engine.verify(report)
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
    """Print a new random key for encryption at rest (keep it apart from the store)."""
    print(base64.b64encode(secrets.token_bytes(32)).decode())
    return 0


def _cmd_status(args: argparse.Namespace) -> int:
    return _document(args, lambda e: e.usage_status(args.customer_id), usage_status_table)


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


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="matome",
        description="Event-sourced billing for FLET'S collect-on-behalf payments.",
    )
    db_help = (
        "store: an SQLite file path (default matome.sqlite, or $MATOME_DB), :memory:, or a "
        "postgresql:// URL"
    )
    parser.add_argument("--db", default=None, help=db_help)
    common = argparse.ArgumentParser(add_help=False)
    # Given after the command it wins; not given there, the global --db stands.
    common.add_argument("--db", default=argparse.SUPPRESS, help=db_help)
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    run = sub.add_parser(
        "run", parents=[common], help="apply a command log (JSON Lines); print one result each"
    )
    run.add_argument("log", help="the command log file, or - for standard input")
    run.add_argument(
        "--resume",
        action="store_true",
        help="continue after the last line this store applied from this log (after a crash)",
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

    demo = sub.add_parser(
        "demo", parents=[common], help="build a small realistic history and print its bills"
    )
    demo.add_argument("--json", action="store_true", help="print the contract's JSON")
    demo.set_defaults(func=_cmd_demo)

    doc = argparse.ArgumentParser(add_help=False, parents=[common])
    doc.add_argument("--json", action="store_true", help="print the contract's JSON document")

    bill = sub.add_parser("bill", parents=[doc], help="the bill of one line for one month")
    bill.add_argument("customer_id")
    bill.add_argument("month", help="YYYY-MM")
    bill.set_defaults(func=_cmd_bill)

    statement = sub.add_parser("statement", parents=[doc], help="the usage statement")
    statement.add_argument("customer_id")
    statement.add_argument("month", help="YYYY-MM")
    statement.add_argument("--passport", default=None, help="only this Passport ID")
    statement.add_argument("--page", type=int, default=1)
    statement.add_argument("--per-page", type=int, default=50)
    statement.set_defaults(func=_cmd_statement)

    providers = sub.add_parser("providers", parents=[doc], help="provider totals for a month")
    providers.add_argument("month", help="YYYY-MM")
    providers.set_defaults(func=_cmd_providers)

    contacts = sub.add_parser(
        "contacts", parents=[doc], help="providers a line bought from, with contacts"
    )
    contacts.add_argument("customer_id")
    contacts.set_defaults(func=_cmd_contacts)

    settle = sub.add_parser("settle", parents=[doc], help="settlement to providers for a month")
    settle.add_argument("month", help="YYYY-MM")
    settle.set_defaults(func=_cmd_settle)

    continuity = sub.add_parser("continuity", parents=[doc], help="the continuity table")
    continuity.add_argument("customer_id", nargs="?", default=None)
    continuity.set_defaults(func=_cmd_continuity)

    audit = sub.add_parser(
        "audit",
        parents=[doc],
        help="explain a bill from the events behind it",
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

    verify = sub.add_parser(
        "verify",
        parents=[doc],
        help="check every hash chain and every issued bill; exit 1 on any break",
    )
    verify.set_defaults(func=_cmd_verify)

    status = sub.add_parser(
        "status", parents=[doc], help="the usage status of a line and its Passport IDs"
    )
    status.add_argument("customer_id")
    status.set_defaults(func=_cmd_status)

    generate = sub.add_parser(
        "generate",
        help="write a synthetic, realistic command log (JSON Lines) for N lines over M months",
    )
    generate.add_argument("--lines", type=int, default=1000, help="access lines (1000)")
    generate.add_argument("--months", type=int, default=12, help="months (12)")
    generate.add_argument("--seed", type=int, default=1, help="the same seed, the same log")
    generate.add_argument("--start", default="2024-01", help="first month, YYYY-MM")
    generate.add_argument("--no-keys", action="store_true", help="no idempotency keys")
    generate.add_argument("--out", default="-", help="output file (- for stdout)")
    generate.set_defaults(func=_cmd_generate)

    follow = sub.add_parser(
        "follow",
        parents=[common],
        help="a projection worker: keep the views up to date with the log until stopped",
    )
    follow.add_argument(
        "--poll", type=float, default=1.0, help="seconds between polls (NOTIFY wakes sooner)"
    )
    follow.set_defaults(func=_cmd_follow)

    keygen = sub.add_parser(
        "keygen", help="print a new key for encryption at rest (set it as MATOME_CIPHER_KEY)"
    )
    keygen.set_defaults(func=_cmd_keygen)

    rebuild = sub.add_parser("rebuild", parents=[doc], help="drop and replay the read models")
    rebuild.set_defaults(func=_cmd_rebuild)

    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """The ``matome`` console script."""
    if hasattr(signal, "SIGPIPE"):
        # ``matome bill ... | head`` should stop quietly, not with a traceback.
        signal.signal(signal.SIGPIPE, signal.SIG_DFL)
    if hasattr(signal, "SIGXFSZ"):
        # Past a file size limit (ulimit -f) a write fails and is reported; by default the
        # signal would kill the process mid-transaction without a word.
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    args = build_parser().parse_args(argv)
    try:
        code: int = args.func(args)
    except MatomeError as e:  # e.g. a malformed --db
        return _fail(args, e)
    return code


if __name__ == "__main__":
    sys.exit(main())
