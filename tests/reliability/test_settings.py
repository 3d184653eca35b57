"""Settings come only from matome's own options and ``MATOME_*`` variables.

eventsourcing reads its settings from the process environment (``PERSISTENCE_MODULE``,
``SQLITE_DBNAME``, ``CIPHER_TOPIC``, ... and the same prefixed with the application's name,
``MATOME_SQLITE_DBNAME``).  matome must not: a stray variable in a shell would otherwise move
the events to another file, keep them in memory only, or encrypt them with a key nobody
kept.  These tests set such variables and check that nothing changes; that ``MATOME_DB`` is
honoured; and that encryption at rest (``MATOME_CIPHER_KEY``, made by ``matome keygen``) keeps
e-mails and prices out of the event table and fails in one line with a wrong key or none.
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import sqlite3
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from matome import cli

LINE = "CAF0000000001"
AK = "Ak3y0001"
PW = "Pass1234"
EMAIL = "taro.secret@example.jp"
#: A price no ciphertext is likely to spell by chance.
PRICE = 654321
JAN = "2024-01-05T10:00:00+09:00"

LOG: list[dict[str, Any]] = [
    {
        "command": "register_provider",
        "at": JAN,
        "provider": "A",
        "name": "A Co.",
        "contact": "0120-000-111",
        "goods": "information",
    },
    {
        "command": "list_service",
        "at": JAN,
        "provider": "A",
        "service": "back",
        "name": "back service",
        "pricing": "monthly",
        "price": 525,
    },
    {
        "command": "list_service",
        "at": JAN,
        "provider": "A",
        "service": "gold",
        "name": "gold plan",
        "pricing": "monthly",
        "price": PRICE,
    },
    {
        "command": "open_line",
        "at": JAN,
        "customer_id": LINE,
        "operator": "west",
        "kind": "hikari_next",
        "access_key": AK,
        "line_limit": 10000,
        "billing": {"method": "customer_number", "number": "0012345678"},
    },
    {
        "command": "register_passport",
        "at": JAN,
        "customer_id": LINE,
        "access_key": AK,
        "passport_id": "yamada.taro",
        "password": PW,
        "email": EMAIL,
        "applicant": {"name": "Yamada", "phone": "06-1234-5678", "contract_holder": True},
        "limit": 5000,
        "line_auth": False,
    },
    {
        "command": "purchase",
        "at": "2024-01-15T20:00:00+09:00",
        "passport_id": "yamada.taro",
        "password": PW,
        "provider": "A",
        "service": "back",
    },
    {"command": "issue_bills", "at": "2024-02-01T09:00:00+09:00", "month": "2024-01"},
]

#: eventsourcing's own settings, each of which would change where or how events are kept.
FOREIGN: dict[str, str] = {
    "PERSISTENCE_MODULE": "eventsourcing.popo",
    "SQLITE_DBNAME": "x3.sqlite",
    "POSTGRES_DBNAME": "no_such_db",
    "POSTGRES_SCHEMA": "no_such_schema",
    "CIPHER_TOPIC": "eventsourcing.cryptography:AESCipher",
    "CIPHER_KEY": base64.b64encode(b"k" * 32).decode(),
    "COMPRESSOR_TOPIC": "eventsourcing.compressor:ZlibCompressor",
    "CREATE_TABLE": "n",
    "MATOME_PERSISTENCE_MODULE": "eventsourcing.popo",
    "MATOME_SQLITE_DBNAME": "x2.sqlite",
    "MATOME_CIPHER_TOPIC": "eventsourcing.cryptography:AESCipher",
    "MATOME_COMPRESSOR_TOPIC": "eventsourcing.compressor:ZlibCompressor",
}


class Ran:
    def __init__(self, code: int, out: str, err: str) -> None:
        self.code, self.out, self.err = code, out, err

    def __repr__(self) -> str:
        return f"exit {self.code}\nstdout: {self.out}\nstderr: {self.err}"

    @property
    def results(self) -> list[dict[str, Any]]:
        return [json.loads(line) for line in self.out.splitlines() if line.strip()]


Matome = Callable[..., Ran]


@pytest.fixture
def matome(
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    cheap_hashing: None,
) -> Matome:
    """``matome ARGS...`` in this process, in ``tmp_path``, with exactly the environment
    variables given (none of matome's or eventsourcing's is inherited)."""
    for name in list(os.environ):
        if name.startswith(("MATOME_", "SQLITE_")) or name in FOREIGN:
            monkeypatch.delenv(name)
    monkeypatch.chdir(tmp_path)

    def run(*args: str, env: dict[str, str] | None = None) -> Ran:
        with monkeypatch.context() as m:
            for name, value in (env or {}).items():
                m.setenv(name, value)
            capsys.readouterr()
            try:
                code = cli.main(list(args))
            except SystemExit as e:
                code = e.code if isinstance(e.code, int) else 1
            except Exception as e:
                pytest.fail(f"matome {' '.join(args)} raised {e!r}: a traceback, not one line")
            out, err = capsys.readouterr()
        return Ran(code, out, err)

    return run


@pytest.fixture
def log(tmp_path: Path) -> Path:
    path = tmp_path / "log.jsonl"
    path.write_text("".join(json.dumps(e, ensure_ascii=False) + "\n" for e in LOG))
    return path


def table_rows(db: Path, table: str) -> list[tuple[Any, ...]]:
    with contextlib.closing(sqlite3.connect(db)) as conn:
        return list(conn.execute(f"SELECT * FROM {table}").fetchall())


def events(db: Path) -> list[tuple[str, int, str]]:
    return [(str(r[0]), int(r[1]), str(r[2])) for r in table_rows(db, "stored_events")]


def files(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


def run_log(matome: Matome, log: Path, *args: str, env: dict[str, str] | None = None) -> Ran:
    ran = matome("run", str(log), *args, "--quiet", env=env)
    assert ran.code == 0, ran
    assert [r["ok"] for r in ran.results] == [True] * len(LOG), ran
    return ran


BILL = ("bill", LINE, "2024-01", "--json")


# ---------------------------------------------------------------------------------------------
# eventsourcing's variables change nothing


def test_matome_sqlite_dbname_does_not_split_the_store(
    matome: Matome, log: Path, tmp_path: Path
) -> None:
    env = {"MATOME_SQLITE_DBNAME": "x2"}
    run_log(matome, log, "--db", "split.sqlite", env=env)
    bill = matome(*BILL, "--db", "split.sqlite", env=env)
    assert bill.code == 0, bill
    assert json.loads(bill.out)["subtotal"] == 525
    db = tmp_path / "split.sqlite"
    assert len(events(db)) > len(LOG), "the events are in split.sqlite"
    assert table_rows(db, "mv_subs"), "and so are the views"
    assert not any(name.startswith("x2") for name in files(tmp_path)), files(tmp_path)
    # Read without the variable: the same store, whole.
    assert matome(*BILL, "--db", "split.sqlite").out == bill.out


#: Each of these alone (the brief's four, and the prefixed forms), then all of them at once.
ALONE = (
    "PERSISTENCE_MODULE",
    "SQLITE_DBNAME",
    "POSTGRES_DBNAME",
    "CIPHER_TOPIC",
    "MATOME_PERSISTENCE_MODULE",
    "MATOME_CIPHER_TOPIC",
)


@pytest.mark.parametrize("name", [*ALONE, "all"])
def test_eventsourcing_variables_change_nothing(
    matome: Matome, log: Path, tmp_path: Path, name: str
) -> None:
    run_log(matome, log, "--db", "plain.sqlite")
    plain = matome(*BILL, "--db", "plain.sqlite")
    env = dict(FOREIGN) if name == "all" else {name: FOREIGN[name]}
    run_log(matome, log, "--db", "store.sqlite", env=env)
    for read in (BILL, ("providers", "2024-01", "--json"), ("status", LINE, "--json")):
        with_env = matome(*read, "--db", "store.sqlite", env=env)
        without = matome(*read, "--db", "store.sqlite")
        assert with_env.code == without.code == 0, (with_env, without)
        assert with_env.out == without.out
    assert matome(*BILL, "--db", "store.sqlite").out == plain.out
    db = tmp_path / "store.sqlite"
    assert [e[1:] for e in events(db)] == [e[1:] for e in events(tmp_path / "plain.sqlite")]
    # Neither encrypted nor compressed: the e-mail's reference and the topics are plain JSON.
    states = [bytes(r[3]) for r in table_rows(db, "stored_events")]
    assert all(s.startswith(b"{") for s in states), "the events were encrypted or compressed"
    # No other file (a store's own companions, e.g. its -wal, excepted).
    strays = [f for f in files(tmp_path) if not f.startswith(("log.", "plain.", "store."))]
    assert strays == [], files(tmp_path)
    assert matome("verify", "--db", "store.sqlite").code == 0


@pytest.mark.postgres
def test_postgres_variables_do_not_move_a_postgres_store(
    matome: Matome, log: Path, pg_url: str
) -> None:
    env = {
        "POSTGRES_DBNAME": "no_such_db",
        "POSTGRES_SCHEMA": "public",
        "POSTGRES_PORT": "1",
        "MATOME_POSTGRES_SCHEMA": "public",
        "PERSISTENCE_MODULE": "eventsourcing.popo",
    }
    run_log(matome, log, "--db", pg_url, env=env)
    bill = matome(*BILL, "--db", pg_url)
    assert bill.code == 0, bill
    assert json.loads(bill.out)["subtotal"] == 525
    import psycopg

    schema = pg_url.split("schema=")[1]
    with psycopg.connect(pg_url.split("?")[0]) as conn:
        (count,) = conn.execute(f'SELECT count(*) FROM "{schema}".matome_events').fetchone() or (0,)
    assert count > len(LOG)


# ---------------------------------------------------------------------------------------------
# MATOME_DB


def test_matome_db_is_honoured(matome: Matome, log: Path, tmp_path: Path) -> None:
    env = {"MATOME_DB": str(tmp_path / "chosen.sqlite")}
    run_log(matome, log, env=env)
    assert (tmp_path / "chosen.sqlite").exists()
    assert not (tmp_path / "matome.sqlite").exists(), "the default store was used"
    bill = matome(*BILL, env=env)
    assert bill.code == 0, bill
    assert json.loads(bill.out)["subtotal"] == 525
    # Without it, the default store: there is none, and a read command does not make one.
    assert matome(*BILL).code == 3
    assert not (tmp_path / "matome.sqlite").exists()
    # --db wins over MATOME_DB, given after the command or before it.
    other = {"MATOME_DB": str(tmp_path / "missing.sqlite")}
    assert matome(*BILL, "--db", str(tmp_path / "chosen.sqlite"), env=other).out == bill.out
    assert matome("--db", str(tmp_path / "chosen.sqlite"), *BILL, env=other).out == bill.out
    assert not (tmp_path / "missing.sqlite").exists()


# ---------------------------------------------------------------------------------------------
# Encryption at rest


def keygen(matome: Matome) -> str:
    ran = matome("keygen")
    assert ran.code == 0, ran
    key = ran.out.strip()
    assert len(base64.b64decode(key, validate=True)) == 32
    return key


def all_bytes(db: Path) -> bytes:
    return b"".join(
        p.read_bytes() for p in (db, Path(f"{db}-wal"), Path(f"{db}-shm")) if p.exists()
    )


def event_table_bytes(db: Path) -> bytes:
    return b"".join(
        b"|".join(str(c).encode() if not isinstance(c, bytes) else c for c in row)
        for table in ("stored_events", "matome_personal")
        for row in table_rows(db, table)
    )


def one_line(ran: Ran, code: int, *needles: str) -> str:
    assert ran.code == code, ran
    lines = [line for line in ran.err.splitlines() if line.strip()]
    assert len(lines) == 1, ran
    for needle in needles:
        assert needle in lines[0], (needle, lines[0])
    return lines[0]


def test_an_encrypted_store_keeps_emails_and_prices_out_of_its_event_table(
    matome: Matome, log: Path, tmp_path: Path
) -> None:
    key = keygen(matome)
    assert keygen(matome) != key
    with_key = {"MATOME_CIPHER_KEY": key}
    run_log(matome, log, "--db", "plain.sqlite")
    run_log(matome, log, "--db", "secret.sqlite", env=with_key)
    db, plain = tmp_path / "secret.sqlite", tmp_path / "plain.sqlite"
    # The plain store shows what the encrypted one must not (personal data is sealed in both:
    # crypto-shredding, Contract 3, needs no cipher key).
    assert EMAIL.encode() not in all_bytes(plain)
    assert str(PRICE).encode() in event_table_bytes(plain)
    stored = event_table_bytes(db)
    assert EMAIL.encode() not in all_bytes(db)
    for clear in (str(PRICE).encode(), b'"price"', b"yamada.taro", b"back service"):
        assert clear not in stored, f"{clear!r} in clear in the event table"
    # With the key it answers as the plain store does.
    for read in (BILL, ("statement", LINE, "2024-01", "--json"), ("status", LINE, "--json")):
        mine = matome(*read, "--db", "secret.sqlite", env=with_key)
        assert mine.code == 0, mine
        assert mine.out == matome(*read, "--db", "plain.sqlite").out
    assert matome("verify", "--db", "secret.sqlite", env=with_key).code == 0
    assert matome("rebuild", "--db", "secret.sqlite", env=with_key).code == 0
    assert (
        matome(*BILL, "--db", "secret.sqlite", env=with_key).out
        == matome(*BILL, "--db", "plain.sqlite").out
    )


@pytest.mark.parametrize("key", ["wrong", "none"])
def test_an_encrypted_store_without_its_key_fails_in_one_line(
    matome: Matome, log: Path, tmp_path: Path, key: str
) -> None:
    run_log(matome, log, "--db", "secret.sqlite", env={"MATOME_CIPHER_KEY": keygen(matome)})
    db = tmp_path / "secret.sqlite"
    before = events(db)
    env = {"MATOME_CIPHER_KEY": keygen(matome)} if key == "wrong" else {}
    cause = "cannot be decrypted" if key == "wrong" else "MATOME_CIPHER_KEY"
    for read in (("bill", LINE, "2024-01"), ("status", LINE), ("verify",), ("rebuild",)):
        one_line(matome(*read, "--db", "secret.sqlite", env=env), 4, "secret.sqlite", cause)
    got = matome(*BILL, "--db", "secret.sqlite", env=env)
    assert got.code == 4, got
    assert json.loads(got.out)["error"]["code"] == "store_unavailable"
    more = tmp_path / "more.jsonl"
    more.write_text(json.dumps({**LOG[5], "at": "2024-02-15T20:00:00+09:00"}) + "\n")
    ran = matome("run", str(more), "--db", "secret.sqlite", env=env)
    one_line(ran, 4, "secret.sqlite", cause)
    assert ran.results == []
    assert events(db) == before, "a write reached a store it could not read"


def test_a_key_that_is_not_a_key_fails_in_one_line(matome: Matome, log: Path) -> None:
    started = time.monotonic()
    ran = matome("run", str(log), "--db", "store.sqlite", env={"MATOME_CIPHER_KEY": "not a key"})
    one_line(ran, 1, "cipher key")
    assert ran.results == []
    assert time.monotonic() - started < 5


# ---------------------------------------------------------------------------------------------
# A postgresql:// URL says only what matome understands (docs/contract.md, "Store URL parameters
# (contract 3)")

#: A server nobody listens on: a URL that got past the checks would fail with exit 4, not 2.
NOWHERE = "postgresql://postgres@127.0.0.1:1/test"


@pytest.mark.parametrize(
    ("query", "needle"),
    [
        ("schmea=billing", "unknown parameter 'schmea'"),
        ("schema=billing&sslmode=require", "unknown parameter 'sslmode'"),
        ("schema=a&schema=b", "schema is given 2 times"),
        ("schema=", "not a plain PostgreSQL identifier"),
        ('schema=x";DROP TABLE t;--', "not a plain PostgreSQL identifier"),
        ("schema=x%20y", "not a plain PostgreSQL identifier"),
        ("schema=1st", "not a plain PostgreSQL identifier"),
        ("schema=pg_catalog", "not a plain PostgreSQL identifier"),
        ("schema=" + "s" * 64, "not a plain PostgreSQL identifier"),
        ("schema", "not name=value pairs"),
    ],
)
def test_a_store_url_with_a_parameter_matome_does_not_know_is_invalid_input(
    matome: Matome, log: Path, query: str, needle: str
) -> None:
    """Contract 3: a ``postgresql://`` URL with a parameter matome does not know is
    ``invalid_input`` (exit 2), never ignored; the schema name is a bounded identifier before
    it reaches SQL.  Nothing is opened: the server in the URL does not even exist."""
    url = f"{NOWHERE}?{query}"
    for args in (("run", str(log)), ("bill", LINE, "2024-01")):
        ran = matome(*args, "--db", url)
        one_line(ran, 2, "invalid_input", needle)
        assert ran.results == []
    got = matome(*BILL, "--db", url)
    assert got.code == 2, got
    assert json.loads(got.out)["error"]["code"] == "invalid_input"


def test_a_store_url_with_known_parameters_still_opens(matome: Matome) -> None:
    """The four parameters matome knows are accepted (the server is unreachable: exit 4)."""
    url = f"{NOWHERE}?schema=Billing_2024&connect_timeout=1&pool_size=2&max_overflow=0"
    one_line(matome("bill", LINE, "2024-01", "--db", url), 4, "schema Billing_2024")


# ---------------------------------------------------------------------------------------------
# A store named through a symbolic link is the same store, with the same writers' gate


def test_a_store_named_through_a_symlink_shares_the_writers_gate_of_the_file(
    matome: Matome, log: Path, tmp_path: Path
) -> None:
    """docs/reliability.md ("Threads and processes"): writers pass one gate per store.  A
    process naming the store through a link and one naming the file must share it, or a
    command holding the gate exclusive is not alone after all."""
    import threading

    from matome.application.eventstore import EventStoreApplication, store_env

    real = tmp_path / "data" / "store.sqlite"
    real.parent.mkdir()
    run_log(matome, log, "--db", str(real))
    link = tmp_path / "link.sqlite"
    link.symlink_to(real)
    via_link = EventStoreApplication(store_env(str(link)))
    direct = EventStoreApplication(store_env(str(real)))
    try:
        entered = threading.Event()

        def write_directly() -> None:
            with direct.gate.shared():
                entered.set()

        with via_link.gate.exclusive():
            writer = threading.Thread(target=write_directly)
            writer.start()
            assert not entered.wait(0.3), "a writer passed a gate held through the link"
        assert entered.wait(10)
        writer.join()
    finally:
        via_link.close()
        direct.close()
    assert not (tmp_path / "link.sqlite.gate").exists()
    assert (real.parent / "store.sqlite.gate").exists()
    # And a write through the link lands in the file.
    more = tmp_path / "more.jsonl"
    before = len(events(real))
    more.write_text(
        json.dumps({**LOG[0], "at": "2024-02-15T20:00:00+09:00", "provider": "B"}) + "\n"
    )
    ran = matome("run", str(more), "--db", str(link))
    assert ran.code == 0, ran
    assert [r["ok"] for r in ran.results] == [True]
    assert len(events(real)) == before + 1
    assert not (tmp_path / "link.sqlite.gate").exists()


# ---------------------------------------------------------------------------------------------
# An older matome does not write to a store a newer one wrote


def _craft(db: Path, sql: str, params: tuple[Any, ...] = ()) -> None:
    with contextlib.closing(sqlite3.connect(db)) as conn:
        conn.execute(sql, params)
        conn.commit()


def _future_event(db: Path, topic: str, class_version: int | None = None) -> None:
    """An event as a later matome might write it: of a kind this one does not know, or of a
    known kind at a later class version."""
    import uuid

    (state,) = [r[3] for r in table_rows(db, "stored_events") if r[2] == topic] or [b"{}"]
    body = json.loads(bytes(state))
    if class_version is not None:
        body["class_version"] = class_version
    _craft(
        db,
        "INSERT INTO stored_events (originator_id, originator_version, topic, state) "
        "VALUES (?, 1, ?, ?)",
        (uuid.uuid4().hex, topic, json.dumps(body).encode()),
    )


PROVIDER_TOPIC = "matome.catalog.ProviderRegistered"

CRAFTED: dict[str, tuple[Callable[[Path], None], str]] = {
    "higher-store-format": (
        lambda db: _craft(db, "UPDATE matome_meta SET value = 99 WHERE name = 'format'"),
        "store format 99",
    ),
    "a-newer-matome-knows-more-events": (
        lambda db: _craft(
            db, "INSERT INTO matome_meta (name, value) VALUES ('event:matome.future.Thing', 1)"
        ),
        "matome.future.Thing",
    ),
    "an-event-of-an-unknown-kind": (
        lambda db: _future_event(db, "matome.future.Thing"),
        "matome.future.Thing",
    ),
    "an-event-at-a-higher-class-version": (
        lambda db: _future_event(db, PROVIDER_TOPIC, class_version=99),
        f"{PROVIDER_TOPIC} at class version 99",
    ),
}


@pytest.mark.parametrize("case", list(CRAFTED))
def test_an_older_matome_does_not_write_to_a_store_a_newer_one_wrote(
    matome: Matome, log: Path, tmp_path: Path, case: str
) -> None:
    """docs/reliability.md ("Output and settings that cannot hurt"): a store records what
    wrote it; a matome that finds a newer format, a newer matome's events, or events it does
    not know refuses to write (exit 4, one line) and writes nothing."""
    run_log(matome, log, "--db", "store.sqlite")
    db = tmp_path / "store.sqlite"
    marks = {str(r[0]): int(r[1]) for r in table_rows(db, "matome_meta")}
    assert marks["format"] == 1
    assert marks[f"event:{PROVIDER_TOPIC}"] == 1
    assert any(name.startswith("matome:") for name in marks)
    craft, needle = CRAFTED[case]
    craft(db)
    before = events(db)
    more = tmp_path / "more.jsonl"
    more.write_text(json.dumps({**LOG[0], "at": "2024-02-15T20:00:00+09:00", "provider": "B"}))
    ran = matome("run", str(more), "--db", "store.sqlite")
    one_line(ran, 4, "store_unavailable", "store.sqlite", needle, "does not write to it")
    assert ran.results == []
    assert events(db) == before, "an older matome wrote to a newer matome's store"
    if case in ("higher-store-format", "a-newer-matome-knows-more-events"):
        # Every event is one this matome knows: reading is safe, and works.
        bill = matome(*BILL, "--db", "store.sqlite")
        assert bill.code == 0, bill
        assert json.loads(bill.out)["subtotal"] == 525
