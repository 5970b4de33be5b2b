"""Server settings, read once at start from the environment and explicit overrides.

`Settings.from_env(**overrides)` is the one way to build them: the CLI passes its flags as
overrides, tests pass what they need, and everything else comes from ``OPSFLOW_*`` variables.
Nothing reads the environment after start.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Mapping
from dataclasses import dataclass, field, fields, replace
from enum import StrEnum
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import yaml

from opsflow.errors import InvalidInput

DEFAULT_PORT = 8321
DEFAULT_MAX_BUNDLE_BYTES = 20 * 1024 * 1024
NOTIFY_ENV_PREFIX = "OPSFLOW_NOTIFY_"
NOTIFY_FILE = "notify.yaml"
# Bind addresses meaning "every interface": a server listens there, nobody browses there.
WILDCARD_HOSTS = frozenset({"0.0.0.0", "::", ""})


class ServerRole(StrEnum):
    """What one ``opsflow server`` process does when several share a database."""

    API = "api"  # HTTP, SSE and trigger ingress (webhooks, Alertmanager)
    WORKER = "worker"  # timers, the scheduler, lease sweeps, the outbox and the local agent
    ALL = "all"  # both: the one-machine default

    @property
    def serves_api(self) -> bool:
        return self is not ServerRole.WORKER

    @property
    def does_work(self) -> bool:
        return self is not ServerRole.API


@dataclass(frozen=True)
class Settings:
    """Everything a server process needs to know; frozen so no part can change it under another.

    ``db_url`` left empty becomes the embedded default, ``sqlite:///<data_dir>/opsflow.db``.
    ``notify_channels`` maps a channel name used by `notify` steps to the
    Apprise URLs it delivers to.
    """

    data_dir: Path = Path("./data")
    db_url: str = ""
    host: str = "127.0.0.1"
    port: int = DEFAULT_PORT
    # Where people reach this server (behind a proxy: the proxy's address), for the links in
    # notifications and messages; "" derives it from host and port (`public_base`).
    public_url: str = ""
    role: ServerRole = ServerRole.ALL
    local_agent: bool = True
    local_agent_concurrency: int = 4
    # How long a claimed job stays ours without a heartbeat, and how often agents heartbeat.
    lease_seconds: float = 15.0
    heartbeat_seconds: float = 5.0
    # Seconds a stopped job's processes get between SIGTERM and SIGKILL (a timeout or a
    # graceful stop); None: each step type's default (5 s for scripts).
    stop_grace_seconds: float | None = None
    admin_password: str | None = None
    max_bundle_bytes: int = DEFAULT_MAX_BUNDLE_BYTES
    notify_channels: dict[str, list[str]] = field(default_factory=dict)
    demo: bool = False
    # The web UI's production build (index.html and assets/); None: the one inside the
    # package (src/opsflow/web_dist, written by `npm --prefix web run build`).
    web_dir: Path | None = None
    # How long a browser's login session lasts (seconds) before it must log in again.
    session_seconds: float = 12 * 3600.0
    # How often a quiet live stream (SSE) sends a keep-alive comment and re-checks its caller.
    stream_keepalive_seconds: float = 15.0
    # Deliveries one hook key (``POST /hooks/{key}``) takes per minute across all replicas.
    hook_rate_per_minute: int = 120
    # A test clock for schedules, ``START[,RATE[,ANCHOR]]`` (see triggers.scheduler's
    # SchedulerClock): the scheduler's time starts at START and runs RATE times as fast. For
    # tests and benchmarks; None: real time.
    scheduler_clock: str | None = None
    # How deep runs may start runs (workflow triggers and workflow steps); a loop of
    # workflows stops here with an error naming it.
    chain_depth: int = 10
    # A step whose agent is lost this many attempts in a row fails instead of retrying again.
    agent_lost_limit: int = 3

    def __post_init__(self) -> None:
        if self.hook_rate_per_minute < 1:
            raise InvalidInput(
                f"OPSFLOW_HOOK_RATE_PER_MINUTE must be at least 1, not {self.hook_rate_per_minute}"
            )
        if self.session_seconds <= 0:
            raise InvalidInput(
                f"OPSFLOW_SESSION_SECONDS must be more than 0, not {self.session_seconds}"
            )
        if self.chain_depth < 1:
            raise InvalidInput(f"OPSFLOW_CHAIN_DEPTH must be at least 1, not {self.chain_depth}")
        if self.agent_lost_limit < 1:
            raise InvalidInput(
                f"OPSFLOW_AGENT_LOST_LIMIT must be at least 1, not {self.agent_lost_limit}"
            )
        if self.public_url:
            object.__setattr__(self, "public_url", _public_url(self.public_url))
        if not self.db_url:
            default = f"sqlite:///{(Path(self.data_dir) / 'opsflow.db').resolve()}"
            object.__setattr__(self, "db_url", default)

    @property
    def base_url(self) -> str:
        """Where this server listens, as a browser or the CLI would spell it."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    @property
    def public_base(self) -> str:
        """Where people open this server's pages: ``public_url``, else ``base_url`` with a
        wildcard bind address (``0.0.0.0``, ``::``), which no browser can open, replaced by
        this machine's host name (127.0.0.1 when it has none)."""
        if self.public_url:
            return self.public_url
        if self.host not in WILDCARD_HOSTS:
            return self.base_url
        name = socket.gethostname() or "127.0.0.1"
        return f"http://{name}:{self.port}"

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None, **overrides: Any) -> Settings:
        """Settings from ``OPSFLOW_*`` variables, then ``overrides`` (None values are ignored).

        Variables: ``OPSFLOW_DATA_DIR``, ``OPSFLOW_DB``, ``OPSFLOW_HOST``, ``OPSFLOW_PORT``,
        ``OPSFLOW_PUBLIC_URL``, ``OPSFLOW_LOCAL_AGENT`` (true/false),
        ``OPSFLOW_LOCAL_AGENT_CONCURRENCY``,
        ``OPSFLOW_LEASE_SECONDS``, ``OPSFLOW_HEARTBEAT_SECONDS``, ``OPSFLOW_STOP_GRACE_SECONDS``,
        ``OPSFLOW_ADMIN_PASSWORD``, ``OPSFLOW_MAX_BUNDLE_BYTES``, ``OPSFLOW_DEMO``,
        ``OPSFLOW_WEB_DIR``, ``OPSFLOW_SESSION_SECONDS``, ``OPSFLOW_STREAM_KEEPALIVE_SECONDS``,
        ``OPSFLOW_HOOK_RATE_PER_MINUTE``,
        ``OPSFLOW_SCHEDULER_CLOCK`` (tests only), ``OPSFLOW_CHAIN_DEPTH`` and one
        ``OPSFLOW_NOTIFY_<NAME>`` per notify channel (comma- or space-separated Apprise URLs).
        Channels also come from ``<data_dir>/notify.yaml`` (``{name: [url, ...]}``); the
        environment wins for a name defined in both.
        """
        env = os.environ if env is None else env
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(overrides) - known)
        if unknown:
            raise TypeError(f"unknown settings: {', '.join(unknown)}")
        values: dict[str, Any] = {}
        if "OPSFLOW_DATA_DIR" in env:
            values["data_dir"] = Path(env["OPSFLOW_DATA_DIR"])
        if "OPSFLOW_DB" in env:
            values["db_url"] = env["OPSFLOW_DB"]
        if "OPSFLOW_HOST" in env:
            values["host"] = env["OPSFLOW_HOST"]
        if "OPSFLOW_PORT" in env:
            values["port"] = _int(env, "OPSFLOW_PORT")
        if env.get("OPSFLOW_PUBLIC_URL"):
            values["public_url"] = env["OPSFLOW_PUBLIC_URL"]
        if "OPSFLOW_ROLE" in env:
            values["role"] = _role(env["OPSFLOW_ROLE"])
        if "OPSFLOW_LOCAL_AGENT" in env:
            values["local_agent"] = _bool(env, "OPSFLOW_LOCAL_AGENT")
        if "OPSFLOW_LOCAL_AGENT_CONCURRENCY" in env:
            values["local_agent_concurrency"] = _int(env, "OPSFLOW_LOCAL_AGENT_CONCURRENCY")
        if "OPSFLOW_LEASE_SECONDS" in env:
            values["lease_seconds"] = _float(env, "OPSFLOW_LEASE_SECONDS")
        if "OPSFLOW_HEARTBEAT_SECONDS" in env:
            values["heartbeat_seconds"] = _float(env, "OPSFLOW_HEARTBEAT_SECONDS")
        if "OPSFLOW_STOP_GRACE_SECONDS" in env:
            values["stop_grace_seconds"] = _float(env, "OPSFLOW_STOP_GRACE_SECONDS")
        if env.get("OPSFLOW_ADMIN_PASSWORD"):
            values["admin_password"] = env["OPSFLOW_ADMIN_PASSWORD"]
        if "OPSFLOW_MAX_BUNDLE_BYTES" in env:
            values["max_bundle_bytes"] = _int(env, "OPSFLOW_MAX_BUNDLE_BYTES")
        if "OPSFLOW_DEMO" in env:
            values["demo"] = _bool(env, "OPSFLOW_DEMO")
        if env.get("OPSFLOW_WEB_DIR"):
            values["web_dir"] = Path(env["OPSFLOW_WEB_DIR"])
        if "OPSFLOW_SESSION_SECONDS" in env:
            values["session_seconds"] = _float(env, "OPSFLOW_SESSION_SECONDS")
        if "OPSFLOW_STREAM_KEEPALIVE_SECONDS" in env:
            values["stream_keepalive_seconds"] = _float(env, "OPSFLOW_STREAM_KEEPALIVE_SECONDS")
        if "OPSFLOW_HOOK_RATE_PER_MINUTE" in env:
            values["hook_rate_per_minute"] = _int(env, "OPSFLOW_HOOK_RATE_PER_MINUTE")
        if env.get("OPSFLOW_SCHEDULER_CLOCK"):
            values["scheduler_clock"] = env["OPSFLOW_SCHEDULER_CLOCK"]
        if "OPSFLOW_CHAIN_DEPTH" in env:
            values["chain_depth"] = _int(env, "OPSFLOW_CHAIN_DEPTH")
        if "OPSFLOW_AGENT_LOST_LIMIT" in env:
            values["agent_lost_limit"] = _int(env, "OPSFLOW_AGENT_LOST_LIMIT")
        values.update({k: v for k, v in overrides.items() if v is not None})
        if "data_dir" in values:
            values["data_dir"] = Path(values["data_dir"])
        values.setdefault("db_url", "")
        settings = replace(cls(), **values)
        if "notify_channels" not in overrides or overrides["notify_channels"] is None:
            channels = _notify_file(settings.data_dir / NOTIFY_FILE)
            channels.update(_notify_env(env))
            settings = replace(settings, notify_channels=channels)
        return settings


def _float(env: Mapping[str, str], name: str) -> float:
    try:
        value = float(env[name])
    except ValueError:
        raise InvalidInput(f"{name} must be a number of seconds, got {env[name]!r}") from None
    if value <= 0:
        raise InvalidInput(f"{name} must be positive, got {env[name]!r}")
    return value


def _public_url(value: str) -> str:
    """``OPSFLOW_PUBLIC_URL`` checked: an http(s) URL with a host, no path, query or fragment,
    without the trailing slash (``https://opsflow.example.com``).

    Raises ``InvalidInput`` otherwise. A path is refused because opsflow is served at the root
    of its host: the web UI loads ``/assets/...``, routes pages and calls ``/api/v1`` from ``/``,
    so a proxy forwarding only ``/opsflow/*`` would show a blank page."""
    parts = urlsplit(value.strip())
    if parts.scheme not in {"http", "https"} or not parts.netloc or parts.query or parts.fragment:
        raise InvalidInput(
            f"OPSFLOW_PUBLIC_URL must be an http(s) URL such as https://opsflow.example.com "
            f"(where people open this server), got {value!r}"
        )
    if parts.path.strip("/"):
        raise InvalidInput(
            f"OPSFLOW_PUBLIC_URL must have no path, got {value!r}: opsflow is served at the root "
            f"of its host (its web pages load /assets/... and call /api/v1); give it its own "
            f"host name or port, e.g. https://opsflow.example.com"
        )
    return value.strip().rstrip("/")


def _role(value: str) -> ServerRole:
    try:
        return ServerRole(value.strip().lower())
    except ValueError:
        choices = ", ".join(r.value for r in ServerRole)
        raise InvalidInput(f"OPSFLOW_ROLE must be one of {choices}, got {value!r}") from None


def _int(env: Mapping[str, str], name: str) -> int:
    try:
        return int(env[name])
    except ValueError:
        raise InvalidInput(f"{name} must be an integer, got {env[name]!r}") from None


def _bool(env: Mapping[str, str], name: str) -> bool:
    value = env[name].strip().lower()
    if value in {"1", "true", "yes", "on"}:
        return True
    if value in {"0", "false", "no", "off", ""}:
        return False
    raise InvalidInput(f"{name} must be true or false, got {env[name]!r}")


def _notify_env(env: Mapping[str, str]) -> dict[str, list[str]]:
    """``OPSFLOW_NOTIFY_DEPLOYS=slack://...`` defines the channel ``deploys``."""
    channels: dict[str, list[str]] = {}
    for key, value in env.items():
        if key.startswith(NOTIFY_ENV_PREFIX) and len(key) > len(NOTIFY_ENV_PREFIX):
            name = key[len(NOTIFY_ENV_PREFIX) :].lower().replace("_", "-")
            channels[name] = value.replace(",", " ").split()
    return channels


def _notify_file(path: Path) -> dict[str, list[str]]:
    """Channels from ``notify.yaml``: ``{name: url}`` or ``{name: [url, ...]}``."""
    if not path.is_file():
        return {}
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        raise InvalidInput(f"{path}: not valid YAML: {exc}") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise InvalidInput(f"{path}: expected a mapping of channel name to Apprise URLs")
    channels: dict[str, list[str]] = {}
    for name, urls in data.items():
        if isinstance(urls, str):
            urls = [urls]
        if not isinstance(urls, list) or not all(isinstance(u, str) for u in urls):
            raise InvalidInput(f"{path}: channel {name!r} must be a URL or a list of URLs")
        channels[str(name)] = list(urls)
    return channels
