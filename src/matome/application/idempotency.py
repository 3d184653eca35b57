"""Idempotency keys (docs/contract.md, "Command log"): a command applied once per key.

The same key with the same body is applied once and answers its first result again; the same
key with another body is refused (``idempotency_conflict``) — after the credentials it carries
are checked, so a key gives no free password guesses (rules §10).  A key is bound by an
accepted command, and by a refusal that counted a wrong password, so that re-running a log
counts nothing twice.  It is recorded as a ``KeyBound`` event holding a digest of the
command's body with its secrets left out, salted hashes of the secrets (so a retry must present
the same ones), and the first result or refusal.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

import attrs

from matome import commands as cmd
from matome.aggregates.decision import Credentials, Decision
from matome.aggregates.ledger import KeyRecord, key_id
from matome.errors import ERROR_CLASSES, IdempotencyConflict, MatomeError
from matome.events import ledger as ledger_ev
from matome.values import Erased
from matome.wire import converter, dumps

__all__ = ["answer_again", "bind_key", "bind_refusal", "fingerprint"]


def fingerprint(command: cmd.Command[Any]) -> str:
    """SHA-256 of the command's canonical body: without its key, with each secret reduced to
    "given or not", and times as UTC instants (the same instant written with another offset
    is the same body)."""
    body: dict[str, Any] = {"command": command.NAME}
    for field in attrs.fields(type(command)):
        value = getattr(command, field.name)
        if field.name == "key":
            continue
        if field.metadata.get("since", 1) > 1 and value == field.default:
            # A field contract 2 added, at its default: the body a contract-1 key was bound
            # to is the same body.
            continue
        if field.name in command.SECRETS:
            body[field.name] = value is not None
        elif isinstance(value, datetime):
            body[field.name] = value.astimezone(UTC).isoformat()
        else:
            body[field.name] = converter.unstructure(value)
    return hashlib.sha256(dumps(body).encode()).hexdigest()


def _secrets(command: cmd.Command[Any]) -> dict[str, str]:
    return {
        name: getattr(command, name).reveal()
        for name in command.SECRETS
        if getattr(command, name) is not None
    }


def answer_again(
    record: KeyRecord, command: cmd.Command[Any], credentials: Credentials
) -> cmd.Result | MatomeError:
    """What the key answers ``command``: its first result, or the refusal it was bound by
    (to raise again), when ``command`` is the body it was bound to; else the conflict."""
    secrets = _secrets(command)
    if isinstance(record.secrets, Erased):
        # The hashes of the secrets it was bound with went with those secrets (a new
        # password, a reset, an erasure): there is nothing left to compare them with.  The
        # body decides.  Deciding the retry again instead would check the old password
        # against the new one — a wrong password, counted, that could lock the ID out for
        # a retry of a command that already succeeded.
        same_secrets = True
    else:
        kept: Mapping[str, str] = record.secrets
        same_secrets = set(secrets) == set(kept) and all(
            credentials.verify(v, kept[n]) for n, v in secrets.items()
        )
    same = record.command == command.NAME and record.digest == fingerprint(command) and same_secrets
    if not same:
        return IdempotencyConflict(
            f"key {command.key!r} was already used by a {record.command} with a different body"
        )
    if record.error is not None:
        return ERROR_CLASSES[record.error["code"]](record.error["message"])
    result: cmd.Result = converter.structure(dict(record.result), type(command).RESULT)
    return result


def _secret_hashes(command: cmd.Command[Any], d: Decision) -> dict[str, str]:
    """The salted hashes of the command's secrets: those the decision already computed or
    checked (the owner's own stored hash of a correct secret), else a new one."""
    return {
        name: d.secret_hashes.get(name) or d.credentials.hash(value)
        for name, value in _secrets(command).items()
    }


def bind_key(command: cmd.Command[Any], result: cmd.Result, d: Decision) -> None:
    """Bind the command's key to its body and first result (emitted with its events)."""
    if command.key is None:
        return
    d.create(
        key_id(command.key),
        ledger_ev.KeyBound,
        key=command.key,
        command=command.NAME,
        digest=fingerprint(command),
        secrets=_secret_hashes(command, d),
        result=result.to_json(),
        owner=None if d.authenticated is None else str(d.authenticated),
    )


def bind_refusal(command: cmd.Command[Any], refusal: MatomeError, d: Decision) -> None:
    """Bind the command's key to the refusal that counted a wrong password, with the security
    events: the same body run again answers the same refusal and counts nothing (§10)."""
    if command.key is None:
        return
    d.create_security(
        key_id(command.key),
        ledger_ev.KeyBound,
        key=command.key,
        command=command.NAME,
        digest=fingerprint(command),
        secrets=_secret_hashes(command, d),
        result={},
        error=refusal.to_json(),
        owner=None if d.authenticated is None else str(d.authenticated),
    )
