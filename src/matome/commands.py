"""Commands of the interchange contract (INTERCHANGE.md, "Command log") and their results.

A command object is valid once constructed: every field is converted and checked at the edge,
so that the engine only decides.  The same classes serve the Python API (fields may be given
as plain ``str``/``int`` or as value types) and the JSON command log (:func:`parse_command`).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import datetime
from enum import StrEnum
from typing import Any, ClassVar, TypeVar

import attrs

from matome.errors import InvalidInput
from matome.values import (
    AccessKey,
    Applicant,
    BillingAccount,
    BillingChangeReason,
    ChangeKind,
    Consolidated,
    CustomerId,
    CustomerNumber,
    Email,
    Goods,
    LiftChannel,
    LineKind,
    Operator,
    PassportId,
    Password,
    PhoneBill,
    Pricing,
    ProviderCode,
    ServiceCode,
    YearMonth,
    Yen,
    billing_from_json,
    parse_enum,
    require_aware,
)

__all__ = [
    "COMMANDS",
    "CancelResult",
    "Command",
    "Done",
    "IssueResult",
    "LineChangeResult",
    "LineResult",
    "PassportResult",
    "PurchaseResult",
    "RefundResult",
    "RegulationResult",
    "Result",
    "parse_command",
]

V = TypeVar("V")


# ---------------------------------------------------------------------------------------------
# Field converters (they raise InvalidInput, naming the field)


def _value(cls: Callable[[Any], V]) -> Callable[[Any], V]:
    def convert(v: Any) -> V:
        return v if isinstance(v, cls) else cls(v)  # type: ignore[arg-type]

    return convert


def _optional(conv: Callable[[Any], V]) -> Callable[[Any], V | None]:
    return lambda v: None if v is None else conv(v)


def _yen(what: str) -> Callable[[Any], Yen]:
    return lambda v: Yen.non_negative(v.amount if isinstance(v, Yen) else v, what)


def _flag(what: str) -> Callable[[Any], bool]:
    def convert(v: Any) -> bool:
        if not isinstance(v, bool):
            raise InvalidInput(f"{what} must be true or false, got {v!r}")
        return v

    return convert


def _label(what: str, max_len: int = 200) -> Callable[[Any], str]:
    def convert(v: Any) -> str:
        if not isinstance(v, str) or not v.strip() or len(v) > max_len:
            raise InvalidInput(f"{what} must be a non-blank string of at most {max_len} characters")
        return v

    return convert


E = TypeVar("E", bound=StrEnum)


def _enum(enum: type[E], what: str) -> Callable[[Any], E]:
    return lambda v: parse_enum(enum, v, what)


def _at(v: Any) -> datetime:
    if isinstance(v, str):
        try:
            v = datetime.fromisoformat(v)
        except ValueError:
            raise InvalidInput(f"at {v!r} is not an ISO-8601 time") from None
    return require_aware(v, "at")


def _billing(v: Any) -> BillingAccount:
    if isinstance(v, PhoneBill | CustomerNumber | Consolidated):
        return v
    return billing_from_json(v)


def _applicant(v: Any) -> Applicant:
    if isinstance(v, Applicant):
        return v
    if not isinstance(v, dict):
        raise InvalidInput("applicant must be an object with name, phone, contract_holder")
    expected = {"name", "phone", "contract_holder"}
    if set(v) != expected:
        raise InvalidInput(
            f"applicant must have exactly the fields name, phone, contract_holder; got {sorted(v)}"
        )
    return Applicant(name=v["name"], phone=v["phone"], contract_holder=v["contract_holder"])


def _key(v: Any) -> str | None:
    if v is None:
        return None
    if not isinstance(v, str) or not 1 <= len(v) <= 200:
        raise InvalidInput("key must be a string of 1–200 characters")
    return v


def _receipt(v: Any) -> str:
    if not isinstance(v, str) or not 1 <= len(v) <= 64:
        raise InvalidInput("receipt must be a receipt number string")
    return v


# ---------------------------------------------------------------------------------------------
# Commands


@attrs.frozen(kw_only=True)
class Command:
    """Base of every command: business time ``at`` and an optional idempotency ``key``."""

    NAME: ClassVar[str] = ""
    #: Fields holding secrets: left out of idempotency digests and never echoed.
    SECRETS: ClassVar[tuple[str, ...]] = ()

    at: datetime = attrs.field(converter=_at)
    key: str | None = attrs.field(default=None, converter=_key)


COMMANDS: dict[str, type[Command]] = {}
C = TypeVar("C", bound=type[Command])


def _command(name: str) -> Callable[[C], C]:
    def register(cls: C) -> C:
        cls.NAME = name
        COMMANDS[name] = cls
        return cls

    return register


@_command("open_line")
@attrs.frozen(kw_only=True)
class OpenLine(Command):
    SECRETS = ("access_key",)
    customer_id: CustomerId = attrs.field(converter=_value(CustomerId))
    operator: Operator = attrs.field(converter=_enum(Operator, "operator"))
    kind: LineKind = attrs.field(converter=_enum(LineKind, "kind"))
    access_key: AccessKey = attrs.field(converter=_value(AccessKey))
    line_limit: Yen = attrs.field(converter=_yen("line_limit"))
    billing: BillingAccount = attrs.field(converter=_billing)


@_command("change_line_limit")
@attrs.frozen(kw_only=True)
class ChangeLineLimit(Command):
    customer_id: CustomerId = attrs.field(converter=_value(CustomerId))
    line_limit: Yen = attrs.field(converter=_yen("line_limit"))


@_command("change_billing")
@attrs.frozen(kw_only=True)
class ChangeBilling(Command):
    customer_id: CustomerId = attrs.field(converter=_value(CustomerId))
    billing: BillingAccount = attrs.field(converter=_billing)
    reason: BillingChangeReason = attrs.field(converter=_enum(BillingChangeReason, "reason"))

    def __attrs_post_init__(self) -> None:
        # §6: each reason names the kind of account it leads to.
        expected = {
            BillingChangeReason.RENUMBERING: PhoneBill,
            BillingChangeReason.BILLING_PHONE_CHANGE: PhoneBill,
            BillingChangeReason.CUSTOMER_NUMBER: CustomerNumber,
            BillingChangeReason.WIDE_AREA_CONSOLIDATED: Consolidated,
        }[self.reason]
        if not isinstance(self.billing, expected):
            raise InvalidInput(
                f"reason {self.reason.value!r} needs a {expected.method} billing account, "
                f"not {self.billing.method}"
            )


@_command("change_line")
@attrs.frozen(kw_only=True)
class ChangeLine(Command):
    customer_id: CustomerId = attrs.field(converter=_value(CustomerId))
    change: ChangeKind = attrs.field(converter=_enum(ChangeKind, "change"))
    new_customer_id: CustomerId | None = attrs.field(
        default=None, converter=_optional(_value(CustomerId))
    )
    new_kind: LineKind | None = attrs.field(
        default=None, converter=_optional(_enum(LineKind, "new_kind"))
    )


@_command("regulate_line")
@attrs.frozen(kw_only=True)
class RegulateLine(Command):
    customer_id: CustomerId = attrs.field(converter=_value(CustomerId))


@_command("lift_regulation")
@attrs.frozen(kw_only=True)
class LiftRegulation(Command):
    customer_id: CustomerId = attrs.field(converter=_value(CustomerId))
    channel: LiftChannel = attrs.field(converter=_enum(LiftChannel, "channel"))


@_command("set_notification")
@attrs.frozen(kw_only=True)
class SetNotification(Command):
    customer_id: CustomerId = attrs.field(converter=_value(CustomerId))
    provider: ProviderCode = attrs.field(converter=_value(ProviderCode))
    notify: bool = attrs.field(converter=_flag("notify"))
    consent: bool = attrs.field(converter=_flag("consent"))
    channel: str = attrs.field(converter=_label("channel", 40))


@_command("register_provider")
@attrs.frozen(kw_only=True)
class RegisterProvider(Command):
    provider: ProviderCode = attrs.field(converter=_value(ProviderCode))
    name: str = attrs.field(converter=_label("name"))
    contact: str = attrs.field(converter=_label("contact"))
    goods: Goods = attrs.field(converter=_enum(Goods, "goods"))


@_command("list_service")
@attrs.frozen(kw_only=True)
class ListService(Command):
    provider: ProviderCode = attrs.field(converter=_value(ProviderCode))
    service: ServiceCode = attrs.field(converter=_value(ServiceCode))
    name: str = attrs.field(converter=_label("name"))
    pricing: Pricing = attrs.field(converter=_enum(Pricing, "pricing"))
    price: Yen = attrs.field(converter=_yen("price"))


@_command("register_passport")
@attrs.frozen(kw_only=True)
class RegisterPassport(Command):
    SECRETS = ("password",)
    customer_id: CustomerId = attrs.field(converter=_value(CustomerId))
    passport_id: PassportId = attrs.field(converter=_value(PassportId))
    password: Password = attrs.field(converter=_value(Password))
    email: Email = attrs.field(converter=_value(Email))
    applicant: Applicant = attrs.field(converter=_applicant)
    limit: Yen = attrs.field(converter=_yen("limit"))
    line_auth: bool = attrs.field(converter=_flag("line_auth"))
    via_provider: ProviderCode | None = attrs.field(
        default=None, converter=_optional(_value(ProviderCode))
    )


@_command("change_passport_limit")
@attrs.frozen(kw_only=True)
class ChangePassportLimit(Command):
    passport_id: PassportId = attrs.field(converter=_value(PassportId))
    limit: Yen = attrs.field(converter=_yen("limit"))


@_command("change_passport_details")
@attrs.frozen(kw_only=True)
class ChangePassportDetails(Command):
    SECRETS = ("password",)
    passport_id: PassportId = attrs.field(converter=_value(PassportId))
    password: Password | None = attrs.field(default=None, converter=_optional(_value(Password)))
    email: Email | None = attrs.field(default=None, converter=_optional(_value(Email)))

    def __attrs_post_init__(self) -> None:
        if self.password is None and self.email is None:
            raise InvalidInput("change_passport_details needs a new password, email, or both")


@_command("delete_passport")
@attrs.frozen(kw_only=True)
class DeletePassport(Command):
    passport_id: PassportId = attrs.field(converter=_value(PassportId))


@_command("purchase")
@attrs.frozen(kw_only=True)
class Purchase(Command):
    SECRETS = ("password",)
    passport_id: PassportId = attrs.field(converter=_value(PassportId))
    password: Password = attrs.field(converter=_value(Password))
    provider: ProviderCode = attrs.field(converter=_value(ProviderCode))
    service: ServiceCode = attrs.field(converter=_value(ServiceCode))
    presented_line: CustomerId | None = attrs.field(
        default=None, converter=_optional(_value(CustomerId))
    )


@_command("cancel")
@attrs.frozen(kw_only=True)
class Cancel(Command):
    receipt: str = attrs.field(converter=_receipt)


@_command("refund")
@attrs.frozen(kw_only=True)
class Refund(Command):
    receipt: str = attrs.field(converter=_receipt)
    amount: Yen = attrs.field(converter=_yen("amount"))
    reason: str = attrs.field(converter=_label("reason"))

    def __attrs_post_init__(self) -> None:
        if self.amount.amount == 0:
            raise InvalidInput("refund amount must be at least 1 yen")


@_command("issue_bills")
@attrs.frozen(kw_only=True)
class IssueBills(Command):
    month: YearMonth = attrs.field(
        converter=lambda v: v if isinstance(v, YearMonth) else YearMonth.parse(v)
    )


# ---------------------------------------------------------------------------------------------
# Results


@attrs.frozen(kw_only=True)
class Result:
    """Base of command results; :meth:`to_json` gives the contract's data fields."""

    def to_json(self) -> dict[str, Any]:
        from matome.wire import converter

        data: dict[str, Any] = converter.unstructure(self)
        return data


@attrs.frozen(kw_only=True)
class Done(Result):
    """An accepted command with nothing more to say."""


@attrs.frozen(kw_only=True)
class LineResult(Result):
    customer_id: CustomerId


@attrs.frozen(kw_only=True)
class PassportResult(Result):
    passport_id: PassportId
    status: str


@attrs.frozen(kw_only=True)
class PurchaseResult(Result):
    """A purchase's receipt number [申込受付番号] and price; ``charged`` is what it added to
    the ID's spend this month (0 for a monthly service re-bought in a month already charged)."""

    receipt: str
    price: Yen
    charged: Yen


@attrs.frozen(kw_only=True)
class CancelResult(Result):
    receipt: str
    last_charged_month: YearMonth | None


@attrs.frozen(kw_only=True)
class RefundResult(Result):
    receipt: str
    refunded_total: Yen


@attrs.frozen(kw_only=True)
class RegulationResult(Result):
    regulated: bool
    cancelled: tuple[str, ...] = ()


@attrs.frozen(kw_only=True)
class LineChangeResult(Result):
    kept: bool
    new_customer_id: CustomerId | None
    cancelled: tuple[str, ...] = ()
    deleted: tuple[PassportId, ...] = ()


@attrs.frozen(kw_only=True)
class DeletionResult(Result):
    cancelled: tuple[str, ...] = ()


@attrs.frozen(kw_only=True)
class IssueResult(Result):
    month: YearMonth
    closed: tuple[YearMonth, ...] = ()


# ---------------------------------------------------------------------------------------------
# JSON command log


def parse_command(obj: Mapping[str, Any]) -> Command:
    """A command from one JSON object of a command log; anything off is ``invalid_input``."""
    if not isinstance(obj, Mapping):
        raise InvalidInput("a command must be a JSON object")
    name = obj.get("command")
    if not isinstance(name, str) or name not in COMMANDS:
        raise InvalidInput(f"unknown command {name!r}; known: {', '.join(sorted(COMMANDS))}")
    cls = COMMANDS[name]
    fields = {f.name: f for f in attrs.fields(cls)}
    body = {k: v for k, v in obj.items() if k != "command"}
    unknown = sorted(set(body) - set(fields))
    if unknown:
        raise InvalidInput(f"{name}: unknown field(s): {', '.join(unknown)}")
    missing = sorted(n for n, f in fields.items() if f.default is attrs.NOTHING and n not in body)
    if missing:
        raise InvalidInput(f"{name}: missing field(s): {', '.join(missing)}")
    try:
        return cls(**body)
    except InvalidInput as e:
        raise InvalidInput(f"{name}: {e.message}") from None
    except (TypeError, ValueError) as e:  # a converter met a type it cannot read
        raise InvalidInput(f"{name}: {e}") from None
