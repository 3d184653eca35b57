"""Seals: signed checkpoints of the global chain, kept outside the store.

Re-exported by :mod:`matome.verify`, whose :func:`~matome.verify.verify_store` checks a log
against one.
"""

from __future__ import annotations

import base64
import hashlib
import json
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from matome.documents import SealCheck, Verification
from matome.errors import InvalidInput
from matome.wire import dumps

#: The ``format`` member of every seal this version writes.
SEAL_FORMAT = "matome-seal/1"
_SEAL_MEMBERS = ("format", "position", "events", "head", "recorded_at", "key", "signature")


def new_seal_key() -> tuple[bytes, bytes]:
    """A new Ed25519 key pair for seals: the private key (PEM, PKCS#8) and the public key
    (PEM, SubjectPublicKeyInfo)."""
    key = Ed25519PrivateKey.generate()
    private = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    public = key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return private, public


def private_key_from_pem(data: bytes) -> Ed25519PrivateKey:
    """The seal key from its PEM text (``matome keygen --seal``); ``invalid_input`` if it is
    not an Ed25519 private key."""
    try:
        key = serialization.load_pem_private_key(data, password=None)
    except (ValueError, TypeError) as e:
        raise InvalidInput(f"the seal key is not a PEM private key: {e}") from None
    if not isinstance(key, Ed25519PrivateKey):
        raise InvalidInput("the seal key must be an Ed25519 key (matome keygen --seal)")
    return key


def public_key_from_pem(data: bytes) -> Ed25519PublicKey:
    """The trusted public key of seals from its PEM text; ``invalid_input`` if it is not an
    Ed25519 public key."""
    try:
        key = serialization.load_pem_public_key(data)
    except (ValueError, TypeError) as e:
        raise InvalidInput(f"the seal public key is not a PEM public key: {e}") from None
    if not isinstance(key, Ed25519PublicKey):
        raise InvalidInput("the seal public key must be an Ed25519 key (matome keygen --seal)")
    return key


def _fingerprint(key: Ed25519PublicKey) -> str:
    raw = key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return "sha256:" + hashlib.sha256(raw).hexdigest()


def _signed_text(seal: Mapping[str, Any]) -> bytes:
    return dumps({k: v for k, v in seal.items() if k != "signature"}).encode()


def make_seal(verification: Verification, key: Ed25519PrivateKey) -> dict[str, Any]:
    """The signed checkpoint of a verified store: its last log position, the number of
    events up to it, the global head there, the time it was recorded and the signing key's
    fingerprint, signed with Ed25519 over the canonical JSON of all of them."""
    seal: dict[str, Any] = {
        "format": SEAL_FORMAT,
        "position": verification.position,
        "events": verification.events,
        "head": verification.head,
        "recorded_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "key": _fingerprint(key.public_key()),
    }
    seal["signature"] = base64.b64encode(key.sign(_signed_text(seal))).decode()
    return seal


def read_seal(text: str) -> dict[str, Any]:
    """A seal from its JSON text, its shape checked (``invalid_input`` if malformed); its
    signature is checked by :func:`verify_store` against the trusted key."""
    try:
        seal = json.loads(text)
    except ValueError as e:
        raise InvalidInput(f"the seal is not JSON: {e}") from None
    if not isinstance(seal, dict) or not set(_SEAL_MEMBERS) <= set(seal):
        raise InvalidInput(f"the seal must be a JSON object with {', '.join(_SEAL_MEMBERS)}")
    if seal["format"] != SEAL_FORMAT:
        raise InvalidInput(
            f"unknown seal format {seal['format']!r} (this matome reads {SEAL_FORMAT})"
        )
    for name in ("position", "events"):
        if type(seal[name]) is not int or seal[name] < 0:
            raise InvalidInput(f"the seal's {name} must be a whole number")
    for name in ("head", "recorded_at", "key", "signature"):
        if not isinstance(seal[name], str):
            raise InvalidInput(f"the seal's {name} must be a string")
    return seal


def check_seal(seal: Mapping[str, Any], key: Ed25519PublicKey) -> str | None:
    """Why ``seal`` was not signed by ``key`` (``None``: it was)."""
    if seal["key"] != _fingerprint(key):
        return (
            f"the seal was signed by another key ({seal['key']}), not the trusted one "
            f"({_fingerprint(key)})"
        )
    try:
        key.verify(base64.b64decode(seal["signature"], validate=True), _signed_text(seal))
    except (InvalidSignature, ValueError):
        return "the seal's signature does not verify with the trusted key (forged or altered)"
    return None


def _check_against(
    seal: Mapping[str, Any],
    key: Ed25519PublicKey | None,
    position: int,
    head: str | None,
    events: int,
) -> SealCheck:
    sealed_at, want = int(seal["position"]), str(seal["head"])

    def result(message: str | None) -> SealCheck:
        return SealCheck(
            position=sealed_at,
            head=want,
            recorded_at=str(seal["recorded_at"]),
            ok=message is None,
            message=message or f"the store extends the seal of log position {sealed_at}",
        )

    if key is None:  # checked by verify_store before reading the log
        raise InvalidInput("verify --against needs the seal's public key (--public-key)")
    forged = check_seal(seal, key)
    if forged is not None:
        return result(forged)
    if sealed_at == 0:
        return result(None)
    if position < sealed_at:
        return result(
            f"the log ends at position {position}, before the sealed position {sealed_at}: "
            "it was cut short"
        )
    if head is None:
        return result(f"the sealed log position {sealed_at} holds no event any more (deleted)")
    if events != int(seal["events"]):
        return result(
            f"the store holds {events} events up to position {sealed_at}, the seal "
            f"{seal['events']}: events were deleted or inserted before it"
        )
    if head != want:
        return result(
            f"at the sealed position {sealed_at} the global head is {head}, the seal's {want}: "
            "the history before it was changed (or the seal is of another store)"
        )
    return result(None)
