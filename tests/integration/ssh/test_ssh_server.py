"""An ssh step run end to end: a real ``opsflow server`` (SQLite and PostgreSQL) with its local
agent, an ``ssh`` connection set through the API, two real sshd "hosts"."""

from __future__ import annotations

import base64
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import BACKENDS
from tests.servers import RunningServer, fresh_database, run_server
from tests.sshd import SshHost, SshUserKey

SECRET = "s3cr3t-deploy-token-5150"

WORKFLOW = """
id: fleet
steps:
  - id: fleet
    type: ssh
    connection: {connection}
    hosts: [{hosts}]
    env: {{TOKEN: "{{{{ secrets.DEPLOY_TOKEN }}}}", RELEASE: "1.4.2"}}
    command: 'echo "release $RELEASE token $TOKEN"; printf "%s" "$TOKEN" | base64'
  - id: report
    type: script
    shell: sh
    needs: [fleet]
    env: {{FAILED: "{{{{ nodes.fleet.output.failed_hosts | length }}}}"}}
    run: echo "failed hosts $FAILED"
"""


@pytest.fixture(params=BACKENDS, scope="module")
def server(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[RunningServer, httpx.Client]]:
    for db_url in fresh_database(request, tmp_path_factory, "ssh"):
        data_dir = tmp_path_factory.mktemp("ssh-server")
        with (
            run_server(db_url, data_dir) as running,
            httpx.Client(
                base_url=f"{running.url}/api/v1",
                headers={"Authorization": f"Bearer {running.token}"},
                timeout=30,
            ) as api,
        ):
            yield running, api


def publish(api: httpx.Client, connection: str, hosts: list[SshHost]) -> None:
    text = WORKFLOW.format(connection=connection, hosts=", ".join(f'"{h.target}"' for h in hosts))
    response = api.put(
        "/workflows/fleet",
        params={"publish": "true"},
        content=text.encode(),
        headers={"Content-Type": "application/yaml"},
    )
    assert response.status_code in (200, 201), response.text


def run_to_end(api: httpx.Client) -> dict[str, Any]:
    started = api.post("/workflows/fleet/runs", json={"params": {}})
    assert started.status_code == 201, started.text
    execution_id = started.json()["id"]
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        detail: dict[str, Any] = api.get(f"/executions/{execution_id}").json()
        if detail["ended_at"] is not None:
            return detail
        time.sleep(0.1)  # the API is what a client of the server has to watch
    raise AssertionError(f"{execution_id} did not end: {detail}")


def log_text(api: httpx.Client, execution_id: str) -> str:
    response = api.get(f"/executions/{execution_id}/logs/download")
    assert response.status_code == 200, response.text
    return response.text


def test_an_ssh_step_runs_on_two_hosts_through_the_server_with_its_connection(
    server: tuple[RunningServer, httpx.Client],
    sshd_hosts: list[SshHost],
    ssh_user_key: SshUserKey,
) -> None:
    running, api = server
    assert api.put("/secrets/DEPLOY_TOKEN", json={"value": SECRET}).status_code in (200, 201)
    values = sshd_hosts[0].connection_values(ssh_user_key)
    values["known_hosts"] = "".join(h.known_hosts() for h in sshd_hosts)
    put = api.put("/connections/prod-ssh", json={"type": "ssh", "values": values})
    assert put.status_code in (200, 201), put.text
    publish(api, "prod-ssh", sshd_hosts)

    detail = run_to_end(api)
    assert detail["status"] == "completed", detail
    fleet = next(s for s in detail["steps"] if s["id"] == "fleet")
    (job,) = fleet["jobs"]
    assert job["action"] == "ssh.command"
    assert fleet["outputs"]["failed_hosts"] == []
    for host in sshd_hosts:
        entry = fleet["outputs"]["hosts"][host.target]
        assert entry["status"] == "completed" and entry["exit_code"] == 0
        assert entry["stdout_tail"].startswith("release 1.4.2 token ***")

    log = log_text(api, detail["id"])
    for host in sshd_hosts:
        assert f"[{host.target}] release 1.4.2 token ***" in log
    assert "failed hosts 0" in log
    # the secret is masked in the log, the outputs and the server's own log, in plain text
    # and in base64; the connection's private key appears nowhere either
    encoded = base64.b64encode(SECRET.encode()).decode()
    key_line = ssh_user_key.private_text.splitlines()[1]
    everything = [log, str(detail), Path(running.log).read_text(errors="replace")]
    for text in everything:
        assert SECRET not in text and encoded not in text and key_line not in text


def test_an_ssh_step_whose_connection_is_missing_fails_at_once(
    server: tuple[RunningServer, httpx.Client], sshd_hosts: list[SshHost]
) -> None:
    _, api = server
    assert api.put("/secrets/DEPLOY_TOKEN", json={"value": SECRET}).status_code in (200, 201)
    publish(api, "nowhere-ssh", sshd_hosts)
    started = time.monotonic()
    detail = run_to_end(api)
    assert time.monotonic() - started < 10
    assert detail["status"] == "failed"
    fleet = next(s for s in detail["steps"] if s["id"] == "fleet")
    assert "nowhere-ssh" in (fleet["error"] or ""), fleet


LONG = """
id: long-fleet
steps:
  - id: fleet
    type: ssh
    connection: prod-ssh
    hosts: [{hosts}]
    command: 'echo started; sleep 3531'
"""


def test_cancelling_the_run_stops_the_command_on_every_host(
    server: tuple[RunningServer, httpx.Client],
    sshd_hosts: list[SshHost],
    ssh_user_key: SshUserKey,
) -> None:
    _, api = server
    values = sshd_hosts[0].connection_values(ssh_user_key)
    values["known_hosts"] = "".join(h.known_hosts() for h in sshd_hosts)
    put = api.put("/connections/prod-ssh", json={"type": "ssh", "values": values})
    assert put.status_code in (200, 201), put.text
    text = LONG.format(hosts=", ".join(f'"{h.target}"' for h in sshd_hosts))
    response = api.put(
        "/workflows/long-fleet",
        params={"publish": "true"},
        content=text.encode(),
        headers={"Content-Type": "application/yaml"},
    )
    assert response.status_code in (200, 201), response.text
    execution_id = api.post("/workflows/long-fleet/runs", json={"params": {}}).json()["id"]
    deadline = time.monotonic() + 60
    while log_text(api, execution_id).count("] started") < len(sshd_hosts):
        assert time.monotonic() < deadline, log_text(api, execution_id)
        time.sleep(0.1)  # the log API is what a client watches
    # graceful lets in-flight jobs finish; force stops them
    cancelled = api.post(f"/executions/{execution_id}/cancel", json={"mode": "force"})
    assert cancelled.status_code == 200, cancelled.text
    deadline = time.monotonic() + 30
    while (detail := api.get(f"/executions/{execution_id}").json())["ended_at"] is None:
        assert time.monotonic() < deadline, detail
        time.sleep(0.1)
    assert detail["status"] == "cancelled"
    (job,) = detail["steps"][0]["jobs"]
    assert job["status"] == "cancelled"
    assert {h["status"] for h in job["outputs"]["hosts"].values()} == {"cancelled"}
    found = subprocess.run(["pgrep", "-f", "sleep 3531"], capture_output=True, text=True)
    assert found.returncode == 1, found.stdout  # the hosts are this machine: nothing left
