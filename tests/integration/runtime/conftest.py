"""A real runtime with its local agent on a fresh database, driven from the test's own loop."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from opsflow.runtime.host import RuntimeHost
from opsflow.runtime.service import RunRequest
from opsflow.spec.loader import canonical, load_workflow
from opsflow.store import jobs as jobs_store
from opsflow.store import runs as runs_store
from opsflow.store.db import Database


class Harness:
    def __init__(self, host: RuntimeHost) -> None:
        self.host = host
        self.runtime = host.runtime

    def start(self, yaml_text: str, params: dict[str, Any] | None = None, **kw: Any) -> str:
        workflow = load_workflow(yaml_text)
        definition = canonical(workflow)
        from opsflow.spec.params import resolve_params

        values = resolve_params(workflow.params, params or {})
        return self.runtime.start_execution(
            RunRequest(workflow_id=workflow.id, definition=definition, params=values, **kw)
        )

    async def start_async(
        self, yaml_text: str, params: dict[str, Any] | None = None, **kw: Any
    ) -> str:
        return await asyncio.to_thread(self.start, yaml_text, params, **kw)

    def execution(self, execution_id: str) -> runs_store.Execution:
        with self.runtime.db.read() as s:
            return runs_store.get_execution(s, execution_id)

    def steps(self, execution_id: str) -> dict[str, runs_store.Step]:
        with self.runtime.db.read() as s:
            return {st.step_id: st for st in runs_store.list_steps(s, execution_id)}

    def jobs(self, execution_id: str) -> list[jobs_store.Job]:
        with self.runtime.db.read() as s:
            return jobs_store.jobs_of_execution(s, execution_id)

    def engine_log(self, execution_id: str) -> list[str]:
        with self.runtime.db.read() as s:
            return [e["message"] for e in runs_store.engine_log(s, execution_id)]

    async def wait(
        self, execution_id: str, timeout: float = 20.0, *, until: Any = None
    ) -> runs_store.Execution:
        """Wait (on the bus, not a fixed sleep) until the execution ends or ``until(ex)``."""
        deadline = time.monotonic() + timeout
        async with self.host.bus.watch_execution(execution_id) as sub:
            while True:
                ex = await asyncio.to_thread(self.execution, execution_id)
                if until(ex) if until else ex.status.terminal:
                    return ex
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError(
                        f"execution still {ex.status} after {timeout}s: "
                        f"{self.engine_log(execution_id)}"
                    )
                await sub.wait(min(left, 0.5))


@pytest.fixture
async def harness(database: Database, tmp_path: Path) -> AsyncIterator[Harness]:
    host = RuntimeHost(
        database,
        work_dir=tmp_path / "work",
        concurrency=4,
        lease_seconds=5.0,
        heartbeat_interval=1.0,
    )
    await host.start()
    try:
        yield Harness(host)
    finally:
        await host.stop()


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"
