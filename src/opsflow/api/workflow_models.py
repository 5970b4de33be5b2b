"""Response bodies of the workflow endpoints (what OpenAPI documents and clients read)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, Field

from opsflow.api.execution_models import iso
from opsflow.api.problems import ProblemItem
from opsflow.spec.triggers import RunTrigger
from opsflow.status import ExecutionStatus, WorkflowStatus
from opsflow.store.bundles import BundleEntry
from opsflow.store.overview import RunStats
from opsflow.store.workflows import Workflow, WorkflowVersion

WORKFLOW_ID_PATTERN = r"^[a-z0-9]([a-z0-9-]{0,62}[a-z0-9])?$"

# How many of a workflow's most recent ended runs its success rate counts.
SUCCESS_WINDOW = 50


class LastRun(BaseModel):
    """A workflow's newest execution (test runs of the draft excluded)."""

    id: str
    status: ExecutionStatus
    created_at: str | None
    started_at: str | None
    ended_at: str | None


def trigger_types(triggers: list[dict[str, Any]]) -> list[RunTrigger]:
    """``manual`` first (anyone allowed can run any workflow by hand), then each trigger type
    the definition declares, once, in the order of the definition."""
    kinds = [RunTrigger.MANUAL]
    for trigger in triggers:
        kind = RunTrigger(trigger["type"])
        if kind not in kinds:
            kinds.append(kind)
    return kinds


class WorkflowSummary(BaseModel):
    id: str
    name: str
    description: str
    labels: dict[str, Any]
    status: WorkflowStatus
    latest_version: int | None = Field(description="Newest published version; null if none.")
    created_at: datetime
    updated_at: datetime
    created_by: str | None
    deleted_at: datetime | None
    trigger_types: list[RunTrigger] = Field(
        description="manual, then the trigger types of the latest version (of the draft "
        "while nothing is published)."
    )
    last_run: LastRun | None = Field(description="The newest execution; null if none.")
    success_rate: float | None = Field(
        ge=0,
        le=1,
        description=f"Share of the last {SUCCESS_WINDOW} ended executions (test runs excluded) "
        "that completed, 0 to 1; null when none has ended.",
    )
    ended_runs: int = Field(
        description=f"How many ended executions `success_rate` counts (at most {SUCCESS_WINDOW})."
    )

    @classmethod
    def of(
        cls, wf: Workflow, stats: RunStats, published_triggers: list[dict[str, Any]] | None
    ) -> WorkflowSummary:
        """``published_triggers``: the latest version's triggers; None if never published."""
        triggers = (
            published_triggers
            if published_triggers is not None
            else list(wf.draft_definition.get("triggers") or [])
        )
        last = stats.last
        return cls(
            id=wf.id,
            name=wf.name,
            description=wf.description,
            labels=wf.labels,
            status=wf.status,
            latest_version=wf.latest_version,
            created_at=wf.created_at,
            updated_at=wf.updated_at,
            created_by=wf.created_by,
            deleted_at=wf.deleted_at,
            trigger_types=trigger_types(triggers),
            last_run=(
                LastRun(
                    id=last.id,
                    status=last.status,
                    created_at=iso(last.created_at),
                    started_at=iso(last.started_at),
                    ended_at=iso(last.ended_at),
                )
                if last is not None
                else None
            ),
            success_rate=stats.success_rate,
            ended_runs=stats.ended,
        )


class WorkflowDetail(WorkflowSummary):
    draft_definition: dict[str, Any] = Field(description="The draft, in canonical form.")
    draft_yaml: str = Field(description="The draft's YAML as submitted.")
    draft_bundle_digest: str | None = Field(description="The draft's files; null if none.")
    draft_digest: str = Field(description="Digest of the draft's definition and files.")
    draft_tag: str = Field(
        description="Tag of the draft as written (YAML text and files): send it as If-Match "
        "when saving to replace only this draft."
    )
    has_unpublished_changes: bool = Field(
        description="The draft differs from the latest version (or nothing is published)."
    )
    triggers: list[dict[str, Any]] = Field(
        description="Triggers of the latest version (of the draft while nothing is published)."
    )

    @classmethod
    def build(cls, wf: Workflow, latest: WorkflowVersion | None, stats: RunStats) -> WorkflowDetail:
        source = latest.definition if latest is not None else wf.draft_definition
        triggers = list(source.get("triggers") or [])
        return cls(
            **dict(WorkflowSummary.of(wf, stats, triggers if latest is not None else None)),
            draft_definition=wf.draft_definition,
            draft_yaml=wf.draft_yaml,
            draft_bundle_digest=wf.draft_bundle_digest,
            draft_digest=wf.draft_digest,
            draft_tag=wf.draft_tag,
            has_unpublished_changes=latest is None or latest.content_digest != wf.draft_digest,
            triggers=triggers,
        )


class WorkflowPage(BaseModel):
    items: list[WorkflowSummary]
    total: int
    limit: int
    offset: int


class SaveResult(BaseModel):
    """What create and update did: the workflow, and the version if ``publish=true``."""

    workflow: WorkflowDetail
    created: bool = Field(description="The workflow did not exist (or was deleted) before.")
    version: int | None = Field(description="The latest published version after the call.")
    created_version: bool = Field(description="This call published a new version.")
    warnings: list[ProblemItem] = Field(
        default_factory=list,
        description="What the definition names on the server that is not there yet (another "
        "workflow, a hook trigger's secret): saved anyway, located like validation problems.",
    )


class PublishResult(BaseModel):
    workflow_id: str
    version: int
    created: bool = Field(description="False when the draft equals the latest version.")
    status: WorkflowStatus
    warnings: list[ProblemItem] = Field(
        default_factory=list,
        description="What the version names on the server that is not there yet.",
    )


class VersionSummary(BaseModel):
    workflow_id: str
    number: int
    content_digest: str
    bundle_digest: str | None
    created_at: datetime
    created_by: str | None

    @classmethod
    def of(cls, v: WorkflowVersion) -> VersionSummary:
        return cls(
            workflow_id=v.workflow_id,
            number=v.number,
            content_digest=v.content_digest,
            bundle_digest=v.bundle_digest,
            created_at=v.created_at,
            created_by=v.created_by,
        )


class BundleFileOut(BaseModel):
    path: str
    size: int
    mode: str = Field(description="Octal permission bits, 755 or 644.")
    digest: str

    @classmethod
    def of(cls, entry: BundleEntry) -> BundleFileOut:
        return cls(path=entry.path, size=entry.size, mode=f"{entry.mode:o}", digest=entry.digest)


class VersionDetail(VersionSummary):
    definition: dict[str, Any]
    yaml: str
    files: list[BundleFileOut]


class Validity(BaseModel):
    valid: bool
    id: str
    warnings: list[ProblemItem] = Field(
        default_factory=list,
        description="What the definition names that the server lacks (a workflow, a secret, "
        "a connection), and markup that stays as written (``{{ }}`` in a script's run); "
        "valid all the same. Located at their lines like errors.",
    )


class DuplicateRequest(BaseModel):
    new_id: str = Field(pattern=WORKFLOW_ID_PATTERN, description="Id of the copy.")
    name: str | None = Field(None, max_length=200, description="Name of the copy.")
