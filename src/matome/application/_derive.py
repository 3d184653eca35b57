"""The key derivations of a batch, run side by side on a pool sized to the cores.

A production key derivation (Argon2id, or an older scrypt hash being checked) costs tens to
hundreds of milliseconds of one core; deciding a command costs tens of microseconds.  So a cold
log's pace is the derivations', and the way to go faster is to run them in parallel.  argon2-cffi
and ``hashlib.scrypt`` / ``hashlib.pbkdf2_hmac`` release the GIL while they derive, so plain
threads do (measured by ``bench/kdf.py``).

Which derivations a batch needs is known only by deciding it: a new hash for each secret a
command sets (``open_line``, ``register_passport``, a new password, an idempotency key's hash of a
secret), a check for each secret presented against a stored hash the verifier does not already
know.  So the batch is first decided **dry** (:class:`DryRun`): nothing is derived — a new hash
is a placeholder, a presented secret is assumed right — and every derivation asked for is
submitted to the pool (:meth:`DerivationPool.prepare`).  Then the batch is decided for real,
exactly as one command at a time, by credentials that take each result from the pool as it
comes (:class:`Prepared`), overlapping the remaining derivations with deciding.  Whatever the
dry run did not foresee (a decision that went another way after a wrong password) is derived
there and then, as without a pool: the outcomes never depend on the pool, only the time does.
"""

from __future__ import annotations

import os
from collections import defaultdict, deque
from concurrent.futures import Future, ThreadPoolExecutor

from matome.credentials import Hasher

__all__ = ["DerivationPool", "DryRun", "Prepared"]

_PLACEHOLDER = "\0dry:"


class DryRun:
    """Credentials for deciding a batch dry: they derive nothing and note what would be."""

    def __init__(self, hasher: Hasher) -> None:
        self._hasher = hasher
        self.hashes: list[str] = []
        self.checks: list[tuple[str, str]] = []
        self._made: dict[str, str] = {}

    def hash(self, secret: str) -> str:
        stored = f"{_PLACEHOLDER}{len(self.hashes)}"
        self.hashes.append(secret)
        self._made[stored] = secret
        return stored

    def verify(self, secret: str, stored: str) -> bool:
        if stored in self._made:  # a hash this batch makes: no derivation to check it
            return self._made[stored] == secret
        if not self._hasher.knows(secret, stored):
            self.checks.append((secret, stored))
        # Most secrets presented are right; a wrong one only makes the dry run foresee less.
        return True

    def needs_rehash(self, stored: str) -> bool:
        return stored not in self._made and self._hasher.needs_rehash(stored)


class Prepared:
    """Credentials for deciding a batch for real, with the derivations it was foreseen to
    need already running on the pool."""

    def __init__(
        self,
        hasher: Hasher,
        hashes: dict[str, deque[Future[str]]],
        checks: dict[tuple[str, str], Future[bool]],
    ) -> None:
        self._hasher = hasher
        self._hashes = hashes
        self._checks = checks

    def hash(self, secret: str) -> str:
        # Each foreseen hash is used once: two commands setting the same secret get two salts.
        waiting = self._hashes.get(secret)
        if waiting:
            return waiting.popleft().result()
        return self._hasher.hash(secret)

    def verify(self, secret: str, stored: str) -> bool:
        future = self._checks.get((secret, stored))
        if future is not None:
            # The pool's Hasher.verify remembered a match, as a serial check would have.
            return future.result()
        return self._hasher.verify(secret, stored)

    def needs_rehash(self, stored: str) -> bool:
        return self._hasher.needs_rehash(stored)

    def close(self) -> None:
        """Wait for what the batch did not use (a hash is never left deriving unobserved)."""
        for waiting in self._hashes.values():
            for future in waiting:
                future.result()
        for check in self._checks.values():
            check.result()


class DerivationPool:
    """A thread pool of ``workers`` (default: the cores) deriving for one hasher."""

    def __init__(self, hasher: Hasher, workers: int | None = None) -> None:
        self.hasher = hasher
        self.workers = workers or os.cpu_count() or 1
        self._executor = ThreadPoolExecutor(self.workers, thread_name_prefix="matome-kdf")

    def prepare(self, dry: DryRun) -> Prepared:
        """Submit every derivation ``dry`` noted; the credentials that take their results."""
        hashes: dict[str, deque[Future[str]]] = defaultdict(deque)
        for secret in dry.hashes:
            hashes[secret].append(self._executor.submit(self.hasher.hash, secret))
        checks: dict[tuple[str, str], Future[bool]] = {}
        for secret, stored in dry.checks:
            if (secret, stored) not in checks:
                checks[secret, stored] = self._executor.submit(self.hasher.verify, secret, stored)
        return Prepared(self.hasher, dict(hashes), checks)

    def close(self) -> None:
        """Stop the workers (after what they are deriving)."""
        self._executor.shutdown(wait=True)
