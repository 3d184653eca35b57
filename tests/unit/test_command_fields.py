"""The fields of the commands: one converter per value type, told its field's name when the
command class is made (``matome._command_fields``), so each refusal names the field it is
about — for a required field and an optional one alike (docs/contract.md, "Command log")."""

from __future__ import annotations

import inspect
from typing import Any

import attrs
import pytest

from matome import commands as cmd
from matome.errors import InvalidInput
from matome.values import LineKind

#: Values of the right type but out of bounds for one field type or another (a value of the
#: wrong type may be refused by the value type's own parser, which names the type: "month
#: must be a string"; the command log then puts the field in front).
OUT_OF_BOUNDS = ("", -1, 0, "1990-01", "x" * 300, "yes", object())


def _named_fields() -> list[tuple[type[cmd.Command[Any]], attrs.Attribute[Any]]]:
    """Every (command class, field) whose converter was bound to the field's name."""
    return [
        (cls, field)
        for cls in cmd.COMMANDS.values()
        for field in attrs.fields(cls)
        if field.converter is not None
        and getattr(field.converter, "__name__", "") in ("named", "named_or_none")
    ]


def test_every_converter_of_a_value_type_is_bound_to_its_field() -> None:
    """The fields whose converter serves a whole value type (yen, flags, labels, enums,
    months, periods) are all bound — optional ones through ``attrs.converters.optional``."""
    bound = {(cls.NAME, field.name) for cls, field in _named_fields()}
    assert ("open_line", "line_limit") in bound
    assert ("change_line", "new_kind") in bound  # optional
    assert ("list_service", "period_days") in bound  # optional, contract 3
    assert ("set_fee", "effective_from") in bound
    for cls in cmd.COMMANDS.values():
        for field in attrs.fields(cls):
            convert = field.converter
            if (cls.NAME, field.name) in bound or convert is None:
                continue
            assert "what" not in inspect.signature(convert).parameters, (cls.NAME, field.name)


@pytest.mark.parametrize(
    ("cls", "field"), _named_fields(), ids=lambda x: getattr(x, "NAME", getattr(x, "name", ""))
)
def test_a_refused_value_names_its_own_field(
    cls: type[cmd.Command[Any]], field: attrs.Attribute[Any]
) -> None:
    """A converter serving a whole value type, bound to this field, names this field (not
    another field of its type) when it refuses a value that is out of its bounds."""
    convert = field.converter
    assert callable(convert)
    messages = []
    for value in OUT_OF_BOUNDS:
        try:
            convert(value)
        except InvalidInput as e:
            messages.append(e.message)
    assert any(message.startswith(f"{field.name} ") for message in messages), messages


def test_an_optional_field_lets_none_through_and_converts_the_rest() -> None:
    line = cmd.ChangeLine(
        at="2024-01-04T09:00:00+09:00",
        customer_id="CAF0000000001",
        change="menu_change",
        new_kind="hikari_light",
    )
    assert line.new_kind is LineKind.HIKARI_LIGHT
    with pytest.raises(InvalidInput, match=r"^new_kind 'x' is not one of"):
        cmd.ChangeLine(
            at="2024-01-04T09:00:00+09:00",
            customer_id="CAF0000000001",
            change="menu_change",
            new_kind="x",
        )
    moved = cmd.ChangeLine(
        at="2024-01-04T09:00:00+09:00", customer_id="CAF0000000001", change="relocation"
    )
    assert moved.new_kind is None
