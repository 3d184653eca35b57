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

Contract 3 ("Tamper evidence that cannot be removed") adds:

* every event must have its entries — in its stream's chain and in the **global chain** that runs
  over the whole log in recording order — so deleting the hashes no longer hides an edit;
* the global chain is folded again from the events and compared with every recorded row: an
  event deleted (a stream's last one too), edited, moved, or slipped in breaks it at the first
  position affected;
* what the read models show of issued bills (``mv_bills``, ``mv_bill_rows``,
  ``mv_provider_months``) must equal the issued bills in the events;
* **seals**: ``matome seal`` signs (Ed25519) the global head at the last position with a key kept
  outside the store; ``verify --against SEAL`` proves the store still extends it, which catches
  even a history rewritten wholesale with every hash recomputed, or the newest events cut off
  with their rows.

It names the first broken link in log order, lists every break, and returns the global head
(and, for compatibility, the older per-stream *seal* digest).
"""

from __future__ import annotations

import contextlib
import hashlib
from collections import defaultdict
from collections.abc import Callable, Mapping
from typing import Any
from uuid import UUID

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from matome._verify_seals import (
    SEAL_FORMAT,
    _check_against,
    check_seal,
    make_seal,
    new_seal_key,
    private_key_from_pem,
    public_key_from_pem,
    read_seal,
)
from matome._verify_views import (
    Views,
    _check_views,
    log_break,
)
from matome.application.eventstore import (
    GENESIS,
    EventStoreApplication,
    content_as_written,
    content_hash,
    global_link,
    is_reference,
    link,
    personal_fields,
)
from matome.audit import bill as recompute_bill
from matome.audit import read_line
from matome.billing import events_digest
from matome.documents import Break, BreakKind, SealCheck, Verification
from matome.errors import InvalidInput
from matome.events import EVENT_TOPICS
from matome.events.bill import BillIssued
from matome.policy import Policy
from matome.wire import issued_bill, loads, text_digest, to_json

__all__ = [
    "SEAL_FORMAT",
    "Views",
    "check_seal",
    "make_seal",
    "new_seal_key",
    "private_key_from_pem",
    "public_key_from_pem",
    "read_seal",
    "verify_store",
]

#: Notifications read at a time.
_CHUNK = 5_000

Progress = Callable[[int, int], None]


#: A stream's event as verify keeps it: version, log position, topic, stored state (only for
#: events with personal fields: the others' states are not needed again), content hash, and
#: its stream hash as folded in log order.
_Event = tuple[int, int, str, dict[str, Any] | None, str, str]


def verify_store(
    store: EventStoreApplication,
    policy: Policy,
    progress: Progress | None = None,
    *,
    views: Views | None = None,
    against: Mapping[str, Any] | None = None,
    public_key: Ed25519PublicKey | None = None,
) -> Verification:
    """Check every chain, every personal value, every issued bill and what the views show of
    them; with ``against`` (a seal, see :func:`make_seal`) and the trusted ``public_key``,
    that the store still extends that checkpoint (see the module)."""
    if against is not None and public_key is None:
        raise InvalidInput("verify --against needs the seal's public key (--public-key)")
    recorder = store.recorder
    matome_recorder = store.matome_recorder
    mapper = store.event_mapper
    total = recorder.max_notification_id() or 0
    streams: dict[UUID, list[_Event]] = defaultdict(list)
    breaks: list[Break] = []
    bills: list[tuple[int, BillIssued]] = []
    #: (customer, month) → the issued bill's log position and stored (upcast) bill and digest.
    issued: dict[tuple[str, str], tuple[int, Any, str]] = {}
    adoption = matome_recorder.adoption()
    if adoption is None:
        breaks.append(
            log_break(
                BreakKind.UNCHAINED,
                "the store has no global chain: no writer of contract 3 has opened it "
                "yet (matome seal, or any writing command, adopts its events once)",
            )
        )
    sealed_at = int(against["position"]) if against is not None else None
    #: The global head computed at the sealed position, and the events up to it.
    sealed_head: str | None = None
    sealed_events = 0
    running: dict[UUID, str] = {}
    #: The global head folded from the events alone (what a seal is compared with), and the
    #: previous hash the recorded rows are compared against (reset to a recorded row after
    #: a break, so that each break is reported once).
    global_hash = check = GENESIS
    position = 0
    start = 1
    read = 0
    while True:
        chunk = recorder.select_notifications(start=start, limit=_CHUNK)
        if not chunk:
            break
        recorded_global = (
            dict(matome_recorder.global_range(start, chunk[-1].id)) if adoption else {}
        )
        # Global entries of positions that hold no event: the event was deleted.
        present = {n.id for n in chunk}
        breaks += [_orphan(p) for p in sorted(recorded_global) if p not in present]
        # Events whose personal fields matome 0.2 hashed as stored (empty or erased): their
        # recorded stream hashes, to accept the hash as it was written (one query a chunk).
        # Their states are decoded once here and reused below.
        decoded: dict[int, dict[str, Any]] = {}
        for n in chunk:
            if n.topic in _PERSONAL_TOPICS:
                with contextlib.suppress(Exception):  # unreadable: reported below
                    decoded[n.id] = mapper.stored_state(n)
        as_written = {
            (_uuid_of(n), n.originator_version): written
            for n in chunk
            if n.id in decoded and (written := content_as_written(n.topic, decoded[n.id]))
        }
        written_recorded = matome_recorder.chain_hashes(list(as_written)) if as_written else {}
        for n in chunk:
            stream = _uuid_of(n)
            try:
                state = decoded[n.id] if n.id in decoded else mapper.stored_state(n)
            except Exception as e:
                breaks.append(
                    _break_at(
                        BreakKind.UNREADABLE,
                        stream,
                        n,
                        f"the stored event cannot be read: {e}",
                    )
                )
                position = n.id
                continue
            content = content_hash(n.topic, state)
            cls = EVENT_TOPICS.get(n.topic)
            keep = state if cls is not None and personal_fields(cls) else None
            previous = running.get(stream, GENESIS)
            stream_hash = link(previous, str(stream), n.originator_version, content)
            written = as_written.get((stream, n.originator_version))
            if written is not None:
                want_stream = written_recorded.get((stream, n.originator_version))
                if want_stream != stream_hash and want_stream == link(
                    previous, str(stream), n.originator_version, written
                ):
                    content, stream_hash = written, want_stream
            running[stream] = stream_hash
            streams[stream].append(
                (n.originator_version, n.id, n.topic, keep, content, stream_hash)
            )
            global_hash = global_link(global_hash, n.id, stream_hash)
            check = global_link(check, n.id, stream_hash)
            if adoption is not None:
                want = recorded_global.get(n.id)
                if want is None:
                    breaks.append(
                        _break_at(
                            BreakKind.UNCHAINED,
                            stream,
                            n,
                            f"{n.topic} v{n.originator_version} has no entry in the "
                            "global chain (its entry deleted, or the event slipped in)",
                        )
                    )
                elif want != check:
                    breaks.append(
                        _break_at(
                            BreakKind.GLOBAL_CHAIN,
                            stream,
                            n,
                            f"the global chain breaks at log position {n.id}: this "
                            "event, or one before it in the log, was deleted, edited or moved",
                        )
                    )
                    check = want  # report each break once, not every position after it
            position = n.id
            if sealed_at is not None and n.id <= sealed_at:
                sealed_events += 1
                if n.id == sealed_at:
                    sealed_head = global_hash
            if n.topic == BillIssued.TOPIC:
                try:
                    event = mapper.to_domain_event(n)
                except Exception:
                    continue
                if isinstance(event, BillIssued):
                    bills.append((n.id, event))
                    try:
                        document = loads(event.document)
                    except ValueError:
                        # Not JSON any more: a break of its digest (_check_bills), and the
                        # views' copy cannot equal it.
                        document = None
                    issued[str(event.customer_id), str(event.month)] = (
                        n.id,
                        document,
                        event.digest,
                    )
        read += len(chunk)
        start = chunk[-1].id + 1
        if progress is not None:
            progress(read, total)
    if adoption is not None:
        breaks += [_orphan(p) for p, _ in matome_recorder.global_after(position)]
    recorded = matome_recorder.all_chain_hashes()
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
        found, heads[stream] = _check_stream(
            stream, events, recorded, recorded_versions.get(stream, []), folded
        )
        breaks += found
        chained += sum((stream, e[0]) in recorded for e in events)
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
    if views is not None:
        breaks += _check_views(views, issued)
    sealed: SealCheck | None = None
    if against is not None:
        sealed = _check_against(against, public_key, position, sealed_head, sealed_events)
        if not sealed.ok:
            breaks.append(
                log_break(
                    BreakKind.SEAL,
                    sealed.message,
                    position=_first_bad(sealed_at or 0, position, breaks),
                )
            )
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
        head=global_hash,
        position=position,
        problems=tuple(_problem(b) for b in breaks),
        adopted_through=None if adoption is None else adoption.through,
        adopted_at=None if adoption is None else adoption.at,
        against=sealed,
    )


def _problem(b: Break) -> str:
    where = "" if b.position is None else f"log position {b.position}: "
    return f"{where}{b.kind.value}: {b.message}"


def _orphan(position: int) -> Break:
    return log_break(
        BreakKind.MISSING,
        f"log position {position} has a global-chain entry but no event (deleted?)",
        position=position,
    )


def _first_bad(sealed_at: int, position: int, breaks: list[Break]) -> int:
    """The first bad position a failed seal check names: the earliest break the chains show
    at or before the sealed position; else the end of the log when it was cut short before
    it; else the sealed position (a history rewritten with every hash recomputed agrees with
    itself everywhere: only the seal's head disagrees)."""
    known = [b.position for b in breaks if b.position is not None and b.position <= sealed_at]
    if known:
        return min(known)
    if position < sealed_at:
        return position + 1
    return sealed_at


def _break_at(kind: BreakKind, stream: UUID, n: Any, message: str) -> Break:
    """A break of the event stored at notification ``n`` of ``stream``."""
    return Break(
        kind=kind,
        stream=str(stream),
        version=n.originator_version,
        position=n.id,
        topic=n.topic,
        message=message,
    )


#: Topics of events with personal fields.
_PERSONAL_TOPICS = frozenset(t for t, c in EVENT_TOPICS.items() if personal_fields(c))


def _uuid_of(n: Any) -> UUID:
    return n.originator_id if isinstance(n.originator_id, UUID) else UUID(str(n.originator_id))


def _check_stream(
    stream: UUID,
    events: list[_Event],
    recorded: dict[tuple[UUID, int], str],
    recorded_versions: list[int],
    folded: dict[str, str],
) -> tuple[list[Break], str]:
    """The breaks of one stream's chain, and its head folded from the events in version
    order; every event's folded hash goes into ``folded`` (for the bills' sources)."""
    out: list[Break] = []
    text = str(stream)
    #: ``pure``: the chain folded from the events alone; ``hash_``: the same, but reset to a
    #: recorded hash after a break (each break reported once).  While the stream's versions
    #: come in log order without a gap, the pure fold is the hash already folded in log order.
    pure = hash_ = GENESIS
    in_order = True
    expected = 1
    last_position = 0
    for version, position, topic, _, content, in_log_order in events:
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
            in_order = False
        if position < last_position:
            in_order = False
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
        same = hash_ == pure
        pure = in_log_order if in_order else link(pure, text, version, content)
        hash_ = pure if same else link(hash_, text, version, content)
        folded[f"{text}@{version}"] = pure
        want = recorded.get((stream, version))
        if want is None:
            # Contract 3: every event has its chain entry; deleting the hashes must not turn
            # an edited event into an unchecked one.
            out.append(
                Break(
                    kind=BreakKind.UNCHAINED,
                    stream=str(stream),
                    version=version,
                    position=position,
                    topic=topic,
                    message=f"{topic} v{version} has no entry in its stream's chain "
                    "(its hash was deleted, or the event slipped in)",
                )
            )
        elif want != hash_:
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
    return out, pure


def _check_personal(store: EventStoreApplication, streams: dict[UUID, list[_Event]]) -> list[Break]:
    rows = store.matome_recorder.personal_rows()
    out = []
    for stream, events in streams.items():
        for version, position, topic, state, _, _ in events:
            cls = EVENT_TOPICS.get(topic)
            if cls is None or state is None:
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
        # The stored bytes themselves (v4; an older bill's stored JSON, upcast to its canonical
        # text, is the text its digest was computed over): no re-serialisation through today's
        # document types, so a change of their shape cannot break an old bill.
        if text_digest(event.document) != event.digest:
            problems.append("its document does not match its digest")
        if event.sources:
            if events_digest(event.sources, folded) != event.events_digest:
                problems.append("the events it was computed from changed")
        else:
            # Issued before matome 0.2: recompute it from the line's events as the store knew
            # them when it was issued.
            history = read_line(store, event.customer_id, recorded_as_of=event.timestamp)
            again = recompute_bill(history, event.month, policy)
            try:
                rows = to_json(issued_bill(event).rows)
            except Exception:
                problems.append("its document cannot be read as a bill")
            else:
                if to_json(again.rows) != rows:
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
