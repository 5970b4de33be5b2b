"""Workflows (an editable draft plus a lifecycle status) and their immutable versions.

Rules kept here, in one place: a workflow is ``draft`` until first published, then ``active``;
pause and resume toggle ``paused``/``active``. Publishing copies the draft into version N+1
unless the draft's content digest equals the latest version's, in which case nothing is
created. Versions are never updated. Deletion is soft, so history stays readable.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import func, or_, select
from sqlalchemy.orm import Session

from opsflow.errors import Conflict, NotFound, PreconditionFailed
from opsflow.status import WorkflowStatus
from opsflow.store import tables as t
from opsflow.store.base import utcnow
from opsflow.store.integrity import conflict_on_duplicate
from opsflow.store.paging import Page
from opsflow.words import did_you_mean


@dataclass(frozen=True)
class Workflow:
    id: str
    name: str
    description: str
    labels: dict[str, Any]
    status: WorkflowStatus
    latest_version: int | None
    draft_definition: dict[str, Any]
    draft_yaml: str
    draft_bundle_digest: str | None
    draft_digest: str
    created_at: datetime
    updated_at: datetime
    created_by: str | None
    deleted_at: datetime | None

    @property
    def draft_tag(self) -> str:
        """The draft's `draft_tag` (see the function)."""
        return draft_tag(self.draft_yaml, self.draft_bundle_digest)

    @classmethod
    def from_row(cls, row: t.Workflow) -> Workflow:
        return cls(
            id=row.id,
            name=row.name,
            description=row.description,
            labels=dict(row.labels or {}),
            status=WorkflowStatus(row.status),
            latest_version=row.latest_version,
            draft_definition=row.draft_definition,
            draft_yaml=row.draft_yaml,
            draft_bundle_digest=row.draft_bundle_digest,
            draft_digest=row.draft_digest,
            created_at=row.created_at,
            updated_at=row.updated_at,
            created_by=row.created_by,
            deleted_at=row.deleted_at,
        )


@dataclass(frozen=True)
class WorkflowVersion:
    id: int
    workflow_id: str
    number: int
    definition: dict[str, Any]
    yaml: str
    content_digest: str
    bundle_digest: str | None
    created_at: datetime
    created_by: str | None

    @classmethod
    def from_row(cls, row: t.WorkflowVersion) -> WorkflowVersion:
        return cls(
            id=row.id,
            workflow_id=row.workflow_id,
            number=row.number,
            definition=row.definition,
            yaml=row.yaml,
            content_digest=row.content_digest,
            bundle_digest=row.bundle_digest,
            created_at=row.created_at,
            created_by=row.created_by,
        )


def content_digest(definition: dict[str, Any], bundle_digest: str | None) -> str:
    """What "unchanged" means: the canonical definition plus the files, not the YAML's comments."""
    text = json.dumps(definition, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(f"{text}\n{bundle_digest or ''}".encode()).hexdigest()


def draft_tag(yaml_text: str, bundle_digest: str | None) -> str:
    """A tag of the draft as written (SHA-256 hex of its YAML text and files), for saving with
    `If-Match`: unlike `content_digest` it changes with comments and formatting too."""
    return hashlib.sha256(f"{yaml_text}\0{bundle_digest or ''}".encode()).hexdigest()


def _row(
    session: Session, workflow_id: str, *, include_deleted: bool = False, lock: bool = False
) -> t.Workflow:
    row = session.get(t.Workflow, workflow_id, with_for_update=lock)
    if row is None or (row.deleted_at is not None and not include_deleted):
        # a typo is the likely cause: name the close ids (one query, on the error path only)
        known = session.scalars(select(t.Workflow.id).where(t.Workflow.deleted_at.is_(None)))
        raise NotFound(f"workflow {workflow_id!r} not found{did_you_mean(workflow_id, known)}")
    return row


def save_draft(
    session: Session,
    *,
    definition: dict[str, Any],
    yaml_text: str,
    bundle_digest: str | None,
    actor: str,
    create_only: bool = False,
    if_match: str | None = None,
) -> tuple[Workflow, bool]:
    """Create the workflow or replace its draft; returns it and whether it was created.

    ``definition`` is the loader's canonical form and names the id. With ``create_only`` an
    existing (not deleted) workflow is a `Conflict`. Re-creating a deleted workflow brings it
    back as a draft; its old versions stay and numbering continues after them. With
    ``if_match`` (a `draft_tag`) the draft is replaced only if it is still that one, checked
    under the row's lock: else `PreconditionFailed` (412), and nothing is written.
    """
    workflow_id = str(definition["id"])
    now = utcnow()
    digest = content_digest(definition, bundle_digest)
    fields: dict[str, Any] = {
        "name": str(definition.get("name") or workflow_id),
        "description": str(definition.get("description") or ""),
        "labels": dict(definition.get("labels") or {}),
        "draft_definition": definition,
        "draft_yaml": yaml_text,
        "draft_bundle_digest": bundle_digest,
        "draft_digest": digest,
        "updated_at": now,
    }
    row = session.get(t.Workflow, workflow_id, with_for_update=True)
    if if_match is not None:
        if row is None or row.deleted_at is not None:
            raise PreconditionFailed(
                f"workflow {workflow_id!r} does not exist any more; save without If-Match "
                "to create it"
            )
        if draft_tag(row.draft_yaml, row.draft_bundle_digest) != if_match:
            raise PreconditionFailed(
                f"the draft of {workflow_id!r} changed since you loaded it (saved "
                f"{row.updated_at:%Y-%m-%d %H:%M:%S} UTC); load it again, or save without "
                "If-Match to replace it"
            )
    if row is None:
        row = t.Workflow(
            id=workflow_id,
            status=WorkflowStatus.DRAFT,
            created_at=now,
            created_by=actor,
            **fields,
        )
        with conflict_on_duplicate(f"workflow {workflow_id!r} already exists"):
            session.add(row)
            session.flush()
        return Workflow.from_row(row), True
    created = row.deleted_at is not None
    if not created and create_only:
        raise Conflict(
            f"workflow {workflow_id!r} already exists; use PUT /api/v1/workflows/{workflow_id}"
            " to update its draft"
        )
    if created:
        fields.update(
            deleted_at=None, status=WorkflowStatus.DRAFT, created_at=now, created_by=actor
        )
    for key, value in fields.items():
        setattr(row, key, value)
    session.flush()
    return Workflow.from_row(row), created


def get_workflow(session: Session, workflow_id: str, *, include_deleted: bool = False) -> Workflow:
    return Workflow.from_row(_row(session, workflow_id, include_deleted=include_deleted))


def list_workflows(
    session: Session,
    *,
    status: WorkflowStatus | None = None,
    labels: dict[str, str] | None = None,
    q: str | None = None,
    include_deleted: bool = False,
    limit: int = 50,
    offset: int = 0,
) -> Page[Workflow]:
    """Workflows by id; ``labels`` must all match exactly, ``q`` is a case-insensitive
    substring of the id, name or description."""
    query = select(t.Workflow)
    if not include_deleted:
        query = query.where(t.Workflow.deleted_at.is_(None))
    if status is not None:
        query = query.where(t.Workflow.status == status)
    for key, value in (labels or {}).items():
        query = query.where(t.Workflow.labels[key].as_string() == value)
    if q:
        query = query.where(
            or_(
                t.Workflow.id.icontains(q, autoescape=True),
                t.Workflow.name.icontains(q, autoescape=True),
                t.Workflow.description.icontains(q, autoescape=True),
            )
        )
    total = session.scalar(select(func.count()).select_from(query.subquery())) or 0
    rows = session.scalars(query.order_by(t.Workflow.id).limit(limit).offset(offset))
    return Page([Workflow.from_row(r) for r in rows], total=total, limit=limit, offset=offset)


def publish(session: Session, workflow_id: str, actor: str) -> tuple[WorkflowVersion, bool]:
    """Make the draft version N+1; returns the version and whether it is new.

    The workflow's row lock serializes concurrent publishes, and (workflow_id, number) is
    unique besides, so two publishers can never both create the same N+1.
    """
    row = _row(session, workflow_id, lock=True)
    if row.status == WorkflowStatus.DRAFT:
        row.status = WorkflowStatus.ACTIVE
        row.updated_at = utcnow()
    if row.latest_version is not None:
        latest = _version_row(session, workflow_id, row.latest_version)
        if latest.content_digest == row.draft_digest:
            session.flush()
            return WorkflowVersion.from_row(latest), False
    number = (row.latest_version or 0) + 1
    version = t.WorkflowVersion(
        workflow_id=workflow_id,
        number=number,
        definition=row.draft_definition,
        yaml=row.draft_yaml,
        content_digest=row.draft_digest,
        bundle_digest=row.draft_bundle_digest,
        created_by=actor,
    )
    with conflict_on_duplicate(f"version {number} of {workflow_id!r} was just published"):
        session.add(version)
        session.flush()
    row.latest_version = number
    row.updated_at = utcnow()
    session.flush()
    return WorkflowVersion.from_row(version), True


def pause(session: Session, workflow_id: str) -> Workflow:
    """Stop triggers from starting the workflow (it can still be run by hand)."""
    row = _row(session, workflow_id, lock=True)
    if row.status != WorkflowStatus.PAUSED:
        row.status = WorkflowStatus.PAUSED
        row.updated_at = utcnow()
        session.flush()
    return Workflow.from_row(row)


def resume(session: Session, workflow_id: str) -> Workflow:
    """Back to ``active``; a workflow never published has nothing to be active with."""
    row = _row(session, workflow_id, lock=True)
    if row.latest_version is None:
        raise Conflict(f"workflow {workflow_id!r} has no published version; publish it first")
    if row.status != WorkflowStatus.ACTIVE:
        row.status = WorkflowStatus.ACTIVE
        row.updated_at = utcnow()
        session.flush()
    return Workflow.from_row(row)


def delete(session: Session, workflow_id: str) -> Workflow:
    """Soft delete: hidden from lists and triggers; versions and history stay readable."""
    row = _row(session, workflow_id, lock=True)
    row.deleted_at = utcnow()
    row.updated_at = row.deleted_at
    session.flush()
    return Workflow.from_row(row)


def _version_row(session: Session, workflow_id: str, number: int) -> t.WorkflowVersion:
    row = session.scalar(
        select(t.WorkflowVersion).where(
            t.WorkflowVersion.workflow_id == workflow_id, t.WorkflowVersion.number == number
        )
    )
    if row is None:
        raise NotFound(f"workflow {workflow_id!r} has no version {number}")
    return row


def list_versions(session: Session, workflow_id: str) -> list[WorkflowVersion]:
    """Every version, newest first (deleted workflows included: history stays readable)."""
    _row(session, workflow_id, include_deleted=True)
    rows = session.scalars(
        select(t.WorkflowVersion)
        .where(t.WorkflowVersion.workflow_id == workflow_id)
        .order_by(t.WorkflowVersion.number.desc())
    )
    return [WorkflowVersion.from_row(r) for r in rows]


def get_version(session: Session, workflow_id: str, number: int) -> WorkflowVersion:
    return WorkflowVersion.from_row(_version_row(session, workflow_id, number))


def get_version_by_id(session: Session, version_id: int) -> WorkflowVersion:
    """The version an execution pinned."""
    row = session.get(t.WorkflowVersion, version_id)
    if row is None:
        raise NotFound(f"workflow version #{version_id} not found")
    return WorkflowVersion.from_row(row)


def latest_version(session: Session, workflow_id: str) -> WorkflowVersion | None:
    """The newest published version, or None for a workflow never published."""
    row = _row(session, workflow_id, include_deleted=True)
    if row.latest_version is None:
        return None
    return get_version(session, workflow_id, row.latest_version)
