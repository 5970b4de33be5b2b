"""Connections: named, typed credentials that steps use (``connection: prod-ssh``).

A connection has a type (`ConnectionType`) whose fields are checked here, one Pydantic model
per type, so bad input is refused naming the field (``values.private_key``). Values are stored
as one `SecretBox` blob (AES-256-GCM under the server's master key, the same key and format as
secrets, the connection's name authenticated with it) and leave the server only inside the
claim of a job whose step names the connection. The fields that hold credentials
(`CREDENTIAL_FIELDS`: keys, passwords, tokens, Apprise URLs, Terraform's environment) are
masked in everything that job and its execution send back; plain settings (a user name, a
port, a base URL) are not, so logs stay readable.

On the wire (`ConnectionGrant.values`) every value is a string: booleans are ``true`` /
``false``, ports are digits, and a ``terraform`` connection's values are its environment
variables themselves (``{"AWS_ACCESS_KEY_ID": ...}``).
"""

from __future__ import annotations

import difflib
import json
import logging
import re
from collections.abc import Callable, Iterable, Mapping
from contextlib import AbstractContextManager
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, ClassVar, Literal, Self
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from opsflow.auth.secrets import SecretBox
from opsflow.errors import InvalidInput, OpsflowError, Problem
from opsflow.spec.fields import CONNECTION_NAME_PATTERN
from opsflow.store import audit
from opsflow.store import connections as store
from opsflow.store.base import utcnow
from opsflow.store.connections import NAME_MAX_LENGTH, ConnectionMeta
from opsflow.store.db import Database
from opsflow.store.session import Session

NAME_PATTERN = CONNECTION_NAME_PATTERN
NAME_HELP = "letters, digits, '-', '_' and '.', starting with a letter or digit"
MAX_VALUE_BYTES = 64 * 1024
# Who wrote a connection loaded from the server's configuration (its notify channels).
CONFIG_ACTOR = "server configuration"
log = logging.getLogger(__name__)
_NAME_RE = re.compile(NAME_PATTERN)
_ENV_NAME_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


class ConnectionType(StrEnum):
    SSH = "ssh"
    HTTP = "http"
    NOTIFY = "notify"
    TERRAFORM = "terraform"
    GIT = "git"


class ConnectionUnusable(OpsflowError):
    """A step names a connection that cannot be used (missing, disabled, of another type)."""


class _Values(BaseModel):
    """The fields of one connection type (input form)."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=False)


def _check_private_key(text: str, passphrase: str | None, field: str) -> None:
    import asyncssh  # only an ssh connection's check needs it (30 MB: not at the server's start)

    try:
        asyncssh.import_private_key(text, passphrase)
    except (asyncssh.KeyImportError, ValueError) as exc:
        raise ValueError(
            f"{field} is not a private key asyncssh can read ({exc}); paste the whole key, "
            "from -----BEGIN to -----END"
        ) from None


class SshValues(_Values):
    """Log in with a key or a password; host keys checked against ``known_hosts``."""

    user: str = Field(min_length=1, description="Login user name.")
    private_key: str | None = Field(None, description="Private key (OpenSSH or PEM text).")
    passphrase: str | None = Field(None, description="Passphrase of the private key.")
    password: str | None = Field(None, description="Password (when there is no key).")
    known_hosts: str | None = Field(
        None, description="known_hosts lines the hosts' keys are checked against."
    )
    accept_new: bool = Field(False, description="Accept (and trust) a host key not in known_hosts.")
    jump_host: str | None = Field(None, description="[user@]host[:port] to connect through.")
    port: int = Field(22, ge=1, le=65535, description="SSH port.")
    host: str | None = Field(
        None, description="A host `opsflow connections test` logs in to (steps name their own)."
    )

    @field_validator("known_hosts")
    @classmethod
    def _known_hosts(cls, value: str | None) -> str | None:
        if value:
            import asyncssh  # as in _check_private_key

            try:
                asyncssh.import_known_hosts(value)
            except (ValueError, asyncssh.Error) as exc:
                raise ValueError(f"known_hosts is not in known_hosts format ({exc})") from None
        return value

    @model_validator(mode="after")
    def _credentials(self) -> Self:
        if not self.private_key and not self.password:
            raise FieldProblemError("private_key", "give private_key or password")
        if self.private_key:
            try:
                _check_private_key(self.private_key, self.passphrase, "private_key")
            except ValueError as exc:
                raise FieldProblemError("private_key", str(exc)) from None
        return self


class HttpValues(_Values):
    """A base URL and how to authenticate to it."""

    base_url: str = Field(description="http(s) URL that step URLs are relative to.")
    auth: Literal["none", "bearer", "basic", "header"] = Field(
        "none", description="none, bearer (token), basic (username, password) or header."
    )
    token: str | None = Field(None, description="Bearer token (auth: bearer).")
    username: str | None = Field(None, description="User name (auth: basic).")
    password: str | None = Field(None, description="Password (auth: basic).")
    header_name: str | None = Field(None, description="Header name (auth: header).")
    header_value: str | None = Field(None, description="Header value (auth: header).")

    _NEEDS: ClassVar[dict[str, tuple[str, ...]]] = {
        "none": (),
        "bearer": ("token",),
        "basic": ("username", "password"),
        "header": ("header_name", "header_value"),
    }

    @field_validator("base_url")
    @classmethod
    def _base_url(cls, value: str) -> str:
        parts = urlsplit(value)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"{value!r} is not an http:// or https:// URL with a host")
        if parts.username or parts.password:
            raise ValueError("put credentials in auth (basic, bearer, header), not in the URL")
        return value

    @model_validator(mode="after")
    def _auth_fields(self) -> Self:
        needed = self._NEEDS[self.auth]
        for name in needed:
            if not getattr(self, name):
                raise FieldProblemError(name, f"auth {self.auth} needs {' and '.join(needed)}")
        for name in ("token", "username", "password", "header_name", "header_value"):
            if getattr(self, name) is not None and name not in needed:
                raise FieldProblemError(name, f"{name} is not used with auth {self.auth}")
        return self


class NotifyValues(_Values):
    """One or more Apprise URLs (separated by spaces or commas), e.g. slack://T/B/C."""

    url: str = Field(
        min_length=1, description="One or more Apprise URLs, separated by spaces or commas."
    )

    @field_validator("url")
    @classmethod
    def _apprise(cls, value: str) -> str:
        bad = invalid_apprise_urls(value)
        if bad:
            raise ValueError(
                f"{len(bad)} of the URLs "
                f"{'is not an Apprise URL' if len(bad) == 1 else 'are not Apprise URLs'} "
                "Apprise can load (scheme "
                f"{', '.join(repr(b) for b in bad)}); see the Apprise wiki for the format"
            )
        return value


class TerraformValues(_Values):
    """Environment variables for Terraform (cloud credentials, TF_VAR_*)."""

    env: dict[str, str] = Field(min_length=1, description="Environment variables, name -> value.")

    @field_validator("env")
    @classmethod
    def _names(cls, value: dict[str, str]) -> dict[str, str]:
        for name in value:
            if not _ENV_NAME_RE.match(name):
                raise ValueError(
                    f"{name!r} is not an environment variable name (letters, digits, '_')"
                )
        return value


class GitValues(_Values):
    """A token (HTTPS) or a deploy key (SSH) for git repositories."""

    token: str | None = Field(None, description="Access token, sent as the HTTPS password.")
    username: str = Field(
        "x-access-token", min_length=1, description="HTTPS user name the token goes with."
    )
    deploy_key: str | None = Field(None, description="SSH private key with access to the repo.")
    url: str | None = Field(
        None, description="A repository `opsflow connections test` runs git ls-remote on."
    )

    @model_validator(mode="after")
    def _one_credential(self) -> Self:
        if bool(self.token) == bool(self.deploy_key):
            raise FieldProblemError("token", "give exactly one of token or deploy_key")
        if self.deploy_key:
            try:
                _check_private_key(self.deploy_key, None, "deploy_key")
            except ValueError as exc:
                raise FieldProblemError("deploy_key", str(exc)) from None
        return self


class FieldProblemError(ValueError):
    """A problem of one field found by a check across fields (located at that field)."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field
        self.message = message


MODELS: dict[ConnectionType, type[_Values]] = {
    ConnectionType.SSH: SshValues,
    ConnectionType.HTTP: HttpValues,
    ConnectionType.NOTIFY: NotifyValues,
    ConnectionType.TERRAFORM: TerraformValues,
    ConnectionType.GIT: GitValues,
}

# The fields whose values are credentials: masked in logs, outputs and errors. A terraform
# connection's values are all credentials (its environment).
CREDENTIAL_FIELDS: dict[ConnectionType, frozenset[str]] = {
    ConnectionType.SSH: frozenset({"private_key", "passphrase", "password"}),
    ConnectionType.HTTP: frozenset({"token", "password", "header_value"}),
    ConnectionType.NOTIFY: frozenset({"url"}),
    ConnectionType.GIT: frozenset({"token", "deploy_key"}),
}


def credential_values(kind: str, values: Mapping[str, str]) -> list[str]:
    """The values of ``values`` (of a connection of type ``kind``) that are credentials."""
    if kind == ConnectionType.TERRAFORM:
        return [v for v in values.values() if v]
    fields = CREDENTIAL_FIELDS.get(ConnectionType(kind), frozenset())
    return [v for k, v in values.items() if k in fields and v]


def invalid_apprise_urls(text: str) -> list[str]:
    """The schemes of those URLs in ``text`` (spaces or commas between) Apprise cannot load."""
    import apprise

    from opsflow.steps.notify import register_log_scheme, split_urls

    register_log_scheme()
    bad = []
    for url in split_urls(text):
        if apprise.Apprise.instantiate(url, suppress_exceptions=True) is None:
            bad.append(url.split("://", 1)[0] if "://" in url else "(no scheme)")
    return bad


def notify_services(text: str) -> list[str]:
    """The Apprise schemes of the URLs in ``text``, sorted (``["slack"]``): what a notify
    connection reaches, without its tokens."""
    from opsflow.steps.notify import split_urls

    return sorted({url.split("://", 1)[0].lower() for url in split_urls(text) if "://" in url})


def check_name(name: str) -> None:
    """Raise `InvalidInput` located at ``name`` unless it can be a connection's name."""
    if not _NAME_RE.match(name) or len(name) > NAME_MAX_LENGTH:
        msg = f"invalid connection name {name!r}: use {NAME_HELP}, at most {NAME_MAX_LENGTH}"
        raise InvalidInput(msg, problems=[Problem(loc="name", msg=msg)])


def check_type(kind: str) -> ConnectionType:
    """The `ConnectionType` spelled ``kind``; `InvalidInput` located at ``type`` otherwise."""
    try:
        return ConnectionType(kind)
    except ValueError:
        allowed = ", ".join(t.value for t in ConnectionType)
        msg = f"unknown connection type {kind!r}: use one of {allowed}"
        raise InvalidInput(msg, problems=[Problem(loc="type", msg=msg)]) from None


def _field_of(loc: tuple[int | str, ...]) -> str:
    return ".".join(str(part) for part in loc)


def normalize(kind: ConnectionType, values: Mapping[str, Any]) -> dict[str, str]:
    """The values checked against the type's model and flattened to strings; `InvalidInput`
    with one problem per bad field (``values.<field>``), never quoting a value."""
    try:
        model = MODELS[kind].model_validate(dict(values))
    except ValidationError as exc:
        problems = []
        for error in exc.errors(include_input=False, include_url=False):
            cause = (error.get("ctx") or {}).get("error")
            if isinstance(cause, FieldProblemError):
                problems.append(Problem(loc=f"values.{cause.field}", msg=cause.message))
                continue
            where = _field_of(tuple(error["loc"]))
            msg = str(error["msg"]).removeprefix("Value error, ")
            if error["type"] == "extra_forbidden":
                fields = ", ".join(MODELS[kind].model_fields)
                msg = f"{kind.value} connections have no field {where!r}; fields: {fields}"
            problems.append(Problem(loc=f"values.{where}" if where else "values", msg=msg))
        summary = "; ".join(f"{p.loc}: {p.msg}" for p in problems)
        raise InvalidInput(
            f"invalid {kind.value} connection: {summary}", problems=problems
        ) from None
    if isinstance(model, TerraformValues):
        flat = dict(model.env)
    else:
        flat = {}
        for name, value in model.model_dump(exclude_none=True, exclude_unset=True).items():
            flat[name] = ("true" if value else "false") if isinstance(value, bool) else str(value)
    for name, value in flat.items():
        if len(value.encode("utf-8", "replace")) > MAX_VALUE_BYTES:
            msg = f"larger than {MAX_VALUE_BYTES} bytes"
            raise InvalidInput(f"values.{name}: {msg}", problems=[Problem(f"values.{name}", msg)])
    return flat


def as_input(kind: ConnectionType, stored: Mapping[str, str]) -> dict[str, Any]:
    """Stored (flat) values in the input form `normalize` reads (nests terraform's env)."""
    if kind == ConnectionType.TERRAFORM:
        return {"env": dict(stored)}
    return dict(stored)


@dataclass(frozen=True)
class Revealed:
    """A connection with its decrypted values (for a claim or a test)."""

    meta: ConnectionMeta
    values: dict[str, str]


SessionFactory = Callable[[], AbstractContextManager[Session]]


def _box_name(name: str) -> str:
    # Authenticated with the blob; a space cannot occur in a secret's name, so a secret's blob
    # and a connection's can never be swapped.
    return f"connection {name}"


class ConnectionVault:
    """Sets, changes, deletes and reveals connections; audit-logged, values write-only."""

    def __init__(
        self,
        db: Database | SessionFactory,
        box: SecretBox,
        *,
        learn: Callable[[Iterable[str]], None] | None = None,
    ) -> None:
        self._session: SessionFactory = db.session if isinstance(db, Database) else db
        self.box = box
        self._learn = learn or (lambda values: None)

    def _decrypt(self, name: str, blob: bytes) -> dict[str, str]:
        loaded = json.loads(self.box.decrypt(_box_name(name), blob))
        return {str(k): str(v) for k, v in loaded.items()}

    def set(
        self,
        name: str,
        kind: str,
        values: Mapping[str, Any],
        actor: str,
        *,
        description: str | None = None,
        enabled: bool | None = None,
        keep: Iterable[str] = (),
    ) -> tuple[ConnectionMeta, bool]:
        """Create the connection or replace its type and values; ``keep`` names current
        fields to keep as they are (a form that leaves a write-only field empty). Returns the
        metadata and whether it was created."""
        check_name(name)
        ctype = check_type(kind)
        kept = sorted(set(keep))
        with self._session() as session:
            merged = dict(values)
            if kept:
                current = self.reveal(session, name)
                if current.meta.type != ctype.value:
                    msg = f"the connection is of type {current.meta.type}; give every value"
                    raise InvalidInput(msg, problems=[Problem("keep", msg)])
                old = as_input(ctype, current.values)
                for field in kept:
                    if field not in old:
                        msg = f"{field!r} is not set on connection {name!r}; set: {', '.join(old)}"
                        raise InvalidInput(msg, problems=[Problem("keep", msg)])
                    merged.setdefault(field, old[field])
            flat = normalize(ctype, merged)
            self._learn(credential_values(ctype, flat))
            services = notify_services(flat["url"]) if ctype == ConnectionType.NOTIFY else []
            blob = self.box.encrypt(_box_name(name), json.dumps(flat, sort_keys=True))
            meta, created = store.put(
                session,
                name,
                type_=ctype.value,
                fields=flat,
                services=services,
                ciphertext=blob,
                actor=actor,
                description=description,
                enabled=enabled,
            )
            detail: dict[str, object] = {"type": ctype.value, "fields": sorted(flat)}
            if description is not None:
                detail["description"] = description
            if enabled is not None:
                detail["enabled"] = enabled
            action = "connection.create" if created else "connection.update"
            audit.record(session, actor, action, name, detail)
        return meta, created

    def update(
        self, name: str, actor: str, *, enabled: bool | None, description: str | None
    ) -> ConnectionMeta:
        """Enable or disable the connection, or change its description."""
        with self._session() as session:
            meta = store.update(
                session, name, actor=actor, enabled=enabled, description=description
            )
            if enabled is not None:
                action = "connection.enable" if enabled else "connection.disable"
                audit.record(session, actor, action, name, {})
            if description is not None:
                audit.record(
                    session, actor, "connection.update", name, {"description": description}
                )
        return meta

    def delete(self, name: str, actor: str) -> ConnectionMeta:
        """Remove the connection; returns its metadata as it was."""
        with self._session() as session:
            meta = store.remove(session, name)
            audit.record(session, actor, "connection.delete", name, {"type": meta.type})
        return meta

    def reveal(self, session: Session, name: str) -> Revealed:
        """The connection with its values; `NotFound` when there is none."""
        meta = store.get_meta(session, name)
        (_, blob) = store.get_ciphertexts(session, [name])[name]
        values = self._decrypt(name, blob)
        self._learn(credential_values(meta.type, values))
        return Revealed(meta, values)

    def record_test(self, name: str, actor: str, ok: bool, error: str | None) -> ConnectionMeta:
        """Note a test's outcome (and who ran it, in the audit log)."""
        with self._session() as session:
            meta = store.record_test(session, name, ok=ok, error=error, at=utcnow())
            audit.record(session, actor, "connection.test", name, {"ok": ok, "error": error})
        return meta

    def masking_values(self, session: Session, names: Iterable[str]) -> frozenset[str]:
        """The credential values of those of ``names`` that still exist."""
        found: set[str] = set()
        for name, (kind, blob) in store.get_ciphertexts(session, names).items():
            found.update(credential_values(kind, self._decrypt(name, blob)))
        self._learn(found)
        return frozenset(found)

    def load_channels(self, channels: Mapping[str, list[str]]) -> list[str]:
        """Make each notify channel of the server's configuration (``OPSFLOW_NOTIFY_<NAME>``,
        the data dir's notify file) a notify connection, so channels live in one place. A
        connection an admin changed since (not last written by `CONFIG_ACTOR`) is left as
        it is. Returns the names written."""
        written = []
        with self._session() as session:
            current = {meta.name: meta for meta in store.list_connections(session)}
        for name, urls in sorted(channels.items()):
            meta = current.get(name)
            if meta is not None and meta.updated_by != CONFIG_ACTOR:
                log.warning(
                    "notify channel %r of the server configuration is not loaded: a connection "
                    "of that name was set by %s (it is used instead)",
                    name,
                    meta.updated_by,
                )
                continue
            url = " ".join(urls)
            if meta is not None and meta.type == ConnectionType.NOTIFY:
                with self._session() as session:
                    if self.reveal(session, name).values == {"url": url}:
                        continue
            self.set(
                name,
                ConnectionType.NOTIFY.value,
                {"url": url},
                CONFIG_ACTOR,
                description="notify channel from the server configuration",
            )
            written.append(name)
        return written

    def learn_all(self) -> int:
        """Tell the log filter every stored credential (at start-up); returns how many."""
        with self._session() as session:
            return len(self.masking_values(session, store.all_names(session)))


def usable(
    meta: ConnectionMeta | None,
    name: str,
    wanted: Iterable[ConnectionType] | None = None,
    others: Iterable[str] = (),
) -> str | None:
    """Why a step cannot use connection ``name`` (found as ``meta``), or None if it can.
    ``others``: the names of the connections there are, for a "did you mean" when ``name``
    does not exist."""
    kinds = [t.value for t in wanted or ()]
    if meta is None:
        close = difflib.get_close_matches(name, [o for o in others if o != name], n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        kind = kinds[0] if len(kinds) == 1 else "TYPE"
        return (
            f"connection {name!r} does not exist{hint}; an admin creates it with "
            f"opsflow connections set {name} --type {kind}"
        )
    if not meta.enabled:
        return f"connection {name!r} is disabled; an admin enables it on the Connections page"
    if kinds and meta.type not in kinds:
        return f"connection {name!r} is of type {meta.type}; this step needs {' or '.join(kinds)}"
    return None
