"""Events of the provider catalog (one stream per provider)."""

from __future__ import annotations

import attrs

from matome.events.base import DomainEvent, topic
from matome.values import Goods, Pricing, ProviderCode, ServiceCode, Yen

__all__ = ["ProviderRegistered", "ServiceListed"]


@topic("matome.catalog.ProviderRegistered")
@attrs.frozen(kw_only=True)
class ProviderRegistered(DomainEvent):
    """A provider [サービス提供事業者] joined, with its contact for the contacts list (§7)."""

    provider: ProviderCode
    name: str
    contact: str
    goods: Goods


@topic("matome.catalog.ServiceListed")
@attrs.frozen(kw_only=True)
class ServiceListed(DomainEvent):
    """The provider listed a service or item with its pricing type and price (tax included)."""

    service: ServiceCode
    name: str
    pricing: Pricing
    price: Yen
