"""The contract's bounds on input, through ``matome run`` on SQLite and PostgreSQL.

docs/contract.md ("Command log", contract 2): yen amounts 0–99,999,999; ``at`` between
2000-01-01 and 2099-12-31; a line of at most 64 KiB; strings of valid Unicode; no duplicate
keys.  Beyond them a line is ``invalid_input`` naming what is wrong, and nothing a line
contains ends the run: the next line is applied and ``matome run`` exits 0.
"""

from __future__ import annotations

import json

import pytest

from tests.integration.logs import LINE, PID, WRONG_PW, Matome, buy, change_limit, jst, world

AT = "2024-01-10T10:00:00+09:00"


def _service(price: str = "100", at: str = AT, name: str = "news") -> bytes:
    """A ``list_service`` line with ``price``, ``at`` and ``name`` written in as raw JSON text."""
    return (
        f'{{"command": "list_service", "at": "{at}", "provider": "A", "service": "s1", '
        f'"name": "{name}", "pricing": "per_purchase", "price": {price}}}'
    ).encode()


#: (bad line, a word its message must contain: the field, or what is wrong with the line)
BAD_LINES: dict[str, tuple[bytes, str]] = {
    "yen-10**25": (_service(str(10**25)), "price"),
    "yen-100000000": (_service("100000000"), "price"),
    "yen-negative": (_service("-1"), "price"),
    "yen-float": (_service("100.0"), "price"),
    "at-year-1": (_service(at="0001-01-01T00:00:00+09:00"), "at"),
    "at-year-9999": (_service(at="9999-12-31T23:59:59-09:00"), "at"),
    "at-1999": (_service(at="1999-12-31T23:59:59+09:00"), "at"),
    "at-2100": (_service(at="2100-01-01T00:00:00+09:00"), "at"),
    "at-naive": (_service(at="2024-01-10T10:00:00"), "at"),
    "line-of-70-KiB": (_service(name="x" * 70 * 1024), "line"),
    "lone-surrogate": (_service(name="\\ud800"), "name"),
    "lone-surrogate-in-a-field-name": (
        b'{"command": "register_provider", "at": "2024-01-10T10:00:00+09:00", "provider": "Z",'
        b' "name": "Z", "contact": "c", "goods": "information", "\\udc00": 1}',
        "field name",
    ),
    "duplicate-keys": (
        json.dumps(
            {
                "command": "purchase",
                "at": AT,
                "passport_id": PID,
                "password": "WRONG",
                "provider": "A",
                "service": "item",
            }
        )
        .replace('"password": "WRONG"', '"password": "WRONG", "password": "Pass1234"')
        .encode(),
        "password",
    ),
    "integer-of-5000-digits": (_service("9" * 5000), "digits"),
    "nesting-100000-deep": (_service("[" * 100_000 + "]" * 100_000), "line"),
    "nesting-30000-deep-within-64-KiB": (_service("[" * 30_000 + "]" * 30_000), "nested"),
    "invalid-utf-8": (_service(name="\xff\xfe").replace(b"\xc3\xbf\xc3\xbe", b"\xff\xfe"), "UTF-8"),
    "not-an-object": (b"[1, 2, 3]", "object"),
    "not-json": (b"{command: purchase}", "JSON"),
}


def test_each_line_beyond_the_bounds_is_invalid_input_and_the_run_goes_on(
    matome: Matome,
) -> None:
    """One log: every bad line of :data:`BAD_LINES`, each followed by a good purchase.  Each bad
    line is that line's ``invalid_input`` (its message says what is wrong, naming the field
    where there is one) and writes nothing; the purchase after it is applied; exit 0."""
    matome.run(*world(), change_limit(jst("01-10"), 10_000))
    good = [
        json.dumps(buy(jst("01-11", f"10:{i:02d}:00"), "item")).encode()
        for i in range(len(BAD_LINES))
    ]
    log = [
        text for (bad, _), ok in zip(BAD_LINES.values(), good, strict=True) for text in (bad, ok)
    ]
    results = matome.run_raw(log)
    assert [r["line"] for r in results] == list(range(1, len(log) + 1))
    for (case, (_, word)), bad, ok in zip(
        BAD_LINES.items(), results[::2], results[1::2], strict=True
    ):
        assert bad["ok"] is False, (case, bad)
        assert bad["error"]["code"] == "invalid_input", (case, bad)
        assert word in bad["error"]["message"], (case, bad["error"]["message"])
        assert ok["ok"] is True, (case, ok)
    # The bad lines wrote nothing: no wrong password counted, only the good purchases charged.
    assert matome.failures() == 0
    assert matome.bill(LINE, "2024-01")["subtotal"] == 440 * len(BAD_LINES)


def test_duplicate_keys_do_not_pass_as_either_password(matome: Matome) -> None:
    """``{"password": "WRONG", "password": "right"}`` is neither a purchase with the right
    password nor a counted wrong one: it is malformed, and nothing is written."""
    matome.run(*world())
    body = json.dumps(buy(AT, "item", password=WRONG_PW))
    for first, second in ((WRONG_PW, "Pass1234"), ("Pass1234", WRONG_PW)):
        line = body.replace(
            f'"password": "{WRONG_PW}"', f'"password": "{first}", "password": "{second}"'
        )
        [result] = matome.run_raw([line.encode()])
        assert result["error"]["code"] == "invalid_input"
    assert matome.failures() == 0
    assert matome.bill(LINE, "2024-01")["subtotal"] == 0


def test_an_integer_of_5000_digits_is_invalid_input_naming_its_field(matome: Matome) -> None:
    matome.run(*world())
    [result] = matome.run_raw([_service("9" * 5000)])
    assert result["error"]["code"] == "invalid_input"
    assert "price" in result["error"]["message"]


def test_invalid_utf8_in_a_string_is_invalid_input_naming_its_field(matome: Matome) -> None:
    matome.run(*world())
    [result] = matome.run_raw([BAD_LINES["invalid-utf-8"][0]])
    assert result["error"]["code"] == "invalid_input"
    assert "name" in result["error"]["message"]


@pytest.mark.parametrize(
    "at",
    [
        pytest.param("2000-01-01T00:00:00+09:00", id="first-second-of-2000-in-tokyo"),
        pytest.param("2099-12-31T23:59:59+09:00", id="last-second-of-2099-in-tokyo"),
    ],
)
def test_the_bounds_of_at_are_inclusive(matome: Matome, at: str) -> None:
    """docs/contract.md "Command log" bounds: ``at`` between 2000-01-01 and 2099-12-31 (Tokyo
    dates), both included."""
    [result] = matome.run_raw(
        [
            json.dumps(
                {
                    "command": "register_provider",
                    "at": at,
                    "provider": "A",
                    "name": "A Co.",
                    "contact": "0120",
                    "goods": "information",
                }
            ).encode()
        ]
    )
    assert result["ok"] is True, result


def test_the_largest_yen_amount_is_accepted(matome: Matome) -> None:
    """docs/contract.md "Command log" bounds: yen amounts 0–99,999,999, both included."""
    matome.run(*world())
    for n, price in enumerate((0, 99_999_999)):
        line = _service(str(price)).replace(b'"s1"', f'"s{n + 2}"'.encode())
        [result] = matome.run_raw([line])
        assert result["ok"] is True, result
