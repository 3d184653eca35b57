"""Secrets are hashed before they reach an event, and never logged or exported (rules §10).

Hashes are **Argon2id** PHC strings (``$argon2id$v=19$m=…,t=…,p=…$<salt>$<hash>``), made with
argon2-cffi.  The production parameters are OWASP's first recommended setting, m = 19 MiB,
t = 2, p = 1: memory-hard, about 60–100 ms per hash on this project's 2-core machines.  We keep
p = 1 on purpose: the parallelism that pays is *across* secrets — the derivations a batch of
commands needs run side by side on a pool sized to the cores (:mod:`matome.application._derive`)
— and lanes inside one hash would only compete with that pool for the same cores.

Older hashes still verify: matome's scrypt hashes (``scrypt$<log2 N>$<r>$<p>$<salt>$<hash>``,
the production scheme until Argon2id, and the cheap :data:`TESTING` one) and matome 0.1's
``pbkdf2_sha256$<iterations>$<salt>$<hash>``; an accepted one whose scheme is older than the
hasher's (:meth:`Hasher.needs_rehash`) is hashed again by the command that accepted it.

A system migrating to matome brings its users' hashes, not their secrets: :func:`parse_phc`
admits PHC strings of argon2id, scrypt and pbkdf2-sha256 at no less than OWASP's minimum
parameters (contract 3, "Credentials at scale"), and :meth:`Hasher.verify` checks secrets
against them with hashlib and argon2-cffi.

Verifying the same correct password over and over (every purchase presents one) would cost a
full derivation each time, so a verifier remembers, in memory only, a keyed digest of the secrets
it has already verified (or just hashed) against a given stored hash: an LRU of bounded size,
under a key drawn at random per process, so that memory is worthless outside it.  An entry is
dropped when its stored hash is replaced (a new password, a reset) or its ID is locked out
(:meth:`Hasher.forget`).  A wrong password is never remembered: it costs a full derivation, and
is counted, every time.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import os
import threading
from collections import OrderedDict

import argon2
import attrs
from argon2.exceptions import InvalidHashError, VerificationError

from matome.errors import InvalidInput

__all__ = [
    "DEFAULT_ITERATIONS",
    "PRODUCTION",
    "SCRYPT_PRODUCTION",
    "TESTING",
    "Argon2id",
    "Hasher",
    "Kdf",
    "Scheme",
    "parse_phc",
]

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


@attrs.frozen
class Argon2id:
    """Argon2id's parameters: ``memory_kib`` KiB, ``time_cost`` passes, ``parallelism`` lanes."""

    memory_kib: int = 19 * 1024
    time_cost: int = 2
    parallelism: int = 1

    @property
    def memory(self) -> int:
        """Bytes one derivation needs."""
        return self.memory_kib * 1024


#: A hashing scheme the :class:`Hasher` writes new hashes with.
Scheme = Kdf | Argon2id

#: Production strength (see the module docstring).
PRODUCTION = Argon2id()
#: The production scrypt setting before Argon2id (N = 2^15, r = 8, p = 3, 32 MiB — one of
#: OWASP's equivalent minimum settings for scrypt): its hashes verify and are re-hashed.
SCRYPT_PRODUCTION = Kdf()
#: The scrypt scheme made cheap, for tests and benchmarks that say so.
TESTING = Kdf(log2_n=1, r=1, p=1)
#: The name matome 0.1 gave the production setting of ``Engine(hash_iterations=...)``: any
#: smaller number there asks for :data:`TESTING`.
DEFAULT_ITERATIONS = 200_000

# OWASP Password Storage Cheat Sheet, minimum settings (any one of each list suffices; a hash
# at or above every parameter of one of them is admitted).
#: argon2id: (memory KiB, iterations, parallelism).
ARGON2ID_MINIMUMS = ((47104, 1, 1), (19456, 2, 1), (12288, 3, 1), (9216, 4, 1), (7168, 5, 1))
#: scrypt: (log2 N, r, p).
SCRYPT_MINIMUMS = ((17, 8, 1), (16, 8, 2), (15, 8, 3), (14, 8, 5), (13, 8, 10))
#: The longest PHC string admitted (the JSON schema says the same).
MAX_PHC_LENGTH = 400
#: pbkdf2-sha256: iterations.
PBKDF2_SHA256_MINIMUM = 600_000


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _unb64_phc(text: str) -> bytes:
    """PHC's base64: standard alphabet, no padding (passlib writes ``.`` for ``+``)."""
    text = text.replace(".", "+")
    return base64.b64decode(text + "=" * (-len(text) % 4), validate=True)


def _scrypt(secret: str, salt: bytes, log2_n: int, r: int, p: int, dklen: int = 32) -> bytes:
    return hashlib.scrypt(
        secret.encode(),
        salt=salt,
        n=1 << log2_n,
        r=r,
        p=p,
        maxmem=128 * r * (1 << log2_n) * 2 + 2**20,
        dklen=dklen,
    )


def _params(text: str) -> dict[str, int]:
    out: dict[str, int] = {}
    for item in text.split(","):
        name, sep, value = item.partition("=")
        if not sep or not value.isdigit() or name in out:
            raise ValueError(f"bad parameter {item!r}")
        out[name] = int(value)
    return out


@attrs.frozen
class _Phc:
    """A parsed PHC string of one of the schemes matome verifies."""

    scheme: str
    params: dict[str, int]
    salt: bytes
    digest: bytes


def _parse(text: str) -> _Phc:
    parts = text.split("$")
    if len(parts) < 5 or parts[0] != "":
        raise ValueError("not a PHC string")
    scheme = parts[1]
    if scheme == "argon2id":
        if len(parts) != 6 or parts[2] != "v=19":
            raise ValueError("argon2id: version 19 expected")
        params = _params(parts[3])
        if set(params) != {"m", "t", "p"}:
            raise ValueError("argon2id: m, t and p expected")
        salt, digest = _unb64_phc(parts[4]), _unb64_phc(parts[5])
    elif scheme == "scrypt":
        if len(parts) != 5:
            raise ValueError("scrypt: $scrypt$ln=…,r=…,p=…$salt$hash expected")
        params = _params(parts[2])
        if set(params) != {"ln", "r", "p"}:
            raise ValueError("scrypt: ln, r and p expected")
        salt, digest = _unb64_phc(parts[3]), _unb64_phc(parts[4])
    elif scheme == "pbkdf2-sha256":
        if len(parts) != 5:
            raise ValueError("pbkdf2-sha256: $pbkdf2-sha256$i=…$salt$hash expected")
        rounds = parts[2].removeprefix("i=")
        if not rounds.isdigit():
            raise ValueError("pbkdf2-sha256: an iteration count expected")
        params = {"i": int(rounds)}
        salt, digest = _unb64_phc(parts[3]), _unb64_phc(parts[4])
    else:
        raise ValueError(f"scheme {scheme!r} is not argon2id, scrypt or pbkdf2-sha256")
    if len(salt) < 8 or len(digest) < 16:
        raise ValueError("salt of at least 8 bytes and hash of at least 16 expected")
    return _Phc(scheme, params, salt, digest)


def _strong_enough(phc: _Phc) -> bool:
    p = phc.params
    if phc.scheme == "argon2id":
        return any(
            p["m"] >= m and p["t"] >= t and p["p"] >= lanes for m, t, lanes in ARGON2ID_MINIMUMS
        )
    if phc.scheme == "scrypt":
        return p["ln"] <= 30 and any(
            p["ln"] >= ln and p["r"] >= r and p["p"] >= par for ln, r, par in SCRYPT_MINIMUMS
        )
    return p["i"] >= PBKDF2_SHA256_MINIMUM


def parse_phc(text: str) -> str:
    """``text`` if it is a PHC string of argon2id, scrypt or pbkdf2-sha256 at no less than
    OWASP's minimum parameters (contract 3, "Credentials at scale"); else ``invalid_input``."""
    if len(text) > MAX_PHC_LENGTH:
        raise InvalidInput(
            f"a secret's hash must be a PHC string of at most {MAX_PHC_LENGTH} characters"
        )
    try:
        phc = _parse(text)
    except (ValueError, binascii.Error) as e:
        raise InvalidInput(f"a secret's hash must be a PHC string: {e}") from None
    if not _strong_enough(phc):
        raise InvalidInput(
            f"a {phc.scheme} hash below OWASP's minimum parameters "
            f"({','.join(f'{k}={v}' for k, v in phc.params.items())})"
        )
    return text


def _verify_phc(secret: str, stored: str) -> bool:
    if stored.startswith("$argon2id$"):
        try:
            return argon2.PasswordHasher().verify(stored, secret)
        except (VerificationError, InvalidHashError):
            return False
    phc = _parse(stored)
    if phc.scheme == "scrypt":
        p = phc.params
        digest = _scrypt(secret, phc.salt, p["ln"], p["r"], p["p"], len(phc.digest))
    else:
        digest = hashlib.pbkdf2_hmac(
            "sha256", secret.encode(), phc.salt, phc.params["i"], len(phc.digest)
        )
    return hmac.compare_digest(digest, phc.digest)


class Hasher:
    """Hashes and verifies secrets; thread-safe (see the module docstring)."""

    def __init__(self, kdf: Scheme | int = PRODUCTION, cache_size: int = 100_000) -> None:
        if isinstance(kdf, int):  # matome 0.1's ``iterations``
            kdf = PRODUCTION if kdf >= DEFAULT_ITERATIONS else TESTING
        self.kdf: Scheme = kdf
        self._key = os.urandom(32)
        self._verified: OrderedDict[str, bytes] = OrderedDict()
        #: Keyed digests of the secrets hashed or verified right lately, whatever the stored
        #: hash: a batch presenting only such secrets likely needs no derivation at all.
        self._familiar: OrderedDict[bytes, None] = OrderedDict()
        self._cache_size = cache_size
        self._lock = threading.Lock()
        self._argon2 = (
            argon2.PasswordHasher(
                time_cost=kdf.time_cost,
                memory_cost=kdf.memory_kib,
                parallelism=kdf.parallelism,
                hash_len=32,
                salt_len=16,
                type=argon2.Type.ID,
            )
            if isinstance(kdf, Argon2id)
            else None
        )
        #: Full key derivations done (cold checks and hashes), for benchmarks.
        self.derivations = 0

    def _count(self) -> None:
        with self._lock:
            self.derivations += 1

    def _memo(self, secret: str, stored: str) -> bytes:
        return hmac.new(self._key, stored.encode() + b"\0" + secret.encode(), "sha256").digest()

    def _remember(self, stored: str, memo: bytes, secret: str) -> None:
        familiar = self._memo(secret, "")
        with self._lock:
            self._verified[stored] = memo
            self._verified.move_to_end(stored)
            while len(self._verified) > self._cache_size:
                self._verified.popitem(last=False)
            self._familiar[familiar] = None
            self._familiar.move_to_end(familiar)
            while len(self._familiar) > self._cache_size:
                self._familiar.popitem(last=False)

    def familiar(self, secret: str) -> bool:
        """Whether ``secret`` was hashed or verified right lately (against any stored hash):
        a hint only — that deciding a command presenting it likely derives nothing."""
        with self._lock:
            return self._memo(secret, "") in self._familiar

    def hash(self, secret: str) -> str:
        """A salted hash of ``secret`` in the hasher's scheme; the verifier then knows it
        without deriving again (the first purchase after a registration costs no second
        derivation)."""
        if self._argon2 is not None:
            stored = self._argon2.hash(secret)
        else:
            k = self.kdf
            if not isinstance(k, Kdf):  # pragma: no cover - Argon2id has self._argon2
                raise TypeError(k)
            salt = os.urandom(16)
            digest = _scrypt(secret, salt, k.log2_n, k.r, k.p)
            stored = f"{_SCRYPT}${k.log2_n}${k.r}${k.p}${_b64(salt)}${_b64(digest)}"
        self._count()
        self._remember(stored, self._memo(secret, stored), secret)
        return stored

    def knows(self, secret: str, stored: str) -> bool:
        """Whether ``secret`` is already known to match ``stored`` (no derivation needed)."""
        memo = self._memo(secret, stored)
        with self._lock:
            known = self._verified.get(stored)
        return known is not None and hmac.compare_digest(known, memo)

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
            self._remember(stored, memo, secret)
        return ok

    def needs_rehash(self, stored: str) -> bool:
        """Whether an accepted secret's ``stored`` hash is of an older scheme than the
        hasher's: anything but Argon2id when the hasher writes Argon2id, or Argon2id below its
        parameters.  A hasher of the cheap scrypt scheme (tests) re-hashes nothing."""
        k = self.kdf
        if not isinstance(k, Argon2id):
            return False
        if not stored.startswith("$argon2id$"):
            return True
        try:
            p = _parse(stored).params
        except (ValueError, binascii.Error):
            return True
        return p["m"] < k.memory_kib or p["t"] < k.time_cost or p["p"] < k.parallelism

    def _derive_and_compare(self, secret: str, stored: str) -> bool:
        self._count()
        try:
            if stored.startswith("$"):
                return _verify_phc(secret, stored)
            parts = stored.split("$")
            if parts[0] == _SCRYPT and len(parts) == 6:
                digest = _scrypt(
                    secret, _unb64(parts[4]), int(parts[1]), int(parts[2]), int(parts[3])
                )
                return hmac.compare_digest(digest, _unb64(parts[5]))
            if parts[0] == _PBKDF2 and len(parts) == 4:
                digest = hashlib.pbkdf2_hmac(
                    "sha256", secret.encode(), _unb64(parts[2]), int(parts[1])
                )
                return hmac.compare_digest(digest, _unb64(parts[3]))
        except (ValueError, TypeError, binascii.Error):
            return False
        return False

    def forget(self, stored: str) -> None:
        """Drop what is remembered of ``stored`` (its password changed, or its ID locked)."""
        with self._lock:
            self._verified.pop(stored, None)
