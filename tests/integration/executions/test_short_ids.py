"""Short execution ids: the server filters by id prefix so a client resolves one cheaply."""

from __future__ import annotations

import pytest

from .conftest import TEST_TIMEOUT, Api

pytestmark = pytest.mark.timeout(TEST_TIMEOUT)

TINY = "id: tiny-for-ids\nsteps:\n  - {id: one, type: script, shell: sh, run: 'true'}\n"


def test_id_prefix_filter_finds_the_one_execution_it_starts(api: Api) -> None:
    api.publish(TINY)
    execution_id = api.run("tiny-for-ids")["id"]
    response = api.client.get("/api/v1/executions", params={"id_prefix": execution_id[:8]})
    assert response.status_code == 200, response.text
    assert [e["id"] for e in response.json()["items"]] == [execution_id]
    upper = api.client.get("/api/v1/executions", params={"id_prefix": execution_id[:8].upper()})
    assert [e["id"] for e in upper.json()["items"]] == [execution_id]


def test_id_prefix_is_literal_text_not_a_pattern(api: Api) -> None:
    response = api.client.get("/api/v1/executions", params={"id_prefix": "%%%%%%"})
    assert response.status_code == 200, response.text
    assert response.json()["items"] == []


def test_an_id_prefix_under_six_characters_is_refused_naming_the_field(api: Api) -> None:
    response = api.client.get("/api/v1/executions", params={"id_prefix": "abc"})
    assert response.status_code == 422
    assert "id_prefix" in response.text
