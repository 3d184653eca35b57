"""The format rules of docs/rules.md §1 ("Identifier formats"), money and months (§4).

A value that exists is valid: each rule is checked where the value is built, and a bad input is
``InvalidInput`` (code ``invalid_input``) with a message that names the rule.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal
from typing import Any

import pytest

from matome.errors import InvalidInput
from matome.values import (
    MAX_YEN,
    TOKYO,
    AccessKey,
    Applicant,
    CustomerId,
    CustomerNumber,
    Email,
    LineKind,
    Operator,
    PassportId,
    Password,
    PhoneBill,
    YearMonth,
    Yen,
    billing_from_json,
    require_aware,
    require_in_range,
    require_month_in_range,
    tokyo_date,
)

# ---------------------------------------------------------------------------------------------
# Customer ID (§1): West CAF + 10 digits; East also COP + 8 digits; upper-case ASCII only.


@pytest.mark.parametrize("text", ["CAF1234567890", "CAF0000000001", "COP12345678"])
def test_customer_id_accepts_caf_plus_ten_digits_and_cop_plus_eight(text: str) -> None:
    """§1: ``CAF`` + 10 digits, or (East) ``COP`` + 8 digits."""
    assert CustomerId(text).value == text
    assert str(CustomerId(text)) == text


@pytest.mark.parametrize(
    "text",
    [
        "CAF123456789",  # 9 digits
        "CAF12345678901",  # 11 digits
        "COP1234567",  # 7 digits
        "COP123456789",  # 9 digits
        "COP1234567890",  # COP with CAF's length
        "caf1234567890",  # lower case
        "Caf1234567890",
        "cop12345678",
        "CAF 1234567890",  # a space
        " CAF1234567890",
        "CAF1234567890 ",
        "CAF1234567890\n",
        "ＣＡＦ1234567890",  # full-width letters
        "CAF１２３４５６７８９０",  # full-width digits
        "CAF١٢٣٤٥٦٧٨٩٠",  # non-ASCII (Arabic-Indic) digits
        "CAB1234567890",
        "XYZ12345678",
        "",
    ],
)
def test_customer_id_rejects_anything_else_with_a_clear_message(text: str) -> None:
    """§1: upper-case ASCII only; no spaces, no full-width characters."""
    with pytest.raises(InvalidInput, match="customer ID") as info:
        CustomerId(text)
    assert info.value.code == "invalid_input"
    assert "CAF" in info.value.message
    assert "COP" in info.value.message


@pytest.mark.parametrize("value", [1234567890, None, b"CAF1234567890"])
def test_customer_id_must_be_a_string(value: Any) -> None:
    """§1: a customer ID is text; anything else is invalid input, not a crash."""
    with pytest.raises(InvalidInput, match="must be a string"):
        CustomerId(value)


def test_west_accepts_only_caf_ids_and_east_accepts_caf_and_cop() -> None:
    """§1: NTT West uses ``CAF`` + 10 digits only; NTT East also ``COP`` + 8 digits."""
    caf, cop = CustomerId("CAF1234567890"), CustomerId("COP12345678")
    assert Operator.WEST.accepts(caf)
    assert not Operator.WEST.accepts(cop)
    assert Operator.EAST.accepts(caf)
    assert Operator.EAST.accepts(cop)


def test_west_offers_only_hikari_next_and_light_and_east_offers_every_kind() -> None:
    """§1 "Line kinds": West: Hikari Next, Hikari Light; East adds B FLET'S, ADSL, Light Plus."""
    west = {k for k in LineKind if k.offered_by(Operator.WEST)}
    east = {k for k in LineKind if k.offered_by(Operator.EAST)}
    assert west == {LineKind.HIKARI_NEXT, LineKind.HIKARI_LIGHT}
    assert east == set(LineKind)


# ---------------------------------------------------------------------------------------------
# Access key (§1): 8 ASCII alphanumerics.


@pytest.mark.parametrize("text", ["abcd1234", "ABCDEFGH", "12345678", "aB3dE6gH"])
def test_access_key_accepts_eight_ascii_alphanumerics(text: str) -> None:
    """§1: access key [アクセスキー] = 8 ASCII alphanumerics."""
    assert AccessKey(text).reveal() == text


@pytest.mark.parametrize(
    "text", ["abcd123", "abcd12345", "abcd-123", "abcd 123", "ａｂｃｄ1234", "abcd123é", ""]
)
def test_access_key_rejects_other_lengths_and_characters(text: str) -> None:
    """§1: exactly 8 ASCII letters or digits."""
    with pytest.raises(InvalidInput, match="access key must be 8 ASCII letters or digits"):
        AccessKey(text)


# ---------------------------------------------------------------------------------------------
# Passport ID (§1): 4–60 of letters, digits, '-', '_', '.', '@'; case-sensitive.


@pytest.mark.parametrize(
    "text", ["abcd", "a" * 60, "taro.yamada@flets", "A-b_C.d@9", "0000", "----", "@@@@"]
)
def test_passport_id_accepts_four_to_sixty_letters_digits_and_the_symbol_set(text: str) -> None:
    """§1: 4–60 ASCII characters of letters, digits and ``-``, ``_``, ``.``, ``@``."""
    assert PassportId(text).value == text


@pytest.mark.parametrize(
    "text",
    [
        "abc",  # 3
        "a" * 61,  # 61
        "taro yamada",  # space
        "taro+1",  # symbol outside the set
        "taro#1",
        "taro/1",
        "たろう1234",  # non-ASCII
        "ｔａｒｏ1",  # full-width
        "taro\n",
        "",
    ],
)
def test_passport_id_rejects_other_lengths_and_characters(text: str) -> None:
    """§1: anything outside the length and the character set is refused."""
    with pytest.raises(InvalidInput, match="Passport ID"):
        PassportId(text)


def test_passport_id_is_case_sensitive() -> None:
    """§1: Passport IDs are case-sensitive: ``Taro`` and ``taro`` are different IDs."""
    assert PassportId("Taro1") != PassportId("taro1")
    assert len({PassportId("Taro1"), PassportId("taro1")}) == 2


# ---------------------------------------------------------------------------------------------
# Password (§1): 4–10 ASCII alphanumerics (contract 2), up to 12 from contract 3 (§10); the
# value type holds both (contract 2's narrower reading: tests/unit/test_rules_contract3.py);
# case-sensitive; never printed.


@pytest.mark.parametrize("text", ["abcd", "Pass1234", "A1B2C3D4E5", "0000", "A1B2C3D4E5F6"])
def test_password_accepts_four_to_twelve_ascii_alphanumerics(text: str) -> None:
    """§1: password = 4–10 ASCII alphanumerics; §10/§11: new ones of 8–12 from contract 3."""
    assert Password(text).reveal() == text


@pytest.mark.parametrize(
    "text", ["abc", "A1B2C3D4E5F6G", "pass_word", "pass word", "pässword", "ｐａｓｓ", ""]
)
def test_password_rejects_other_lengths_and_characters_without_echoing_it(text: str) -> None:
    """§1 (and §10: secrets are never logged): the message states the rule, not the value."""
    with pytest.raises(InvalidInput) as info:
        Password(text)
    assert info.value.message == "password must be 4–12 ASCII letters or digits"
    if text:
        assert text not in str(info.value)


def test_password_is_case_sensitive() -> None:
    """§1: passwords are case-sensitive."""
    assert Password("Pass1234") != Password("pass1234")
    assert Password("Pass1234") == Password("Pass1234")


def test_a_password_is_not_equal_to_an_access_key_with_the_same_text() -> None:
    """Secrets of different kinds never compare equal."""
    assert Password("abcd1234") != AccessKey("abcd1234")


@pytest.mark.parametrize("secret", [Password("Secret99"), AccessKey("Secret99")])
def test_secrets_never_appear_in_repr_or_str(secret: Password | AccessKey) -> None:
    """§10: credentials are never logged in clear text: ``repr``/``str``/f-strings mask them."""
    for shown in (repr(secret), str(secret), f"{secret}", f"{secret!r}", repr([secret])):
        assert "Secret99" not in shown
        assert "********" in shown


def test_a_command_holding_a_password_does_not_show_it() -> None:
    """§10: a command (which may be logged) shows the password masked."""
    from matome.commands import Purchase

    command = Purchase(
        at="2025-01-15T10:00:00+09:00",
        passport_id="taro.1",
        password="Secret99",
        provider="A",
        service="back",
    )
    assert "Secret99" not in repr(command)
    assert "Secret99" not in str(command)


@pytest.mark.parametrize("value", [12345678, None])
def test_secrets_must_be_strings(value: Any) -> None:
    with pytest.raises(InvalidInput, match="must be a string"):
        Password(value)


# ---------------------------------------------------------------------------------------------
# Individual billing number (§1): "00" + 8 digits.


@pytest.mark.parametrize("text", ["0012345678", "0000000000", "0099999999"])
def test_billing_number_accepts_00_and_eight_more_digits(text: str) -> None:
    """§1: individual billing number = ``00`` followed by 8 more digits (10 in all)."""
    assert CustomerNumber(text).number == text


@pytest.mark.parametrize(
    "text",
    ["1012345678", "0112345678", "001234567", "00123456789", "00-1234567", "００12345678", ""],
)
def test_billing_number_rejects_anything_else(text: str) -> None:
    with pytest.raises(InvalidInput, match="'00' followed by 8 digits"):
        CustomerNumber(text)


def test_billing_json_rejects_unknown_methods_and_fields() -> None:
    """docs/contract.md "Command log": unknown fields are an error, so typos never pass silently."""
    with pytest.raises(InvalidInput, match="billing method"):
        billing_from_json({"method": "cash"})
    with pytest.raises(InvalidInput, match="unknown field"):
        billing_from_json({"method": "customer_number", "number": "0012345678", "x": 1})
    with pytest.raises(InvalidInput, match="missing field"):
        billing_from_json({"method": "phone_bill", "number": "06-1234-5678"})
    with pytest.raises(InvalidInput, match="cycle_start_day"):
        PhoneBill(number="06-1234-5678", cycle_start_day=29)
    assert billing_from_json(
        {"method": "phone_bill", "number": "06-1234-5678", "cycle_start_day": 6}
    ) == PhoneBill(number="06-1234-5678", cycle_start_day=6)


def test_email_and_applicant_are_checked() -> None:
    """Registration details (§2) are checked at the edge."""
    assert Email("taro@example.jp").value == "taro@example.jp"
    with pytest.raises(InvalidInput, match="email"):
        Email("not-an-address")
    with pytest.raises(InvalidInput, match="phone number"):
        Applicant(name="Taro", phone="12345", contract_holder=True)
    with pytest.raises(InvalidInput, match="contract_holder"):
        Applicant(name="Taro", phone="06-1234-5678", contract_holder="yes")  # type: ignore[arg-type]  # the bad type is the point
    with pytest.raises(InvalidInput, match="name"):
        Applicant(name="   ", phone="06-1234-5678", contract_holder=False)


# ---------------------------------------------------------------------------------------------
# Money (§1): whole yen, never a float.


def test_yen_holds_whole_yen_and_adds_up() -> None:
    assert Yen(525) + Yen(600) == Yen(1125)
    assert Yen(600) - Yen(525) == Yen(75)
    assert -Yen(300) == Yen(-300)
    assert Yen(300) * 2 == Yen(600)
    assert Yen(1125) > Yen(525)
    assert str(Yen(1125)) == "¥1,125"


@pytest.mark.parametrize("value", [525.0, 0.5, float("nan"), Decimal(525), "525", None])
def test_yen_rejects_floats_and_other_non_integers(value: Any) -> None:
    """§1: money is whole yen, tax included; never a float."""
    with pytest.raises(InvalidInput, match="whole yen"):
        Yen(value)


@pytest.mark.parametrize("value", [True, False])
def test_yen_rejects_bools_although_bool_is_an_int(value: bool) -> None:
    """§1: ``True`` yen is a bug, not a price."""
    with pytest.raises(InvalidInput, match="whole yen"):
        Yen(value)


def test_command_yen_names_the_field_and_refuses_negatives() -> None:
    """§1 (contract 2): every amount in a command is 0–99,999,999 yen; anything else is
    ``invalid_input`` naming the field."""
    assert Yen.non_negative(0, "price") == Yen.ZERO
    with pytest.raises(InvalidInput, match="price must be 0–99,999,999 yen, got -1"):
        Yen.non_negative(-1, "price")
    with pytest.raises(InvalidInput, match="limit must be whole yen"):
        Yen.non_negative(1.5, "limit")
    with pytest.raises(InvalidInput, match="limit must be whole yen"):
        Yen.non_negative(True, "limit")


@pytest.mark.parametrize("value", [MAX_YEN + 1, 10**25, 2**63, -(2**63)])
def test_command_yen_above_99_999_999_is_invalid_input(value: int) -> None:
    """§1 (contract 2): amounts in a command are at most 99,999,999 yen, so every sum fits a
    64-bit integer; a price of 10**25 is refused, not stored."""
    with pytest.raises(InvalidInput, match="amount must be 0–99,999,999 yen"):
        Yen.non_negative(value, "amount")


def test_99_999_999_yen_is_the_largest_command_amount() -> None:
    assert MAX_YEN == 99_999_999
    assert Yen.non_negative(MAX_YEN, "price") == Yen(99_999_999)


# ---------------------------------------------------------------------------------------------
# Business times (docs/contract.md "Command log" bounds): 2000-01-01 … 2099-12-31, Tokyo dates


@pytest.mark.parametrize(
    "at",
    [
        "2000-01-01T00:00:00+09:00",
        "1999-12-31T15:00:00+00:00",  # 2000-01-01 00:00 JST
        "2099-12-31T23:59:59+09:00",
    ],
)
def test_business_times_within_2000_to_2099_are_accepted(at: str) -> None:
    assert require_in_range(datetime.fromisoformat(at)) == datetime.fromisoformat(at)


@pytest.mark.parametrize(
    "at",
    [
        "1999-12-31T23:59:59+09:00",
        "1999-12-31T14:59:59+00:00",  # still 1999 in Tokyo
        "2100-01-01T00:00:00+09:00",
        "2099-12-31T15:00:00+00:00",  # 2100-01-01 in Tokyo
        "0001-01-01T00:00:00+09:00",
        "9999-12-31T23:59:59+00:00",
    ],
)
def test_business_times_outside_2000_to_2099_are_invalid_input(at: str) -> None:
    """docs/contract.md "Command log" bounds: ``at`` between 2000-01-01 and 2099-12-31 (Tokyo
    dates)."""
    with pytest.raises(InvalidInput, match=r"at .* is outside 2000-01-01"):
        require_in_range(datetime.fromisoformat(at))


@pytest.mark.parametrize("month", [YearMonth(1999, 12), YearMonth(2100, 1), YearMonth(1, 1)])
def test_months_outside_the_bounds_are_invalid_input(month: YearMonth) -> None:
    with pytest.raises(InvalidInput, match=r"month .* is outside 2000-01"):
        require_month_in_range(month)
    assert require_month_in_range(YearMonth(2000, 1)) == YearMonth(2000, 1)
    assert require_month_in_range(YearMonth(2099, 12)) == YearMonth(2099, 12)


# ---------------------------------------------------------------------------------------------
# YearMonth (§4): calendar month in Asia/Tokyo.


def test_year_month_parses_yyyy_mm() -> None:
    assert YearMonth.parse("2025-01") == YearMonth(2025, 1)
    assert str(YearMonth.parse("0999-12")) == "0999-12"


@pytest.mark.parametrize(
    "text",
    ["2025-1", "2025-13", "2025-00", "25-01", "2025/01", "2025-01-01", "0000-01", " 2025-01"],
)
def test_year_month_rejects_malformed_or_impossible_months(text: str) -> None:
    with pytest.raises(InvalidInput, match="month"):
        YearMonth.parse(text)


def test_year_month_rejects_non_strings() -> None:
    with pytest.raises(InvalidInput, match="must be a string"):
        YearMonth.parse(202501)


def test_year_month_next_and_previous_wrap_the_year() -> None:
    assert YearMonth(2024, 12).next() == YearMonth(2025, 1)
    assert YearMonth(2025, 1).previous() == YearMonth(2024, 12)
    assert YearMonth(2025, 6).next() == YearMonth(2025, 7)
    assert YearMonth(2025, 6).previous() == YearMonth(2025, 5)
    for month in range(1, 13):
        ym = YearMonth(2025, month)
        assert ym.next().previous() == ym
        assert ym.previous().next() == ym


def test_year_month_orders_chronologically() -> None:
    assert YearMonth(2024, 12) < YearMonth(2025, 1) < YearMonth(2025, 2)


def test_year_month_starts_and_ends_at_tokyo_midnight() -> None:
    """§4: the billing month is the calendar month in Asia/Tokyo."""
    jan = YearMonth(2025, 1)
    assert jan.start() == datetime(2024, 12, 31, 15, 0, tzinfo=UTC)
    assert jan.end() == datetime(2025, 1, 31, 15, 0, tzinfo=UTC)
    assert jan.end() == YearMonth(2025, 2).start()


@pytest.mark.parametrize(
    ("at", "month"),
    [
        ("2025-01-31T15:30:00+00:00", YearMonth(2025, 2)),  # 00:30 JST on Feb 1
        ("2025-01-31T14:59:59+00:00", YearMonth(2025, 1)),  # 23:59:59 JST on Jan 31
        ("2025-01-31T15:00:00+00:00", YearMonth(2025, 2)),  # Tokyo midnight exactly
        ("2024-12-31T15:00:00+00:00", YearMonth(2025, 1)),  # across the year
        ("2025-02-01T00:00:00+09:00", YearMonth(2025, 2)),
        ("2025-01-31T10:00:00-05:00", YearMonth(2025, 2)),  # 2025-02-01 00:00 JST
        ("2025-01-31T09:59:59-05:00", YearMonth(2025, 1)),
    ],
)
def test_year_month_of_an_instant_is_its_tokyo_month_whatever_the_offset(
    at: str, month: YearMonth
) -> None:
    """§4: months are Tokyo's, however the instant is written."""
    assert YearMonth.of(datetime.fromisoformat(at)) == month


def test_tokyo_date_and_naive_times() -> None:
    """docs/contract.md "Command log": a naive time is an error."""
    assert tokyo_date(datetime(2025, 1, 31, 15, 30, tzinfo=UTC)).isoformat() == "2025-02-01"
    with pytest.raises(InvalidInput, match="UTC offset"):
        tokyo_date(datetime(2025, 1, 31, 15, 30))
    with pytest.raises(InvalidInput, match="must be a datetime"):
        require_aware("2025-01-31T15:30:00+09:00")  # type: ignore[arg-type]  # deliberately wrong
    assert TOKYO.utcoffset(None) == timedelta(hours=9)
    minus_five = timezone(timedelta(hours=-5))
    assert require_aware(datetime(2025, 1, 1, tzinfo=minus_five)).tzinfo is minus_five


def test_money_and_months_order_as_their_fields_do_and_refuse_other_classes() -> None:
    """Yen and YearMonth compare by their fields (amount; year then month), as attrs'
    generated ordering did; against another class the comparison is refused."""
    import operator

    from matome.values import YearMonth, Yen

    ops = (operator.lt, operator.le, operator.gt, operator.ge)
    for a, b in [(-5, 3), (3, 3), (7, 2)]:
        for op in ops:
            assert op(Yen(a), Yen(b)) == op(a, b)
    for x, y in [((2024, 12), (2025, 1)), ((2025, 2), (2025, 2)), ((2025, 3), (2025, 1))]:
        for op in ops:
            assert op(YearMonth(*x), YearMonth(*y)) == op(x, y)
    for bad in (Yen(1), YearMonth(2025, 1)):
        with pytest.raises(TypeError):
            _ = bad < 1  # type: ignore[operator]
    months = [YearMonth(2025, 1), YearMonth(2024, 12)]
    assert sorted(months) == [YearMonth(2024, 12), YearMonth(2025, 1)]
