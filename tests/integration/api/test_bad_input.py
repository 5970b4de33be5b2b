"""Hostile or careless input gets a 4xx problem naming what is wrong, never a 500: integers
beyond 64 bits, JSON nested without end, booleans sent as integers, bodies and params larger
than the documented limits, bytes that are not UTF-8."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

from fastapi.testclient import TestClient

from opsflow.api.limits import INT_MAX, MAX_BODY_BYTES, MAX_JSON_DEPTH
from opsflow.spec.params import MAX_PARAMS_BYTES
from tests.integration.api.conftest import YAML

HUGE = 28021645764969725952  # beyond 64 bits
JSON = {"Content-Type": "application/json"}
RUNS = "/api/v1/workflows/paramd/runs"

PARAMS_YAML = """id: paramd
steps:
  - id: say
    type: script
    shell: sh
    run: echo "$NOTE"
    env: {NOTE: "{{ params.note }}"}
params:
  note: {type: string, default: hi}
  replicas: {type: integer, default: 1}
"""


def _problem(response: Any, status: int) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/problem+json"
    body: dict[str, Any] = response.json()
    assert body["status"] == status
    return body


def _locs(body: dict[str, Any]) -> set[str]:
    return {e["loc"] for e in body["errors"]}


def _published(client: TestClient) -> None:
    response = client.put(
        "/api/v1/workflows/paramd", params={"publish": "true"}, content=PARAMS_YAML, headers=YAML
    )
    assert response.status_code == 201, response.text


def test_integers_beyond_64_bits_are_refused_wherever_a_request_carries_one(
    client: TestClient,
) -> None:
    _published(client)
    for path, loc in [
        (f"/api/v1/executions/e1/logs?after={HUGE}", "query.after"),
        (f"/api/v1/executions?offset={HUGE}", "query.offset"),
        (f"/api/v1/approvals?offset={HUGE}", "query.offset"),
        (f"/api/v1/workflows?offset={HUGE}", "query.offset"),
        (f"/api/v1/audit?offset={HUGE}", "query.offset"),
        (f"/api/v1/workflows/paramd/versions/{HUGE}", "path.number"),
        (f"/api/v1/tfstate/paramd/default/versions/{HUGE}", "path.version"),
    ]:
        body = _problem(client.get(path), 422)
        assert loc in _locs(body), (path, body)
    body = _problem(client.get(f"/api/v1/executions/e1/events?after={HUGE}-1"), 422)
    assert "is not an id this stream sent" in body["detail"]
    body = _problem(client.post(RUNS, json={"version": HUGE}), 422)
    assert "body.version" in _locs(body)
    body = _problem(client.post(RUNS, json={"params": {"replicas": HUGE}}), 422)
    assert "params.replicas" in _locs(body)
    assert "out of range" in body["errors"][0]["msg"]


def test_the_largest_64_bit_integer_is_still_an_integer(client: TestClient) -> None:
    response = client.get(f"/api/v1/executions?offset={INT_MAX}")
    assert response.status_code == 200, response.text
    assert response.json()["items"] == []


def test_json_nested_100000_deep_is_refused_on_every_route_that_reads_json(
    client: TestClient,
) -> None:
    deep = "[" * 100_000 + "]" * 100_000
    deep_object = '{"a":' * 100_000 + "1" + "}" * 100_000
    for path in ["/api/v1/workflows", "/api/v1/workflows/validate", "/api/v1/users"]:
        for body_text in (deep, deep_object):
            body = _problem(client.post(path, content=body_text, headers=JSON), 422)
            assert "100000 levels deep" in body["detail"], body
            assert f"at most {MAX_JSON_DEPTH}" in body["detail"]
    body = _problem(client.post("/api/v1/tfstate/x/default", content=deep, headers=JSON), 422)
    assert "levels deep" in body["detail"]
    assert client.get("/api/v1/workflows").json()["total"] == 0


def test_yaml_nested_100000_deep_is_refused_on_every_route_that_reads_a_definition(
    client: TestClient,
) -> None:
    # Flow collections: libyaml stops at 1,000 levels before the depth check sees 65.
    deep = "id: deep\nsteps: " + "[" * 100_000 + "]" * 100_000 + "\n"
    for method, path in [
        ("POST", "/api/v1/workflows"),
        ("POST", "/api/v1/workflows/validate"),
        ("PUT", "/api/v1/workflows/deep"),
    ]:
        for media in ("application/yaml", "text/plain"):
            response = client.request(method, path, content=deep, headers={"Content-Type": media})
            body = _problem(response, 422)
            assert body["errors"][0]["msg"] == "the YAML is nested more than 64 levels deep", body
    assert client.get("/api/v1/workflows").json()["total"] == 0


def test_json_as_deep_as_allowed_reaches_the_route(client: TestClient) -> None:
    nested_params: Any = "x"
    for _ in range(MAX_JSON_DEPTH - 2):
        nested_params = [nested_params]
    _published(client)
    response = client.post(
        "/api/v1/workflows/paramd/runs", json={"params": {"note": nested_params}}
    )
    body = _problem(response, 422)  # a list is not a string: the route judged it
    assert "params.note" in _locs(body)


def test_booleans_are_not_integers_in_request_bodies(client: TestClient) -> None:
    _published(client)
    body = _problem(client.post(RUNS, json={"version": True}), 422)
    assert "body.version" in _locs(body)
    body = _problem(client.post(RUNS, json={"test": 1}), 422)
    assert "body.test" in _locs(body)


def test_params_above_the_documented_size_are_refused(client: TestClient) -> None:
    _published(client)
    big = "x" * (MAX_PARAMS_BYTES + 1)
    body = _problem(client.post(RUNS, json={"params": {"note": big}}), 422)
    assert _locs(body) == {"params"}
    assert str(MAX_PARAMS_BYTES) in body["detail"]


def test_a_body_above_the_documented_size_is_refused_before_it_is_read(
    client: TestClient,
) -> None:
    _published(client)
    fifty_mb = json.dumps({"params": {"note": "x" * 50_000_000}})
    body = _problem(client.post(RUNS, content=fifty_mb, headers=JSON), 413)
    assert str(MAX_BODY_BYTES) in body["detail"]

    def chunks() -> Iterator[bytes]:  # no Content-Length: counted as it arrives
        yield b'{"params": {"note": "'
        for _ in range(40):
            yield b"x" * 65536
        yield b'"}}'

    body = _problem(client.post(RUNS, content=chunks(), headers=JSON), 413)
    yaml_chunks = (b"#" * 65536 for _ in range(40))
    body = _problem(
        client.post("/api/v1/workflows/validate", content=yaml_chunks, headers=YAML), 413
    )
    assert "larger than this endpoint's limit" in body["detail"]


def test_json_that_is_not_utf8_is_refused_with_a_problem(client: TestClient) -> None:
    for path in ["/api/v1/workflows", "/api/v1/users", "/api/v1/teams"]:
        body = _problem(client.post(path, content=b"\xb9o\x7f\xff", headers=JSON), 422)
        assert "UTF-8" in body["detail"]
