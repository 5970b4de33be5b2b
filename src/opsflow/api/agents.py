"""Agents as operators see them: ``GET /agents``, ``GET /agents/{id}``, ``POST
/agents/{id}/drain`` (and ``/undrain``, ``/revoke``); and their credentials: ``GET|POST
/agents/tokens``, ``DELETE /agents/tokens/{id}`` (admins: ``agents:manage``). A token's
secret appears in exactly one response, the one that creates it.

Presence is the ``agents`` table, written when an agent registers and, at most every half
lease (5 s at most), when it claims or heartbeats; so every replica answers alike. An agent is
online while it was seen within `online_window` (two leases and three renewals of an idle
agent's waiting claim, which renews it every lease, 10 s at most: 30 s with the default 15 s
lease) and did not leave since: an agent says it leaves as it stops, and revoking its agent
token marks it left in the revocation's transaction (``revoked`` then says why).
"""

from __future__ import annotations

import time
from datetime import datetime
from typing import Annotated, Literal

from fastapi import APIRouter, Depends, Query, Request
from pydantic import BaseModel, Field

from opsflow.api.execution_models import iso
from opsflow.api.problems import error_responses
from opsflow.api.security import require
from opsflow.api.services import services_of
from opsflow.auth.agent_tokens import issue_agent_token
from opsflow.auth.credentials import Principal
from opsflow.auth.permissions import Permission
from opsflow.errors import InvalidInput
from opsflow.runtime.host import RuntimeHost
from opsflow.runtime.roster import online_window
from opsflow.store import agent_tokens as token_store
from opsflow.store import agents as store
from opsflow.store import audit
from opsflow.store.agent_tokens import AgentToken
from opsflow.store.base import utcnow
from opsflow.store.session import Session

router = APIRouter(tags=["agents"])

Reader = Annotated[Principal, Depends(require(Permission.EXECUTIONS_READ))]
Manager = Annotated[Principal, Depends(require(Permission.AGENTS_MANAGE))]


class AgentOut(BaseModel):
    id: str = Field(description="The agent's persistent id.")
    pools: list[str] = Field(description="The pools it serves.")
    labels: dict[str, str] = Field(description="Its labels.")
    version: str = Field(description="Its opsflow version, as it said at registration.")
    hostname: str = Field(description="Where it runs, as it said.")
    online: bool = Field(
        description="Seen within the online timeout (see last_seen) and not left since (an "
        "agent whose drain ended tells the server it leaves: offline at once) and its agent "
        "token not revoked."
    )
    revoked: bool = Field(
        description="The agent token it registered with was revoked: it is refused and "
        'offline from the revocation on (its running jobs become "agent lost" when their '
        "leases expire), until it registers with a live token."
    )
    draining: bool = Field(description="Gets no more jobs; its running jobs finish.")
    last_seen: str = Field(description="When it last registered or claimed (ISO 8601).")
    first_seen: str = Field(description="When it was first seen (ISO 8601).")
    running: list[str] = Field(description="Ids of the jobs it holds now.")
    jobs_done: int = Field(description="Attempts it ran that completed.")
    jobs_failed: int = Field(description="Attempts it ran that failed or timed out.")
    concurrency: int | None = Field(
        description="Its job slots: how many jobs it runs at once, as it registered them "
        "(`--concurrency` of `opsflow agent`, or of `opsflow server` for its local agent). "
        "null: not known (an agent that has not registered since the server began to store "
        "it)."
    )
    token_id: str | None = Field(
        description="The agent token it registered with (none: a server's local agent)."
    )

    @classmethod
    def of(
        cls, agent: store.AgentRecord, now: float, timeout: float, revoked: set[str]
    ) -> AgentOut:
        """``revoked``: the ids of revoked agent tokens among those of the agents shown."""
        token_revoked = agent.token_id is not None and agent.token_id in revoked
        return cls(
            id=agent.id,
            pools=agent.pools,
            labels=agent.labels,
            version=agent.version,
            hostname=agent.hostname,
            online=not token_revoked and agent.left_at is None and now - agent.last_seen <= timeout,
            revoked=token_revoked,
            draining=agent.draining,
            last_seen=iso(agent.last_seen) or "",
            first_seen=iso(agent.first_seen) or "",
            running=agent.running,
            jobs_done=agent.done,
            jobs_failed=agent.failed,
            concurrency=agent.concurrency,
            token_id=agent.token_id,
        )


class AgentTokenOut(BaseModel):
    id: str
    name: str
    pool: str = Field(description="The one pool agents with this token serve.")
    prefix: str = Field(description="The secret's first characters, to recognise it.")
    created_by: str
    created_at: datetime
    revoked_at: datetime | None
    last_used_at: datetime | None
    active: bool = Field(description="Not revoked.")
    agents: list[str] = Field(description="Ids of the agents that registered with it.")

    @classmethod
    def of(cls, token: AgentToken) -> AgentTokenOut:
        return cls(
            id=token.id,
            name=token.name,
            pool=token.pool,
            prefix=token.prefix,
            created_by=token.created_by,
            created_at=token.created_at,
            revoked_at=token.revoked_at,
            last_used_at=token.last_used_at,
            active=token.revoked_at is None,
            agents=token.agents,
        )


class AgentTokenCreate(BaseModel):
    pool: str = Field(
        min_length=1,
        max_length=100,
        pattern=r"^\S+$",
        description="The pool its agents serve (a step's `agent.pool`).",
    )
    name: str = Field("", max_length=200, description="What it is for, e.g. eu-hosts.")


class AgentTokenCreated(AgentTokenOut):
    """The only time the secret is shown: store it now (``OPSFLOW_TOKEN`` of ``opsflow agent``)."""

    token: str = Field(description="The secret, opfa_...; shown only in this response.")


def _out(
    session: Session, agents: list[store.AgentRecord], now: float, timeout: float
) -> list[AgentOut]:
    """The agents as shown, each saying whether its agent token was revoked."""
    revoked = token_store.revoked_among(session, {a.token_id for a in agents if a.token_id})
    return [AgentOut.of(a, now, timeout, revoked) for a in agents]


def online_timeout(request: Request) -> float:
    return online_window(services_of(request).settings.lease_seconds)


AgentState = Literal["online", "offline", "revoked", "draining"]


def _in_state(agent: AgentOut, state: AgentState) -> bool:
    """``online`` and ``offline`` by `AgentOut.online` (a draining agent is online or not),
    ``revoked`` by its token, ``draining`` by its flag."""
    match state:
        case "online":
            return agent.online
        case "offline":
            return not agent.online
        case "revoked":
            return agent.revoked
        case "draining":
            return agent.draining


@router.get("/agents", response_model=list[AgentOut], responses=error_responses(401, 403, 422))
def list_agents(
    request: Request,
    _: Reader,
    pool: Annotated[str | None, Query(description="Only agents serving this pool.")] = None,
    state: Annotated[
        AgentState | None,
        Query(description="Only agents in this state (online includes draining ones)."),
    ] = None,
) -> list[AgentOut]:
    """Every agent seen (of ``pool``, in ``state``), most recently seen first."""
    now, timeout = time.time(), online_timeout(request)
    with services_of(request).session() as session:
        agents = _out(session, store.list_agents(session), now, timeout)
    return [
        a
        for a in agents
        if (pool is None or pool in a.pools) and (state is None or _in_state(a, state))
    ]


@router.get(
    "/agents/tokens", response_model=list[AgentTokenOut], responses=error_responses(401, 403)
)
def list_agent_tokens(request: Request, _: Manager) -> list[AgentTokenOut]:
    """Every agent token, newest first (never a secret), with the agents that used each."""
    with services_of(request).session() as session:
        return [AgentTokenOut.of(t) for t in token_store.list_tokens(session)]


@router.post(
    "/agents/tokens",
    response_model=AgentTokenCreated,
    status_code=201,
    responses=error_responses(401, 403, 422),
)
def create_agent_token(
    request: Request, body: AgentTokenCreate, principal: Manager
) -> AgentTokenCreated:
    """A new agent token of one pool; the response is the only place its secret appears."""
    with services_of(request).session() as session:
        token, secret = issue_agent_token(
            session, name=body.name, pool=body.pool, created_by=principal.name
        )
        audit.record(
            session,
            principal.name,
            "agent_token.create",
            token.id,
            {"pool": token.pool, "name": token.name},
        )
    return AgentTokenCreated(**AgentTokenOut.of(token).model_dump(), token=secret)


def _revoke(request: Request, token_id: str, principal: Principal, via: str | None) -> AgentToken:
    """Revoke the token, audit it, then wake every waiting claim (on every replica) so one
    made with this token answers 401 now rather than when its wait runs out. Revoking a token
    already revoked changes nothing and audits nothing: the answer is its existing state."""
    services = services_of(request)
    with services.session() as session:
        token, revoked_now = token_store.revoke_token(session, token_id, utcnow())
        if not revoked_now:
            return token
        detail = {"pool": token.pool, "agents": token.agents}
        audit.record(
            session,
            principal.name,
            "agent_token.revoke",
            token_id,
            detail if via is None else {**detail, "agent": via},
        )
    host: RuntimeHost = services.extra["runtime"]
    host.runtime.jobs.forget(token.agents)  # offline: no presence write is remembered for them
    host.bus.jobs_queued()
    return token


@router.delete(
    "/agents/tokens/{token_id}",
    response_model=AgentTokenOut,
    responses=error_responses(401, 403, 404),
)
def revoke_agent_token(request: Request, token_id: str, principal: Manager) -> AgentTokenOut:
    """Revoke an agent token at once: every agent request made with it is refused (401) from
    now on, a waiting claim included; its agents are offline (``revoked``) from now on, and
    their running jobs become "agent lost" when their leases expire. Idempotent: revoking a
    revoked token answers 200 with its existing state (the first ``revoked_at``) and writes no
    new audit entry."""
    return AgentTokenOut.of(_revoke(request, token_id, principal, None))


@router.post(
    "/agents/{agent_id}/revoke",
    response_model=AgentTokenOut,
    responses=error_responses(401, 403, 404, 422),
)
def revoke_agent(request: Request, agent_id: str, principal: Manager) -> AgentTokenOut:
    """Revoke the agent token this agent registered with (and so every agent using it).
    Idempotent like ``DELETE /agents/tokens/{id}``: 200 with the existing revoked state."""
    with services_of(request).session() as session:
        token_id = token_store.token_of_agent(session, agent_id)
    if token_id is None:
        raise InvalidInput(
            f"agent {agent_id!r} registered without an agent token (a server's local agent): "
            "there is nothing to revoke; stop that server or start it with --no-local-agent"
        )
    return AgentTokenOut.of(_revoke(request, token_id, principal, agent_id))


@router.get("/agents/{agent_id}", response_model=AgentOut, responses=error_responses(401, 403, 404))
def show_agent(request: Request, agent_id: str, _: Reader) -> AgentOut:
    """One agent."""
    with services_of(request).session() as session:
        (out,) = _out(
            session, [store.get_agent(session, agent_id)], time.time(), online_timeout(request)
        )
        return out


def _set_draining(request: Request, agent_id: str, principal: Principal, on: bool) -> AgentOut:
    with services_of(request).session() as session:
        store.set_draining(session, agent_id, on)
        audit.record(session, principal.name, "agent.drain" if on else "agent.undrain", agent_id)
        (out,) = _out(
            session, [store.get_agent(session, agent_id)], time.time(), online_timeout(request)
        )
        return out


@router.post(
    "/agents/{agent_id}/drain", response_model=AgentOut, responses=error_responses(401, 403, 404)
)
def drain_agent(request: Request, agent_id: str, principal: Manager) -> AgentOut:
    """Give the agent no more jobs, from the drain on (a claim it sent before included); its
    running jobs finish."""
    return _set_draining(request, agent_id, principal, True)


@router.post(
    "/agents/{agent_id}/undrain",
    response_model=AgentOut,
    responses=error_responses(401, 403, 404),
)
def undrain_agent(request: Request, agent_id: str, principal: Manager) -> AgentOut:
    """Let a drained agent claim jobs again."""
    return _set_draining(request, agent_id, principal, False)
