"""Password hashing (docs/rules.md §10: never stored in clear, memory-hard KDF, salted) and the
verified-credential cache that keeps repeated purchases cheap without weakening anything."""

from __future__ import annotations

import base64
import hashlib

import pytest

from matome.credentials import PRODUCTION, TESTING, Hasher, Kdf
from matome.engine import Engine
from matome.errors import IdempotencyConflict, WrongPassword
from tests.unit.helpers import KEY, PID, PW, WRONG, buy, setup_world


def test_hashes_are_salted_scrypt_and_never_the_secret() -> None:
    hasher = Hasher(TESTING)
    first, second = hasher.hash("Pass1234"), hasher.hash("Pass1234")
    assert first.startswith("scrypt$1$1$1$")
    assert first != second  # salted
    assert "Pass1234" not in first
    assert hasher.verify("Pass1234", first)
    assert not hasher.verify("Pass1235", first)


def test_the_production_setting_is_memory_hard() -> None:
    """OWASP's minimum for scrypt: N = 2^15 with r = 8 and p = 3 (32 MiB per derivation)."""
    assert (PRODUCTION.log2_n, PRODUCTION.r, PRODUCTION.p) == (15, 8, 3)
    assert PRODUCTION.memory == 32 * 2**20


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
