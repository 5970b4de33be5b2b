"""The JSON Schema of workflow definitions, published for editors (``opsflow schema``,
``GET /api/v1/schema/workflow``) so they complete field names and flag mistakes as you type.

It comes from the models, so it cannot drift from what the loader accepts. The checks across
steps (needs, cycles, template references) are beyond JSON Schema; ``opsflow validate`` does
those.
"""

from __future__ import annotations

from typing import Any

from opsflow.spec.models import Workflow

SCHEMA_DIALECT = "https://json-schema.org/draft/2020-12/schema"
SCHEMA_ID = "https://opsflow.dev/schema/workflow.json"


def workflow_json_schema() -> dict[str, Any]:
    """The JSON Schema (draft 2020-12) of a workflow YAML or JSON document."""
    schema = Workflow.model_json_schema(by_alias=True, mode="validation")
    return {
        "$schema": SCHEMA_DIALECT,
        "$id": SCHEMA_ID,
        "title": "opsflow workflow",
        "description": "An opsflow workflow: params, triggers and a DAG of steps.",
        **{k: v for k, v in schema.items() if k not in ("title", "description")},
    }
