"""Events of the subscription / purchase aggregate (one stream per receipt number)."""

from __future__ import annotations

from datetime import datetime
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
    #: docs/rules.md §11: the service period the listing set ended.  Never stored on a
    #: ``Cancelled``: the end is a fact of the purchase (``Purchased.period_ends_at``).
    PERIOD_ENDED = "period_ended"


@topic("matome.subscription.Purchased")
@attrs.frozen(kw_only=True)
class Purchased(DomainEvent):
    """One purchase of one service by one Passport ID, with the price in force at that time.

    Version 2 (contract 2): ``quantity`` of a per-purchase item (``price`` is the unit price).
    Version 3 (contract 3, docs/rules.md §11): ``period_ends_at``, the instant the service period
    the listing set at purchase time ends — a monthly-flat subscription ends by itself then
    (00:00 Tokyo on a 1st), a per-purchase item's access ends then; ``None``: no period.
    """

    class_version: ClassVar[int] = 3

    receipt: str
    passport_id: PassportId
    customer_id: CustomerId
    provider: ProviderCode
    service: ServiceCode
    service_name: str
    pricing: Pricing
    price: Yen
    quantity: int = 1
    period_ends_at: datetime | None = None

    @staticmethod
    def upcast_v1_v2(state: dict[str, Any]) -> None:
        state["quantity"] = 1

    @staticmethod
    def upcast_v2_v3(state: dict[str, Any]) -> None:
        state["period_ends_at"] = None


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
