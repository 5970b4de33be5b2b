"""The OpenAPI document tells the truth about errors and input ranges, for every operation."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from opsflow.api.app import create_app
from opsflow.api.limits import INT_MAX
from opsflow.config import Settings

PROBLEM = {"schema": {"$ref": "#/components/schemas/ProblemDetails"}}


@pytest.fixture(scope="module")
def document(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    data_dir = tmp_path_factory.mktemp("openapi")
    app = create_app(Settings.from_env(env={}, data_dir=data_dir), extensions=[])
    return app.openapi()


def _operations(document: dict[str, Any]) -> Iterator[tuple[str, dict[str, Any]]]:
    for path, operations in document["paths"].items():
        for method, operation in operations.items():
            yield f"{method.upper()} {path}", operation


def test_every_error_is_documented_as_problem_json(document: dict[str, Any]) -> None:
    for name, operation in _operations(document):
        responses = operation["responses"]
        for status, response in responses.items():
            if status.startswith("4"):
                assert response["content"] == {"application/problem+json": PROBLEM}, name
        if operation.get("security"):
            assert {"401", "403"} <= set(responses), name
        if operation.get("parameters") or "requestBody" in operation:
            assert "422" in responses, name
        if "requestBody" in operation:
            assert "413" in responses, name
        if any(p["in"] == "path" for p in operation.get("parameters", [])):
            assert "404" in responses, name
    schemas = document["components"]["schemas"]
    assert "HTTPValidationError" not in schemas
    assert set(schemas["ProblemDetails"]["required"]) == {"type", "title", "status", "detail"}


def _integers(schema: Any, schemas: dict[str, Any], seen: set[str]) -> Iterator[dict[str, Any]]:
    """Every integer schema reachable from ``schema`` (following $refs once each)."""
    if isinstance(schema, list):
        for item in schema:
            yield from _integers(item, schemas, seen)
        return
    if not isinstance(schema, dict):
        return
    ref = schema.get("$ref")
    if isinstance(ref, str):
        name = ref.rsplit("/", 1)[-1]
        if name not in seen:
            seen.add(name)
            yield from _integers(schemas[name], schemas, seen)
        return
    if schema.get("type") == "integer":
        yield schema
    for value in schema.values():
        yield from _integers(value, schemas, seen)


def test_every_integer_a_request_carries_is_bounded_to_64_bits(document: dict[str, Any]) -> None:
    schemas = document["components"]["schemas"]
    for name, operation in _operations(document):
        inputs = [p["schema"] for p in operation.get("parameters", [])]
        for media in operation.get("requestBody", {}).get("content", {}).values():
            inputs.append(media.get("schema", {}))
        for integer in _integers(inputs, schemas, set()):
            assert integer.get("maximum", INT_MAX + 1) <= INT_MAX, (name, integer)
            assert "minimum" in integer, (name, integer)


def test_event_streams_are_documented_as_server_sent_events(document: dict[str, Any]) -> None:
    stream = document["paths"]["/api/v1/executions/{execution_id}/events"]["get"]
    assert list(stream["responses"]["200"]["content"]) == ["text/event-stream"]
