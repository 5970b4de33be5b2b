"""The agent protocol over HTTP: ``/api/v1/agent/...``, one route per call.

Thin: each route authenticates the agent by its agent token (`opsflow.auth.agent_tokens`:
401 for a missing, unknown or revoked one, 403 for a user's API token or another pool), hands
the message (`opsflow.agent.protocol`) to the server's `AgentService` and returns its answer.
A reference to a lease that is no longer current is refused with 409 (``stale-report``). See
``docs/reference/agent-protocol.md``.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import tarfile
import tempfile
from datetime import datetime
from pathlib import Path
from typing import Annotated

from fastapi import APIRouter, Depends, Request, Response

from opsflow.agent.protocol import (
    ArtifactRequest,
    CancelNotice,
    Claimed,
    ClaimRequest,
    HandBack,
    JobRef,
    JobReport,
    Leaving,
    LogBatch,
    Registered,
    Registration,
)
from opsflow.api.problems import error_responses
from opsflow.api.security import declare_schemes
from opsflow.api.services import Services, services_of
from opsflow.auth.agent_tokens import AgentCredential, CheckedTokens, agent_secret, credential_of
from opsflow.auth.tokens import hash_secret
from opsflow.runtime.agent_service import AgentService
from opsflow.store import agent_tokens as token_store
from opsflow.store.base import utcnow

router = APIRouter(prefix="/agent", tags=["agent protocol"])
TAR = "application/x-tar"


async def agent_token(
    request: Request, _schemes: None = Depends(declare_schemes)
) -> AgentCredential:
    """The calling agent's token, checked on every request: a revoked one is refused (401)
    from its revocation on. A token found live is remembered (`CheckedTokens`) until the next
    wake-up of the waiting claims, which every revocation sends to every replica, or for a few
    seconds: most requests then neither take a worker thread nor check out a connection. The
    lookup is a lone read (no write lock on SQLite, no BEGIN and COMMIT round trips on
    PostgreSQL); the token's last use is written at most once a minute, in a transaction of
    its own."""
    services = services_of(request)
    secret_hash = hash_secret(agent_secret(request.headers.get("authorization")))
    now = utcnow()
    runtime = services.extra.get("runtime")
    if runtime is None:  # no runtime, no wake-ups to go by: look it up every time
        credential, _ = await asyncio.to_thread(_look_up, services, secret_hash, now)
        return credential
    checked: CheckedTokens = services.extra.setdefault(CHECKED_KEY, CheckedTokens())
    generation = runtime.bus.jobs_generation  # before the lookup (see `CheckedTokens`)
    remembered = checked.get(secret_hash, generation, now)
    if remembered is None:
        credential, last_used = await asyncio.to_thread(_look_up, services, secret_hash, now)
        checked.put(secret_hash, generation, credential, last_used)
        return credential
    if remembered.touch:
        await asyncio.to_thread(_touch, services, remembered.token_id, now)
    return remembered


CHECKED_KEY = "agent_protocol.checked_tokens"


def _look_up(
    services: Services, secret_hash: str, now: datetime
) -> tuple[AgentCredential, datetime | None]:
    """The credential of the token ``secret_hash`` names and its last use as now recorded."""
    with services.db.read_lone() as session:
        token = token_store.find_token(session, secret_hash)
    credential = credential_of(token, now)
    assert token is not None  # `credential_of` refused it otherwise
    if credential.touch:
        _touch(services, credential.token_id, now)
        return credential, now
    return credential, token.last_used_at


def _touch(services: Services, token_id: str, now: datetime) -> None:
    with services.session() as session:
        token_store.touch_token(session, token_id, now)


agent_token.permission = "agent token"  # type: ignore[attr-defined]  # (no user permission)
AgentCaller = Annotated[AgentCredential, Depends(agent_token)]


def _service(request: Request) -> AgentService:
    service: AgentService = services_of(request).extra["runtime"].agent_service
    return service


@router.post("/register", response_model=Registered, responses=error_responses(401, 403))
async def register(request: Request, body: Registration, token: AgentCaller) -> Registered:
    """Say who the agent is; on a process start its previous process's attempts fail now.
    Pools left out are the token's; another pool is refused (403)."""
    pools = token.pools_for(body.pools)
    return await _service(request).register(body, pools, token_id=token.token_id)


@router.post("/claim", response_model=Claimed, responses=error_responses(401, 403))
async def claim(request: Request, body: ClaimRequest, token: AgentCaller) -> Claimed:
    """Lease up to ``limit`` jobs; waits up to ``wait`` seconds for one to be queued. The
    only answer that carries secrets. A revocation of the token answers a waiting claim at
    once with 401, and no job is leased with a revoked token. A server that begins to stop
    answers a waiting claim at once with no job (the agent's next claim finds another replica
    or waits for this one to come back)."""
    body = body.model_copy(update={"pools": token.pools_for(body.pools)})
    service = _service(request)
    claiming = asyncio.create_task(service.claim(body, token_id=token.token_id))
    gone = asyncio.create_task(_disconnected(request))
    stopping = asyncio.create_task(service.until_stopping())
    try:
        await asyncio.wait({claiming, gone, stopping}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        gone.cancel()
        stopping.cancel()
    if not claiming.done():
        # The agent went away while its claim waited (killed, or stopping), or this server is
        # stopping (which waits for every open request): a job leased now would wait out its
        # lease as "agent lost". Cancelling hands back what was leased.
        claiming.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await claiming
        return Claimed(jobs=[])
    return Claimed(jobs=claiming.result())


async def _disconnected(request: Request) -> None:
    """Until the client closes its connection (the body is already read)."""
    while (await request.receive())["type"] != "http.disconnect":
        pass


@router.post("/start", response_model=CancelNotice, responses=error_responses(401, 409))
async def start(request: Request, body: JobRef, _: AgentCaller) -> CancelNotice:
    """The agent has begun the job."""
    return await _service(request).start(body)


@router.post("/heartbeat", response_model=CancelNotice, responses=error_responses(401, 409))
async def heartbeat(request: Request, body: JobRef, _: AgentCaller) -> CancelNotice:
    """Extend the job's lease; the answer says whether to stop it."""
    return await _service(request).heartbeat(body)


@router.post("/logs", status_code=204, responses=error_responses(401, 409))
async def logs(request: Request, body: LogBatch, _: AgentCaller) -> Response:
    """Store a batch of the job's log lines."""
    await _service(request).send_logs(body)
    return Response(status_code=204)


@router.post("/report", status_code=204, responses=error_responses(401, 409))
async def report(request: Request, body: JobReport, _: AgentCaller) -> Response:
    """How the job ended; accepted once, while the lease is still this attempt's."""
    await _service(request).report(body)
    return Response(status_code=204)


@router.post("/hand-back", status_code=204, responses=error_responses(401, 409))
async def hand_back(request: Request, body: HandBack, _: AgentCaller) -> Response:
    """Give a claimed job back unrun: it is queued again."""
    await _service(request).hand_back(body.job)
    return Response(status_code=204)


@router.post("/leave", status_code=204, responses=error_responses(401))
async def leave(request: Request, body: Leaving, token: AgentCaller) -> Response:
    """The agent stops (its drain ended): shown offline at once, until it registers again.
    Only the token an agent registered with can say it leaves (another changes nothing)."""
    await _service(request).leave(body.agent_id, token_id=token.token_id)
    return Response(status_code=204)


@router.post(
    "/artifact",
    response_class=Response,
    responses={200: {"content": {"application/octet-stream": {}}}, **error_responses(401, 409)},
)
async def artifact(request: Request, body: ArtifactRequest, _: AgentCaller) -> Response:
    """A file an earlier step of the job's execution left (e.g. a saved plan)."""
    data = await _service(request).fetch_artifact(body.job, body.step_id, body.name)
    return Response(data, media_type="application/octet-stream")


@router.get(
    "/bundles/{digest}",
    response_class=Response,
    responses={200: {"content": {TAR: {}}}},
)
async def bundle(request: Request, digest: str, _: AgentCaller) -> Response:
    """A workflow version's files by content hash, as an uncompressed tar (modes kept)."""
    service = _service(request)
    with tempfile.TemporaryDirectory(prefix="opsflow-bundle-") as tmp:
        root = Path(tmp) / "files"
        await service.fetch_bundle(digest, root)
        data = await asyncio.to_thread(_tar, root)
    return Response(data, media_type=TAR, headers={"Cache-Control": "private, immutable"})


def _tar(root: Path) -> bytes:
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w") as tar:
        for path in sorted(root.rglob("*")):
            if path.is_file():
                tar.add(path, arcname=path.relative_to(root).as_posix())
    return out.getvalue()
