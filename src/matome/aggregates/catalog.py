"""The provider catalog: one stream per provider with the services it lists."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from types import MappingProxyType
from uuid import UUID

import attrs

from matome.aggregates.base import make_projector, stream_id
from matome.events import catalog as ev
from matome.values import Goods, Pricing, ProviderCode, ServiceCode, Yen

__all__ = ["Listing", "Provider", "project_provider", "provider_id"]


def provider_id(code: ProviderCode) -> UUID:
    return stream_id("provider", code.value)


@attrs.frozen(kw_only=True)
class Listing:
    service: ServiceCode
    name: str
    pricing: Pricing
    price: Yen
    listed_at: datetime


@attrs.frozen(kw_only=True)
class Provider:
    id: UUID
    version: int
    last_at: datetime
    code: ProviderCode
    name: str
    contact: str
    goods: Goods
    registered_at: datetime
    services: Mapping[ServiceCode, Listing] = attrs.field(factory=lambda: MappingProxyType({}))


def _listed(s: Provider, e: ev.ServiceListed) -> Provider:
    services = dict(s.services)
    services[e.service] = Listing(
        service=e.service, name=e.name, pricing=e.pricing, price=e.price, listed_at=e.at
    )
    return attrs.evolve(
        s, version=e.originator_version, last_at=e.at, services=MappingProxyType(services)
    )


project_provider = make_projector(
    {
        ev.ProviderRegistered: lambda _, e: Provider(
            id=e.originator_id,
            version=e.originator_version,
            last_at=e.at,
            code=e.provider,
            name=e.name,
            contact=e.contact,
            goods=e.goods,
            registered_at=e.at,
        ),
        ev.ServiceListed: _listed,
    }
)
