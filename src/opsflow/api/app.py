"""`create_app(settings)`: the whole server, wired explicitly in one lifespan.

Start-up order: open the database, migrate it, bootstrap the first admin, load the demo
examples, then enter each extension (the runtime, the local agent, the scheduler) in order.
Shutdown runs in reverse. Nothing starts as a side effect of an import.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import AbstractAsyncContextManager, AsyncExitStack, asynccontextmanager
from dataclasses import replace
from pathlib import Path
from typing import Any

from fastapi import APIRouter, FastAPI
from starlette.concurrency import run_in_threadpool

import opsflow
from opsflow.api import (
    agent_protocol,
    agents,
    analytics,
    apidocs,
    approvals,
    connections,
    definitions,
    deliveries,
    events,
    executions,
    feed,
    health,
    hooks,
    incidents,
    limits,
    metrics,
    people,
    problems,
    schedules,
    secrets,
    tfstate,
    tokens,
    triggers,
    webui,
    workflows,
)
from opsflow.api.demo import find_examples_dir, load_examples, stand_in_channels
from opsflow.api.services import Services
from opsflow.auth.bootstrap import bootstrap
from opsflow.auth.connections import ConnectionVault
from opsflow.auth.logmask import SERVER_LOG_FILTER
from opsflow.auth.secrets import SecretBox, SecretVault, load_master_key
from opsflow.config import ServerRole, Settings
from opsflow.runtime.host import local_agent_presence, runtime_extension
from opsflow.store.db import Database
from opsflow.store.migrate import ensure_current
from opsflow.triggers import sync as triggers_sync
from opsflow.triggers.git_poller import git_poller_extension
from opsflow.triggers.scheduler import scheduler_extension

log = logging.getLogger(__name__)

API_PREFIX = "/api/v1"

# An extension starts something when entered and stops it when exited, e.g.
#   @asynccontextmanager
#   async def runtime(services: Services) -> AsyncIterator[None]: ... start; yield; stop
Extension = Callable[[Services], AbstractAsyncContextManager[Any]]

# The routers under /api/v1, in the order OpenAPI lists them. The runtime's routers
# (executions, runs, ...) are added here.
API_ROUTERS: list[APIRouter] = [
    agent_protocol.router,
    agents.router,
    workflows.router,
    triggers.router,
    deliveries.router,
    schedules.router,
    executions.router,
    analytics.router,
    incidents.router,
    events.router,
    feed.router,
    approvals.router,
    people.router,
    tokens.router,
    secrets.router,
    connections.router,
    tfstate.router,
    health.router,
]

# Extensions every server runs, after bootstrap, in this order: the runtime (its timers, lease
# sweeps and local agent only where the role does work), the hook ingress, and the trigger
# loops that fire on their own (only where the role does work, see `extensions_for`).
DEFAULT_EXTENSIONS: list[Extension] = [
    runtime_extension,
    hooks.hook_ingress,
    scheduler_extension,
    git_poller_extension,  # after the ingress: it starts runs through the hook desk
]
WORKER_ONLY: tuple[Extension, ...] = (scheduler_extension, git_poller_extension)


def extensions_for(role: ServerRole) -> list[Extension]:
    """`DEFAULT_EXTENSIONS` for a server of ``role``: an API-only replica fires no schedules
    and polls no repositories (a worker replica does)."""
    if role.does_work:
        return list(DEFAULT_EXTENSIONS)
    return [e for e in DEFAULT_EXTENSIONS if e not in WORKER_ONLY]


def _open(settings: Settings) -> Services:
    """Blocking start-up work, run off the event loop."""
    Path(settings.data_dir).mkdir(parents=True, exist_ok=True)
    box = SecretBox(load_master_key(settings.data_dir, os.environ))  # a bad key stops us here
    ensure_current(settings.db_url)  # Alembic runs in a child process, when needed
    db = Database(settings.db_url)
    services = Services(settings=settings, db=db)
    services.bootstrap = bootstrap(db, settings)
    # The vault tells the process's log filter every value it holds, sets or reveals.
    vault = SecretVault(db, box, learn=SERVER_LOG_FILTER.learn)
    vault.learn_all()
    services.extra[secrets.VAULT_KEY] = vault
    connection_vault = ConnectionVault(db, box, learn=SERVER_LOG_FILTER.learn)
    connection_vault.learn_all()
    services.extra[connections.VAULT_KEY] = connection_vault
    synced = triggers_sync.sync_unsynced(db, box, time.time())
    if synced:
        log.info("triggers: gave %d published workflows their trigger rows", synced)
    if settings.demo:
        examples = find_examples_dir()
        if examples is None:
            log.warning("demo: no examples/ directory found; starting without examples")
        else:
            agents = (
                [local_agent_presence("local", settings.local_agent_concurrency)]
                if settings.local_agent
                else None  # remote agents may serve any pool: load every example
            )
            services.extra["demo_workflows"] = load_examples(db, examples, box, agents)
            channels = stand_in_channels(examples, settings.notify_channels)
            if channels:
                log.info(
                    "demo: %s %s %s to this log (set OPSFLOW_NOTIFY_<NAME> to send %s elsewhere)",
                    "notify channel" if len(channels) == 1 else "notify channels",
                    ", ".join(channels),
                    "writes" if len(channels) == 1 else "write",
                    "it" if len(channels) == 1 else "them",
                )
                merged = {**channels, **settings.notify_channels}
                services.settings = replace(settings, notify_channels=merged)
    loaded = connection_vault.load_channels(services.settings.notify_channels)
    if loaded:
        log.info("notify channels loaded as notify connections: %s", ", ".join(loaded))
    return services


def _uploads(settings: Settings) -> list[limits.Upload]:
    """The routes that take more than `limits.MAX_BODY_BYTES`, and how much each takes."""
    bundle = settings.max_bundle_bytes + definitions.FORM_OVERHEAD_BYTES
    definition_routes: dict[Callable[..., Any], int] = {
        workflows.validate: bundle,
        workflows.create_workflow: bundle,
        workflows.put_workflow: bundle,
    }
    state_routes: dict[Callable[..., Any], int] = {tfstate.post_state: tfstate.MAX_STATE_BYTES}
    return [
        *limits.uploads(workflows.router, API_PREFIX, definition_routes),
        *limits.uploads(tfstate.router, API_PREFIX, state_routes),
    ]


def create_app(settings: Settings, *, extensions: Sequence[Extension] | None = None) -> FastAPI:
    """The opsflow ASGI app. ``extensions`` replaces `DEFAULT_EXTENSIONS` (tests pass ``[]``)."""
    chosen = extensions_for(settings.role) if extensions is None else list(extensions)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        services = await run_in_threadpool(_open, settings)
        app.state.services = services
        try:
            async with AsyncExitStack() as stack:
                for extension in chosen:
                    await stack.enter_async_context(extension(services))
                yield
        finally:
            services.db.dispose()

    app = FastAPI(
        title="opsflow",
        version=opsflow.__version__,
        description="Durable DAG workflows for operations teams.",
        openapi_url=f"{API_PREFIX}/openapi.json",
        docs_url=None,  # apidocs serves Swagger UI from the package, not a CDN
        redoc_url=None,
        lifespan=lifespan,
    )
    problems.install(app)
    app.include_router(health.probes)
    app.include_router(metrics.router)  # /metrics on every role
    if settings.role.serves_api:  # a worker replica answers health probes only
        app.include_router(hooks.router)  # /hooks/{key}, outside /api/v1 (ARCHITECTURE.md §4)
        for router in API_ROUTERS:
            app.include_router(router, prefix=API_PREFIX)
        apidocs.install(app, API_PREFIX)
        # Last: the web UI answers every GET no route above claimed (its client-side routes).
        app.include_router(webui.router)
    problems.declare_errors(app)
    app.add_middleware(
        limits.RequestLimits, uploads=_uploads(settings), own_limits=(hooks.PATH_PREFIX,)
    )
    return app
