"""Response bodies of the workflow endpoints (what OpenAPI documents and clients read)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, Field

from opsflow.status import WorkflowStatus
from opsflow.store.bundles import BundleEntry
from opsflow.store.workflows import Workflow, WorkflowVersion

WORKFLOW_ID_PATTERN = r"^[a-z0-9]([a-z0-9-]{0,62}[a-z0-9])?$"


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

    @classmethod
    def of(cls, wf: Workflow) -> WorkflowSummary:
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
        )


class WorkflowDetail(WorkflowSummary):
    draft_definition: dict[str, Any] = Field(description="The draft, in canonical form.")
    draft_yaml: str = Field(description="The draft's YAML as submitted.")
    draft_bundle_digest: str | None = Field(description="The draft's files; null if none.")
    draft_digest: str = Field(description="Digest of the draft's definition and files.")
    has_unpublished_changes: bool = Field(
        description="The draft differs from the latest version (or nothing is published)."
    )
    triggers: list[dict[str, Any]] = Field(
        description="Triggers of the latest version (of the draft while nothing is published)."
    )

    @classmethod
    def build(cls, wf: Workflow, latest: WorkflowVersion | None) -> WorkflowDetail:
        source = latest.definition if latest is not None else wf.draft_definition
        return cls(
            **WorkflowSummary.of(wf).model_dump(),
            draft_definition=wf.draft_definition,
            draft_yaml=wf.draft_yaml,
            draft_bundle_digest=wf.draft_bundle_digest,
            draft_digest=wf.draft_digest,
            has_unpublished_changes=latest is None or latest.content_digest != wf.draft_digest,
            triggers=list(source.get("triggers") or []),
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


class PublishResult(BaseModel):
    workflow_id: str
    version: int
    created: bool = Field(description="False when the draft equals the latest version.")
    status: WorkflowStatus


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


class DuplicateRequest(BaseModel):
    new_id: str = Field(pattern=WORKFLOW_ID_PATTERN, description="Id of the copy.")
    name: str | None = Field(None, max_length=200, description="Name of the copy.")
