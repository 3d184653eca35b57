"""A line's charges and bill composed from view rows — one composition, whoever holds the rows.

The documents (:class:`~matome.projections.documents.Documents`, the SQL views) and the audit
(:mod:`matome.audit`, the same view functions applied in memory to one line's streams) both
answer :class:`BillFacts` and call :func:`month_charges` and :func:`line_bill`, so a recomputed
bill and a shown bill are the output of the same function.  What is charged is decided by
:mod:`matome.charging`; the bill is composed by :func:`matome.documents.compose_bill` and its
status by :func:`matome.documents.bill_status`.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime
from typing import Protocol

import attrs

from matome import charging
from matome.documents import (
    AccountEntry,
    Bill,
    Charge,
    ChargeKind,
    LineCharge,
    account_in_force,
    bill_status,
    compose_bill,
    issue_date,
    sort_charges,
)
from matome.policy import Policy
from matome.projections.views import BillingRow, RefundRow, SubRow, parse_utc
from matome.values import (
    BillingAccount,
    CustomerId,
    Operator,
    PassportId,
    Pricing,
    ProviderCode,
    ServiceCode,
    YearMonth,
    Yen,
    billing_from_json,
    tokyo_date,
)

__all__ = ["BillFacts", "ChargeFacts", "Purchase", "account_entry", "line_bill", "month_charges"]


@attrs.frozen
class Purchase:
    """A purchase as the views hold it, with its line's operator (settlement is per operator,
    §8): what the charging rules read (``Chargeable``)."""

    row: SubRow
    operator: str
    purchased_at: datetime
    cancelled_at: datetime | None
    #: When its service period ends (§11): ``cancelled_at`` holds it already for a monthly
    #: subscription not cancelled earlier; kept apart for the documents to show.
    period_ends_at: datetime | None

    @classmethod
    def of(cls, row: SubRow, operator: str) -> Purchase:
        return cls(
            row=row,
            operator=operator,
            purchased_at=parse_utc(row.purchased_at),
            cancelled_at=None if row.cancelled_at is None else parse_utc(row.cancelled_at),
            period_ends_at=None if row.period_ends_at is None else parse_utc(row.period_ends_at),
        )

    @property
    def receipt(self) -> str:
        return self.row.receipt

    @property
    def passport_id(self) -> str:
        return self.row.passport_id

    @property
    def provider(self) -> str:
        return self.row.provider

    @property
    def service(self) -> str:
        return self.row.service

    @property
    def pricing(self) -> str:
        return self.row.pricing

    def charge(
        self,
        unit_price: int,
        quantity: int,
        kind: ChargeKind,
        sources: Sequence[str],
        reason: str | None = None,
    ) -> LineCharge:
        """A charge (or refund) of this purchase, with the line it is billed to."""
        row = self.row
        return LineCharge(
            customer_id=CustomerId(row.customer_id),
            operator=Operator(self.operator),
            charge=Charge(
                receipt=row.receipt,
                passport_id=PassportId(row.passport_id),
                provider=ProviderCode(row.provider),
                service=ServiceCode(row.service),
                service_name=row.service_name,
                pricing=Pricing(row.pricing),
                unit_price=Yen(unit_price),
                quantity=quantity,
                amount=Yen(unit_price * quantity),
                started_on=tokyo_date(self.purchased_at),
                kind=kind,
                sources=tuple(sources),
                reason=reason,
                ends_on=None if self.period_ends_at is None else tokyo_date(self.period_ends_at),
            ),
        )


class ChargeFacts(Protocol):
    """What a month's charges are decided from (:func:`month_charges`)."""

    def purchases(self, month: YearMonth, customer_id: str | None) -> list[Purchase]:
        """The purchases that may be charged in ``month`` (of one line or of all): at least
        the monthly subscriptions not ended before it and the month's purchases."""

    def refunds(
        self, month: YearMonth, customer_id: str | None
    ) -> list[tuple[Purchase, RefundRow]]:
        """The refunds recorded in ``month``, with their purchases."""


class BillFacts(ChargeFacts, Protocol):
    """What a bill is composed from, read from view rows (SQL or in memory)."""

    def purchases(self, month: YearMonth, customer_id: str | None) -> list[Purchase]:
        """The purchases that may be charged in ``month`` (of one line or of all): at least
        the monthly subscriptions not ended before it and the month's purchases."""

    def refunds(
        self, month: YearMonth, customer_id: str | None
    ) -> list[tuple[Purchase, RefundRow]]:
        """The refunds recorded in ``month``, with their purchases."""

    def billing_history(self, customer_id: CustomerId) -> list[AccountEntry]:
        """The line's billing accounts (empty for a line the facts do not know)."""

    def provider_names(self) -> Mapping[ProviderCode, str]:
        """Provider names by code."""

    def closed_through(self) -> YearMonth | None:
        """The last closed month."""


def account_entry(row: BillingRow) -> AccountEntry:
    """A billing account row as (business time, line stream version, account)."""
    return parse_utc(row.at), row.version, billing_from_json(json.loads(row.billing))


def month_charges(
    facts: ChargeFacts, month: YearMonth, customer_id: str | None, policy: Policy
) -> list[LineCharge]:
    """The charges of ``month`` (rules §4), of one line or of every line, sorted.

    ``sources`` names the events each came from as ``<receipt>@<version>`` (the version of the
    event in that purchase's own stream — stable on every store).
    """
    out: list[LineCharge] = []
    once = policy.monthly_once_per_month
    for p in charging.charged_purchases(
        facts.purchases(month, customer_id), month, once_per_month=once
    ):
        sources = [f"{p.receipt}@1"]
        version = p.row.cancel_version
        # The cancellation is a source of the charge of its own month only: earlier months'
        # charges never change, so issued bills keep their sources.
        if version is not None and p.cancelled_at and YearMonth.of(p.cancelled_at) == month:
            sources.append(f"{p.receipt}@{version}")
        out.append(p.charge(p.row.price, p.row.quantity, ChargeKind.CHARGE, sources))
    for p, refund in facts.refunds(month, customer_id):
        sources = [f"{p.receipt}@{refund.version}"]
        out.append(p.charge(-refund.amount, 1, ChargeKind.REFUND, sources, refund.reason))
    return sort_charges(out)


def account_of(
    facts: BillFacts, line: CustomerId
) -> Callable[[CustomerId, YearMonth], BillingAccount]:
    """The billing account in force at the end of a month, of ``line`` or of a line it names
    (a representative): a representative the facts do not know bills by ``line``'s own
    account (so by the phone schedule, §7)."""

    def of(customer_id: CustomerId, month: YearMonth) -> BillingAccount:
        history = facts.billing_history(customer_id)
        if not history and customer_id != line:
            history = facts.billing_history(line)
        return account_in_force(history, month)

    return of


def line_bill(
    facts: BillFacts, customer_id: CustomerId, month: YearMonth, policy: Policy, *, issued: bool
) -> Bill:
    """The bill of one line for one month, composed from ``facts``; ``issued``: whether its
    ``BillIssued`` is recorded (its status, :func:`~matome.documents.bill_status`)."""
    charges = [c.charge for c in month_charges(facts, month, customer_id.value, policy)]
    accounts = account_of(facts, customer_id)
    return compose_bill(
        customer_id=customer_id,
        month=month,
        billing_account=accounts(customer_id, month),
        issue_date=issue_date(customer_id, month, accounts),
        status=bill_status(month, facts.closed_through(), issued=issued, charged=bool(charges)),
        charges=charges,
        provider_names=facts.provider_names(),
    )
