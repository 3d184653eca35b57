"""Value types: validated at the edge, immutable, comparable.

Every format rule of docs/rules.md §1 lives here.  A value that exists is valid: constructing one
from bad input raises :class:`~matome.errors.InvalidInput` with a message that names the rule.
"""

from __future__ import annotations

import json
import re
from datetime import date, datetime, timedelta, timezone
from enum import StrEnum
from typing import Any, ClassVar, TypeVar

import attrs
import orjson

from matome._values_enums import (
    BillingChangeReason,
    ChangeKind,
    Goods,
    LiftChannel,
    LineKind,
    Operator,
    Pricing,
    ResetChannel,
)
from matome.errors import InvalidInput

__all__ = [
    "MAX_YEN",
    "TOKYO",
    "AccessKey",
    "Applicant",
    "BillingAccount",
    "BillingChangeReason",
    "ChangeKind",
    "Consolidated",
    "CustomerId",
    "CustomerNumber",
    "Email",
    "Erased",
    "Goods",
    "LiftChannel",
    "LineKind",
    "Operator",
    "PassportId",
    "Password",
    "PhoneBill",
    "Pricing",
    "ProviderCode",
    "ResetChannel",
    "ServiceCode",
    "YearMonth",
    "Yen",
    "canonical_json",
    "canonical_json_bytes",
    "require_aware",
    "require_in_range",
    "require_month_in_range",
    "tokyo_date",
]

#: Asia/Tokyo.  Japan has kept UTC+9 without daylight saving since 1951, so a fixed offset is
#: exact for every date a bill can have, and needs no tz database on the host.
TOKYO = timezone(timedelta(hours=9), "JST")


def require_aware(at: datetime, what: str = "at") -> datetime:
    """Return ``at`` if it carries a UTC offset; a naive time is ``invalid_input``."""
    if not isinstance(at, datetime):
        raise InvalidInput(f"{what} must be a datetime, got {type(at).__name__}")
    if at.tzinfo is None or at.utcoffset() is None:
        raise InvalidInput(f"{what} must carry a UTC offset (e.g. +09:00); got naive {at}")
    return at


def tokyo_date(at: datetime) -> date:
    """The calendar date of ``at`` in Asia/Tokyo (billing days and months are Tokyo's)."""
    return require_aware(at).astimezone(TOKYO).date()


def _text(value: object, what: str) -> str:
    if not isinstance(value, str):
        raise InvalidInput(f"{what} must be a string, got {type(value).__name__}")
    return value


def require_text(value: str, what: str) -> str:
    """``value`` if it is storable Unicode text (no lone surrogates, no NUL characters)."""
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise InvalidInput(f"{what} is not valid Unicode text") from None
    if "\x00" in value:
        raise InvalidInput(f"{what} must not contain NUL characters")
    return value


# ---------------------------------------------------------------------------------------------
# Identifiers (rules §1, "Identifier formats")

_CUSTOMER_CAF = re.compile(r"CAF[0-9]{10}")
_CUSTOMER_COP = re.compile(r"COP[0-9]{8}")
_ACCESS_KEY = re.compile(r"[A-Za-z0-9]{8}")
_PASSPORT_ID = re.compile(r"[A-Za-z0-9._@-]{4,60}")
_PASSWORD = re.compile(r"[A-Za-z0-9]{4,12}")
_BILLING_NUMBER = re.compile(r"00[0-9]{8}")
_PHONE = re.compile(r"0[0-9]{1,4}-?[0-9]{1,4}-?[0-9]{3,4}")
_CODE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,31}")
_EMAIL = re.compile(r"[A-Za-z0-9.!#$%&'*+/=?^_`{|}~-]+@[A-Za-z0-9-]+(\.[A-Za-z0-9-]+)+")


def _check_customer_id(_: object, __: attrs.Attribute[str], value: str) -> None:
    _text(value, "customer ID")
    if not (_CUSTOMER_CAF.fullmatch(value) or _CUSTOMER_COP.fullmatch(value)):
        raise InvalidInput(
            f"customer ID {value!r} is not 'CAF' + 10 digits or 'COP' + 8 digits "
            "(upper-case ASCII, no spaces or full-width characters)"
        )


@attrs.frozen(order=True)
class CustomerId:
    """Customer ID [お客さまID] naming an access line: ``CAF`` + 10 digits, or ``COP`` + 8.

    ``COP`` IDs exist at NTT East only; that is checked where the operator is known
    (:meth:`Operator.accepts`).
    """

    value: str = attrs.field(validator=_check_customer_id)

    def __str__(self) -> str:
        return self.value


def _check_passport_id(_: object, __: attrs.Attribute[str], value: str) -> None:
    _text(value, "Passport ID")
    if not _PASSPORT_ID.fullmatch(value):
        raise InvalidInput(
            f"Passport ID {value!r} must be 4–60 ASCII letters, digits or '-', '_', '.', '@'"
        )


@attrs.frozen(order=True)
class PassportId:
    """FLET'S Passport ID [フレッツ・パスポートID]; case-sensitive, unique system-wide."""

    value: str = attrs.field(validator=_check_passport_id)

    def __str__(self) -> str:
        return self.value


def _check_code(_: object, attribute: attrs.Attribute[str], value: str) -> None:
    _text(value, attribute.name)
    if not _CODE.fullmatch(value):
        raise InvalidInput(
            f"code {value!r} must be 1–32 ASCII letters, digits, '.', '_' or '-', "
            "starting with a letter or digit"
        )


@attrs.frozen(order=True)
class ProviderCode:
    """A provider's code [サービス提供事業者]."""

    value: str = attrs.field(validator=_check_code)

    def __str__(self) -> str:
        return self.value


@attrs.frozen(order=True)
class ServiceCode:
    """A service's or item's code within its provider."""

    value: str = attrs.field(validator=_check_code)

    def __str__(self) -> str:
        return self.value


class _Secret:
    """A secret given in clear text: never printed, compared only by the credential module."""

    __slots__ = ("_value",)
    pattern: ClassVar[re.Pattern[str]]
    rule: ClassVar[str]

    def __init__(self, value: str) -> None:
        _text(value, type(self).__name__)
        if not self.pattern.fullmatch(value):
            # The message states the rule, never the value: secrets are not echoed.
            raise InvalidInput(f"{self.rule}")
        self._value = value

    def reveal(self) -> str:
        """The clear text, for hashing and verification only."""
        return self._value

    def __repr__(self) -> str:
        return f"{type(self).__name__}('********')"

    __str__ = __repr__

    def __eq__(self, other: object) -> bool:
        return (
            isinstance(other, _Secret)
            and type(other) is type(self)
            and (other._value == self._value)
        )

    def __hash__(self) -> int:
        return hash((type(self).__name__, self._value))


class Password(_Secret):
    """A Passport ID password: ASCII alphanumerics, case-sensitive (rules §1).

    The type holds 4–12 characters, the union of the contracts: contract 2 reads 4–10 (rules
    §1; :func:`matome.commands.admit` narrows it), and contract 3 sets new passwords of 8–12
    (§10's shape, checked by the deciders, which know the current password).
    """

    __slots__ = ()
    pattern = _PASSWORD
    rule = "password must be 4–12 ASCII letters or digits"


class AccessKey(_Secret):
    """A line's access key [アクセスキー]: 8 ASCII alphanumerics (rules §1)."""

    __slots__ = ()
    pattern = _ACCESS_KEY
    rule = "access key must be 8 ASCII letters or digits"


def _check_email(_: object, __: attrs.Attribute[str], value: str) -> None:
    _text(value, "email")
    if len(value) > 254 or not _EMAIL.fullmatch(value):
        raise InvalidInput(f"email {value!r} is not an address like name@example.jp")


@attrs.frozen
class Email:
    """An e-mail address (personal data: kept out of hashed event content)."""

    value: str = attrs.field(validator=_check_email)

    def __str__(self) -> str:
        return self.value


def _phone(value: str, most: int) -> None:
    _text(value, "phone number")
    digits = value.replace("-", "")
    if not _PHONE.fullmatch(value) or not 10 <= len(digits) <= most:
        raise InvalidInput(
            f"phone number {value!r} must be a Japanese number of 10–{most} digits, "
            "hyphens allowed (e.g. 06-1234-5678)"
        )


def _check_phone(_: object, __: attrs.Attribute[str], value: str) -> None:
    # An applicant's phone: seed 000's registration screen says 電話番号 10~12桁 (contract 3;
    # contract 2 read 10–11, and matome.commands keeps that for a contract-2 log).
    _phone(value, 12)


def _check_billing_phone(_: object, __: attrs.Attribute[str], value: str) -> None:
    # The phone line a bill is paid with: a Japanese line number, 10–11 digits.
    _phone(value, 11)


def _check_name(_: object, __: attrs.Attribute[str], value: str) -> None:
    require_text(_text(value, "name"), "name")
    if not value.strip() or len(value) > 100:
        raise InvalidInput("name must be 1–100 characters and not blank")


def _check_bool(_: object, attribute: attrs.Attribute[bool], value: bool) -> None:
    if not isinstance(value, bool):
        raise InvalidInput(f"{attribute.name} must be true or false")


@attrs.frozen
class Erased:
    """A personal value that was erased on request (docs/contract.md: ``erase_personal_data``); what
    remains of it is the fact that it existed."""

    def __str__(self) -> str:
        return "(erased)"


@attrs.frozen
class Applicant:
    """Who applied for a Passport ID (personal data)."""

    name: str = attrs.field(validator=_check_name)
    phone: str = attrs.field(validator=_check_phone)
    contract_holder: bool = attrs.field(validator=_check_bool)


# ---------------------------------------------------------------------------------------------
# Money and months


def _check_yen(_: object, __: attrs.Attribute[int], value: int) -> None:
    # bool is an int subclass: True yen is a bug, not a price.
    if type(value) is not int:
        raise InvalidInput(f"money must be whole yen (an integer), got {value!r}")


@attrs.frozen(order=False)
class Yen:
    """Whole yen, tax included [税込].  Never a float; may be negative (a refund's charge)."""

    amount: int = attrs.field(validator=_check_yen)

    ZERO: ClassVar[Yen]

    # Ordered by amount, as attrs' ``order=True`` orders it (another class: NotImplemented),
    # without building a tuple of the fields per comparison: every purchase compares money.
    def __lt__(self, other: Yen) -> bool:
        return self.amount < other.amount if other.__class__ is Yen else NotImplemented

    def __le__(self, other: Yen) -> bool:
        return self.amount <= other.amount if other.__class__ is Yen else NotImplemented

    def __gt__(self, other: Yen) -> bool:
        return self.amount > other.amount if other.__class__ is Yen else NotImplemented

    def __ge__(self, other: Yen) -> bool:
        return self.amount >= other.amount if other.__class__ is Yen else NotImplemented

    def __add__(self, other: Yen) -> Yen:
        return Yen(self.amount + other.amount)

    def __sub__(self, other: Yen) -> Yen:
        return Yen(self.amount - other.amount)

    def __neg__(self) -> Yen:
        return Yen(-self.amount)

    def __mul__(self, n: int) -> Yen:
        return Yen(self.amount * n)

    def __str__(self) -> str:
        return f"¥{self.amount:,}"

    @classmethod
    def non_negative(cls, value: object, what: str) -> Yen:
        """``value`` as an amount a command may carry: whole yen from 0 to :data:`MAX_YEN`
        (rules §1), refused with a message naming ``what``."""
        if type(value) is not int:
            raise InvalidInput(f"{what} must be whole yen (an integer), got {value!r}")
        if not 0 <= value <= MAX_YEN:
            raise InvalidInput(f"{what} must be 0–{MAX_YEN:,} yen, got {value}")
        return cls(value)


Yen.ZERO = Yen(0)

#: The largest amount a command may carry (price, limit, cap, refund, fee): every sum of them
#: then fits a 64-bit integer (rules §1).
MAX_YEN = 99_999_999

#: Business times a command may carry (rules §1 bounds): Tokyo dates 2000-01-01 …
#: 2099-12-31.  Nothing the service bills lies outside, and month arithmetic stays in range.
FIRST_DAY = date(2000, 1, 1)
LAST_DAY = date(2099, 12, 31)


def require_in_range(at: datetime, what: str = "at") -> datetime:
    """``at`` if its Tokyo date lies within :data:`FIRST_DAY` … :data:`LAST_DAY`."""
    try:
        day = tokyo_date(at)
    except OverflowError:
        day = None
    if day is None or not FIRST_DAY <= day <= LAST_DAY:
        raise InvalidInput(f"{what} {at.isoformat()} is outside {FIRST_DAY} … {LAST_DAY}")
    return at


def require_month_in_range(month: YearMonth, what: str = "month") -> YearMonth:
    """``month`` if it lies within the business-time bounds."""
    if not FIRST_DAY.year <= month.year <= LAST_DAY.year:
        raise InvalidInput(f"{what} {month} is outside {FIRST_DAY:%Y-%m} … {LAST_DAY:%Y-%m}")
    return month


_MONTH = re.compile(r"([0-9]{4})-([0-9]{2})")


@attrs.frozen(order=False)
class YearMonth:
    """A billing month: a calendar month in Asia/Tokyo (rules §4)."""

    year: int
    month: int = attrs.field()

    # Ordered by (year, month), as attrs' ``order=True`` orders it, without its generic tuple
    # of the fields per comparison (see Yen); ``>`` and ``>=`` are these two, reflected.
    def __lt__(self, other: YearMonth) -> bool:
        if other.__class__ is not YearMonth:
            return NotImplemented
        return (self.year, self.month) < (other.year, other.month)

    def __le__(self, other: YearMonth) -> bool:
        if other.__class__ is not YearMonth:
            return NotImplemented
        return (self.year, self.month) <= (other.year, other.month)

    @month.validator
    def _check(self, _: attrs.Attribute[int], value: int) -> None:
        if not 1 <= value <= 12 or not 1 <= self.year <= 9999:
            raise InvalidInput(f"month {self.year:04d}-{value:02d} does not exist")

    @classmethod
    def parse(cls, text: object) -> YearMonth:
        """Parse ``YYYY-MM``."""
        m = _MONTH.fullmatch(_text(text, "month"))
        if m is None:
            raise InvalidInput(f"month {text!r} must be YYYY-MM")
        return cls(int(m.group(1)), int(m.group(2)))

    @classmethod
    def of(cls, at: datetime) -> YearMonth:
        """The Tokyo billing month that instant ``at`` falls in."""
        d = tokyo_date(at)
        return cls(d.year, d.month)

    def next(self) -> YearMonth:
        return YearMonth(self.year + self.month // 12, self.month % 12 + 1)

    def previous(self) -> YearMonth:
        return YearMonth(self.year - (self.month == 1), (self.month - 2) % 12 + 1)

    def start(self) -> datetime:
        """The first instant of the month in Tokyo."""
        return datetime(self.year, self.month, 1, tzinfo=TOKYO)

    def end(self) -> datetime:
        """The first instant after the month (exclusive end)."""
        return self.next().start()

    def __str__(self) -> str:
        return f"{self.year:04d}-{self.month:02d}"


# ---------------------------------------------------------------------------------------------
# Enumerations of the contract (matome._values_enums), read from the edge

E = TypeVar("E", bound=StrEnum)


def parse_enum(enum: type[E], value: object, what: str) -> E:
    """``value`` as a member of ``enum``, or ``invalid_input`` listing the allowed values."""
    try:
        return enum(_text(value, what))
    except ValueError:
        allowed = ", ".join(m.value for m in enum)
        raise InvalidInput(f"{what} {value!r} is not one of: {allowed}") from None


# ---------------------------------------------------------------------------------------------
# Billing accounts [請求先]


def _check_cycle_day(_: object, __: attrs.Attribute[int], value: int) -> None:
    if type(value) is not int or not 1 <= value <= 28:
        raise InvalidInput(f"cycle_start_day must be a day 1–28, got {value!r}")


@attrs.frozen
class PhoneBill:
    """Paid with the phone bill of ``number``; the phone period starts on ``cycle_start_day``."""

    number: str = attrs.field(validator=_check_billing_phone)
    cycle_start_day: int = attrs.field(validator=_check_cycle_day)
    method: ClassVar[str] = "phone_bill"


def _check_billing_number(_: object, __: attrs.Attribute[str], value: str) -> None:
    _text(value, "billing number")
    if not _BILLING_NUMBER.fullmatch(value):
        raise InvalidInput(f"billing number {value!r} must be '00' followed by 8 digits")


@attrs.frozen
class CustomerNumber:
    """Paid by a "00" 10-digit customer number [請求先お客さま番号]."""

    number: str = attrs.field(validator=_check_billing_number)
    method: ClassVar[str] = "customer_number"


@attrs.frozen
class Consolidated:
    """Consolidated billing [おまとめ請求]: billed with the representative line's account."""

    representative: CustomerId
    method: ClassVar[str] = "consolidated"


#: Where a line's charges are billed: with a phone bill, by customer number, or consolidated.
BillingAccount = PhoneBill | CustomerNumber | Consolidated

BILLING_METHODS: dict[str, type[PhoneBill] | type[CustomerNumber] | type[Consolidated]] = {
    "phone_bill": PhoneBill,
    "customer_number": CustomerNumber,
    "consolidated": Consolidated,
}


def billing_to_json(billing: BillingAccount) -> dict[str, Any]:
    """The contract's JSON form of a billing account."""
    if isinstance(billing, PhoneBill):
        return {
            "method": "phone_bill",
            "number": billing.number,
            "cycle_start_day": billing.cycle_start_day,
        }
    if isinstance(billing, CustomerNumber):
        return {"method": "customer_number", "number": billing.number}
    return {"method": "consolidated", "representative": billing.representative.value}


def billing_from_json(data: object) -> BillingAccount:
    """Parse the contract's billing object; any deviation is ``invalid_input``."""
    if not isinstance(data, dict):
        raise InvalidInput("billing must be an object with a 'method'")
    method = data.get("method")
    fields = {k: v for k, v in data.items() if k != "method"}
    if method == "phone_bill":
        _exact_keys(fields, {"number", "cycle_start_day"}, "phone_bill billing")
        return PhoneBill(number=fields["number"], cycle_start_day=fields["cycle_start_day"])
    if method == "customer_number":
        _exact_keys(fields, {"number"}, "customer_number billing")
        return CustomerNumber(number=fields["number"])
    if method == "consolidated":
        _exact_keys(fields, {"representative"}, "consolidated billing")
        return Consolidated(representative=CustomerId(fields["representative"]))
    raise InvalidInput(
        f"billing method {method!r} is not one of: phone_bill, customer_number, consolidated"
    )


def _exact_keys(fields: dict[str, Any], expected: set[str], what: str) -> None:
    extra = sorted(set(fields) - expected)
    missing = sorted(expected - set(fields))
    if extra:
        raise InvalidInput(f"{what} has unknown field(s): {', '.join(extra)}")
    if missing:
        raise InvalidInput(f"{what} is missing field(s): {', '.join(missing)}")


def canonical_json(data: Any) -> str:
    """Canonical JSON text: sorted keys, no insignificant white space, UTF-8 kept readable.

    The one definition of the form: :func:`matome.wire.dumps` is this function, and an issued
    bill is stored as this text of its document (``BillIssued`` v4) so that its digest is the
    SHA-256 of the stored bytes.  It lives here, below the events, because an event's upcaster
    turns an older stored bill into this text and no event may import the documents."""
    try:
        # orjson writes exactly this form for every value matome stores (str, int within 64
        # bits, bool, None, lists, dicts with str keys; never a float), several times faster
        # than ``json``.  tests/unit/test_canonical_json.py holds it to the stdlib's bytes,
        # and to every stored fixture event's bytes, hash and bill digest.
        return orjson.dumps(data, option=_ORJSON_OPTIONS).decode()
    except TypeError:  # orjson.JSONEncodeError: what orjson does not write, json does (or
        # refuses alike): an integer past 64 bits, a key that is not a str, a lone surrogate.
        return _stdlib_canonical_json(data)


def canonical_json_bytes(data: Any) -> bytes:
    """:func:`canonical_json`'s text as UTF-8 bytes, without a round trip through ``str``
    (what a stored event's bytes and its content hash are made of)."""
    try:
        return orjson.dumps(data, option=_ORJSON_OPTIONS)
    except TypeError:  # as in canonical_json
        return _stdlib_canonical_json(data).encode()


#: Times, dates and dataclasses are refused, as ``json`` refuses them, rather than written
#: in orjson's own form.
_ORJSON_OPTIONS = (
    orjson.OPT_SORT_KEYS | orjson.OPT_PASSTHROUGH_DATETIME | orjson.OPT_PASSTHROUGH_DATACLASS
)


def _stdlib_canonical_json(data: Any) -> str:
    """The definition of the canonical form, through the standard library's ``json``."""
    return json.dumps(data, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
