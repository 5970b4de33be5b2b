"""``POST /hooks/{key}``: every webhook, git and incident delivery comes in here.

The trigger that owns the key decides, through its type's `HookSource`, how the delivery is
authenticated and read (``triggers/ingress.py``; the work is `DeliveryDesk`'s). The order is
the point: nothing is parsed or written for a sender who has not proved it holds the
trigger's secret (bearer tokens before a byte of the body is read), the body is read with its
type's cap while it streams in (413 without reading the rest: 1 MiB for a webhook, 25 MiB for
git and incident), an authenticated delivery is counted against the key's rate limit (429
with ``Retry-After``, which wins over any other refusal) in the transaction that starts its
run, and the answer comes as soon as that transaction is committed: 202, or 200 for a repeat
or for a delivery the trigger's filters leave out. Every outcome is recorded.

Refusals: an unknown key is 404 (not recorded: no trigger to record it under); a paused
workflow and a disabled or retired trigger are 409, recorded with the reason.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field
from starlette.concurrency import run_in_threadpool

from opsflow.api.limits import check_json_depth
from opsflow.api.problems import error_responses
from opsflow.api.secrets import VAULT_KEY
from opsflow.api.services import Services, services_of
from opsflow.auth.secrets import SecretVault
from opsflow.errors import PayloadTooLarge
from opsflow.runtime.service import Runtime
from opsflow.spec.triggers import TriggerType
from opsflow.store.deliveries import DeliveryOutcome
from opsflow.triggers import incident_record
from opsflow.triggers.delivery import Arrival, DeliveryDesk, Opened, Settled
from opsflow.triggers.sources import hook_sources

router = APIRouter(tags=["hooks"])

DESK_KEY = "hook_desk"  # services.extra[DESK_KEY]: the DeliveryDesk
PATH_PREFIX = "/hooks/"  # its routes bound their bodies themselves (api.limits)


class HookItem(BaseModel):
    """What came of one thing a delivery asked for."""

    outcome: DeliveryOutcome
    execution_id: str | None = Field(description="The run started, or the earlier one repeated.")
    url: str | None = Field(description="The run's API URL.")
    reason: str = Field(description="Why it was filtered out or deduplicated; else a summary.")


class HookAnswer(BaseModel):
    """The answer to a delivery: the first run it started or repeated, and every item."""

    outcome: DeliveryOutcome
    execution_id: str | None
    url: str | None
    items: list[HookItem]


@asynccontextmanager
async def hook_ingress(services: Services) -> AsyncIterator[DeliveryDesk]:
    """The ingress as an app extension, after the runtime: the desk that authenticates,
    starts runs and records deliveries, with the source of each trigger type."""
    runtime: Runtime = services.extra["runtime"].runtime
    vault: SecretVault = services.extra[VAULT_KEY]
    desk = DeliveryDesk(
        runtime,
        vault.box,
        vault,
        hook_sources(),
        body_check=check_json_depth,
        rate_per_minute=services.settings.hook_rate_per_minute,
        observers={TriggerType.INCIDENT: incident_record.observer},
    )
    services.extra[DESK_KEY] = desk
    yield desk


async def _read_capped(
    request: Request, desk: DeliveryDesk, opened: Opened, arrival: Arrival
) -> bytes:
    """The raw body, refused (413, recorded) as soon as it passes the source's cap, declared
    or sent; the rest is never read."""
    limit = opened.source.max_body_bytes
    declared = request.headers.get("content-length", "")
    error: PayloadTooLarge | None = None
    body = bytearray()
    if declared.isdigit() and int(declared) > limit:
        error = PayloadTooLarge(
            f"the body declares {declared} bytes; this hook takes at most {limit} bytes"
        )
    else:
        async for chunk in request.stream():
            body += chunk
            if len(body) > limit:
                error = PayloadTooLarge(f"the body passes this hook's limit of {limit} bytes")
                break
    if error is not None:
        # An authenticated sender is counted against the rate limit here (429 wins).
        await run_in_threadpool(
            desk.refuse,
            opened.target,
            arrival,
            error,
            authenticated=opened.authenticated,
            count=opened.authenticated,
        )
        raise error
    return bytes(body)


@router.post(
    "/hooks/{key}",
    response_model=HookAnswer,
    status_code=202,
    responses={
        200: {"model": HookAnswer, "description": "A repeat, or nothing the filters let in"},
        **error_responses(401, 404, 409, 413, 422, 429),
    },
    openapi_extra={
        "requestBody": {
            "description": "The delivery as its sender makes it (JSON for a webhook).",
            "content": {"application/json": {"schema": {"type": "object"}}},
        }
    },
)
async def deliver(request: Request, key: str) -> JSONResponse:
    """A delivery to the trigger whose URL key is ``key``; see docs/concepts/triggers.md."""
    desk: DeliveryDesk = services_of(request).extra[DESK_KEY]
    arrival = Arrival.now(request.client.host if request.client else "")
    headers = {name.lower(): value for name, value in request.headers.items()}
    opened = await run_in_threadpool(desk.open, key, headers, arrival)
    body = await _read_capped(request, desk, opened, arrival)
    settled = await run_in_threadpool(desk.finish, opened, headers, body, arrival)
    return _answer(request, settled)


def _answer(request: Request, settled: list[Settled]) -> JSONResponse:
    base = str(request.base_url).rstrip("/")
    items = [
        HookItem(
            outcome=s.outcome,
            execution_id=s.execution_id,
            url=f"{base}/api/v1/executions/{s.execution_id}" if s.execution_id else None,
            reason=s.reason,
        )
        for s in settled
    ]
    first = next(
        (i for i in items if i.outcome is DeliveryOutcome.STARTED),
        next((i for i in items if i.execution_id), items[0] if items else None),
    )
    started = any(i.outcome is DeliveryOutcome.STARTED for i in items)
    answer = HookAnswer(
        outcome=first.outcome if first else DeliveryOutcome.FILTERED,
        execution_id=first.execution_id if first else None,
        url=first.url if first else None,
        items=items,
    )
    return JSONResponse(answer.model_dump(mode="json"), status_code=202 if started else 200)
