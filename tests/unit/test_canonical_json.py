"""The canonical JSON form, written by orjson, is byte for byte the form the standard
library's ``json`` wrote (docs/design.md, "Trust"): so no stored event's bytes, no chain hash
and no bill digest changes with the serialiser.  Checked against the stored fixtures of every
earlier version (tests/fixtures/store-v*.sqlite) and against arbitrary JSON values."""

from __future__ import annotations

import hashlib
import sqlite3
from pathlib import Path
from typing import Any
from uuid import UUID

import orjson
import pytest
from eventsourcing.persistence import StoredEvent
from hypothesis import given
from hypothesis import strategies as st

from matome.application._chains import (
    GENESIS,
    content_as_written,
    content_hash,
    global_link,
    link,
)
from matome.application._mapper import converter_state, event_to_json
from matome.application._vault import personal_fields
from matome.application.eventstore import EventStoreApplication
from matome.events.base import EVENT_TOPICS
from matome.values import _stdlib_canonical_json, canonical_json, canonical_json_bytes

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"
STORES = sorted(FIXTURES.glob("store-v*.sqlite"))

Row = tuple[int, UUID, int, str, bytes]


def _events(store: Path) -> list[Row]:
    with sqlite3.connect(f"file:{store}?mode=ro", uri=True) as c:
        rows = c.execute(
            "SELECT rowid, originator_id, originator_version, topic, state "
            "FROM stored_events ORDER BY rowid"
        ).fetchall()
    return [(int(n), UUID(s), int(v), str(t), bytes(b)) for n, s, v, t, b in rows]


def _table(store: Path, sql: str) -> list[Any]:
    with sqlite3.connect(f"file:{store}?mode=ro", uri=True) as c:
        try:
            return list(c.execute(sql).fetchall())
        except sqlite3.OperationalError:
            return []  # a version before that table existed


def test_the_three_stored_versions_are_there() -> None:
    assert [p.name for p in STORES] == [
        "store-v0.1.sqlite",
        "store-v0.2.1.sqlite",
        "store-v0.2.sqlite",
    ]


@pytest.mark.parametrize("store", STORES, ids=lambda p: p.stem)
def test_every_stored_event_is_written_again_byte_for_byte(store: Path) -> None:
    events = _events(store)
    assert events
    for _, stream, version, topic, stored in events:
        state = orjson.loads(stored)
        assert canonical_json(state).encode() == stored, (topic, stream, version)
        assert canonical_json(state) == _stdlib_canonical_json(state)


@pytest.mark.parametrize("store", STORES, ids=lambda p: p.stem)
def test_every_recorded_chain_hash_is_computed_again(store: Path) -> None:
    """Each stream-chain row, and each global-chain row, recomputed with today's serialiser
    from the stored events equals the hash recorded by the version that wrote the store."""
    recorded = {
        (UUID(s), int(v)): str(h)
        for s, v, h in _table(
            store, "SELECT originator_id, originator_version, hash FROM matome_chain"
        )
    }
    global_ = dict(_table(store, "SELECT position, hash FROM matome_global_chain"))
    if not recorded:
        pytest.skip(f"{store.name} was written before the stream chain")
    events = _events(store)
    checked = 0
    head = GENESIS
    for position, stream, version, topic, stored in events:
        state = orjson.loads(stored)
        previous = recorded.get((stream, version - 1), GENESIS)
        contents = [content_hash(topic, state)]
        as_written = content_as_written(topic, state)
        if as_written is not None:
            contents.append(as_written)  # matome 0.2's form of an empty personal field
        own = recorded[stream, version]
        assert own in {link(previous, stream, version, c) for c in contents}, (topic, version)
        checked += 1
        if global_:
            head = global_link(head, position, own)
            assert global_[position] == head
    assert checked == len(recorded) == len(events)


@pytest.mark.parametrize("store", STORES, ids=lambda p: p.stem)
def test_every_issued_bill_digest_is_computed_again(store: Path) -> None:
    """The digest of every bill a fixture issued is the SHA-256 of the canonical text the
    ``BillIssued`` upcaster now writes (with orjson) for the stored bill."""
    bills = [e for e in _events(store) if e[3] == "matome.bill.BillIssued"]
    assert bills
    for *_, stored in bills:
        state = orjson.loads(stored)
        document = state.get("bill", state.get("document"))
        text = document if isinstance(document, str) else canonical_json(document)
        assert hashlib.sha256(text.encode()).hexdigest() == state["digest"]


_KEYS = st.text(max_size=8)
_SCALARS = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**80), max_value=2**80)
    | st.text(alphabet=st.characters(codec="utf-8"), max_size=12)
    | st.text(max_size=6)  # lone surrogates included: orjson refuses them, json writes them
)
_JSON = st.recursive(
    _SCALARS,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(_KEYS, inner, max_size=4),
    max_leaves=20,
)


@given(_JSON)
def test_canonical_json_is_the_standard_librarys_form(value: Any) -> None:
    assert canonical_json(value) == _stdlib_canonical_json(value)


@given(st.dictionaries(st.integers(), st.integers(), max_size=4))
def test_keys_that_are_not_text_are_written_as_json_writes_them(value: dict[int, int]) -> None:
    assert canonical_json(value) == _stdlib_canonical_json(value)


@pytest.mark.parametrize("store", STORES, ids=lambda p: p.stem)
def test_each_event_class_compiled_state_is_the_converters(store: Path) -> None:
    """The per-class compiled state functions (``event_to_json``) write every stored event,
    loaded again, as the converter's whole unstructure does; an event of the current class
    version with no personal field is written again to its stored bytes and content hash."""
    mapper = EventStoreApplication().event_mapper
    again = 0
    for _, stream, version, topic, stored in _events(store):
        event = mapper.to_domain_event_without_personal_data(
            StoredEvent(stream, version, topic, stored)
        )
        state = event_to_json(event)
        assert state == converter_state(event), topic
        assert canonical_json_bytes(state) == canonical_json(converter_state(event)).encode()
        cls = EVENT_TOPICS[topic]
        kept = orjson.loads(stored).get("class_version", 1) == cls.class_version
        if kept and not personal_fields(cls):
            encoded = mapper.encode(event)
            assert encoded.stored.state == stored, (topic, stream, version)
            assert encoded.content == content_hash(topic, orjson.loads(stored))
            again += 1
    assert again


@given(_JSON)
def test_canonical_bytes_are_the_canonical_texts_bytes(value: Any) -> None:
    assert canonical_json_bytes(value) == canonical_json(value).encode()
