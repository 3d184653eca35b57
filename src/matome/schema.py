"""The JSON Schema of the command log, generated from the command classes.

``matome schema`` prints it; the package ships it as ``matome/reference/command-log.schema.json``
(:func:`matome.reference.text`), and a test keeps the two the same.  It is generated from
:mod:`matome.commands` — the one definition of the contract's commands — and the patterns and
bounds :mod:`matome.values` checks with, so the schema and the reader cannot drift apart.  The
schema says what a line may look like; the engine still decides whether it is accepted.
"""

from __future__ import annotations

import json
import re
from datetime import datetime
from enum import StrEnum
from typing import Any, get_args, get_type_hints

import attrs

from matome import commands, values
from matome.commands import COMMANDS
from matome.credentials import MAX_PHC_LENGTH

__all__ = ["SCHEMA_ID", "command_log_schema", "schema_text"]


#: Where the schema is published with the package (``matome.reference``).
SCHEMA_ID = "urn:matome:command-log"


def _pattern(regex: re.Pattern[str]) -> str:
    return f"^(?:{regex.pattern})$"


def _value_schemas() -> dict[Any, dict[str, Any]]:
    """JSON Schema of each value type a command field may hold, from the same patterns and
    bounds :mod:`matome.values` checks with."""
    code = {"type": "string", "pattern": _pattern(values._CODE)}
    return {
        datetime: {
            "type": "string",
            "format": "date-time",
            "description": "business time, ISO-8601 with a UTC offset; Tokyo date "
            f"{values.FIRST_DAY} … {values.LAST_DAY}",
        },
        values.CustomerId: {
            "type": "string",
            "pattern": f"^(?:{values._CUSTOMER_CAF.pattern}|{values._CUSTOMER_COP.pattern})$",
        },
        values.PassportId: {"type": "string", "pattern": _pattern(values._PASSPORT_ID)},
        values.Password: {"type": "string", "pattern": _pattern(values._PASSWORD)},
        values.AccessKey: {"type": "string", "pattern": _pattern(values._ACCESS_KEY)},
        values.ProviderCode: code,
        values.ServiceCode: code,
        values.Email: {"type": "string", "format": "email", "maxLength": 254},
        values.Yen: {"type": "integer", "minimum": 0, "maximum": values.MAX_YEN},
        values.YearMonth: {"type": "string", "pattern": "^20[0-9]{2}-(?:0[1-9]|1[0-2])$"},
        bool: {"type": "boolean"},
        values.Applicant: {
            "type": "object",
            "properties": {
                "name": {"type": "string", "minLength": 1, "maxLength": 100},
                "phone": {"type": "string", "pattern": _pattern(values._PHONE)},
                "contract_holder": {"type": "boolean"},
            },
            "required": ["name", "phone", "contract_holder"],
            "additionalProperties": False,
        },
    }


def _billing_schema(customer_id: dict[str, Any]) -> dict[str, Any]:
    def method(name: str, **fields: Any) -> dict[str, Any]:
        return {
            "type": "object",
            "properties": {"method": {"const": name}, **fields},
            "required": ["method", *fields],
            "additionalProperties": False,
        }

    phone = {"type": "string", "pattern": _pattern(values._PHONE)}
    return {
        "oneOf": [
            method("phone_bill", number=phone, cycle_start_day={"type": "integer"} | _DAYS),
            method(
                "customer_number",
                number={"type": "string", "pattern": _pattern(values._BILLING_NUMBER)},
            ),
            method("consolidated", representative=customer_id),
        ]
    }


_DAYS = {"minimum": 1, "maximum": 28}

#: Text fields (plain ``str``): their bounds, as the command converters check them.
_TEXT_BOUNDS = {"key": 200, "receipt": 64, "ref": 64, "purchase_ref": 64, "channel": 40}

#: Rules across fields that a command checks after its fields (``__attrs_post_init__``).
_CROSS_FIELD: dict[str, dict[str, Any]] = {
    "cancel": {"oneOf": [{"required": ["receipt"]}, {"required": ["purchase_ref"]}]},
    "refund": {"oneOf": [{"required": ["receipt"]}, {"required": ["purchase_ref"]}]},
    "open_line": {"oneOf": [{"required": ["access_key"]}, {"required": ["access_key_hash"]}]},
    "register_passport": {
        "allOf": [
            {"anyOf": [{"required": ["access_key"]}, {"required": ["via_provider"]}]},
            {"oneOf": [{"required": ["password"]}, {"required": ["password_hash"]}]},
        ]
    },
    "change_passport_details": {
        "anyOf": [{"required": ["password"]}, {"required": ["email"]}, {"required": ["line_auth"]}]
    },
    # §11: a service period in months for a monthly-flat service, in days for an item.
    "list_service": {
        "allOf": [
            {
                "if": {"required": ["period_months"]},
                "then": {"properties": {"pricing": {"const": "monthly"}}},
            },
            {
                "if": {"required": ["period_days"]},
                "then": {"properties": {"pricing": {"const": "per_purchase"}}},
            },
        ]
    },
}

#: A secret's hash brought by a migration (contract 3, "Credentials at scale"): a PHC string
#: of argon2id, scrypt or pbkdf2-sha256; the minimum parameters are checked by the reader.
_PHC = {
    "type": "string",
    "pattern": r"^\$(?:argon2id|scrypt|pbkdf2-sha256)\$[^$]+(?:\$[^$]+){2,3}$",
    "maxLength": MAX_PHC_LENGTH,
    "description": "PHC string of argon2id, scrypt or pbkdf2-sha256 at no less than OWASP's "
    "minimum parameters (contract 3)",
}
_PHC_FIELDS = ("access_key_hash", "password_hash")

#: Whole-number fields: their bounds, as the command converters check them (quantity §4,
#: service periods §11).
_INT_BOUNDS = {
    "quantity": 99,
    "period_months": commands.MAX_PERIOD_MONTHS,
    "period_days": commands.MAX_PERIOD_DAYS,
}


def _field_schema(name: str, hint: Any, known: dict[Any, dict[str, Any]]) -> dict[str, Any]:
    if name in _PHC_FIELDS:
        return dict(_PHC)
    options = [a for a in get_args(hint) if a is not type(None)] or [hint]
    if len(options) > 1:  # the billing account: one object per method
        return _billing_schema(known[values.CustomerId])
    (kind,) = options
    if isinstance(kind, type) and issubclass(kind, StrEnum):
        return {"type": "string", "enum": [m.value for m in kind]}
    if kind in known:
        return dict(known[kind])
    if kind is int:
        return {"type": "integer", "minimum": 1, "maximum": _INT_BOUNDS[name]}
    if kind is str:
        bound = _TEXT_BOUNDS.get(name, 200)
        return {"type": "string", "minLength": 1, "maxLength": bound}
    raise TypeError(f"no JSON Schema for field {name} of type {kind!r}")  # pragma: no cover


def command_log_schema() -> dict[str, Any]:
    """The JSON Schema (draft 2020-12) of one line of a command log, generated from the
    command classes of :mod:`matome.commands` — the one definition of the contract's
    commands: every command, its fields, which are required, their enums and formats.

    The schema says what a line may look like; the engine still decides whether it is
    accepted (an unknown Passport ID, a wrong password, a month not yet ended ...)."""
    known = _value_schemas()
    defs: dict[str, Any] = {}
    for name in sorted(COMMANDS):
        cls = COMMANDS[name]
        hints = get_type_hints(cls)
        properties: dict[str, Any] = {"command": {"const": name}}
        required = ["command"]
        for field in attrs.fields(cls):
            properties[field.name] = _field_schema(field.name, hints[field.name], known)
            if field.default is attrs.NOTHING:
                required.append(field.name)
            # A secret a migration may give as its hash instead ("or"): required by the
            # command's cross-field rule (_CROSS_FIELD), one or the other.
        doc = " ".join((cls.__doc__ or "").split("\n\n")[0].split())
        definition: dict[str, Any] = {
            "type": "object",
            **({"description": doc} if doc else {}),
            "properties": properties,
            "required": required,
            "additionalProperties": False,
            **_CROSS_FIELD.get(name, {}),
        }
        defs[name] = definition
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": SCHEMA_ID,
        "title": "matome command log line",
        "description": "One line of a command log (JSON Lines; the contract's 'Command log', "
        "docs/contract.md): one command object.  Generated by `matome schema` from "
        "matome.commands.",
        "type": "object",
        "required": ["command"],
        "properties": {"command": {"enum": sorted(COMMANDS)}},
        "oneOf": [{"$ref": f"#/$defs/{name}"} for name in sorted(COMMANDS)],
        "$defs": defs,
    }


def schema_text() -> str:
    """:func:`command_log_schema` as the text of ``command-log.schema.json``."""
    return json.dumps(command_log_schema(), ensure_ascii=False, indent=2) + "\n"
