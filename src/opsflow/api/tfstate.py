"""Terraform state kept by opsflow: Terraform's HTTP backend protocol, and a read API for people.

Protocol (``/tfstate/{name}``, names may contain ``/``): GET the current state (404 when
none), POST a new version (``?ID=`` the lock ID while locked), DELETE the current state,
LOCK (200 when taken; 423 with the holder's lock info, which Terraform prints) and UNLOCK
(409 when another lock holds the state; no body is ``terraform force-unlock``, for those who
may force-unlock). Terraform authenticates with HTTP Basic: a terraform step uses its job id
and lease token, valid only while the job runs and only for the job's own state; a person uses
their name and password or API token and needs ``workflows:run``.

People read the list and the history (who wrote what, no documents) with ``workflows:read``;
a version's document, like the current one, needs ``workflows:run``. An admin
(``agents:manage``) may force-unlock a state whose holder is gone.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import time
from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Query, Request
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel
from starlette.concurrency import run_in_threadpool

from opsflow.api.limits import INT_MAX
from opsflow.api.problems import error_responses
from opsflow.api.security import require
from opsflow.api.services import services_of
from opsflow.auth.credentials import Principal, authenticate_header, authenticate_token
from opsflow.auth.permissions import Permission
from opsflow.auth.tokens import TOKEN_PREFIX
from opsflow.errors import Forbidden, InvalidInput, NotFound, PayloadTooLarge
from opsflow.spec.state_names import name_problem
from opsflow.store import audit
from opsflow.store import tfstate as store
from opsflow.store.base import utcnow

router = APIRouter(tags=["terraform state"])

MAX_STATE_BYTES = 64 * 1024 * 1024
_STATE = "/tfstate/{name:path}"


def checked_name(name: str) -> str:
    """``name`` if it is a valid state name; ``InvalidInput`` saying what is allowed."""
    problem = name_problem(name)
    if problem is not None:
        raise InvalidInput(problem)
    return name


def state_caller(request: Request, name: str) -> store.StateWriter:
    """Who calls the protocol routes on the state ``name``: a running job (Basic job id :
    lease token), which reaches only its own state, or a person allowed to run workflows
    (bearer token, or Basic with a password or an API token), who reaches any."""
    header = request.headers.get("authorization") or ""
    scheme, _, value = header.strip().partition(" ")
    services = services_of(request)
    with services.session() as session:
        principal: Principal | None = None
        if scheme.lower() == "basic" and value.strip():
            user, password = _basic(value.strip())
            writer = store.job_writer(session, user, password)
            if writer is not None:
                if not writer.may_use(checked_name(name)):
                    own = f"only its own state {writer.state_name!r}"
                    raise Forbidden(
                        f"job {writer.job_id} ({writer.describe()}) may use "
                        f"{own if writer.state_name else 'no state'}, not {name!r}"
                    )
                return writer
            if password.startswith(TOKEN_PREFIX):  # Terraform can only send Basic credentials
                principal = authenticate_token(session, password, utcnow())
        if principal is None:
            principal = authenticate_header(session, header, utcnow())
    request.state.principal = principal
    if not principal.can(Permission.WORKFLOWS_RUN):
        raise Forbidden(
            f"requires permission {Permission.WORKFLOWS_RUN}; your role is {principal.role}"
        )
    return store.StateWriter(user=principal.name)


state_caller.permission = Permission.WORKFLOWS_RUN  # type: ignore[attr-defined]
Caller = Annotated[store.StateWriter, Depends(state_caller)]


def _basic(value: str) -> tuple[str, str]:
    try:
        user, sep, password = base64.b64decode(value, validate=True).decode().partition(":")
    except (binascii.Error, UnicodeDecodeError):
        return "", ""
    return (user, password) if sep else ("", "")


# -- reading state and history (routed before the protocol's catch-all {name:path}) --------


def _when(timestamp: float) -> datetime:
    return datetime.fromtimestamp(timestamp, UTC)


class LockOut(BaseModel):
    id: str
    holder: str
    execution_id: str | None
    step_id: str | None
    operation: str | None
    created_at: datetime

    @classmethod
    def of(cls, lock: store.StateLock) -> LockOut:
        operation = lock.info.get("Operation")
        return cls(
            id=lock.lock_id,
            holder=lock.holder,
            execution_id=lock.execution_id,
            step_id=lock.step_id,
            operation=operation if isinstance(operation, str) else None,
            created_at=_when(lock.created_at),
        )


class VersionOut(BaseModel):
    """One version's facts; who wrote it: ``execution_id``, ``step_id`` and ``job_id`` of the
    terraform step's job, or none of them for a person, and ``written_by`` in words
    (``execution E, step S`` or the person's name)."""

    version: int
    serial: int
    lineage: str
    terraform_version: str
    size: int
    created_at: datetime
    execution_id: str | None
    step_id: str | None
    job_id: str | None
    written_by: str | None

    @classmethod
    def of(cls, version: store.StateVersion) -> VersionOut:
        skip = {"created_at", "written_by"}
        facts = {k: getattr(version, k) for k in cls.model_fields if k not in skip}
        writer = version.written_by
        if version.execution_id is not None:
            writer = f"execution {version.execution_id}, step {version.step_id}"
        return cls(**facts, created_at=_when(version.created_at), written_by=writer)


class StateOut(BaseModel):
    name: str
    current: VersionOut | None
    versions: int
    updated_at: datetime
    lock: LockOut | None

    @classmethod
    def of(cls, summary: store.StateSummary) -> StateOut:
        return cls(
            name=summary.name,
            current=VersionOut.of(summary.current) if summary.current else None,
            versions=summary.versions,
            updated_at=_when(summary.updated_at),
            lock=LockOut.of(summary.lock) if summary.lock else None,
        )


class VersionDocument(VersionOut):
    name: str
    state: dict[str, Any]


class UnlockOut(BaseModel):
    name: str
    released: LockOut | None


Reader = Depends(require(Permission.WORKFLOWS_READ))
StateReader = Depends(require(Permission.WORKFLOWS_RUN))


@router.get("/tfstate", response_model=list[StateOut], responses=error_responses(401, 403))
def list_states(request: Request, _: Principal = Reader) -> list[StateOut]:
    """Every state: its current version (serial, size, who wrote it) and its lock holder."""
    with services_of(request).session() as session:
        return [StateOut.of(s) for s in store.list_states(session)]


@router.get(
    "/tfstate/{name:path}/versions",
    response_model=list[VersionOut],
    responses=error_responses(401, 403, 404, 422),
)
def list_versions(request: Request, name: str, _: Principal = Reader) -> list[VersionOut]:
    """A state's history, newest first."""
    with services_of(request).session() as session:
        return [VersionOut.of(v) for v in store.list_versions(session, checked_name(name))]


@router.get(
    "/tfstate/{name:path}/versions/{version}",
    response_model=VersionDocument,
    responses=error_responses(401, 403, 404, 422),
)
def get_version(
    request: Request,
    name: str,
    version: Annotated[int, Path(ge=1, le=INT_MAX)],
    _: Principal = StateReader,
) -> VersionDocument:
    """One version of a state, with its document: the same data as the protocol's GET, so the
    same permission (``workflows:run``; a state holds resource attributes, secrets too)."""
    with services_of(request).session() as session:
        found, data = store.get_version(session, checked_name(name), version)
    return VersionDocument(
        **VersionOut.of(found).model_dump(), name=found.name, state=json.loads(data)
    )


@router.post(
    "/tfstate/{name:path}/force-unlock",
    response_model=UnlockOut,
    responses=error_responses(401, 403, 422),
)
def force_unlock(
    request: Request,
    name: str,
    principal: Principal = Depends(require(Permission.AGENTS_MANAGE)),
) -> UnlockOut:
    """Remove a state's lock whoever holds it: for a holder that is gone for good."""
    name = checked_name(name)
    released = _force_unlock(request, name, principal, via="api")
    return UnlockOut(name=name, released=LockOut.of(released) if released else None)


def _force_unlock(
    request: Request, name: str, principal: Principal, *, via: str
) -> store.StateLock | None:
    """Remove whatever lock ``name`` has and audit it (``via``: api or terraform)."""
    with services_of(request).session() as session:
        released = store.force_unlock(session, name)
        details: dict[str, Any] = {"via": via}
        if released is not None:
            details.update(lock=released.lock_id, holder=released.holder)
        audit.record(session, principal.name, "tfstate.force_unlock", name, details)
    return released


# -- Terraform's HTTP backend protocol ------------------------------------------------------


@router.get(_STATE, responses=error_responses(401, 403, 404, 422))
def get_state(request: Request, name: str, caller: Caller) -> Response:
    """The current state document (what Terraform reads); 404 when there is none."""
    name = checked_name(name)
    with services_of(request).session() as session:
        data = store.current_state(session, name)
    if data is None:
        raise NotFound(f"no Terraform state named {name!r} yet")
    md5 = base64.b64encode(hashlib.md5(data).digest()).decode()
    return Response(data, media_type="application/json", headers={"Content-MD5": md5})


@router.post(_STATE, responses=error_responses(400, 401, 403, 409, 413, 422, 423))
async def post_state(
    request: Request,
    name: str,
    caller: Caller,
    lock_id: Annotated[str | None, Query(alias="ID", description="The lock ID.")] = None,
) -> JSONResponse:
    """Store a new version (Terraform's state upload); a locked state needs its lock ``ID``."""
    name = checked_name(name)
    data = await _body(request)
    declared = request.headers.get("content-md5")
    if declared and base64.b64encode(hashlib.md5(data).digest()).decode() != declared.strip():
        raise InvalidInput("the state does not match its Content-MD5 header (damaged upload)")

    def write() -> store.StateVersion:
        with services_of(request).session() as session:
            return store.write_state(
                session, name, data, lock_id=lock_id, writer=caller, now=time.time()
            )

    version = await run_in_threadpool(write)
    return JSONResponse({"name": name, "version": version.version, "serial": version.serial})


@router.delete(_STATE, responses=error_responses(401, 403, 409, 422, 423))
def delete_state(
    request: Request,
    name: str,
    caller: Caller,
    lock_id: Annotated[str | None, Query(alias="ID", description="The lock ID.")] = None,
) -> JSONResponse:
    """Forget the current state (its versions stay in the history)."""
    name = checked_name(name)
    with services_of(request).session() as session:
        store.delete_state(session, name, lock_id=lock_id, now=time.time())
    return JSONResponse({"name": name, "deleted": True})


@router.api_route(_STATE, methods=["LOCK"], include_in_schema=False)
async def lock_state(request: Request, name: str, caller: Caller) -> JSONResponse:
    """Take the lock (200), or 423 with the holder's lock info for Terraform to print."""
    name = checked_name(name)
    info = _lock_info(await _body(request))

    def lock() -> store.StateLock:
        with services_of(request).session() as session:
            return store.acquire_lock(
                session, name, lock_id=info["ID"], info=info, writer=caller, now=time.time()
            )

    try:
        taken = await run_in_threadpool(lock)
    except store.StateLocked as exc:
        return JSONResponse(exc.lock.terraform_info(), status_code=423)
    return JSONResponse(taken.terraform_info())


@router.api_route(_STATE, methods=["UNLOCK"], include_in_schema=False)
async def unlock_state(request: Request, name: str, caller: Caller) -> JSONResponse:
    """Release the lock whose ID the body names (409 when another lock holds the state).

    No body is what ``terraform force-unlock`` sends: a force unlock, allowed to a person who
    may force-unlock (``agents:manage``) and audited; anyone else is told what to do instead.
    """
    name = checked_name(name)
    data = await _body(request)
    if not data.strip():
        principal: Principal | None = getattr(request.state, "principal", None)
        if caller.job_id is not None or principal is None:
            raise InvalidInput('UNLOCK needs the lock info Terraform sent with LOCK (its "ID")')
        if not principal.can(Permission.AGENTS_MANAGE):
            raise Forbidden(
                f"an UNLOCK without lock info (terraform force-unlock) removes any holder's "
                f"lock and requires permission {Permission.AGENTS_MANAGE}; your role is "
                f"{principal.role}. Ask an admin to run `opsflow tfstate unlock {name}`"
            )
        released = await run_in_threadpool(_force_unlock, request, name, principal, via="terraform")
        return JSONResponse({"name": name, "unlocked": released.lock_id if released else None})
    info = _lock_info(data)

    def unlock() -> None:
        with services_of(request).session() as session:
            store.release_lock(session, name, info["ID"])

    await run_in_threadpool(unlock)
    return JSONResponse({"name": name, "unlocked": info["ID"]})


async def _body(request: Request) -> bytes:
    data = bytearray()
    async for chunk in request.stream():
        data += chunk
        if len(data) > MAX_STATE_BYTES:
            raise PayloadTooLarge(f"a state may be at most {MAX_STATE_BYTES // 2**20} MB")
    return bytes(data)


def _lock_info(data: bytes) -> dict[str, Any]:
    try:
        info = json.loads(data)
    except (ValueError, UnicodeDecodeError):
        info = None
    if not isinstance(info, dict) or not isinstance(info.get("ID"), str) or not info["ID"]:
        raise InvalidInput('the body must be Terraform lock info: a JSON object with an "ID"')
    if len(info["ID"]) > 100:
        raise InvalidInput("the lock ID is longer than 100 characters")
    return info
