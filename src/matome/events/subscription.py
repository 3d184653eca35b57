"""Events of the subscription / purchase aggregate (one stream per receipt number)."""

from __future__ import annotations

from enum import StrEnum
from typing import Any, ClassVar

import attrs

from matome.events.base import DomainEvent, topic
from matome.values import CustomerId, PassportId, Pricing, ProviderCode, ServiceCode, Yen

__all__ = ["CancelReason", "Cancelled", "PurchaseReferenced", "Purchased", "Refunded"]


class CancelReason(StrEnum):
    """What cancelled a monthly subscription."""

    CUSTOMER = "customer"
    REGULATION = "regulation"  # §5: regulation cancels every subscription of the line
    PASSPORT_DELETED = "passport_deleted"  # §2
    LINE_CHANGE = "line_change"  # §6


@topic("matome.subscription.Purchased")
@attrs.frozen(kw_only=True)
class Purchased(DomainEvent):
    """One purchase of one service by one Passport ID, with the price in force at that time.

    Version 2 (contract 2): ``quantity`` of a per-purchase item (``price`` is the unit price).
    """

    class_version: ClassVar[int] = 2

    receipt: str
    passport_id: PassportId
    customer_id: CustomerId
    provider: ProviderCode
    service: ServiceCode
    service_name: str
    pricing: Pricing
    price: Yen
    quantity: int = 1

    @staticmethod
    def upcast_v1_v2(state: dict[str, Any]) -> None:
        state["quantity"] = 1


@topic("matome.subscription.Cancelled")
@attrs.frozen(kw_only=True)
class Cancelled(DomainEvent):
    """A monthly-flat subscription ended at ``at`` (charging rules of §4 decide the months)."""

    reason: CancelReason


@topic("matome.subscription.Refunded")
@attrs.frozen(kw_only=True)
class Refunded(DomainEvent):
    """A provider's refund, charged negatively in the month of ``at`` (§4, never a rewrite)."""

    amount: Yen
    reason: str


@topic("matome.subscription.PurchaseReferenced")
@attrs.frozen(kw_only=True)
class PurchaseReferenced(DomainEvent):
    """A client's reference names a purchase (one stream per reference, so a reference names
    one purchase for good): a log can cancel or refund it by that name."""

    ref: str
    receipt: str
