"""The web editor's copy of the workflow JSON Schema (its vitest property test validates
generated definitions against it with ajv) equals what the server serves."""

from __future__ import annotations

import json
from pathlib import Path

from opsflow.spec.schema import workflow_json_schema

EXPORT = Path(__file__).resolve().parents[3] / "web" / "src" / "editor" / "workflow.schema.json"


def schema_text() -> str:
    """The export's exact text: indented, sorted keys, a final newline."""
    return json.dumps(workflow_json_schema(), indent=2, sort_keys=True) + "\n"


def test_the_web_copy_of_the_schema_is_current() -> None:
    assert EXPORT.read_text() == schema_text(), (
        f"{EXPORT} is stale: regenerate it with "
        "`python -m tests.unit.spec.test_schema_export` from the repository root"
    )


if __name__ == "__main__":
    EXPORT.write_text(schema_text())
