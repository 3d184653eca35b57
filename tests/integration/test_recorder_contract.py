"""The recorder extensions matome adds to eventsourcing's, held to one contract on every backend.

As eventsourcing's own ``eventsourcing/tests/persistence.py`` does for its recorders, one
abstract test case (:class:`RecorderContract`) states what matome's additions promise —
:mod:`matome.application._recorder` and the backends :mod:`~matome.application._popo`,
:mod:`~matome.application._sqlite`, :mod:`~matome.application._postgres` — and one subclass per
backend runs it: the in-memory (POPO) recorder, an SQLite file and PostgreSQL (a schema of its
own; skipped with the reason when no server answers, failed instead under
``MATOME_REQUIRE_POSTGRES=1``, as ``tests/conftest.py`` does).  An SQLite database in memory is
not a matome store (``:memory:`` names the POPO recorder, :func:`~matome.application.
_settings.store_env`), so it has no subclass.

The recorders are driven directly, below the application: the stored events are raw
``StoredEvent`` records and the extras (:class:`~matome.application._recorder.Extra`) are
built by hand, so each promise is the recorder's own.  Where a backend legitimately lacks a
feature, its subclass names it in ``LACKS`` with the reason, and the test skips saying so.
"""

from __future__ import annotations

import base64
import hashlib
import os
import secrets
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any, ClassVar, Protocol, cast
from uuid import UUID, uuid4

import attrs
import pytest
from eventsourcing.persistence import IntegrityError, JSONTranscoder, StoredEvent
from eventsourcing.utils import Environment

from matome.application._chains import GENESIS, Adoption, ChainRow, global_link, link
from matome.application._keyring import Keyring, PersonalDataLocked
from matome.application._mapper import EventMapper
from matome.application._meta import STORE_FORMAT, matome_version, newer_writer
from matome.application._popo import POPORecorder
from matome.application._recorder import (
    LOOKUP,
    Extra,
    LogPosition,
    LogPositionTaken,
    MatomeRecorder,
)
from matome.application._settings import store_env
from matome.application._sqlite import SQLiteFactory, SQLiteRecorder
from matome.application._vault import PersonalRow
from matome.errors import StoreUnavailable
from matome.events import EVENT_TOPICS
from matome.events.ledger import MonthsClosed


class Recorder(MatomeRecorder, Protocol):
    """A matome recorder as the tests drive it: eventsourcing's methods and matome's."""

    keyring: Keyring | None

    def insert_events(
        self, stored_events: Sequence[StoredEvent], **kwargs: Any
    ) -> Sequence[int] | None: ...

    def select_events(self, originator_id: UUID, **kwargs: Any) -> Sequence[StoredEvent]: ...

    def max_notification_id(self) -> int | None: ...


def _master() -> str:
    return base64.b64encode(secrets.token_bytes(32)).decode()


def _event(stream: UUID, version: int, topic: str = "t", state: bytes | None = None) -> StoredEvent:
    return StoredEvent(
        originator_id=stream,
        originator_version=version,
        topic=topic,
        state=state if state is not None else f"{stream}/{version}".encode(),
    )


def _content(event: Any) -> str:
    """A stored event's content hash as these tests chain it (the recorders do not compute
    hashes: they keep the ones a write brings, so any function of the content serves)."""
    return hashlib.sha256(f"{event.topic}\n".encode() + bytes(event.state)).hexdigest()


@attrs.define
class Chains:
    """The stream chains as a writer computes them (:meth:`EventStoreApplication._links`)."""

    heads: dict[UUID, str] = attrs.field(factory=dict)

    def rows(self, events: Sequence[StoredEvent]) -> tuple[ChainRow, ...]:
        out = []
        for e in events:
            stream = cast(UUID, e.originator_id)
            hash_ = link(self.heads.get(stream, GENESIS), stream, e.originator_version, _content(e))
            self.heads[stream] = hash_
            out.append((stream, e.originator_version, hash_))
        return tuple(out)


def _write(
    recorder: Recorder,
    events: Sequence[StoredEvent],
    extra: Extra | None = None,
    read_versions: dict[UUID, int] | None = None,
) -> list[int]:
    ids = recorder.insert_events(list(events), read_versions=read_versions or {}, extra=extra)
    assert ids is not None
    return list(ids)


def _personal(stream: UUID, version: int, name: str, clear: str) -> PersonalRow:
    ref = f"{stream}/{version}/{name}"
    return PersonalRow(ref, str(stream), clear, secrets.token_hex(16))


class RecorderContract(ABC):
    """What every matome recorder promises.  Subclasses open a recorder on a fresh store."""

    #: Features this backend lacks: name → why (the tests of them skip, saying so).
    LACKS: ClassVar[dict[str, str]] = {}

    @abstractmethod
    def open(
        self, request: pytest.FixtureRequest, tmp_path: Path
    ) -> tuple[Any, Callable[[], None]]:
        """A recorder on a fresh store, and how to close it."""

    @abstractmethod
    def stored_keys(self, recorder: Recorder) -> dict[str, str]:
        """The keys table: subject → wrapped data key."""

    @abstractmethod
    def forget_global_chain(self, recorder: Recorder) -> None:
        """Drop the global chain, as in a store written before it existed (matome 0.2)."""

    def delete_newest_event(self, recorder: Recorder) -> None:
        """Delete the log's newest event (as someone editing the store's files would)."""
        raise NotImplementedError

    def insert_clear_personal(self, recorder: Recorder, row: PersonalRow) -> None:
        """Put a personal value in the form of matome 0.2 (clear) into the personal table."""
        raise NotImplementedError

    def page_marker(self, recorder: Recorder) -> object:
        """What shows whether deleted rows may still sit in a page image (see ``scrub``)."""
        raise NotImplementedError

    def assert_scrubbed(self, before: object, after: object) -> None:
        raise NotImplementedError

    def lacks(self, feature: str) -> None:
        if feature in self.LACKS:
            pytest.skip(f"{type(self).__name__} lacks {feature}: {self.LACKS[feature]}")

    @pytest.fixture
    def master(self) -> str:
        return _master()

    @pytest.fixture
    def recorder(
        self, request: pytest.FixtureRequest, tmp_path: Path, master: str
    ) -> Iterator[Recorder]:
        made, close = self.open(request, tmp_path)
        recorder = cast(Recorder, made)
        recorder.keyring = Keyring({"MASTER_KEY": master}, "memory")
        try:
            yield recorder
        finally:
            close()

    def snapshot(self, recorder: Recorder, log_ids: Sequence[str] = ()) -> tuple[Any, ...]:
        """Everything a write may change, to show that a refused write changed nothing."""
        return (
            recorder.max_notification_id(),
            recorder.all_chain_hashes(),
            recorder.global_after(0),
            sorted(recorder.personal_rows()),
            self.stored_keys(recorder),
            [recorder.log_position(log_id) for log_id in log_ids],
        )

    # -- the read check and version conflicts -------------------------------------------------

    def test_a_write_fails_whole_when_a_stream_it_only_read_has_moved(
        self, recorder: Recorder
    ) -> None:
        read, written = uuid4(), uuid4()
        chains = Chains()
        _write(recorder, [_event(read, 1)], Extra(chain=chains.rows([_event(read, 1)])))
        before = self.snapshot(recorder, ["log"])
        events = [_event(written, 1)]
        extra = Extra(
            chain=Chains().rows(events),
            personal=(_personal(written, 1, "email", "a@example.jp"),),
            position=LogPosition("log", 1, "d1"),
        )
        with pytest.raises(IntegrityError):
            _write(recorder, events, extra, read_versions={read: 0})
        assert self.snapshot(recorder, ["log"]) == before
        _write(recorder, events, extra, read_versions={read: 1})
        assert [e.originator_id for e in recorder.select_events(written)] == [written]
        assert sorted(recorder.personal_rows()) == [f"{written}/1/email"]

    def test_a_stream_read_as_absent_must_still_be_absent(self, recorder: Recorder) -> None:
        absent = uuid4()
        _write(recorder, [_event(uuid4(), 1)], read_versions={absent: 0})
        _write(recorder, [_event(absent, 1)])
        with pytest.raises(IntegrityError):
            _write(recorder, [_event(uuid4(), 1)], read_versions={absent: 0})

    def test_a_write_whose_version_is_taken_keeps_none_of_its_rows(
        self, recorder: Recorder
    ) -> None:
        stream = uuid4()
        _write(recorder, [_event(stream, 1)], Extra(chain=Chains().rows([_event(stream, 1)])))
        before = self.snapshot(recorder, ["log"])
        other = uuid4()
        events = [_event(other, 1), _event(stream, 1, state=b"again")]
        extra = Extra(
            chain=Chains().rows(events),
            personal=(_personal(other, 1, "email", "b@example.jp"),),
            position=LogPosition("log", 2, "d2"),
        )
        with pytest.raises(IntegrityError):
            _write(recorder, events, extra)
        assert self.snapshot(recorder, ["log"]) == before

    # -- per-stream chain entries --------------------------------------------------------------

    def test_each_event_keeps_the_stream_hash_its_write_brought(self, recorder: Recorder) -> None:
        a, b = uuid4(), uuid4()
        chains = Chains()
        first = [_event(a, 1), _event(a, 2), _event(b, 1)]
        rows = chains.rows(first)
        _write(recorder, first, Extra(chain=rows))
        later = [_event(a, 3)]
        rows += chains.rows(later)
        _write(recorder, later, Extra(chain=rows[-1:]))
        expected = {(s, v): h for s, v, h in rows}
        assert recorder.all_chain_hashes() == expected
        assert recorder.chain_hashes([(a, 3), (b, 1), (b, 2)]) == {
            (a, 3): expected[a, 3],
            (b, 1): expected[b, 1],
        }

    def test_chain_lookups_of_more_keys_than_one_query_takes_find_them_all(
        self, recorder: Recorder
    ) -> None:
        streams = [uuid4() for _ in range(LOOKUP + 7)]
        events = [_event(s, 1) for s in streams]
        rows = Chains().rows(events)
        _write(recorder, events, Extra(chain=rows))
        found = recorder.chain_hashes([(s, 1) for s in streams] + [(uuid4(), 1)])
        assert found == {(s, v): h for s, v, h in rows}

    # -- the global chain and its head ---------------------------------------------------------

    def test_the_global_chain_links_every_position_in_recording_order(
        self, recorder: Recorder
    ) -> None:
        chains = Chains()
        a, b = uuid4(), uuid4()
        rows: list[ChainRow] = []
        ids: list[int] = []
        for batch in ([_event(a, 1), _event(b, 1)], [_event(a, 2)], [_event(b, 2), _event(a, 3)]):
            batch_rows = chains.rows(batch)
            ids += _write(recorder, batch, Extra(chain=batch_rows))
            rows += batch_rows
        expected = []
        hash_ = GENESIS
        for position, (_, _, stream_hash) in zip(ids, rows, strict=True):
            hash_ = global_link(hash_, position, stream_hash)
            expected.append((position, hash_))
        assert ids == sorted(ids)
        assert recorder.global_after(0) == expected
        assert recorder.global_after(ids[1]) == expected[2:]
        assert recorder.global_range(ids[1], ids[3]) == expected[1:4]

    def test_a_write_without_chain_rows_adds_no_global_row(self, recorder: Recorder) -> None:
        _write(recorder, [_event(uuid4(), 1)])
        assert recorder.global_after(0) == []
        assert recorder.all_chain_hashes() == {}

    def test_a_new_event_at_or_before_the_global_head_is_refused(self, recorder: Recorder) -> None:
        """The head is read under the write lock: a new event at or before it means the log
        lost its newest events while their global rows stayed (docs/audit.md)."""
        self.lacks("reused positions")
        chains = Chains()
        events = [_event(uuid4(), 1), _event(uuid4(), 1)]
        _write(recorder, events, Extra(chain=chains.rows(events)))
        self.delete_newest_event(recorder)
        before = self.snapshot(recorder)
        late = [_event(uuid4(), 1)]
        with pytest.raises(StoreUnavailable, match="events were deleted from the log"):
            _write(recorder, late, Extra(chain=chains.rows(late)))
        assert self.snapshot(recorder) == before

    def test_topics_after_gives_each_topics_newest_position(self, recorder: Recorder) -> None:
        ids = _write(
            recorder,
            [_event(uuid4(), 1, "x"), _event(uuid4(), 1, "y"), _event(uuid4(), 1, "x")],
        )
        assert recorder.topics_after(0) == {"x": ids[2], "y": ids[1]}
        assert recorder.topics_after(ids[1]) == {"x": ids[2]}
        assert recorder.topics_after(ids[2]) == {}

    # -- personal values kept apart, sealed, erased; the key table -----------------------------

    def test_a_personal_value_is_kept_apart_sealed_under_its_subjects_key(
        self, recorder: Recorder
    ) -> None:
        stream = uuid4()
        row = _personal(stream, 1, "email", "hanako@example.jp")
        _write(recorder, [_event(stream, 1)], Extra(personal=(row,)))
        stored = recorder.vault_get([row.ref, f"{stream}/9/email"])
        assert list(stored) == [row.ref]
        kept = stored[row.ref]
        assert Keyring.is_sealed(kept.data)
        assert "hanako" not in kept.data
        assert kept.subject == str(stream)
        keys = self.stored_keys(recorder)
        assert list(keys) == [str(stream)]
        assert keys[str(stream)].startswith("w1:")
        assert kept.wrapped == keys[str(stream)]
        assert recorder.keyring is not None
        assert recorder.keyring.open(kept.subject, kept.wrapped, kept.ref, kept.data) == (
            row.salt,
            "hanako@example.jp",
        )
        assert recorder.personal_rows() == stored

    def test_a_subject_keeps_one_key_across_writes(self, recorder: Recorder) -> None:
        stream, other = uuid4(), uuid4()
        _write(recorder, [_event(stream, 1)], Extra(personal=(_personal(stream, 1, "email", "x"),)))
        key = self.stored_keys(recorder)[str(stream)]
        _write(
            recorder,
            [_event(stream, 2), _event(other, 1)],
            Extra(
                personal=(
                    _personal(stream, 2, "applicant", "y"),
                    _personal(other, 1, "email", "z"),
                )
            ),
        )
        keys = self.stored_keys(recorder)
        assert keys[str(stream)] == key
        assert sorted(keys) == sorted([str(stream), str(other)])
        assert {
            r.wrapped for r in recorder.personal_rows().values() if r.subject == str(stream)
        } == {key}

    def test_an_erasure_deletes_the_subjects_values_and_key_before_its_own_writes(
        self, recorder: Recorder
    ) -> None:
        stream, other = uuid4(), uuid4()
        old = _personal(stream, 1, "email", "old@example.jp")
        kept = _personal(other, 1, "email", "kept@example.jp")
        _write(recorder, [_event(stream, 1), _event(other, 1)], Extra(personal=(old, kept)))
        old_key = self.stored_keys(recorder)[str(stream)]
        new = _personal(stream, 2, "email", "new@example.jp")
        _write(recorder, [_event(stream, 2)], Extra(erase=(str(stream),), personal=(new,)))
        rows = recorder.personal_rows()
        assert sorted(rows) == sorted([kept.ref, new.ref])
        new_key = self.stored_keys(recorder)[str(stream)]
        assert new_key != old_key  # the erased key is never reused
        assert recorder.keyring is not None
        assert recorder.keyring.open(str(stream), new_key, new.ref, rows[new.ref].data)[1] == (
            "new@example.jp"
        )

    def test_an_erasure_without_new_values_leaves_no_key(self, recorder: Recorder) -> None:
        stream = uuid4()
        _write(recorder, [_event(stream, 1)], Extra(personal=(_personal(stream, 1, "email", "x"),)))
        _write(recorder, [_event(stream, 2)], Extra(erase=(str(stream),)))
        assert recorder.personal_rows() == {}
        assert self.stored_keys(recorder) == {}

    def test_a_replaced_value_goes_and_its_subjects_key_rotates(self, recorder: Recorder) -> None:
        stream = uuid4()
        email = _personal(stream, 1, "email", "old@example.jp")
        applicant = _personal(stream, 1, "applicant", '{"name": "Hanako"}')
        _write(recorder, [_event(stream, 1)], Extra(personal=(email, applicant)))
        old_key = self.stored_keys(recorder)[str(stream)]
        new_email = _personal(stream, 2, "email", "new@example.jp")
        _write(
            recorder,
            [_event(stream, 2)],
            Extra(
                personal=(new_email,),
                replace=((str(stream), "email"),),
                rotate=(str(stream),),
            ),
        )
        rows = recorder.personal_rows()
        assert sorted(rows) == sorted([applicant.ref, new_email.ref])
        new_key = self.stored_keys(recorder)[str(stream)]
        assert new_key != old_key
        assert recorder.keyring is not None
        for row, clear in ((applicant, '{"name": "Hanako"}'), (new_email, "new@example.jp")):
            stored = rows[row.ref]
            assert stored.wrapped == new_key  # the survivor was re-sealed under the new key
            assert recorder.keyring.open(str(stream), new_key, row.ref, stored.data) == (
                row.salt,
                clear,
            )

    def test_personal_values_are_never_stored_without_a_keyring(self, recorder: Recorder) -> None:
        """Nothing of the write is kept: not its events either (the write fails after their
        insert, in the transaction)."""
        self.lacks("rollback")
        keyring, recorder.keyring = recorder.keyring, None
        stream = uuid4()
        events = [_event(stream, 1)]
        extra = Extra(
            chain=Chains().rows(events),
            personal=(_personal(stream, 1, "email", "x"),),
            position=LogPosition("log", 1, "d1"),
        )
        with pytest.raises(PersonalDataLocked):
            _write(recorder, events, extra)
        assert recorder.max_notification_id() is None
        assert self.snapshot(recorder, ["log"]) == (None, {}, [], [], {}, [None])
        recorder.keyring = keyring  # the same write, with a keyring, goes through
        _write(recorder, events, extra)
        assert sorted(recorder.personal_rows()) == [f"{stream}/1/email"]

    def test_a_write_under_another_master_key_is_refused_whole(self, recorder: Recorder) -> None:
        self.lacks("rollback")
        stream = uuid4()
        _write(recorder, [_event(stream, 1)], Extra(personal=(_personal(stream, 1, "email", "x"),)))
        before = self.snapshot(recorder)
        recorder.keyring = Keyring({"MASTER_KEY": _master()}, "memory")
        with pytest.raises(PersonalDataLocked, match="not the master key"):
            _write(
                recorder,
                [_event(stream, 2)],
                Extra(
                    personal=(_personal(stream, 2, "email", "y"),),
                    replace=((str(stream), "email"),),
                    rotate=(str(stream),),
                ),
            )
        assert self.snapshot(recorder) == before
        assert [e.originator_version for e in recorder.select_events(stream)] == [1]

    def test_values_of_an_earlier_version_are_found_for_a_rewrite(self, recorder: Recorder) -> None:
        self.lacks("values of earlier versions to rewrite")
        stream = uuid4()
        _write(recorder, [_event(stream, 1)], Extra(personal=(_personal(stream, 1, "email", "x"),)))
        assert not recorder.has_unsealed_personal([str(stream)])
        self.insert_clear_personal(
            recorder, PersonalRow(f"{stream}/2/email", str(stream), "clear", "salt")
        )
        assert recorder.has_unsealed_personal([str(stream)])
        assert not recorder.has_unsealed_personal([str(uuid4())])

    def test_scrub_after_an_erasure_leaves_no_page_image_of_the_deleted_rows(
        self, recorder: Recorder
    ) -> None:
        self.lacks("page images")
        stream = uuid4()
        _write(recorder, [_event(stream, 1)], Extra(personal=(_personal(stream, 1, "email", "x"),)))
        _write(recorder, [_event(stream, 2)], Extra(erase=(str(stream),)))
        before = self.page_marker(recorder)
        recorder.scrub(personal_table=True)
        self.assert_scrubbed(before, self.page_marker(recorder))
        assert recorder.personal_rows() == {}

    # -- the log position and its claim --------------------------------------------------------

    def test_a_write_records_how_far_its_log_was_applied(self, recorder: Recorder) -> None:
        assert recorder.log_position("log") is None
        _write(recorder, [_event(uuid4(), 1)], Extra(position=LogPosition("log", 3, "d3", first=1)))
        assert recorder.log_position("log") == LogPosition("log", 3, "d3")
        assert recorder.log_position("other") is None

    def test_a_write_claiming_commands_already_applied_is_refused_whole(
        self, recorder: Recorder
    ) -> None:
        _write(recorder, [_event(uuid4(), 1)], Extra(position=LogPosition("log", 3, "d3", first=1)))
        before = self.snapshot(recorder, ["log"])
        stream = uuid4()
        events = [_event(stream, 1)]
        claim = LogPosition("log", 4, "d4", first=3)
        with pytest.raises(LogPositionTaken) as taken:
            _write(
                recorder,
                events,
                Extra(
                    chain=Chains().rows(events),
                    personal=(_personal(stream, 1, "email", "x"),),
                    position=claim,
                ),
            )
        assert taken.value.claimed == claim
        assert taken.value.stored == LogPosition("log", 3, "d3")
        assert self.snapshot(recorder, ["log"]) == before

    def test_the_claim_is_checked_before_the_read_check_and_the_version_check(
        self, recorder: Recorder
    ) -> None:
        """A run that lost the race hears LogPositionTaken, not a conflict it would retry."""
        stream = uuid4()
        _write(recorder, [_event(stream, 1)], Extra(position=LogPosition("log", 1, "d1")))
        with pytest.raises(LogPositionTaken):
            _write(
                recorder,
                [_event(stream, 1)],
                Extra(position=LogPosition("log", 1, "d1")),
                read_versions={stream: 0},
            )

    def test_a_claim_past_the_recorded_command_moves_the_position(self, recorder: Recorder) -> None:
        _write(recorder, [_event(uuid4(), 1)], Extra(position=LogPosition("log", 3, "d3", first=1)))
        _write(recorder, [_event(uuid4(), 1)], Extra(position=LogPosition("log", 5, "d5", first=4)))
        _write(recorder, [_event(uuid4(), 1)], Extra(position=LogPosition("log2", 1, "e1")))
        assert recorder.log_position("log") == LogPosition("log", 5, "d5")
        assert recorder.log_position("log2") == LogPosition("log2", 1, "e1")

    # -- adoption of a store older than the global chain ---------------------------------------

    def test_a_store_without_chains_is_adopted_once(self, recorder: Recorder) -> None:
        a, b = uuid4(), uuid4()
        events = [_event(a, 1), _event(b, 1), _event(a, 2)]
        ids = _write(recorder, events[:2]) + _write(recorder, events[2:])
        assert recorder.adoption() is None
        adoption = recorder.adopt(_content, "2026-01-01T00:00:00+00:00")
        assert adoption == Adoption(ids[-1], 3, "2026-01-01T00:00:00+00:00")
        rows = Chains().rows(events)
        assert recorder.all_chain_hashes() == {(s, v): h for s, v, h in rows}
        hash_ = GENESIS
        expected = []
        for position, (_, _, stream_hash) in zip(ids, rows, strict=True):
            hash_ = global_link(hash_, position, stream_hash)
            expected.append((position, hash_))
        assert recorder.global_after(0) == expected
        again = recorder.adopt(_content, "2027-01-01T00:00:00+00:00")
        assert again == adoption
        assert recorder.adoption() == adoption
        assert recorder.global_after(0) == expected

    def test_an_adoption_keeps_a_stream_hash_already_recorded(self, recorder: Recorder) -> None:
        """A store of matome 0.2 has stream chains but no global chain; a recorded hash that no
        longer matches its event stays a break for verify to report."""
        stream = uuid4()
        recorded = (stream, 1, "f" * 64)
        _write(recorder, [_event(stream, 1)], Extra(chain=(recorded,)))
        _write(recorder, [_event(stream, 2)])
        self.forget_global_chain(recorder)
        adoption = recorder.adopt(_content, "2026-01-01T00:00:00+00:00")
        assert adoption.adopted == 1
        hashes = recorder.all_chain_hashes()
        assert hashes[stream, 1] == "f" * 64
        assert hashes[stream, 2] == link("f" * 64, stream, 2, _content(_event(stream, 2)))

    def test_a_write_after_the_adoption_extends_the_adopted_global_chain(
        self, recorder: Recorder
    ) -> None:
        stream = uuid4()
        first = _write(recorder, [_event(stream, 1)])
        recorder.adopt(_content, "2026-01-01T00:00:00+00:00")
        chains = Chains()
        chains.rows([_event(stream, 1)])
        later = [_event(stream, 2)]
        rows = chains.rows(later)
        ids = _write(recorder, later, Extra(chain=rows))
        head = recorder.global_after(0)
        assert [p for p, _ in head] == first + ids
        assert head[-1][1] == global_link(head[0][1], ids[0], rows[0][2])

    def test_an_empty_store_records_an_adoption_of_nothing(self, recorder: Recorder) -> None:
        assert recorder.adopt(_content, "2026-01-01T00:00:00+00:00") == Adoption(
            0, 0, "2026-01-01T00:00:00+00:00"
        )
        assert recorder.all_chain_hashes() == {}
        assert recorder.global_after(0) == []

    # -- what wrote the store (meta), and whether this matome may write to it -------------------

    def test_store_meta_keeps_the_highest_value_any_writer_recorded(
        self, recorder: Recorder
    ) -> None:
        assert recorder.store_meta() == {}
        recorder.raise_store_meta({"format": 1, "checked_through": 5})
        recorder.raise_store_meta({"format": 1, "checked_through": 3, "event:x": 2})
        assert recorder.store_meta() == {"format": 1, "checked_through": 5, "event:x": 2}
        recorder.raise_store_meta({"checked_through": 9})
        assert recorder.store_meta()["checked_through"] == 9

    def test_a_clean_store_is_writable_and_records_this_matome(self, recorder: Recorder) -> None:
        closed = _event(uuid4(), 1, MonthsClosed.TOPIC, b"{}")
        ids = _write(recorder, [closed])
        assert newer_writer(recorder, cast(Any, recorder), _mapper()) is None
        meta = recorder.store_meta()
        assert meta["format"] == STORE_FORMAT
        assert meta[f"matome:{matome_version()}"] == STORE_FORMAT
        assert meta["checked_through"] == ids[-1]
        assert {k for k in meta if k.startswith("event:")} == {f"event:{t}" for t in EVENT_TOPICS}

    @pytest.mark.parametrize(
        ("meta", "because"),
        [
            ({"format": STORE_FORMAT + 1}, "store format"),
            ({f"event:{MonthsClosed.TOPIC}": MonthsClosed.class_version + 1}, "class version"),
            ({"event:matome.events.future:Unheard": 1}, "Unheard"),
        ],
    )
    def test_a_store_a_newer_matome_wrote_to_is_not_writable(
        self, recorder: Recorder, meta: dict[str, int], because: str
    ) -> None:
        recorder.raise_store_meta(meta)
        problem = newer_writer(recorder, cast(Any, recorder), _mapper())
        assert problem is not None
        assert because in problem

    @pytest.mark.parametrize(
        ("topic", "state", "because"),
        [
            ("matome.events.future:Unheard", b"{}", "does not know"),
            (MonthsClosed.TOPIC, b'{"class_version": 99}', "newer than this matome"),
        ],
    )
    def test_a_store_holding_events_of_a_newer_matome_is_not_writable(
        self, recorder: Recorder, topic: str, state: bytes, because: str
    ) -> None:
        _write(recorder, [_event(uuid4(), 1, MonthsClosed.TOPIC, b"{}")])
        assert newer_writer(recorder, cast(Any, recorder), _mapper()) is None
        _write(recorder, [_event(uuid4(), 1, topic, state)])
        problem = newer_writer(recorder, cast(Any, recorder), _mapper())
        assert problem is not None
        assert because in problem


def _mapper() -> EventMapper:
    return EventMapper(transcoder=JSONTranscoder())


# ---------------------------------------------------------------------------------------------
# The backends


class TestPOPORecorder(RecorderContract):
    LACKS: ClassVar[dict[str, str]] = {
        "reused positions": "its log is a list: an event cannot be deleted from it",
        "values of earlier versions to rewrite": "nothing outlives the process: no store "
        "holds values of an earlier matome",
        "page images": "nothing outlives the process: there is no file to scrub",
        "rollback": "it has no transactions: a write that fails once its events are in the "
        "list keeps them (through the application its keyring holds the process's own master "
        "key, so sealing a personal value cannot fail there)",
    }

    def open(
        self, request: pytest.FixtureRequest, tmp_path: Path
    ) -> tuple[Any, Callable[[], None]]:
        return POPORecorder(), lambda: None

    def stored_keys(self, recorder: Recorder) -> dict[str, str]:
        return dict(cast(POPORecorder, recorder)._keys)

    def forget_global_chain(self, recorder: Recorder) -> None:
        popo = cast(POPORecorder, recorder)
        popo._global.clear()
        popo._global_head = None


class TestSQLiteFileRecorder(RecorderContract):
    LACKS: ClassVar[dict[str, str]] = {
        "values of earlier versions to rewrite": "secure_delete and the WAL checkpoint reach "
        "every table, so has_unsealed_personal never asks for a rewrite",
    }

    def open(
        self, request: pytest.FixtureRequest, tmp_path: Path
    ) -> tuple[Any, Callable[[], None]]:
        self.path = str(tmp_path / "recorder.sqlite")
        factory = SQLiteFactory(Environment("matome", store_env(self.path)))
        recorder = factory.application_recorder()
        assert isinstance(recorder, SQLiteRecorder)
        return recorder, factory.close

    def _rows(self, recorder: Recorder, sql: str) -> list[Any]:
        with cast(SQLiteRecorder, recorder).datastore.transaction(commit=False) as c:
            c.execute(sql)
            return list(c.fetchall())

    def stored_keys(self, recorder: Recorder) -> dict[str, str]:
        return {str(s): str(w) for s, w in self._rows(recorder, "SELECT * FROM matome_keys")}

    def forget_global_chain(self, recorder: Recorder) -> None:
        with cast(SQLiteRecorder, recorder).datastore.transaction(commit=True) as c:
            c.execute("DELETE FROM matome_global_chain")

    def delete_newest_event(self, recorder: Recorder) -> None:
        with cast(SQLiteRecorder, recorder).datastore.transaction(commit=True) as c:
            c.execute(
                "DELETE FROM stored_events WHERE rowid = (SELECT MAX(rowid) FROM stored_events)"
            )

    def page_marker(self, recorder: Recorder) -> object:
        return os.path.getsize(self.path + "-wal")

    def assert_scrubbed(self, before: object, after: object) -> None:
        assert before != 0, "the erasure left nothing in the WAL: nothing was tested"
        assert after == 0  # checkpointed into the (zeroed) database pages and truncated


@pytest.mark.postgres
class TestPostgresRecorder(RecorderContract):
    LACKS: ClassVar[dict[str, str]] = {
        "reused positions": "notification ids come from a sequence that never goes back: a "
        "deleted newest event leaves a gap in the global chain, which verify reports",
    }

    def open(
        self, request: pytest.FixtureRequest, tmp_path: Path
    ) -> tuple[Any, Callable[[], None]]:
        from eventsourcing.postgres import Factory

        url: str = request.getfixturevalue("pg_url")  # skips, or fails in CI, without a server
        settings = store_env(url)
        self.schema = settings["POSTGRES_SCHEMA"]
        factory = Factory(Environment("matome", settings))
        recorder = factory.application_recorder()
        return recorder, factory.close

    def _rows(self, recorder: Recorder, sql: str, params: Sequence[Any] = ()) -> list[Any]:
        from psycopg.sql import SQL

        selected: list[Any] = cast(Any, recorder)._select(SQL(sql), params)
        return selected

    def stored_keys(self, recorder: Recorder) -> dict[str, str]:
        rows = self._rows(recorder, f'SELECT subject, wrapped FROM "{self.schema}".matome_keys')
        return {str(r["subject"]): str(r["wrapped"]) for r in rows}

    def forget_global_chain(self, recorder: Recorder) -> None:
        with cast(Any, recorder).datastore.transaction(commit=True) as curs:
            curs.execute(f'DELETE FROM "{self.schema}".matome_global_chain')

    def insert_clear_personal(self, recorder: Recorder, row: PersonalRow) -> None:
        with cast(Any, recorder).datastore.transaction(commit=True) as curs:
            curs.execute(
                f'INSERT INTO "{self.schema}".matome_personal (ref, subject, data, salt) '
                "VALUES (%s, %s, %s, %s)",
                (row.ref, row.subject, row.data, row.salt),
            )

    def page_marker(self, recorder: Recorder) -> object:
        # VACUUM FULL writes each table anew, in a new file: the old pages go with the old one.
        return [
            self._rows(
                recorder,
                "SELECT pg_relation_filenode(%s::regclass) AS n",
                (f'"{self.schema}".{t}',),
            )[0]["n"]
            for t in ("matome_keys", "matome_personal")
        ]

    def assert_scrubbed(self, before: object, after: object) -> None:
        assert isinstance(before, list)
        assert isinstance(after, list)
        assert all(b != a for b, a in zip(before, after, strict=True))
