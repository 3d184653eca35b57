"""matome's in-memory recorder (eventsourcing's POPO recorder, extended).

Why: tests and dry runs (``--db :memory:``) go through the same extension as the stores that
outlive the process — the read check, the chains, the personal values, the log position —
held in dictionaries under the library's database lock.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any
from uuid import UUID

import attrs
from eventsourcing.persistence import StoredEvent
from eventsourcing.popo import POPOApplicationRecorder

from matome.application._chains import Adoption, adoption_rows, global_rows
from matome.application._keyring import Keyring
from matome.application._recorder import (
    Extra,
    LogPosition,
    check_claim,
    keyring_of,
    raise_if_stale,
    subjects_of,
)
from matome.application._vault import PersonalRow


class POPORecorder(POPOApplicationRecorder):
    """In-memory recorder with the read check, the chain and the personal values."""

    def __init__(self) -> None:
        super().__init__()
        self._chain: dict[tuple[UUID, int], str] = {}
        self._personal: dict[str, PersonalRow] = {}
        self._keys: dict[str, str] = {}
        self._positions: dict[str, LogPosition] = {}
        self._meta: dict[str, int] = {}
        self._global: dict[int, str] = {}
        self._global_head: tuple[int, str] | None = None
        self._adoption: Adoption | None = None

    #: Set by the application: seals personal values under their subjects' keys.
    keyring: Keyring | None = None

    def _insert_events(
        self, stored_events: Sequence[StoredEvent], **kwargs: Any
    ) -> Sequence[int] | None:
        read_versions: Mapping[UUID, int] | None = kwargs.get("read_versions")
        extra: Extra = kwargs.get("extra") or Extra()
        with self._database_lock:
            if extra.position is not None:
                check_claim(extra.position, self._positions.get(extra.position.log_id))
            if read_versions:
                current = {}
                for stream in read_versions:
                    versions = self._stored_events_index.get(str(stream))
                    current[stream] = max(versions) if versions else 0
                raise_if_stale(read_versions, current)
            ids = super()._insert_events(stored_events, **kwargs)
            for stream, version, hash_ in extra.chain:
                self._chain[stream, version] = hash_
            if extra.chain and ids is not None:
                rows = global_rows(self._global_head, ids, extra.chain)
                self._global.update(rows)
                self._global_head = rows[-1]
            for subject in extra.erase:  # first: the values written with these events stay
                for ref in [r for r, row in self._personal.items() if row.subject == subject]:
                    del self._personal[ref]
                self._keys.pop(subject, None)
            for subject, field in extra.replace:
                for ref in [
                    r
                    for r, row in self._personal.items()
                    if row.subject == subject and r.endswith(f"/{field}")
                ]:
                    del self._personal[ref]
            if extra.personal or extra.rotate:
                plan = keyring_of(self).plan(
                    {s: self._keys[s] for s in subjects_of(extra) if s in self._keys},
                    next(iter(self._keys.items()), None),
                    [(r.ref, r.subject, r.salt, r.data) for r in extra.personal],
                    extra.rotate,
                    [
                        (r.ref, r.subject, r.data)
                        for r in self._personal.values()
                        if r.subject in extra.rotate
                    ],
                )
                for subject in plan.delete_keys:
                    del self._keys[subject]
                self._keys.update(plan.insert_keys)
                for ref, data in plan.update_rows:
                    self._personal[ref] = attrs.evolve(self._personal[ref], data=data)
                for ref, subject, data, salt in plan.insert_rows:
                    self._personal[ref] = PersonalRow(ref, subject, data, salt)
            if extra.position is not None:
                p = extra.position
                self._positions[p.log_id] = LogPosition(p.log_id, p.line, p.digest)
            for stream, version, state in extra.rewrite:
                position = self._stored_events_index[str(stream)][version]
                old = self._stored_events[position]
                self._stored_events[position] = StoredEvent(
                    originator_id=old.originator_id,
                    originator_version=old.originator_version,
                    topic=old.topic,
                    state=state,
                )
            return ids

    def stream_versions(self, streams: Sequence[UUID]) -> dict[UUID, int]:
        with self._database_lock:
            out: dict[UUID, int] = {}
            for stream in streams:
                versions = self._stored_events_index.get(str(stream))
                if versions:
                    out[stream] = max(versions)
            return out

    def chain_hashes(self, keys: Sequence[tuple[UUID, int]]) -> dict[tuple[UUID, int], str]:
        with self._database_lock:
            return {k: self._chain[k] for k in keys if k in self._chain}

    def all_chain_hashes(self) -> dict[tuple[UUID, int], str]:
        with self._database_lock:
            return dict(self._chain)

    def vault_get(self, refs: Sequence[str]) -> dict[str, PersonalRow]:
        with self._database_lock:
            return {r: self._with_key(self._personal[r]) for r in refs if r in self._personal}

    def personal_rows(self) -> dict[str, PersonalRow]:
        with self._database_lock:
            return {r: self._with_key(row) for r, row in self._personal.items()}

    def _with_key(self, row: PersonalRow) -> PersonalRow:
        return attrs.evolve(row, wrapped=self._keys.get(row.subject))

    def has_unsealed_personal(self, subjects: Sequence[str]) -> bool:
        return False  # nothing outlives the process

    def scrub(self, *, personal_table: bool) -> None:
        pass  # nothing outlives the process

    def log_position(self, log_id: str) -> LogPosition | None:
        with self._database_lock:
            return self._positions.get(log_id)

    def store_meta(self) -> dict[str, int]:
        with self._database_lock:
            return dict(self._meta)

    def raise_store_meta(self, rows: Mapping[str, int]) -> None:
        with self._database_lock:
            for name, value in rows.items():
                self._meta[name] = max(value, self._meta.get(name, value))

    def topics_after(self, position: int) -> dict[str, int]:
        with self._database_lock:
            out: dict[str, int] = {}
            for index, stored in enumerate(self._stored_events[position:], start=position + 1):
                out[stored.topic] = index
            return out

    def global_range(self, start: int, stop: int) -> list[tuple[int, str]]:
        with self._database_lock:
            # Positions are the list indexes of the in-memory log: no gaps, no scan.
            found = ((p, self._global.get(p)) for p in range(start, stop + 1))
            return [(p, h) for p, h in found if h is not None]

    def global_after(self, position: int) -> list[tuple[int, str]]:
        with self._database_lock:
            last = self._global_head[0] if self._global_head else 0
            return self.global_range(position + 1, last)

    def adoption(self) -> Adoption | None:
        with self._database_lock:
            return self._adoption

    def adopt(self, content_of: Any, at: str) -> Adoption:
        with self._database_lock:
            if self._adoption is None:
                notifications = self.select_notifications(start=1, limit=2**62)
                missing, global_ = adoption_rows(notifications, self._chain, content_of)
                for stream, version, hash_ in missing:
                    self._chain[stream, version] = hash_
                self._global.update(global_)
                if global_:
                    self._global_head = global_[-1]
                through = notifications[-1].id if notifications else 0
                self._adoption = Adoption(through, len(missing), at)
            return self._adoption
