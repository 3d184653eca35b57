"""Engine-wide records: the billing calendar and idempotency keys."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from types import MappingProxyType
from typing import Any
from uuid import UUID, uuid5

import attrs

from matome import commands as cmd
from matome.aggregates.base import NAMESPACE, Appliers, stream_id
from matome.aggregates.decision import Decision
from matome.errors import InvalidInput, MonthClosed
from matome.events import ledger as ev
from matome.values import CustomerId, Erased, Operator, YearMonth, Yen

__all__ = [
    "BILLING_RUN_ID",
    "CALENDAR_ID",
    "BillingRun",
    "Calendar",
    "FeeSchedule",
    "KeyRecord",
    "bill_id",
    "check_month_open",
    "decide_issue_bills",
    "decide_set_fee",
    "fees_id",
    "key_id",
    "project_billing_run",
    "project_calendar",
    "project_fees",
    "project_key",
]

CALENDAR_ID = stream_id("calendar", "billing")


def key_id(key: str) -> UUID:
    return stream_id("idempotency", key)


#: The stream that records how far the billing run has issued every bill.
BILLING_RUN_ID = stream_id("billing-run", "completed")


def fees_id(operator: Operator) -> UUID:
    return stream_id("fees", operator.value)


def bill_id(customer_id: CustomerId | str, month: YearMonth) -> UUID:
    """The stream of one issued bill (a line's bill for one closed month)."""
    cid = customer_id.value if isinstance(customer_id, CustomerId) else customer_id
    return uuid5(NAMESPACE, f"bill:{cid}:{month}")


@attrs.frozen(kw_only=True)
class Calendar:
    """Which billing months are closed (bills issued, immutable, §7)."""

    id: UUID
    version: int
    last_at: datetime
    closed_through: YearMonth | None = None

    def is_closed(self, month: YearMonth) -> bool:
        return self.closed_through is not None and month <= self.closed_through


#: The calendar's applier.
calendar_applies = Appliers("Calendar")


@calendar_applies(ev.MonthsClosed)
def _months_closed(_: Calendar | None, e: ev.MonthsClosed) -> Calendar:
    return Calendar(
        id=e.originator_id, version=e.originator_version, last_at=e.at, closed_through=e.through
    )


project_calendar = calendar_applies.project


@attrs.frozen(kw_only=True)
class KeyRecord:
    """An idempotency key and the first result it answers again (or the refusal, ``error``)."""

    id: UUID
    version: int
    last_at: datetime
    key: str
    command: str
    digest: str
    secrets: Mapping[str, str] | Erased
    result: Mapping[str, Any]
    error: Mapping[str, str] | None = None
    #: Whose credential the secrets are (their hashes are erased when it changes).
    owner: str | None = None
    #: The salted digest of the body's personal fields (erased with the Passport ID's data).
    personal_digest: str | Erased | None = None
    #: ``digest`` covers the personal fields too (a key bound before contract 3).
    personal_in_digest: bool = False
    #: The Passport ID stream whose erasure erases ``personal_digest``.
    subject: str | None = None


#: The idempotency key's applier.
key_applies = Appliers("KeyRecord")


@key_applies(ev.KeyBound)
def _key_bound(_: None, e: ev.KeyBound) -> KeyRecord:
    return KeyRecord(
        id=e.originator_id,
        version=e.originator_version,
        last_at=e.at,
        key=e.key,
        command=e.command,
        digest=e.digest,
        secrets=e.secrets,
        result=e.result,
        error=e.error,
        owner=e.owner,
        personal_digest=e.personal_digest,
        personal_in_digest=e.personal_in_digest,
        subject=e.subject,
    )


project_key = key_applies.project


@attrs.frozen(kw_only=True)
class BillingRun:
    """How far every bill is issued (:class:`matome.events.ledger.BillingRunCompleted`)."""

    id: UUID
    version: int
    last_at: datetime
    completed_through: YearMonth


#: The billing run's applier.
billing_run_applies = Appliers("BillingRun")


@billing_run_applies(ev.BillingRunCompleted)
def _run_completed(s: BillingRun | None, e: ev.BillingRunCompleted) -> BillingRun:
    through = e.through if s is None or e.through > s.completed_through else s.completed_through
    return BillingRun(
        id=e.originator_id, version=e.originator_version, last_at=e.at, completed_through=through
    )


project_billing_run = billing_run_applies.project


@attrs.frozen(kw_only=True)
class FeeSchedule:
    """One operator's configured fee amounts: the 2012 flat fee per line, by the month it is in
    force from (§8).  Settlements read the amount in force in their month."""

    id: UUID
    version: int
    last_at: datetime
    operator: Operator
    flat_fees: Mapping[YearMonth, Yen]


#: The fee schedule's applier.
fees_applies = Appliers("FeeSchedule")


@fees_applies(ev.FeeSet)
def _fee_set(s: FeeSchedule | None, e: ev.FeeSet) -> FeeSchedule:
    fees = dict(s.flat_fees) if s is not None else {}
    fees[e.effective_from] = e.flat_fee
    return FeeSchedule(
        id=e.originator_id,
        version=e.originator_version,
        last_at=e.at,
        operator=e.operator,
        flat_fees=MappingProxyType(fees),
    )


project_fees = fees_applies.project


# ---------------------------------------------------------------------------------------------
# Deciders


def check_month_open(calendar: Calendar | None, d: Decision) -> None:
    """§7: after a month is closed, any command whose business time falls in it is refused
    (``month_closed``) — it could change a bill already issued."""
    month = YearMonth.of(d.at)
    if calendar is not None and calendar.is_closed(month):
        d.refuse(
            MonthClosed(
                f"{month} is closed (bills issued through {calendar.closed_through}); "
                "a command dated in it cannot change them"
            )
        )


def decide_issue_bills(
    calendar: Calendar | None, c: cmd.IssueBills, d: Decision
) -> cmd.IssueResult | None:
    """Close a month once it has ended in Tokyo time, and every month before it (§7).

    Closing a closed month again is accepted and changes nothing.
    """
    d.require(
        c.at >= c.month.end(),
        lambda: InvalidInput(f"{c.month} has not ended in Tokyo time at {c.at.isoformat()}"),
    )
    if d.refused:
        return None
    if calendar is not None and calendar.is_closed(c.month):
        return cmd.IssueResult(month=c.month)
    if calendar is None:
        d.create(CALENDAR_ID, ev.MonthsClosed, through=c.month)
    else:
        d.emit(calendar, ev.MonthsClosed, through=c.month)
    return cmd.IssueResult(month=c.month, closed=(c.month,))


def decide_set_fee(
    schedule: FeeSchedule | None, calendar: Calendar | None, c: cmd.SetFee, d: Decision
) -> cmd.Done | None:
    """Set the 2012 flat fee per line (before tax) for an operator from a month on (§8).

    Settlements of closed months never change: ``effective_from`` in a closed month is
    ``month_closed``.
    """
    if calendar is not None and calendar.is_closed(c.effective_from):
        d.refuse(
            MonthClosed(
                f"{c.effective_from} is closed (bills issued through {calendar.closed_through}); "
                "a fee effective from it would change its settlement"
            )
        )
    if d.refused:
        return None
    fields = {"operator": c.operator, "effective_from": c.effective_from, "flat_fee": c.flat_fee}
    if schedule is None:
        d.create(fees_id(c.operator), ev.FeeSet, **fields)
    else:
        d.emit(schedule, ev.FeeSet, **fields)
    return cmd.Done()
