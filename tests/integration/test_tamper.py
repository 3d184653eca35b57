"""Tamper evidence that cannot be removed (docs/contract.md, "Seal and verify"; docs/audit.md,
"Proving the history"), on SQLite and on PostgreSQL.

Each test writes one history with the Python API, tampers with the store the way an insider
with SQL access would — never through matome — and runs ``matome verify`` (in-process, as the
command line does).  Contract 3 requires that every event has its entry in its stream's chain
and in the global chain (deleting hashes is itself a break), that what the read models show of
issued bills equals the issued bills, and that a signed seal kept outside the store proves
what it held: ``verify --against SEAL`` exits 1 naming the first bad position for any deletion,
edit, reorder or truncation before it — even of a history rewritten with every hash recomputed.

Issue #15 lists the breaks of the previous version; each test below failed on it.
"""

from __future__ import annotations

import contextlib
import io
import json
import shutil
import sqlite3
import threading
from pathlib import Path
from typing import Any

import pytest

from matome import cli
from matome.documents import Bill
from matome.engine import Engine
from matome.errors import StoreUnavailable
from matome.projections.documents import bill_digest
from matome.wire import dumps, from_json, text_digest
from tests.conftest import TEST_ITERATIONS
from tests.integration.test_audit import LINE, PW, buy, world


class Store:
    """SQL straight to the store's tables, as an insider would (no matome in between)."""

    def __init__(self, db: str) -> None:
        self.db = db
        self.postgres = db.startswith("postgresql")
        #: The events table and its log-position column on this kind of store.
        self.events = "matome_events" if self.postgres else "stored_events"
        self.pos = "notification_id" if self.postgres else "rowid"

    def sql(self, text: str, params: tuple[Any, ...] = ()) -> list[Any]:
        text = text.replace("EVENTS", self.events).replace("POS", self.pos)
        if not self.postgres:
            with contextlib.closing(sqlite3.connect(self.db)) as conn:
                rows = conn.execute(text.replace("%s", "?"), params).fetchall()
                conn.commit()
                return rows
        import psycopg

        dsn, _, query = self.db.partition("?")
        with psycopg.connect(dsn, autocommit=True) as conn:
            conn.execute(f'SET search_path TO "{query.split("schema=")[1]}"')
            cur = conn.execute(text, params)
            return cur.fetchall() if cur.description else []

    def event(self, topic: str, index: int = 0) -> tuple[Any, int, int, dict[str, Any]]:
        """The ``index``-th event of ``topic`` in log order: stream, version, position, state."""
        stream, version, position, state = self.sql(
            "SELECT originator_id, originator_version, POS, state FROM EVENTS "
            "WHERE topic = %s ORDER BY POS",
            (topic,),
        )[index]
        return stream, version, position, json.loads(bytes(state))

    def set_state(self, stream: Any, version: int, state: dict[str, Any]) -> None:
        self.sql(
            "UPDATE EVENTS SET state = %s WHERE originator_id = %s AND originator_version = %s",
            (json.dumps(state).encode(), stream, version),
        )

    def delete_event(self, stream: Any, version: int, *, rows: bool) -> None:
        """Delete one event; with ``rows``, its chain entries too."""
        if rows:
            position = self.sql(
                "SELECT POS FROM EVENTS WHERE originator_id = %s AND originator_version = %s",
                (stream, version),
            )[0][0]
            self.sql("DELETE FROM matome_global_chain WHERE position = %s", (position,))
            self.sql(
                "DELETE FROM matome_chain WHERE originator_id = %s AND originator_version = %s",
                (stream, version),
            )
        self.sql(
            "DELETE FROM EVENTS WHERE originator_id = %s AND originator_version = %s",
            (stream, version),
        )

    def last_position(self) -> int:
        return int(self.sql("SELECT MAX(POS) FROM EVENTS")[0][0])


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def db(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return str(tmp_path / "tamper.sqlite")
    url: str = request.getfixturevalue("pg_url")
    return url


def matome(db: str, *args: str) -> tuple[int, Any]:
    """``matome ARGS --db DB --json`` in-process: its exit code and its JSON output."""
    out = io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(io.StringIO()):
        code = cli.main([*args, "--db", db, "--json"])
    text = out.getvalue()
    return code, json.loads(text) if text.strip() else None


def history(e: Engine) -> None:
    """``back`` bought in January and cancelled in February, an ``item`` in January, the
    February bill issued on 1 March, then ``news`` bought in March (after every bill)."""
    world(e)
    a = buy(e, "2024-01-10T10:00:00+09:00")
    buy(e, "2024-01-12T10:00:00+09:00", "item")
    e.cancel(at="2024-02-10T10:00:00+09:00", receipt=a, password=PW)
    e.issue_bills(at="2024-03-01T09:00:00+09:00", month="2024-02")
    buy(e, "2024-03-05T10:00:00+09:00", "news")
    buy(e, "2024-03-06T10:00:00+09:00", "item")


@pytest.fixture
def store(db: str) -> Store:
    """The history written and closed, verified intact: the store to tamper with."""
    e = Engine.open(db, hash_iterations=TEST_ITERATIONS)
    try:
        history(e)
        e.bill(LINE, "2024-02")  # the views caught up, as a reader leaves them
    finally:
        e.close()
    code, report = matome(db, "verify")
    assert (code, report["ok"]) == (0, True), report
    return Store(db)


@pytest.fixture
def keys(tmp_path: Path) -> tuple[str, str]:
    """A seal key pair made by ``matome keygen --seal``: the private and the public key."""
    private = str(tmp_path / "seal.key")
    with contextlib.redirect_stderr(io.StringIO()):
        assert cli.main(["keygen", "--seal", "--out", private]) == 0
    return private, private + ".pub"


def sealed(db: str, keys: tuple[str, str], tmp_path: Path, name: str = "seal.json") -> str:
    """``matome seal`` of ``db`` into a file; its path."""
    out = str(tmp_path / name)
    with contextlib.redirect_stderr(io.StringIO()):
        assert cli.main(["seal", "--db", db, "--key", keys[0], "--out", out]) == 0
    return out


def broken(db: str, *args: str) -> dict[str, Any]:
    """``matome verify ARGS``, which must exit 1: its report."""
    code, report = matome(db, "verify", *args)
    assert code == 1, report
    assert report["ok"] is False
    assert report["problems"]
    assert report["first_break"] is not None
    found: dict[str, Any] = report
    return found


def kinds(report: dict[str, Any]) -> set[str]:
    return {b["kind"] for b in report["breaks"]}


# ---------------------------------------------------------------------------------------------
# The four breaks of issue #15


def test_deleting_every_chain_row_then_editing_a_price_is_a_break(store: Store) -> None:
    """Issue #15: with every hash deleted, an edited price passed as "0 with a recorded
    hash".  Contract 3: an event without its chain entry is a break."""
    store.sql("DELETE FROM matome_chain")
    stream, version, _, state = store.event("matome.subscription.Purchased")
    state["price"] = 100_000
    store.set_state(stream, version, state)
    report = broken(store.db)
    assert "unchained" in kinds(report)


def test_deleting_every_chain_row_of_both_chains_then_editing_a_price_is_a_break(
    store: Store,
) -> None:
    """The same with the global chain emptied too: every event lacks both entries."""
    store.sql("DELETE FROM matome_chain")
    store.sql("DELETE FROM matome_global_chain")
    stream, version, _, state = store.event("matome.subscription.Purchased")
    state["price"] = 100_000
    store.set_state(stream, version, state)
    report = broken(store.db)
    assert "unchained" in kinds(report)
    assert report["first_break"]["position"] == 1


def test_deleting_a_streams_last_event_with_its_chain_rows_is_a_break(store: Store) -> None:
    """Issue #15: the ``Cancelled`` that ends a subscription's stream, deleted with its chain
    row, passed (and the subscription was charged again).  The global chain breaks at the
    next log position."""
    stream, version, position, _ = store.event("matome.subscription.Cancelled")
    store.delete_event(stream, version, rows=True)
    report = broken(store.db)
    assert "global_chain" in kinds(report)
    assert report["first_break"]["position"] == position + 1


def test_a_rewritten_bill_with_its_digest_recomputed_and_chain_row_dropped_is_a_break(
    store: Store,
) -> None:
    """Issue #15: a ``BillIssued`` rewritten with a consistent digest and its chain row
    dropped passed.  It now lacks its stream-chain entry and breaks the global chain."""
    stream, version, position, state = store.event("matome.bill.BillIssued")
    document = json.loads(state["document"])
    document["subtotal"] = 1
    state["document"] = dumps(document)
    state["digest"] = text_digest(state["document"])
    store.set_state(stream, version, state)
    store.sql(
        "DELETE FROM matome_chain WHERE originator_id = %s AND originator_version = %s",
        (stream, version),
    )
    report = broken(store.db)
    assert {"unchained", "global_chain"} <= kinds(report)
    assert report["first_break"]["position"] == position


def test_an_edited_view_row_of_an_issued_bill_is_a_break(store: Store) -> None:
    """Issue #15: an edited read-model row of an issued bill passed while ``matome bill``
    showed the edited figure.  Contract 3: what the views show of issued bills must equal
    the issued bills in the events."""
    document = json.loads(store.sql("SELECT document FROM mv_bills")[0][0])
    document["subtotal"] = 100_699
    store.sql("UPDATE mv_bills SET document = %s", (json.dumps(document),))
    assert matome(store.db, "bill", LINE, "2024-02")[1]["subtotal"] == 100_699
    report = broken(store.db)
    assert kinds(report) == {"view_changed"}


# ---------------------------------------------------------------------------------------------
# Deletions


def test_deleting_one_event_is_a_break(store: Store) -> None:
    stream, version, position, _ = store.event("matome.subscription.Purchased", 1)
    store.delete_event(stream, version, rows=False)
    report = broken(store.db)
    assert report["first_break"]["position"] == position
    assert "missing" in kinds(report)


def test_deleting_one_stream_chain_row_is_a_break(store: Store) -> None:
    stream, version, position, _ = store.event("matome.passport.HoldingAdded")
    store.sql(
        "DELETE FROM matome_chain WHERE originator_id = %s AND originator_version = %s",
        (stream, version),
    )
    report = broken(store.db)
    assert kinds(report) == {"unchained"}
    assert report["first_break"]["position"] == position


def test_deleting_one_global_chain_row_is_a_break(store: Store) -> None:
    position = store.event("matome.subscription.Cancelled")[2]
    store.sql("DELETE FROM matome_global_chain WHERE position = %s", (position,))
    report = broken(store.db)
    assert kinds(report) == {"unchained"}
    assert report["first_break"]["position"] == position


def test_truncating_the_log_is_a_break(store: Store) -> None:
    """The newest events deleted, their chain rows left: the global rows name them."""
    last = store.last_position()
    store.sql("DELETE FROM EVENTS WHERE POS > %s", (last - 3,))
    report = broken(store.db)
    assert report["first_break"]["position"] == last - 2
    assert "missing" in kinds(report)


def test_deleting_the_newest_events_with_all_their_rows_is_caught_by_the_seal(
    store: Store, keys: tuple[str, str], tmp_path: Path
) -> None:
    """Cut off at the end with every row of theirs, the log agrees with itself: only a seal
    kept outside the store shows it was longer (exit 1, naming the first position gone)."""
    seal = sealed(store.db, keys, tmp_path)
    last = store.last_position()
    for stream, version in store.sql(
        "SELECT originator_id, originator_version FROM EVENTS WHERE POS > %s", (last - 2,)
    ):
        store.delete_event(stream, version, rows=True)
    report = broken(store.db, "--against", seal, "--public-key", keys[1])
    assert kinds(report) == {"seal"}
    assert report["against"]["ok"] is False
    assert report["first_break"]["position"] == last - 1


def test_a_write_after_the_newest_event_was_deleted_does_not_hide_the_deletion(
    store: Store,
) -> None:
    """SQLite gives a deleted last row's position to the next insert: that write is refused
    (``store_unavailable``: the global chain is ahead of the log), never chained over the
    gap.  PostgreSQL's sequence never reuses it: the write goes on and ``verify`` still
    names the position whose event is gone."""
    last = store.last_position()
    store.sql("DELETE FROM EVENTS WHERE POS = %s", (last,))
    e = Engine.open(store.db, hash_iterations=TEST_ITERATIONS)
    try:

        def write() -> None:
            e.register_provider(
                at="2024-04-01T09:00:00+09:00",
                provider="Z",
                name="Z",
                contact="0",
                goods="information",
            )

        if store.postgres:
            write()
        else:
            with pytest.raises(StoreUnavailable, match="events were deleted"):
                write()
    finally:
        e.close()
    report = broken(store.db)
    assert report["first_break"]["position"] == last


# ---------------------------------------------------------------------------------------------
# Edits and reorders


def test_editing_an_events_state_is_a_break(store: Store) -> None:
    stream, version, position, state = store.event("matome.subscription.Cancelled")
    state["at"] = "2024-03-01T08:00:00+09:00"
    store.set_state(stream, version, state)
    report = broken(store.db)
    assert {"changed", "global_chain"} <= kinds(report)
    assert report["first_break"]["position"] == position


def test_editing_an_events_topic_is_a_break(store: Store) -> None:
    stream, version, position, _ = store.event("matome.subscription.Purchased", 1)
    store.sql(
        "UPDATE EVENTS SET topic = %s WHERE originator_id = %s AND originator_version = %s",
        ("matome.subscription.Refunded", stream, version),
    )
    report = broken(store.db)
    assert report["first_break"]["position"] == position


def test_editing_an_events_version_is_a_break(store: Store) -> None:
    stream, version, position, _ = store.event("matome.subscription.Cancelled")
    store.sql(
        "UPDATE EVENTS SET originator_version = %s "
        "WHERE originator_id = %s AND originator_version = %s",
        (version + 5, stream, version),
    )
    report = broken(store.db)
    assert report["first_break"]["position"] == position


def test_swapping_two_events_in_the_log_is_a_break(store: Store) -> None:
    """Two events of different streams trade log positions: each stream's chain still holds
    (their versions are in order), the global chain does not."""
    first = store.event("matome.subscription.Purchased", 0)[2]
    second = store.event("matome.subscription.Purchased", 1)[2]
    for old, new in ((first, -1), (second, first), (-1, second)):
        store.sql("UPDATE EVENTS SET POS = %s WHERE POS = %s", (new, old))
    report = broken(store.db)
    assert "global_chain" in kinds(report)
    assert report["first_break"]["position"] == first


def test_editing_a_personal_value_is_a_break(store: Store) -> None:
    store.sql("UPDATE matome_personal SET data = %s WHERE ref LIKE %s", ('"eve@x.jp"', "%/email"))
    report = broken(store.db)
    assert kinds(report) == {"personal_changed"}


def test_editing_an_issued_bill_document_is_a_break(store: Store) -> None:
    """The bill inside ``BillIssued`` edited, its digest left: the document no longer matches
    its digest, the event its hashes."""
    stream, version, position, state = store.event("matome.bill.BillIssued")
    document = json.loads(state["document"])
    document["subtotal"] = 1
    state["document"] = dumps(document)
    store.set_state(stream, version, state)
    report = broken(store.db)
    assert {"bill_changed", "changed"} <= kinds(report)
    assert report["first_break"]["position"] == position


def test_one_byte_changed_in_a_stored_bill_text_is_a_break(store: Store) -> None:
    """``BillIssued`` v4 stores the bill's canonical JSON text and its digest is the SHA-256
    of those bytes: one digit changed is a break of the bill and of its event's hash."""
    stream, version, position, state = store.event("matome.bill.BillIssued")
    assert state["class_version"] == 4
    text = state["document"]
    assert text.endswith('"subtotal":965}')
    for edited in (text[:-2] + "6}", text[:-4] + "0" + text[-3:]):
        # A figure changed (still JSON), and one no longer JSON ("065")
        state["document"] = edited
        store.set_state(stream, version, state)
        report = broken(store.db)
        assert {"bill_changed", "changed"} <= kinds(report)
        assert any("does not match its digest" in b["message"] for b in report["breaks"])
        assert report["first_break"]["position"] == position


def test_a_stored_bill_text_reformatted_without_changing_its_meaning_is_a_break(
    store: Store,
) -> None:
    """``verify`` hashes the stored bytes, not a re-serialisation: a byte added that leaves the
    bill's JSON value as it was (the same typed bill, the same re-serialisation) is still
    found, because the digest covers the text as issued."""
    stream, version, position, state = store.event("matome.bill.BillIssued")
    text = state["document"]
    spaced = text.replace('"subtotal":', '"subtotal": ', 1)
    assert json.loads(spaced) == json.loads(text)
    assert bill_digest(from_json(json.loads(spaced), Bill)) == state["digest"]
    state["document"] = spaced
    store.set_state(stream, version, state)
    report = broken(store.db)
    assert {"bill_changed", "changed"} <= kinds(report)
    assert any("does not match its digest" in b["message"] for b in report["breaks"])
    assert report["first_break"]["position"] == position


def test_an_edited_view_row_of_a_bills_provider_total_is_a_break(store: Store) -> None:
    """Provider totals and settlement read ``mv_bill_rows`` and ``mv_provider_months``: an
    edited amount there is a break too."""
    store.sql("UPDATE mv_bill_rows SET amount = amount + 1000")
    store.sql("UPDATE mv_provider_months SET amount = amount + 1000")
    report = broken(store.db)
    assert kinds(report) == {"view_changed"}


def test_a_view_row_of_a_bill_never_issued_is_a_break(store: Store) -> None:
    store.sql(
        "INSERT INTO mv_bills (customer_id, month, document, digest) VALUES (%s, %s, %s, %s)",
        (LINE, "2024-03", json.dumps({"subtotal": 5}), "0" * 64),
    )
    report = broken(store.db)
    assert kinds(report) == {"view_changed"}


# ---------------------------------------------------------------------------------------------
# Seals


def test_a_history_rewritten_with_every_hash_recomputed_is_caught_only_by_the_seal(
    store: Store, keys: tuple[str, str], tmp_path: Path
) -> None:
    """An insider who edits a price no bill was computed from and rebuilds both chains (here
    with matome's own adoption, as a fresh store would) leaves a store that agrees with
    itself; the seal taken before still tells, exit 1 at the sealed position."""
    seal = sealed(store.db, keys, tmp_path)
    stream, version, _, state = store.event("matome.subscription.Purchased", 2)
    assert state["service"] == "news"
    state["price"] = 30_000
    store.set_state(stream, version, state)
    for table in ("matome_chain", "matome_global_chain", "matome_chain_adoption"):
        store.sql(f"DELETE FROM {table}")
    Engine.open(store.db, hash_iterations=TEST_ITERATIONS).close()  # a writer adopts them all
    code, report = matome(store.db, "verify")
    assert (code, report["ok"]) == (0, True)  # consistent with itself...
    report = broken(store.db, "--against", seal, "--public-key", keys[1])
    assert kinds(report) == {"seal"}  # ... but not with what it held
    sealed_at = json.loads(Path(seal).read_text())["position"]
    assert report["first_break"]["position"] == sealed_at


def test_a_seal_with_a_forged_signature_is_refused(
    store: Store, keys: tuple[str, str], tmp_path: Path
) -> None:
    """A seal whose content was changed after signing (here: a later position and head, as
    if to bless events slipped in) does not verify with the trusted key."""
    path = sealed(store.db, keys, tmp_path)
    seal = json.loads(Path(path).read_text())
    seal["head"] = "f" * 64
    Path(path).write_text(json.dumps(seal))
    report = broken(store.db, "--against", path, "--public-key", keys[1])
    assert "signature" in report["against"]["message"]
    assert kinds(report) == {"seal"}


def test_a_seal_signed_with_another_key_is_refused(
    store: Store, keys: tuple[str, str], tmp_path: Path
) -> None:
    other = str(tmp_path / "other.key")
    with contextlib.redirect_stderr(io.StringIO()):
        assert cli.main(["keygen", "--seal", "--out", other]) == 0
    path = sealed(store.db, (other, other + ".pub"), tmp_path)
    report = broken(store.db, "--against", path, "--public-key", keys[1])
    assert "another key" in report["against"]["message"]


def test_a_seal_of_another_store_is_refused(
    store: Store, keys: tuple[str, str], tmp_path: Path, db: str
) -> None:
    """Another store's seal (same key), at a position this store also has: the heads differ."""
    other = str(tmp_path / "other.sqlite")
    e = Engine.open(other, hash_iterations=TEST_ITERATIONS)
    try:
        world(e)
    finally:
        e.close()
    seal = sealed(other, keys, tmp_path)
    report = broken(store.db, "--against", seal, "--public-key", keys[1])
    assert kinds(report) == {"seal"}
    assert report["against"]["position"] < store.last_position()


def test_a_store_still_extends_its_seal_after_more_events(
    store: Store, keys: tuple[str, str], tmp_path: Path
) -> None:
    """A seal is a checkpoint, not a freeze: events recorded after it keep it valid."""
    seal = sealed(store.db, keys, tmp_path)
    e = Engine.open(store.db, hash_iterations=TEST_ITERATIONS)
    try:
        buy(e, "2024-03-20T10:00:00+09:00", "item")
    finally:
        e.close()
    code, report = matome(store.db, "verify", "--against", seal, "--public-key", keys[1])
    assert (code, report["ok"], report["against"]["ok"]) == (0, True, True)
    assert report["position"] > report["against"]["position"]


def test_verify_json_has_the_contract_3_members(store: Store) -> None:
    """docs/contract.md "Seal and verify": ``{"ok", "events", "streams", "bills", "head",
    "position", "problems"}``, the members of contract 2 kept."""
    code, report = matome(store.db, "verify")
    assert code == 0
    assert {"ok", "events", "streams", "bills", "head", "position", "problems"} <= set(report)
    assert {"chained", "first_break", "breaks", "seal"} <= set(report)
    assert report["position"] == store.last_position()
    assert len(report["head"]) == 64


def test_sealing_a_broken_store_is_refused(
    store: Store, keys: tuple[str, str], tmp_path: Path
) -> None:
    """A broken history is never sealed: ``matome seal`` exits 1 and writes nothing."""
    store.sql("DELETE FROM matome_chain")
    out = tmp_path / "never.json"
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
        code = cli.main(["seal", "--db", store.db, "--key", keys[0], "--out", str(out)])
    assert code == 1
    assert not out.exists()


def test_verify_against_a_seal_needs_the_trusted_public_key(
    store: Store, keys: tuple[str, str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The public key is never taken from the seal itself (a forger would bring their own):
    without ``--public-key`` or ``MATOME_SEAL_PUBLIC_KEY`` it is ``invalid_input``."""
    monkeypatch.delenv("MATOME_SEAL_PUBLIC_KEY", raising=False)
    seal = sealed(store.db, keys, tmp_path)
    code, report = matome(store.db, "verify", "--against", seal)
    assert code == 1
    assert report["error"]["code"] == "invalid_input"


@pytest.mark.parametrize(
    "text",
    [
        "not json",
        "[]",
        '{"format": "matome-seal/1", "position": 3, "head": "x", "extra": 1}',
        '{"format": "other/9", "position": 1, "events": 1, "head": "x", "recorded_at": "t", '
        '"key": "k", "signature": "s"}',
        '{"format": "matome-seal/1", "position": true, "events": 1, "head": "x", '
        '"recorded_at": "t", "key": "k", "signature": "s"}',
    ],
    ids=["not-json", "not-an-object", "members-missing", "unknown-format", "position-not-int"],
)
def test_a_malformed_seal_is_invalid_input(
    store: Store, keys: tuple[str, str], tmp_path: Path, text: str
) -> None:
    seal = tmp_path / "bad.json"
    seal.write_text(text)
    code, report = matome(store.db, "verify", "--against", str(seal), "--public-key", keys[1])
    assert code == 1
    assert report["error"]["code"] == "invalid_input"


# ---------------------------------------------------------------------------------------------
# Old stores


def test_a_store_older_than_the_global_chain_is_adopted_once_by_a_writer(tmp_path: Path) -> None:
    """The 0.1 fixture's events predate both chains: the first writer to open it gives each
    its entries and records the adoption (position and time); the store then verifies, and
    a second writer adopts nothing more."""
    path = str(tmp_path / "old.sqlite")
    shutil.copy(Path(__file__).parent.parent / "fixtures" / "store-v0.1.sqlite", path)
    Engine.open(path, hash_iterations=TEST_ITERATIONS).close()
    code, report = matome(path, "verify")
    assert (code, report["ok"]) == (0, True)
    assert report["adopted_through"] == report["position"] == report["events"]
    adopted_at = report["adopted_at"]
    Engine.open(path, hash_iterations=TEST_ITERATIONS).close()
    assert matome(path, "verify")[1]["adopted_at"] == adopted_at


# ---------------------------------------------------------------------------------------------
# Writers racing


def test_writers_racing_extend_one_global_chain(db: str) -> None:
    """Two engines (as two processes would) with two threads each write at once: each write
    reads the global head under the store's write lock, so the chain has one row per event
    and verifies."""
    engines = [Engine.open(db, hash_iterations=TEST_ITERATIONS) for _ in range(2)]
    failures: list[BaseException] = []

    def write(engine: Engine, thread: int) -> None:
        try:
            for i in range(10):
                engine.register_provider(
                    at="2023-12-01T09:00:00+09:00",
                    provider=f"T{thread}{i}",
                    name=f"T{thread}{i} Co.",
                    contact="0120",
                    goods="information",
                )
        except BaseException as e:  # reported below, in the test's thread
            failures.append(e)

    threads = [threading.Thread(target=write, args=(engines[t % 2], t)) for t in range(4)]
    try:
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    finally:
        for e in engines:
            e.close()
    assert failures == []
    code, report = matome(db, "verify")
    assert (code, report["ok"], report["events"]) == (0, True, 40)
    store = Store(db)
    assert store.sql("SELECT COUNT(*) FROM matome_global_chain")[0][0] == 40
