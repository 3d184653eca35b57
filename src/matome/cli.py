"""``matome`` — the command line of the interchange contract (docs/contract.md, "Command line";
``matome.reference.text("contract")``).

Entry points stay thin: parsing arguments, calling the engine, printing.  ``--json`` output is
the contract; without it, tables for people.
"""

from __future__ import annotations

import signal
import sys
from collections.abc import Sequence

# The command line's parts live in private modules (one job each); the names other modules and
# tests import from here stay here.
from matome._cli_output import EXIT_BUSY as EXIT_BUSY
from matome._cli_output import EXIT_LOG_UNREADABLE as EXIT_LOG_UNREADABLE
from matome._cli_output import EXIT_REFUSED as EXIT_REFUSED
from matome._cli_output import EXIT_STORE_NOT_FOUND as EXIT_STORE_NOT_FOUND
from matome._cli_output import EXIT_STORE_UNAVAILABLE as EXIT_STORE_UNAVAILABLE
from matome._cli_output import EXIT_USAGE as EXIT_USAGE
from matome._cli_output import _dumps, _fail, _say, exit_code
from matome._cli_output import _Progress as _Progress
from matome._cli_parser import EXAMPLES as EXAMPLES
from matome._cli_parser import _UsageError, build_parser
from matome._cli_run import DEFAULT_BATCH as DEFAULT_BATCH
from matome._cli_run import run_log
from matome._cli_run import run_summary as run_summary
from matome.errors import InvalidInput, MatomeError
from matome.interchange import apply_line

__all__ = [
    "apply_line",
    "build_parser",
    "exit_code",
    "main",
    "run_log",
]


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
