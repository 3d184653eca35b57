"""Refusals of a command in the contract's words (:mod:`matome.commands`): the field a refusal
is about named in front, and contract 2's own refusals of the values contract 3 widened.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from matome.errors import InvalidInput
from matome.values import (
    Applicant,
    Password,
)


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
