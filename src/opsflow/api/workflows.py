"""Workflow endpoints: validate, list, create and update drafts, publish, pause, resume,
duplicate, delete, versions, restoring a version as the draft. Each change and its audit entry
commit in one transaction."""

from __future__ import annotations

import functools
from collections.abc import Iterator
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Header, Path, Query, Request, Response
from starlette.concurrency import run_in_threadpool

from opsflow.api.definitions import (
    DEFINITION_BODY,
    Submission,
    check_path_id,
    read_submission,
    renamed,
)
from opsflow.api.limits import INT_MAX
from opsflow.api.problems import ProblemItem, error_responses
from opsflow.api.references import missing_references
from opsflow.api.security import require
from opsflow.api.services import Services, services_of
from opsflow.api.triggers import publish_with_triggers, wake_scheduler
from opsflow.api.workflow_models import (
    SUCCESS_WINDOW,
    WORKFLOW_ID_PATTERN,
    BundleFileOut,
    DuplicateRequest,
    PublishResult,
    SaveResult,
    Validity,
    VersionDetail,
    VersionSummary,
    WorkflowDetail,
    WorkflowPage,
    WorkflowSummary,
)
from opsflow.auth.credentials import Principal
from opsflow.auth.permissions import Permission
from opsflow.errors import InvalidInput, Problem
from opsflow.spec.loader import warnings_of
from opsflow.status import WorkflowStatus
from opsflow.store import audit, bundles, overview
from opsflow.store import secrets as secrets_store
from opsflow.store import workflows as store
from opsflow.store.session import Session
from opsflow.store.workflows import Workflow


def _announce(request: Request) -> Iterator[None]:
    """After a route changed workflows (its transaction committed), wake the global live
    stream, which reads the change from the audit log."""
    yield
    if request.method not in ("GET", "HEAD"):
        host = services_of(request).extra.get("runtime")
        if host is not None:
            host.bus.workflows_changed()


router = APIRouter(prefix="/workflows", tags=["workflows"], dependencies=[Depends(_announce)])

WorkflowId = Annotated[str, Path(pattern=WORKFLOW_ID_PATTERN, description="The workflow's id.")]
Reader = Annotated[Principal, Depends(require(Permission.WORKFLOWS_READ))]
Editor = Annotated[Principal, Depends(require(Permission.WORKFLOWS_UPDATE))]
Lister = Annotated[Principal, Depends(require(Permission.WORKFLOWS_LIST))]
PublishFlag = Annotated[bool, Query(description="Also publish the draft as a new version.")]
IfMatch = Annotated[
    str | None,
    Header(
        alias="If-Match",
        description="The draft_tag of the draft you edited: the save is refused with 412 if "
        "the draft changed since.",
    ),
]


def _tag(if_match: str | None) -> str | None:
    """The tag in an If-Match header (``"abc"``, ``W/"abc"`` or bare ``abc``)."""
    if if_match is None:
        return None
    tag = if_match.strip().removeprefix("W/").strip('"')
    return tag or None


def _detail(session: Session, workflow_id: str, include_deleted: bool = False) -> WorkflowDetail:
    wf = store.get_workflow(session, workflow_id, include_deleted=include_deleted)
    stats = overview.workflow_run_stats(session, [wf.id], SUCCESS_WINDOW)[wf.id]
    return WorkflowDetail.build(wf, store.latest_version(session, workflow_id), stats)


def _summaries(session: Session, workflows: list[Workflow]) -> list[WorkflowSummary]:
    """The list's rows with their last run, success rate and trigger types (three queries for
    the whole page)."""
    ids = [w.id for w in workflows]
    stats = overview.workflow_run_stats(session, ids, SUCCESS_WINDOW)
    published = overview.published_triggers(session, ids)
    return [WorkflowSummary.of(w, stats[w.id], published.get(w.id)) for w in workflows]


def _save(
    services: Services,
    submission: Submission,
    actor: str,
    *,
    create_only: bool,
    publish: bool,
    may_see_secrets: bool = False,
    if_match: str | None = None,
) -> SaveResult:
    """Save the draft (and publish it); ``may_see_secrets``: whether the answer may say which
    secrets a hook trigger names that are not set."""
    with services.session() as session:
        digest = None
        if submission.files is not None:
            digest = bundles.store_bundle(session, submission.files)
        wf, created = store.save_draft(
            session,
            definition=submission.definition,
            yaml_text=submission.yaml_text,
            bundle_digest=digest,
            actor=actor,
            create_only=create_only,
            if_match=if_match,
        )
        action = "workflow.create" if created else "workflow.update"
        audit.record(session, actor, action, wf.id, {"draft_digest": wf.draft_digest})
        created_version = False
        if publish:
            version, created_version = publish_with_triggers(session, wf.id, actor, services)
            if created_version:
                audit.record(session, actor, "workflow.publish", wf.id, {"version": version.number})
        detail = _detail(session, wf.id)
        warnings = _warnings(session, submission.definition, submission.yaml_text, may_see_secrets)
    if publish:
        wake_scheduler(services)
    return SaveResult(
        workflow=detail,
        created=created,
        version=detail.latest_version,
        created_version=created_version,
        warnings=warnings,
    )


def _warnings(
    session: Session, definition: dict[str, Any], yaml_text: str, may_see_secrets: bool
) -> list[ProblemItem]:
    """The definition's warnings (`warnings_of`: what it names that the server lacks, markup
    that stays as written) located at their lines in ``yaml_text``, as the editor marks them."""
    names = secrets_store.secret_names(session) if may_see_secrets else None
    missing = missing_references(session, definition, names)
    return [
        ProblemItem(loc=p.loc, msg=p.msg, line=p.line, column=p.column)
        for p in warnings_of(yaml_text, definition, missing)
    ]


@router.post(
    "/validate",
    response_model=Validity,
    openapi_extra=DEFINITION_BODY,
    responses=error_responses(401, 403, 413, 415, 422),
)
async def validate(request: Request, principal: Reader) -> Validity:
    """Check a definition without saving it: 200 (with warnings for what it names that the
    server lacks), or 422 with every problem located."""
    services = services_of(request)
    submission = await read_submission(request, services.settings.max_bundle_bytes)

    def warnings() -> list[ProblemItem]:
        with services.session() as session:
            may_see = principal.can(Permission.SECRETS_MANAGE)
            return _warnings(session, submission.definition, submission.yaml_text, may_see)

    return Validity(valid=True, id=submission.id, warnings=await run_in_threadpool(warnings))


@router.get("", response_model=WorkflowPage, responses=error_responses(401, 403, 422))
def list_workflows(
    request: Request,
    _p: Lister,
    status: WorkflowStatus | None = None,
    label: Annotated[list[str], Query(description="k=v; repeat to require several.")] = [],  # noqa: B006
    q: Annotated[str | None, Query(description="Text in the id, name or description.")] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
    offset: Annotated[int, Query(ge=0, le=INT_MAX)] = 0,
    include_deleted: bool = False,
) -> WorkflowPage:
    """Workflows by id, filtered and paginated; deleted ones only with ``include_deleted``."""
    labels: dict[str, str] = {}
    for i, item in enumerate(label):
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise InvalidInput(
                f"label filter {item!r} must be key=value",
                problems=[Problem(f"query.label[{i}]", "write the filter as key=value")],
            )
        labels[key] = value
    with services_of(request).session() as session:
        page = store.list_workflows(
            session,
            status=status,
            labels=labels,
            q=q,
            include_deleted=include_deleted,
            limit=limit,
            offset=offset,
        )
        items = _summaries(session, page.items)
    return WorkflowPage(
        items=items,
        total=page.total,
        limit=page.limit,
        offset=page.offset,
    )


@router.post(
    "",
    response_model=SaveResult,
    status_code=201,
    openapi_extra=DEFINITION_BODY,
    responses=error_responses(401, 403, 409, 413, 415, 422),
)
async def create_workflow(
    request: Request, principal: Editor, publish: PublishFlag = False
) -> SaveResult:
    """Create a workflow from its definition (409 if the id exists and is not deleted)."""
    services = services_of(request)
    submission = await read_submission(request, services.settings.max_bundle_bytes)
    return await run_in_threadpool(
        functools.partial(
            _save,
            services,
            submission,
            principal.name,
            create_only=True,
            publish=publish,
            may_see_secrets=principal.can(Permission.SECRETS_MANAGE),
        )
    )


@router.put(
    "/{workflow_id}",
    response_model=SaveResult,
    openapi_extra=DEFINITION_BODY,
    responses={201: {"description": "Created"}, **error_responses(401, 403, 412, 413, 415, 422)},
)
async def put_workflow(
    request: Request,
    response: Response,
    workflow_id: WorkflowId,
    principal: Editor,
    publish: PublishFlag = False,
    if_match: IfMatch = None,
) -> SaveResult:
    """Create the workflow or replace its draft; the URL's id must equal the definition's.
    With If-Match (the draft_tag you loaded), 412 if the draft changed since."""
    services = services_of(request)
    submission = await read_submission(request, services.settings.max_bundle_bytes)
    check_path_id(submission, workflow_id)
    result = await run_in_threadpool(
        functools.partial(
            _save,
            services,
            submission,
            principal.name,
            create_only=False,
            publish=publish,
            may_see_secrets=principal.can(Permission.SECRETS_MANAGE),
            if_match=_tag(if_match),
        )
    )
    response.status_code = 201 if result.created else 200
    return result


@router.get(
    "/{workflow_id}", response_model=WorkflowDetail, responses=error_responses(401, 403, 404)
)
def get_workflow(
    request: Request, workflow_id: WorkflowId, _p: Reader, include_deleted: bool = False
) -> WorkflowDetail:
    """The draft, status, latest version and triggers."""
    with services_of(request).session() as session:
        return _detail(session, workflow_id, include_deleted)


@router.delete(
    "/{workflow_id}", response_model=WorkflowSummary, responses=error_responses(401, 403, 404)
)
def delete_workflow(
    request: Request, workflow_id: WorkflowId, principal: Editor
) -> WorkflowSummary:
    """Soft delete: hidden from lists and triggers; history stays readable."""
    with services_of(request).session() as session:
        wf = store.delete(session, workflow_id)
        audit.record(session, principal.name, "workflow.delete", workflow_id)
        (summary,) = _summaries(session, [wf])
    return summary


@router.post(
    "/{workflow_id}/publish",
    response_model=PublishResult,
    responses={201: {"description": "A new version"}, **error_responses(401, 403, 404)},
)
def publish_workflow(
    request: Request, response: Response, workflow_id: WorkflowId, principal: Editor
) -> PublishResult:
    """Make the draft version N+1 (201), or 200 with ``created: false`` if it is unchanged."""
    services = services_of(request)
    with services.session() as session:
        version, created = publish_with_triggers(session, workflow_id, principal.name, services)
        if created:
            audit.record(
                session,
                principal.name,
                "workflow.publish",
                workflow_id,
                {"version": version.number},
            )
        status = store.get_workflow(session, workflow_id).status
        warnings = _warnings(
            session,
            version.definition,
            version.yaml,
            principal.can(Permission.SECRETS_MANAGE),
        )
    wake_scheduler(services)
    response.status_code = 201 if created else 200
    return PublishResult(
        workflow_id=workflow_id,
        version=version.number,
        created=created,
        status=status,
        warnings=warnings,
    )


@router.post(
    "/{workflow_id}/pause",
    response_model=WorkflowSummary,
    responses=error_responses(401, 403, 404),
)
def pause_workflow(request: Request, workflow_id: WorkflowId, principal: Editor) -> WorkflowSummary:
    """Triggers stop starting runs; people can still run it."""
    with services_of(request).session() as session:
        wf = store.pause(session, workflow_id)
        audit.record(session, principal.name, "workflow.pause", workflow_id)
        (summary,) = _summaries(session, [wf])
    return summary


@router.post(
    "/{workflow_id}/resume",
    response_model=WorkflowSummary,
    responses=error_responses(401, 403, 404, 409),
)
def resume_workflow(
    request: Request, workflow_id: WorkflowId, principal: Editor
) -> WorkflowSummary:
    """Back to active (409 if nothing was ever published)."""
    services = services_of(request)
    with services.session() as session:
        wf = store.resume(session, workflow_id)
        audit.record(session, principal.name, "workflow.resume", workflow_id)
        (summary,) = _summaries(session, [wf])
    wake_scheduler(services)
    return summary


@router.post(
    "/{workflow_id}/duplicate",
    response_model=WorkflowDetail,
    status_code=201,
    responses=error_responses(401, 403, 404, 409, 422),
)
def duplicate_workflow(
    request: Request, workflow_id: WorkflowId, body: DuplicateRequest, principal: Editor
) -> WorkflowDetail:
    """A new workflow (a draft, no versions) from this one's draft and files."""
    services = services_of(request)
    with services.session() as session:
        source = store.get_workflow(session, workflow_id)
        copy = renamed(source.draft_yaml, source.draft_definition, body.new_id, body.name)
        wf, _ = store.save_draft(
            session,
            definition=copy.definition,
            yaml_text=copy.yaml_text,
            bundle_digest=source.draft_bundle_digest,
            actor=principal.name,
            create_only=True,
        )
        audit.record(session, principal.name, "workflow.duplicate", wf.id, {"from": workflow_id})
        return _detail(session, wf.id)


@router.get(
    "/{workflow_id}/versions",
    response_model=list[VersionSummary],
    responses=error_responses(401, 403, 404),
)
def list_versions(request: Request, workflow_id: WorkflowId, _p: Reader) -> list[VersionSummary]:
    """Published versions, newest first (also of a deleted workflow)."""
    with services_of(request).session() as session:
        return [VersionSummary.of(v) for v in store.list_versions(session, workflow_id)]


@router.get(
    "/{workflow_id}/versions/{number}",
    response_model=VersionDetail,
    responses=error_responses(401, 403, 404),
)
def get_version(
    request: Request,
    workflow_id: WorkflowId,
    number: Annotated[int, Path(ge=1, le=INT_MAX)],
    _p: Reader,
) -> VersionDetail:
    """One version: its definition, YAML and the manifest of its files."""
    with services_of(request).session() as session:
        version = store.get_version(session, workflow_id, number)
        files = (
            bundles.bundle_manifest(session, version.bundle_digest) if version.bundle_digest else []
        )
    extra: dict[str, Any] = {"definition": version.definition, "yaml": version.yaml}
    return VersionDetail(
        **VersionSummary.of(version).model_dump(),
        **extra,
        files=[BundleFileOut.of(f) for f in files],
    )


@router.post(
    "/{workflow_id}/versions/{number}/restore",
    response_model=WorkflowDetail,
    responses=error_responses(401, 403, 404),
)
def restore_version(
    request: Request,
    workflow_id: WorkflowId,
    number: Annotated[int, Path(ge=1, le=INT_MAX)],
    principal: Editor,
) -> WorkflowDetail:
    """Make version ``number`` the draft again: its YAML text (comments included), definition
    and files replace the draft; nothing is published (publish to make it version N+1).
    404 if the workflow (deleted ones included) or the version does not exist."""
    with services_of(request).session() as session:
        store.get_workflow(session, workflow_id)
        version = store.get_version(session, workflow_id, number)
        wf, _ = store.save_draft(
            session,
            definition=version.definition,
            yaml_text=version.yaml,
            bundle_digest=version.bundle_digest,
            actor=principal.name,
        )
        audit.record(
            session, principal.name, "workflow.restore", wf.id, {"version": version.number}
        )
        return _detail(session, wf.id)
