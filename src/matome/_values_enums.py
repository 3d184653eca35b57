"""The enumerations of the contract (rules §1, §5, §6, §10): operators, line kinds, pricing,
goods, line changes and their table, billing-number changes, reset and lift channels.

Re-exported by :mod:`matome.values`, whose :func:`~matome.values.parse_enum` reads them.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Protocol


class _Identified(Protocol):
    """What :meth:`Operator.accepts` reads of a ``matome.values.CustomerId`` (named by its
    shape: matome.values imports this module, so this module does not import it back)."""

    @property
    def value(self) -> str: ...


class Operator(StrEnum):
    """NTT West or NTT East."""

    WEST = "west"
    EAST = "east"

    def accepts(self, customer_id: _Identified) -> bool:
        """West uses ``CAF`` IDs only; East uses ``CAF`` and ``COP`` (rules §1)."""
        return self is Operator.EAST or customer_id.value.startswith("CAF")

    def other(self) -> Operator:
        return Operator.EAST if self is Operator.WEST else Operator.WEST


class LineKind(StrEnum):
    """The access-line kinds that may hold Passport IDs (rules §1, "Line kinds")."""

    HIKARI_NEXT = "hikari_next"
    HIKARI_LIGHT = "hikari_light"
    HIKARI_LIGHT_PLUS = "hikari_light_plus"
    B_FLETS = "b_flets"
    FLETS_ADSL = "flets_adsl"

    @property
    def has_line_auth(self) -> bool:
        """Line authentication [回線認証] exists for the Hikari kinds only (rules §9)."""
        return self in (LineKind.HIKARI_NEXT, LineKind.HIKARI_LIGHT, LineKind.HIKARI_LIGHT_PLUS)

    @property
    def is_next_or_light(self) -> bool:
        """Hikari Next or Hikari Light: between these two is a menu change (rules §6)."""
        return self in (LineKind.HIKARI_NEXT, LineKind.HIKARI_LIGHT)

    def offered_by(self, operator: Operator) -> bool:
        """NTT West sells Hikari Next and Hikari Light only; East sells all five."""
        return operator is Operator.EAST or self in (LineKind.HIKARI_NEXT, LineKind.HIKARI_LIGHT)


class Pricing(StrEnum):
    """Pricing type [料金タイプ]: monthly flat [月額定額] or per purchase [都度課金]."""

    MONTHLY = "monthly"
    PER_PURCHASE = "per_purchase"


class Goods(StrEnum):
    """What a provider sells: information services, or physical goods (NTT West's guide
    includes them; NTT East lines from 2012-06-05)."""

    INFORMATION = "information"
    PHYSICAL = "physical"


class ChangeKind(StrEnum):
    """Line changes [異動] of the continuity table (rules §6).

    The table itself — which changes keep the service, which end the line, which may carry a
    new customer ID or a new kind — is written once, in the properties below; the line's rules
    (:func:`matome.aggregates.line.line_change_rule`) and the command's own checks read it.
    """

    RELOCATION = "relocation"  # 設置場所変更
    ITEM_CHANGE = "item_change"  # 品目変更
    MENU_CHANGE = "menu_change"  # メニュー変更 (Hikari Next ⇄ Hikari Light)
    CANCELLATION = "cancellation"  # 解約
    TRANSFER = "transfer"  # 譲渡・継承
    RENAME = "rename"  # 改称
    AREA_MOVE = "area_move"  # West ⇄ East
    COLLABO_CONVERSION = "collabo_conversion"  # 転用

    @property
    def keeps_service(self) -> bool:
        """The service continues — as long as the customer ID stays the same (§6: a move or an
        item change with a new customer ID ends it; a rename never takes a new ID)."""
        return self in (ChangeKind.RELOCATION, ChangeKind.ITEM_CHANGE, ChangeKind.RENAME)

    @property
    def ends_line(self) -> bool:
        """The line itself is finished: the customer leaves, or moves to the other company."""
        return self in (
            ChangeKind.CANCELLATION,
            ChangeKind.AREA_MOVE,
            ChangeKind.COLLABO_CONVERSION,
        )

    @property
    def takes_new_customer_id(self) -> bool:
        """The line may carry on under a new customer ID (not when it ends, nor on a rename)."""
        return not self.ends_line and self is not ChangeKind.RENAME

    @property
    def takes_new_kind(self) -> bool:
        """The change may name a new line kind (a menu change must)."""
        return self in (ChangeKind.MENU_CHANGE, ChangeKind.ITEM_CHANGE)


class BillingChangeReason(StrEnum):
    """Changes of the billing number that keep the service (rules §6)."""

    RENUMBERING = "renumbering"
    BILLING_PHONE_CHANGE = "billing_phone_change"
    CUSTOMER_NUMBER = "customer_number"
    WIDE_AREA_CONSOLIDATED = "wide_area_consolidated"


class ResetChannel(StrEnum):
    """How a password reset was requested of the operator [電話・書面] (rules §10)."""

    PHONE = "phone"
    WRITTEN = "written"


class LiftChannel(StrEnum):
    """How a lift of regulation was applied for: only ``written`` is accepted (rules §5)."""

    WRITTEN = "written"
    ONLINE = "online"
