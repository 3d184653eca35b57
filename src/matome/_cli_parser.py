"""The argument parser of ``matome`` (:mod:`matome.cli`): every command, its options, its
``--help`` example and the exit codes.
"""

from __future__ import annotations

import argparse
from typing import Any, NoReturn

from matome import __version__
from matome._cli_commands import (
    _cmd_audit,
    _cmd_bill,
    _cmd_contacts,
    _cmd_continuity,
    _cmd_demo,
    _cmd_follow,
    _cmd_generate,
    _cmd_keygen,
    _cmd_providers,
    _cmd_rebuild,
    _cmd_schema,
    _cmd_seal,
    _cmd_settle,
    _cmd_statement,
    _cmd_status,
    _cmd_verify,
)
from matome._cli_output import EXIT_BUSY, EXIT_REFUSED, EXIT_STORE_NOT_FOUND, EXIT_STORE_UNAVAILABLE
from matome._cli_run import DEFAULT_BATCH, _cmd_run

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
