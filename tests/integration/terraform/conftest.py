"""Fixtures: a real ``opsflow server`` per backend that keeps Terraform state, and jobs whose
credentials Terraform uses to reach it.

The server is one subprocess per database backend for the whole package (a start costs a few
seconds). Tests stay independent by using their own state names. Jobs are written straight
into the server's database in the ``running`` state with a lease token, which is exactly what
the state routes check; the agent side is the executor, called directly.
"""

from __future__ import annotations

import secrets
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from opsflow.errors import NotFound
from opsflow.status import ExecutionStatus, JobStatus, StepType
from opsflow.steps.terraform import TerraformExecutor
from opsflow.store import jobs as jobs_store
from opsflow.store import runs as runs_store
from opsflow.store.db import Database
from tests.conftest import BACKENDS
from tests.servers import fresh_database, opsflow_executable, run_server

from .support import RecordingSink

LEASE_SECONDS = 3600.0


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
def sink() -> RecordingSink:
    return RecordingSink()


@pytest.fixture
def executor(tmp_path: Path) -> TerraformExecutor:
    """The executor with the embedded Terraform, a private git cache and a short grace."""
    return TerraformExecutor(binary="embedded", git_cache=tmp_path / "git-cache", grace=10.0)


@dataclass
class StateServer:
    """A running ``opsflow server``: its URL, an admin API client, and its database."""

    url: str
    admin_token: str
    db: Database
    api: httpx.Client
    executable: str

    @property
    def admin_credentials(self) -> tuple[str, str]:
        """What a person gives Terraform: their name and an API token as the password."""
        return ("admin", self.admin_token)

    def start_job(
        self, execution_id: str, step_id: str, state_name: str | None = None
    ) -> tuple[str, str]:
        """A running job of ``execution_id``/``step_id`` whose config names ``state_name`` as
        its state, as the server names it for a terraform step; returns (job id, lease token).
        """
        now = time.time()
        job_id, token = uuid.uuid4().hex, secrets.token_hex(16)
        with self.db.session() as session:
            try:
                runs_store.get_execution(session, execution_id)
            except NotFound:  # the first job of this execution
                runs_store.insert_execution(
                    session,
                    {
                        "id": execution_id,
                        "workflow_id": "terraform-tests",
                        "definition": {},
                        "status": ExecutionStatus.RUNNING.value,
                        "created_at": now,
                    },
                    [],
                )
            jobs_store.insert_job(
                session,
                {
                    "id": job_id,
                    "execution_id": execution_id,
                    "step_id": step_id,
                    "attempt": 1,
                    "type": StepType.TERRAFORM.value,
                    "status": JobStatus.RUNNING.value,
                    "pool": "default",
                    "labels": {},
                    "spec": {"config": {"state_name": state_name}} if state_name else {},
                    "created_at": now,
                    "started_at": now,
                    "lease_token": token,
                    "lease_expires_at": now + LEASE_SECONDS,
                },
            )
        return job_id, token

    def end_job(self, job_id: str, token: str) -> None:
        """Report the job completed: its credentials stop working."""
        with self.db.session() as session:
            jobs_store.finish_job(
                session, job_id, token, status=JobStatus.COMPLETED, now=time.time()
            )


@pytest.fixture(scope="package", params=BACKENDS)
def state_db_url(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[str]:
    """A migrated database of each backend, living as long as the package's server."""
    yield from fresh_database(request, tmp_path_factory, "tf")


@pytest.fixture(scope="package")
def state_server(
    state_db_url: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[StateServer]:
    """``opsflow server --no-local-agent`` on a free port, healthy before the first test."""
    data_dir = tmp_path_factory.mktemp("tf-data")
    db = Database(state_db_url)
    try:
        with (
            run_server(state_db_url, data_dir, "--no-local-agent") as running,
            httpx.Client(
                base_url=f"{running.url}/api/v1",
                headers={"Authorization": f"Bearer {running.token}"},
                timeout=30,
            ) as api,
        ):
            yield StateServer(running.url, running.token, db, api, opsflow_executable())
    finally:
        db.dispose()
