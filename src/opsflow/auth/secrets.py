"""Secrets at rest: AES-256-GCM under the server's master key, and the vault the runtime asks.

The master key comes from ``OPSFLOW_SECRET_KEY`` or is generated once into
``<data_dir>/secret-key`` (mode 0600). Losing it loses every secret, so the server refuses to
start on a key file it cannot trust (wrong size, readable by others) rather than quietly making
a new one.

A stored value is a self-describing blob::

    0x01 | key id (4 bytes) | nonce (12 bytes) | AES-GCM ciphertext and tag

The key id is a fingerprint of the key, so a server started with the wrong key says so
instead of failing with a bare "decryption failed", and a later rotation can keep old keys for
reading (``SecretBox(new, previous=[old])``) while writing under the new one. The secret's name
is authenticated with it (associated data): a blob copied to another name does not decrypt.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import logging
import os
import re
import secrets
import stat
from collections.abc import Callable, Iterable, Mapping, Sequence
from contextlib import AbstractContextManager
from pathlib import Path
from typing import TYPE_CHECKING

from opsflow.errors import InvalidInput, NotFound, OpsflowError, Problem
from opsflow.store import audit
from opsflow.store import secrets as store
from opsflow.store.db import Database
from opsflow.store.secrets import NAME_MAX_LENGTH, SecretMeta
from opsflow.store.session import Session

if TYPE_CHECKING:
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM

log = logging.getLogger(__name__)

KEY_ENV = "OPSFLOW_SECRET_KEY"
KEY_FILE = "secret-key"
KEY_BYTES = 32
MAX_VALUE_BYTES = 64 * 1024
NAME_PATTERN = r"^[A-Za-z_][A-Za-z0-9_]*$"
NAME_HELP = (
    "letters, digits and '_', not starting with a digit (it is used as {{ secrets.NAME }} "
    "and as an environment variable name)"
)

_FORMAT = 1
_KEY_ID_BYTES = 4
_NONCE_BYTES = 12
_HEADER_BYTES = 1 + _KEY_ID_BYTES
_NAME_RE = re.compile(NAME_PATTERN)
_KEY_HOWTO = (
    'generate one with: python -c "import base64, secrets; '
    'print(base64.urlsafe_b64encode(secrets.token_bytes(32)).decode())"'
)


class SecretKeyInvalid(InvalidInput):
    """The secret master key is missing, malformed or not safely stored."""


class SecretUndecryptable(OpsflowError):
    """A stored secret cannot be decrypted with this server's key."""


class UnknownSecret(NotFound):
    """A workflow refers to a secret that is not defined."""

    def __init__(self, unknown: Sequence[str], defined: Sequence[str]) -> None:
        self.unknown = list(unknown)
        self.defined = list(defined)
        which = ", ".join(repr(n) for n in self.unknown)
        noun = "secret" if len(self.unknown) == 1 else "secrets"
        listed = ", ".join(self.defined) if self.defined else "(none)"
        super().__init__(
            f"unknown {noun} {which}; defined: {listed}",
            problems=[Problem(loc=f"secrets.{n}", msg="not defined") for n in self.unknown],
        )


def key_id(key: bytes) -> str:
    """A short public fingerprint of ``key`` (hex), stored with every value it encrypts."""
    return hashlib.sha256(b"opsflow secret key id\0" + key).hexdigest()[: 2 * _KEY_ID_BYTES]


class SecretBox:
    """Encrypts under ``key``; decrypts under ``key`` or any of ``previous`` (for rotation)."""

    def __init__(self, key: bytes, *, previous: Iterable[bytes] = ()) -> None:
        for candidate in (key, *previous):
            if len(candidate) != KEY_BYTES:
                raise SecretKeyInvalid(f"a secret key must be {KEY_BYTES} bytes")
        self.key_id = key_id(key)
        self._keys = {key_id(k): k for k in previous}
        self._keys[self.key_id] = key
        self._ciphers: dict[str, AESGCM] = {}

    def _cipher(self, stored_id: str) -> AESGCM:
        """The AES-GCM cipher of one key. `cryptography` (8 MB of a shared library) is imported
        by the first value encrypted or decrypted, not at the server's start: a server without
        secrets or connections never holds it (tests/unit/test_server_imports.py)."""
        cipher = self._ciphers.get(stored_id)
        if cipher is None:
            from cryptography.hazmat.primitives.ciphers.aead import AESGCM

            cipher = self._ciphers[stored_id] = AESGCM(self._keys[stored_id])
        return cipher

    def encrypt(self, name: str, value: str) -> bytes:
        """The stored form of ``value`` for the secret called ``name``."""
        header = bytes([_FORMAT]) + bytes.fromhex(self.key_id)
        nonce = os.urandom(_NONCE_BYTES)  # random per value: never reused under one key
        sealed = self._cipher(self.key_id).encrypt(
            nonce, value.encode("utf-8"), _associated(header, name)
        )
        return header + nonce + sealed

    def decrypt(self, name: str, blob: bytes) -> str:
        """The value stored as ``blob`` under ``name``; `SecretUndecryptable` says why not."""
        if len(blob) < _HEADER_BYTES + _NONCE_BYTES + 16 or blob[0] != _FORMAT:
            raise SecretUndecryptable(
                f"secret {name!r} is not in a format this opsflow version reads; set it again"
            )
        header, nonce = blob[:_HEADER_BYTES], blob[_HEADER_BYTES : _HEADER_BYTES + _NONCE_BYTES]
        stored_id = header[1:].hex()
        if stored_id not in self._keys:
            raise SecretUndecryptable(
                f"secret {name!r} was encrypted under key {stored_id}, but this server's key "
                f"is {self.key_id}: start the server with the {KEY_ENV} (or the data dir's "
                f"{KEY_FILE} file) it had when the secret was set, or set the secret again"
            )
        from cryptography.exceptions import InvalidTag

        try:
            plain = self._cipher(stored_id).decrypt(
                nonce, blob[_HEADER_BYTES + _NONCE_BYTES :], _associated(header, name)
            )
        except InvalidTag:
            raise SecretUndecryptable(
                f"secret {name!r} failed its integrity check: the stored value was altered or "
                "copied from another secret; set it again"
            ) from None
        return plain.decode("utf-8")


def _associated(header: bytes, name: str) -> bytes:
    return header + b"\0" + name.encode("utf-8")


def new_key_text() -> str:
    """A fresh key as ``OPSFLOW_SECRET_KEY`` spells it: base64url of 32 random bytes."""
    return base64.urlsafe_b64encode(secrets.token_bytes(KEY_BYTES)).decode("ascii")


def _decode_key(text: str, where: str) -> bytes:
    stripped = text.strip()
    try:
        key = base64.urlsafe_b64decode(stripped + "=" * (-len(stripped) % 4))
    except (binascii.Error, ValueError):
        key = b""
    if len(key) != KEY_BYTES or not stripped:
        raise SecretKeyInvalid(
            f"{where} must be {KEY_BYTES} random bytes in base64url (44 characters); "
            f"what is there does not decode to {KEY_BYTES} bytes. {_KEY_HOWTO}"
        )
    return key


def load_master_key(data_dir: Path, env: Mapping[str, str]) -> bytes:
    """The master key: from ``OPSFLOW_SECRET_KEY``, else ``<data_dir>/secret-key``, else a new
    key generated into that file (0600) on first start.

    Refuses (`SecretKeyInvalid`) a malformed variable, and a key file of the wrong size or
    readable by group or others: a server must not run on a key it cannot trust, and must not
    replace one silently, because secrets stored under the old key would be lost.
    """
    if env.get(KEY_ENV, "").strip():
        return _decode_key(env[KEY_ENV], KEY_ENV)
    path = Path(data_dir) / KEY_FILE
    if not path.exists():
        _create_key_file(path)
    return _read_key_file(path)


def _read_key_file(path: Path) -> bytes:
    mode = stat.S_IMODE(path.stat().st_mode)
    if os.name == "posix" and mode & 0o077:
        raise SecretKeyInvalid(
            f"{path} is readable by other users (mode {mode:04o}); "
            f"run `chmod 600 {path}` and start again"
        )
    return _decode_key(path.read_text(encoding="utf-8"), str(path))


def _create_key_file(path: Path) -> None:
    """Write a new key atomically: a whole file appears or none, and a second server starting
    at the same moment keeps the first one's key (``link`` fails if the name exists)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    temp = path.with_name(f".{KEY_FILE}.{os.getpid()}.{secrets.token_hex(4)}")
    fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as out:
            out.write(new_key_text() + "\n")
            out.flush()
            os.fsync(out.fileno())
        try:
            os.link(temp, path)
        except FileExistsError:
            return
        log.warning(
            "generated the secret master key in %s: back it up, secrets cannot be read without it",
            path,
        )
    finally:
        temp.unlink(missing_ok=True)


def check_secret_name(name: str) -> None:
    """Raise `InvalidInput` located at ``name`` unless ``name`` can be a secret's name."""
    if not _NAME_RE.match(name) or len(name) > NAME_MAX_LENGTH:
        msg = f"invalid secret name {name!r}: use {NAME_HELP}, at most {NAME_MAX_LENGTH}"
        raise InvalidInput(msg, problems=[Problem(loc="name", msg=msg)])


def check_secret_value(value: str) -> None:
    """Raise `InvalidInput` located at ``value`` (without quoting it) unless it can be stored."""
    try:
        size = len(value.encode("utf-8"))
    except UnicodeEncodeError:
        size = -1
    if not value:
        msg = "the value is empty; a secret needs a value"
    elif size < 0:
        msg = "the value is not valid Unicode text (it holds a lone surrogate)"
    elif size > MAX_VALUE_BYTES:
        msg = f"the value is larger than {MAX_VALUE_BYTES} bytes; store large files elsewhere"
    else:
        return
    raise InvalidInput(msg, problems=[Problem(loc="value", msg=msg)])


SessionFactory = Callable[[], AbstractContextManager[Session]]


class SecretVault:
    """Sets, deletes and reveals secrets; the only code that sees both ciphertext and key.

    ``set`` and ``delete`` run in their own transaction with their audit entry (which never
    holds the value); ``reveal`` and ``names`` run in the caller's, so the runtime can read
    secrets in the same transaction that renders a job.
    """

    def __init__(
        self,
        db: Database | SessionFactory,
        box: SecretBox,
        *,
        learn: Callable[[Iterable[str]], None] | None = None,
    ) -> None:
        self._session: SessionFactory = db.session if isinstance(db, Database) else db
        self.box = box
        # Told every plaintext this vault sets or reveals (the server's log filter).
        self._learn = learn or (lambda values: None)

    def set(self, name: str, value: str, actor: str, description: str | None = None) -> SecretMeta:
        """Create the secret or replace its value (``description=None`` keeps the old one)."""
        check_secret_name(name)
        check_secret_value(value)
        blob = self.box.encrypt(name, value)
        self._learn([value])
        with self._session() as session:
            meta = store.put_secret(session, name, blob, actor, description)
            action = "secret.create" if meta.created else "secret.update"
            detail: dict[str, object] = {"version": meta.version, "key_id": self.box.key_id}
            if description is not None:
                detail["description"] = description
            audit.record(session, actor, action, name, detail)
        return meta

    def delete(self, name: str, actor: str) -> SecretMeta:
        """Remove the secret; returns its metadata as it was."""
        with self._session() as session:
            meta = store.delete_secret(session, name)
            audit.record(session, actor, "secret.delete", name, {"version": meta.version})
        return meta

    def reveal(self, session: Session, names: Iterable[str]) -> dict[str, str]:
        """The plaintext of each of ``names``; `UnknownSecret` names every one not defined."""
        wanted = sorted(set(names))
        blobs = store.get_ciphertexts(session, wanted)
        missing = [n for n in wanted if n not in blobs]
        if missing:
            raise UnknownSecret(missing, store.secret_names(session))
        values = {name: self.box.decrypt(name, blob) for name, blob in blobs.items()}
        self._learn(values.values())
        return values

    def reveal_versions(
        self, session: Session, names: Iterable[str]
    ) -> tuple[dict[str, str], dict[str, int]]:
        """As `reveal`, with the version of each value (what a job was handed, for the record)."""
        wanted = sorted(set(names))
        current = store.get_current(session, wanted)
        missing = [n for n in wanted if n not in current]
        if missing:
            raise UnknownSecret(missing, store.secret_names(session))
        values = {name: self.box.decrypt(name, blob) for name, (_, blob) in current.items()}
        self._learn(values.values())
        return values, {name: version for name, (version, _) in current.items()}

    def masking_values(self, session: Session, names: Iterable[str]) -> frozenset[str]:
        """Every value of ``names`` a run may have seen or may print: the current ones and the
        kept previous ones (see `opsflow.store.secrets`). Names no longer defined are left
        out, as is a previous value this server's keys cannot read (logged)."""
        wanted = sorted(set(names))
        found = {
            self.box.decrypt(name, blob)
            for name, (_, blob) in store.get_current(session, wanted).items()
        }
        for name, blob in store.previous_ciphertexts(session, wanted):
            try:
                found.add(self.box.decrypt(name, blob))
            except SecretUndecryptable as exc:
                log.warning("a previous value of secret %r is not masked: %s", name, exc.message)
        self._learn(found)
        return frozenset(found)

    def learn_all(self) -> int:
        """Tell the log filter every stored value (at start-up); returns how many."""
        with self._session() as session:
            return len(self.masking_values(session, store.secret_names(session)))

    def names(self, session: Session) -> list[str]:
        """Every defined secret's name, sorted (for template checks and error messages)."""
        return store.secret_names(session)
