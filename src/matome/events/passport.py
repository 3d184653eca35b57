"""Events of the Passport ID [フレッツ・パスポートID] aggregate."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any, ClassVar

import attrs

from matome.events.base import DomainEvent, personal, topic
from matome.values import (
    Applicant,
    CustomerId,
    Email,
    Erased,
    PassportId,
    Pricing,
    ProviderCode,
    ResetChannel,
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
    "PasswordAccepted",
    "PasswordRehashed",
    "PasswordRejected",
    "PasswordReset",
    "PersonalDataErased",
    "Registered",
]


class DeletionReason(StrEnum):
    """Why a Passport ID was deleted."""

    CUSTOMER = "customer"
    LINE_CHANGE = "line_change"


@topic("matome.passport.Registered")
@attrs.frozen(kw_only=True)
class Registered(DomainEvent):
    """A Passport ID was registered on a line.  The password is stored only as a hash.

    Version 2 (matome 0.2): the personal values (e-mail, applicant) are kept apart from the
    stored event, which holds a reference and a salted digest; they read as
    :class:`~matome.values.Erased` once erased.  Version 1 stored them in clear (same shape
    once read).
    """

    class_version: ClassVar[int] = 2

    passport_id: PassportId
    customer_id: CustomerId
    password_hash: str
    email: Email | Erased = personal()
    applicant: Applicant | Erased = personal()
    limit: Yen
    line_auth: bool
    via_provider: ProviderCode | None = None

    @staticmethod
    def upcast_v1_v2(state: dict[str, Any]) -> None:
        pass  # the values were stored in clear: read as they are


@topic("matome.passport.LimitChanged")
@attrs.frozen(kw_only=True)
class LimitChanged(DomainEvent):
    """The ID's monthly usage limit changed (lowering below the spend is allowed, §3)."""

    limit: Yen


@topic("matome.passport.DetailsChanged")
@attrs.frozen(kw_only=True)
class DetailsChanged(DomainEvent):
    """Password, e-mail and/or line authentication changed; purchases are unaffected (§2).
    A new password unlocks the ID (§10).

    Version 2 (contract 2): ``line_auth`` (``None``: unchanged).  Version 3 (matome 0.2): the
    e-mail is kept apart from the stored event (see :class:`Registered`).
    """

    class_version: ClassVar[int] = 3
    #: A new password (when ``password_hash`` is set) replaces the secret.
    REPLACES_SECRET: ClassVar[bool] = True
    #: A new e-mail replaces the earlier ones at once (Contract 3, erasure): the store keeps
    #: no readable copy of an old e-mail.
    REPLACES_PERSONAL: ClassVar[tuple[str, ...]] = ("email",)

    password_hash: str | None = None
    email: Email | Erased | None = personal(default=None)
    line_auth: bool | None = None

    @staticmethod
    def upcast_v1_v2(state: dict[str, Any]) -> None:
        state["line_auth"] = None

    @staticmethod
    def upcast_v2_v3(state: dict[str, Any]) -> None:
        pass  # the e-mail was stored in clear: read as it is


@topic("matome.passport.PasswordReset")
@attrs.frozen(kw_only=True)
class PasswordReset(DomainEvent):
    """The operator set a new password on a phone or written request [電話・書面]; it unlocks
    the ID and clears the count of wrong passwords (§10)."""

    REPLACES_SECRET: ClassVar[bool] = True

    password_hash: str
    channel: ResetChannel


@topic("matome.passport.PasswordRejected")
@attrs.frozen(kw_only=True)
class PasswordRejected(DomainEvent):
    """A wrong password was entered; ``consecutive`` failures so far, ``locked`` once disabled."""

    consecutive: int
    locked: bool


@topic("matome.passport.PasswordAccepted")
@attrs.frozen(kw_only=True)
class PasswordAccepted(DomainEvent):
    """A correct password ended a run of wrong ones (a cancellation; a purchase says so by its
    ``HoldingAdded``): the count starts again from zero (§10)."""


@topic("matome.passport.PasswordRehashed")
@attrs.frozen(kw_only=True)
class PasswordRehashed(DomainEvent):
    """The password, accepted by a command, was hashed again in the current scheme: its
    stored hash was of an older one (an scrypt hash of matome before Argon2id, a migrated
    hash below the current parameters; rules §10).  The same password: nothing else changes,
    not even the ID's business clock."""

    password_hash: str


@topic("matome.passport.HoldingAdded")
@attrs.frozen(kw_only=True)
class HoldingAdded(DomainEvent):
    """A purchase by this ID, recorded on the ID so that its spend is checked serially (§3).

    ``rebought`` is a fact the purchase decided, so that replaying the event never decides it
    again under today's rules: the monthly service was bought while this ID's earlier
    subscription to it was already charged in the purchase month (§4 patterns 4–5; under the
    once-per-month policy its first month is not charged, and a refund finds nothing to refund
    for it).  Always false for a per-purchase item.

    Version 2 (contract 2): ``quantity`` of a per-purchase item (``price`` is the unit price).
    Version 3 (contract 3, docs/rules.md §11): ``period_ends_at`` as on the purchase's
    ``Purchased``: a monthly holding is not charged past it.
    Version 4: ``rebought``.  Events recorded before it did not carry the fact: they upcast
    to ``None``, and the Passport's applier derives it for them as it always did (from the
    holdings before the event), so old stores replay exactly as they did.
    """

    class_version: ClassVar[int] = 4

    receipt: str
    provider: ProviderCode
    service: ServiceCode
    pricing: Pricing
    price: Yen
    quantity: int = 1
    period_ends_at: datetime | None = None
    rebought: bool | None = None

    @staticmethod
    def upcast_v1_v2(state: dict[str, Any]) -> None:
        state["quantity"] = 1

    @staticmethod
    def upcast_v2_v3(state: dict[str, Any]) -> None:
        state["period_ends_at"] = None

    @staticmethod
    def upcast_v3_v4(state: dict[str, Any]) -> None:
        # Not recorded then, and not derivable from this event alone (it depends on the ID's
        # holdings before it): the applier derives it, as the v3 applier did.
        state["rebought"] = None


@topic("matome.passport.HoldingEnded")
@attrs.frozen(kw_only=True)
class HoldingEnded(DomainEvent):
    """A monthly subscription of this ID was cancelled (by any cause)."""

    receipt: str


@topic("matome.passport.PersonalDataErased")
@attrs.frozen(kw_only=True)
class PersonalDataErased(DomainEvent):
    """The applicant's name, phone and e-mail of this Passport ID — every version of them —
    were erased on request; bills and hash chains are untouched (they never held them)."""

    #: Recording this event erases the ID's personal values in the same transaction.
    ERASES_PERSONAL_DATA: ClassVar[bool] = True

    reason: str


@topic("matome.passport.PassportDeleted")
@attrs.frozen(kw_only=True)
class PassportDeleted(DomainEvent):
    """The ID was deleted; its monthly subscriptions were cancelled at the same instant (§2)."""

    reason: DeletionReason
