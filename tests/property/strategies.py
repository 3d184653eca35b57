"""Hypothesis strategies for matome's value types and events.

Value types get hand-written strategies that produce only *valid* values (the formats of
docs/rules.md §1).  Events are built from their attrs fields and type hints by :func:`for_type`, so
a new event class is covered as soon as it is registered in ``EVENT_TOPICS``; a field type with no
strategy fails loudly (``LookupError``) instead of being skipped.
"""

from __future__ import annotations

import enum
import types
import typing
from datetime import date, datetime, timedelta, timezone
from typing import Any, Union
from uuid import UUID

import attrs
from hypothesis import strategies as st

import matome.engine  # noqa: F401  # registers every event topic the engine writes
from matome.events import EVENT_TOPICS, DomainEvent
from matome.values import (
    Applicant,
    BillingAccount,
    Consolidated,
    CustomerId,
    CustomerNumber,
    Email,
    PassportId,
    PhoneBill,
    ProviderCode,
    ServiceCode,
    YearMonth,
    Yen,
)

__all__ = [
    "applicants",
    "aware_datetimes",
    "billing_accounts",
    "customer_ids",
    "emails",
    "event_classes",
    "events",
    "for_type",
    "json_values",
    "passport_ids",
    "phone_numbers",
    "provider_codes",
    "service_codes",
    "texts",
    "year_months",
    "yens",
]

#: UTC offsets in whole minutes, as ISO-8601 writes them (-14:00 … +14:00).
offsets = st.integers(-14 * 60, 14 * 60).map(lambda m: timezone(timedelta(minutes=m)))
aware_datetimes = st.datetimes(
    min_value=datetime(1990, 1, 1), max_value=datetime(2100, 12, 31), timezones=offsets
)

#: Text that can be stored: UTF-8 encodable (no lone surrogates) and without NUL characters,
#: which the engine refuses as invalid_input (see test_rules_lines).
texts = st.text(st.characters(codec="utf-8", exclude_characters="\x00"), max_size=40)

_DIGITS = "0123456789"
_ALNUM = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz" + _DIGITS


def _digits(n: int) -> st.SearchStrategy[str]:
    return st.text(_DIGITS, min_size=n, max_size=n)


customer_ids = st.one_of(
    _digits(10).map(lambda d: f"CAF{d}"), _digits(8).map(lambda d: f"COP{d}")
).map(CustomerId)
passport_ids = st.text(_ALNUM + "._@-", min_size=4, max_size=60).map(PassportId)
_codes = st.builds(str.__add__, st.sampled_from(_ALNUM), st.text(_ALNUM + "._-", max_size=31))
provider_codes = _codes.map(ProviderCode)
service_codes = _codes.map(ServiceCode)
emails = st.builds(
    lambda local, labels: f"{local}@{'.'.join(labels)}",
    st.text(_ALNUM + ".!#$%&'*+/=?^_`{|}~-", min_size=1, max_size=30),
    st.lists(st.text(_ALNUM + "-", min_size=1, max_size=12), min_size=2, max_size=4),
).map(Email)


@st.composite
def phone_numbers(draw: st.DrawFn) -> str:
    """Japanese numbers as §1's billing and applicant phones are written: 0 + 9–10 digits in
    up to three hyphenated groups (e.g. 06-1234-5678, 0120123456)."""
    total = draw(st.integers(10, 11))
    last = draw(st.integers(3, 4))
    both = total - 1 - last  # the area and middle groups share what is left
    area = draw(st.integers(max(1, both - 4), min(4, both - 1)))
    parts = ["0" + draw(_digits(area)), draw(_digits(both - area)), draw(_digits(last))]
    hyphens = draw(st.tuples(st.booleans(), st.booleans()))
    return (
        parts[0] + ("-" if hyphens[0] else "") + parts[1] + ("-" if hyphens[1] else "") + parts[2]
    )


applicants = st.builds(
    Applicant,
    name=st.text(
        st.characters(codec="utf-8", exclude_characters="\x00"), min_size=1, max_size=100
    ).filter(str.strip),
    phone=phone_numbers(),
    contract_holder=st.booleans(),
)
yens = st.integers(-(10**9), 10**9).map(Yen)
year_months = st.builds(YearMonth, st.integers(1, 9999), st.integers(1, 12))
phone_bills = st.builds(PhoneBill, number=phone_numbers(), cycle_start_day=st.integers(1, 28))
customer_numbers = st.builds(CustomerNumber, number=_digits(8).map(lambda d: f"00{d}"))
consolidated = st.builds(Consolidated, representative=customer_ids)
billing_accounts: st.SearchStrategy[PhoneBill | CustomerNumber | Consolidated] = st.one_of(
    phone_bills, customer_numbers, consolidated
)

#: JSON documents (what ``dict[str, Any]`` fields hold): no NaN, which is not equal to itself.
json_values: st.SearchStrategy[Any] = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | texts,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(texts, inner, max_size=4),
    max_leaves=12,
)

_BASE: dict[Any, st.SearchStrategy[Any]] = {
    UUID: st.uuids(),
    int: st.integers(0, 2**31),
    bool: st.booleans(),
    str: texts,
    datetime: aware_datetimes,
    date: st.dates(),
    type(None): st.none(),
    CustomerId: customer_ids,
    PassportId: passport_ids,
    ProviderCode: provider_codes,
    ServiceCode: service_codes,
    Email: emails,
    Applicant: applicants,
    Yen: yens,
    YearMonth: year_months,
    PhoneBill: phone_bills,
    CustomerNumber: customer_numbers,
    Consolidated: consolidated,
    Any: json_values,
}
_BILLING_MEMBERS = frozenset(typing.get_args(BillingAccount))


def for_type(tp: Any) -> st.SearchStrategy[Any]:
    """A strategy of valid values of the (resolved) type ``tp``."""
    if tp in _BASE:
        return _BASE[tp]
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if origin in (Union, types.UnionType):
        if frozenset(args) == _BILLING_MEMBERS:
            return billing_accounts
        return st.one_of(*(for_type(a) for a in args))
    if origin is tuple and len(args) == 2 and args[1] is Ellipsis:
        return st.lists(for_type(args[0]), max_size=4).map(tuple)
    if origin is dict and args and args[0] is str:
        return st.dictionaries(texts, for_type(args[1]), max_size=4)
    if isinstance(tp, type) and issubclass(tp, enum.Enum):
        return st.sampled_from(list(tp))
    if isinstance(tp, type) and attrs.has(tp):
        # A value made of other values (a typed document in an event): each field by its type.
        return st.builds(tp, **{name: for_type(t) for name, t in field_types(tp).items()})
    raise LookupError(f"no strategy for field type {tp!r}: add one to tests/property/strategies")


def field_types(cls: type[Any]) -> dict[str, Any]:
    """The resolved type of every attrs field of ``cls``."""
    hints = typing.get_type_hints(cls)
    return {f.name: hints[f.name] for f in attrs.fields(cls)}


def events(cls: type[DomainEvent]) -> st.SearchStrategy[DomainEvent]:
    """Valid instances of the event class ``cls``, every field drawn from its type."""
    return st.builds(cls, **{name: for_type(tp) for name, tp in field_types(cls).items()})


def event_classes() -> list[type[DomainEvent]]:
    """Every registered event class, in topic order."""
    return [EVENT_TOPICS[topic] for topic in sorted(EVENT_TOPICS)]
