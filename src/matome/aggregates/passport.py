"""The Passport ID [フレッツ・パスポートID] aggregate (one stream per ID, never reused)."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from types import MappingProxyType
from typing import Any
from uuid import UUID

import attrs

from matome import charging
from matome import commands as cmd
from matome.aggregates.base import make_projector, stream_id
from matome.aggregates.catalog import Provider, require_listing, require_provider
from matome.aggregates.decision import Decision
from matome.aggregates.line import AccessLine, require_line
from matome.aggregates.subscription import (
    Subscription,
    cancel_holdings,
    check_cancellable,
    receipt_number,
    require_subscription,
    subscription_id,
)
from matome.charging import last_charged_month
from matome.errors import (
    DuplicateError,
    GoodsNotOffered,
    LimitExceeded,
    LimitSumExceeded,
    LineAuthFailed,
    LineRegulated,
    LockedOut,
    RegistrationClosed,
    RegistrationLimitExceeded,
    TooManyPassports,
    UnknownPassport,
    WrongPassword,
)
from matome.events import line as line_ev
from matome.events import passport as ev
from matome.events import subscription as sub_ev
from matome.events.base import DomainEvent
from matome.values import (
    CustomerId,
    Email,
    Goods,
    Operator,
    PassportId,
    Pricing,
    ProviderCode,
    ServiceCode,
    YearMonth,
    Yen,
    tokyo_date,
)

__all__ = [
    "Holding",
    "Passport",
    "decide_cancel",
    "decide_change_passport_details",
    "decide_change_passport_limit",
    "decide_delete_passport",
    "decide_purchase",
    "decide_register_passport",
    "passport_id_stream",
    "project_passport",
    "require_passport",
]


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
        return self.ended_at

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

    def spend(self, month: YearMonth, *, once_per_month: bool) -> Yen:
        """Everything chargeable to this ID in ``month`` (Decision of §3): its monthly
        subscriptions charged that month, by the charging rules, and its one-off purchases."""
        monthly = charging.spend(list(self.holdings.values()), month, once_per_month=once_per_month)
        return Yen(self.one_off_spend.get(month, Yen.ZERO).amount + monthly)


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


# ---------------------------------------------------------------------------------------------
# Deciders (DOMAIN.md §2, §3, §4, §9, §10)


def require_passport(
    passport: Passport | None, passport_id: PassportId, d: Decision
) -> Passport | None:
    """A current (not deleted) Passport ID, else ``unknown_passport``; the command decides
    against it (time order), also when it was deleted."""
    d.against(passport, f"Passport ID {passport_id}")
    if passport is None or passport.deleted:
        d.refuse(UnknownPassport(f"no Passport ID {passport_id!s}"))
        return None
    return passport


def _passport_and_line(
    passport: Passport | None, line: AccessLine | None, passport_id: PassportId, d: Decision
) -> tuple[Passport | None, AccessLine | None]:
    found = require_passport(passport, passport_id, d)
    if passport is None:
        return None, None
    return found, require_line(line, passport.customer_id, d)


def decide_register_passport(
    line: AccessLine | None,
    existing: Passport | None,
    via: Provider | None,
    c: cmd.RegisterPassport,
    d: Decision,
) -> cmd.PassportResult | None:
    """Register a Passport ID on a line (§2): not on a regulated line, at most five per line,
    a limit of at most 5,000 yen within the line's cap; from the cut-off only NTT East
    providers may register one on a customer's behalf."""
    policy = d.policy
    line = require_line(line, c.customer_id, d)
    if c.via_provider is not None:
        require_provider(via, c.via_provider, d)
    if existing is not None:
        # Passport IDs are never reused, even after deletion: an ID names one history.
        d.against(existing, f"Passport ID {c.passport_id}")
        d.refuse(DuplicateError(f"Passport ID {c.passport_id!s} exists already"))
    d.require(
        c.limit <= policy.registration_max_limit,
        lambda: RegistrationLimitExceeded(
            f"the limit at registration is at most {policy.registration_max_limit}, asked {c.limit}"
        ),
    )
    if line is None:
        return None
    d.require(
        not line.regulated,
        lambda: LineRegulated(f"line {c.customer_id} is regulated: no new Passport ID"),
    )
    on_behalf = c.via_provider is not None and line.operator is Operator.EAST
    d.require(
        c.at < policy.registration_cutoff or on_behalf,
        lambda: RegistrationClosed(
            "customers can no longer register Passport IDs themselves (from "
            f"{tokyo_date(policy.registration_cutoff)}); NTT East providers may "
            "register one on a customer's behalf"
        ),
    )
    d.require(
        len(line.passports) < policy.max_passports,
        lambda: TooManyPassports(
            f"line {c.customer_id} holds {policy.max_passports} Passport IDs already"
        ),
    )
    total = line.limit_sum + c.limit
    d.require(
        total <= line.line_limit,
        lambda: LimitSumExceeded(
            f"limits would add up to {total}, above the line's cap {line.line_limit}"
        ),
    )
    if d.refused:
        return None
    d.create(
        passport_id_stream(c.passport_id),
        ev.Registered,
        passport_id=c.passport_id,
        customer_id=c.customer_id,
        password_hash=d.credentials.hash(c.password.reveal()),
        email=c.email,
        applicant=c.applicant,
        limit=c.limit,
        line_auth=c.line_auth,
        via_provider=c.via_provider,
    )
    d.emit(line, line_ev.PassportAttached, passport_id=c.passport_id, limit=c.limit)
    return cmd.PassportResult(passport_id=c.passport_id, status="in_use")


def decide_change_passport_limit(
    passport: Passport | None,
    line: AccessLine | None,
    c: cmd.ChangePassportLimit,
    d: Decision,
) -> cmd.Done | None:
    """§3: any limit that keeps the sum of the line's ID limits within its cap; lowering it
    below what was spent is allowed (it only stops further purchases)."""
    passport, line = _passport_and_line(passport, line, c.passport_id, d)
    if passport is None or line is None:
        return None
    total = line.limit_sum - passport.limit + c.limit
    d.require(
        total <= line.line_limit,
        lambda: LimitSumExceeded(
            f"limits would add up to {total}, above the line's cap {line.line_limit}"
        ),
    )
    if d.refused:
        return None
    d.emit(passport, ev.LimitChanged, limit=c.limit)
    d.emit(line, line_ev.PassportLimitChanged, passport_id=c.passport_id, limit=c.limit)
    return cmd.Done()


def decide_change_passport_details(
    passport: Passport | None, c: cmd.ChangePassportDetails, d: Decision
) -> cmd.Done | None:
    """§2: password and e-mail may change (purchases are unaffected; a new password unlocks,
    §10) — until the cut-off, after which registration details are view-only."""
    policy = d.policy
    passport = require_passport(passport, c.passport_id, d)
    d.require(
        c.at < policy.registration_cutoff,
        lambda: RegistrationClosed(
            f"registration details are view-only from {tokyo_date(policy.registration_cutoff)}"
        ),
    )
    if passport is None or d.refused:
        return None
    d.emit(
        passport,
        ev.DetailsChanged,
        password_hash=None if c.password is None else d.credentials.hash(c.password.reveal()),
        email=c.email,
    )
    return cmd.Done()


def decide_delete_passport(
    passport: Passport | None,
    line: AccessLine | None,
    subs: Mapping[str, Subscription | None],
    c: cmd.DeletePassport,
    d: Decision,
) -> cmd.DeletionResult | None:
    """§2: deleting a Passport ID cancels its monthly subscriptions at the deletion instant.

    ``subs`` are the subscriptions of its active holdings.
    """
    passport, line = _passport_and_line(passport, line, c.passport_id, d)
    if passport is None or line is None:
        return None
    passport, cancelled = cancel_holdings(passport, subs, sub_ev.CancelReason.PASSPORT_DELETED, d)
    if d.refused:
        return None
    d.emit(passport, ev.PassportDeleted, reason=ev.DeletionReason.CUSTOMER)
    d.emit(line, line_ev.PassportDetached, passport_id=c.passport_id)
    return cmd.DeletionResult(cancelled=tuple(cancelled))


def decide_purchase(
    passport: Passport | None,
    line: AccessLine | None,
    provider: Provider | None,
    c: cmd.Purchase,
    d: Decision,
) -> cmd.PurchaseResult | None:
    """Buy a service or item with a Passport ID (§3, §4, §9, §10).

    Refused when the ID already holds that monthly service (``duplicate``), the line is
    regulated, the ID is locked or the password wrong (counted: ten in a row lock the ID), line
    authentication fails, physical goods are not sold to the line, or the purchase would take
    the ID's spend this month above its limit.  A monthly service bought again in a month it
    is already charged adds nothing to the spend (§4 patterns 4–5).
    """
    policy = d.policy
    passport, line = _passport_and_line(passport, line, c.passport_id, d)
    provider = require_provider(provider, c.provider, d)
    listing = None if provider is None else require_listing(provider, c.service, d)
    if passport is None or line is None:
        return None
    monthly = listing is not None and listing.pricing is Pricing.MONTHLY
    if monthly:
        d.require(
            passport.active_holding(c.provider, c.service) is None,
            lambda: DuplicateError(
                f"Passport ID {c.passport_id!s} already subscribes to {c.provider}/{c.service}"
            ),
        )
    d.require(
        not line.regulated,
        lambda: LineRegulated(f"line {line.customer_id} is regulated: purchases are stopped"),
    )
    if passport.locked:
        d.refuse(
            LockedOut(
                f"Passport ID {c.passport_id!s} is locked after {policy.lockout_after} "
                "wrong passwords; set a new password to unlock it"
            )
        )
    elif not d.credentials.verify(c.password.reveal(), passport.password_hash):
        failures = passport.consecutive_failures + 1
        locked = failures >= policy.lockout_after
        d.emit_security(passport, ev.PasswordRejected, consecutive=failures, locked=locked)
        d.refuse(
            WrongPassword(
                f"wrong password for Passport ID {c.passport_id!s} "
                f"({failures} in a row{'; now locked' if locked else ''})"
            )
        )
    if passport.line_auth:
        # §9: with line authentication on, only the owning line may buy.
        d.require(
            c.presented_line == line.customer_id and line.notifications.get(c.provider, False),
            lambda: LineAuthFailed(
                f"Passport ID {c.passport_id!s} may only buy from its own line with "
                f"line-information notification to {c.provider} on"
            ),
        )
    if provider is not None and provider.goods is Goods.PHYSICAL:
        d.require(
            line.operator is Operator.EAST and c.at >= policy.physical_goods_from,
            lambda: GoodsNotOffered(
                "physical goods are sold only to NTT East lines, from "
                f"{tokyo_date(policy.physical_goods_from)}"
            ),
        )
    if listing is None:
        return None
    month = YearMonth.of(c.at)
    once = policy.monthly_once_per_month
    free = monthly and charging.repurchase_is_free(
        passport.holdings.values(), c.provider, c.service, month, once_per_month=once
    )
    adds = Yen.ZERO if free else listing.price
    spent = passport.spend(month, once_per_month=once)
    d.require(
        spent + adds <= passport.limit,
        lambda: LimitExceeded(
            f"Passport ID {c.passport_id!s} has spent {spent} of its {passport.limit} limit "
            f"in {month}; this purchase adds {adds}"
        ),
    )
    if d.refused:
        return None
    receipt = receipt_number(c.passport_id, passport.purchases + 1)
    d.create(
        subscription_id(receipt),
        sub_ev.Purchased,
        receipt=receipt,
        passport_id=c.passport_id,
        customer_id=line.customer_id,
        provider=c.provider,
        service=c.service,
        service_name=listing.name,
        pricing=listing.pricing,
        price=listing.price,
    )
    d.emit(
        passport,
        ev.HoldingAdded,
        receipt=receipt,
        provider=c.provider,
        service=c.service,
        pricing=listing.pricing,
        price=listing.price,
    )
    return cmd.PurchaseResult(receipt=receipt, price=listing.price, charged=adds)


def decide_cancel(
    sub: Subscription | None, passport: Passport | None, c: cmd.Cancel, d: Decision
) -> cmd.CancelResult | None:
    """Cancel an active monthly-flat subscription at ``at`` (§4; the charging rules decide
    its last charged month)."""
    sub = require_subscription(sub, c.receipt, d)
    if sub is None:
        return None
    d.against(passport, f"Passport ID {sub.passport_id}")
    check_cancellable(sub, d)
    if d.refused:
        return None
    d.emit(sub, sub_ev.Cancelled, reason=sub_ev.CancelReason.CUSTOMER)
    if passport is not None:
        d.emit(passport, ev.HoldingEnded, receipt=c.receipt)
    return cmd.CancelResult(
        receipt=c.receipt, last_charged_month=last_charged_month(sub.purchased_at, c.at)
    )
