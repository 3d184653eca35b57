"""The commands of ``matome`` (:mod:`matome.cli`) besides ``run``: the documents, audit,
verify and seal, the demo, generate, follow, keygen, rebuild and schema.
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import secrets
import shlex
import signal
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TextIO

from matome._cli_output import _colour, _dumps, _fail, _Progress
from matome.documents import BillStatus, bill_status, check_page
from matome.engine import Engine
from matome.errors import (
    InvalidInput,
    MatomeError,
    UnknownPassport,
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
            result = engine.verify(progress.report, against=against, public_key=public_key)
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
            result, seal = engine.seal(private_key, progress.report)
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

    try:
        engine = _engine(args)
        try:
            processed = engine.rebuild_views(progress.report)
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
