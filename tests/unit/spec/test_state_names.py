"""Terraform state names: built from a step's rendered fields, always a name the state API
takes, and a saved plan is applied only into its own state."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from opsflow.errors import SpecInvalid
from opsflow.spec.loader import load_workflow
from opsflow.spec.state_names import name_problem, state_name


@pytest.mark.parametrize(
    ("source", "workspace", "expected"),
    [
        (None, None, "wf/root/default"),  # the documented defaults: workflow dir, default
        ({"dir": "."}, None, "wf/root/default"),
        ({"dir": "./infra/"}, "staging", "wf/infra/staging"),
        ({"dir": "infra/api"}, None, "wf/infra-api/default"),
        ({"git": "https://example.com/r.git"}, "prod", "wf/root/prod"),
        ({"git": "https://example.com/r.git", "path": "stacks/api"}, None, "wf/stacks-api/default"),
        ({"dir": "my infra/.hidden"}, None, "wf/my-infra-.hidden/default"),
        ({"dir": "versions"}, None, "wf/versions_/default"),
        ({"dir": ".terraform-code"}, None, "wf/terraform-code/default"),
    ],
)
def test_state_name_follows_the_documented_pattern(
    source: dict[str, str] | None, workspace: str | None, expected: str
) -> None:
    assert state_name("wf", source, workspace) == expected


def test_a_long_directory_is_shortened_without_colliding() -> None:
    a = state_name("wf", {"dir": "x" * 400 + "/a"}, None)
    b = state_name("wf", {"dir": "x" * 400 + "/b"}, None)
    assert a != b
    assert name_problem(a) is None and name_problem(b) is None


@pytest.mark.parametrize("workspace", ["my ws", "a/b", "-x", "versions", "{{ x }}", "w" * 101])
def test_a_workspace_that_cannot_name_a_state_is_refused(workspace: str) -> None:
    with pytest.raises(ValueError, match="workspace"):
        state_name("wf", None, workspace)


@given(
    workflow=st.from_regex(r"[a-z0-9][a-z0-9-]{0,62}", fullmatch=True),
    directory=st.text(min_size=1, max_size=500),
    where=st.sampled_from(["dir", "path"]),
)
def test_every_built_name_is_one_the_state_api_takes(
    workflow: str, directory: str, where: str
) -> None:
    assert name_problem(state_name(workflow, {where: directory}, None)) is None


def _problems(text: str) -> list[tuple[str, str]]:
    with pytest.raises(SpecInvalid) as info:
        load_workflow(text)
    return [(p.loc, p.msg) for p in info.value.problems]


PLAN_AND_APPLY = """
id: t
params: {env: {type: string, default: staging}}
steps:
  - id: plan
    type: terraform
    action: plan
    workspace: "{{ params.env }}"
    vars: {n: 2}
    var_files: [a.tfvars]
  - {id: apply, type: terraform, action: apply, needs: [plan], plan_from: plan, %s}
"""


@pytest.mark.parametrize(
    ("field", "value", "plans"),
    [
        ("workspace", "production", "'{{ params.env }}'"),
        ("workspace", "'{{ params.env }}-2'", "'{{ params.env }}'"),
        ("vars", "{n: 1}", "{'n': 2}"),
        ("var_files", "[b.tfvars]", "['a.tfvars']"),
    ],
)
def test_an_apply_of_a_saved_plan_refuses_another_value_than_the_plans(
    field: str, value: str, plans: str
) -> None:
    assert _problems(PLAN_AND_APPLY % f"{field}: {value}") == [
        (
            f"steps[1].{field}",
            f"an apply with plan_from uses the plan's {field} (step 'plan' has {plans}): "
            f"remove '{field}' here, or set it on step 'plan'",
        )
    ]


def test_an_apply_of_a_saved_plan_refuses_its_own_source() -> None:
    assert _problems(PLAN_AND_APPLY % "source: {dir: infra}") == [
        ("steps[1].source", "an apply with plan_from uses the plan's source: remove 'source'")
    ]


@pytest.mark.parametrize(
    "fields",
    ["env: {TF_LOG: info}", "workspace: '{{ params.env }}'", "vars: {n: 2}", "retries: 1"],
)
def test_an_apply_of_a_saved_plan_may_repeat_the_plans_values_and_set_env(fields: str) -> None:
    load_workflow(PLAN_AND_APPLY % fields)


def test_a_literal_workspace_is_checked_when_the_workflow_is_applied() -> None:
    problems = _problems(
        """
id: t
steps:
  - {id: plan, type: terraform, action: plan, workspace: "eu west"}
"""
    )
    assert problems[0][0] == "steps[0].workspace"
    assert "'eu west' is not a valid workspace name" in problems[0][1]
