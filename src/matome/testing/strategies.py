"""Hypothesis strategies for matome: value types (valid and invalid), commands and command logs.

Everything here generates *inputs*: the JSON command-log form of docs/contract.md (``dict``
objects a person can write to a ``.jsonl`` file and replay with ``matome run``) or the typed
command objects of :mod:`matome.commands`.

>>> from hypothesis import given
>>> from matome.testing import strategies as mst
>>> @given(mst.command_logs())
... def test_every_log_is_answered(log): ...

The strategies live in private siblings, by what they generate: ``_value_strategies``,
``_command_strategies`` and ``_log_strategies``; import them from here.
"""

from __future__ import annotations

# Re-exported although private: tests and tests/fixtures/contract2/make_corpus.py read them
# as ``mst._command_json`` and ``mst._ALNUM``.
from matome.testing._command_strategies import _command_json as _command_json
from matome.testing._command_strategies import (
    commands,
    invalid_commands,
    migrated_commands,
)
from matome.testing._log_strategies import (
    WRONG_ACCESS_KEY,
    WRONG_PASSWORD,
    command_logs,
    format_log,
)
from matome.testing._log_strategies import predicted_receipt as predicted_receipt
from matome.testing._value_strategies import _ALNUM as _ALNUM
from matome.testing._value_strategies import (
    access_keys,
    applicants,
    billing_accounts,
    customer_ids,
    emails,
    invalid_access_keys,
    invalid_billing_numbers,
    invalid_customer_ids,
    invalid_cycle_days,
    invalid_emails,
    invalid_months,
    invalid_passport_ids,
    invalid_passwords,
    invalid_phones,
    invalid_quantities,
    invalid_secret_hashes,
    invalid_times,
    invalid_yen,
    passport_ids,
    passwords,
    provider_codes,
    quantities,
    secret_hashes,
    service_codes,
    service_periods,
    tokyo_times,
    year_months,
    yen,
)
from matome.testing._value_strategies import phones as phones

__all__ = [
    "WRONG_ACCESS_KEY",
    "WRONG_PASSWORD",
    "access_keys",
    "applicants",
    "billing_accounts",
    "command_logs",
    "commands",
    "customer_ids",
    "emails",
    "format_log",
    "invalid_access_keys",
    "invalid_billing_numbers",
    "invalid_commands",
    "invalid_customer_ids",
    "invalid_cycle_days",
    "invalid_emails",
    "invalid_months",
    "invalid_passport_ids",
    "invalid_passwords",
    "invalid_phones",
    "invalid_quantities",
    "invalid_secret_hashes",
    "invalid_times",
    "invalid_yen",
    "migrated_commands",
    "passport_ids",
    "passwords",
    "provider_codes",
    "quantities",
    "secret_hashes",
    "service_codes",
    "service_periods",
    "tokyo_times",
    "year_months",
    "yen",
]
