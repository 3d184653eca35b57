"""Events of the Passport ID [フレッツ・パスポートID] aggregate."""

from __future__ import annotations

from enum import StrEnum

import attrs

from matome.events.base import DomainEvent, personal, topic
from matome.values import (
    Applicant,
    CustomerId,
    Email,
    PassportId,
    Pricing,
    ProviderCode,
    ServiceCode,
    Yen,
)

__all__ = [
    "DeletionReason",
    "DetailsChanged",
    "HoldingAdded",
    "HoldingEnded",
    "LimitChanged",
    "PassportDeleted",
    "PasswordRejected",
    "Registered",
]


class DeletionReason(StrEnum):
    """Why a Passport ID was deleted."""

    CUSTOMER = "customer"
    LINE_CHANGE = "line_change"


@topic("matome.passport.Registered")
@attrs.frozen(kw_only=True)
class Registered(DomainEvent):
    """A Passport ID was registered on a line.  The password is stored only as a hash."""

    passport_id: PassportId
    customer_id: CustomerId
    password_hash: str
    email: Email = personal()
    applicant: Applicant = personal()
    limit: Yen
    line_auth: bool
    via_provider: ProviderCode | None = None


@topic("matome.passport.LimitChanged")
@attrs.frozen(kw_only=True)
class LimitChanged(DomainEvent):
    """The ID's monthly usage limit changed (lowering below the spend is allowed, §3)."""

    limit: Yen


@topic("matome.passport.DetailsChanged")
@attrs.frozen(kw_only=True)
class DetailsChanged(DomainEvent):
    """Password and/or e-mail changed; purchases are unaffected (§2).  A new password unlocks."""

    password_hash: str | None = None
    email: Email | None = personal(default=None)


@topic("matome.passport.PasswordRejected")
@attrs.frozen(kw_only=True)
class PasswordRejected(DomainEvent):
    """A wrong password was entered; ``consecutive`` failures so far, ``locked`` once disabled."""

    consecutive: int
    locked: bool


@topic("matome.passport.HoldingAdded")
@attrs.frozen(kw_only=True)
class HoldingAdded(DomainEvent):
    """A purchase by this ID, recorded on the ID so that its spend is checked serially (§3)."""

    receipt: str
    provider: ProviderCode
    service: ServiceCode
    pricing: Pricing
    price: Yen


@topic("matome.passport.HoldingEnded")
@attrs.frozen(kw_only=True)
class HoldingEnded(DomainEvent):
    """A monthly subscription of this ID was cancelled (by any cause)."""

    receipt: str


@topic("matome.passport.PassportDeleted")
@attrs.frozen(kw_only=True)
class PassportDeleted(DomainEvent):
    """The ID was deleted; its monthly subscriptions were cancelled at the same instant (§2)."""

    reason: DeletionReason
