"""Agents as operators see them: ``GET /agents``, ``GET /agents/{id}``, ``POST
/agents/{id}/drain`` (and ``/undrain``).

Presence is the ``agents`` table, written when an agent registers and, at most every few
seconds, when it claims; so every replica answers alike. An agent is online while it was seen
within ``max(30 s, 2 leases)``: an idle agent's waiting claim renews it every 10 s.
"""

from __future__ import annotations

import time
from typing import Annotated

from fastapi import APIRouter, Depends, Request
from pydantic import BaseModel, Field

from opsflow.api.execution_models import iso
from opsflow.api.problems import error_responses
from opsflow.api.security import require
from opsflow.api.services import services_of
from opsflow.auth.credentials import Principal
from opsflow.auth.permissions import Permission
from opsflow.store import agents as store
from opsflow.store import audit

router = APIRouter(tags=["agents"])

Reader = Annotated[Principal, Depends(require(Permission.EXECUTIONS_READ))]
Manager = Annotated[Principal, Depends(require(Permission.AGENTS_MANAGE))]


class AgentOut(BaseModel):
    id: str = Field(description="The agent's persistent id.")
    pools: list[str] = Field(description="The pools it serves.")
    labels: dict[str, str] = Field(description="Its labels.")
    version: str = Field(description="Its opsflow version, as it said at registration.")
    hostname: str = Field(description="Where it runs, as it said.")
    online: bool = Field(description="Seen within the online timeout (see last_seen).")
    draining: bool = Field(description="Gets no more jobs; its running jobs finish.")
    last_seen: str = Field(description="When it last registered or claimed (ISO 8601).")
    first_seen: str = Field(description="When it was first seen (ISO 8601).")
    running: list[str] = Field(description="Ids of the jobs it holds now.")
    jobs_done: int = Field(description="Attempts it ran that completed.")
    jobs_failed: int = Field(description="Attempts it ran that failed or timed out.")

    @classmethod
    def of(cls, agent: store.AgentRecord, now: float, timeout: float) -> AgentOut:
        return cls(
            id=agent.id,
            pools=agent.pools,
            labels=agent.labels,
            version=agent.version,
            hostname=agent.hostname,
            online=now - agent.last_seen <= timeout,
            draining=agent.draining,
            last_seen=iso(agent.last_seen) or "",
            first_seen=iso(agent.first_seen) or "",
            running=agent.running,
            jobs_done=agent.done,
            jobs_failed=agent.failed,
        )


def online_timeout(request: Request) -> float:
    return max(30.0, 2 * services_of(request).settings.lease_seconds)


@router.get("/agents", response_model=list[AgentOut], responses=error_responses(401, 403))
def list_agents(request: Request, _: Reader) -> list[AgentOut]:
    """Every agent seen, most recently seen first."""
    now, timeout = time.time(), online_timeout(request)
    with services_of(request).session() as session:
        return [AgentOut.of(a, now, timeout) for a in store.list_agents(session)]


@router.get("/agents/{agent_id}", response_model=AgentOut, responses=error_responses(401, 403, 404))
def show_agent(request: Request, agent_id: str, _: Reader) -> AgentOut:
    """One agent."""
    with services_of(request).session() as session:
        return AgentOut.of(store.get_agent(session, agent_id), time.time(), online_timeout(request))


def _set_draining(request: Request, agent_id: str, principal: Principal, on: bool) -> AgentOut:
    with services_of(request).session() as session:
        store.set_draining(session, agent_id, on)
        audit.record(session, principal.name, "agent.drain" if on else "agent.undrain", agent_id)
        return AgentOut.of(store.get_agent(session, agent_id), time.time(), online_timeout(request))


@router.post(
    "/agents/{agent_id}/drain", response_model=AgentOut, responses=error_responses(401, 403, 404)
)
def drain_agent(request: Request, agent_id: str, principal: Manager) -> AgentOut:
    """Give the agent no more jobs (within a few seconds); its running jobs finish."""
    return _set_draining(request, agent_id, principal, True)


@router.post(
    "/agents/{agent_id}/undrain",
    response_model=AgentOut,
    responses=error_responses(401, 403, 404),
)
def undrain_agent(request: Request, agent_id: str, principal: Manager) -> AgentOut:
    """Let a drained agent claim jobs again."""
    return _set_draining(request, agent_id, principal, False)
