"""Every step type as a user writes it, with the documented defaults left out: terraform
without ``source`` or ``workspace`` (the workflow directory, state ``<wf>/root/default``), an
apply of its saved plan and a plain apply, ansible without an inventory (the implicit
localhost), a script without ``shell`` or ``workdir`` (bash, in the workflow's files), http
without ``method`` or ``expect_status`` (GET, any 2xx), notify without ``channel`` (the
workflow's). Real server, local agent, Terraform and Ansible, on SQLite and PostgreSQL."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from .conftest import Server, StandIn

pytestmark = pytest.mark.slow

MAIN_TF = """
variable "size" {
  type    = number
  default = 2
}
resource "terraform_data" "item" {
  count = var.size
  input = "item-${count.index}"
}
output "items" {
  value = terraform_data.item[*].output
}
"""

PLAYBOOK = """
- hosts: localhost
  gather_facts: false
  tasks:
    - name: say hello
      ansible.builtin.debug:
        msg: hello
"""

WORKFLOW = """
id: defaults
notify: {channel: ops}
steps:
  - {id: plan, type: terraform, action: plan}
  - {id: apply, type: terraform, action: apply, needs: [plan], plan_from: plan}
  - {id: again, type: terraform, action: apply, needs: [apply]}
  - {id: play, type: ansible, playbook: site.yml}
  - id: shell
    type: script
    run: |
      set -e
      [[ -n "$BASH_VERSION" ]]
      test -f site.yml
      echo "bash_in_workflow_dir=yes" >> "$OPSFLOW_OUTPUT"
  - {id: call, type: http, url: "%(url)s/healthz"}
  - {id: tell, type: notify, needs: [again, play, shell, call], message: "all defaults ran"}
"""


def test_every_step_type_runs_with_its_documented_defaults(
    start_server: Callable[[dict[str, str]], Server], stand_in: StandIn, tmp_path: Path
) -> None:
    port = stand_in.url.rsplit(":", 1)[1]
    server = start_server({"OPSFLOW_NOTIFY_OPS": f"json://127.0.0.1:{port}/ops"})
    files = tmp_path / "defaults"
    files.mkdir()
    (files / "main.tf").write_text(MAIN_TF)
    (files / "site.yml").write_text(PLAYBOOK)
    (files / "workflow.yaml").write_text(WORKFLOW % {"url": stand_in.url})
    server.apply(files, "defaults")

    eid = server.run("defaults")
    ex = server.wait(eid, lambda e: e["status"] not in ("pending", "running"), timeout=240)
    assert ex["status"] == "completed", ex["engine_log"]
    steps = {s["id"]: s for s in ex["steps"]}
    assert {sid: s["status"] for sid, s in steps.items()} == dict.fromkeys(steps, "succeeded")

    # Terraform: the workflow directory's code, one state for the plan, its apply and the
    # plain apply (which finds everything applied already).
    for sid in ("plan", "apply", "again"):
        assert steps[sid]["outputs"]["state_name"] == "defaults/root/default", sid
    assert steps["apply"]["outputs"]["outputs"]["items"] == ["item-0", "item-1"]
    assert steps["again"]["outputs"]["changes"] == {"add": 0, "change": 0, "destroy": 0}
    state = server.api.get("/tfstate/defaults/root/default").json()
    assert len(state["resources"]) == 1 and len(state["resources"][0]["instances"]) == 2

    assert steps["play"]["outputs"]["stats"]["localhost"]["ok"] == 1
    assert steps["shell"]["outputs"]["bash_in_workflow_dir"] == "yes"
    assert steps["call"]["outputs"]["status"] == 200
    assert "/healthz" in stand_in.gets
    assert [m["message"] for m in stand_in.posted("/ops")] == ["all defaults ran"]
