"""Why a step that has not ended is not moving: ``steps[].pending_reason`` of an execution.

A queued job is matched against the agents online now (``roster``): none serving its pool,
none with its labels, or every slot of those that do busy. The other reasons come from the
step itself: unfinished needs, an open approval, a retry delay. ``None`` means nothing holds
the step up (it runs, or an agent is about to take it).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

from sqlalchemy.orm import Session

from opsflow.runtime.roster import AgentPresence, online_window
from opsflow.status import JobStatus, StepStatus
from opsflow.store import agents as agents_store
from opsflow.store.jobs import Job
from opsflow.store.runs import Execution, Step


def needs_of(definition: Mapping[str, Any]) -> dict[str, list[str]]:
    """Each step's needs as the ids of the steps it waits for (``a.failed`` -> ``a``)."""
    out: dict[str, list[str]] = {}
    for raw in definition.get("steps") or []:
        sources = [str(n).split(".", 1)[0] for n in raw.get("needs") or []]
        out[str(raw.get("id"))] = list(dict.fromkeys(sources))
    return out


def approvers_of(definition: Mapping[str, Any], step_id: str) -> list[str]:
    for raw in definition.get("steps") or []:
        if raw.get("id") == step_id:
            return [str(a) for a in raw.get("approvers") or []]
    return []


def agents_for_queued(
    session: Session, residents: Sequence[AgentPresence], now: float, lease_seconds: float
) -> list[AgentPresence]:
    """This process's own agents (``residents``: its local agent, with its slot count) plus
    the agents online in the ``agents`` table (each with the slot count it registered), the
    draining ones marked: the agents that may take a queued job, and those that would but
    for their drain. What `queued_reason` judges a job against."""
    stored = agents_store.seen_since(session, now - online_window(lease_seconds))
    draining = {agent.id for agent in stored if agent.draining}
    known = {a.agent_id for a in residents}
    extra = [
        AgentPresence(
            agent.id,
            tuple(agent.pools),
            agent.labels,
            capacity=agent.concurrency,
            draining=agent.draining,
        )
        for agent in stored
        if agent.id not in known
    ]
    own = [replace(a, draining=True) if a.agent_id in draining else a for a in residents]
    return own + extra


def queued_reason(job: Job, agents: Sequence[AgentPresence], busy: Mapping[str, int]) -> str | None:
    """Why a pending job has no agent yet; ``busy`` counts in-flight jobs per agent id.

    When every agent that would serve the job is draining, that is the reason (a drained pool
    looks served otherwise); the other reasons count only the agents that take jobs. Every
    slot is busy when the agents serving the job hold as many in-flight jobs as their
    capacities add up to (the local agent's from this process, a remote agent's as it
    registered it)."""
    serving = [a for a in agents if a.serves(job.pool, job.labels)]
    if serving and all(a.draining for a in serving):
        return f"every agent of {_where(job)} is draining ({len(serving)})"
    taking = [a for a in agents if not a.draining]
    serving = [a for a in serving if not a.draining]
    if not serving:
        if job.labels and any(job.pool in a.pools for a in taking):
            return f"no agent of pool {job.pool} has the labels {_spelled(job.labels)}"
        return f"no agent serves pool {job.pool}"
    if any(a.capacity is None for a in serving):
        return None  # an agent whose slots are not known yet (a row older than their storing)
    capacity = sum(a.capacity or 0 for a in serving)
    used = sum(busy.get(a.agent_id, 0) for a in serving)
    if used >= capacity:
        return f"waiting for a free slot on pool {job.pool} ({used}/{capacity} busy)"
    return None


def _spelled(labels: Mapping[str, object]) -> str:
    """``region=eu, tier=web``: labels as the reasons name them."""
    return ", ".join(f"{k}={v}" for k, v in sorted(labels.items()))


def _where(job: Job) -> str:
    """``pool eu`` or ``pool eu with the labels region=eu``: the agents a job wants."""
    if job.labels:
        return f"pool {job.pool} with the labels {_spelled(job.labels)}"
    return f"pool {job.pool}"


def pending_reasons(
    execution: Execution,
    steps: Sequence[Step],
    jobs: Sequence[Job],
    agents: Sequence[AgentPresence],
    busy: Mapping[str, int],
) -> dict[str, str | None]:
    """The pending reason of every step of ``execution``, by step id."""
    reasons: dict[str, str | None] = {s.step_id: None for s in steps}
    if execution.status.terminal:
        return reasons
    status = {s.step_id: s.status for s in steps}
    needs = needs_of(execution.definition)
    queued: dict[str, Job] = {}
    for job in jobs:
        if job.status == JobStatus.PENDING:
            queued.setdefault(job.step_id, job)
    for step in steps:
        if step.status == StepStatus.PENDING:
            unmet = [n for n in needs.get(step.step_id, []) if not status[n].terminal]
            if unmet:
                reasons[step.step_id] = f"waiting for needs: {', '.join(unmet)}"
        elif step.status == StepStatus.WAITING and step.retry_at is not None:
            at = datetime.fromtimestamp(step.retry_at, UTC).strftime("%H:%M:%S UTC")
            reasons[step.step_id] = f"waiting to retry at {at}"
        elif step.status == StepStatus.WAITING:
            who = approvers_of(execution.definition, step.step_id)
            reasons[step.step_id] = "waiting for approval" + (
                f" by {', '.join(who)}" if who else ""
            )
        elif step.status == StepStatus.RUNNING and step.step_id in queued:
            reasons[step.step_id] = queued_reason(queued[step.step_id], agents, busy)
    return reasons
