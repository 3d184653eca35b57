"""``matome schema``: the JSON Schema (draft 2020-12) of a command-log line, generated from the
command classes of ``matome.commands``; the copy shipped in ``matome/reference`` is the
generator's output, and every command the kit's strategies produce validates against it."""

from __future__ import annotations

import json
from importlib import resources
from typing import Any

import attrs
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from matome import cli, schema
from matome.commands import COMMANDS
from matome.testing import strategies as mst

jsonschema = pytest.importorskip("jsonschema")

SCHEMA = schema.command_log_schema()
VALIDATOR = jsonschema.Draft202012Validator(
    SCHEMA, format_checker=jsonschema.Draft202012Validator.FORMAT_CHECKER
)


def _errors(body: Any) -> list[str]:
    return [e.message for e in VALIDATOR.iter_errors(body)]


def test_schema_command_prints_the_generated_schema(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["schema"]) == 0
    assert json.loads(capsys.readouterr().out) == SCHEMA


def test_shipped_schema_file_equals_what_the_generator_produces() -> None:
    shipped = resources.files("matome").joinpath("reference/command-log.schema.json")
    assert shipped.read_text(encoding="utf-8") == schema.schema_text(), (
        "regenerate it: matome schema > src/matome/reference/command-log.schema.json"
    )


def test_schema_is_a_valid_draft_2020_12_schema() -> None:
    assert SCHEMA["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    jsonschema.Draft202012Validator.check_schema(SCHEMA)


def test_schema_has_every_command_with_its_fields_and_required_ones() -> None:
    assert set(SCHEMA["$defs"]) == set(COMMANDS)
    for name, cls in COMMANDS.items():
        definition = SCHEMA["$defs"][name]
        fields = {f.name for f in attrs.fields(cls)}
        assert set(definition["properties"]) == fields | {"command"}
        required = {f.name for f in attrs.fields(cls) if f.default is attrs.NOTHING}
        assert set(definition["required"]) == required | {"command"}
        assert definition["additionalProperties"] is False


def test_schema_gives_enums_and_formats() -> None:
    purchase = SCHEMA["$defs"]["purchase"]["properties"]
    assert purchase["at"]["format"] == "date-time"
    assert purchase["quantity"] == {"type": "integer", "minimum": 1, "maximum": 99}
    line = SCHEMA["$defs"]["open_line"]["properties"]
    assert set(line["operator"]["enum"]) == {"east", "west"}
    assert line["line_limit"]["maximum"] == 99_999_999
    assert {o["properties"]["method"]["const"] for o in line["billing"]["oneOf"]} == {
        "phone_bill",
        "customer_number",
        "consolidated",
    }
    assert SCHEMA["$defs"]["register_passport"]["properties"]["email"]["format"] == "email"


@settings(max_examples=300, deadline=None)
@given(st.sampled_from(sorted(COMMANDS)).flatmap(mst._command_json))
def test_every_valid_command_of_the_kit_validates_against_the_schema(body: dict[str, Any]) -> None:
    assert _errors(body) == [], body


@settings(max_examples=30, deadline=None)
@given(mst.command_logs(max_steps=25))
def test_every_command_of_a_generated_log_validates_against_the_schema(
    log: list[dict[str, Any]],
) -> None:
    for body in log:
        assert _errors(body) == [], body


@pytest.mark.parametrize(
    "body",
    [
        {"command": "no_such_command", "at": "2024-01-01T00:00:00+09:00"},
        {"command": "issue_bills", "at": "2024-01-01T00:00:00+09:00"},  # no month
        {"command": "issue_bills", "at": "2024-01-01T00:00:00+09:00", "month": "2024-13"},
        {"command": "issue_bills", "at": "2024-02-01T00:00:00+09:00", "month": "2024-01", "x": 1},
        {"command": "set_fee", "at": "2024-02-01T00:00:00+09:00", "operator": "north",
         "effective_from": "2024-02", "flat_fee": 50},
        {"command": "cancel", "at": "2024-02-01T00:00:00+09:00", "password": "Pass1234"},
        {"command": "refund", "at": "2024-02-01T00:00:00+09:00", "amount": -1, "reason": "x",
         "receipt": "R1"},
    ],
    ids=["unknown", "missing", "bad-month", "extra-field", "bad-enum", "no-purchase", "negative"],
)  # fmt: skip
def test_schema_refuses_what_the_contract_refuses(body: dict[str, Any]) -> None:
    assert _errors(body)
