"""The writers' gate: a command that keeps losing races gets the store to itself for a moment.

Why its own module: optimistic saves alone can starve a command that reads much (see
:class:`WriterGate`); the gate spans threads and, through the store (an ``flock`` beside an
SQLite file, an advisory lock on PostgreSQL), processes.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import threading
from collections.abc import Iterator
from typing import Any

#: The PostgreSQL advisory-lock key of the gate (any fixed number; distinct from CREATE_LOCK).
GATE_LOCK = 0x6D61_746F_6D65_0001


class _ReadWriteLock:
    """An in-process lock held shared by many or exclusive by one, preferring the exclusive:
    once an exclusive holder waits, new shared holders wait behind it (else a steady stream
    of short shared holds would starve it — the very thing the gate is for)."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._shared = 0
        self._exclusive = False
        self._waiting = 0

    def acquire_shared(self) -> None:
        with self._cond:
            while self._exclusive or self._waiting:
                self._cond.wait()
            self._shared += 1

    def release_shared(self) -> None:
        with self._cond:
            self._shared -= 1
            # Only an exclusive waiter waits for the shared holders to leave (a shared waiter
            # waits for the exclusive side, which this does not change): wake nobody else.
            if not self._shared and self._waiting:
                self._cond.notify_all()

    @contextlib.contextmanager
    def exclusive(self) -> Iterator[None]:
        with self._cond:
            self._waiting += 1
            try:
                while self._exclusive or self._shared:
                    self._cond.wait()
            finally:
                self._waiting -= 1
            self._exclusive = True
        try:
            yield
        finally:
            with self._cond:
                self._exclusive = False
                self._cond.notify_all()


class WriterGate:
    """Every write of events passes the gate *shared*; a command that lost the race to save
    several times in a row passes it *exclusive* for its next attempt — read, decide and save
    — so that nobody can write in between and it cannot lose again.

    Optimistic saves alone can starve a command that reads much: a regulation reads every
    Passport ID and subscription of its line, and under a steady stream of purchases on that
    line one of them always lands between its read and its save.  A fraud stop that never
    lands is the worst outcome a billing engine can have; holding the other writers back for
    one command is cheap beside it.  The gate spans threads (an in-process lock) and, through
    the store, processes (see the subclasses).  A thread holding it exclusive writes without
    the shared part, so its own save does not wait for itself.
    """

    def __init__(self) -> None:
        self._lock = _ReadWriteLock()
        self._local = threading.local()

    def held(self) -> bool:
        """Whether this thread holds the gate exclusive."""
        return bool(getattr(self._local, "held", False))

    @contextlib.contextmanager
    def exclusive(self) -> Iterator[None]:
        if self.held():
            yield
            return
        with self._lock.exclusive(), self._across_processes(exclusive=True):
            self._local.held = True
            try:
                yield
            finally:
                self._local.held = False

    def shared(self) -> contextlib.AbstractContextManager[None]:
        """Pass the gate shared (every write does): a plain context manager, not a generator,
        since each write of a warm purchase pays for it."""
        if self.held():
            return contextlib.nullcontext()
        return _SharedPass(self)

    def _across_processes(self, *, exclusive: bool) -> contextlib.AbstractContextManager[None]:
        return contextlib.nullcontext()

    def _enter_shared(self) -> None:
        """Take the shared side across processes (the subclasses), after the thread's."""

    def _exit_shared(self) -> None:
        """Release what :meth:`_enter_shared` took."""


class _SharedPass:
    """One shared pass of a :class:`WriterGate`: the in-process lock, then the processes' side."""

    __slots__ = ("gate",)

    def __init__(self, gate: WriterGate) -> None:
        self.gate = gate

    def __enter__(self) -> None:
        lock = self.gate._lock
        lock.acquire_shared()
        try:
            self.gate._enter_shared()
        except BaseException:
            lock.release_shared()
            raise

    def __exit__(self, *_: object) -> None:
        try:
            self.gate._exit_shared()
        finally:
            self.gate._lock.release_shared()


class _OpenFile:
    """A file descriptor closed when the thread that kept it ends (its thread-local storage
    is dropped) — or, inherited by a forked child, left to the parent."""

    def __init__(self, fd: int) -> None:
        self.fd = fd
        self.pid = os.getpid()

    def __del__(self) -> None:
        if self.pid == os.getpid():
            with contextlib.suppress(OSError):
                os.close(self.fd)


class FileGate(WriterGate):
    """The gate of a SQLite file store: an ``flock`` on a file beside the database, so that
    processes sharing the store share the gate."""

    def __init__(self, path: str) -> None:
        super().__init__()
        self.path = path
        self._files = threading.local()

    def _open(self) -> int:
        return os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)

    def _shared_file(self) -> int:
        # flock locks belong to an open file: each thread keeps its own (opened once, not
        # per write), so threads exclude each other as processes do.  A forked child opens
        # its own rather than share its parent's.
        held: _OpenFile | None = getattr(self._files, "file", None)
        if held is None or held.pid != os.getpid():
            held = self._files.file = _OpenFile(self._open())
        return held.fd

    @contextlib.contextmanager
    def _across_processes(self, *, exclusive: bool) -> Iterator[None]:
        if not exclusive:  # the shared side: _enter_shared and _exit_shared
            yield
            return
        fd = self._open()
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)  # releases the lock

    def _enter_shared(self) -> None:
        fcntl.flock(self._shared_file(), fcntl.LOCK_SH)

    def _exit_shared(self) -> None:
        # The same thread's file as on entering (a thread keeps its own, see _shared_file).
        fcntl.flock(self._shared_file(), fcntl.LOCK_UN)


class PostgresGate(WriterGate):
    """The gate of a PostgreSQL store: an advisory lock.  The exclusive side holds it on a
    connection of its own for the attempt; the shared side is taken inside each write's
    transaction by the recorder (``pg_advisory_xact_lock_shared``), so it costs no round
    trip.  PostgreSQL queues a shared request behind a waiting exclusive one."""

    def __init__(self, datastore: Any) -> None:
        super().__init__()
        self.datastore = datastore

    @contextlib.contextmanager
    def _across_processes(self, *, exclusive: bool) -> Iterator[None]:
        if not exclusive:
            yield  # taken by the recorder, in the write's own transaction
            return
        with self.datastore.get_connection() as conn:
            conn.execute("SELECT pg_advisory_lock(%s)", (GATE_LOCK,))
            try:
                yield
            finally:
                conn.execute("SELECT pg_advisory_unlock(%s)", (GATE_LOCK,))
