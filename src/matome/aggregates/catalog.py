"""The provider catalog: one stream per provider with the services it lists."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from types import MappingProxyType
from uuid import UUID

import attrs

from matome import commands as cmd
from matome.aggregates.base import Appliers, stream_id
from matome.aggregates.decision import Decision
from matome.errors import DuplicateError, UnknownProvider, UnknownService
from matome.events import catalog as ev
from matome.values import Goods, Pricing, ProviderCode, ServiceCode, Yen

__all__ = [
    "Listing",
    "Provider",
    "decide_list_service",
    "decide_register_provider",
    "project_provider",
    "provider_id",
    "require_listing",
    "require_provider",
]


def provider_id(code: ProviderCode) -> UUID:
    return stream_id("provider", code.value)


@attrs.frozen(kw_only=True)
class Listing:
    service: ServiceCode
    name: str
    pricing: Pricing
    price: Yen
    listed_at: datetime
    #: The service period it sets (docs/rules.md §11), in billing months or in days; ``None``: none.
    period_months: int | None = None
    period_days: int | None = None


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


#: The provider's appliers, one decorated function per event class.
provider_applies = Appliers("Provider")


@provider_applies(ev.ProviderRegistered)
def _registered(_: None, e: ev.ProviderRegistered) -> Provider:
    return Provider(
        id=e.originator_id,
        version=e.originator_version,
        last_at=e.at,
        code=e.provider,
        name=e.name,
        contact=e.contact,
        goods=e.goods,
        registered_at=e.at,
    )


@provider_applies(ev.ServiceListed)
def _listed(s: Provider, e: ev.ServiceListed) -> Provider:
    services = dict(s.services)
    services[e.service] = Listing(
        service=e.service,
        name=e.name,
        pricing=e.pricing,
        price=e.price,
        listed_at=e.at,
        period_months=e.period_months,
        period_days=e.period_days,
    )
    return attrs.evolve(
        s, version=e.originator_version, last_at=e.at, services=MappingProxyType(services)
    )


project_provider = provider_applies.project


# ---------------------------------------------------------------------------------------------
# Deciders


def require_provider(provider: Provider | None, code: ProviderCode, d: Decision) -> Provider | None:
    """The provider as of the command's business time, else ``unknown_provider``.

    The catalog is not a line's history: a command may name a provider registered later than
    other commands, so no time order is imposed — only existence at the time.
    """
    if provider is None or provider.registered_at > d.at:
        d.refuse(UnknownProvider(f"no provider {code}"))
        return None
    return provider


def require_listing(provider: Provider, service: ServiceCode, d: Decision) -> Listing | None:
    """The provider's service as of the command's business time, else ``unknown_service``."""
    listing = provider.services.get(service)
    if listing is None or listing.listed_at > d.at:
        d.refuse(UnknownService(f"provider {provider.code} lists no service {service}"))
        return None
    return listing


def decide_register_provider(
    existing: Provider | None, c: cmd.RegisterProvider, d: Decision
) -> cmd.Done | None:
    """A provider joins the catalog once (``duplicate`` after)."""
    d.require(existing is None, lambda: DuplicateError(f"provider {c.provider} exists already"))
    if d.refused:
        return None
    d.create(
        provider_id(c.provider),
        ev.ProviderRegistered,
        provider=c.provider,
        name=c.name,
        contact=c.contact,
        goods=c.goods,
    )
    return cmd.Done()


def decide_list_service(
    provider: Provider | None, c: cmd.ListService, d: Decision
) -> cmd.Done | None:
    """A service is listed once with its pricing type and price; a new price is a new code."""
    provider = require_provider(provider, c.provider, d)
    if provider is None:
        return None
    d.require(
        c.service not in provider.services,
        lambda: DuplicateError(f"provider {c.provider} lists {c.service} already"),
    )
    if d.refused:
        return None
    d.emit(
        provider,
        ev.ServiceListed,
        service=c.service,
        name=c.name,
        pricing=c.pricing,
        price=c.price,
        period_months=c.period_months,
        period_days=c.period_days,
    )
    return cmd.Done()
