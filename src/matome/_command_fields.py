"""The fields of the commands (:mod:`matome.commands`): one converter per value type, each
refusing with ``invalid_input`` that names the field, and the field transformer that tells
each converter its field's name."""

from __future__ import annotations

import inspect
from collections.abc import Mapping
from datetime import datetime
from typing import Any, TypeVar

import attrs

from matome.credentials import parse_phc
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

V = TypeVar("V")


# ---------------------------------------------------------------------------------------------
# Field converters: one per value type (they raise InvalidInput, naming the field)
#
# A converter with a ``what`` parameter is told the name of the field it converts when the
# command class is made (:func:`_field_names`), so one converter serves every field of its
# type and its refusal names that field; ``attrs.converters.optional(...)`` lets ``None``
# through.  They are named functions with a typed first parameter because the attrs mypy
# plugin types each class's ``__init__`` from them (it reads no other kind of callable).


def _value(cls: type[V], v: object) -> V:
    return v if isinstance(v, cls) else cls(v)  # type: ignore[call-arg]


def _access_key(v: AccessKey | str) -> AccessKey:
    return _value(AccessKey, v)


def _customer_id(v: CustomerId | str) -> CustomerId:
    return _value(CustomerId, v)


def _email(v: Email | str) -> Email:
    return _value(Email, v)


def _passport_id(v: PassportId | str) -> PassportId:
    return _value(PassportId, v)


def _password(v: Password | str) -> Password:
    return _value(Password, v)


def _phc(v: str, what: str = "hash") -> str:
    """A secret's hash brought from another system (contract 3, "Credentials at scale"):
    a PHC string of argon2id, scrypt or pbkdf2-sha256 at no less than OWASP's minimum."""
    if not isinstance(v, str):
        raise InvalidInput(f"{what} must be a PHC string, got {type(v).__name__}")
    try:
        return parse_phc(v)
    except InvalidInput as e:
        raise InvalidInput(f"{what}: {e.message}") from None


def _provider(v: ProviderCode | str) -> ProviderCode:
    return _value(ProviderCode, v)


def _service(v: ServiceCode | str) -> ServiceCode:
    return _value(ServiceCode, v)


def _yen(v: Yen | int, what: str = "amount") -> Yen:
    return Yen.non_negative(v.amount if isinstance(v, Yen) else v, what)


def _flag(v: bool, what: str = "flag") -> bool:
    if not isinstance(v, bool):
        raise InvalidInput(f"{what} must be true or false, got {v!r}")
    return v


def _label(v: str, what: str = "label", max_len: int = 200) -> str:
    if not isinstance(v, str) or not v.strip() or len(v) > max_len:
        raise InvalidInput(f"{what} must be a non-blank string of at most {max_len} characters")
    return require_text(v, what)


def _short_label(v: str, what: str = "label") -> str:
    return _label(v, what, 40)


def _operator(v: Operator | str, what: str = "operator") -> Operator:
    return parse_enum(Operator, v, what)


def _line_kind(v: LineKind | str, what: str = "kind") -> LineKind:
    return parse_enum(LineKind, v, what)


def _change_kind(v: ChangeKind | str, what: str = "change") -> ChangeKind:
    return parse_enum(ChangeKind, v, what)


def _lift_channel(v: LiftChannel | str, what: str = "channel") -> LiftChannel:
    return parse_enum(LiftChannel, v, what)


def _reset_channel(v: ResetChannel | str, what: str = "channel") -> ResetChannel:
    return parse_enum(ResetChannel, v, what)


def _goods(v: Goods | str, what: str = "goods") -> Goods:
    return parse_enum(Goods, v, what)


def _pricing(v: Pricing | str, what: str = "pricing") -> Pricing:
    return parse_enum(Pricing, v, what)


def _change_reason(v: BillingChangeReason | str, what: str = "reason") -> BillingChangeReason:
    return parse_enum(BillingChangeReason, v, what)


def _month(v: YearMonth | str, what: str = "month") -> YearMonth:
    return require_month_in_range(v if isinstance(v, YearMonth) else YearMonth.parse(v), what)


#: The longest service period a listing may set (§11): ten years, in months or days.
MAX_PERIOD_MONTHS = 120
MAX_PERIOD_DAYS = 3660


def _whole(v: int, what: str, most: int) -> int:
    if type(v) is not int or not 1 <= v <= most:
        raise InvalidInput(f"{what} must be a whole number 1–{most}, got {v!r}")
    return v


def _period_months(v: int, what: str = "period_months") -> int:
    return _whole(v, what, MAX_PERIOD_MONTHS)


def _period_days(v: int, what: str = "period_days") -> int:
    return _whole(v, what, MAX_PERIOD_DAYS)


def _quantity(v: int) -> int:
    # §4: a per-purchase item may be bought 1–99 at a time (the guide shows 600 yen × 10).
    if type(v) is not int or not 1 <= v <= 99:
        raise InvalidInput(f"quantity must be a whole number 1–99, got {v!r}")
    return v


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


def _ref(v: str) -> str:
    # A client's own name for a purchase, so that a log can cancel or refund it without
    # predicting the receipt number the engine will give it.  Named "ref" whichever field
    # holds it (``ref``, ``purchase_ref``): the contract's message.
    if not isinstance(v, str) or not 1 <= len(v) <= 64 or not v.isprintable():
        raise InvalidInput("a purchase reference must be 1–64 printable characters")
    return require_text(v, "ref")


def _one_purchase(c: Any) -> None:
    if (c.receipt is None) == (c.purchase_ref is None):
        raise InvalidInput(f"{c.NAME} names its purchase by receipt or by purchase_ref (one)")


def _field_names(cls: type, fields: list[attrs.Attribute[Any]]) -> list[attrs.Attribute[Any]]:
    """The attrs field transformer of every command class: each converter with a ``what``
    parameter is bound to its field's name (``attrs.converters.optional`` kept around it)."""
    return [_naming(field) for field in fields]


def _naming(field: attrs.Attribute[Any]) -> attrs.Attribute[Any]:
    convert: Any = field.converter
    optional = getattr(convert, "__name__", "") == "optional_converter"
    if optional:
        # attrs.converters.optional closes over the converter it wraps.
        convert = inspect.getclosurevars(convert).nonlocals["converter"]
    if not callable(convert) or "what" not in inspect.signature(convert).parameters:
        return field
    name = field.name

    def named(v: Any) -> Any:
        return convert(v, name)

    def named_or_none(v: Any) -> Any:
        return None if v is None else convert(v, name)

    return field.evolve(converter=named_or_none if optional else named)


def _not_own_representative(customer_id: CustomerId, billing: BillingAccount) -> None:
    if isinstance(billing, Consolidated) and billing.representative == customer_id:
        raise InvalidInput("a line cannot be its own consolidated-billing representative")


# ---------------------------------------------------------------------------------------------
# Secrets a migration may give as their hashes (contract 3, "Credentials at scale")

#: Field metadata: a secret a migration may give as its hash instead (contract 3,
#: "Credentials at scale"): the field is required unless the named hash field is given.
HASHED_AS_ACCESS_KEY = {"or": "access_key_hash"}
HASHED_AS_PASSWORD = {"or": "password_hash"}


def check(secret: object, hashed: object, field: str) -> None:
    """A secret or its hash, not both (the reader calls a missing one a missing field)."""
    if secret is None and hashed is None:
        raise InvalidInput(f"missing field(s): {field}")
    if secret is not None and hashed is not None:
        raise InvalidInput(f"give {field} or {field}_hash, not both")


def required(field: Any, fields: Mapping[str, Any], body: Mapping[str, Any]) -> bool:
    """Whether a line must give ``field``: one without a default, or a secret whose hash
    (read under this contract) the line does not give instead."""
    if field.default is attrs.NOTHING:
        return True
    instead = field.metadata.get("or")
    return instead is not None and not (instead in fields and instead in body)
