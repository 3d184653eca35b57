"""matome — an event-sourced billing engine for FLET'S collect-on-behalf payments.

Start with :class:`matome.Engine` (``Engine.open(":memory:")``): one typed method per command
of the interchange contract, and the documents.  :func:`matome.apply_line` applies one JSON
command-log line and answers the contract's result object (:func:`matome.apply_lines`, a batch
of them).  Refusals are :class:`matome.errors.MatomeError` subclasses carrying the contract's
error code.  The property-testing kit, :mod:`matome.testing`, is an extra:
``pip install 'matome[testing]'``.

What is public API, and what a version number promises: CHANGELOG.md, "Version policy".
"""

from matome.engine import Engine
from matome.errors import Busy, EngineBusy, MatomeError
from matome.interchange import apply_line, apply_lines, log_lines
from matome.policy import DEFAULT_POLICY, Policy
from matome.values import TOKYO, CustomerId, PassportId, YearMonth, Yen

__all__ = [
    "DEFAULT_POLICY",
    "TOKYO",
    "Busy",
    "CustomerId",
    "Engine",
    "EngineBusy",
    "MatomeError",
    "PassportId",
    "Policy",
    "YearMonth",
    "Yen",
    "__version__",
    "apply_line",
    "apply_lines",
    "log_lines",
]

#: matome's version — the one copy: pyproject.toml reads it from here (CHANGELOG.md).
__version__ = "0.2.0"
