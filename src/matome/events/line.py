"""Events of the access line [フレッツ・アクセスサービス回線] aggregate."""

from __future__ import annotations

import attrs

from matome.events.base import DomainEvent, topic
from matome.values import (
    BillingAccount,
    BillingChangeReason,
    ChangeKind,
    CustomerId,
    LiftChannel,
    LineKind,
    Operator,
    PassportId,
    ProviderCode,
    Yen,
)

__all__ = [
    "AccessKeyRehashed",
    "BillingChanged",
    "LineLimitChanged",
    "LineMoved",
    "LineOpened",
    "NotificationSet",
    "PassportAttached",
    "PassportDetached",
    "PassportLimitChanged",
    "Regulated",
    "RegulationLifted",
]


@topic("matome.line.LineOpened")
@attrs.frozen(kw_only=True)
class LineOpened(DomainEvent):
    """A line joined the service.  ``predecessor`` is set when a line change gave it a new ID."""

    customer_id: CustomerId
    operator: Operator
    kind: LineKind
    access_key_hash: str
    line_limit: Yen
    billing: BillingAccount
    predecessor: CustomerId | None = None


@topic("matome.line.AccessKeyRehashed")
@attrs.frozen(kw_only=True)
class AccessKeyRehashed(DomainEvent):
    """The access key, accepted by a command, was hashed again in the current scheme: its
    stored hash was of an older one (rules §10).  The same key: nothing else changes."""

    access_key_hash: str


@topic("matome.line.LineLimitChanged")
@attrs.frozen(kw_only=True)
class LineLimitChanged(DomainEvent):
    """The line's monthly cap [ご利用限度額] changed."""

    line_limit: Yen


@topic("matome.line.BillingChanged")
@attrs.frozen(kw_only=True)
class BillingChanged(DomainEvent):
    """The billing account changed; the service continues (rules §6)."""

    billing: BillingAccount
    reason: BillingChangeReason


@topic("matome.line.LineMoved")
@attrs.frozen(kw_only=True)
class LineMoved(DomainEvent):
    """A line change [異動] was applied: one row of the continuity table (rules §6).

    ``kept`` says whether the collect-on-behalf service continues; when it does not,
    ``cancelled`` lists the receipts of the monthly subscriptions cancelled and ``deleted`` the
    Passport IDs deleted at this instant.  ``ended`` says the line record itself is finished
    (a terminal change, or the line continues under ``new_customer_id``).
    """

    change: ChangeKind
    kept: bool
    ended: bool
    new_customer_id: CustomerId | None = None
    new_kind: LineKind | None = None
    cancelled: tuple[str, ...] = ()
    deleted: tuple[PassportId, ...] = ()


@topic("matome.line.Regulated")
@attrs.frozen(kw_only=True)
class Regulated(DomainEvent):
    """Usage regulation [利用規制] set; ``cancelled`` are the subscriptions it ended (§5)."""

    cancelled: tuple[str, ...] = ()


@topic("matome.line.RegulationLifted")
@attrs.frozen(kw_only=True)
class RegulationLifted(DomainEvent):
    """Regulation lifted on a written application [書面]."""

    channel: LiftChannel


@topic("matome.line.NotificationSet")
@attrs.frozen(kw_only=True)
class NotificationSet(DomainEvent):
    """Line-information notification [回線情報通知] for one provider, set with consent (§9)."""

    provider: ProviderCode
    notify: bool
    channel: str


@topic("matome.line.PassportAttached")
@attrs.frozen(kw_only=True)
class PassportAttached(DomainEvent):
    """A Passport ID was registered on this line with its monthly limit."""

    passport_id: PassportId
    limit: Yen


@topic("matome.line.PassportLimitChanged")
@attrs.frozen(kw_only=True)
class PassportLimitChanged(DomainEvent):
    """One of the line's Passport IDs got a new limit (the line guards the sum, §3)."""

    passport_id: PassportId
    limit: Yen


@topic("matome.line.PassportDetached")
@attrs.frozen(kw_only=True)
class PassportDetached(DomainEvent):
    """A Passport ID was deleted from this line."""

    passport_id: PassportId
