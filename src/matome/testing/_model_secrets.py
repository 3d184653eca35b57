"""The reference model's own reading of a secret's hash brought by a migration (contract 3,
"Credentials at scale"): a PHC string of argon2id, scrypt or pbkdf2-sha256, checked with
argon2-cffi and hashlib directly — written apart from :mod:`matome.credentials`."""

from __future__ import annotations

import base64
import functools
import hashlib
import hmac

import argon2


@functools.lru_cache(maxsize=4096)
def _matches(phc: str, clear: str) -> bool:
    if phc.startswith("$argon2id$"):
        try:
            return argon2.PasswordHasher().verify(phc, clear)
        except argon2.exceptions.VerificationError:
            return False
    _, scheme, params, salt_text, digest_text = phc.split("$")

    def unb64(text: str) -> bytes:
        text = text.replace(".", "+")
        return base64.b64decode(text + "=" * (-len(text) % 4))

    salt, digest = unb64(salt_text), unb64(digest_text)
    if scheme == "scrypt":
        p = dict(kv.split("=") for kv in params.split(","))
        n, r, lanes = 2 ** int(p["ln"]), int(p["r"]), int(p["p"])
        derived = hashlib.scrypt(
            clear.encode(),
            salt=salt,
            n=n,
            r=r,
            p=lanes,
            maxmem=256 * r * n + 2**20,
            dklen=len(digest),
        )
    else:
        rounds = int(params.removeprefix("i="))
        derived = hashlib.pbkdf2_hmac("sha256", clear.encode(), salt, rounds, len(digest))
    return hmac.compare_digest(derived, digest)


class HashedSecret:
    """A line's access key or an ID's password known only by its hash: equal to the clear
    secrets that match it (so the model's ``==`` between a presented secret and the one it
    keeps reads the same for both)."""

    def __init__(self, phc: str) -> None:
        self.phc = phc

    def __eq__(self, other: object) -> bool:
        if isinstance(other, HashedSecret):
            return other.phc == self.phc
        return isinstance(other, str) and _matches(self.phc, other)

    def __ne__(self, other: object) -> bool:
        return not self == other

    def __hash__(self) -> int:
        return hash(self.phc)

    def __repr__(self) -> str:
        return "HashedSecret(…)"


def kept(clear: str | None, phc: str | None) -> str | HashedSecret:
    """The secret the model keeps: the clear one given, else the hash given instead."""
    if clear is not None:
        return clear
    if phc is None:
        raise ValueError("a secret or its hash")  # the command classes refuse this first
    return HashedSecret(phc)
