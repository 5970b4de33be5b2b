"""A workflow's triggers as people check them: each one's hook URL and last deliveries, the
delivery log of one trigger, and an admin's rotation of a generated secret.

A generated secret is shown exactly once, in the answer to ``rotate-secret``: publishing
creates one nobody has seen (so a new hook accepts nothing until an admin rotates it and
hands the value to the sender), and nothing ever reads it back. A secret named in YAML
(``secret: NAME``) is an opsflow secret, replaced with ``opsflow secrets set``.
"""

from __future__ import annotations

import secrets
from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request
from pydantic import BaseModel, Field

from opsflow.api.limits import INT_MAX
from opsflow.api.problems import error_responses
from opsflow.api.secrets import VAULT_KEY
from opsflow.api.security import require
from opsflow.api.services import services_of
from opsflow.api.triggers import TriggerName, TriggerOut, WorkflowId
from opsflow.auth.credentials import Principal
from opsflow.auth.logmask import SERVER_LOG_FILTER
from opsflow.auth.permissions import Permission
from opsflow.auth.secrets import SecretVault
from opsflow.errors import Conflict
from opsflow.spec.triggers import TriggerType
from opsflow.store import audit
from opsflow.store import deliveries as log_store
from opsflow.store import triggers as triggers_store
from opsflow.store import workflows as workflows_store
from opsflow.store.deliveries import Delivery, DeliveryOutcome
from opsflow.triggers import webhook
from opsflow.triggers.sync import HOOK_TYPES, secret_box_name

router = APIRouter(tags=["triggers"])

Reader = Annotated[Principal, Depends(require(Permission.WORKFLOWS_READ))]
Admin = Annotated[Principal, Depends(require(Permission.SECRETS_MANAGE))]
LAST_DELIVERIES = 5


class DeliveryOut(BaseModel):
    """One delivery (or one item of it: an Alertmanager group of three alerts is three)."""

    id: int
    trigger_name: str
    request_id: str = Field(description="Shared by the items of one HTTP request.")
    received_at: datetime
    source_address: str = Field(description="The sender's address as the server saw it.")
    outcome: DeliveryOutcome
    status_code: int = Field(description="The HTTP status the sender was answered.")
    reason: str = Field(description="Why it was refused, filtered out or deduplicated.")
    delivery_key: str | None = Field(description="Its Idempotency-Key or delivery id.")
    execution_id: str | None

    @classmethod
    def of(cls, d: Delivery) -> DeliveryOut:
        return cls(
            id=d.id,
            trigger_name=d.trigger_name,
            request_id=d.request_id,
            received_at=d.received_at,
            source_address=d.source_address,
            outcome=d.outcome,
            status_code=d.status_code,
            reason=d.reason,
            delivery_key=d.delivery_key,
            execution_id=d.execution_id,
        )


class TriggerListed(TriggerOut):
    """A trigger with where it is reached and what reached it last."""

    url: str | None = Field(description="POST here (webhook, git, incident); null otherwise.")
    secret: str | None = Field(
        description="'generated' (rotate it to read a new value once) or 'secret NAME' "
        "(an opsflow secret); null for triggers without a URL."
    )
    last_deliveries: list[DeliveryOut] = Field(description="Newest first.")


class DeliveryPage(BaseModel):
    items: list[DeliveryOut]
    next_before: int | None = Field(description="Pass as `before` for older deliveries.")


class RotatedSecret(BaseModel):
    """The new secret, shown this once."""

    name: str
    url: str
    secret: str = Field(description="The new secret; the old one no longer works.")
    how: str = Field(description="How a sender uses it.")


def _hook_url(request: Request, key: str | None) -> str | None:
    return f"{str(request.base_url).rstrip('/')}/hooks/{key}" if key else None


def _secret_label(trigger: triggers_store.Trigger) -> str | None:
    if trigger.type not in HOOK_TYPES or trigger.hook_key is None:
        return None  # no URL (a git trigger that polls), so no secret
    return f"secret {trigger.secret_name}" if trigger.secret_name else "generated"


@router.get(
    "/workflows/{workflow_id}/triggers",
    response_model=list[TriggerListed],
    responses=error_responses(401, 403, 404),
)
def list_triggers(
    request: Request, workflow_id: WorkflowId, _principal: Reader
) -> list[TriggerListed]:
    """The workflow's triggers in declaration order, with URLs and last deliveries."""
    with services_of(request).db.read() as session:
        workflows_store.get_workflow(session, workflow_id)  # 404 for an unknown workflow
        triggers = triggers_store.list_for_workflow(session, workflow_id)
        last = log_store.last_deliveries(session, workflow_id, LAST_DELIVERIES)
    return [
        TriggerListed(
            **TriggerOut.of(t).model_dump(),
            url=_hook_url(request, t.hook_key),
            secret=_secret_label(t),
            last_deliveries=[DeliveryOut.of(d) for d in last.get(t.name, [])],
        )
        for t in triggers
    ]


Limit = Annotated[int, Query(ge=1, le=500, description="How many, newest first.")]
Before = Annotated[int | None, Query(ge=1, le=INT_MAX, description="Older than this delivery id.")]


@router.get(
    "/workflows/{workflow_id}/deliveries",
    response_model=DeliveryPage,
    responses=error_responses(401, 403, 404),
)
@router.get(
    "/workflows/{workflow_id}/triggers/{name}/deliveries",
    response_model=DeliveryPage,
    responses=error_responses(401, 403, 404),
)
def list_deliveries(
    request: Request,
    workflow_id: WorkflowId,
    _principal: Reader,
    name: str | None = None,
    limit: Limit = 50,
    before: Before = None,
) -> DeliveryPage:
    """The deliveries of the last 7 days, newest first: of the trigger ``name`` (in the path,
    or ``?name=`` on the workflow's route), else of all the workflow's triggers. 404 for an
    unknown workflow, or an unknown trigger naming the ones the workflow has."""
    with services_of(request).db.read() as session:
        if name is None:
            workflows_store.get_workflow(session, workflow_id)  # 404 for an unknown workflow
        else:
            triggers_store.get(session, workflow_id, name)  # 404 naming the triggers it has
        found = log_store.list_deliveries(
            session, workflow_id, name, limit=limit + 1, before_id=before
        )
    page = found[:limit]
    return DeliveryPage(
        items=[DeliveryOut.of(d) for d in page],
        next_before=page[-1].id if len(found) > limit else None,
    )


@router.post(
    "/workflows/{workflow_id}/triggers/{name}/rotate-secret",
    response_model=RotatedSecret,
    responses=error_responses(401, 403, 404, 409),
)
def rotate_secret(
    request: Request, workflow_id: WorkflowId, name: TriggerName, principal: Admin
) -> RotatedSecret:
    """Replace the trigger's generated secret and show the new one, this once (admins)."""
    services = services_of(request)
    vault: SecretVault = services.extra[VAULT_KEY]
    with services.session() as session:
        trigger = triggers_store.get(session, workflow_id, name, lock=True)
        if trigger.type not in HOOK_TYPES or trigger.hook_key is None:
            raise Conflict(f"trigger {name!r} is a {trigger.type} trigger: it has no secret")
        if trigger.secret_name:
            raise Conflict(
                f"trigger {name!r} uses the opsflow secret {trigger.secret_name}: replace its "
                f"value with `opsflow secrets set {trigger.secret_name}`"
            )
        value = (
            webhook.new_secret()
            if trigger.type == TriggerType.WEBHOOK
            else secrets.token_urlsafe(32)
        )
        SERVER_LOG_FILTER.learn([value])
        ciphertext = vault.box.encrypt(secret_box_name(workflow_id, name), value)
        triggers_store.update_trigger(session, trigger.id, secret_ciphertext=ciphertext)
        audit.record(session, principal.name, "trigger.rotate-secret", f"{workflow_id}/{name}")
    url = _hook_url(request, trigger.hook_key) or ""
    return RotatedSecret(name=name, url=url, secret=value, how=_how(TriggerType(trigger.type)))


def _how(trigger_type: TriggerType) -> str:
    if trigger_type is TriggerType.WEBHOOK:
        return (
            "send it as 'Authorization: Bearer <secret>', or sign each body with it "
            "(Standard Webhooks: webhook-id, webhook-timestamp, webhook-signature)"
        )
    if trigger_type is TriggerType.GIT:
        return "set it as the webhook's secret (GitHub, Gitea) or secret token (GitLab)"
    return "set it as the receiver's bearer token (Alertmanager http_config.authorization)"
