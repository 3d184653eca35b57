"""The hash chains: each event's link in its stream's chain, the global chain over the whole
log in recording order, and the adoption that gives the events of an older store (recorded
before a chain existed) their entries.

Why a module of its own: these are pure functions of the stored content, computed the same
way by the recorders (which write them inside the write transaction, :mod:`matome.application.
_recorder`) and by ``matome verify`` (which recomputes them, docs/audit.md), so that a history
edited, cut or reordered is found.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from typing import Any
from uuid import UUID

import attrs
from eventsourcing.persistence import IntegrityError

from matome.application._vault import ERASED, is_reference, personal_fields
from matome.errors import StoreUnavailable
from matome.events.base import EVENT_TOPICS
from matome.wire import dumps

ChainRow = tuple[UUID, int, str]
#: The previous hash of the first event of a stream.
GENESIS = "0" * 64


def content_hash(topic: str, state: Mapping[str, Any]) -> str:
    """SHA-256 of an event's stored content in canonical JSON.

    Personal values are kept out: new events hold only a reference and a salted digest (the
    value lives in the personal-data table, where erasure deletes it), and the clear values of
    events written before matome 0.2 are left out of the hash, so erasing them breaks no
    chain.
    """
    personal = personal_fields(EVENT_TOPICS[topic]) if topic in EVENT_TOPICS else ()
    hashed = {k: v for k, v in state.items() if k not in personal or is_reference(v)}
    return hashlib.sha256(f"{topic}\n{dumps(hashed)}".encode()).hexdigest()


def content_as_written(topic: str, state: Mapping[str, Any]) -> str | None:
    """The content hash matome 0.2 recorded for an event whose personal fields it stored empty
    (``null``) or as erased: it hashed the stored text whole, while :func:`content_hash` leaves
    every personal value that is not a reference out.  ``None`` when the state holds no such
    value (then the two agree).  Only ``verify`` uses it, to accept those recorded hashes."""
    personal = personal_fields(EVENT_TOPICS[topic]) if topic in EVENT_TOPICS else ()
    empty = [k for k in personal if k in state and (state[k] is None or state[k] == ERASED)]
    if not empty or any(
        state.get(k) is not None and not is_reference(state[k]) and state[k] != ERASED
        for k in personal
    ):
        return None  # nothing empty, or clear values of a version before 0.2: not ambiguous
    return hashlib.sha256(f"{topic}\n{dumps(dict(state))}".encode()).hexdigest()


def link(previous: str, stream: UUID | str, version: int, content: str) -> str:
    """The hash of event ``version`` of ``stream``: its content chained to the previous one
    (``stream`` as a UUID or its canonical text)."""
    return hashlib.sha256(f"{previous}:{stream}:{version}:{content}".encode()).hexdigest()


def global_link(previous: str, position: int, stream_hash: str) -> str:
    """The global chain's hash at log ``position``: the event's stream hash (which covers its
    stream, version, content and stream history) chained to the previous position's.

    One chain over the whole log in recording order (notification ids; on PostgreSQL they may
    have gaps, so the position itself is hashed rather than assumed consecutive): deleting,
    editing, reordering or cutting off any event changes every later hash, and the hash at a
    position kept outside the store (a seal) proves what the store held up to it.
    """
    return hashlib.sha256(f"{previous}:{position}:{stream_hash}".encode()).hexdigest()


def global_rows(
    previous: tuple[int, str] | None, ids: Sequence[int], chain: Sequence[ChainRow]
) -> list[tuple[int, str]]:
    """The global chain rows of events just inserted at ``ids`` (in the order of their
    ``chain`` rows), after the head ``previous`` (``None``: the log's first events)."""
    if len(ids) != len(chain):
        raise IntegrityError(f"{len(ids)} events inserted but {len(chain)} chain rows")
    last_position, hash_ = previous if previous is not None else (0, GENESIS)
    out = []
    for position, (_, _, stream_hash) in zip(ids, chain, strict=True):
        if position <= last_position:
            # The head is read under the write lock, so no other writer interleaves: a new
            # event at or before the head means the log lost its newest events (SQLite reuses
            # the positions of deleted rows) while their global rows stayed.  Not a conflict
            # to retry: the store needs an audit before anything more is written to it.
            raise StoreUnavailable(
                f"the global chain's head is at log position {last_position} but a new event "
                f"got position {position}: events were deleted from the log (matome verify)"
            )
        hash_ = global_link(hash_, position, stream_hash)
        out.append((position, hash_))
        last_position = position
    return out


@attrs.frozen
class Adoption:
    """Events recorded before the store had a global chain, adopted into both chains when a
    writer of contract 3 first opened it: through which log position, how many events got
    a stream-chain entry they lacked, and when (UTC, ISO 8601)."""

    through: int
    adopted: int
    at: str


def adoption_rows(
    notifications: Sequence[Any],
    recorded: Mapping[tuple[UUID, int], str],
    content_of: Any,
) -> tuple[list[ChainRow], list[tuple[int, str]]]:
    """The chain rows an old store lacks: a stream-chain entry for each event without one
    (folded from the stored events, as :meth:`EventStoreApplication.fold` does) and a global
    row for every event, in log order.  An event that has a stream hash keeps it: a recorded
    hash that no longer matches its event stays a break for ``verify`` to report."""
    heads: dict[UUID, str] = {}
    missing: list[ChainRow] = []
    global_: list[tuple[int, str]] = []
    hash_ = GENESIS
    for n in notifications:
        stream = as_uuid(n.originator_id)
        own = recorded.get((stream, n.originator_version))
        if own is None:
            own = link(heads.get(stream, GENESIS), stream, n.originator_version, content_of(n))
            missing.append((stream, n.originator_version, own))
        heads[stream] = own
        hash_ = global_link(hash_, n.id, own)
        global_.append((n.id, hash_))
    return missing, global_


@attrs.frozen
class Logged:
    """A stored event with its log position, as the adoption reads it."""

    id: int
    originator_id: UUID
    originator_version: int
    topic: str
    state: bytes


def as_uuid(value: Any) -> UUID:
    return value if isinstance(value, UUID) else UUID(str(value))


# ---------------------------------------------------------------------------------------------
# Store settings
