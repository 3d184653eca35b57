"""Secrets are hashed before they reach an event, and never logged or exported (DOMAIN.md §10).

Hashes are PBKDF2-HMAC-SHA256 with a random salt: ``pbkdf2_sha256$<iterations>$<salt>$<hash>``
(salt and hash in URL-safe base64).  Verifying the same correct password over and over (every
purchase presents one) would cost a full PBKDF2 each time, so a verifier remembers, in memory
only, a keyed digest of passwords it has already verified against a given hash.  The key is
random per process, so that memory is worthless outside it.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import threading

__all__ = ["DEFAULT_ITERATIONS", "Hasher"]

#: Production strength.  Tests pass a lower number to stay fast.
DEFAULT_ITERATIONS = 200_000
_SCHEME = "pbkdf2_sha256"


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


class Hasher:
    """Hashes and verifies secrets; thread-safe."""

    def __init__(self, iterations: int = DEFAULT_ITERATIONS, cache_size: int = 100_000) -> None:
        if iterations < 1:
            raise ValueError("iterations must be positive")
        self.iterations = iterations
        self._key = os.urandom(32)
        self._verified: dict[str, bytes] = {}
        self._cache_size = cache_size
        self._lock = threading.Lock()

    def hash(self, secret: str) -> str:
        salt = os.urandom(16)
        digest = hashlib.pbkdf2_hmac("sha256", secret.encode(), salt, self.iterations)
        return f"{_SCHEME}${self.iterations}${_b64(salt)}${_b64(digest)}"

    def verify(self, secret: str, stored: str) -> bool:
        """Whether ``secret`` matches ``stored`` (constant-time comparison)."""
        memo = hmac.new(self._key, stored.encode() + b"\0" + secret.encode(), "sha256").digest()
        with self._lock:
            known = self._verified.get(stored)
        if known is not None and hmac.compare_digest(known, memo):
            return True
        try:
            scheme, iterations, salt, expected = stored.split("$")
        except ValueError:
            return False
        if scheme != _SCHEME:
            return False
        digest = hashlib.pbkdf2_hmac("sha256", secret.encode(), _unb64(salt), int(iterations))
        ok = hmac.compare_digest(digest, _unb64(expected))
        if ok:
            with self._lock:
                if len(self._verified) >= self._cache_size:
                    self._verified.clear()
                self._verified[stored] = memo
        return ok
