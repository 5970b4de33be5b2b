"""Fixtures for CLI tests: the installed ``opsflow`` script, and a real server it talks to.

Every test runs the console script as a subprocess, exactly as a user would. The server is a
real ``opsflow server`` subprocess on a free loopback port, started once per module and backend
(SQLite and PostgreSQL), because a start costs a second or two and the budget is small.
"""

from __future__ import annotations

import subprocess
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from tests.conftest import BACKENDS
from tests.servers import clean_env, fresh_database, opsflow_executable, run_server


@dataclass
class Cli:
    """Runs ``opsflow`` with a clean environment (no stray token, URL or data dir)."""

    executable: str
    cwd: Path
    env: dict[str, str]

    def __call__(
        self, *args: str, input: str | None = None, env: dict[str, str] | None = None
    ) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [self.executable, *args],
            cwd=self.cwd,
            env={**self.env, **(env or {})},
            input=input,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )


def _clean_env() -> dict[str, str]:
    # wide enough that Rich tables never fold a cell in assertions
    return {**clean_env(), "COLUMNS": "200"}


@pytest.fixture
def cli(tmp_path: Path) -> Cli:
    """``opsflow`` in an empty working directory, so no ``./data/admin-token`` is found."""
    workdir = tmp_path / "cwd"
    workdir.mkdir()
    return Cli(opsflow_executable(), workdir, _clean_env())


@dataclass
class Server:
    """A running ``opsflow server``; ``cli`` is pre-set with its URL and admin token.

    ``api`` (httpx, as admin) is for arranging state and checking results cheaply, so each test
    spends its subprocess starts on the commands it is about.
    """

    url: str
    data_dir: Path
    admin_token: str
    cli: Cli
    api: httpx.Client

    def put_workflow(self, workflow_id: str, *, label: str = "platform") -> None:
        """Create and publish a small workflow straight through the API."""
        response = self.api.put(
            f"/workflows/{workflow_id}",
            params={"publish": "true"},
            content=simple_workflow(workflow_id, label=label, inline=True),
            headers={"Content-Type": "application/yaml"},
        )
        assert response.status_code in (200, 201), response.text


@pytest.fixture(scope="module", params=BACKENDS)
def server_db_url(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[str]:
    """A migrated database of each backend, living as long as the module's server."""
    yield from fresh_database(request, tmp_path_factory, "cli")


@pytest.fixture(scope="module")
def server(server_db_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """``opsflow server --no-local-agent`` on a free port, healthy before the first test."""
    data_dir = tmp_path_factory.mktemp("cli-data")
    workdir = tmp_path_factory.mktemp("cli-cwd")
    with (
        run_server(server_db_url, data_dir, "--no-local-agent", cwd=workdir) as running,
        httpx.Client(
            base_url=f"{running.url}/api/v1",
            headers={"Authorization": f"Bearer {running.token}"},
            timeout=30,
        ) as api,
    ):
        env = {**_clean_env(), "OPSFLOW_URL": running.url, "OPSFLOW_TOKEN": running.token}
        cli = Cli(opsflow_executable(), workdir, env)
        yield Server(running.url, data_dir, running.token, cli, api)


WorkflowDir = Callable[..., Path]


@pytest.fixture
def workflow_dir(tmp_path: Path) -> WorkflowDir:
    """Writes a workflow directory (``workflow.yaml`` plus files) and returns its path.

    Without ``files`` it holds the ``finish.sh`` that :func:`simple_workflow` runs.
    """

    def write(name: str, yaml_text: str, files: dict[str, str] | None = None) -> Path:
        directory = tmp_path / name
        directory.mkdir(parents=True, exist_ok=True)
        (directory / "workflow.yaml").write_text(yaml_text)
        if files is None:
            files = {"finish.sh": "echo finished\n"}
        for rel, content in files.items():
            (directory / rel).parent.mkdir(parents=True, exist_ok=True)
            (directory / rel).write_text(content)
        return directory

    return write


def simple_workflow(workflow_id: str, *, label: str = "platform", inline: bool = False) -> str:
    """A small valid workflow: a script step and one that needs it, running ``finish.sh`` from
    the workflow directory (or inline code when ``inline``, for a definition without files)."""
    last = "run: echo finished" if inline else "file: finish.sh"
    return f"""\
id: {workflow_id}
name: {workflow_id.replace("-", " ").title()}
labels: {{team: {label}}}
steps:
  - id: greet
    type: script
    shell: bash
    run: echo hello
  - id: done
    type: script
    needs: [greet]
    shell: bash
    {last}
"""
