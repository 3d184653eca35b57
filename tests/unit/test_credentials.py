"""Password hashing (docs/rules.md §10: never stored in clear, memory-hard KDF, salted) and the
verified-credential cache that keeps repeated purchases cheap without weakening anything."""

from __future__ import annotations

import base64
import hashlib

import pytest

from matome.credentials import (
    PRODUCTION,
    SCRYPT_PRODUCTION,
    TESTING,
    Argon2id,
    Hasher,
    Kdf,
    parse_phc,
)
from matome.engine import Engine
from matome.errors import IdempotencyConflict, InvalidInput, WrongPassword
from tests.unit.helpers import KEY, PID, PW, WRONG, buy, setup_world


def test_hashes_are_salted_scrypt_and_never_the_secret() -> None:
    hasher = Hasher(TESTING)
    first, second = hasher.hash("Pass1234"), hasher.hash("Pass1234")
    assert first.startswith("scrypt$1$1$1$")
    assert first != second  # salted
    assert "Pass1234" not in first
    assert hasher.verify("Pass1234", first)
    assert not hasher.verify("Pass1235", first)


def test_the_production_setting_is_argon2id_at_owasps_parameters() -> None:
    """Rules §10 (memory-hard KDF): Argon2id at OWASP's m = 19 MiB, t = 2, p = 1; the scrypt
    setting before it stays N = 2^15, r = 8, p = 3 (32 MiB) for the hashes it wrote."""
    assert (PRODUCTION.memory_kib, PRODUCTION.time_cost, PRODUCTION.parallelism) == (19456, 2, 1)
    assert PRODUCTION.memory == 19 * 2**20
    assert (SCRYPT_PRODUCTION.log2_n, SCRYPT_PRODUCTION.r, SCRYPT_PRODUCTION.p) == (15, 8, 3)


def test_a_production_hash_is_an_argon2id_phc_string_that_verifies() -> None:
    hasher = Hasher(PRODUCTION)
    stored = hasher.hash("Pass1234")
    assert stored.startswith("$argon2id$v=19$m=19456,t=2,p=1$")
    assert "Pass1234" not in stored
    assert parse_phc(stored) == stored  # at OWASP's minimum: admitted for migration too
    hasher.forget(stored)
    assert hasher.verify("Pass1234", stored)
    assert not hasher.verify("Pass1235", stored)
    assert not hasher.needs_rehash(stored)


def test_hashes_written_by_matome_0_1_still_verify() -> None:
    salt = b"0123456789abcdef"
    digest = hashlib.pbkdf2_hmac("sha256", b"Secret77", salt, 1000)
    b64 = [base64.urlsafe_b64encode(x).rstrip(b"=").decode() for x in (salt, digest)]
    stored = f"pbkdf2_sha256$1000${b64[0]}${b64[1]}"
    hasher = Hasher(TESTING)
    assert hasher.verify("Secret77", stored)
    assert not hasher.verify("Secret78", stored)


def test_a_hash_just_made_verifies_without_a_second_derivation() -> None:
    """The first purchase after a registration costs no second key derivation."""
    hasher = Hasher(Kdf(log2_n=4, r=1, p=1))
    stored = hasher.hash("Pass1234")
    assert hasher.derivations == 1
    assert hasher.verify("Pass1234", stored)
    assert hasher.derivations == 1


def test_a_wrong_password_is_derived_every_time() -> None:
    """Wrong passwords are never remembered: each costs a full derivation (and is counted)."""
    hasher = Hasher(Kdf(log2_n=4, r=1, p=1))
    stored = hasher.hash("Pass1234")
    for _ in range(3):
        assert not hasher.verify("Wrong999", stored)
    assert hasher.derivations == 4


def test_forgetting_a_stored_hash_makes_the_next_check_cold() -> None:
    hasher = Hasher(Kdf(log2_n=4, r=1, p=1))
    stored = hasher.hash("Pass1234")
    hasher.forget(stored)
    assert hasher.verify("Pass1234", stored)
    assert hasher.derivations == 2


def test_the_cache_is_bounded() -> None:
    hasher = Hasher(TESTING, cache_size=3)
    stored = [hasher.hash(f"Pass{i:04d}") for i in range(5)]
    before = hasher.derivations
    assert hasher.verify("Pass0004", stored[4])  # recent: remembered
    assert hasher.derivations == before
    assert hasher.verify("Pass0000", stored[0])  # evicted: derived again
    assert hasher.derivations == before + 1


def test_a_refused_purchase_derives_the_wrong_password_once(engine: Engine) -> None:
    """A refusal is confirmed against the store (a second attempt), but the key derivation is
    not repeated: a wrong password costs one derivation, and is counted once."""
    setup_world(engine)
    hasher = engine.internals.hasher
    before = hasher.derivations
    with pytest.raises(WrongPassword):
        buy(engine, "2024-02-01T10:00:00+09:00", password=WRONG)
    assert hasher.derivations == before + 1
    passport = engine.passport(PID)
    assert passport is not None
    assert passport.consecutive_failures == 1


def test_a_keyed_refused_purchase_hashes_its_secret_for_the_key_once(engine: Engine) -> None:
    """A keyed wrong password binds its key with a salted hash of the secret (§10 retries):
    one derivation to check it, one to hash it — not one more for the attempt that confirms
    the refusal against the store; the same as when the command is decided in a batch."""
    setup_world(engine)
    hasher = engine.internals.hasher
    before = hasher.derivations
    with pytest.raises(WrongPassword):
        buy(engine, "2024-02-01T10:00:00+09:00", password=WRONG, key="k-wrong")
    assert hasher.derivations == before + 2
    passport = engine.passport(PID)
    assert passport is not None
    assert passport.consecutive_failures == 1


def test_a_keys_secret_hashes_go_away_when_the_password_changes(engine: Engine) -> None:
    """docs/rules.md §10: the salted hashes an idempotency key keeps of a password are deleted
    with it when the password changes.  The key then recognises no password (contract 3):
    the old one and a guess are judged against the new password — ``wrong_password``,
    counted — and the new one is another body (``idempotency_conflict``)."""
    setup_world(engine)
    buy(engine, "2024-02-01T10:00:00+09:00", key="k-1")
    rows = engine._store.matome_recorder.personal_rows()
    assert any(r.subject.startswith("secret:") for r in rows.values())
    engine.change_passport_details(
        at="2024-02-02T10:00:00+09:00", passport_id=PID, access_key=KEY, password="NewPass1"
    )
    rows = engine._store.matome_recorder.personal_rows()
    assert not any(r.subject.startswith("secret:") for r in rows.values())
    for n, password in enumerate((PW, WRONG), start=1):
        with pytest.raises(WrongPassword):
            buy(engine, "2024-02-01T10:00:00+09:00", key="k-1", password=password)
        after = engine.passport(PID)
        assert after is not None
        assert after.consecutive_failures == n
    with pytest.raises(IdempotencyConflict):
        buy(engine, "2024-02-01T10:00:00+09:00", key="k-1", password="NewPass1")


#: Argon2id made cheap for tests (far below OWASP's minimum: never for a store).
CHEAP_ARGON2 = Argon2id(memory_kib=8, time_cost=1, parallelism=1)


def _phc_b64(data: bytes) -> str:
    return base64.b64encode(data).rstrip(b"=").decode()


def test_an_older_scrypt_hash_verifies_and_asks_to_be_rehashed() -> None:
    old = Hasher(Kdf(log2_n=4, r=1, p=1)).hash("Pass1234")
    hasher = Hasher(CHEAP_ARGON2)
    assert hasher.verify("Pass1234", old)
    assert hasher.needs_rehash(old)
    assert not hasher.needs_rehash(hasher.hash("Pass1234"))
    # A store run with the cheap testing scheme re-hashes nothing (no downgrade either way).
    assert not Hasher(TESTING).needs_rehash(old)
    assert not Hasher(TESTING).needs_rehash(hasher.hash("Pass1234"))


def test_migrated_phc_hashes_of_scrypt_and_pbkdf2_verify() -> None:
    """Contract 3, "Credentials at scale": PHC strings of scrypt and pbkdf2-sha256 (as passlib
    and others write them) verify with hashlib."""
    salt = b"0123456789abcdef"
    digest = hashlib.scrypt(b"Secret77", salt=salt, n=2**4, r=8, p=1, dklen=32)
    scrypt = f"$scrypt$ln=4,r=8,p=1${_phc_b64(salt)}${_phc_b64(digest)}"
    digest = hashlib.pbkdf2_hmac("sha256", b"Secret77", salt, 1000)
    pbkdf2 = f"$pbkdf2-sha256$i=1000${_phc_b64(salt)}${_phc_b64(digest)}"
    passlib = f"$pbkdf2-sha256$1000${_phc_b64(salt).replace('+', '.')}${_phc_b64(digest)}"
    hasher = Hasher(TESTING)
    for stored in (scrypt, pbkdf2, passlib):
        assert hasher.verify("Secret77", stored)
        assert not hasher.verify("Secret78", stored)


@pytest.mark.parametrize(
    "params",
    [
        "$argon2id$v=19$m=19456,t=2,p=1",
        "$argon2id$v=19$m=47104,t=1,p=1",
        "$argon2id$v=19$m=7168,t=5,p=1",
        "$scrypt$ln=17,r=8,p=1",
        "$scrypt$ln=15,r=8,p=3",
        "$pbkdf2-sha256$i=600000",
    ],
)
def test_phc_strings_at_owasps_minimum_are_admitted(params: str) -> None:
    stored = f"{params}${_phc_b64(b'0123456789abcdef')}${_phc_b64(bytes(32))}"
    assert parse_phc(stored) == stored


@pytest.mark.parametrize(
    "params",
    [
        "$argon2id$v=19$m=19455,t=2,p=1",
        "$argon2id$v=19$m=47104,t=0,p=1",
        "$argon2i$v=19$m=65536,t=3,p=1",
        "$scrypt$ln=16,r=8,p=1",
        "$scrypt$ln=17,r=4,p=1",
        "$pbkdf2-sha256$i=599999",
        "$pbkdf2-sha1$i=900000",
        "$argon2id$v=19$m=65536,t=3",
        "argon2id$v=19$m=65536,t=3,p=1",
    ],
)
def test_phc_strings_below_owasps_minimum_or_malformed_are_invalid_input(params: str) -> None:
    with pytest.raises(InvalidInput):
        parse_phc(f"{params}${_phc_b64(b'0123456789abcdef')}${_phc_b64(bytes(32))}")
