"""Logging in to a host over SSH with an ``ssh`` connection's values (AsyncSSH).

An ``ssh`` connection (issue 18) holds these values, all strings:

- ``user``: the login user;
- ``private_key`` (an OpenSSH or PEM private key, the text itself) and its ``passphrase``,
  or ``password``;
- ``known_hosts``: OpenSSH ``known_hosts`` lines; host keys are checked against them only
  (never the agent's ``~/.ssh/known_hosts``);
- ``accept_new``: ``true`` to accept the key of a host that has no line in ``known_hosts``
  (OpenSSH's ``StrictHostKeyChecking accept-new``); a host whose line names another key is
  refused either way;
- ``jump_host``: ``[user@]host[:port]`` to tunnel through, logged in to with the same
  credentials and checked against the same ``known_hosts``;
- ``host`` and ``port``: the host ``opsflow connections test`` logs in to.

Nothing from the agent user's SSH setup is used: no ``~/.ssh/config``, no ssh-agent, no key
files from ``~/.ssh``. Every failure is an ``SshFailed`` whose message names the host and how
to fix it; an unknown host key's message carries its SHA256 fingerprint and the
``known_hosts`` line that accepts it.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from dataclasses import dataclass, field, replace

import asyncssh

from opsflow.errors import OpsflowError

DEFAULT_PORT = 22
_TRUE = frozenset({"true", "yes", "1", "on"})


class SshFailed(OpsflowError):
    """Could not log in over SSH."""

    status_code = 502


class SshInvalid(SshFailed):
    """The SSH connection's values are not usable."""

    status_code = 422


class SshUnreachable(SshFailed):
    """The SSH host could not be reached."""


class SshHostKeyUnknown(SshFailed):
    """The SSH host's key is not in the connection's known_hosts."""

    def __init__(self, message: str, *, fingerprint: str, known_hosts_line: str) -> None:
        super().__init__(message)
        self.fingerprint = fingerprint
        self.known_hosts_line = known_hosts_line


class SshHostKeyChanged(SshHostKeyUnknown):
    """The SSH host presented a key other than the one known_hosts names for it."""


class SshLoginRefused(SshFailed):
    """The SSH host refused the login."""


@dataclass(frozen=True)
class Target:
    """One host to log in to: a name or address and a TCP port."""

    host: str
    port: int = DEFAULT_PORT

    def __str__(self) -> str:
        return self.host if self.port == DEFAULT_PORT else f"{self.host}:{self.port}"

    def known_hosts_name(self) -> str:
        """How known_hosts names this host (``host`` or ``[host]:port``)."""
        return self.host if self.port == DEFAULT_PORT else f"[{self.host}]:{self.port}"


def parse_target(text: str, default_port: int = DEFAULT_PORT) -> Target:
    """``host``, ``host:port``, ``[v6addr]:port`` or a bare IPv6 address as a ``Target``.

    Raises ``ValueError`` with what is wrong."""
    text = text.strip()
    if not text or any(char.isspace() for char in text) or text.startswith("-"):
        raise ValueError(f"{text!r} is not a host name or address")
    if text.startswith("["):
        host, sep, rest = text[1:].partition("]")
        if not sep or not host:
            raise ValueError(f"{text!r}: an IPv6 address in brackets needs its closing ]")
        if not rest:
            return Target(host, default_port)
        if not rest.startswith(":"):
            raise ValueError(f"{text!r}: write [address]:port")
        return Target(host, _port(rest[1:], text))
    if text.count(":") == 1:
        host, _, port = text.partition(":")
        if not host:
            raise ValueError(f"{text!r} has no host name")
        return Target(host, _port(port, text))
    return Target(text, default_port)  # a name, or a bare IPv6 address


def _port(text: str, whole: str) -> int:
    if not text.isdigit() or not 1 <= int(text) <= 65535:
        raise ValueError(f"{whole!r}: the port must be a number from 1 to 65535")
    return int(text)


@dataclass(frozen=True)
class Login:
    """How to log in: user, credentials, the known host keys and whether to accept new ones.

    Build it with ``Login.from_values``; ``user`` may be overridden by a step's ``user``."""

    user: str
    client_keys: tuple[asyncssh.SSHKey, ...] = ()
    password: str | None = None
    known_hosts: str = ""
    accept_new: bool = False
    jump_host: Target | None = None
    jump_user: str | None = None
    secrets: tuple[str, ...] = field(default=(), repr=False)

    @classmethod
    def from_values(cls, values: Mapping[str, str], *, user: str | None = None) -> Login:
        """Read an ``ssh`` connection's values (see the module docstring).

        Raises ``SshInvalid`` naming the value and the fix."""
        login_user = user or values.get("user", "").strip()
        if not login_user:
            raise SshInvalid("no user: set the connection's user (or the step's user field)")
        keys: tuple[asyncssh.SSHKey, ...] = ()
        private_key = values.get("private_key", "").strip()
        if private_key:
            passphrase = values.get("passphrase") or None
            try:
                keys = (asyncssh.import_private_key(private_key + "\n", passphrase),)
            except (asyncssh.KeyImportError, asyncssh.KeyEncryptionError) as exc:
                raise SshInvalid(
                    f"the connection's private_key could not be read: {exc} (give the whole "
                    "key file, -----BEGIN ... through -----END ..., and its passphrase if any)"
                ) from None
        password = values.get("password") or None
        if not keys and password is None:
            raise SshInvalid("the connection has neither a private_key nor a password")
        known_hosts = values.get("known_hosts", "")
        try:
            asyncssh.import_known_hosts(known_hosts)
        except ValueError as exc:
            raise SshInvalid(f"the connection's known_hosts does not parse: {exc}") from None
        jump_text = values.get("jump_host", "").strip()
        jump_host, jump_user = None, None
        if jump_text:
            jump_user, at, rest = jump_text.rpartition("@")
            try:
                jump_host = parse_target(rest)
            except ValueError as exc:
                raise SshInvalid(f"jump_host: {exc}; write [user@]host[:port]") from None
            jump_user = jump_user if at else None
        secrets = tuple(v for v in (private_key, password, values.get("passphrase")) if v)
        return cls(
            user=login_user,
            client_keys=keys,
            password=password,
            known_hosts=known_hosts,
            accept_new=values.get("accept_new", "").strip().lower() in _TRUE,
            jump_host=jump_host,
            jump_user=jump_user,
            secrets=secrets,
        )


class _Client(asyncssh.SSHClient):
    """Decides about a host key known_hosts does not list, remembering what it saw."""

    def __init__(self, target: Target, login: Login, known: asyncssh.SSHKnownHosts) -> None:
        self.target = target
        self.login = login
        self.known = known
        self.refused: asyncssh.SSHKey | None = None
        self.changed = False
        self.accepted: asyncssh.SSHKey | None = None

    def validate_host_public_key(
        self, host: str, addr: str, port: int, key: asyncssh.SSHKey
    ) -> bool:
        listed = asyncssh.match_known_hosts(
            self.known, host, addr, None if port == DEFAULT_PORT else port
        )[0]
        self.changed = bool(listed)
        if self.login.accept_new and not self.changed:
            self.accepted = key
            return True
        self.refused = key
        return False


async def connect(target: Target, login: Login, timeout: float) -> asyncssh.SSHClientConnection:
    """An authenticated connection to ``target`` (through the jump host if any), within
    ``timeout`` seconds. Raises ``SshFailed`` (one of its subclasses) saying why not."""
    tunnel = None
    if login.jump_host is not None:
        jump_login = replace(login, user=login.jump_user or login.user, jump_host=None)
        tunnel = await connect(login.jump_host, jump_login, timeout)
    try:
        connection = await _connect_direct(target, login, timeout, tunnel)
    except BaseException:
        if tunnel is not None:
            tunnel.close()
        raise
    if tunnel is not None:
        connection.set_tunnel(tunnel)  # closing the connection closes the jump host's too
    return connection


async def _connect_direct(
    target: Target,
    login: Login,
    timeout: float,
    tunnel: asyncssh.SSHClientConnection | None,
) -> asyncssh.SSHClientConnection:
    known = asyncssh.import_known_hosts(login.known_hosts)
    client = _Client(target, login, known)
    try:
        async with asyncio.timeout(timeout):
            connection, _ = await asyncssh.create_connection(
                lambda: client,
                target.host,
                target.port,
                tunnel=tunnel if tunnel is not None else (),
                username=login.user,
                client_keys=list(login.client_keys) or None,
                password=login.password,
                known_hosts=known,
                config=None,
                agent_path=None,
                connect_timeout=timeout,
                keepalive_interval=30,
            )
    except TimeoutError:
        raise SshUnreachable(
            f"{target}: no SSH login within {timeout:g}s (is the host up and port "
            f"{target.port} open?)"
        ) from None
    except asyncssh.HostKeyNotVerifiable:
        raise _host_key_error(target, client) from None
    except asyncssh.PermissionDenied:
        how = "key" if login.client_keys else "password"
        raise SshLoginRefused(
            f"{target}: login as {login.user!r} refused (check the connection's {how} and "
            f"the host's authorized_keys for {login.user!r})"
        ) from None
    except asyncssh.DisconnectError as exc:
        raise SshFailed(f"{target}: SSH connection closed: {exc.reason}") from None
    except asyncssh.Error as exc:
        raise SshFailed(f"{target}: SSH failed: {exc}") from None
    except OSError as exc:
        raise SshUnreachable(f"{target}: cannot connect: {exc.strerror or exc}") from None
    return connection


def accepted_new_key(connection: asyncssh.SSHClientConnection, target: Target) -> str | None:
    """When ``accept_new`` let this connection in with a key known_hosts did not list: what to
    tell the user (the key's fingerprint and the known_hosts line that pins it); else None."""
    client = connection.get_owner()
    if not isinstance(client, _Client) or client.accepted is None:
        return None
    key = client.accepted
    public = " ".join(key.export_public_key("openssh").decode().split()[:2])
    return (
        f"accepted the new host key {key.get_algorithm()} {key.get_fingerprint('sha256')} "
        f"(accept_new); to pin it, add to the connection's known_hosts: "
        f"{target.known_hosts_name()} {public}"
    )


def _host_key_error(target: Target, client: _Client) -> SshFailed:
    key = client.refused
    if key is None:
        return SshFailed(f"{target}: the host key could not be verified")
    fingerprint = key.get_fingerprint("sha256")
    algorithm = key.get_algorithm()
    public = " ".join(key.export_public_key("openssh").decode().split()[:2])
    line = f"{target.known_hosts_name()} {public}"
    if client.changed:
        return SshHostKeyChanged(
            f"{target}: the host key changed: it is now {algorithm} {fingerprint}, which the "
            "connection's known_hosts does not list for this host. If the host was really "
            f"re-keyed (check with `ssh-keygen -lf` on the host), replace its line in "
            f"known_hosts with: {line}",
            fingerprint=fingerprint,
            known_hosts_line=line,
        )
    return SshHostKeyUnknown(
        f"{target}: unknown host key {algorithm} {fingerprint}. Compare it with "
        "`ssh-keygen -lf /etc/ssh/ssh_host_*_key.pub` on the host, then add this line to the "
        f"connection's known_hosts: {line} (or set accept_new: true on the connection to "
        "accept keys of hosts not listed yet)",
        fingerprint=fingerprint,
        known_hosts_line=line,
    )
