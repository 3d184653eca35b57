"""What matome's recorders add to eventsourcing's, shared by every backend.

* the **read check**: a write fails with ``IntegrityError`` if a stream its command only
  *read* has moved (the library checks only the streams written) — a purchase must also fail
  if its line was regulated meanwhile;
* the rows a write carries with its events, in the same transaction (:class:`Extra`): the
  chain entries, the personal values, the erasures, and the command log's position, which is
  also a **claim** (:class:`LogPositionTaken`);
* the protocol the application reads them back through (:class:`MatomeRecorder`), and the
  names of matome's tables beside the events.

Why one module: each backend (:mod:`matome.application._popo`, :mod:`matome.application.
_sqlite`, :mod:`matome.application._postgres`) implements this same extension in its own
storage, as eventsourcing's ``persistence.py`` holds what its ``popo.py``, ``sqlite.py`` and
``postgres.py`` implement; ``tests/integration/test_recorder_contract.py`` holds every backend
to it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Protocol
from uuid import UUID

import attrs
from eventsourcing.persistence import IntegrityError

from matome.application._chains import Adoption, ChainRow
from matome.application._keyring import Keyring, PersonalDataLocked
from matome.application._vault import PersonalRow


def stale_reads(
    read_versions: Mapping[UUID, int] | None, current: Mapping[UUID, int]
) -> list[UUID]:
    """The streams whose version moved since the command read them (0: did not exist)."""
    if not read_versions:
        return []
    return [s for s, v in read_versions.items() if current.get(s, 0) != v]


def raise_if_stale(read_versions: Mapping[UUID, int] | None, current: Mapping[UUID, int]) -> None:
    stale = stale_reads(read_versions, current)
    if stale:
        raise IntegrityError(f"streams read by the command changed meanwhile: {stale}")


#: The key of the PostgreSQL advisory lock held while matome creates its tables.
CREATE_LOCK = 0x6D61746F6D65  # "matome"
CHAIN_TABLE = "matome_chain"
PERSONAL_TABLE = "matome_personal"
POSITIONS_TABLE = "matome_log_positions"
#: What wrote the store (see EventStoreApplication.check_writable): name → number, each kept
#: at the highest value any writer recorded.
META_TABLE = "matome_meta"
META_DDL = "CREATE TABLE IF NOT EXISTS {0} (name TEXT PRIMARY KEY, value BIGINT NOT NULL)"
#: The global chain: one row per log position (notification id).
GLOBAL_TABLE = "matome_global_chain"
#: One row: when and how far events older than the global chain were adopted into it.
ADOPTION_TABLE = "matome_chain_adoption"
#: Keys per query when looking chain rows or personal values up.
LOOKUP = 500


@attrs.frozen
class LogPosition:
    """How far a command log was applied: its identity, the number of the last command
    applied and the SHA-256 chained over the commands up to it (:func:`matome.interchange.
    log_lines`; a store written by matome 0.2 holds the 0.2 form: the SHA-256 of the log's
    first raw line, physical lines, raw bytes chained).

    Given with a write, it is also a **claim**: ``first`` (default ``line``) is the first
    command of the log the write applies, and the store refuses the write with
    :class:`LogPositionTaken` — in the write's transaction, under the store's write lock —
    if it has already recorded this log at or past ``first``.  So two runs of one log at once
    cannot both apply a command (docs/reliability.md, "A log is applied once").
    """

    log_id: str
    line: int
    digest: str
    first: int | None = attrs.field(default=None, eq=False)

    @property
    def claims_from(self) -> int:
        """The first command of the log the write that carries this position applies."""
        return self.line if self.first is None else self.first


class LogPositionTaken(Exception):
    """A write claimed commands of a log that the store had already recorded as applied
    (another run of the same log got there first): nothing of the write was kept.

    Not an ``IntegrityError`` — deciding the commands again would not help, the run must
    skip what the other applied (``matome run`` does) — and not a refusal of the command."""

    def __init__(self, claimed: LogPosition, stored: LogPosition) -> None:
        super().__init__(
            f"log {claimed.log_id[:12]}: commands {claimed.claims_from}-{claimed.line} claimed, "
            f"but the store has it applied through command {stored.line}"
        )
        self.claimed = claimed
        self.stored = stored
        #: The outcomes of the commands of a batch recorded one at a time before this one
        #: (``CommandService.execute_batch``): recorded, so to be reported.
        self.done: list[Any] = []


def check_claim(claimed: LogPosition, stored: LogPosition | None) -> None:
    """Raise :class:`LogPositionTaken` if ``stored`` already covers the first command
    ``claimed`` applies (every recorder calls this under its write lock)."""
    if stored is not None and stored.line >= claimed.claims_from:
        raise LogPositionTaken(claimed, stored)


#: Rows of the write that go with the events, in the same transaction (keyword ``extra`` of
#: ``insert_events``): chain hashes, personal values, subjects erased, legacy states redacted.
@attrs.frozen
class Extra:
    chain: tuple[ChainRow, ...] = ()
    personal: tuple[PersonalRow, ...] = ()
    erase: tuple[str, ...] = ()
    rewrite: tuple[tuple[UUID, int, bytes], ...] = ()
    #: (subject, field): earlier values of ``field`` replaced by this write's (deleted).
    replace: tuple[tuple[str, str], ...] = ()
    #: Subjects whose data key is replaced by a new one (their surviving values re-sealed).
    rotate: tuple[str, ...] = ()
    position: LogPosition | None = None


def subjects_of(extra: Extra) -> list[str]:
    """The subjects whose data keys a write needs."""
    return sorted({r.subject for r in extra.personal} | set(extra.rotate))


def keyring_of(recorder: Any) -> Keyring:
    keyring: Keyring | None = getattr(recorder, "keyring", None)
    if keyring is None:  # a recorder used without the application: never store clear values
        raise PersonalDataLocked("personal values cannot be stored: the recorder has no keyring")
    return keyring


class MatomeRecorder(Protocol):
    """What matome's recorders add to eventsourcing's (implemented for every store below)."""

    def chain_hashes(self, keys: Sequence[tuple[UUID, int]]) -> dict[tuple[UUID, int], str]: ...

    def stream_versions(self, streams: Sequence[UUID]) -> dict[UUID, int]:
        """The last version of each of ``streams`` that has events (absent: none), in one
        ``IN (…)`` query per :data:`LOOKUP` streams on the events' own primary key."""
        ...

    def all_chain_hashes(self) -> dict[tuple[UUID, int], str]: ...

    def vault_get(self, refs: Sequence[str]) -> dict[str, PersonalRow]: ...

    def personal_rows(self) -> dict[str, PersonalRow]: ...

    def has_unsealed_personal(self, subjects: Sequence[str]) -> bool: ...

    def scrub(self, *, personal_table: bool) -> None: ...

    def log_position(self, log_id: str) -> LogPosition | None: ...

    def store_meta(self) -> dict[str, int]: ...

    def raise_store_meta(self, rows: Mapping[str, int]) -> None: ...

    def topics_after(self, position: int) -> dict[str, int]: ...
    def global_range(self, start: int, stop: int) -> list[tuple[int, str]]: ...

    def global_after(self, position: int) -> list[tuple[int, str]]: ...

    def adoption(self) -> Adoption | None: ...

    def adopt(self, content_of: Any, at: str) -> Adoption: ...
