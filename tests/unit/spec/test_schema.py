"""The published JSON Schema agrees with the loader on every example."""

from __future__ import annotations

import json
from pathlib import Path

import jsonschema
import pytest
import yaml

from opsflow.spec.schema import workflow_json_schema
from tests.unit.spec.support import EXAMPLE_DIRS

SCHEMA = workflow_json_schema()
VALIDATOR = jsonschema.Draft202012Validator(SCHEMA)


def test_schema_names_its_dialect_and_describes_fields() -> None:
    assert SCHEMA["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    assert SCHEMA["title"] == "opsflow workflow"
    jsonschema.Draft202012Validator.check_schema(SCHEMA)
    script = SCHEMA["$defs"]["ScriptStep"]["properties"]
    assert "never templated" not in script["run"]["description"]
    assert script["env"]["description"] == "Environment variables (templated)."
    assert SCHEMA["properties"]["steps"]["items"]["discriminator"]["propertyName"] == "type"
    assert "json" in SCHEMA["$defs"]["HttpStep"]["properties"]
    assert "if" in SCHEMA["$defs"]["ConditionStep"]["required"]
    json.dumps(SCHEMA)  # publishable as is


@pytest.mark.parametrize("directory", EXAMPLE_DIRS, ids=[d.name for d in EXAMPLE_DIRS])
def test_every_example_satisfies_the_schema(directory: Path) -> None:
    document = yaml.safe_load((directory / "workflow.yaml").read_text())
    errors = [e.message for e in VALIDATOR.iter_errors(document)]
    assert errors == []


def test_the_schema_refuses_a_misspelled_field_and_a_bad_duration() -> None:
    document = {
        "id": "x",
        "steps": [{"id": "a", "type": "script", "run": "true", "timeout": "soon", "retires": 2}],
    }
    assert not VALIDATOR.is_valid(document)


def test_the_schema_offers_only_the_statuses_a_run_ends_with() -> None:
    statuses = SCHEMA["$defs"]["WorkflowTrigger"]["properties"]["statuses"]["items"]
    assert statuses["enum"] == ["completed", "failed", "cancelled", "rejected", "error"]
    step = {"id": "a", "type": "script", "run": "true"}
    trigger = {"type": "workflow", "workflow": "build", "statuses": ["failed"]}
    assert VALIDATOR.is_valid({"id": "x", "triggers": [trigger], "steps": [step]})
    trigger["statuses"] = ["running"]
    assert not VALIDATOR.is_valid({"id": "x", "triggers": [trigger], "steps": [step]})
