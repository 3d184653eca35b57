"""Events of the provider catalog (one stream per provider)."""

from __future__ import annotations

from typing import Any, ClassVar

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
    """The provider listed a service or item with its pricing type and price (tax included).

    Version 2 (contract 3, docs/rules.md §11): the service period [サービス利用期間] it may set,
    ``period_months`` (monthly-flat) or ``period_days`` (per-purchase); ``None`` for none.
    """

    class_version: ClassVar[int] = 2

    service: ServiceCode
    name: str
    pricing: Pricing
    price: Yen
    period_months: int | None = None
    period_days: int | None = None

    @staticmethod
    def upcast_v1_v2(state: dict[str, Any]) -> None:
        state["period_months"] = None
        state["period_days"] = None
