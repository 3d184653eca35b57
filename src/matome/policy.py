"""Effective-dated policy settings: every **Decision** of the rules is a setting, not a constant."""

from __future__ import annotations

from datetime import datetime

import attrs

from matome.values import TOKYO, Yen

__all__ = ["DEFAULT_POLICY", "Policy"]


@attrs.frozen(kw_only=True)
class Policy:
    """The business rules that an operator may tune.  Defaults follow docs/rules.md.

    Dated settings compare against a command's *business* time, so a historic log replays under
    the rules that were in force when it happened.
    """

    #: §2: from this instant customers can no longer register IDs themselves, and registration
    #: details become view-only.  NTT East providers may register one on a customer's behalf —
    #: from then on only, and only there (a provider's registration needs no access key).
    registration_cutoff: datetime = datetime(2024, 12, 1, tzinfo=TOKYO)
    #: §1: a line holds at most this many Passport IDs.
    max_passports: int = 5
    #: §2: the limit given at registration is at most this.
    registration_max_limit: Yen = Yen(5000)
    #: §4, patterns 4–5: a monthly-flat service is charged at most once per
    #: (Passport ID, service, month) however often it is cancelled and bought again.
    #: ``False`` bills each subscription separately.
    monthly_once_per_month: bool = True
    #: §10: this many consecutive wrong passwords disable the password (``locked_out``).
    lockout_after: int = 10
    #: §1: NTT East lines may buy physical goods from this instant (NTT West's guide has always
    #: included goods).
    physical_goods_from: datetime = datetime(2012, 6, 5, tzinfo=TOKYO)
    #: The interchange contract the commands are decided under (docs/rules.md §11): the rules that
    #: refuse what contract 2 accepted (terms consent, the shape of new passwords) apply from
    #: contract 3 only.  Not a tunable rule but the version a client pinned: set it with
    #: ``Engine.open(..., contract=3)`` or a log's ``{"contract": 3}`` line.
    contract: int = 2


#: The policy of the rules as written (every setting at its default).
DEFAULT_POLICY = Policy()
