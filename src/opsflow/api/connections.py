"""Connections: admins create, change, test and delete them; nobody reads a value back.

Listing needs only ``workflows:list`` (so the editor and validation can offer the names and
types), and shows a viewer the name, type, enabled flag and description. Everything else needs
``connections:manage``. Responses carry `ConnectionOut`, built from `ConnectionMeta`, which
has no value field: values go in through ``PUT`` and come out only inside a job's claim.
"""

from __future__ import annotations

import importlib
import time
from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request, Response
from pydantic import BaseModel, Field
from starlette.concurrency import run_in_threadpool

from opsflow.api.problems import error_responses
from opsflow.api.security import require
from opsflow.api.services import services_of
from opsflow.auth.connections import ConnectionType, ConnectionVault, check_name
from opsflow.auth.credentials import Principal
from opsflow.auth.permissions import Permission
from opsflow.store import connections as store
from opsflow.store.connections import ConnectionMeta

router = APIRouter(tags=["connections"])

Manager = Annotated[Principal, Depends(require(Permission.CONNECTIONS_MANAGE))]
Lister = Annotated[Principal, Depends(require(Permission.WORKFLOWS_LIST))]
VAULT_KEY = "connections"  # services.extra[VAULT_KEY] is the server's ConnectionVault
DEFAULT_TEST_TIMEOUT = 10.0


class ConnectionOut(BaseModel):
    """A connection as the API shows it: never its values. Fields after ``description`` are
    shown to those who may manage connections only (null for others)."""

    name: str
    type: ConnectionType
    enabled: bool
    description: str
    reference: str = Field(description="How a step names it: connection: NAME.")
    fields: list[str] | None = Field(
        None, description="The names of the fields that are set (never their values)."
    )
    created_at: datetime | None = None
    updated_at: datetime | None = None
    created_by: str | None = None
    updated_by: str | None = None
    last_tested_at: datetime | None = None
    last_test_ok: bool | None = Field(None, description="The last test's outcome; null: never.")
    last_test_error: str | None = None

    @classmethod
    def of(cls, meta: ConnectionMeta, *, full: bool = True) -> ConnectionOut:
        out = cls(
            name=meta.name,
            type=ConnectionType(meta.type),
            enabled=meta.enabled,
            description=meta.description,
            reference=f"connection: {meta.name}",
        )
        if not full:
            return out
        return out.model_copy(
            update={
                "fields": list(meta.fields),
                "created_at": meta.created_at,
                "updated_at": meta.updated_at,
                "created_by": meta.created_by,
                "updated_by": meta.updated_by,
                "last_tested_at": meta.last_tested_at,
                "last_test_ok": meta.last_test_ok,
                "last_test_error": meta.last_test_error,
            }
        )


class ConnectionSet(ConnectionOut):
    """The answer to ``PUT``: the metadata and whether it was created."""

    created: bool


class ConnectionPut(BaseModel):
    type: ConnectionType = Field(description="ssh, http, notify, terraform or git.")
    values: dict[str, Any] = Field(
        default_factory=dict,
        description="The type's fields (write-only: no response includes them). ssh: user, "
        "private_key | password, passphrase, known_hosts, accept_new, jump_host, port, host; "
        "http: base_url, auth (none | bearer | basic | header), token, username, password, "
        "header_name, header_value; notify: url; terraform: env; git: token | deploy_key, "
        "username, url.",
    )
    keep: list[str] = Field(
        default_factory=list,
        description="Fields left out of values that keep their current value (an edit form "
        "that leaves a write-only field empty).",
    )
    description: str | None = Field(
        None, max_length=1000, description="Leave out to keep the current description."
    )
    enabled: bool | None = Field(None, description="Leave out to keep it (new: enabled).")


class ConnectionPatch(BaseModel):
    enabled: bool | None = Field(None, description="Enable or disable the connection.")
    description: str | None = Field(None, max_length=1000)


class ConnectionTested(BaseModel):
    """The outcome of ``POST .../test``."""

    name: str
    ok: bool
    detail: str = Field(description="What was checked (on success) or why it failed.")
    duration_ms: int
    connection: ConnectionOut


def vault_of(request: Request) -> ConnectionVault:
    vault: ConnectionVault = services_of(request).extra[VAULT_KEY]
    return vault


@router.get("/connections", response_model=list[ConnectionOut], responses=error_responses(401, 403))
def list_connections(request: Request, principal: Lister) -> list[ConnectionOut]:
    """Every connection, by name (full metadata for those who may manage connections)."""
    full = principal.can(Permission.CONNECTIONS_MANAGE)
    with services_of(request).session() as session:
        return [ConnectionOut.of(meta, full=full) for meta in store.list_connections(session)]


@router.get(
    "/connections/{name}",
    response_model=ConnectionOut,
    responses=error_responses(401, 403, 404, 422),
)
def get_connection(request: Request, name: str, _principal: Manager) -> ConnectionOut:
    """One connection's metadata: which fields are set, never their values."""
    check_name(name)
    with services_of(request).session() as session:
        return ConnectionOut.of(store.get_meta(session, name))


@router.put(
    "/connections/{name}",
    response_model=ConnectionSet,
    responses={201: {"model": ConnectionSet}, **error_responses(401, 403, 409, 422)},
)
def put_connection(
    request: Request, response: Response, name: str, body: ConnectionPut, principal: Manager
) -> ConnectionSet:
    """Create the connection (201) or replace its type and values (200). Bad values answer
    422 naming the field (``values.private_key``); nothing is written then."""
    meta, created = vault_of(request).set(
        name,
        body.type.value,
        body.values,
        principal.name,
        description=body.description,
        enabled=body.enabled,
        keep=body.keep,
    )
    response.status_code = 201 if created else 200
    return ConnectionSet(**ConnectionOut.of(meta).model_dump(), created=created)


@router.patch(
    "/connections/{name}",
    response_model=ConnectionOut,
    responses=error_responses(401, 403, 404, 422),
)
def patch_connection(
    request: Request, name: str, body: ConnectionPatch, principal: Manager
) -> ConnectionOut:
    """Enable or disable the connection (a step naming a disabled one fails at once), or
    change its description."""
    check_name(name)
    meta = vault_of(request).update(
        name, principal.name, enabled=body.enabled, description=body.description
    )
    return ConnectionOut.of(meta)


@router.delete(
    "/connections/{name}",
    response_model=ConnectionOut,
    responses=error_responses(401, 403, 404, 422),
)
def delete_connection(request: Request, name: str, principal: Manager) -> ConnectionOut:
    """Delete the connection; steps that name it fail at once from now on."""
    check_name(name)
    return ConnectionOut.of(vault_of(request).delete(name, principal.name))


@router.post(
    "/connections/{name}/test",
    response_model=ConnectionTested,
    responses=error_responses(401, 403, 404, 422),
)
async def test_connection(
    request: Request,
    name: str,
    principal: Manager,
    timeout: Annotated[float, Query(gt=0, le=120, description="Seconds.")] = DEFAULT_TEST_TIMEOUT,
) -> ConnectionTested:
    """Check the connection for real, from the server (an HTTP request to its base URL, an
    SSH login running ``true``, ...; see docs/reference/connections.md), and record when it
    last worked. A failed check is an answer (``ok: false`` with the reason), not an error."""
    check_name(name)
    vault = vault_of(request)
    services = services_of(request)

    def reveal() -> tuple[str, dict[str, str]]:
        with services.session() as session:
            found = vault.reveal(session, name)
        return found.meta.type, found.values

    kind, values = await run_in_threadpool(reveal)
    # The checks bring httpx (and their step modules): imported by the first test, in a worker
    # thread, not at the server's start (it stays small while idle; see benchmarks/README.md).
    await run_in_threadpool(importlib.import_module, "opsflow.auth.connection_checks")
    from opsflow.auth.connection_checks import CheckFailed, check

    started = time.perf_counter()
    try:
        detail, ok = await check(kind, values, timeout), True
    except CheckFailed as exc:
        detail, ok = exc.message, False
    duration_ms = round((time.perf_counter() - started) * 1000)
    meta = await run_in_threadpool(
        vault.record_test, name, principal.name, ok, None if ok else detail
    )
    return ConnectionTested(
        name=name, ok=ok, detail=detail, duration_ms=duration_ms, connection=ConnectionOut.of(meta)
    )
