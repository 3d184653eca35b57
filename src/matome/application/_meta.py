"""What wrote a store, and whether this matome may write to it.

Why its own module: an older matome must not append to a history it cannot read whole —
decide with rules that no longer hold, chain over events it does not understand.  Every writer
records in ``matome_meta`` its store format, its version and the events it knows (at their
class versions); a writer first checks what the others recorded, and the events recorded since
(:meth:`matome.application.eventstore.EventStoreApplication.check_writable`).
"""

from __future__ import annotations

import importlib.metadata
from typing import Any

from eventsourcing.persistence import ApplicationRecorder

from matome.application._mapper import EventMapper
from matome.application._recorder import MatomeRecorder
from matome.events.base import EVENT_TOPICS

#: The layout of matome's tables beside the events.  A matome that finds a higher number in a
#: store (``matome_meta``) does not write to it: a newer one changed what it keeps there.
STORE_FORMAT = 1


def matome_version() -> str:
    """matome's version as installed (the package's root imports this module: not from it)."""
    try:
        return importlib.metadata.version("matome")
    except importlib.metadata.PackageNotFoundError:
        return "unknown"


def unknown_event(topic: str, version: Any) -> str | None:
    """What this matome does not know about events of ``topic`` at class ``version``."""
    cls = EVENT_TOPICS.get(topic)
    if cls is None:
        return f"event {topic[:80]!r}"
    if type(version) is not int or version > cls.class_version:
        return f"{topic} at class version {version!r}, this matome knows {cls.class_version}"
    return None


def newer_writer(
    recorder: MatomeRecorder, events: ApplicationRecorder, mapper: EventMapper
) -> str | None:
    """Why a newer matome has this store, or ``None`` (then record this one's marks).

    ``recorder`` and ``events`` are one recorder, seen as matome's and as eventsourcing's."""
    meta = recorder.store_meta()
    found = meta.get("format", 0)
    if found > STORE_FORMAT:
        return f"it was written by a newer matome (store format {found}, not {STORE_FORMAT})"
    for name, version in sorted(meta.items()):
        if name.startswith("event:"):
            problem = unknown_event(name.removeprefix("event:"), version)
            if problem is not None:
                return f"a newer matome wrote to it ({problem})"
    # Events recorded since the last check (by any matome, or put there by hand): their
    # kinds, and the class version of the newest of each kind.
    checked = meta.get("checked_through", 0)
    newest = recorder.topics_after(checked)
    for topic, position in sorted(newest.items()):
        if topic not in EVENT_TOPICS:
            return f"it holds events this matome does not know ({unknown_event(topic, 1)})"
        stored = events.select_notifications(start=position, limit=1)
        version = mapper.stored_state(stored[0]).get("class_version", 1)
        problem = unknown_event(topic, version)
        if problem is not None:
            return f"it holds events newer than this matome ({problem})"
    marks = {"format": STORE_FORMAT, f"matome:{matome_version()}": STORE_FORMAT}
    marks["checked_through"] = max([checked, *newest.values()])
    marks.update({f"event:{t}": cls.class_version for t, cls in EVENT_TOPICS.items()})
    recorder.raise_store_meta(marks)
    return None
