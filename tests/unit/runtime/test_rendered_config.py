"""What reaches an agent is rendered: no field a job uses, nor anything the server derives from
one (the Terraform state name), still holds template markup."""

from __future__ import annotations

from typing import Any

import pytest

from opsflow.runtime.context import ServerFacts, job_config, step_definition
from opsflow.spec.loader import load_workflow
from opsflow.spec.models import TEMPLATED_FIELDS
from opsflow.spec.template import is_template
from opsflow.status import ExecutionStatus, StepType
from opsflow.store.runs import Execution

W = "{{ params.env }}"
STEPS: list[dict[str, Any]] = [
    {"id": "script", "type": "script", "run": "echo {{ not rendered }}", "env": {"E": W}},
    {
        "id": "http",
        "type": "http",
        "url": "http://127.0.0.1/{{ params.env }}",
        "headers": {"H": W},
        "body": W,
    },
    {"id": "http-json", "type": "http", "url": "http://x/", "json": {"a": [W]}},
    {"id": "plan", "type": "terraform", "action": "plan", "workspace": W, "vars": {"v": W}},
    {"id": "apply", "type": "terraform", "action": "apply", "plan_from": "plan", "env": {"E": W}},
    {"id": "ansible", "type": "ansible", "playbook": "p.yml", "limit": W, "extra_vars": {"x": W}},
    {"id": "notify", "type": "notify", "channel": "ops", "message": W, "title": W},
]


def _execution() -> Execution:
    return Execution(
        id="e1",
        workflow_id="wf",
        version=1,
        test_run=False,
        definition={"id": "wf", "steps": STEPS},
        bundle_digest=None,
        status=ExecutionStatus.RUNNING,
        status_reason="",
        trigger_type="manual",
        trigger={},
        params={"env": "staging"},
        started_by="admin",
        created_at=0.0,
        started_at=0.0,
        ended_at=None,
        cancel_mode=None,
        cancel_requested_at=None,
        cancel_reason=None,
        cancel_by=None,
    )


def _markup(value: Any, path: str = "") -> list[str]:
    if isinstance(value, str):
        return [path] if is_template(value) else []
    if isinstance(value, dict):
        return [p for k, v in value.items() for p in _markup(v, f"{path}.{k}")]
    if isinstance(value, list):
        return [p for i, v in enumerate(value) for p in _markup(v, f"{path}[{i}]")]
    return []


def test_every_agent_step_type_is_covered() -> None:
    covered = {StepType(s["type"]) for s in STEPS}
    agent_types = {StepType.SCRIPT, StepType.HTTP, StepType.TERRAFORM}
    agent_types |= {StepType.ANSIBLE, StepType.NOTIFY}
    assert agent_types <= covered
    for step in STEPS:
        assert set(TEMPLATED_FIELDS[StepType(step["type"])]) & set(step) or step["id"] == "apply"


@pytest.mark.parametrize("step_id", [s["id"] for s in STEPS])
def test_a_jobs_config_holds_no_template_markup_outside_script_bodies(step_id: str) -> None:
    execution = _execution()
    raw = step_definition(execution, step_id)
    step_type = StepType(raw["type"])
    facts = ServerFacts(channels={"ops": ["json://127.0.0.1/"]})
    config = job_config(execution, step_type, raw, {}, facts)
    leftovers = [p for p in _markup(config) if p != ".run"]
    assert leftovers == [], f"unrendered after rendering: {leftovers}"
    if step_type == StepType.TERRAFORM:
        # The plan and the apply of its plan use the state of the rendered workspace.
        assert config["state_name"] == "wf/root/staging"


def test_templated_fields_are_checked_as_what_they_render_to_not_as_written() -> None:
    # Statement markup ({% %}) is a template too: the URL and the workspace are checked when
    # rendered, not refused for how the template text looks.
    load_workflow(
        """
id: t
params: {env: {type: string, default: staging}}
steps:
  - id: call
    type: http
    url: "{% if params.env == 'staging' %}http://s.example{% else %}http://p.example{% endif %}"
  - {id: plan, type: terraform, action: plan, workspace: "{% if true %}{{ params.env }}{% endif %}"}
"""
    )
