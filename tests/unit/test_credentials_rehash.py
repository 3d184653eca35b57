"""Rules §10 with issue 18: hashes of an older scheme (matome's scrypt before Argon2id) still
verify, and are hashed again in the current scheme by the next command that accepts the
secret — an event (``PasswordRehashed`` / ``AccessKeyRehashed``) decided in the command, its
applier pure.  A refused command re-hashes nothing."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from matome.aggregates import base
from matome.credentials import Argon2id, Kdf
from matome.engine import Engine
from matome.errors import WrongPassword
from matome.events import line as line_ev
from matome.events import passport as passport_ev
from tests.unit.helpers import KEY, PID, WRONG, buy, event_count, setup_world, topics_since

#: Argon2id made cheap for tests (far below OWASP's minimum: never for a store).
CHEAP_ARGON2 = Argon2id(memory_kib=8, time_cost=1, parallelism=1)
#: matome's scrypt scheme, cheap: the "older scheme" of these tests.
OLD_SCRYPT = Kdf(log2_n=4, r=1, p=1)

pytestmark = pytest.mark.skipif(
    passport_ev.PasswordRehashed not in base._PROJECTORS
    or line_ev.AccessKeyRehashed not in base._PROJECTORS,
    reason="the appliers of PasswordRehashed / AccessKeyRehashed are wired at merge "
    "(aggregates/_passport_state.py, _line_state.py: `_rehashed`)",
)


@pytest.fixture
def upgraded(tmp_path: Path) -> Iterator[Engine]:
    """A store written with scrypt hashes, opened by an engine that writes Argon2id."""
    db = str(tmp_path / "store.sqlite")
    old = Engine.open(db, kdf=OLD_SCRYPT)
    setup_world(old)
    old.close()
    engine = Engine.open(db, kdf=CHEAP_ARGON2)
    yield engine
    engine.close()


def test_an_accepted_purchase_rehashes_an_old_scrypt_password_once(upgraded: Engine) -> None:
    hasher = upgraded.internals.hasher
    before, position = hasher.derivations, event_count(upgraded)
    passport = upgraded.passport(PID)
    assert passport is not None
    assert passport.password_hash.startswith("scrypt$")
    buy(upgraded, "2024-02-01T10:00:00+09:00")
    assert "matome.passport.PasswordRehashed" in topics_since(upgraded, position)
    assert hasher.derivations == before + 2  # checked against scrypt, hashed in Argon2id
    after = upgraded.passport(PID)
    assert after is not None
    assert after.password_hash.startswith("$argon2id$")
    # The next use verifies the new hash (remembered) and re-hashes nothing.
    position = event_count(upgraded)
    buy(upgraded, "2024-02-02T10:00:00+09:00", service="item")
    assert "matome.passport.PasswordRehashed" not in topics_since(upgraded, position)
    assert hasher.derivations == before + 2


def test_a_refused_command_rehashes_nothing(upgraded: Engine) -> None:
    position = event_count(upgraded)
    with pytest.raises(WrongPassword):
        buy(upgraded, "2024-02-01T10:00:00+09:00", password=WRONG)
    assert topics_since(upgraded, position) == ["matome.passport.PasswordRejected"]
    passport = upgraded.passport(PID)
    assert passport is not None
    assert passport.password_hash.startswith("scrypt$")


def test_an_accepted_access_key_is_rehashed_on_its_line(upgraded: Engine) -> None:
    position = event_count(upgraded)
    upgraded.change_passport_limit(
        at="2024-02-01T10:00:00+09:00", passport_id=PID, access_key=KEY, limit=2000
    )
    assert "matome.line.AccessKeyRehashed" in topics_since(upgraded, position)
    # The rehashed key still opens the line; a wrong one still does not.
    upgraded.change_passport_limit(
        at="2024-02-01T11:00:00+09:00", passport_id=PID, access_key=KEY, limit=2500
    )
