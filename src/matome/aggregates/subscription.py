"""The subscription / purchase aggregate: one stream per receipt number [申込受付番号]."""

from __future__ import annotations

from datetime import datetime
from uuid import UUID

import attrs

from matome.aggregates.base import make_projector, stream_id
from matome.events import subscription as ev
from matome.values import CustomerId, PassportId, Pricing, ProviderCode, ServiceCode, Yen

__all__ = ["Subscription", "project_subscription", "subscription_id"]


def subscription_id(receipt: str) -> UUID:
    return stream_id("subscription", receipt)


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
    cancelled_at: datetime | None = None
    cancel_reason: ev.CancelReason | None = None
    refunded: Yen = Yen.ZERO

    @property
    def active(self) -> bool:
        """An active monthly-flat subscription (per-purchase items are never 'active')."""
        return self.pricing is Pricing.MONTHLY and self.cancelled_at is None


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
    )


project_subscription = make_projector(
    {
        ev.Purchased: _purchased,
        ev.Cancelled: lambda s, e: attrs.evolve(
            s,
            version=e.originator_version,
            last_at=e.at,
            cancelled_at=e.at,
            cancel_reason=e.reason,
        ),
        ev.Refunded: lambda s, e: attrs.evolve(
            s, version=e.originator_version, last_at=e.at, refunded=s.refunded + e.amount
        ),
    }
)
