"""Secrets are hashed before they reach an event, and never logged or exported (rules §10).

Hashes are **scrypt**, memory-hard, with a random salt:
``scrypt$<log2 N>$<r>$<p>$<salt>$<hash>`` (salt and hash in URL-safe base64).  The production
parameters are N = 2^15, r = 8, p = 3: 32 MiB and about half a second per hash on a 2-core
machine — one of OWASP's equivalent minimum settings for scrypt.  Hashes written by matome 0.1
(``pbkdf2_sha256$<iterations>$<salt>$<hash>``) still verify.

Verifying the same correct password over and over (every purchase presents one) would cost a
full scrypt each time, so a verifier remembers, in memory only, a keyed digest of the secrets
it has already verified (or just hashed) against a given stored hash: an LRU of bounded size,
under a key drawn at random per process, so that memory is worthless outside it.  An entry is
dropped when its stored hash is replaced (a new password, a reset) or its ID is locked out
(:meth:`Hasher.forget`).  A wrong password is never remembered: it costs a full scrypt, and is
counted, every time.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import threading
from collections import OrderedDict

import attrs

__all__ = ["DEFAULT_ITERATIONS", "PRODUCTION", "TESTING", "Hasher", "Kdf"]

_SCRYPT = "scrypt"
_PBKDF2 = "pbkdf2_sha256"


@attrs.frozen
class Kdf:
    """scrypt's parameters: cost N = 2^``log2_n``, block size ``r``, parallelism ``p``."""

    log2_n: int = 15
    r: int = 8
    p: int = 3

    @property
    def memory(self) -> int:
        """Bytes scrypt needs: 128 × r × N."""
        return 128 * self.r * (1 << self.log2_n)


#: Production strength (see the module docstring).
PRODUCTION = Kdf()
#: The same scheme made cheap, for tests and benchmarks that say so.
TESTING = Kdf(log2_n=1, r=1, p=1)
#: The name matome 0.1 gave the production setting of ``Engine(hash_iterations=...)``: any
#: smaller number there asks for :data:`TESTING`.
DEFAULT_ITERATIONS = 200_000


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _scrypt(secret: str, salt: bytes, kdf: Kdf) -> bytes:
    return hashlib.scrypt(
        secret.encode(),
        salt=salt,
        n=1 << kdf.log2_n,
        r=kdf.r,
        p=kdf.p,
        maxmem=kdf.memory * 2 + 2**20,
        dklen=32,
    )


class Hasher:
    """Hashes and verifies secrets; thread-safe (see the module docstring)."""

    def __init__(self, kdf: Kdf | int = PRODUCTION, cache_size: int = 100_000) -> None:
        if isinstance(kdf, int):  # matome 0.1's ``iterations``
            kdf = PRODUCTION if kdf >= DEFAULT_ITERATIONS else TESTING
        self.kdf = kdf
        self._key = os.urandom(32)
        self._verified: OrderedDict[str, bytes] = OrderedDict()
        self._cache_size = cache_size
        self._lock = threading.Lock()
        #: Full key derivations done (cold checks and hashes), for benchmarks.
        self.derivations = 0

    def _memo(self, secret: str, stored: str) -> bytes:
        return hmac.new(self._key, stored.encode() + b"\0" + secret.encode(), "sha256").digest()

    def _remember(self, stored: str, memo: bytes) -> None:
        with self._lock:
            self._verified[stored] = memo
            self._verified.move_to_end(stored)
            while len(self._verified) > self._cache_size:
                self._verified.popitem(last=False)

    def hash(self, secret: str) -> str:
        """A salted scrypt hash of ``secret``; the verifier then knows it without deriving
        again (the first purchase after a registration costs no second derivation)."""
        salt = os.urandom(16)
        digest = _scrypt(secret, salt, self.kdf)
        self.derivations += 1
        k = self.kdf
        stored = f"{_SCRYPT}${k.log2_n}${k.r}${k.p}${_b64(salt)}${_b64(digest)}"
        self._remember(stored, self._memo(secret, stored))
        return stored

    def verify(self, secret: str, stored: str) -> bool:
        """Whether ``secret`` matches ``stored`` (constant-time comparison)."""
        memo = self._memo(secret, stored)
        with self._lock:
            known = self._verified.get(stored)
            if known is not None:
                self._verified.move_to_end(stored)
        if known is not None and hmac.compare_digest(known, memo):
            return True
        ok = self._derive_and_compare(secret, stored)
        if ok:
            self._remember(stored, memo)
        return ok

    def _derive_and_compare(self, secret: str, stored: str) -> bool:
        parts = stored.split("$")
        self.derivations += 1
        try:
            if parts[0] == _SCRYPT and len(parts) == 6:
                kdf = Kdf(int(parts[1]), int(parts[2]), int(parts[3]))
                digest = _scrypt(secret, _unb64(parts[4]), kdf)
                return hmac.compare_digest(digest, _unb64(parts[5]))
            if parts[0] == _PBKDF2 and len(parts) == 4:
                digest = hashlib.pbkdf2_hmac(
                    "sha256", secret.encode(), _unb64(parts[2]), int(parts[1])
                )
                return hmac.compare_digest(digest, _unb64(parts[3]))
        except (ValueError, TypeError):
            return False
        return False

    def forget(self, stored: str) -> None:
        """Drop what is remembered of ``stored`` (its password changed, or its ID locked)."""
        with self._lock:
            self._verified.pop(stored, None)
