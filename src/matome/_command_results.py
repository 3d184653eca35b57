"""The results of the commands (:mod:`matome.commands` re-exports them)."""

from __future__ import annotations

from typing import Any

import attrs

from matome.values import CustomerId, PassportId, YearMonth, Yen
from matome.wire import to_json

__all__ = [
    "CancelResult",
    "DeletionResult",
    "Done",
    "IssueResult",
    "LineChangeResult",
    "LineResult",
    "PassportResult",
    "PurchaseResult",
    "RefundResult",
    "RegulationResult",
    "Result",
]


# ---------------------------------------------------------------------------------------------
# Results


@attrs.frozen(kw_only=True)
class Result:
    """Base of command results; :meth:`to_json` gives the contract's data fields."""

    def to_json(self) -> dict[str, Any]:
        data: dict[str, Any] = to_json(self)
        return data


@attrs.frozen(kw_only=True)
class Done(Result):
    """An accepted command with nothing more to say."""


@attrs.frozen(kw_only=True)
class LineResult(Result):
    """An accepted ``open_line``: the customer ID of the line opened."""

    customer_id: CustomerId


@attrs.frozen(kw_only=True)
class PassportResult(Result):
    """An accepted ``register_passport``: the Passport ID and its usage status."""

    passport_id: PassportId
    status: str


@attrs.frozen(kw_only=True)
class PurchaseResult(Result):
    """A purchase's receipt number [申込受付番号] and price; ``charged`` is what it added to
    the ID's spend this month (0 for a monthly service re-bought in a month already charged)."""

    receipt: str
    price: Yen
    charged: Yen
    #: Items bought (per-purchase items, §4); ``charged`` is ``price`` × ``quantity`` then.
    quantity: int = 1


@attrs.frozen(kw_only=True)
class CancelResult(Result):
    """An accepted ``cancel``: the receipt and the last month charged (``None``: none)."""

    receipt: str
    last_charged_month: YearMonth | None


@attrs.frozen(kw_only=True)
class RefundResult(Result):
    """An accepted ``refund``: the receipt and everything refunded for it so far."""

    receipt: str
    refunded_total: Yen


@attrs.frozen(kw_only=True)
class RegulationResult(Result):
    """``regulate_line`` / ``lift_regulation``: whether the line is now regulated, and the
    receipts of the subscriptions a regulation cancelled (§5)."""

    regulated: bool
    cancelled: tuple[str, ...] = ()


@attrs.frozen(kw_only=True)
class LineChangeResult(Result):
    """An accepted ``change_line``: whether the Passport IDs were kept, the new customer ID
    (if any), and the subscriptions cancelled and IDs deleted by the change (§6)."""

    kept: bool
    new_customer_id: CustomerId | None
    cancelled: tuple[str, ...] = ()
    deleted: tuple[PassportId, ...] = ()


@attrs.frozen(kw_only=True)
class DeletionResult(Result):
    """An accepted ``delete_passport``: the receipts of the subscriptions it cancelled."""

    cancelled: tuple[str, ...] = ()


@attrs.frozen(kw_only=True)
class IssueResult(Result):
    """An accepted ``issue_bills``: the month asked for and every month it closed (§7)."""

    month: YearMonth
    closed: tuple[YearMonth, ...] = ()
