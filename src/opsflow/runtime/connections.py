"""Connections on their way to a job: checked when the job is made, delivered at its claim.

A step names a connection by ``connection:`` (a notify step's ``channel`` is the name of a
notify connection). When the runtime makes the step's job it checks that the connection
exists, is enabled and is of a type the step uses; if not, the attempt fails at once with
that reason, before any agent sees it (retrying cannot fix it). The values are decrypted only
when an agent claims the job, into the copy handed over (`CONNECTION_KEY`), never into the
stored spec.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from opsflow.auth.connections import ConnectionType, ConnectionUnusable, usable
from opsflow.store import connections as connections_store
from opsflow.store.session import Session

# The key under which a claimed job's in-memory spec carries its ConnectionGrant (as a dict).
# It exists only in the copy handed to the agent, never in the stored spec.
CONNECTION_KEY = "_connection"

# The connection types each step type may use, by the step type's name (empty: any type; a
# script gets the values as environment variables).
STEP_CONNECTION_TYPES: dict[str, tuple[ConnectionType, ...]] = {
    "script": (),
    "http": (ConnectionType.HTTP,),
    "notify": (ConnectionType.NOTIFY,),
    "terraform": (ConnectionType.TERRAFORM,),
    "ssh": (ConnectionType.SSH,),
}


def named_connection(config: Mapping[str, Any]) -> str | None:
    """The connection a job's config names, if any."""
    name = config.get("connection")
    return str(name) if name else None


def check_usable(session: Session, step_type: str, config: dict[str, Any]) -> None:
    """Raise `ConnectionUnusable` (with the reason) unless the connection the job's config
    names exists, is enabled and is of a type ``step_type`` uses. A notify connection's
    services (Apprise schemes, not secret) are noted in ``config["services"]``, so the job's
    action reads ``notify.slack``."""
    name = named_connection(config)
    if name is None:
        return
    meta = connections_store.find(session, name)
    problem = usable(meta, name, STEP_CONNECTION_TYPES.get(step_type))
    if problem is not None and meta is None and step_type == "notify":
        variable = "OPSFLOW_NOTIFY_" + name.upper().replace("-", "_").replace(".", "_")
        problem = (
            f"notify channel {name!r} is not configured: a channel is a notify connection; "
            f"set {variable} on the server, or create it with opsflow connections set {name} "
            "--type notify --from-file -"
        )
    if problem is not None:
        raise ConnectionUnusable(f"connection: {problem}")
    if meta is not None and meta.type == ConnectionType.NOTIFY:
        config["services"] = list(meta.services)
