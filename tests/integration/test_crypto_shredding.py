"""Erasure by crypto-shredding leaves nothing readable anywhere (docs/contract.md, "Changes in
contract 3", "Erasure leaves nothing readable anywhere"; docs/audit.md, "Erasing personal data").

Personal values are sealed under a data key per subject (the Passport ID), wrapped by a master
key kept outside the store.  These tests read the store's *files* — SQLite's database, WAL and
shared memory; PostgreSQL's data directory and WAL — byte for byte, the way someone holding a
copy of them would, and look for the e-mail, name and phone of the person erased.
"""

from __future__ import annotations

import base64
import contextlib
import os
import secrets
import shutil
import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from matome import cli
from matome.application._keyring import MASTER_FILE_SUFFIX, PersonalDataLocked
from matome.engine import Engine
from matome.errors import InvalidInput, StoreUnavailable
from matome.wire import to_json
from tests.conftest import TEST_ITERATIONS

LINE = "CAF0000000001"
PID = "hanako.2"
PW = "Pass1234"
KEY = "Key12345"


class Person:
    """Personal values unique to one test run, so that a hit in a shared data directory
    (PostgreSQL's) can only come from this test."""

    def __init__(self) -> None:
        tag = secrets.token_hex(6)
        digits = f"{int(tag, 16) % 10**8:08d}"
        self.email = f"shred.{tag}@example.jp"
        self.new_email = f"moved.{tag}@example.jp"
        self.name = f"佐藤 花子{tag}"
        self.phone = f"03-{digits[:4]}-{digits[4:]}"

    @property
    def applicant(self) -> dict[str, Any]:
        return {"name": self.name, "phone": self.phone, "contract_holder": True}

    def needles(self) -> dict[str, bytes]:
        """Each value as stored text would hold it (UTF-8)."""
        return {
            "e-mail": self.email.encode(),
            "name": self.name.encode(),
            "phone": self.phone.encode(),
        }


@pytest.fixture
def person() -> Person:
    return Person()


def world(e: Engine, person: Person) -> None:
    """Provider A with a monthly service, a West line, and one Passport ID with an applicant."""
    e.register_provider(
        at="2023-12-01T09:00:00+09:00",
        provider="A",
        name="A Co.",
        contact="0120",
        goods="information",
    )
    e.list_service(
        at="2023-12-01T09:00:00+09:00",
        provider="A",
        service="back",
        name="back",
        pricing="monthly",
        price=525,
    )
    e.open_line(
        at="2023-12-01T10:00:00+09:00",
        customer_id=LINE,
        operator="west",
        kind="hikari_next",
        access_key=KEY,
        line_limit=10_000,
        billing={"method": "customer_number", "number": "0012345678"},
    )
    e.register_passport(
        at="2023-12-02T10:00:00+09:00",
        customer_id=LINE,
        access_key=KEY,
        passport_id=PID,
        password=PW,
        email=person.email,
        applicant=person.applicant,
        limit=5000,
        line_auth=False,
    )
    e.purchase(
        at="2024-01-10T10:00:00+09:00", passport_id=PID, password=PW, provider="A", service="back"
    )
    e.issue_bills(at="2024-02-01T09:00:00+09:00", month="2024-01")


def registered(e: Engine) -> Any:
    """The Passport ID's ``Registered`` event, personal values resolved."""
    passport = e.passport(PID)
    assert passport is not None
    return next(iter(e.internals.events.get(passport.id)))


def sqlite_files(path: str) -> dict[str, bytes]:
    """The SQLite store's database, WAL and shared-memory files as they are on disk."""
    out = {}
    for suffix in ("", "-wal", "-shm", "-journal"):
        if os.path.exists(path + suffix):
            out[path + suffix] = Path(path + suffix).read_bytes()
    return out


def hits(files: dict[str, bytes], needles: dict[str, bytes]) -> list[tuple[str, str]]:
    return [
        (name, what) for name, data in files.items() for what, n in needles.items() if n in data
    ]


def sql(path: str, statement: str, params: tuple[Any, ...] = ()) -> list[Any]:
    with contextlib.closing(sqlite3.connect(path)) as conn:
        rows = conn.execute(statement, params).fetchall()
        conn.commit()
        return rows


@pytest.fixture
def db(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    """An SQLite store with the default master key (a file beside it)."""
    monkeypatch.delenv("MATOME_MASTER_KEY", raising=False)
    monkeypatch.delenv("MATOME_MASTER_KEY_FILE", raising=False)
    return str(tmp_path / "shred.sqlite")


@pytest.fixture
def engine(db: str) -> Iterator[Engine]:
    e = Engine.open(db, hash_iterations=TEST_ITERATIONS)
    yield e
    e.close()


# ---------------------------------------------------------------------------------------------
# SQLite: before and after an erasure


def test_matome_reads_personal_data_that_no_file_of_the_store_holds_in_clear(
    db: str, engine: Engine, person: Person
) -> None:
    """Contract 3: personal data is stored encrypted under the Passport ID's key; matome
    reads it (with the master key, a 0600 file beside the store by default) and the
    database, its WAL and its shared memory hold none of it in clear."""
    world(engine, person)
    event = registered(engine)
    assert str(event.email) == person.email
    assert event.applicant.name == person.name
    assert hits(sqlite_files(db), person.needles()) == []
    master = Path(db + MASTER_FILE_SUFFIX)
    assert master.stat().st_mode & 0o777 == 0o600
    key = master.read_text().strip()
    assert all(key not in data.decode("latin-1") for data in sqlite_files(db).values())


def test_after_an_erasure_no_file_of_the_sqlite_store_holds_the_data_or_its_key(
    db: str, engine: Engine, person: Person
) -> None:
    """Contract 3: ``erase_personal_data`` destroys the ID's key where a deletion is real
    (SQLite ``secure_delete``, then the WAL checkpointed and truncated): neither the values
    nor the wrapped key that opened them is left in the database, its WAL or its shared
    memory; bills, audit and verify still work."""
    world(engine, person)
    passport = engine.passport(PID)
    assert passport is not None
    (wrapped,) = sql(db, "SELECT wrapped FROM matome_keys WHERE subject = ?", (str(passport.id),))[
        0
    ]
    sealed = [
        r[0]
        for r in sql(db, "SELECT data FROM matome_personal WHERE subject = ?", (str(passport.id),))
    ]
    assert len(sealed) == 2  # e-mail and applicant
    bill = to_json(engine.bill(LINE, "2024-01"))
    engine.erase_personal_data(at="2024-02-03T10:00:00+09:00", passport_id=PID, reason="request")
    needles = {**person.needles(), "wrapped key": wrapped.encode()}
    needles.update({f"sealed value {i}": s.encode() for i, s in enumerate(sealed)})
    assert hits(sqlite_files(db), needles) == []
    assert str(registered(engine).email) == "(erased)"
    assert to_json(engine.bill(LINE, "2024-01")) == bill
    assert engine.verify().ok
    assert engine.audit(LINE, "2024-01") is not None
    engine.close()
    again = Engine.open(db, hash_iterations=TEST_ITERATIONS, create=False)
    try:
        assert to_json(again.bill(LINE, "2024-01")) == bill
        assert again.verify().ok
    finally:
        again.close()


def test_a_changed_email_is_unreadable_as_soon_as_it_is_replaced(
    db: str, engine: Engine, person: Person
) -> None:
    """Contract 3: an old e-mail replaced by a change is unreadable at once — its row is
    deleted and the Passport ID's key replaced (the applicant re-sealed under the new key), so
    no copy of the old row or the old key is left in the store's files."""
    world(engine, person)
    passport = engine.passport(PID)
    assert passport is not None
    subject = str(passport.id)
    (old_key,) = sql(db, "SELECT wrapped FROM matome_keys WHERE subject = ?", (subject,))[0]
    (old_email,) = sql(db, "SELECT data FROM matome_personal WHERE ref LIKE '%/email'")[0]
    engine.change_passport_details(
        at="2024-02-02T10:00:00+09:00", passport_id=PID, access_key=KEY, email=person.new_email
    )
    gone = {"old e-mail": old_email.encode(), "old key": old_key.encode(), **person.needles()}
    del gone["name"], gone["phone"]  # still the applicant's: sealed under the new key
    assert hits(sqlite_files(db), gone) == []
    after = engine.passport(PID)
    assert after is not None
    emails = sql(db, "SELECT ref FROM matome_personal WHERE ref LIKE '%/email'")
    assert [r[0] for r in emails] == [f"{subject}/{after.version}/email"]
    event = registered(engine)
    assert str(event.email) == "(erased)"  # the old e-mail: replaced
    assert event.applicant.name == person.name  # the applicant: kept, re-sealed
    assert engine.verify().ok


def test_without_the_master_key_personal_data_is_refused_clearly_but_bills_work(
    db: str, engine: Engine, person: Person, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The store's files alone never yield a key: opened without its master key (the file
    moved away, or another key given), matome refuses to read personal data with a clear
    ``store_unavailable`` naming the master key, while bills — which hold none — still work."""
    world(engine, person)
    bill = to_json(engine.bill(LINE, "2024-01"))
    engine.close()
    master = Path(db + MASTER_FILE_SUFFIX)
    master.rename(master.with_name("elsewhere.key"))
    e = Engine.open(db, hash_iterations=TEST_ITERATIONS, create=False)
    try:
        assert to_json(e.bill(LINE, "2024-01")) == bill
        with pytest.raises(PersonalDataLocked, match="no master key at") as refused:
            registered(e)
        assert isinstance(refused.value, StoreUnavailable)
        assert refused.value.code == "store_unavailable"
    finally:
        e.close()
    assert not master.exists()  # reading never makes a key
    other = base64.b64encode(secrets.token_bytes(32)).decode()
    monkeypatch.setenv("MATOME_MASTER_KEY", other)
    e = Engine.open(db, hash_iterations=TEST_ITERATIONS, create=False)
    try:
        assert to_json(e.bill(LINE, "2024-01")) == bill
        with pytest.raises(PersonalDataLocked, match="not the master key"):
            registered(e)
    finally:
        e.close()


def test_a_master_key_given_that_is_not_the_stores_wraps_no_new_key(
    db: str, engine: Engine, person: Person, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A new line's Passport ID keyed under a master key given by mistake
    (``MATOME_MASTER_KEY`` of another store) could never be unwrapped by the store's own: the
    write is refused with ``store_unavailable`` naming the master key, and records nothing."""
    world(engine, person)
    engine.close()
    other = base64.b64encode(secrets.token_bytes(32)).decode()
    monkeypatch.setenv("MATOME_MASTER_KEY", other)
    e = Engine.open(db, hash_iterations=TEST_ITERATIONS, create=False)
    try:
        before = e.internals.recorder.max_notification_id() or 0
        e.open_line(
            at="2024-03-01T09:00:00+09:00",
            customer_id="CAF0000000002",
            operator="west",
            kind="hikari_next",
            access_key=KEY,
            line_limit=10_000,
            billing={"method": "customer_number", "number": "0012345679"},
        )
        with pytest.raises(PersonalDataLocked, match="not the master key") as refused:
            e.register_passport(
                at="2024-03-01T10:00:00+09:00",
                customer_id="CAF0000000002",
                access_key=KEY,
                passport_id="taro.3",
                password=PW,
                email=f"other.{person.email}",
                applicant=person.applicant,
                limit=5000,
                line_auth=False,
            )
        assert refused.value.code == "store_unavailable"
        assert e.internals.recorder.max_notification_id() == before + 1  # the line only
        assert e.passport("taro.3") is None
    finally:
        e.close()
    monkeypatch.delenv("MATOME_MASTER_KEY")
    again = Engine.open(db, hash_iterations=TEST_ITERATIONS, create=False)
    try:
        assert registered(again).email.value == person.email  # the store's own key reads all
    finally:
        again.close()


def test_rows_written_before_crypto_shredding_keep_loading_and_are_erased(
    db: str, engine: Engine, person: Person
) -> None:
    """Stores written by earlier versions keep loading: a personal row in clear with its salt
    in its own column (matome 0.2 without a cipher key) reads and verifies, and its erasure
    removes it from every file of the store."""
    world(engine, person)
    rows = engine.internals.recorder.personal_rows()  # type: ignore[attr-defined]
    email = next(r for r in rows.values() if r.ref.endswith("/email"))
    salt, text = engine.internals.mapper.open_personal(email)  # type: ignore[attr-defined]
    sql(db, "UPDATE matome_personal SET data = ?, salt = ? WHERE ref = ?", (text, salt, email.ref))
    assert hits(sqlite_files(db), {"e-mail": person.email.encode()}) != []  # as 0.2 kept it
    assert str(registered(engine).email) == person.email
    assert engine.verify().ok
    engine.erase_personal_data(at="2024-02-03T10:00:00+09:00", passport_id=PID, reason="request")
    assert hits(sqlite_files(db), person.needles()) == []
    assert engine.verify().ok


# ---------------------------------------------------------------------------------------------
# PostgreSQL: the data directory and the WAL


def _pg(url: str) -> tuple[Any, str]:
    import psycopg

    dsn, _, query = url.partition("?")
    conn = psycopg.connect(dsn, autocommit=True)
    conn.execute(f'SET search_path TO "{query.split("schema=")[1]}"')
    row = conn.execute("SHOW data_directory").fetchone()
    assert row is not None
    return conn, str(row[0])


def _data_directory(root: str) -> dict[str, bytes]:
    out = {}
    for folder, _, names in os.walk(root):
        for name in names:
            path = os.path.join(folder, name)
            with contextlib.suppress(OSError):  # a file that went away (recycled WAL)
                out[path] = Path(path).read_bytes()
    return out


@pytest.mark.system
@pytest.mark.postgres
def test_after_an_erasure_postgresql_data_directory_and_wal_hold_no_personal_data(
    pg_url: str, person: Person, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Contract 3 on PostgreSQL: the values are sealed before they reach the server, so its
    heap and WAL never hold them in clear (before and after the erasure, after ``CHECKPOINT``);
    a changed e-mail's key and, at the erasure, the ID's key are destroyed and the keys table
    rewritten (``VACUUM FULL``: a plain VACUUM leaves a deleted row's bytes in its page), so no
    heap page holds them any more."""
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))  # its own default key
    conn, root = _pg(pg_url)
    if not os.access(root, os.R_OK):
        pytest.skip(f"the data directory {root} is not readable by this user")
    e = Engine.open(pg_url, hash_iterations=TEST_ITERATIONS)
    try:
        world(e, person)
        assert str(registered(e).email) == person.email
        conn.execute("CHECKPOINT")
        assert hits(_data_directory(root), person.needles()) == []
        passport = e.passport(PID)
        assert passport is not None
        key_of = "SELECT wrapped FROM matome_keys WHERE subject = %s"
        (first,) = conn.execute(key_of, (str(passport.id),)).fetchone()
        e.change_passport_details(
            at="2024-02-02T10:00:00+09:00", passport_id=PID, access_key=KEY, email=person.new_email
        )
        (wrapped,) = conn.execute(key_of, (str(passport.id),)).fetchone()
        conn.execute("CHECKPOINT")
        (heap,) = conn.execute("SELECT pg_relation_filepath('matome_keys')").fetchone()
        assert first.encode() not in Path(root, heap).read_bytes()  # the changed e-mail's key
        bill = to_json(e.bill(LINE, "2024-01"))
        e.erase_personal_data(at="2024-02-03T10:00:00+09:00", passport_id=PID, reason="request")
        conn.execute("CHECKPOINT")
        needles = {**person.needles(), "new e-mail": person.new_email.encode()}
        assert hits(_data_directory(root), needles) == []
        (heap,) = conn.execute("SELECT pg_relation_filepath('matome_keys')").fetchone()
        assert wrapped.encode() not in Path(root, heap).read_bytes()
        assert to_json(e.bill(LINE, "2024-01")) == bill
        assert e.verify().ok
        assert str(registered(e).email) == "(erased)"
    finally:
        e.close()
        conn.close()


def test_a_changed_email_of_a_0_1_store_leaves_no_old_email_in_its_files(tmp_path: Path) -> None:
    """A store written by matome 0.1 holds e-mails in clear inside its events: changing the
    e-mail redacts the earlier one there too (outside every hash), at once, securely."""
    path = str(tmp_path / "old.sqlite")
    shutil.copy(Path(__file__).parent.parent / "fixtures" / "store-v0.1.sqlite", path)
    old = {"e-mail": b"sato.jiro@example.jp"}
    assert hits(sqlite_files(path), old) != []
    e = Engine.open(path, hash_iterations=TEST_ITERATIONS)
    try:
        e.change_passport_details(
            at="2024-04-20T10:00:00+09:00",
            passport_id="sato.jiro",
            access_key="Key90000",
            email="sato.new@example.jp",
        )
        assert hits(sqlite_files(path), old) == []
        assert e.verify().ok
        passport = e.passport("sato.jiro")
        assert passport is not None
        assert str(passport.email) == "sato.new@example.jp"
    finally:
        e.close()


def test_a_master_key_from_keygen_is_used_and_no_key_file_is_made(
    db: str, person: Person, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """Production keeps the master key apart: ``matome keygen --master`` makes one, and a store
    given it (``MATOME_MASTER_KEY``) makes no key file; a key that is not 32 bytes of base64
    is ``invalid_input`` before anything is opened."""
    assert cli.main(["keygen", "--master"]) == 0
    key = capsys.readouterr().out.strip()
    assert len(base64.b64decode(key, validate=True)) == 32
    monkeypatch.setenv("MATOME_MASTER_KEY", key)
    e = Engine.open(db, hash_iterations=TEST_ITERATIONS)
    try:
        world(e, person)
    finally:
        e.close()
    assert not Path(db + MASTER_FILE_SUFFIX).exists()
    again = Engine.open(db, hash_iterations=TEST_ITERATIONS, master_key=key)
    try:
        assert str(registered(again).email) == person.email
    finally:
        again.close()
    with pytest.raises(InvalidInput, match="32 bytes"):
        Engine.open(db, master_key=base64.b64encode(b"short").decode())
