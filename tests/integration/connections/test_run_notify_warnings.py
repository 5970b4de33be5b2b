"""A run-end message's channel that the server lacks is a located warning at validate and
save, as a step's connection is (on SQLite and PostgreSQL)."""

from __future__ import annotations

from fastapi.testclient import TestClient

RUN_ENDS = """
id: told
notify:
  - {on: [failed], channel: ops}
  - {on: [completed], connection: nope}
  - {on: [cancelled], channel: api}
steps:
  - {id: build, type: script, run: "true"}
"""


def test_run_end_channels_the_server_lacks_are_located_warnings(client: TestClient) -> None:
    client.put(
        "/api/v1/connections/ops",
        json={"type": "notify", "values": {"url": "json://127.0.0.1:9/ops"}},
    ).raise_for_status()
    client.put(
        "/api/v1/connections/api", json={"type": "http", "values": {"base_url": "https://x"}}
    ).raise_for_status()
    headers = {"Content-Type": "application/yaml"}

    checked = client.post("/api/v1/workflows/validate", content=RUN_ENDS, headers=headers)
    saved = client.post("/api/v1/workflows", content=RUN_ENDS, headers=headers)

    assert checked.status_code == 200, checked.text
    found = [(w["loc"], w["line"], w["msg"]) for w in checked.json()["warnings"]]
    assert [(loc, line) for loc, line, _ in found] == [
        ("notify[1].connection", 5),
        ("notify[2].channel", 6),
    ]
    assert found[0][2].startswith(
        "connection 'nope' does not exist; an admin creates it with opsflow connections set "
        "nope --type notify; "
    )
    assert found[1][2].startswith("connection 'api' is of type http; this step needs notify")
    assert all(
        msg.endswith("run-end messages to it fail (shown in the run's engine log) until then")
        for _, _, msg in found
    )
    assert saved.status_code == 201, saved.text
    assert saved.json()["warnings"] == checked.json()["warnings"]


CLOSE = """
id: told
notify:
  - {on: [failed], channel: opps}
steps:
  - {id: build, type: script, run: "true"}
"""


def test_a_missing_run_end_channel_suggests_a_close_name_and_the_notify_type(
    client: TestClient,
) -> None:
    client.put(
        "/api/v1/connections/ops",
        json={"type": "notify", "values": {"url": "json://127.0.0.1:9/ops"}},
    ).raise_for_status()
    headers = {"Content-Type": "application/yaml"}

    checked = client.post("/api/v1/workflows/validate", content=CLOSE, headers=headers)

    assert checked.status_code == 200, checked.text
    (warning,) = checked.json()["warnings"]
    assert warning["loc"] == "notify[0].channel"
    assert warning["msg"].startswith(
        "connection 'opps' does not exist (did you mean 'ops'?); an admin creates it with "
        "opsflow connections set opps --type notify; "
    )
