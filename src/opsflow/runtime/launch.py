"""From "run this workflow" to a ``RunRequest``: which definition is pinned, and the params.

A manual run pins the latest published version (or an explicit one); a paused workflow can
still be run by hand (only triggers skip it); a draft can be run only as an explicit test run,
which pins the draft's definition and files as they are now.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from sqlalchemy.orm import Session

from opsflow.errors import Conflict
from opsflow.runtime.definitions import workflow_model
from opsflow.spec.loader import load_definition
from opsflow.spec.params import resolve_params
from opsflow.store import workflows as workflows_store
from opsflow.store.workflows import WorkflowVersion


@dataclass(frozen=True)
class RunRequest:
    """Everything needed to start one execution of a pinned definition."""

    workflow_id: str
    definition: dict[str, Any]
    params: dict[str, Any]
    version: int | None = None
    bundle_digest: str | None = None
    test_run: bool = False
    trigger_type: str = "manual"
    trigger: dict[str, Any] | None = None
    started_by: str | None = None
    # A run started by another run (a workflow step's child, a workflow trigger's follower):
    # the workflows that led here, first one first, and for a child its parent step.
    chain: tuple[str, ...] = ()
    parent_execution_id: str | None = None
    parent_step_id: str | None = None


def run_request(
    session: Session,
    workflow_id: str,
    *,
    params: Mapping[str, Any],
    started_by: str | None,
    test: bool = False,
    version: int | None = None,
    params_as_text: bool = False,
    trigger_type: str = "manual",
    trigger: dict[str, Any] | None = None,
    chain: tuple[str, ...] = (),
    parent: tuple[str, str] | None = None,
) -> RunRequest:
    """The request to run ``workflow_id``: its pinned definition and checked params."""
    workflow = workflows_store.get_workflow(session, workflow_id)
    if test:
        definition = workflow.draft_definition
        bundle = workflow.draft_bundle_digest
        number = None
    else:
        if version is None:
            latest = workflows_store.latest_version(session, workflow_id)
            if latest is None:
                raise Conflict(
                    f"workflow {workflow_id!r} has no published version: publish it, "
                    "or start a test run of the draft (test: true)"
                )
            pinned = latest
        else:
            pinned = workflows_store.get_version(session, workflow_id, version)
        definition = pinned.definition
        bundle = pinned.bundle_digest
        number = pinned.number
    # A draft is checked now (it may not be valid yet); a published version was checked when
    # it was published, and its parse is shared by every run of it.
    model = load_definition(definition) if test else workflow_model(definition)
    values = resolve_params(model.params, dict(params), from_text=params_as_text)
    return RunRequest(
        workflow_id=workflow_id,
        definition=definition,
        params=values,
        version=number,
        bundle_digest=bundle,
        test_run=test,
        trigger_type=trigger_type,
        trigger=trigger,
        started_by=started_by,
        chain=chain,
        parent_execution_id=parent[0] if parent else None,
        parent_step_id=parent[1] if parent else None,
    )


def pinned_request(
    pinned: WorkflowVersion,
    *,
    params: Mapping[str, Any],
    started_by: str | None,
    trigger_type: str,
    trigger: dict[str, Any] | None,
    chain: tuple[str, ...] = (),
) -> RunRequest:
    """The request to run the published version ``pinned`` the caller already read (a
    trigger's fire, which read it under the workflow's row lock): `run_request` without
    reading the workflow and its version again. Raises `InvalidInput` for bad ``params``."""
    model = workflow_model(pinned.definition)
    return RunRequest(
        workflow_id=pinned.workflow_id,
        definition=pinned.definition,
        params=resolve_params(model.params, dict(params)),
        version=pinned.number,
        bundle_digest=pinned.bundle_digest,
        trigger_type=trigger_type,
        trigger=trigger,
        started_by=started_by,
        chain=chain,
    )
