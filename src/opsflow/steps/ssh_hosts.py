"""Which hosts an ``ssh`` step runs on: its ``hosts`` field, read as written or as rendered.

``hosts`` is one of

- a list: ``[web1, "web2:2222", "[2001:db8::5]:22"]``;
- a string, usually a rendered template: names separated by commas or whitespace, or a JSON
  list (``{{ params.hosts | tojson }}``);
- ``{hosts: [...]}``: the same inline group the ansible step's ``inventory`` takes;
- ``{file: PATH, pattern: GROUP}`` or ``{script: PATH, pattern: GROUP}``: an Ansible inventory
  (any format Ansible reads: INI, YAML, an executable script), parsed by Ansible's own
  ``InventoryManager`` (``opsflow[ansible]``); ``pattern`` (default ``all``) is an Ansible host
  pattern such as ``web:!web3``. A host's ``ansible_host``, ``ansible_port`` and
  ``ansible_user`` are honoured. ``file`` is relative to the workflow's files or absolute on the
  agent; ``script`` is relative to the workflow's files.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .config import StepConfig, StepConfigError
from .ssh_login import Target, parse_target

MAX_HOSTS = 10_000
_SEPARATORS = re.compile(r"[\s,]+")


@dataclass(frozen=True)
class Host:
    """One host of the step: ``name`` as listed (the log prefix and the key of its outputs),
    where to connect, and a user that overrides the step's and the connection's."""

    name: str
    target: Target
    user: str | None = None


def read_hosts(config: StepConfig, workdir: Path, default_port: int) -> list[Host]:
    """The hosts of ``config['hosts']``, in order, without duplicates.

    Raises ``StepConfigError`` naming ``hosts`` (or ``hosts[i]``, ``hosts.file``) and the fix.
    """
    value = config.raw("hosts")
    if value is None:
        raise StepConfigError("hosts", "is required: a list of hosts, or {file: INVENTORY}")
    if isinstance(value, str):
        names = _split(value)
        hosts = [_listed(f"hosts[{i}]", name, default_port) for i, name in enumerate(names)]
    elif isinstance(value, list | tuple):
        items = StepConfig({"hosts": list(value)}).string_list("hosts", required=True)
        hosts = [_listed(f"hosts[{i}]", name, default_port) for i, name in enumerate(items)]
    elif isinstance(value, Mapping):
        hosts = _from_mapping(value, workdir, default_port)
    else:
        raise StepConfigError("hosts", "must be a list of hosts, a string, or {file: INVENTORY}")
    if not hosts:
        raise StepConfigError("hosts", "names no host")
    if len(hosts) > MAX_HOSTS:
        raise StepConfigError("hosts", f"names {len(hosts)} hosts; at most {MAX_HOSTS} per step")
    unique: dict[str, Host] = {}
    for host in hosts:
        unique.setdefault(host.name, host)
    return list(unique.values())


def _split(text: str) -> list[str]:
    stripped = text.strip()
    if stripped.startswith("["):
        try:
            parsed = json.loads(stripped)
        except json.JSONDecodeError:
            parsed = None
        if isinstance(parsed, list):
            return StepConfig({"hosts": parsed}).string_list("hosts", required=True)
        if not re.fullmatch(r"\[[^\]\s]+\](:\d+)?", stripped):
            raise StepConfigError(
                "hosts",
                f"{stripped[:80]!r} is not a JSON list; render a list with "
                "{{ ... | tojson }} or {{ ... | join(',') }}",
            )
    return [name for name in _SEPARATORS.split(stripped) if name]


def _listed(field: str, name: str, default_port: int) -> Host:
    try:
        target = parse_target(name, default_port)
    except ValueError as exc:
        raise StepConfigError(field, str(exc)) from None
    return Host(name=name, target=target)


def _from_mapping(value: Mapping[str, Any], workdir: Path, default_port: int) -> list[Host]:
    given = [key for key in ("hosts", "file", "script") if value.get(key) is not None]
    unknown = sorted(set(value) - {"hosts", "file", "script", "pattern"})
    if unknown:
        raise StepConfigError(f"hosts.{unknown[0]}", "is not a field of hosts")
    if len(given) != 1:
        raise StepConfigError(
            "hosts", "give exactly one of {hosts: [...]}, {file: INVENTORY} or {script: PATH}"
        )
    inner = StepConfig(value)
    if given[0] == "hosts":
        if value.get("pattern") is not None:
            raise StepConfigError("hosts.pattern", "goes with file or script, not hosts")
        items = inner.string_list("hosts", required=True)
        return [_listed(f"hosts.hosts[{i}]", name, default_port) for i, name in enumerate(items)]
    kind = given[0]
    relative = inner.required_text(kind)
    if kind == "file" and Path(relative).is_absolute():
        source = Path(relative)  # an inventory kept on the agent
    else:
        source = _inside(workdir.resolve(), relative, f"hosts.{kind}")
    if not source.exists():
        raise StepConfigError(f"hosts.{kind}", f"{relative!r} does not exist")
    pattern = inner.text("pattern", default="all") or "all"
    return _inventory_hosts(source, pattern, kind, default_port)


def _inside(root: Path, relative: str, field: str) -> Path:
    resolved = (root / relative).resolve()
    if Path(relative).is_absolute() or not resolved.is_relative_to(root):
        raise StepConfigError(field, f"{relative!r} must be inside the workflow's files")
    return resolved


def _inventory_hosts(source: Path, pattern: str, kind: str, default_port: int) -> list[Host]:
    """Hosts of an Ansible inventory matching ``pattern``, read by Ansible itself.

    Blocking (Ansible parses synchronously, and a script inventory runs a program): call it
    in a worker thread."""
    try:
        from ansible.errors import AnsibleError
        from ansible.inventory.manager import InventoryManager
        from ansible.parsing.dataloader import DataLoader
    except ImportError:
        raise StepConfigError(
            f"hosts.{kind}",
            "reading an Ansible inventory needs ansible-core on this agent: install "
            "opsflow[ansible] (pip install 'opsflow[ansible]'), or list the hosts",
        ) from None
    if kind == "script":
        source.chmod(source.stat().st_mode | 0o100)  # the job's own copy; uploads drop +x
    try:
        inventory = InventoryManager(loader=DataLoader(), sources=[str(source)], parse=True)
        matched = inventory.get_hosts(pattern=pattern)
    except AnsibleError as exc:
        raise StepConfigError(f"hosts.{kind}", f"Ansible could not read it: {exc}") from None
    if not inventory.groups.get("all") or not inventory.hosts:
        raise StepConfigError(f"hosts.{kind}", "Ansible found no host in it (does it parse?)")
    hosts: list[Host] = []
    for entry in matched:
        variables = entry.get_vars()
        address = str(variables.get("ansible_host") or entry.name)
        port = variables.get("ansible_port")
        user = variables.get("ansible_user")
        try:
            port_number = int(port) if port is not None else default_port
        except (TypeError, ValueError):
            raise StepConfigError(
                f"hosts.{kind}", f"host {entry.name}: ansible_port {port!r} is not a number"
            ) from None
        hosts.append(
            Host(
                name=entry.name,
                target=Target(address, port_number),
                user=str(user) if user else None,
            )
        )
    if not hosts:
        raise StepConfigError("hosts.pattern", f"{pattern!r} matches no host of the inventory")
    return hosts
