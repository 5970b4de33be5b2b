"""What a saved definition names on the server that is not there (yet): warnings, not errors.

A definition may name another workflow (a ``workflow`` trigger's ``workflow``, a ``workflow``
step's ``workflow``), an opsflow secret (a hook trigger's ``secret``), a connection (a
step's ``connection``, a run-end message's ``channel``: missing, disabled or of another
type) or an agent pool (``agent.pool`` of the workflow or a step: no agent token is bound to
it and no agent ever served it). Those live on the server, not in the file, and may well be
applied after it, so saving is not refused; but the answer says which are missing and what
happens meanwhile, so a typo is seen at ``apply``, not when a trigger silently never fires, a
run fails at that step or a step waits for an agent that never comes.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable, Mapping
from typing import Any

from opsflow.auth.connections import usable
from opsflow.errors import NotFound, Problem
from opsflow.runtime.connections import STEP_CONNECTION_TYPES
from opsflow.spec.notifications import run_notifications
from opsflow.spec.triggers import TriggerType
from opsflow.status import StepType
from opsflow.store import agent_tokens as agent_tokens_store
from opsflow.store import connections as connections_store
from opsflow.store import workflows as workflows_store
from opsflow.store.session import Session

_HOOK_TYPES = {TriggerType.WEBHOOK.value, TriggerType.GIT.value, TriggerType.INCIDENT.value}


def missing_references(
    session: Session,
    definition: Mapping[str, Any],
    secret_names: Iterable[str] | None,
) -> list[Problem]:
    """One `Problem` per workflow, secret or connection ``definition`` names that the server
    lacks (or, for a connection, cannot use), located
    like validation problems (``triggers[1].workflow``, ``steps[3].workflow``). Secrets are
    checked only when ``secret_names`` is given (the caller may see which secrets exist)."""
    known_secrets = None if secret_names is None else set(secret_names)
    own_id = str(definition.get("id") or "")
    problems: list[Problem] = []

    def workflow_missing(workflow_id: str) -> str | None:
        if workflow_id == own_id:
            return None
        try:
            workflows_store.get_workflow(session, workflow_id)
        except NotFound as exc:
            return exc.message
        return None

    for index, trigger in enumerate(definition.get("triggers") or []):
        kind = str(trigger.get("type"))
        if kind == TriggerType.WORKFLOW.value:
            missing = workflow_missing(str(trigger.get("workflow")))
            if missing:
                problems.append(
                    Problem(
                        f"triggers[{index}].workflow",
                        f"{missing}; this trigger starts nothing until that workflow exists",
                    )
                )
        elif kind in _HOOK_TYPES and trigger.get("secret") and known_secrets is not None:
            name = str(trigger["secret"])
            if name not in known_secrets:
                problems.append(
                    Problem(
                        f"triggers[{index}].secret",
                        f"secret {name} is not set: deliveries are refused until an admin "
                        f"sets it (opsflow secrets set {name})",
                    )
                )
    entries = run_notifications(definition)
    notifiers = (
        [m.name for m in connections_store.list_connections(session) if m.type == "notify"]
        if entries
        else []
    )
    for index, entry in enumerate(entries):
        field = "connection" if entry.get("connection") else "channel"
        name = str(entry.get(field) or "")
        problem = usable(
            connections_store.find(session, name),
            name,
            STEP_CONNECTION_TYPES["notify"],
            notifiers,
        )
        if name and problem:
            problems.append(
                Problem(
                    f"notify[{index}].{field}",
                    f"{problem}; run-end messages to it fail (shown in the run's engine log) "
                    "until then",
                )
            )
    for index, step in enumerate(definition.get("steps") or []):
        kind = str(step.get("type"))
        field, name = "connection", step.get("connection")
        if name and kind in STEP_CONNECTION_TYPES:
            problem = usable(
                connections_store.find(session, str(name)),
                str(name),
                STEP_CONNECTION_TYPES[kind],
            )
            if problem:
                problems.append(
                    Problem(
                        f"steps[{index}].{field}",
                        f"{problem}; the step fails at once when reached until then",
                    )
                )
        if kind == StepType.WORKFLOW.value:
            missing = workflow_missing(str(step.get("workflow")))
            if missing:
                problems.append(
                    Problem(
                        f"steps[{index}].workflow",
                        f"{missing}; the step fails when reached unless that workflow exists "
                        "by then",
                    )
                )
    problems += _unknown_pools(session, definition)
    return problems


def _unknown_pools(session: Session, definition: Mapping[str, Any]) -> list[Problem]:
    """A warning per ``agent.pool`` (the workflow's, each step's) that no agent can serve yet
    (`agent_tokens.known_pools`): a typo there leaves every run's step pending."""
    named = [("agent.pool", (definition.get("agent") or {}).get("pool"))] + [
        (f"steps[{index}].agent.pool", (step.get("agent") or {}).get("pool"))
        for index, step in enumerate(definition.get("steps") or [])
    ]
    pools = [(loc, str(pool)) for loc, pool in named if pool]
    if not pools:
        return []
    known = agent_tokens_store.known_pools(session)
    problems = []
    for loc, pool in pools:
        if pool in known:
            continue
        close = difflib.get_close_matches(pool, sorted(known), n=1, cutoff=0.5)
        hint = f" (did you mean {close[0]}?)" if close else ""
        problems.append(
            Problem(
                loc,
                f"no agent token is bound to pool {pool} and no agent has served it{hint}: "
                f"its steps wait until an agent of pool {pool} is online (opsflow agents "
                f"tokens create --pool {pool})",
            )
        )
    return problems
