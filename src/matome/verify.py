"""``matome verify``: prove that the stored history is the history that was recorded and billed.

Every event carries a SHA-256 hash of its content chained to the previous event of its stream
(:mod:`matome.application.eventstore`), and every issued bill the digest of its document and of
exactly the events it was computed from.  Verification reads the whole log once and:

* folds each stream's chain again from the stored events and compares it with every hash
  recorded — an edited price or time, a deleted event, versions moved between events all break
  it at the first event affected;
* checks every personal value kept apart against the salted digest its event holds;
* checks every issued bill against its digest and against the hashes of its source events;
  a bill issued before matome 0.2 (no sources recorded) is recomputed from its line's events
  as the store knew them when it was issued, and compared.

It names the first broken link in log order, lists every break, and returns a *seal*: a digest
of every stream's latest hash, to keep outside the store (a history rewritten wholesale, with
every hash recomputed, still changes the seal).
"""

from __future__ import annotations

import hashlib
from collections import defaultdict
from collections.abc import Callable
from typing import Any
from uuid import UUID

from matome.application.eventstore import (
    GENESIS,
    EventStoreApplication,
    content_hash,
    is_reference,
    link,
    personal_fields,
)
from matome.audit import bill as recompute_bill
from matome.audit import read_line
from matome.billing import events_digest
from matome.documents import Break, BreakKind, Verification
from matome.events import EVENT_TOPICS
from matome.events.bill import BillIssued
from matome.policy import Policy
from matome.projections.documents import bill_digest
from matome.wire import to_json

__all__ = ["verify_store"]

#: Notifications read at a time.
_CHUNK = 5_000

Progress = Callable[[int, int], None]


def verify_store(
    store: EventStoreApplication, policy: Policy, progress: Progress | None = None
) -> Verification:
    """Check every chain, every personal value and every issued bill (see the module)."""
    recorder = store.recorder
    mapper = store.event_mapper
    total = recorder.max_notification_id() or 0
    streams: dict[UUID, list[tuple[int, int, str, dict[str, Any]]]] = defaultdict(list)
    breaks: list[Break] = []
    bills: list[tuple[int, BillIssued]] = []
    start = 1
    read = 0
    while True:
        chunk = recorder.select_notifications(start=start, limit=_CHUNK)
        if not chunk:
            break
        for n in chunk:
            stream = (
                n.originator_id if isinstance(n.originator_id, UUID) else UUID(str(n.originator_id))
            )
            try:
                state = mapper.stored_state(n)
            except Exception as e:
                breaks.append(
                    Break(
                        kind=BreakKind.UNREADABLE,
                        stream=str(stream),
                        version=n.originator_version,
                        position=n.id,
                        topic=n.topic,
                        message=f"the stored event cannot be read: {e}",
                    )
                )
                continue
            streams[stream].append((n.originator_version, n.id, n.topic, state))
            if n.topic == BillIssued.TOPIC:
                try:
                    event = mapper.to_domain_event(n)
                except Exception:
                    continue
                if isinstance(event, BillIssued):
                    bills.append((n.id, event))
        read += len(chunk)
        start = chunk[-1].id + 1
        if progress is not None:
            progress(read, total)
    recorded = store.matome_recorder.all_chain_hashes()
    heads: dict[UUID, str] = {}
    #: Every event's hash folded again from the stored events as they are now.
    folded: dict[str, str] = {}
    chained = 0
    # The recorded versions of each stream, gathered once (looked for per stream below).
    recorded_versions: dict[UUID, list[int]] = {}
    for stream, version in recorded:
        recorded_versions.setdefault(stream, []).append(version)
    for stream, events in streams.items():
        events.sort(key=lambda e: e[0])
        breaks += _check_stream(stream, events, recorded, recorded_versions.get(stream, []))
        hash_ = GENESIS
        for version, _, topic, state in events:
            hash_ = link(hash_, stream, version, content_hash(topic, state))
            folded[f"{stream}@{version}"] = hash_
            chained += (stream, version) in recorded
        heads[stream] = hash_
    for stream, versions in recorded_versions.items():
        if stream not in streams:
            first, last = min(versions), max(versions)
            span = f"version {first}" if first == last else f"versions {first}–{last}"
            breaks.append(
                Break(
                    kind=BreakKind.MISSING,
                    stream=str(stream),
                    version=first,
                    position=None,
                    topic=None,
                    message=f"the stream has recorded hashes for {span} but no events (deleted?)",
                )
            )
    breaks += _check_personal(store, streams)
    breaks += _check_bills(store, bills, folded, policy)
    breaks.sort(key=lambda b: (b.position is None, b.position or 0))
    seal = hashlib.sha256(
        "\n".join(f"{s}:{h}" for s, h in sorted(heads.items(), key=lambda x: str(x[0]))).encode()
    ).hexdigest()
    return Verification(
        ok=not breaks,
        events=read,
        streams=len(streams),
        chained=chained,
        bills=len(bills),
        first_break=breaks[0] if breaks else None,
        breaks=tuple(breaks),
        seal=seal,
    )


def _check_stream(
    stream: UUID,
    events: list[tuple[int, int, str, dict[str, Any]]],
    recorded: dict[tuple[UUID, int], str],
    recorded_versions: list[int],
) -> list[Break]:
    out: list[Break] = []
    hash_ = GENESIS
    expected = 1
    last_position = 0
    for version, position, topic, state in events:
        if version != expected:
            out.append(
                Break(
                    kind=BreakKind.MISSING,
                    stream=str(stream),
                    version=expected,
                    position=position,
                    topic=None,
                    message=f"version {expected} of the stream is missing (deleted?); "
                    f"the next stored version is {version}",
                )
            )
            expected = version
        if position < last_position:
            out.append(
                Break(
                    kind=BreakKind.REORDERED,
                    stream=str(stream),
                    version=version,
                    position=position,
                    topic=topic,
                    message=f"version {version} was recorded before an earlier version "
                    "(versions moved between events)",
                )
            )
        last_position = max(last_position, position)
        hash_ = link(hash_, stream, version, content_hash(topic, state))
        want = recorded.get((stream, version))
        if want is not None and want != hash_:
            out.append(
                Break(
                    kind=BreakKind.CHANGED,
                    stream=str(stream),
                    version=version,
                    position=position,
                    topic=topic,
                    message=f"{topic} v{version} does not match the hash recorded for it: "
                    "it, or an event before it in the stream, was changed after it was recorded",
                )
            )
            hash_ = want  # report each changed event once, not every event after it
        expected += 1
    last = events[-1][0] if events else 0
    beyond = sorted(v for v in recorded_versions if v > last)
    if beyond:
        out.append(
            Break(
                kind=BreakKind.MISSING,
                stream=str(stream),
                version=beyond[0],
                position=None,
                topic=None,
                message=f"versions {beyond[0]}–{beyond[-1]} have recorded hashes but no events "
                "(deleted?)",
            )
        )
    return out


def _check_personal(
    store: EventStoreApplication, streams: dict[UUID, list[tuple[int, int, str, dict[str, Any]]]]
) -> list[Break]:
    rows = store.matome_recorder.personal_rows()
    out = []
    for stream, events in streams.items():
        for version, position, topic, state in events:
            cls = EVENT_TOPICS.get(topic)
            if cls is None:
                continue
            for name in personal_fields(cls):
                value = state.get(name)
                if not isinstance(value, dict) or not is_reference(value):
                    continue
                row = rows.get(value["personal"])
                if row is None:
                    continue  # erased
                try:
                    # Sealed under its subject's data key (the salt inside), or a row of an
                    # earlier version; a row whose key was destroyed reads as erased.  No
                    # master key: PersonalDataLocked, which says so (not a break).
                    opened = store.event_mapper.open_personal(row)
                except ValueError:
                    opened = ("", "")  # does not decrypt: changed
                if opened is None:
                    continue  # its key was destroyed: erased
                salt, data = opened
                digest = hashlib.sha256(f"{salt}{data}".encode()).hexdigest() if data else None
                if digest != value.get("digest"):
                    out.append(
                        Break(
                            kind=BreakKind.PERSONAL_CHANGED,
                            stream=str(stream),
                            version=version,
                            position=position,
                            topic=topic,
                            message=f"the personal value {name!r} of {topic} v{version} no "
                            "longer matches the digest its event holds",
                        )
                    )
    return out


def _check_bills(
    store: EventStoreApplication,
    bills: list[tuple[int, BillIssued]],
    folded: dict[str, str],
    policy: Policy,
) -> list[Break]:
    """Each issued bill against its digest, and against its source events as they are now
    (their hashes folded again from the stored events, not the hashes recorded)."""
    out: list[Break] = []
    for position, event in bills:
        problems = []
        if bill_digest(event.bill) != event.digest:
            problems.append("its document does not match its digest")
        if event.sources:
            if events_digest(event.sources, folded) != event.events_digest:
                problems.append("the events it was computed from changed")
        else:
            # Issued before matome 0.2: recompute it from the line's events as the store knew
            # them when it was issued.
            history = read_line(store, event.customer_id, recorded_as_of=event.timestamp)
            again = recompute_bill(history, event.month, policy)
            if to_json(again.rows) != to_json(event.bill.rows):
                problems.append("recomputed from its line's events it comes out different")
        if problems:
            out.append(
                Break(
                    kind=BreakKind.BILL_CHANGED,
                    stream=str(event.originator_id),
                    version=event.originator_version,
                    position=position,
                    topic=BillIssued.TOPIC,
                    message=f"the bill of {event.customer_id} for {event.month}: "
                    + "; ".join(problems),
                )
            )
    return out
