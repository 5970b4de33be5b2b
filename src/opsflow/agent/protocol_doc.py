"""The message tables of ``docs/reference/agent-protocol.md``, made from the protocol's models.

The models in `opsflow.agent.protocol` are the protocol; the reference shows each one's fields
(name, JSON type with bounds, default, meaning) as its JSON Schema says, so the page cannot
drift from the code. ``python -m opsflow.agent.protocol_doc docs/reference/agent-protocol.md``
rewrites the part of the page between `BEGIN` and `END`; a unit test fails when it is stale.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from opsflow.agent import protocol
from opsflow.spec.params import INT_MAX

MODELS: list[type[BaseModel]] = [
    protocol.JobRef,
    protocol.Registration,
    protocol.Registered,
    protocol.ClaimRequest,
    protocol.Claimed,
    protocol.ClaimedJob,
    protocol.ConnectionGrant,
    protocol.CancelNotice,
    protocol.LogBatch,
    protocol.JobReport,
    protocol.ArtifactRequest,
    protocol.HandBack,
    protocol.Leaving,
]

BEGIN = "<!-- begin: generated from opsflow/agent/protocol.py by opsflow.agent.protocol_doc -->"
END = "<!-- end: generated -->"


def render() -> str:
    """The message tables, one section per model, in `MODELS` order."""
    parts: list[str] = []
    for model in MODELS:
        schema = model.model_json_schema()
        defs = schema.get("$defs", {})
        doc = " ".join((model.__doc__ or "").split())
        parts.append(f"### `{model.__name__}`\n\n{doc}\n" if doc else f"### `{model.__name__}`\n")
        rows = ["| Field | Type | Default | Meaning |", "| --- | --- | --- | --- |"]
        required = set(schema.get("required", []))
        for name, field in schema.get("properties", {}).items():
            default = "required" if name in required else _default(field)
            meaning = _cell(field.get("description", ""))
            rows.append(f"| `{name}` | {_type(field, defs)} | {default} | {meaning} |")
        parts.append("\n".join(rows) + "\n")
    return "\n".join(parts)


def update(text: str) -> str:
    """``text`` with the part between `BEGIN` and `END` replaced by `render`; ValueError
    when the markers are missing."""
    head, sep, rest = text.partition(BEGIN)
    _, sep2, tail = rest.partition(END)
    if not sep or not sep2:
        raise ValueError(f"the page lacks the markers {BEGIN!r} and {END!r}")
    return f"{head}{BEGIN}\n\n{render()}\n{END}{tail}"


def _type(field: dict[str, Any], defs: dict[str, Any]) -> str:
    if "$ref" in field:
        name = field["$ref"].rsplit("/", 1)[-1]
        target = defs.get(name, {})
        if "enum" in target:
            return " \\| ".join(f"`{json.dumps(v)}`" for v in target["enum"])
        return f"`{name}`"
    if "anyOf" in field:
        return " or ".join(_type(option, defs) for option in field["anyOf"])
    kind = field.get("type")
    if kind == "array":
        if "prefixItems" in field:  # a LogLine
            return "`LogLine` array"
        return f"array of {_type(field.get('items', {}), defs)}"
    if kind == "object":
        values = field.get("additionalProperties")
        if isinstance(values, dict) and values:
            return f"object of {_type(values, defs)}"
        return "object"
    if kind is None:
        return "any"
    text = {"null": "null", "string": "string", "integer": "integer", "number": "number"}.get(
        kind, str(kind)
    )
    if field.get("format") == "base64url" or field.get("contentEncoding") == "base64":
        text = "base64 string"
    low, high = field.get("minimum"), field.get("maximum")
    if low is not None and low <= -INT_MAX:
        low = None  # bounded only by what JSON numbers hold exactly: no news to a reader
    if low is not None and high is not None and high < INT_MAX:
        text += f" {_num(low)}..{_num(high)}"
    elif low is not None:
        text += f" ≥ {_num(low)}"
    return text


def _num(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else str(value)


def _default(field: dict[str, Any]) -> str:
    if "default" not in field:
        return "empty"
    return f"`{json.dumps(field['default'])}`"


def _cell(text: str) -> str:
    return " ".join(text.split()).replace("|", "\\|")


def main(argv: list[str]) -> int:
    """Rewrite the page named by ``argv[0]``."""
    if len(argv) != 1:
        print("usage: python -m opsflow.agent.protocol_doc docs/reference/agent-protocol.md")
        return 2
    page = Path(argv[0])
    page.write_text(update(page.read_text(encoding="utf-8")), encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
