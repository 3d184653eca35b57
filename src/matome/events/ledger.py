"""Events of engine-wide records: the billing calendar and idempotency keys."""

from __future__ import annotations

from typing import Any, ClassVar

import attrs

from matome.events.base import DomainEvent, personal, topic
from matome.values import Erased, Operator, YearMonth, Yen

__all__ = ["BillingRunCompleted", "FeeSet", "KeyBound", "MonthsClosed"]


@topic("matome.calendar.MonthsClosed")
@attrs.frozen(kw_only=True)
class MonthsClosed(DomainEvent):
    """``issue_bills`` closed every month up to and including ``through`` (§7).

    **Decision:** closing a month also closes the months before it.  Otherwise a command dated
    in an earlier, still-open month could start a monthly subscription that is charged in the
    closed month too, and so change a bill already issued.
    """

    through: YearMonth


@topic("matome.billing.BillingRunCompleted")
@attrs.frozen(kw_only=True)
class BillingRunCompleted(DomainEvent):
    """Every bill of every month up to ``through`` is issued: the next billing run starts after
    it, so a run costs the months it issues, not the whole history (§7)."""

    through: YearMonth


@topic("matome.idempotency.KeyBound")
@attrs.frozen(kw_only=True)
class KeyBound(DomainEvent):
    """A command bound its idempotency key: an accepted one, or one refused after counting a
    wrong password (rules §10: re-running a log counts nothing twice).

    ``digest`` is SHA-256 over the command's canonical JSON with its secrets and its personal
    fields (e-mail, applicant) reduced to "given or not"; ``secrets`` holds salted hashes of
    the secret fields so that a retry must present the same secrets; ``result`` is the first
    result, answered again to a retry — or, when ``error`` is set (the contract's
    ``{"code", "message"}``), the refusal answered again.

    The secrets' hashes are kept apart from the event, like personal data, under the
    credential's ``owner`` (the Passport ID or line whose password or access key the command
    presented): they are deleted when that secret changes, so no old password's hash lingers
    (they read as erased then).  ``personal`` — a salted digest of the personal fields, the
    only thing that compares them — is kept apart under the Passport ID the body carried
    (``subject``), so ``erase_personal_data`` of that ID deletes it (contract 3: a key never
    keeps anything that confirms personal data).

    Version 2 (contract 2): ``error``.  Version 3 (matome 0.2): ``owner``; the hashes kept
    apart.  Version 4 (contract 3): ``personal``, ``subject``; personal fields out of
    ``digest``.  Older digests covered the whole body, personal fields included
    (``personal_in_digest``; see :mod:`matome.application.idempotency` for what they mean).
    """

    class_version: ClassVar[int] = 4
    #: The field naming whose secret the personal values are (see the adapter).
    PERSONAL_SUBJECT: ClassVar[str] = "owner"

    key: str
    command: str
    digest: str
    secrets: dict[str, str] | Erased = personal()
    result: dict[str, Any]
    error: dict[str, str] | None = None
    owner: str | None = None
    #: ``salt$sha256`` of the body's personal fields (``None``: it carried none).
    personal_digest: str | Erased | None = personal(default=None, subject="subject")
    #: The stream of the Passport ID whose personal data the body carried.
    subject: str | None = None
    #: ``digest`` covers the personal fields too (keys bound before contract 3).
    personal_in_digest: bool = False

    @staticmethod
    def upcast_v1_v2(state: dict[str, Any]) -> None:
        state["error"] = None

    @staticmethod
    def upcast_v2_v3(state: dict[str, Any]) -> None:
        state["owner"] = None

    @staticmethod
    def upcast_v3_v4(state: dict[str, Any]) -> None:
        state["personal_digest"] = None
        state["subject"] = None
        state["personal_in_digest"] = True


@topic("matome.fees.FeeSet")
@attrs.frozen(kw_only=True)
class FeeSet(DomainEvent):
    """The operator set the flat fee per line, before tax, of the 901–1,500-yen tier of the
    provider fee schedule for ``operator``'s settlements from ``effective_from`` (§8)."""

    operator: Operator
    effective_from: YearMonth
    flat_fee: Yen
