"""The local agent's steps keep cgroup migrations warm while they run, and nothing writes to the
kernel once the agent stopped (not even for the warmer's linger)."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from opsflow.runtime.host import RuntimeHost
from opsflow.status import ExecutionStatus
from opsflow.steps.scope import Tracking, available, migration_warmer
from opsflow.store.db import Database

from .conftest import Harness

pytestmark = [
    pytest.mark.anyio,
    pytest.mark.skipif(
        not available(Tracking.CGROUP), reason="cgroup v2 tracking is not available here"
    ),
]

CHAIN = """id: warm-chain
steps:
  - {id: a, type: script, shell: sh, run: 'true'}
  - {id: b, type: script, shell: sh, run: 'true', needs: [a]}
"""


async def test_the_agent_warms_migrations_while_steps_run_and_rests_them_when_it_stops(
    database: Database, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    warmer = migration_warmer()
    assert warmer is not None
    monkeypatch.setattr(warmer, "linger", 60.0)  # only the agent's stop can end it in time
    host = RuntimeHost(database, work_dir=tmp_path / "work", concurrency=4, lease_seconds=5.0)
    await host.start()
    try:
        harness = Harness(host)
        writes = warmer.writes
        execution_id = await harness.start_async(CHAIN)
        ex = await harness.wait(execution_id)
        assert ex.status == ExecutionStatus.COMPLETED, harness.engine_log(execution_id)
        assert warmer.writes > writes, "the steps' scopes never started the warmer"
    finally:
        await host.stop()
    assert warmer.idle, "still writing after the agent stopped"
    writes = warmer.writes
    time.sleep(0.2)
    assert warmer.writes == writes, "a write after the agent stopped"
