"""The subscription / purchase aggregate: one stream per receipt number [申込受付番号]."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Protocol, TypeVar
from uuid import UUID, uuid5

import attrs

from matome import charging
from matome.aggregates.base import NAMESPACE, AggregateState, Appliers, stream_id
from matome.aggregates.decision import Decision
from matome.errors import NotCancellable, UnknownReceipt
from matome.events import passport as passport_ev
from matome.events import subscription as ev
from matome.values import CustomerId, PassportId, Pricing, ProviderCode, ServiceCode, Yen

__all__ = [
    "Holder",
    "Reference",
    "Subscription",
    "cancel_holdings",
    "check_cancellable",
    "project_reference",
    "project_subscription",
    "receipt_number",
    "reference_id",
    "require_subscription",
    "subscription_id",
]


def subscription_id(receipt: str) -> UUID:
    return stream_id("subscription", receipt)


def reference_id(ref: str) -> UUID:
    return stream_id("purchase-ref", ref)


@attrs.frozen(kw_only=True)
class Reference:
    """A client's reference for a purchase, and the receipt it names."""

    id: UUID
    version: int
    last_at: datetime
    ref: str
    receipt: str


#: The reference's applier.
reference_applies = Appliers("Reference")


@reference_applies(ev.PurchaseReferenced)
def _referenced(_: None, e: ev.PurchaseReferenced) -> Reference:
    return Reference(
        id=e.originator_id,
        version=e.originator_version,
        last_at=e.at,
        ref=e.ref,
        receipt=e.receipt,
    )


project_reference = reference_applies.project


def receipt_number(passport_id: PassportId | str, n: int) -> str:
    """The receipt number [申込受付番号] of the ``n``-th purchase of a Passport ID.

    Derived, not drawn: the same history always yields the same receipts, on any store, and two
    racing purchases on one ID compute the same number (only one of them can be saved).
    """
    pid = passport_id.value if isinstance(passport_id, PassportId) else passport_id
    return "R" + uuid5(NAMESPACE, f"receipt:{pid}#{n}").hex[:20].upper()


@attrs.frozen(kw_only=True)
class Subscription:
    """One purchase: what was bought, when, by whom; its cancellation and refunds."""

    id: UUID
    version: int
    last_at: datetime
    receipt: str
    passport_id: PassportId
    customer_id: CustomerId
    provider: ProviderCode
    service: ServiceCode
    service_name: str
    pricing: Pricing
    price: Yen
    purchased_at: datetime
    quantity: int = 1
    cancelled_at: datetime | None = None
    cancel_reason: ev.CancelReason | None = None
    refunded: Yen = Yen.ZERO
    #: When its service period ends (docs/rules.md §11), ``None`` for none: a monthly-flat
    #: subscription ends by itself then, a per-purchase item's access ends then.
    period_ends_at: datetime | None = None

    @property
    def ends_at(self) -> datetime | None:
        """When a monthly-flat subscription ends: its cancellation or its period's end,
        whichever comes first (what the charging rules read, §4, §11)."""
        return charging.until(self.cancelled_at, self.period_ends_at)

    @property
    def ended_by(self) -> ev.CancelReason | None:
        """What ended it: the cancellation's cause, or ``period_ended`` (§11)."""
        if self.cancel_reason is not None:
            return self.cancel_reason
        return None if self.period_ends_at is None else ev.CancelReason.PERIOD_ENDED

    def active_at(self, at: datetime) -> bool:
        """An active monthly-flat subscription at ``at``: not cancelled, and its service
        period not over (§11)."""
        return self.active and (self.period_ends_at is None or at < self.period_ends_at)

    @property
    def amount(self) -> Yen:
        """What it is charged in a month it is charged: unit price × quantity (§4)."""
        return self.price * self.quantity

    @property
    def active(self) -> bool:
        """A monthly-flat subscription with no cancellation recorded (per-purchase items are
        never 'active'); whether its service period has ended by a given time is
        :meth:`active_at`'s question (§11)."""
        return self.pricing is Pricing.MONTHLY and self.cancelled_at is None


#: The subscription's appliers, one decorated function per event class.
subscription_applies = Appliers("Subscription")


@subscription_applies(ev.Purchased)
def _purchased(_: None, e: ev.Purchased) -> Subscription:
    return Subscription(
        id=e.originator_id,
        version=e.originator_version,
        last_at=e.at,
        receipt=e.receipt,
        passport_id=e.passport_id,
        customer_id=e.customer_id,
        provider=e.provider,
        service=e.service,
        service_name=e.service_name,
        pricing=e.pricing,
        price=e.price,
        purchased_at=e.at,
        quantity=e.quantity,
        period_ends_at=e.period_ends_at,
    )


@subscription_applies(ev.Cancelled)
def _cancelled(s: Subscription, e: ev.Cancelled) -> Subscription:
    return attrs.evolve(
        s, version=e.originator_version, last_at=e.at, cancelled_at=e.at, cancel_reason=e.reason
    )


@subscription_applies(ev.Refunded)
def _refunded(s: Subscription, e: ev.Refunded) -> Subscription:
    return attrs.evolve(
        s, version=e.originator_version, last_at=e.at, refunded=s.refunded + e.amount
    )


project_subscription = subscription_applies.project


# ---------------------------------------------------------------------------------------------
# Deciders


def require_subscription(
    sub: Subscription | None, receipt: str, d: Decision
) -> Subscription | None:
    """``sub``, or ``unknown_receipt``; the command decides against it (time order).
    ``receipt`` names what the command gave: a receipt number, or ``reference '...'``."""
    named = receipt if receipt.startswith("reference ") else f"receipt {receipt}"
    d.against(sub, named)
    if sub is None:
        d.refuse(UnknownReceipt(f"no purchase has {named}"))
    return sub


def check_cancellable(sub: Subscription, d: Decision) -> bool:
    """Only an active monthly-flat subscription can be cancelled (§4, ``not_cancellable``);
    one whose service period ended is refused as a cancelled one (§11)."""
    if sub.pricing is Pricing.PER_PURCHASE:
        why = "is a per-purchase item"
    elif sub.active and sub.period_ends_at is not None:
        why = f"ended by itself when its service period ended on {sub.period_ends_at.isoformat()}"
    else:
        why = "was cancelled already"
    return d.require(sub.active_at(d.at), lambda: NotCancellable(f"receipt {sub.receipt} {why}"))


class _Held(Protocol):
    @property
    def active(self) -> bool: ...

    def active_at(self, at: datetime) -> bool: ...


class Holder(AggregateState, Protocol):
    """What cancelling an ID's subscriptions needs of it (a :class:`~matome.aggregates.passport.
    Passport`): its stream, and its holdings by receipt."""

    @property
    def holdings(self) -> Mapping[str, _Held]: ...


H = TypeVar("H", bound=Holder)


def cancel_holdings(
    passport: H,
    subs: Mapping[str, Subscription | None],
    reason: ev.CancelReason,
    d: Decision,
) -> tuple[H, list[str]]:
    """Cancel every active monthly subscription of ``passport`` at the command's instant.

    The cascade of §2 (deleting an ID), §5 (regulation) and §6 (a line change that ends the
    service).  ``subs`` are the ID's active holdings' subscriptions, loaded by the caller; the
    command decides against each of them (time order).
    """
    cancelled: list[str] = []
    # A subscription whose service period ended has ended by itself (§11): nothing to cancel.
    for receipt in sorted(r for r, h in passport.holdings.items() if h.active_at(d.at)):
        sub = require_subscription(subs.get(receipt), receipt, d)
        if d.refused or sub is None:
            continue
        if sub.active_at(d.at):
            d.emit(sub, ev.Cancelled, reason=reason)
        passport = d.emit(passport, passport_ev.HoldingEnded, receipt=receipt)
        cancelled.append(receipt)
    return passport, cancelled
