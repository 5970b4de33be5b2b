"""Every example validates with its files; hello needs no outside service."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from opsflow.spec.graph import to_graph
from opsflow.spec.loader import canonical, load_definition, load_workflow_file
from opsflow.spec.models import ConditionStep, ScriptStep
from opsflow.status import StepType
from tests.unit.spec.support import EXAMPLE_DIRS, EXAMPLES


def test_the_examples_cover_the_promised_scenarios() -> None:
    ids = {load_workflow_file(d).id for d in EXAMPLE_DIRS}
    assert {
        "hello",
        "api-deploy",
        "promote-release",
        "nightly-db-backup",
        "incident-autoscale",
        "multi-region-rollout",
        "cache-purge-hook",
    } <= ids
    assert all(d.name == load_workflow_file(d).id for d in EXAMPLE_DIRS)


@pytest.mark.parametrize("directory", EXAMPLE_DIRS, ids=[d.name for d in EXAMPLE_DIRS])
def test_every_example_validates_round_trips_and_compiles(directory: Path) -> None:
    workflow = load_workflow_file(directory)
    assert load_definition(json.loads(json.dumps(canonical(workflow)))) == workflow
    graph = to_graph(workflow)
    assert len(graph.steps) == len(workflow.steps) >= 3
    assert workflow.description


def test_hello_uses_only_local_scripts_params_a_condition_and_outputs() -> None:
    hello = load_workflow_file(EXAMPLES / "hello")
    kinds = {step.type for step in hello.steps}
    assert kinds == {StepType.SCRIPT, StepType.CONDITION}
    shells = {s.shell for s in hello.steps if isinstance(s, ScriptStep)}
    assert shells == {"sh", "python"}
    assert hello.params and not hello.triggers
    scripts = [s for s in hello.steps if isinstance(s, ScriptStep)]
    assert any("OPSFLOW_OUTPUT" in (s.run or "") for s in scripts)
    assert any("nodes." in value for s in scripts for value in s.env.values())
    assert any(isinstance(s, ConditionStep) for s in hello.steps)


@pytest.mark.parametrize(
    "directory",
    [d for d in EXAMPLE_DIRS if d.name != "hello"],
    ids=[d.name for d in EXAMPLE_DIRS if d.name != "hello"],
)
def test_an_example_that_needs_outside_things_says_which_in_its_description(
    directory: Path,
) -> None:
    """The description is what the UI and `opsflow workflows show` put first: a newcomer on a
    bare demo learns there what to set up before a run can reach its end."""
    workflow = load_workflow_file(directory)
    text = (directory / "workflow.yaml").read_text()
    assert workflow.description and "Needs before it runs:" in workflow.description
    needs = " ".join(workflow.description.split("Needs before it runs:", 1)[1].split())
    for secret in re.findall(r"secrets\.([A-Z][A-Z0-9_]*)|secret: ([A-Z][A-Z0-9_]*)", text):
        assert f"secret {''.join(secret)}" in needs or "".join(secret) in needs
    channels = re.findall(r"channel: ([a-z][a-z0-9-]*)", text)
    assert channels and all(f"channel {c}" in needs for c in channels)
