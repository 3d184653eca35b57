"""The Passport ID [フレッツ・パスポートID] aggregate (one stream per ID, never reused)."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from types import MappingProxyType
from typing import Any
from uuid import UUID

import attrs

from matome.aggregates.base import make_projector, stream_id
from matome.charging import charged_in
from matome.events import passport as ev
from matome.events.base import DomainEvent
from matome.values import (
    CustomerId,
    Email,
    PassportId,
    Pricing,
    ProviderCode,
    ServiceCode,
    YearMonth,
    Yen,
)

__all__ = ["Holding", "Passport", "passport_id_stream", "project_passport"]


def passport_id_stream(passport_id: PassportId) -> UUID:
    return stream_id("passport", passport_id.value)


@attrs.frozen(kw_only=True)
class Holding:
    """A monthly-flat subscription of this ID, as far as its spend check needs to know."""

    receipt: str
    provider: ProviderCode
    service: ServiceCode
    price: Yen
    purchased_at: datetime
    ended_at: datetime | None = None

    @property
    def active(self) -> bool:
        return self.ended_at is None


@attrs.frozen(kw_only=True)
class Passport:
    """A Passport ID: hashed credentials, limit, line authentication, lock and spend.

    Every purchase and every monthly cancellation is also recorded here, so that purchases on
    one ID are serialised by optimistic concurrency on this stream and no interleaving can
    take the ID over its limit (§3).  Only what the spend check needs is kept: monthly
    holdings that can still be charged, and one-off spend by month.
    """

    id: UUID
    version: int
    last_at: datetime
    passport_id: PassportId
    customer_id: CustomerId
    password_hash: str
    email: Email
    limit: Yen
    line_auth: bool
    via_provider: ProviderCode | None = None
    registered_at: datetime
    consecutive_failures: int = 0
    locked: bool = False
    deleted: bool = False
    deleted_at: datetime | None = None
    purchases: int = 0
    holdings: Mapping[str, Holding] = attrs.field(factory=lambda: MappingProxyType({}))
    one_off_spend: Mapping[YearMonth, Yen] = attrs.field(factory=lambda: MappingProxyType({}))

    def active_holding(self, provider: ProviderCode, service: ServiceCode) -> Holding | None:
        """The active monthly subscription of that service, if any (at most one, §4)."""
        for h in self.holdings.values():
            if h.active and h.provider == provider and h.service == service:
                return h
        return None

    def monthly_charged(
        self, provider: ProviderCode, service: ServiceCode, month: YearMonth
    ) -> bool:
        """Whether the service is already charged to this ID in ``month``."""
        return any(
            h.provider == provider
            and h.service == service
            and charged_in(h.purchased_at, h.ended_at, month)
            for h in self.holdings.values()
        )

    def spend(self, month: YearMonth, *, once_per_month: bool) -> Yen:
        """Everything chargeable to this ID in ``month`` (Decision of §3)."""
        total = self.one_off_spend.get(month, Yen.ZERO).amount
        seen: set[tuple[ProviderCode, ServiceCode]] = set()
        for h in self.holdings.values():
            if not charged_in(h.purchased_at, h.ended_at, month):
                continue
            if once_per_month:
                if (h.provider, h.service) in seen:
                    continue
                seen.add((h.provider, h.service))
            total += h.price.amount
        return Yen(total)


def _step(state: Passport, event: DomainEvent, **changes: Any) -> Passport:
    return attrs.evolve(state, version=event.originator_version, last_at=event.at, **changes)


def _registered(_: None, e: ev.Registered) -> Passport:
    return Passport(
        id=e.originator_id,
        version=e.originator_version,
        last_at=e.at,
        passport_id=e.passport_id,
        customer_id=e.customer_id,
        password_hash=e.password_hash,
        email=e.email,
        limit=e.limit,
        line_auth=e.line_auth,
        via_provider=e.via_provider,
        registered_at=e.at,
    )


def _details(s: Passport, e: ev.DetailsChanged) -> Passport:
    changes: dict[str, Any] = {}
    if e.password_hash is not None:
        # A new password clears the failure count and the lock.
        changes.update(password_hash=e.password_hash, consecutive_failures=0, locked=False)
    if e.email is not None:
        changes["email"] = e.email
    return _step(s, e, **changes)


def _pruned(holdings: Mapping[str, Holding], month: YearMonth) -> dict[str, Holding]:
    # Business time on a Passport ID's stream never goes backwards (the engine refuses it), so
    # a holding that ended before ``month`` can never be charged again: drop it to keep the
    # state small however long the ID lives.
    return {
        r: h for r, h in holdings.items() if h.ended_at is None or YearMonth.of(h.ended_at) >= month
    }


def _added(s: Passport, e: ev.HoldingAdded) -> Passport:
    month = YearMonth.of(e.at)
    changes: dict[str, Any] = {"purchases": s.purchases + 1, "consecutive_failures": 0}
    if e.pricing is Pricing.MONTHLY:
        holdings = _pruned(s.holdings, month)
        holdings[e.receipt] = Holding(
            receipt=e.receipt,
            provider=e.provider,
            service=e.service,
            price=e.price,
            purchased_at=e.at,
        )
        changes["holdings"] = MappingProxyType(holdings)
    else:
        spend = {m: y for m, y in s.one_off_spend.items() if m >= month}
        spend[month] = spend.get(month, Yen.ZERO) + e.price
        changes["one_off_spend"] = MappingProxyType(spend)
    return _step(s, e, **changes)


def _ended(s: Passport, e: ev.HoldingEnded) -> Passport:
    holdings = dict(s.holdings)
    held = holdings.get(e.receipt)
    if held is not None:
        holdings[e.receipt] = attrs.evolve(held, ended_at=e.at)
    return _step(s, e, holdings=MappingProxyType(holdings))


project_passport = make_projector(
    {
        ev.Registered: _registered,
        ev.LimitChanged: lambda s, e: _step(s, e, limit=e.limit),
        ev.DetailsChanged: _details,
        ev.PasswordRejected: lambda s, e: _step(
            s, e, consecutive_failures=e.consecutive, locked=e.locked
        ),
        ev.HoldingAdded: _added,
        ev.HoldingEnded: _ended,
        ev.PassportDeleted: lambda s, e: _step(s, e, deleted=True, deleted_at=e.at),
    }
)
