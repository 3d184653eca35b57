"""Fuzzing the command-log reader: no line ends a run (docs/contract.md, "Command log").

``parse_line`` lets only :class:`~matome.errors.InvalidInput` escape, whatever the line holds
(bytes, JSON of any shape, numbers a JSON reader chokes on, lone surrogates, duplicate keys,
lines near and beyond 64 KiB, deep nesting); ``apply_line`` never raises and answers the
contract's result object; a refused line changes nothing in the store (but a counted wrong
password); and a valid command with one field broken — an amount or a time beyond the bounds,
an unknown or a missing field, a duplicate key, a value of the wrong type — is that line's
``invalid_input`` naming the field.
"""

from __future__ import annotations

import json
import re
import string
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from typing import Any

import attrs
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from matome.commands import COMMANDS
from matome.engine import Engine
from matome.errors import InvalidInput
from matome.interchange import MAX_LINE_BYTES, apply_line, parse_line
from matome.testing import strategies as mst
from matome.values import MAX_YEN, TOKYO
from tests.fuzz import ERROR_CODES, HISTORY, event_count, history_lines, seeded_engine

#: The history's commands as JSON objects: valid in form (most are refused again as
#: duplicates or out of time order, which is fine: they are bases to break).
VALID: list[dict[str, Any]] = [json.loads(line) for line in history_lines()]

#: Every field that holds an amount of yen, per command.
YEN = {"line_limit", "price", "limit", "amount", "flat_fee"}
YEN_FIELDS = {
    name: [f.name for f in attrs.fields(cls) if f.name in YEN] for name, cls in COMMANDS.items()
}

#: Building a command log with the kit may be slow: no health check on that.
FUZZ = settings(suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])


@pytest.fixture(scope="module")
def engine() -> Iterator[Engine]:
    """One in-memory engine with :data:`tests.fuzz.HISTORY`, shared by a module's examples
    (what they add to it only makes the state they meet more varied)."""
    e = seeded_engine()
    yield e
    e.close()


# ---------------------------------------------------------------------------------------------
# Strategies


def surrogates() -> st.SearchStrategy[str]:
    """Lone surrogates: JSON's ``\\ud800`` escapes read as these."""
    return st.integers(0xD800, 0xDFFF).map(chr)


def odd_text(max_size: int = 30) -> st.SearchStrategy[str]:
    """Text with anything in it: control characters, NUL, astral planes, lone surrogates."""
    return st.lists(st.one_of(st.characters(), surrogates()), max_size=max_size).map("".join)


def huge_ints() -> st.SearchStrategy[int]:
    return st.one_of(
        st.integers(),
        st.sampled_from([2**31, 2**53 + 1, 2**63, 2**64, 10**25, -(10**25), 10**4000]),
    )


def json_scalars() -> st.SearchStrategy[Any]:
    return st.one_of(
        st.none(),
        st.booleans(),
        huge_ints(),
        st.floats(),  # NaN and ±Infinity are written as JSON's NaN/Infinity tokens
        odd_text(),
    )


def json_values(max_leaves: int = 20) -> st.SearchStrategy[Any]:
    """Any JSON value (nested arrays and objects, keys of any text)."""
    return st.recursive(
        json_scalars(),
        lambda inner: st.one_of(
            st.lists(inner, max_size=4), st.dictionaries(odd_text(8), inner, max_size=4)
        ),
        max_leaves=max_leaves,
    )


def _dumps(value: Any, ascii_only: bool) -> str:
    return json.dumps(value, ensure_ascii=ascii_only)


def encoded(text: str, as_bytes: bool) -> str | bytes:
    """``text`` as ``parse_line`` may be handed it: a ``str`` (lone surrogates and all), or
    bytes (a lone surrogate cannot be UTF-8; it is written as its escape then)."""
    if not as_bytes:
        return text
    return text.encode("utf-8", "backslashreplace")


#: Pieces of JSON and near-JSON, glued at random.
TOKENS = [
    "{",
    "}",
    "[",
    "]",
    ",",
    ":",
    " ",
    '"command"',
    '"purchase"',
    '"at"',
    '"2024-02-10T10:00:00+09:00"',
    '"price"',
    "NaN",
    "Infinity",
    "-Infinity",
    "1e400",
    "-0",
    "0.1",
    "9" * 5000,
    "true",
    "null",
    '"\\ud800"',
    '"\\udc00x"',
    '"\\u0000"',
    '"\\x"',
    "\x00",
    "\ufeff",
    "'single'",
]


def token_soup() -> st.SearchStrategy[str]:
    return st.lists(st.sampled_from(TOKENS), max_size=30).map("".join)


def command_shaped() -> st.SearchStrategy[dict[str, Any]]:
    """An object with a real command name and any of that command's fields, of any value."""

    def shaped(name: str) -> st.SearchStrategy[dict[str, Any]]:
        fields = {f.name: json_values(6) for f in attrs.fields(COMMANDS[name])}
        return st.fixed_dictionaries({"command": st.just(name)}, optional=fields)

    return st.sampled_from(sorted(COMMANDS)).flatmap(shaped)


def valid_commands() -> st.SearchStrategy[dict[str, Any]]:
    """Valid contract-2 commands: the history's, and those of realistic logs from the kit."""
    return st.one_of(
        st.sampled_from(VALID),
        mst.command_logs(max_steps=4).flatmap(st.sampled_from),
    ).map(dict)


def out_of_bounds_yen() -> st.SearchStrategy[Any]:
    """What no amount may be: beyond 0–99,999,999, a bool, a float, text, null, a container."""
    return st.one_of(
        st.integers(min_value=MAX_YEN + 1),
        st.integers(max_value=-1),
        st.sampled_from(
            [
                MAX_YEN + 1,
                -1,
                10**25,
                True,
                False,
                1.5,
                100.0,
                float("nan"),
                float("inf"),
                "100",
                None,
                [],
                {},
            ]
        ),
        mst.invalid_yen(),
    )


def _in_bounds(text: str) -> bool:
    """Whether ``text`` is an aware ISO-8601 time whose Tokyo date lies in 2000 … 2099."""
    try:
        at = datetime.fromisoformat(text)
    except ValueError:
        return False
    if at.utcoffset() is None:
        return False
    try:
        year = at.astimezone(TOKYO).year
    except OverflowError:
        return False
    return 2000 <= year <= 2099


def _offsets() -> st.SearchStrategy[timezone]:
    return st.integers(-(24 * 60 - 1), 24 * 60 - 1).map(lambda m: timezone(timedelta(minutes=m)))


def bad_times() -> st.SearchStrategy[Any]:
    """``at`` values that are refused: out of 2000 … 2099 (years 1, 1999, 2100, 9999 …),
    naive, garbage text, or not text at all."""
    far = st.one_of(
        st.datetimes(datetime(1, 1, 1), datetime(1999, 12, 29)),
        st.datetimes(datetime(2100, 1, 3), datetime(9999, 12, 31, 23, 59, 59)),
    )
    return st.one_of(
        st.builds(lambda d, tz: d.replace(tzinfo=tz).isoformat(), far, _offsets()),
        st.sampled_from(
            [
                "0001-01-01T00:00:00+09:00",
                "0001-01-01T00:00:00-23:59",
                "1999-12-31T23:59:59+09:00",
                "2100-01-01T00:00:00+09:00",
                "9999-12-31T23:59:59-09:00",
                "9999-12-31T23:59:59.999999+23:59",
                "2024-02-10T10:00:00",
                "2024-02-10",
                "",
                "now",
                "2024-13-01T00:00:00+09:00",
                "2024-02-10T10:00:00+25:00",
            ]
        ),
        st.datetimes(datetime(2000, 1, 2), datetime(2099, 12, 30)).map(
            lambda d: d.isoformat()  # naive
        ),
        odd_text().filter(lambda s: not _in_bounds(s)),
        json_values(4).filter(lambda v: not isinstance(v, str)),
    )


def _text_fields(obj: dict[str, Any], path: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    """The paths of every text value of a command (in nested objects too), but its name."""
    paths: list[tuple[str, ...]] = []
    for key, value in obj.items():
        if isinstance(value, str) and (*path, key) != ("command",):
            paths.append((*path, key))
        elif isinstance(value, dict):
            paths += _text_fields(value, (*path, key))
    return paths


@st.composite
def tweaked(draw: st.DrawFn, text: str) -> str:
    """``text`` with one small edit: a character dropped, added, changed or doubled, the text
    cut short or its case changed — what catches format checks off by one."""
    how = draw(st.sampled_from(["drop", "add", "change", "double", "cut", "case"]))
    i = draw(st.integers(0, max(len(text) - 1, 0)))
    char = draw(st.one_of(st.sampled_from(list("0aZ-_.@:+ T\x00\u3000０")), st.characters()))
    if how == "drop":
        return text[:i] + text[i + 1 :]
    if how == "add":
        return text[:i] + char + text[i:]
    if how == "change":
        return text[:i] + char + text[i + 1 :]
    if how == "double":
        return text + text
    if how == "cut":
        return text[:i]
    return text.swapcase()


@st.composite
def broken_commands(draw: st.DrawFn) -> tuple[str | bytes, str | None]:
    """A valid command with one thing broken: the line, and the field its ``invalid_input``
    must name (``None``: a value of any type, which may or may not be valid)."""
    command = draw(valid_commands())
    name = command["command"]
    fields = {f.name: f for f in attrs.fields(COMMANDS[name])}
    how = draw(
        st.sampled_from(
            ["yen", "at", "unknown", "missing", "duplicate", "tweak", "any_value", "any_new"]
        )
    )
    expected: str | None = None
    duplicate: tuple[str, Any] | None = None
    if how == "yen" and YEN_FIELDS[name]:
        expected = draw(st.sampled_from(YEN_FIELDS[name]))
        command[expected] = draw(out_of_bounds_yen())
    elif how == "at":
        expected = "at"
        command["at"] = draw(bad_times())
    elif how == "unknown":
        expected = draw(
            st.text(string.printable, min_size=1, max_size=12).filter(
                lambda s: s not in fields and s != "command"
            )
        )
        command[expected] = draw(json_values(4))
    elif how == "missing":
        required = sorted(n for n, f in fields.items() if f.default is attrs.NOTHING)
        expected = draw(st.sampled_from(required))
        del command[expected]
    elif how == "duplicate":
        expected = draw(st.sampled_from(sorted(command)))
        duplicate = (expected, draw(st.one_of(st.just(command[expected]), json_values(4))))
    elif how == "tweak":  # one text value edited slightly (it may still be valid)
        *path, last = draw(st.sampled_from(_text_fields(command)))
        holder = command
        for key in path:  # copy nested objects: the bases are shared
            inner = dict(holder[key])
            holder[key] = inner
            holder = inner
        holder[last] = draw(tweaked(holder[last]))
    elif how == "any_value":
        field = draw(st.sampled_from(sorted(command)))
        command[field] = draw(json_values(8))
    else:  # any field of the command, present or not, with any value
        command[draw(st.sampled_from(sorted(fields)))] = draw(json_values(8))
    text = _dumps(command, draw(st.booleans()))
    if duplicate is not None:
        key, value = duplicate
        text = "{" + f"{json.dumps(key)}: {json.dumps(value)}, " + text[1:]
    return encoded(text, draw(st.booleans())), expected


# ---------------------------------------------------------------------------------------------
# Checks


def names(message: str, field: str) -> bool:
    """Whether ``message`` names ``field``: as a word, or spelled with spaces ("line limit",
    "Passport ID"); the command's name that prefixes a message does not count."""
    head, sep, rest = message.partition(": ")
    if sep and head in COMMANDS:
        message = rest
    for spelling, flags in ((field, 0), (field.replace("_", " "), re.IGNORECASE)):
        if re.search(rf"(?<![A-Za-z0-9_]){re.escape(spelling)}(?![A-Za-z0-9_])", message, flags):
            return True
    return False


def parse_or_refuse(text: str | bytes) -> InvalidInput | None:
    """Parse one line: ``None`` if it is a command, its ``invalid_input`` if not; anything else
    that escapes fails the test."""
    refusal: InvalidInput | None = None
    try:
        parse_line(text)
    except InvalidInput as e:
        refusal = e
    if refusal is not None:
        assert refusal.code == "invalid_input"
        assert isinstance(refusal.message, str)
        assert refusal.message
    return refusal


def check_result(result: dict[str, Any], number: int) -> None:
    """The contract's result object, writable as one line of UTF-8 JSON."""
    assert result["line"] == number
    assert result["ok"] in (True, False)
    if not result["ok"]:
        assert set(result) == {"line", "ok", "error"}, result
        error = result["error"]
        assert set(error) == {"code", "message"}, error
        assert error["code"] in ERROR_CODES, error
        assert isinstance(error["message"], str), error
        assert error["message"], error
    line = json.dumps(result, ensure_ascii=False)
    line.encode("utf-8")  # no lone surrogate in what `matome run` prints
    assert "\n" not in line


def apply_checked(engine: Engine, text: str | bytes, number: int = 7) -> dict[str, Any]:
    """``apply_line`` must not raise; its result is checked, and a refusal (but a counted wrong
    password) must leave the store as it was."""
    before = event_count(engine)
    result = apply_line(engine, number, text)
    check_result(result, number)
    if not result["ok"] and result["error"]["code"] != "wrong_password":
        assert event_count(engine) == before, result
    return result


def check_line(engine: Engine, text: str | bytes) -> dict[str, Any]:
    """Parse and apply one line: ``parse_line``'s refusal is ``apply_line``'s answer."""
    refusal = parse_or_refuse(text)
    result = apply_checked(engine, text)
    if refusal is not None:
        assert result["error"] == refusal.to_json(), (result, refusal)
    return result


# ---------------------------------------------------------------------------------------------
# Properties


@FUZZ
@given(data=st.one_of(st.binary(max_size=400), st.binary(max_size=400).map(lambda b: b"{" + b)))
def test_arbitrary_bytes_are_at_most_invalid_input(engine: Engine, data: bytes) -> None:
    check_line(engine, data)


@FUZZ
@given(value=json_values(), ascii_only=st.booleans(), as_bytes=st.booleans())
def test_any_json_value_is_at_most_invalid_input(
    engine: Engine, value: Any, ascii_only: bool, as_bytes: bool
) -> None:
    check_line(engine, encoded(_dumps(value, ascii_only), as_bytes))


@FUZZ
@given(text=token_soup(), as_bytes=st.booleans())
def test_json_token_soup_is_at_most_invalid_input(
    engine: Engine, text: str, as_bytes: bool
) -> None:
    check_line(engine, encoded(text, as_bytes))


@FUZZ
@given(command=command_shaped(), ascii_only=st.booleans(), as_bytes=st.booleans())
def test_command_shaped_objects_never_escape(
    engine: Engine, command: dict[str, Any], ascii_only: bool, as_bytes: bool
) -> None:
    """Real command names with any subset of their fields, of any value: the converters meet
    every type; a line that parses is executed, and whatever the engine answers is a result."""
    check_line(engine, encoded(_dumps(command, ascii_only), as_bytes))


@FUZZ
@given(
    size=st.one_of(
        st.integers(0, 2000),
        st.integers(MAX_LINE_BYTES - 300, MAX_LINE_BYTES + 300),
        st.integers(MAX_LINE_BYTES, 4 * MAX_LINE_BYTES),
    ),
    shape=st.sampled_from(["string", "array", "object", "mixed", "escapes"]),
    as_bytes=st.booleans(),
)
def test_long_and_deep_lines(engine: Engine, size: int, shape: str, as_bytes: bool) -> None:
    """Very long strings and nesting up to (and past) the 64 KiB line limit."""
    if shape == "string":
        filler = json.dumps("x" * size)
    elif shape == "array":
        filler = "[" * (size // 2) + "]" * (size // 2)
    elif shape == "object":
        depth = size // 6
        filler = '{"a":' * depth + "1" + "}" * depth
    elif shape == "mixed":
        depth = size // 7
        filler = '[{"a":' * depth + "0" + "}]" * depth
    else:
        filler = json.dumps("\ud800" * (size // 6))
    head = {k: v for k, v in VALID[0].items() if k != "name"}
    text = json.dumps(head)[:-1] + ', "name": ' + filler + "}"
    result = check_line(engine, encoded(text, as_bytes))
    if len(text.encode()) > MAX_LINE_BYTES:
        assert result["error"]["code"] == "invalid_input", result
        assert "line" in result["error"]["message"], result


@FUZZ
@given(case=broken_commands())
def test_a_valid_command_with_one_field_broken(
    engine: Engine, case: tuple[str | bytes, str | None]
) -> None:
    """Yen beyond 0–99,999,999 (or not an integer), ``at`` out of range, naive or garbage,
    unknown, missing and duplicate fields are ``invalid_input`` naming the field; a field of any
    other value is answered (accepted or refused), and never raises."""
    text, field = case
    result = check_line(engine, text)
    if field is not None:
        assert not result["ok"], (text, result)
        assert result["error"]["code"] == "invalid_input", (text, result)
        message = result["error"]["message"]
        if "unknown field(s): " in message:  # a field name of any text is listed as it is
            assert field in message.partition("unknown field(s): ")[2], (field, message)
        else:
            assert names(message, field), (field, message)


@FUZZ
@given(command=mst.invalid_commands(), ascii_only=st.booleans(), as_bytes=st.booleans())
def test_the_kits_invalid_commands_are_invalid_input(
    engine: Engine, command: dict[str, Any], ascii_only: bool, as_bytes: bool
) -> None:
    result = check_line(engine, encoded(_dumps(command, ascii_only), as_bytes))
    assert not result["ok"]
    assert result["error"]["code"] == "invalid_input", result


@FUZZ
@given(log=mst.command_logs(max_steps=15))
def test_valid_logs_are_answered_line_by_line(log: list[dict[str, Any]]) -> None:
    """A realistic log on a fresh engine: every line is answered, none raises, refusals
    change nothing (but counted wrong passwords)."""
    engine = Engine.open(":memory:", hash_iterations=1)
    try:
        for number, command in enumerate(log, start=1):
            apply_checked(engine, json.dumps(command, ensure_ascii=False), number)
    finally:
        engine.close()


# ---------------------------------------------------------------------------------------------
# Every field of every command, of a type it never takes: invalid_input naming the field

#: One valid JSON body of each command (besides ``command`` and ``at``), every optional field
#: given (but ``purchase_ref``: a purchase is named by its receipt or its reference).
BODIES: dict[str, dict[str, Any]] = {
    "open_line": {
        "customer_id": "CAF0000000009",
        "operator": "west",
        "kind": "hikari_next",
        "access_key": "Ak3y0009",
        "line_limit": 10_000,
        "billing": {"method": "customer_number", "number": "0012345678"},
    },
    "change_line_limit": {"customer_id": "CAF0000000001", "line_limit": 5_000},
    "change_billing": {
        "customer_id": "CAF0000000001",
        "billing": {"method": "customer_number", "number": "0012345678"},
        "reason": "customer_number",
    },
    "change_line": {
        "customer_id": "CAF0000000001",
        "change": "relocation",
        "new_customer_id": "CAF0000000009",
    },
    "regulate_line": {"customer_id": "CAF0000000001"},
    "lift_regulation": {"customer_id": "CAF0000000001", "channel": "written"},
    "set_notification": {
        "customer_id": "CAF0000000001",
        "access_key": "Ak3y0001",
        "provider": "A",
        "notify": True,
        "consent": True,
        "channel": "web",
    },
    "register_provider": {
        "provider": "C",
        "name": "C Co.",
        "contact": "0120-000-333",
        "goods": "information",
    },
    "list_service": {
        "provider": "A",
        "service": "news",
        "name": "news",
        "pricing": "monthly",
        "price": 300,
    },
    "register_passport": {
        "customer_id": "CAF0000000001",
        "access_key": "Ak3y0001",
        "passport_id": "new.id",
        "password": "Pass1234",
        "email": "new@example.jp",
        "applicant": {"name": "山田", "phone": "06-1234-5678", "contract_holder": True},
        "limit": 1_000,
        "line_auth": False,
        "via_provider": "A",
    },
    "change_passport_limit": {"passport_id": "yamada.taro", "access_key": "Ak3y0001", "limit": 1},
    "change_passport_details": {
        "passport_id": "yamada.taro",
        "access_key": "Ak3y0001",
        "password": "Pass1234",
        "email": "taro@example.jp",
        "line_auth": True,
    },
    "delete_passport": {"passport_id": "yamada.taro", "access_key": "Ak3y0001"},
    "reset_password": {"passport_id": "yamada.taro", "password": "Pass1234", "channel": "phone"},
    "purchase": {
        "passport_id": "yamada.taro",
        "password": "Pass1234",
        "provider": "A",
        "service": "stamp",
        "presented_line": "CAF0000000001",
        "quantity": 2,
        "ref": "order-9",
    },
    "cancel": {"receipt": "R0000000001", "password": "Pass1234"},
    "refund": {"receipt": "R0000000001", "amount": 100, "reason": "返金"},
    "erase_personal_data": {"passport_id": "yamada.taro", "reason": "本人からの請求"},
    "set_fee": {"operator": "east", "effective_from": "2024-02", "flat_fee": 50},
    "issue_bills": {"month": "2024-02"},
}

#: Fields whose wrong-type refusal would not name the field (none since the reader names the
#: field a value type's own message leaves out; kept so a regression can be marked here).
UNNAMED: set[tuple[str, str]] = set()


def _field_cases() -> Iterator[Any]:
    for name in sorted(COMMANDS):
        for field in attrs.fields(COMMANDS[name]):
            marks = []
            if (name, field.name) in UNNAMED:
                marks.append(
                    pytest.mark.xfail(
                        strict=True,
                        reason="engine: the refusal names the value type, not the field",
                    )
                )
            yield pytest.param(name, field.name, marks=marks, id=f"{name}.{field.name}")


def test_every_command_has_a_body() -> None:
    assert set(BODIES) == set(COMMANDS)
    for name, body in BODIES.items():
        parse_line(json.dumps({"command": name, "at": "2024-02-10T10:00:00+09:00", **body}))


@pytest.mark.parametrize(("name", "field"), list(_field_cases()))
@pytest.mark.parametrize("wrong", [[1], 12.5], ids=["list", "float"])
def test_a_field_of_the_wrong_type_is_invalid_input_naming_it(
    name: str, field: str, wrong: Any
) -> None:
    line = {"command": name, "at": "2024-02-10T10:00:00+09:00", **BODIES[name], field: wrong}
    refusal = parse_or_refuse(json.dumps(line))
    assert refusal is not None, line
    assert names(refusal.message, field), refusal.message


#: Text fields whose format refusal would not name the field (none, as above).
FORMAT_UNNAMED: set[tuple[str, str]] = set()

#: Small edits of a text value: a character no format allows, NUL, blank, a full-width digit.
EDITS = [("append", "!"), ("append", "\x00"), ("append", "０"), ("replace", ""), ("replace", " ")]


def _text_cases() -> Iterator[Any]:
    for name in sorted(BODIES):
        command = {"command": name, "at": "2024-02-10T10:00:00+09:00", **BODIES[name]}
        for path in _text_fields(command):
            marks = []
            if (name, path[-1]) in FORMAT_UNNAMED:
                marks.append(
                    pytest.mark.xfail(
                        strict=True,
                        reason="engine: the refusal names the value type, not the field",
                    )
                )
            yield pytest.param(command, path, marks=marks, id=f"{name}.{'.'.join(path)}")


@pytest.mark.parametrize(("command", "path"), list(_text_cases()))
def test_a_text_field_edited_is_answered_naming_it(
    command: dict[str, Any], path: tuple[str, ...]
) -> None:
    """Every text value of every command (nested ones too), edited: accepted, or refused as
    ``invalid_input`` naming the field."""
    for how, edit in EDITS:
        line = json.loads(json.dumps(command))
        holder = line
        for key in path[:-1]:
            holder = holder[key]
        holder[path[-1]] = holder[path[-1]] + edit if how == "append" else edit
        refusal = parse_or_refuse(json.dumps(line))
        if refusal is not None:
            assert names(refusal.message, path[-1]), (edit, refusal.message)


def test_history_has_no_refusal_besides_the_expected() -> None:
    """The shared history applies as written (its ``refused`` entries aside)."""
    assert sum("refused" in entry for entry in HISTORY) == 1
    seeded_engine().close()


@pytest.mark.slow
@settings(FUZZ, max_examples=5_000, derandomize=False)
@given(
    line=st.one_of(
        st.binary(max_size=400),
        st.tuples(json_values(), st.booleans(), st.booleans()).map(
            lambda v: encoded(_dumps(v[0], v[1]), v[2])
        ),
        token_soup(),
        command_shaped().map(json.dumps),
        broken_commands().map(lambda case: case[0]),
    )
)
def test_long_run_of_the_reader(engine: Engine, line: str | bytes) -> None:
    """The properties above, mixed, for thousands of examples (``pytest -m slow``)."""
    check_line(engine, line)
