"""The real thing: `run_server` in its own process on a loopback port, spoken to over HTTP."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from opsflow.errors import SpecInvalid
from opsflow.spec.loader import load_workflow_file
from tests.servers import free_port as _free_port

REPO = Path(__file__).resolve().parents[3]
SERVER = (
    "from opsflow.api.server import run_server; from opsflow.config import Settings; "
    "run_server(Settings.from_env())"
)


def _valid_examples() -> set[str]:
    ids = set()
    for directory in sorted((REPO / "examples").iterdir()):
        if (directory / "workflow.yaml").is_file():
            with contextlib.suppress(SpecInvalid):
                ids.add(load_workflow_file(directory).id)
    return ids


@pytest.fixture
def server(db_url: str, tmp_path: Path) -> Iterator[tuple[str, Path, list[str]]]:
    """A demo server process; yields its URL, data dir and the lines it printed."""
    port = _free_port()
    data_dir = tmp_path / "data"
    env = {
        **os.environ,
        "OPSFLOW_DATA_DIR": str(data_dir),
        "OPSFLOW_DB": db_url,
        "OPSFLOW_PORT": str(port),
        "OPSFLOW_DEMO": "true",
        "OPSFLOW_LOCAL_AGENT": "false",
    }
    env.pop("OPSFLOW_ADMIN_PASSWORD", None)
    proc = subprocess.Popen(
        [sys.executable, "-c", SERVER],
        cwd=REPO,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    printed: list[str] = []
    assert proc.stdout is not None
    for line in proc.stdout:  # wait for the event, not for a fixed time
        printed.append(line.rstrip())
        # The banner, printed once the server listens, ends with the CLI's token line.
        if "API token for the CLI" in line or "Traceback" in line:
            break
    assert "API token for the CLI" in printed[-1], "\n".join(printed)
    try:
        yield f"http://127.0.0.1:{port}", data_dir, printed
    finally:
        proc.send_signal(signal.SIGTERM)
        rest, _ = proc.communicate(timeout=30)
        # uvicorn shuts down gracefully, then re-raises the signal (exit status -SIGTERM).
        assert proc.returncode in (0, -signal.SIGTERM), rest
        assert "Application shutdown complete" in rest, rest


def test_server_prints_how_to_log_in_and_serves_the_demo(
    server: tuple[str, Path, list[str]],
) -> None:
    url, data_dir, printed = server
    banner = "\n".join(printed)
    assert f"opsflow listening on {url}" in banner
    assert str(data_dir.resolve() / "admin-password") in banner
    assert str(data_dir.resolve() / "admin-token") in banner

    token = (data_dir / "admin-token").read_text().strip()
    with httpx.Client(base_url=url, headers={"Authorization": f"Bearer {token}"}) as http:
        assert http.get("/healthz").json() == {"status": "ok"}
        assert http.get("/readyz").status_code == 200
        listed = http.get("/api/v1/workflows", params={"limit": 500}).json()
        demo = {w["id"] for w in listed["items"]}
        assert demo == _valid_examples() and demo
        assert {w["status"] for w in listed["items"]} == {"active"}
        # The demo's gates name team platform: the admin is in it, so the demo can be approved.
        assert "admin" in http.get("/api/v1/teams/platform").json()["members"]
        assert http.get("/api/v1/workflows").status_code == 200
        assert httpx.get(f"{url}/api/v1/workflows").status_code == 401
