"""matome — an event-sourced billing engine for FLET'S collect-on-behalf payments.

Start with :class:`matome.Engine`; refusals are :class:`matome.errors.MatomeError` subclasses.
"""

from matome.engine import Engine, EngineBusy
from matome.errors import MatomeError
from matome.policy import DEFAULT_POLICY, Policy
from matome.values import TOKYO, CustomerId, PassportId, YearMonth, Yen

__all__ = [
    "DEFAULT_POLICY",
    "TOKYO",
    "CustomerId",
    "Engine",
    "EngineBusy",
    "MatomeError",
    "PassportId",
    "Policy",
    "YearMonth",
    "Yen",
]

__version__ = "0.1.0"
