"""The Passport ID aggregate's state and its appliers.

Re-exported by :mod:`matome.aggregates.passport`, which holds its deciders.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from types import MappingProxyType
from typing import Any
from uuid import UUID

import attrs

from matome import charging
from matome.aggregates.base import Appliers, stream_id
from matome.events import passport as ev
from matome.events.base import DomainEvent
from matome.values import (
    CustomerId,
    Email,
    Erased,
    PassportId,
    Pricing,
    ProviderCode,
    ServiceCode,
    YearMonth,
    Yen,
)


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
    #: When its service period ends (docs/rules.md §11), ``None`` for none.
    period_ends_at: datetime | None = None

    @property
    def active(self) -> bool:
        """No cancellation recorded (its service period may have ended: :meth:`active_at`)."""
        return self.ended_at is None

    def active_at(self, at: datetime) -> bool:
        """Held at ``at``: not cancelled, and its service period not over (§11)."""
        return self.ended_at is None and (self.period_ends_at is None or at < self.period_ends_at)

    # What the charging rules read (matome.charging.Chargeable): holdings are one ID's
    # monthly subscriptions.

    @property
    def passport_id(self) -> None:
        return None  # every holding of a Passport is that Passport's

    @property
    def pricing(self) -> Pricing:
        return Pricing.MONTHLY

    @property
    def cancelled_at(self) -> datetime | None:
        return charging.until(self.ended_at, self.period_ends_at)

    @property
    def amount(self) -> int:
        return self.price.amount


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
    email: Email | Erased
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
    #: Monthly subscriptions bought while the same service was already charged to this ID in
    #: that month (§4 patterns 4–5): under the once-per-month policy their first month is not
    #: charged, so they have nothing to refund for it.  A fact of the history, kept for good.
    rebought: frozenset[str] = frozenset()

    def first_month_charged(self, receipt: str, *, once_per_month: bool) -> bool:
        """Whether the subscription ``receipt`` of this ID was charged in its purchase month."""
        return not (once_per_month and receipt in self.rebought)

    def active_holding(
        self, provider: ProviderCode, service: ServiceCode, at: datetime
    ) -> Holding | None:
        """The monthly subscription of that service active at ``at``, if any (at most one,
        §4; one whose service period ended is not, §11)."""
        for h in self.holdings.values():
            if h.active_at(at) and h.provider == provider and h.service == service:
                return h
        return None

    def spend(self, month: YearMonth, *, once_per_month: bool) -> Yen:
        """Everything chargeable to this ID in ``month`` (Decision of §3): its monthly
        subscriptions charged that month, by the charging rules, and its one-off purchases."""
        monthly = charging.spend(list(self.holdings.values()), month, once_per_month=once_per_month)
        return Yen(self.one_off_spend.get(month, Yen.ZERO).amount + monthly)


#: The Passport ID's appliers, one decorated function per event class.
passport_applies = Appliers("Passport")


def _step(state: Passport, event: DomainEvent, **changes: Any) -> Passport:
    return attrs.evolve(state, version=event.originator_version, last_at=event.at, **changes)


@passport_applies(ev.Registered)
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


@passport_applies(ev.DetailsChanged)
def _details(s: Passport, e: ev.DetailsChanged) -> Passport:
    changes: dict[str, Any] = {}
    if e.password_hash is not None:
        # A new password clears the failure count and the lock.
        changes.update(password_hash=e.password_hash, consecutive_failures=0, locked=False)
    if e.email is not None:
        changes["email"] = e.email
    if e.line_auth is not None:
        changes["line_auth"] = e.line_auth
    return _step(s, e, **changes)


def _pruned(holdings: Mapping[str, Holding], month: YearMonth) -> dict[str, Holding]:
    # Business time on a Passport ID's stream never goes backwards (the engine refuses it), so
    # a holding that ended before ``month`` can never be charged again: drop it to keep the
    # state small however long the ID lives.
    return {
        r: h
        for r, h in holdings.items()
        if h.cancelled_at is None or YearMonth.of(h.cancelled_at) >= month
    }


def _rebought_before_v4(holdings: Mapping[str, Holding], e: ev.HoldingAdded) -> bool:
    """Whether a ``HoldingAdded`` recorded before v4 (which did not carry the fact) was a
    same-month re-purchase: derived from the ID's holdings before it, exactly as the applier
    did up to v3.  Only old events come here: a v4 event carries what its purchase decided."""
    return charging.repurchase_is_free(
        holdings.values(), e.provider, e.service, YearMonth.of(e.at), once_per_month=True
    )


@passport_applies(ev.HoldingAdded)
def _added(s: Passport, e: ev.HoldingAdded) -> Passport:
    month = YearMonth.of(e.at)
    # An accepted purchase presented the right password: the count of wrong ones restarts.
    changes: dict[str, Any] = {"purchases": s.purchases + 1, "consecutive_failures": 0}
    if e.pricing is Pricing.MONTHLY:
        holdings = _pruned(s.holdings, month)
        # The fact the purchase decided (v4); never decided again here.
        rebought = _rebought_before_v4(holdings, e) if e.rebought is None else e.rebought
        if rebought:
            changes["rebought"] = s.rebought | {e.receipt}
        holdings[e.receipt] = Holding(
            receipt=e.receipt,
            provider=e.provider,
            service=e.service,
            price=e.price,
            purchased_at=e.at,
            period_ends_at=e.period_ends_at,
        )
        changes["holdings"] = MappingProxyType(holdings)
    else:
        spend = {m: y for m, y in s.one_off_spend.items() if m >= month}
        spend[month] = spend.get(month, Yen.ZERO) + e.price * e.quantity
        changes["one_off_spend"] = MappingProxyType(spend)
    return _step(s, e, **changes)


@passport_applies(ev.HoldingEnded)
def _ended(s: Passport, e: ev.HoldingEnded) -> Passport:
    holdings = dict(s.holdings)
    held = holdings.get(e.receipt)
    if held is not None:
        holdings[e.receipt] = attrs.evolve(held, ended_at=e.at)
    return _step(s, e, holdings=MappingProxyType(holdings))


@passport_applies(ev.PasswordRehashed)
def _rehashed(s: Passport, e: ev.PasswordRehashed) -> Passport:
    # The same password in a newer scheme: the ID's business clock does not move (the
    # command that presented the password moves it by its own events).
    return attrs.evolve(s, version=e.originator_version, password_hash=e.password_hash)


@passport_applies(ev.LimitChanged)
def _limit_changed(s: Passport, e: ev.LimitChanged) -> Passport:
    return _step(s, e, limit=e.limit)


@passport_applies(ev.PasswordRejected)
def _password_rejected(s: Passport, e: ev.PasswordRejected) -> Passport:
    # A wrong password does not move the ID's business clock: otherwise anyone who knows an ID
    # could freeze it with one wrong password dated far ahead (every later command would be
    # out of time order).
    return attrs.evolve(
        s, version=e.originator_version, consecutive_failures=e.consecutive, locked=e.locked
    )


@passport_applies(ev.PasswordAccepted)
def _password_accepted(s: Passport, e: ev.PasswordAccepted) -> Passport:
    return _step(s, e, consecutive_failures=0)


@passport_applies(ev.PasswordReset)
def _password_reset(s: Passport, e: ev.PasswordReset) -> Passport:
    return _step(s, e, password_hash=e.password_hash, consecutive_failures=0, locked=False)


@passport_applies(ev.PassportDeleted)
def _deleted(s: Passport, e: ev.PassportDeleted) -> Passport:
    return _step(s, e, deleted=True, deleted_at=e.at)


@passport_applies(ev.PersonalDataErased)
def _erased(s: Passport, e: ev.PersonalDataErased) -> Passport:
    return _step(s, e, email=Erased())


project_passport = passport_applies.project
