"""The seeds' rules modelled from contract 3 (docs/rules.md §10, §11; issue #16): consent to the
terms on ``register_passport``, phone numbers of 10–12 digits, the shape of new passwords — and
contract 2, which keeps its meaning (docs/contract.md, "Contract versions")."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from matome.commands import parse_command
from matome.engine import Engine
from matome.errors import ConsentRequired, InvalidInput, WrongAccessKey
from matome.interchange import declared_contract
from tests.conftest import TEST_ITERATIONS
from tests.unit.helpers import (
    APPLICANT,
    CID,
    KEY,
    PID,
    PW,
    T_PASSPORT,
    WRONG_KEY,
    add_provider,
    buy,
    open_line,
    refused,
)

AT = "2024-01-06T10:00:00+09:00"


@pytest.fixture
def engine3() -> Iterator[Engine]:
    """An engine reading contract 3 (``Engine.open(..., contract=3)``)."""
    e = Engine.open(":memory:", hash_iterations=TEST_ITERATIONS, contract=3)
    yield e
    e.close()


def _register(engine: Engine, **changes: Any) -> None:
    fields: dict[str, Any] = {
        "at": T_PASSPORT,
        "customer_id": CID,
        "passport_id": PID,
        "password": PW,
        "email": "taro@example.jp",
        "applicant": APPLICANT,
        "limit": 3000,
        "line_auth": False,
        "access_key": KEY,
        "terms_consent": True,
        **changes,
    }
    engine.register_passport(**{k: v for k, v in fields.items() if v is not None})


def _world(engine: Engine) -> None:
    add_provider(engine)
    open_line(engine)
    _register(engine)


# ---------------------------------------------------------------------------------------------
# Contract versions


def test_an_engine_reads_contract_2_unless_told_otherwise(engine: Engine) -> None:
    """§11: a log without a declaration, and an engine opened without ``contract``, read
    contract 2 — forever."""
    assert engine.contract == 2


def test_a_contract_the_build_does_not_read_is_refused() -> None:
    with pytest.raises(InvalidInput, match="contract 4"):
        Engine.open(":memory:", contract=4)


def test_the_declaration_line_names_the_contract_and_nothing_else_is_one() -> None:
    """§11: ``{"contract": 3}`` on the first line; a command or a comment declares nothing."""
    assert declared_contract(b'{"contract": 3}') == 3
    assert declared_contract(b' {"contract":2}\r') == 2
    assert declared_contract(b'{"command": "issue_bills", "contract": 3}') is None
    assert declared_contract(b"# contract 3") is None
    with pytest.raises(InvalidInput, match="contract 9"):
        declared_contract(b'{"contract": 9}')


def test_contract_3_fields_are_unknown_fields_under_contract_2(engine: Engine) -> None:
    """A contract-2 log means what it meant: ``terms_consent`` was an unknown field."""
    add_provider(engine)
    open_line(engine)
    with refused(engine, InvalidInput) as e:
        _register(engine)
    assert e.value.message == "register_passport: unknown field(s): terms_consent"


def test_contract_2_keeps_its_bounds_on_passwords_and_phones(engine: Engine) -> None:
    """Contract 3 widened passwords (to 12 characters) and phone numbers (to 12 digits);
    contract 2 refuses them in its own words, from a log and from Python alike."""
    add_provider(engine)
    open_line(engine)
    body = {
        "command": "register_passport",
        "at": T_PASSPORT,
        "customer_id": CID,
        "access_key": KEY,
        "passport_id": PID,
        "password": "abcdefghijk",
        "email": "taro@example.jp",
        "applicant": APPLICANT,
        "limit": 3000,
        "line_auth": False,
    }
    with pytest.raises(InvalidInput) as e:
        parse_command(body)
    assert e.value.message == "register_passport: password must be 4–10 ASCII letters or digits"
    phone = {**APPLICANT, "phone": "0120-1234-5678"}
    with pytest.raises(InvalidInput) as e:
        parse_command({**body, "password": PW, "applicant": phone})
    assert "10–11 digits" in e.value.message
    with refused(engine, InvalidInput):
        _register(engine, terms_consent=None, applicant=phone)
    with refused(engine, InvalidInput):
        _register(engine, terms_consent=None, password="abcdefghijk")


# ---------------------------------------------------------------------------------------------
# Consent to the terms [規約に同意] (seed 000)


def test_registering_without_consent_to_the_terms_is_consent_required(engine3: Engine) -> None:
    """§11: customers who do not agree to the terms cannot use the service."""
    add_provider(engine3)
    open_line(engine3)
    with refused(engine3, ConsentRequired):
        _register(engine3, terms_consent=None)
    with refused(engine3, ConsentRequired):
        _register(engine3, terms_consent=False)
    _register(engine3, terms_consent=True)
    assert engine3.passport(PID) is not None


def test_consent_required_ranks_after_the_access_key(engine3: Engine) -> None:
    """The refusal order: credentials (``wrong_access_key``) before ``consent_required``."""
    add_provider(engine3)
    open_line(engine3)
    with refused(engine3, WrongAccessKey):
        _register(engine3, terms_consent=False, access_key=WRONG_KEY)


# ---------------------------------------------------------------------------------------------
# Phone numbers of 10–12 digits (seed 000's screen: 電話番号 10~12桁)


@pytest.mark.parametrize("phone", ["0120-1234-5678", "012012345678"])
def test_a_phone_number_of_12_digits_is_accepted_under_contract_3(
    engine3: Engine, phone: str
) -> None:
    add_provider(engine3)
    open_line(engine3)
    _register(engine3, applicant={**APPLICANT, "phone": phone})
    assert engine3.passport(PID) is not None


def test_a_phone_number_of_13_digits_is_refused_under_contract_3(engine3: Engine) -> None:
    add_provider(engine3)
    open_line(engine3)
    with pytest.raises(InvalidInput, match="10–12 digits"):
        _register(engine3, applicant={**APPLICANT, "phone": "0120-1234-56789"})


# ---------------------------------------------------------------------------------------------
# The shape of new passwords (§10, seed 004 applied to Passport IDs: our decision)


@pytest.mark.parametrize(
    ("password", "rule"),
    [("abc1234", "8–12"), ("12345678", "digits only")],
)
def test_a_new_password_at_registration_has_the_shape_of_section_10(
    engine3: Engine, password: str, rule: str
) -> None:
    add_provider(engine3)
    open_line(engine3)
    with pytest.raises(InvalidInput, match=rule):
        _register(engine3, password=password)


def test_a_password_of_12_letters_and_digits_is_a_password_under_contract_3(
    engine3: Engine,
) -> None:
    add_provider(engine3)
    open_line(engine3)
    _register(engine3, password="abcdEFGH1234")
    assert buy(engine3, AT, password="abcdEFGH1234").charged.amount == 525


def test_changing_or_resetting_to_the_current_password_is_refused(engine3: Engine) -> None:
    """§10: a new password is not the current one — by the line holder or the operator."""
    _world(engine3)
    with pytest.raises(InvalidInput, match="current password"):
        engine3.change_passport_details(at=AT, passport_id=PID, access_key=KEY, password=PW)
    with pytest.raises(InvalidInput, match="current password"):
        engine3.reset_password(at=AT, passport_id=PID, password=PW, channel="phone")
    with pytest.raises(InvalidInput, match="digits only"):
        engine3.reset_password(at=AT, passport_id=PID, password="987654321", channel="phone")
    engine3.reset_password(at=AT, passport_id=PID, password="NewPass99", channel="written")
    assert buy(engine3, AT, password="NewPass99").charged.amount == 525


def test_contract_2_accepts_the_passwords_it_always_accepted(engine: Engine) -> None:
    """Under contract 2 a reset to the current password, or to digits only, stays accepted."""
    add_provider(engine)
    open_line(engine)
    _register(engine, terms_consent=None, password="1234")
    engine.reset_password(at=AT, passport_id=PID, password="1234", channel="phone")
    engine.change_passport_details(at=AT, passport_id=PID, access_key=KEY, password="5678")


def test_a_wrong_access_key_learns_nothing_of_the_current_password(engine3: Engine) -> None:
    """§10: without the line's access key, offering the current password as the new one is
    ``wrong_access_key`` like any other — never "the current password" (no oracle)."""
    _world(engine3)
    with refused(engine3, WrongAccessKey):
        engine3.change_passport_details(at=AT, passport_id=PID, access_key=WRONG_KEY, password=PW)
