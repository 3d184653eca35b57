"""Contract 3, "Credentials at scale": a system migrating to matome brings its users' hashes,
not their secrets — ``open_line`` may carry ``access_key_hash`` instead of ``access_key`` and
``register_passport`` ``password_hash`` instead of ``password``: a PHC string of argon2id,
scrypt or pbkdf2-sha256 at no less than OWASP's minimum parameters, else ``invalid_input``.
Such a log needs no key derivation; under contract 2 the fields are unknown fields."""

from __future__ import annotations

import base64
from collections.abc import Iterator
from typing import Any

import argon2
import pytest
from hypothesis import given, settings

from matome.commands import OpenLine, RegisterPassport, parse_command
from matome.engine import Engine
from matome.errors import InvalidInput, WrongAccessKey, WrongPassword
from matome.testing import strategies as mst
from tests.conftest import TEST_ITERATIONS
from tests.unit.helpers import (
    APPLICANT,
    BILLING,
    CID,
    KEY,
    PID,
    PW,
    T_LINE,
    T_PASSPORT,
    WRONG,
    add_provider,
    buy,
)
from tests.unit.test_cli_schema import _errors as _schema_errors

#: Argon2id at OWASP's minimum (m = 19 MiB, t = 2, p = 1), as another system wrote them.
_OWASP = argon2.PasswordHasher(time_cost=2, memory_cost=19456, parallelism=1)
KEY_HASH = _OWASP.hash(KEY)
PW_HASH = _OWASP.hash(PW)
#: Well-formed but below OWASP's minimum (m = 8 MiB, t = 1).
WEAK_HASH = argon2.PasswordHasher(time_cost=1, memory_cost=8192, parallelism=1).hash(PW)


@pytest.fixture
def engine3() -> Iterator[Engine]:
    e = Engine.open(":memory:", hash_iterations=TEST_ITERATIONS, contract=3)
    yield e
    e.close()


def _line(**changes: Any) -> dict[str, Any]:
    body = {
        "command": "open_line",
        "at": T_LINE,
        "customer_id": CID,
        "operator": "west",
        "kind": "hikari_next",
        "access_key_hash": KEY_HASH,
        "line_limit": 10_000,
        "billing": BILLING,
        **changes,
    }
    return {k: v for k, v in body.items() if v is not None}


def _passport(**changes: Any) -> dict[str, Any]:
    body = {
        "command": "register_passport",
        "at": T_PASSPORT,
        "customer_id": CID,
        "passport_id": PID,
        "password_hash": PW_HASH,
        "email": "taro@example.jp",
        "applicant": APPLICANT,
        "limit": 3000,
        "line_auth": False,
        "access_key": KEY,
        "terms_consent": True,
        **changes,
    }
    return {k: v for k, v in body.items() if v is not None}


def _migrate(engine: Engine) -> None:
    add_provider(engine)
    engine.open_line(**{k: v for k, v in _line().items() if k != "command"})
    engine.register_passport(**{k: v for k, v in _passport().items() if k != "command"})


def test_contract_2_refuses_the_hash_fields_as_unknown_fields() -> None:
    for body in (_line(), _passport()):
        with pytest.raises(InvalidInput, match="unknown field"):
            parse_command(body, contract=2)


def test_contract_2_engine_refuses_the_hash_fields(engine: Engine) -> None:
    add_provider(engine)
    with pytest.raises(InvalidInput, match=r"unknown field.*access_key_hash"):
        engine.open_line(
            at=T_LINE,
            customer_id=CID,
            operator="west",
            kind="hikari_next",
            access_key_hash=KEY_HASH,
            line_limit=10_000,
            billing=BILLING,
        )


def test_contract_3_reads_a_secret_or_its_hash_not_both_nor_neither() -> None:
    line, passport = parse_command(_line(), contract=3), parse_command(_passport(), contract=3)
    assert isinstance(line, OpenLine)
    assert isinstance(passport, RegisterPassport)
    assert (line.access_key_hash, line.access_key) == (KEY_HASH, None)
    assert (passport.password_hash, passport.password) == (PW_HASH, None)
    with pytest.raises(InvalidInput, match="not both"):
        parse_command(_line(access_key=KEY), contract=3)
    with pytest.raises(InvalidInput, match=r"missing field.*access_key"):
        parse_command(_line(access_key_hash=None), contract=3)
    with pytest.raises(InvalidInput, match=r"missing field.*password"):
        parse_command(_passport(password_hash=None), contract=3)
    # Contract 2 still calls a missing secret a missing field, in its own words.
    with pytest.raises(InvalidInput, match=r"^open_line: missing field\(s\): access_key$"):
        parse_command(_line(access_key_hash=None), contract=2)


def _phc_b64(data: bytes) -> str:
    return base64.b64encode(data).rstrip(b"=").decode()


@pytest.mark.parametrize(
    "stored",
    [
        WEAK_HASH,
        f"$scrypt$ln=14,r=8,p=1${_phc_b64(bytes(16))}${_phc_b64(bytes(32))}",
        f"$pbkdf2-sha256$i=310000${_phc_b64(bytes(16))}${_phc_b64(bytes(32))}",
        "$2b$12$abcdefghijklmnopqrstuuJ6n8xOqXxv9p1I1uVw3yMFWq8tcN5yK",  # bcrypt: not read
        "Key12345",  # a clear secret is no hash
    ],
)
def test_a_hash_below_owasps_minimum_or_of_another_scheme_is_invalid_input(stored: str) -> None:
    with pytest.raises(InvalidInput, match="access_key_hash"):
        parse_command(_line(access_key_hash=stored), contract=3)
    with pytest.raises(InvalidInput, match="password_hash"):
        parse_command(_passport(password_hash=stored), contract=3)


def test_a_migrated_log_needs_no_key_derivation(engine3: Engine) -> None:
    """Opening lines and registering IDs from their hashes hashes nothing: the only
    derivations are the first checks of the migrated secrets presented (the access key when
    registering, the password at the first purchase); the next ones are remembered."""
    hasher = engine3.internals.hasher
    before = hasher.derivations
    add_provider(engine3)
    engine3.open_line(**{k: v for k, v in _line().items() if k != "command"})
    assert hasher.derivations == before
    engine3.register_passport(**{k: v for k, v in _passport().items() if k != "command"})
    assert hasher.derivations == before + 1  # the line's migrated access key, checked
    buy(engine3, "2024-02-01T10:00:00+09:00")
    assert hasher.derivations == before + 2
    buy(engine3, "2024-02-02T10:00:00+09:00", service="item")
    assert hasher.derivations == before + 2


def test_migrated_secrets_open_what_they_opened_before_and_nothing_else(engine3: Engine) -> None:
    _migrate(engine3)
    with pytest.raises(WrongPassword):
        buy(engine3, "2024-02-01T10:00:00+09:00", password=WRONG)
    buy(engine3, "2024-02-01T11:00:00+09:00")
    with pytest.raises(WrongAccessKey):
        engine3.change_passport_limit(
            at="2024-02-01T12:00:00+09:00", passport_id=PID, access_key=WRONG, limit=2000
        )
    engine3.change_passport_limit(
        at="2024-02-01T12:00:00+09:00", passport_id=PID, access_key=KEY, limit=2000
    )


@settings(max_examples=60, deadline=None)
@given(body=mst.migrated_commands())
def test_every_migrated_command_of_the_kit_validates_and_contract_3_reads_it(
    body: dict[str, Any],
) -> None:
    """The schema, contract 3's reader and contract 2's refusal agree on the hash fields."""
    assert _schema_errors(body) == [], body
    command = parse_command(body, contract=3)
    assert getattr(command, "access_key_hash", None) or getattr(command, "password_hash", None)
    with pytest.raises(InvalidInput, match="unknown field"):
        parse_command(body, contract=2)


@settings(max_examples=60, deadline=None)
@given(body=mst.migrated_commands(), bad=mst.invalid_secret_hashes())
def test_a_hash_the_kit_calls_invalid_is_invalid_input_naming_its_field(
    body: dict[str, Any], bad: Any
) -> None:
    field = "access_key_hash" if "access_key_hash" in body else "password_hash"
    with pytest.raises(InvalidInput, match=field):
        parse_command({**body, field: bad}, contract=3)
