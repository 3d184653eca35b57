"""Crypto-shredding: personal values under a data key per subject, wrapped by a master key.

Every personal value (the fields marked ``events.base.personal``) is stored encrypted with
AES-GCM under a data key of its *subject* — the Passport ID's stream for e-mail and applicant,
``secret:<owner>`` for the hashes an idempotency key keeps of a secret.  The data keys are
stored in the keys table, each wrapped (AES-GCM) by the **master key**, which is never stored
in the store: its files, WAL and backups alone yield no key.  Destroying a subject's key row
(an erasure, a replaced secret) makes every copy of its values unreadable, wherever a copy
survives; a replaced e-mail rotates its subject's key (:meth:`Keyring.plan`), so the old
value's key goes with it at once.

The master key comes from, in order: ``Engine.open(master_key=...)``, ``MATOME_MASTER_KEY``
(base64), ``MATOME_MASTER_KEY_FILE`` (a file holding it; never created), and otherwise a
default file created on first need — beside an SQLite store (``<store>.master-key``, mode
0600), in ``$XDG_CONFIG_HOME/matome/master.key`` for PostgreSQL, and a key of the process
for the in-memory store.  Production keeps it apart from the store (docs/reliability.md).

Stored forms (all text, so the tables' columns are unchanged):

* a wrapped key: ``w1:`` + base64(nonce ‖ AES-GCM(master, key, aad="matome-key:" + subject));
* a personal value: ``k1:`` + base64(nonce ‖ AES-GCM(data key, salt ‖ value, aad=ref)) — the
  salt of the event's digest travels inside the ciphertext, so once the key is gone a leftover
  copy of the row cannot confirm a guessed value against the event's digest either.

Rows of earlier versions (clear, or under the store-wide cipher, salt in its own column) keep
loading; their erasure deletes them.
"""

from __future__ import annotations

import base64
import contextlib
import os
import secrets
import threading
from collections.abc import Iterable, Mapping, Sequence

import attrs
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from matome.errors import InvalidInput, StoreUnavailable

__all__ = [
    "KEYS_TABLE",
    "MASTER_FILE_SUFFIX",
    "KeyPlan",
    "Keyring",
    "PersonalDataLocked",
    "master_env",
]

#: The table of wrapped data keys: one row per subject.
KEYS_TABLE = "matome_keys"
#: The default master-key file of an SQLite store is the store's path with this suffix.
MASTER_FILE_SUFFIX = ".master-key"
_WRAPPED = "w1:"
_SEALED = "k1:"
_NONCE = 12
#: Length of the digest salt (``secrets.token_hex(16)``) at the head of a sealed value.
SALT_LENGTH = 32


class PersonalDataLocked(StoreUnavailable):
    """Personal data cannot be read or written: no master key, or not the one its keys were
    wrapped with.  Bills and everything else that holds no personal data still work."""


def master_env(key: str | None) -> dict[str, str]:
    """Settings naming the master key: ``key`` (base64 of 32 bytes), else
    ``MATOME_MASTER_KEY``, else ``MATOME_MASTER_KEY_FILE``; none of them: the default file
    (see the module)."""
    key = key or os.environ.get("MATOME_MASTER_KEY")
    if key:
        _decode_master(key, "the master key")
        return {"MASTER_KEY": key}
    path = os.environ.get("MATOME_MASTER_KEY_FILE")
    if path:
        return {"MASTER_KEY_FILE": path}
    return {}


def _decode_master(text: str, what: str) -> bytes:
    try:
        raw = base64.b64decode(text.strip(), validate=True)
    except ValueError:
        raise InvalidInput(f"{what} must be base64 (matome keygen --master makes one)") from None
    if len(raw) != 32:
        raise InvalidInput(f"{what} must be 32 bytes, not {len(raw)}")
    return raw


def default_master_file(kind: str, settings: Mapping[str, str]) -> str | None:
    """Where the master key of a store with no key configured is kept (``None``: memory)."""
    if kind == "sqlite":
        path = settings.get("SQLITE_DBNAME", "")
        if not path or ":memory:" in path or "mode=memory" in path:
            return None
        return os.path.realpath(path) + MASTER_FILE_SUFFIX
    if kind == "postgres":
        config = os.environ.get("XDG_CONFIG_HOME") or os.path.join(
            os.path.expanduser("~"), ".config"
        )
        return os.path.join(config, "matome", "master.key")
    return None


@attrs.frozen
class KeyPlan:
    """What a write does to the keys and personal tables, once the keys are known."""

    #: Subjects whose key row is deleted (rotated keys; the new row is in ``insert_keys``).
    delete_keys: tuple[str, ...]
    insert_keys: tuple[tuple[str, str], ...]
    #: (ref, sealed data): surviving values re-sealed under a rotated key.
    update_rows: tuple[tuple[str, str], ...]
    #: (ref, subject, sealed data, salt column): the new values.
    insert_rows: tuple[tuple[str, str, str, str], ...]


class Keyring:
    """The master key (resolved lazily) and the data keys it unwraps."""

    def __init__(self, settings: Mapping[str, str], kind: str) -> None:
        self._lock = threading.Lock()
        self._master: bytes | None = None
        self._file: str | None = None
        self._create = False
        #: Unwrapped keys by their wrapped form (a new key has a new random nonce, so a
        #: wrapped form names one key for good; a destroyed key is never wrapped again).
        self._unwrapped: dict[str, bytes] = {}
        #: Whether the master key is known to be the one the store's keys are wrapped with
        #: (checked before the first new key is wrapped).
        self._matched = False
        if settings.get("MASTER_KEY"):
            self._master = _decode_master(settings["MASTER_KEY"], "the master key")
        elif settings.get("MASTER_KEY_FILE"):
            self._file = settings["MASTER_KEY_FILE"]
        else:
            self._file = default_master_file(kind, settings)
            self._create = True
            if self._file is None:  # in-memory store: a key of the process
                self._master = AESGCM.generate_key(bit_length=256)

    @property
    def source(self) -> str:
        """Where the master key comes from, as a person names it."""
        if self._file is None:
            return "the master key given (MATOME_MASTER_KEY)"
        return f"the master key file {self._file}"

    def _load(self, *, create: bool) -> bytes:
        with self._lock:
            if self._master is not None:
                return self._master
            path = self._file
            if path is None:  # pragma: no cover - set in __init__ whenever _master is not
                raise PersonalDataLocked("no master key")
            if not os.path.exists(path):
                if not (create and self._create):
                    raise PersonalDataLocked(
                        f"personal data cannot be read: there is no master key at {path} "
                        "(set MATOME_MASTER_KEY or MATOME_MASTER_KEY_FILE)"
                    )
                _create_key_file(path)
            try:
                with open(path, encoding="ascii") as f:
                    text = f.read()
            except (OSError, UnicodeDecodeError) as e:
                raise PersonalDataLocked(f"the master key file {path} cannot be read: {e}") from e
            self._master = _decode_master(text, f"the master key in {path}")
            return self._master

    def unwrap(self, subject: str, wrapped: str) -> bytes:
        """The data key of ``subject`` from its stored form."""
        key = self._unwrapped.get(wrapped)
        if key is not None:
            return key
        master = self._load(create=False)
        try:
            raw = base64.b64decode(wrapped.removeprefix(_WRAPPED))
            key = AESGCM(master).decrypt(
                raw[:_NONCE], raw[_NONCE:], f"matome-key:{subject}".encode()
            )
        except (InvalidTag, ValueError):
            raise PersonalDataLocked(
                f"personal data cannot be decrypted with {self.source} (not the master key "
                "its keys were wrapped with)"
            ) from None
        self._unwrapped[wrapped] = key
        return key

    def _wrap(self, subject: str, key: bytes, *, create: bool) -> str:
        master = self._load(create=create)
        nonce = os.urandom(_NONCE)
        sealed = AESGCM(master).encrypt(nonce, key, f"matome-key:{subject}".encode())
        wrapped = _WRAPPED + base64.b64encode(nonce + sealed).decode()
        self._unwrapped[wrapped] = key
        return wrapped

    @staticmethod
    def seal(key: bytes, ref: str, salt: str, text: str) -> str:
        """A personal value as the personal-data table holds it (see the module)."""
        nonce = os.urandom(_NONCE)
        sealed = AESGCM(key).encrypt(nonce, f"{salt}{text}".encode(), ref.encode())
        return _SEALED + base64.b64encode(nonce + sealed).decode()

    @staticmethod
    def is_sealed(data: str) -> bool:
        """Whether a stored value is under a data key (else: an earlier version's form)."""
        return data.startswith(_SEALED)

    def open(self, subject: str, wrapped: str, ref: str, data: str) -> tuple[str, str]:
        """``(salt, text)`` of a sealed value."""
        key = self.unwrap(subject, wrapped)
        raw = base64.b64decode(data.removeprefix(_SEALED))
        try:
            clear = AESGCM(key).decrypt(raw[:_NONCE], raw[_NONCE:], ref.encode()).decode()
        except InvalidTag:
            raise ValueError(f"the personal value {ref} does not decrypt") from None
        return clear[:SALT_LENGTH], clear[SALT_LENGTH:]

    def plan(
        self,
        keys: Mapping[str, str],
        any_key: tuple[str, str] | None,
        rows: Iterable[tuple[str, str, str, str]],
        rotate: Sequence[str],
        survivors: Iterable[tuple[str, str, str]],
    ) -> KeyPlan:
        """The writes of one transaction.

        ``keys``: the wrapped keys found for the subjects involved (after this write's
        erasures); ``any_key``: some other (subject, wrapped key) of the store, to check that a
        new key is wrapped by the master key of the keys already there; ``rows``: the new
        values (ref, subject, salt, clear text); ``rotate``: subjects whose key is replaced;
        ``survivors``: their stored values (ref, subject, data) to re-seal.
        """
        current = dict(keys)
        wanted = {subject for _, subject, _, _ in rows} | set(rotate)
        missing = sorted(s for s in wanted if s not in current or s in rotate)
        if missing and not self._matched:
            # Checked whatever the master key's source: a key given explicitly
            # (MATOME_MASTER_KEY) that is not the store's would otherwise wrap new keys that
            # the store's own master key can never unwrap — personal data lost on write.
            check = next(iter(current.items()), any_key)
            if check is None:  # the store holds no key: the default file may be made now
                self._load(create=True)
            else:
                self.unwrap(*check)  # the master key is the store's (fails clearly if not)
            self._matched = True
        old = {s: self.unwrap(s, current[s]) for s in rotate if s in current}
        fresh = {s: secrets.token_bytes(32) for s in missing}
        inserts = tuple((s, self._wrap(s, fresh[s], create=True)) for s in missing)
        keyof = {s: self.unwrap(s, w) for s, w in current.items() if s not in fresh}
        keyof.update(fresh)
        updates = []
        for ref, subject, data in survivors:
            if subject in old and self.is_sealed(data):
                raw = base64.b64decode(data.removeprefix(_SEALED))
                clear = AESGCM(old[subject]).decrypt(raw[:_NONCE], raw[_NONCE:], ref.encode())
                text = clear.decode()
                sealed = self.seal(keyof[subject], ref, text[:SALT_LENGTH], text[SALT_LENGTH:])
                updates.append((ref, sealed))
        return KeyPlan(
            delete_keys=tuple(s for s in rotate if s in current),
            insert_keys=inserts,
            update_rows=tuple(updates),
            insert_rows=tuple(
                (ref, subject, self.seal(keyof[subject], ref, salt, text), "")
                for ref, subject, salt, text in rows
            ),
        )

    def forget_all(self) -> None:
        """Drop the unwrapped keys from memory (after an erasure: a destroyed key must not
        linger in the process either; the others are unwrapped again when needed)."""
        self._unwrapped.clear()


def _create_key_file(path: str) -> None:
    """Write a new master key to ``path`` (mode 0600), atomically: processes that start
    together agree on one key (the first link wins; the others read it)."""
    folder = os.path.dirname(path) or "."
    os.makedirs(folder, mode=0o700, exist_ok=True)
    tmp = f"{path}.{os.getpid()}.{secrets.token_hex(4)}.tmp"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "w", encoding="ascii") as f:
            f.write(base64.b64encode(secrets.token_bytes(32)).decode() + "\n")
            f.flush()
            os.fsync(f.fileno())
        with contextlib.suppress(FileExistsError):
            os.link(tmp, path)
    finally:
        os.unlink(tmp)
