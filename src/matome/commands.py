"""Commands of the interchange contract (docs/contract.md, "Command log") and their results.

A command object is valid once constructed: every field is converted and checked at the edge,
so that the engine only decides.  The same classes serve the Python API (fields may be given
as plain ``str``/``int`` or as value types) and the JSON command log (:func:`parse_command`).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from datetime import datetime
from enum import StrEnum
from typing import Any, ClassVar, Generic, TypeVar, get_args, get_origin

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
    ResetChannel,
    ServiceCode,
    YearMonth,
    Yen,
    billing_from_json,
    parse_enum,
    require_aware,
    require_in_range,
    require_month_in_range,
    require_text,
)
from matome.wire import to_json

__all__ = [
    "COMMANDS",
    "CONTRACTS",
    "DEFAULT_CONTRACT",
    "LATEST_CONTRACT",
    "CancelResult",
    "Command",
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
    "admit",
    "check_contract",
    "parse_command",
]

V = TypeVar("V")


# ---------------------------------------------------------------------------------------------
# Field converters (they raise InvalidInput, naming the field)


def _value(cls: Callable[[Any], V]) -> Callable[[Any], V]:
    def convert(v: Any) -> V:
        return v if isinstance(v, cls) else cls(v)  # type: ignore[arg-type]

    return convert


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
        return require_text(v, what)

    return convert


E = TypeVar("E", bound=StrEnum)


def _enum(enum: type[E], what: str) -> Callable[[Any], E]:
    return lambda v: parse_enum(enum, v, what)


def _at(v: datetime | str) -> datetime:
    if isinstance(v, str):
        try:
            v = datetime.fromisoformat(v)
        except ValueError:
            raise InvalidInput(f"at {v!r} is not an ISO-8601 time") from None
    return require_in_range(require_aware(v, "at"), "at")


def _billing(v: BillingAccount | Mapping[str, Any]) -> BillingAccount:
    if isinstance(v, PhoneBill | CustomerNumber | Consolidated):
        return v
    return billing_from_json(v)


def _applicant(v: Applicant | Mapping[str, Any]) -> Applicant:
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


def _key(v: str | None) -> str | None:
    if v is None:
        return None
    if not isinstance(v, str) or not 1 <= len(v) <= 200:
        raise InvalidInput("key must be a string of 1–200 characters")
    return require_text(v, "key")


def _receipt(v: str) -> str:
    if not isinstance(v, str) or not 1 <= len(v) <= 64:
        raise InvalidInput("receipt must be a receipt number string")
    return require_text(v, "receipt")


def _to_optional_receipt(v: str | None) -> str | None:
    return None if v is None else _receipt(v)


def _to_optional_ref(v: str | None) -> str | None:
    # A client's own name for a purchase, so that a log can cancel or refund it without
    # predicting the receipt number the engine will give it.
    if v is None:
        return None
    if not isinstance(v, str) or not 1 <= len(v) <= 64 or not v.isprintable():
        raise InvalidInput("a purchase reference must be 1–64 printable characters")
    return require_text(v, "ref")


def _one_purchase(c: Any) -> None:
    if (c.receipt is None) == (c.purchase_ref is None):
        raise InvalidInput(f"{c.NAME} names its purchase by receipt or by purchase_ref (one)")


# Named converters: the attrs mypy plugin only understands named functions.


def _to_access_key(v: AccessKey | str) -> AccessKey:
    return _value(AccessKey)(v)


def _to_amount_yen(v: Yen | int) -> Yen:
    return _yen("amount")(v)


def _to_change_changekind(v: ChangeKind | str) -> ChangeKind:
    return _enum(ChangeKind, "change")(v)


def _to_channel_label(v: str) -> str:
    return _label("channel", 40)(v)


def _to_channel_liftchannel(v: LiftChannel | str) -> LiftChannel:
    return _enum(LiftChannel, "channel")(v)


def _to_consent_flag(v: bool) -> bool:
    return _flag("consent")(v)


def _to_contact_label(v: str) -> str:
    return _label("contact")(v)


def _to_customer_id(v: CustomerId | str) -> CustomerId:
    return _value(CustomerId)(v)


def _to_email(v: Email | str) -> Email:
    return _value(Email)(v)


def _to_goods_goods(v: Goods | str) -> Goods:
    return _enum(Goods, "goods")(v)


def _to_kind_linekind(v: LineKind | str) -> LineKind:
    return _enum(LineKind, "kind")(v)


def _to_limit_yen(v: Yen | int) -> Yen:
    return _yen("limit")(v)


def _to_line_auth_flag(v: bool) -> bool:
    return _flag("line_auth")(v)


def _to_line_limit_yen(v: Yen | int) -> Yen:
    return _yen("line_limit")(v)


def _to_name_label(v: str) -> str:
    return _label("name")(v)


def _to_notify_flag(v: bool) -> bool:
    return _flag("notify")(v)


def _to_operator_operator(v: Operator | str) -> Operator:
    return _enum(Operator, "operator")(v)


def _to_passport_id(v: PassportId | str) -> PassportId:
    return _value(PassportId)(v)


def _to_password(v: Password | str) -> Password:
    return _value(Password)(v)


def _to_price_yen(v: Yen | int) -> Yen:
    return _yen("price")(v)


def _to_pricing_pricing(v: Pricing | str) -> Pricing:
    return _enum(Pricing, "pricing")(v)


def _to_provider(v: ProviderCode | str) -> ProviderCode:
    return _value(ProviderCode)(v)


def _to_reason_billingchangereason(v: BillingChangeReason | str) -> BillingChangeReason:
    return _enum(BillingChangeReason, "reason")(v)


def _to_reason_label(v: str) -> str:
    return _label("reason")(v)


def _to_service(v: ServiceCode | str) -> ServiceCode:
    return _value(ServiceCode)(v)


def _to_optional_customer_id(v: CustomerId | str | None) -> CustomerId | None:
    return None if v is None else _to_customer_id(v)


def _to_optional_new_kind(v: LineKind | str | None) -> LineKind | None:
    return None if v is None else parse_enum(LineKind, v, "new_kind")


def _to_optional_provider(v: ProviderCode | str | None) -> ProviderCode | None:
    return None if v is None else _to_provider(v)


def _to_optional_password(v: Password | str | None) -> Password | None:
    return None if v is None else _to_password(v)


def _to_optional_email(v: Email | str | None) -> Email | None:
    return None if v is None else _to_email(v)


def _to_month(v: YearMonth | str) -> YearMonth:
    return require_month_in_range(v if isinstance(v, YearMonth) else YearMonth.parse(v))


def _to_effective_from(v: YearMonth | str) -> YearMonth:
    month = v if isinstance(v, YearMonth) else YearMonth.parse(v)
    return require_month_in_range(month, "effective_from")


def _to_optional_access_key(v: AccessKey | str | None) -> AccessKey | None:
    return None if v is None else _to_access_key(v)


def _to_optional_line_auth(v: bool | None) -> bool | None:
    return None if v is None else _to_line_auth_flag(v)


def _to_channel_resetchannel(v: ResetChannel | str) -> ResetChannel:
    return _enum(ResetChannel, "channel")(v)


def _to_optional_terms_consent(v: bool | None) -> bool | None:
    return None if v is None else _flag("terms_consent")(v)


def _to_flat_fee_yen(v: Yen | int) -> Yen:
    return _yen("flat_fee")(v)


#: The longest service period a listing may set (§11): ten years, in months or days.
MAX_PERIOD_MONTHS = 120
MAX_PERIOD_DAYS = 3660


def _to_optional_period(name: str, most: int) -> Callable[[int | None], int | None]:
    def convert(v: int | None) -> int | None:
        if v is None:
            return None
        if type(v) is not int or not 1 <= v <= most:
            raise InvalidInput(f"{name} must be a whole number 1–{most}, got {v!r}")
        return v

    return convert


def _to_optional_period_months(v: int | None) -> int | None:
    return _to_optional_period("period_months", MAX_PERIOD_MONTHS)(v)


def _to_optional_period_days(v: int | None) -> int | None:
    return _to_optional_period("period_days", MAX_PERIOD_DAYS)(v)


def _to_quantity(v: int) -> int:
    # §4: a per-purchase item may be bought 1–99 at a time (the guide shows 600 yen × 10).
    if type(v) is not int or not 1 <= v <= 99:
        raise InvalidInput(f"quantity must be a whole number 1–99, got {v!r}")
    return v


def _not_own_representative(customer_id: CustomerId, billing: BillingAccount) -> None:
    if isinstance(billing, Consolidated) and billing.representative == customer_id:
        raise InvalidInput("a line cannot be its own consolidated-billing representative")


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


# ---------------------------------------------------------------------------------------------
# Commands


R = TypeVar("R", bound=Result)


@attrs.frozen(kw_only=True)
class Command(Generic[R]):
    """Base of every command: business time ``at`` and an optional idempotency ``key``.

    A command class names the type of its result (``class Purchase(Command[PurchaseResult])``),
    so ``Engine.execute(Purchase(...))`` is typed, and a result answered again for a key is
    read back as that type.
    """

    NAME: ClassVar[str] = ""
    #: The result type (from the class's ``Command[...]`` base).
    RESULT: ClassVar[type[Result]] = Result
    #: Fields holding secrets: left out of idempotency digests and never echoed.
    SECRETS: ClassVar[tuple[str, ...]] = ()
    #: Fields holding personal data of the command's ``passport_id`` (e-mail, applicant): an
    #: idempotency key keeps nothing of them that outlives the ID's erasure (contract 3).
    PERSONAL: ClassVar[tuple[str, ...]] = ()
    #: The credential the command is authenticated by, if any (rules §2, "Who may do
    #: what"): ``password`` (the Passport ID holder) or ``access_key`` (the line holder).
    CREDENTIAL: ClassVar[str | None] = None

    at: datetime = attrs.field(converter=_at)
    key: str | None = attrs.field(default=None, converter=_key)


#: Every command class, by its contract name (``"purchase"``: :class:`Purchase`).
COMMANDS: dict[str, type[Command[Any]]] = {}
C = TypeVar("C", bound=type[Command[Any]])

#: Field metadata: added by contract 2 (an idempotency digest leaves it out at its default, so
#: a key bound by a contract-1 command still matches the same body).
SINCE_2 = {"since": 2}


#: Field metadata: added by contract 3.  Under contract 2 such a field is an unknown field, as
#: it always was (:func:`admit`), and an idempotency digest leaves it out at its default.
SINCE_3 = {"since": 3}

#: The contracts this build reads (docs/contract.md, "Contract versions").
CONTRACTS = (2, 3)
#: The contract of a log that declares none, and of an engine opened without one: contract 2,
#: forever — an old log keeps its meaning (docs/rules.md §11).
DEFAULT_CONTRACT = 2
#: The newest contract.
LATEST_CONTRACT = 3


def check_contract(contract: object) -> int:
    """``contract`` if this build reads it; anything else is ``invalid_input``."""
    if type(contract) is not int or contract not in CONTRACTS:
        known = ", ".join(map(str, CONTRACTS))
        raise InvalidInput(f"contract {contract!r} is not one this matome reads ({known})")
    return contract


def _command(name: str) -> Callable[[C], C]:
    """Register a command class under its contract name; its result type is read from its
    ``Command[...]`` base."""

    def register(cls: C) -> C:
        cls.NAME = name
        for base in getattr(cls, "__orig_bases__", ()):
            if get_origin(base) is Command:
                (cls.RESULT,) = get_args(base)
        COMMANDS[name] = cls
        return cls

    return register


@_command("open_line")
@attrs.frozen(kw_only=True)
class OpenLine(Command[LineResult]):
    SECRETS = ("access_key",)
    customer_id: CustomerId = attrs.field(converter=_to_customer_id)
    operator: Operator = attrs.field(converter=_to_operator_operator)
    kind: LineKind = attrs.field(converter=_to_kind_linekind)
    access_key: AccessKey = attrs.field(converter=_to_access_key)
    line_limit: Yen = attrs.field(converter=_to_line_limit_yen)
    billing: BillingAccount = attrs.field(converter=_billing)

    def __attrs_post_init__(self) -> None:
        _not_own_representative(self.customer_id, self.billing)
        if not self.operator.accepts(self.customer_id):
            raise InvalidInput(f"NTT West customer IDs start with CAF, not {self.customer_id}")
        if not self.kind.offered_by(self.operator):
            raise InvalidInput(f"NTT {self.operator.value} does not offer {self.kind.value} lines")


@_command("change_line_limit")
@attrs.frozen(kw_only=True)
class ChangeLineLimit(Command[Done]):
    customer_id: CustomerId = attrs.field(converter=_to_customer_id)
    line_limit: Yen = attrs.field(converter=_to_line_limit_yen)


@_command("change_billing")
@attrs.frozen(kw_only=True)
class ChangeBilling(Command[Done]):
    customer_id: CustomerId = attrs.field(converter=_to_customer_id)
    billing: BillingAccount = attrs.field(converter=_billing)
    reason: BillingChangeReason = attrs.field(converter=_to_reason_billingchangereason)

    def __attrs_post_init__(self) -> None:
        _not_own_representative(self.customer_id, self.billing)
        # §6: each reason names the kind of account it leads to.
        expected = {
            BillingChangeReason.RENUMBERING: PhoneBill,
            BillingChangeReason.BILLING_PHONE_CHANGE: PhoneBill,
            BillingChangeReason.CUSTOMER_NUMBER: CustomerNumber,
            BillingChangeReason.WIDE_AREA_CONSOLIDATED: Consolidated,
        }[self.reason]
        if not isinstance(self.billing, expected):
            raise InvalidInput(
                f"reason {self.reason.value!r} needs a {expected.method} billing account, "  # type: ignore[attr-defined]
                f"not {self.billing.method}"
            )


@_command("change_line")
@attrs.frozen(kw_only=True)
class ChangeLine(Command[LineChangeResult]):
    customer_id: CustomerId = attrs.field(converter=_to_customer_id)
    change: ChangeKind = attrs.field(converter=_to_change_changekind)
    new_customer_id: CustomerId | None = attrs.field(
        default=None, converter=_to_optional_customer_id
    )
    new_kind: LineKind | None = attrs.field(default=None, converter=_to_optional_new_kind)

    def __attrs_post_init__(self) -> None:
        # §6's table (ChangeKind), as far as it needs no state.
        if self.new_customer_id is not None and not self.change.takes_new_customer_id:
            raise InvalidInput(f"a {self.change.value} takes no new_customer_id")
        if self.new_kind is not None and not self.change.takes_new_kind:
            raise InvalidInput(f"a {self.change.value} takes no new_kind")
        if self.change is ChangeKind.MENU_CHANGE and self.new_kind is None:
            raise InvalidInput("a menu_change needs new_kind (hikari_next ⇄ hikari_light)")


@_command("regulate_line")
@attrs.frozen(kw_only=True)
class RegulateLine(Command[RegulationResult]):
    customer_id: CustomerId = attrs.field(converter=_to_customer_id)


@_command("lift_regulation")
@attrs.frozen(kw_only=True)
class LiftRegulation(Command[RegulationResult]):
    customer_id: CustomerId = attrs.field(converter=_to_customer_id)
    channel: LiftChannel = attrs.field(converter=_to_channel_liftchannel)


@_command("set_notification")
@attrs.frozen(kw_only=True)
class SetNotification(Command[Done]):
    """Set line-information notification [回線情報通知] for one provider, with the customer's
    consent (§9); the line holder's command, with the line's access key."""

    SECRETS = ("access_key",)
    CREDENTIAL = "access_key"
    customer_id: CustomerId = attrs.field(converter=_to_customer_id)
    access_key: AccessKey = attrs.field(converter=_to_access_key)
    provider: ProviderCode = attrs.field(converter=_to_provider)
    notify: bool = attrs.field(converter=_to_notify_flag)
    consent: bool = attrs.field(converter=_to_consent_flag)
    channel: str = attrs.field(converter=_to_channel_label)


@_command("register_provider")
@attrs.frozen(kw_only=True)
class RegisterProvider(Command[Done]):
    provider: ProviderCode = attrs.field(converter=_to_provider)
    name: str = attrs.field(converter=_to_name_label)
    contact: str = attrs.field(converter=_to_contact_label)
    goods: Goods = attrs.field(converter=_to_goods_goods)


@_command("list_service")
@attrs.frozen(kw_only=True)
class ListService(Command[Done]):
    """List a service or item with its pricing type and price; from contract 3 it may carry a
    service period [サービス利用期間] (docs/rules.md §11): ``period_months`` for a monthly-flat
    service (billing months from the purchase month), ``period_days`` for a per-purchase item
    (days of access from the purchase)."""

    provider: ProviderCode = attrs.field(converter=_to_provider)
    service: ServiceCode = attrs.field(converter=_to_service)
    name: str = attrs.field(converter=_to_name_label)
    pricing: Pricing = attrs.field(converter=_to_pricing_pricing)
    price: Yen = attrs.field(converter=_to_price_yen)
    period_months: int | None = attrs.field(
        default=None, converter=_to_optional_period_months, metadata=SINCE_3
    )
    period_days: int | None = attrs.field(
        default=None, converter=_to_optional_period_days, metadata=SINCE_3
    )

    def __attrs_post_init__(self) -> None:
        if self.period_months is not None and self.pricing is not Pricing.MONTHLY:
            raise InvalidInput("period_months is for a monthly-flat service; use period_days")
        if self.period_days is not None and self.pricing is not Pricing.PER_PURCHASE:
            raise InvalidInput("period_days is for a per-purchase item; use period_months")


@_command("register_passport")
@attrs.frozen(kw_only=True)
class RegisterPassport(Command[PassportResult]):
    """Register a Passport ID on a line (§2): the line holder's command, with the line's access
    key — or a provider's on the customer's behalf (``via_provider``, no access key needed)."""

    SECRETS = ("password", "access_key")
    PERSONAL = ("email", "applicant")
    CREDENTIAL = "access_key"
    customer_id: CustomerId = attrs.field(converter=_to_customer_id)
    passport_id: PassportId = attrs.field(converter=_to_passport_id)
    password: Password = attrs.field(converter=_to_password)
    email: Email = attrs.field(converter=_to_email)
    applicant: Applicant = attrs.field(converter=_applicant)
    limit: Yen = attrs.field(converter=_to_limit_yen)
    line_auth: bool = attrs.field(converter=_to_line_auth_flag)
    via_provider: ProviderCode | None = attrs.field(default=None, converter=_to_optional_provider)
    access_key: AccessKey | None = attrs.field(default=None, converter=_to_optional_access_key)
    #: Consent to the terms [規約に同意] (contract 3; seed 000): absent or false is
    #: ``consent_required``.
    terms_consent: bool | None = attrs.field(
        default=None, converter=_to_optional_terms_consent, metadata=SINCE_3
    )

    def __attrs_post_init__(self) -> None:
        if self.access_key is None and self.via_provider is None:
            raise InvalidInput("register_passport needs the line's access_key (or via_provider)")


@_command("change_passport_limit")
@attrs.frozen(kw_only=True)
class ChangePassportLimit(Command[Done]):
    """Change a Passport ID's monthly limit (§3): the line holder's command, with the access
    key of the ID's line."""

    SECRETS = ("access_key",)
    CREDENTIAL = "access_key"
    passport_id: PassportId = attrs.field(converter=_to_passport_id)
    access_key: AccessKey = attrs.field(converter=_to_access_key)
    limit: Yen = attrs.field(converter=_to_limit_yen)


@_command("change_passport_details")
@attrs.frozen(kw_only=True)
class ChangePassportDetails(Command[Done]):
    """Change a Passport ID's password, e-mail and/or line-authentication setting (§2, §9):
    the line holder's command, with the access key of the ID's line; a new password unlocks
    the ID (§10)."""

    SECRETS = ("password", "access_key")
    PERSONAL = ("email",)
    CREDENTIAL = "access_key"
    passport_id: PassportId = attrs.field(converter=_to_passport_id)
    access_key: AccessKey = attrs.field(converter=_to_access_key)
    password: Password | None = attrs.field(default=None, converter=_to_optional_password)
    email: Email | None = attrs.field(default=None, converter=_to_optional_email)
    line_auth: bool | None = attrs.field(
        default=None, converter=_to_optional_line_auth, metadata=SINCE_2
    )

    def __attrs_post_init__(self) -> None:
        if self.password is None and self.email is None and self.line_auth is None:
            raise InvalidInput(
                "change_passport_details needs a new password, email or line_auth setting"
            )


@_command("delete_passport")
@attrs.frozen(kw_only=True)
class DeletePassport(Command[DeletionResult]):
    """Delete a Passport ID, cancelling its monthly subscriptions (§2): the line holder's
    command, with the access key of the ID's line."""

    SECRETS = ("access_key",)
    CREDENTIAL = "access_key"
    passport_id: PassportId = attrs.field(converter=_to_passport_id)
    access_key: AccessKey = attrs.field(converter=_to_access_key)


@_command("reset_password")
@attrs.frozen(kw_only=True)
class ResetPassword(Command[Done]):
    """The operator sets a new password for a Passport ID on a phone or written request
    [電話・書面]: recovery of a locked or forgotten password, allowed after the cut-off too
    (§10)."""

    SECRETS = ("password",)
    passport_id: PassportId = attrs.field(converter=_to_passport_id)
    password: Password = attrs.field(converter=_to_password)
    channel: ResetChannel = attrs.field(converter=_to_channel_resetchannel)


@_command("purchase")
@attrs.frozen(kw_only=True)
class Purchase(Command[PurchaseResult]):
    """Buy a service or item with a Passport ID and its password (§3, §4, §9, §10); answers
    the receipt number.  ``presented_line`` is the line the purchase came over, as NTT's
    network identifies it (line authentication)."""

    SECRETS = ("password",)
    CREDENTIAL = "password"
    passport_id: PassportId = attrs.field(converter=_to_passport_id)
    password: Password = attrs.field(converter=_to_password)
    provider: ProviderCode = attrs.field(converter=_to_provider)
    service: ServiceCode = attrs.field(converter=_to_service)
    presented_line: CustomerId | None = attrs.field(
        default=None, converter=_to_optional_customer_id
    )
    quantity: int = attrs.field(default=1, converter=_to_quantity, metadata=SINCE_2)
    #: The client's reference for this purchase (unique), usable by ``cancel``/``refund``.
    ref: str | None = attrs.field(default=None, converter=_to_optional_ref, metadata=SINCE_2)


@_command("cancel")
@attrs.frozen(kw_only=True)
class Cancel(Command[CancelResult]):
    """Cancel an active monthly-flat subscription (§4), with the password of the Passport ID
    that bought it."""

    SECRETS = ("password",)
    CREDENTIAL = "password"
    password: Password = attrs.field(converter=_to_password)
    receipt: str | None = attrs.field(default=None, converter=_to_optional_receipt)
    purchase_ref: str | None = attrs.field(
        default=None, converter=_to_optional_ref, metadata=SINCE_2
    )

    def __attrs_post_init__(self) -> None:
        _one_purchase(self)


@_command("refund")
@attrs.frozen(kw_only=True)
class Refund(Command[RefundResult]):
    """A provider's refund of a purchase, charged negatively in the month it is recorded;
    refunds of one purchase add up to at most what was charged for it so far (§4)."""

    amount: Yen = attrs.field(converter=_to_amount_yen)
    reason: str = attrs.field(converter=_to_reason_label)
    receipt: str | None = attrs.field(default=None, converter=_to_optional_receipt)
    purchase_ref: str | None = attrs.field(
        default=None, converter=_to_optional_ref, metadata=SINCE_2
    )

    def __attrs_post_init__(self) -> None:
        _one_purchase(self)
        if self.amount.amount == 0:
            raise InvalidInput("refund amount must be at least 1 yen")


@_command("erase_personal_data")
@attrs.frozen(kw_only=True)
class ErasePersonalData(Command[Done]):
    """Erase a Passport ID's applicant name, phone and e-mail — every version of them — on
    request (the operator's command); bills and hash chains stay intact."""

    passport_id: PassportId = attrs.field(converter=_to_passport_id)
    reason: str = attrs.field(converter=_to_reason_label)


@_command("set_fee")
@attrs.frozen(kw_only=True)
class SetFee(Command[Done]):
    """Set the flat fee per line (before tax) of the 901–1,500-yen tier of the provider fee
    schedule (§8), for an operator's settlements from ``effective_from`` on."""

    operator: Operator = attrs.field(converter=_to_operator_operator)
    effective_from: YearMonth = attrs.field(converter=_to_effective_from)
    flat_fee: Yen = attrs.field(converter=_to_flat_fee_yen)


@_command("issue_bills")
@attrs.frozen(kw_only=True)
class IssueBills(Command[IssueResult]):
    """Close a billing month (and every month before it) once it has ended; the billing run
    then issues every bill of the closed months (§7)."""

    month: YearMonth = attrs.field(converter=_to_month)


# ---------------------------------------------------------------------------------------------
# JSON command log


def parse_command(obj: Mapping[str, Any], contract: int = DEFAULT_CONTRACT) -> Command[Any]:
    """A command from one JSON object of a command log, read under ``contract``; anything off
    is ``invalid_input``.

    Under contract 2 a line means what it always meant: contract 3's fields are unknown fields
    and the values contract 3 widened (passwords of 11–12 characters, phone numbers of 12
    digits) are refused with contract 2's own messages, naming the same field first.
    """
    if not isinstance(obj, Mapping):
        raise InvalidInput("a command must be a JSON object")
    name = obj.get("command")
    if not isinstance(name, str) or name not in COMMANDS:
        raise InvalidInput(f"unknown command {name!r}; known: {', '.join(sorted(COMMANDS))}")
    cls = COMMANDS[name]
    fields = {f.name: f for f in attrs.fields(cls) if f.metadata.get("since", 1) <= contract}
    body = {k: v for k, v in obj.items() if k != "command"}
    unknown = sorted(set(body) - set(fields))
    if unknown:
        raise InvalidInput(f"{name}: unknown field(s): {', '.join(unknown)}")
    missing = sorted(n for n, f in fields.items() if f.default is attrs.NOTHING and n not in body)
    if missing:
        raise InvalidInput(f"{name}: missing field(s): {', '.join(missing)}")
    try:
        command = cls(**body)
    except (InvalidInput, TypeError, ValueError) as e:  # TypeError: a type it cannot read
        message = e.message if isinstance(e, InvalidInput) else str(e)
        found = _naming_the_field(fields, body, message, contract)
        if contract < 3:
            found = _in_contract_2_words(found)
        raise InvalidInput(f"{name}: {found}") from None
    if contract < 3:
        for key, value in body.items():
            narrowed = _contract_2_reading(key, value)
            if narrowed is not None:
                raise InvalidInput(f"{name}: {_named(key, narrowed)}")
    return command


def _named(key: str, message: str) -> str:
    return message if re.search(rf"\b{re.escape(key)}\b", message) else f"{key}: {message}"


def _naming_the_field(
    fields: Mapping[str, Any], body: Mapping[str, Any], message: str, contract: int
) -> str:
    """``message`` with the field it is about in front, when the message does not name it:
    the value types' own messages name the type ("value must be a string"), and the contract
    names the field.  Only a refused command pays for finding it."""
    for key, value in body.items():
        converter = fields[key].converter
        if converter is None:
            continue
        try:
            converter(value)
        except (InvalidInput, TypeError, ValueError) as e:
            own = e.message if isinstance(e, InvalidInput) else str(e)
            return _named(key, own)
        narrowed = _contract_2_reading(key, value) if contract < 3 else None
        if narrowed is not None:
            return _named(key, narrowed)
    return message


#: Contract 2's bounds on the values contract 3 widened (rules §1; docs/rules.md §11).
_C2_PASSWORD_MAX = 10
_C2_PHONE_MAX_DIGITS = 11


def _contract_2_reading(key: str, value: Any) -> str | None:
    """Contract 2's refusal of a value its converter accepts (the converters hold contract 3's
    wider values), in contract 2's own words; ``None`` if contract 2 read it too."""
    if key == "password" and value is not None:
        clear = value.reveal() if isinstance(value, Password) else value
        if isinstance(clear, str) and len(clear) > _C2_PASSWORD_MAX:
            return "password must be 4–10 ASCII letters or digits"
    if key == "applicant":
        phone = value.phone if isinstance(value, Applicant) else value.get("phone")
        if isinstance(phone, str) and len(phone.replace("-", "")) > _C2_PHONE_MAX_DIGITS:
            return (
                f"phone number {phone!r} must be a Japanese number of 10–11 digits, "
                "hyphens allowed (e.g. 06-1234-5678)"
            )
    return None


#: The rules contract 3 widened, in contract 3's words and in contract 2's.
_WIDENED = (
    (
        "password must be 4–12 ASCII letters or digits",
        "password must be 4–10 ASCII letters or digits",
    ),
    ("a Japanese number of 10–12 digits", "a Japanese number of 10–11 digits"),
)


def _in_contract_2_words(message: str) -> str:
    """A refusal as contract 2 worded it: the value types state contract 3's wider rules."""
    for wider, narrower in _WIDENED:
        message = message.replace(wider, narrower)
    return message


def admit(command: Command[Any], contract: int) -> None:
    """Refuse (``invalid_input``) a command that ``contract`` does not read: under contract 2,
    a contract-3 field given, or a value only contract 3 accepts — the same refusal
    :func:`parse_command` gives such a line.  The engine admits every command it executes, so
    the Python API and the command log agree."""
    if contract >= 3:
        return
    name = command.NAME
    newer = sorted(
        f.name
        for f in attrs.fields(type(command))
        if f.metadata.get("since", 1) > contract and getattr(command, f.name) != f.default
    )
    if newer:
        raise InvalidInput(f"{name}: unknown field(s): {', '.join(newer)}")
    for f in attrs.fields(type(command)):
        narrowed = _contract_2_reading(f.name, getattr(command, f.name))
        if narrowed is not None:
            raise InvalidInput(f"{name}: {_named(f.name, narrowed)}")
