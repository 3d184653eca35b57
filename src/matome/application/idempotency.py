"""Idempotency keys (docs/contract.md, "Command log"): a command applied once per key.

The same key with the same body is applied once and answers its first result again; the same
key with another body is refused (``idempotency_conflict``).  A key is bound by an accepted
command, and by a refusal that counted a wrong password, so that re-running a log counts
nothing twice.  It is recorded as a ``KeyBound`` event holding a digest of the command's body
with its secrets and personal fields left out, salted hashes of the secrets (so a retry must
present the same ones), a salted digest of the personal fields kept apart under the Passport
ID (erased with its personal data), and the first result or refusal.

Contract 3, "Idempotency keys are no password oracle": under a used key the command's
credential is checked **first**, against the ID's or line's current one (the service does it
with :data:`matome.application.handlers.CREDENTIALS`), and a wrong password is counted.  Only
then does the key answer: this module decides what, from the record and the body.

**Keys bound before contract 3** (``KeyBound`` version 3 or older) hold an unsalted digest of
the whole body, personal fields included.  They still answer the same body, compared by that
digest, while the Passport ID's personal data exist; once they are erased such a key matches
no body that carries personal fields (``idempotency_conflict``, whatever e-mail, name or phone
it carries).  For a command without personal fields the two digests are the same.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets as random_secrets
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

import attrs

from matome import commands as cmd
from matome.aggregates.decision import Credentials, Decision
from matome.aggregates.ledger import KeyRecord, key_id
from matome.aggregates.passport import passport_id_stream
from matome.errors import ERROR_CLASSES, IdempotencyConflict, MatomeError
from matome.events import ledger as ledger_ev
from matome.values import Erased
from matome.wire import converter, dumps

__all__ = [
    "answer_again",
    "bind_key",
    "bind_refusal",
    "conflict",
    "fingerprint",
    "legacy_fingerprint",
    "refused_again",
]


_Field = tuple[str, bool, Any, bool, bool]
_FIELDS: dict[type[Any], tuple[_Field, ...]] = {}


def _fields_of(kind: type[cmd.Command[Any]]) -> tuple[_Field, ...]:
    """Per command class, once: each field but the key, with whether contract 2 added it,
    its default, and whether it is a secret or personal."""
    found = _FIELDS.get(kind)
    if found is None:
        found = _FIELDS[kind] = _fields(kind)
    return found


def _fields(kind: type[cmd.Command[Any]]) -> tuple[_Field, ...]:
    return tuple(
        (
            f.name,
            f.metadata.get("since", 1) > 1,
            f.default,
            f.name in kind.SECRETS,
            f.name in kind.PERSONAL,
        )
        for f in attrs.fields(kind)
        if f.name != "key"
    )


def _canonical(command: cmd.Command[Any], *, personal: bool) -> dict[str, Any]:
    body: dict[str, Any] = {"command": command.NAME}
    for name, added, default, secret, is_personal in _fields_of(type(command)):
        value = getattr(command, name)
        if added and value == default:
            # A field contract 2 added, at its default: the body a contract-1 key was bound
            # to is the same body.
            continue
        if secret or (not personal and is_personal):
            body[name] = value is not None
        elif isinstance(value, datetime):
            body[name] = value.astimezone(UTC).isoformat()
        else:
            body[name] = converter.unstructure(value)
    return body


def fingerprint(command: cmd.Command[Any]) -> str:
    """SHA-256 of the command's canonical body: without its key, with each secret and each
    personal field reduced to "given or not", and times as UTC instants (the same instant
    written with another offset is the same body).  It confirms no personal data."""
    return hashlib.sha256(dumps(_canonical(command, personal=False)).encode()).hexdigest()


def legacy_fingerprint(command: cmd.Command[Any]) -> str:
    """The digest of keys bound before contract 3: personal fields included."""
    return hashlib.sha256(dumps(_canonical(command, personal=True)).encode()).hexdigest()


def _personal_values(command: cmd.Command[Any]) -> dict[str, Any]:
    return {
        name: converter.unstructure(getattr(command, name))
        for name in command.PERSONAL
        if getattr(command, name) is not None
    }


def _personal_digest(values: Mapping[str, Any], salt: str) -> str:
    return hashlib.sha256(f"{salt}{dumps(values)}".encode()).hexdigest()


def _secrets(command: cmd.Command[Any]) -> dict[str, str]:
    return {
        name: getattr(command, name).reveal()
        for name in command.SECRETS
        if getattr(command, name) is not None
    }


def _same_body(
    record: KeyRecord,
    command: cmd.Command[Any],
    credentials: Credentials,
    *,
    current: str | None,
    personal_erased: bool,
) -> bool:
    """Whether ``command`` is the body ``record`` was bound to, secrets included.

    The command's credential is the same as the bound one when the key still holds its hash
    and that hash is the holder's ``current`` one (or matches it): a password changed since
    erased the key's hash of the old one, so no body presenting a password matches any more.
    """
    if record.command != command.NAME:
        return False
    if record.personal_in_digest:
        if personal_erased and _personal_values(command):
            return False  # the digest could only compare erased personal data: nothing matches
        if record.digest != legacy_fingerprint(command):
            return False
    elif record.digest != fingerprint(command):
        return False
    elif isinstance(record.personal_digest, str) and not personal_erased:
        salt, digest = record.personal_digest.split("$", 1)
        values = _personal_values(command)
        if not hmac.compare_digest(_personal_digest(values, salt), digest):
            return False
    # Erased (the ID's personal data were): nothing compares them, so every e-mail, name and
    # phone is answered alike.  None: the body carried none, and "given or not" is digested.
    presented = _secrets(command)
    credential = command.CREDENTIAL
    if isinstance(record.secrets, Erased):
        # The hashes went with the secret they were bound with (a new password, a reset).
        return credential is None or credential not in presented
    kept: Mapping[str, str] = record.secrets
    if set(presented) != set(kept):
        return False
    for name, value in presented.items():
        if name == credential and current is not None and kept[name] == current:
            continue  # the holder's own hash, checked already: no second derivation
        if not credentials.verify(value, kept[name]):
            return False
    return True


def conflict(command: cmd.Command[Any], record: KeyRecord) -> IdempotencyConflict:
    return IdempotencyConflict(
        f"key {command.key!r} was already used by a {record.command} with a different body"
    )


def _first_result(record: KeyRecord, command: cmd.Command[Any]) -> cmd.Result | MatomeError:
    if record.error is not None:
        return ERROR_CLASSES[record.error["code"]](record.error["message"])
    result: cmd.Result = converter.structure(dict(record.result), type(command).RESULT)
    return result


def answer_again(
    record: KeyRecord,
    command: cmd.Command[Any],
    credentials: Credentials,
    *,
    current: str | None = None,
    personal_erased: bool = False,
) -> cmd.Result | MatomeError | None:
    """What the key answers ``command`` whose credential (if any) was checked and opens its
    holder (``current``: the holder's stored hash of it): the first result or bound refusal
    when ``command`` is the body bound, else ``None`` (the command is refused as
    ``idempotency_conflict``, or by whatever ranks first).

    A key bound to a refusal of a credential that now opens the ID answers no more: that
    refusal no longer holds (contract 3).
    """
    if current is not None and record.error is not None:
        return None
    if not _same_body(
        record, command, credentials, current=current, personal_erased=personal_erased
    ):
        return None
    return _first_result(record, command)


def refused_again(
    record: KeyRecord,
    command: cmd.Command[Any],
    credentials: Credentials,
    *,
    personal_erased: bool = False,
) -> MatomeError | None:
    """The refusal a key was bound by, when ``command`` — whose password was just found
    wrong — is the very body that counted it: answered again, not counted twice (contract 2
    stands).  ``None`` otherwise: the wrong password is counted."""
    if record.error is None or record.error.get("code") != "wrong_password":
        return None
    if not _same_body(record, command, credentials, current=None, personal_erased=personal_erased):
        return None
    return ERROR_CLASSES[record.error["code"]](record.error["message"])


def _secret_hashes(command: cmd.Command[Any], d: Decision) -> dict[str, str]:
    """The salted hashes of the command's secrets: those the decision already computed or
    checked (the owner's own stored hash of a correct secret), else a new one."""
    return {
        name: d.secret_hashes.get(name) or d.credentials.hash(value)
        for name, value in _secrets(command).items()
    }


def _record_fields(command: cmd.Command[Any], d: Decision) -> dict[str, Any]:
    values = _personal_values(command)
    personal: dict[str, Any] = {}
    if values:
        salt = random_secrets.token_hex(16)
        personal = {
            "personal_digest": f"{salt}${_personal_digest(values, salt)}",
            # Kept apart under the Passport ID: its erasure deletes the digest.
            "subject": str(passport_id_stream(command.passport_id)),  # type: ignore[attr-defined]  # PERSONAL commands name a passport_id
        }
    return {
        "key": command.key,
        "command": command.NAME,
        "digest": fingerprint(command),
        "secrets": _secret_hashes(command, d),
        "owner": None if d.authenticated is None else str(d.authenticated),
        **personal,
    }


def bind_key(command: cmd.Command[Any], result: cmd.Result, d: Decision) -> None:
    """Bind the command's key to its body and first result (emitted with its events)."""
    if command.key is None:
        return
    d.create(
        key_id(command.key),
        ledger_ev.KeyBound,
        result=result.to_json(),
        **_record_fields(command, d),
    )


def bind_refusal(command: cmd.Command[Any], refusal: MatomeError, d: Decision) -> None:
    """Bind the command's key to the refusal that counted a wrong password, with the security
    events: the same body run again answers the same refusal and counts nothing (§10)."""
    if command.key is None:
        return
    d.create_security(
        key_id(command.key),
        ledger_ev.KeyBound,
        result={},
        error=refusal.to_json(),
        **_record_fields(command, d),
    )
