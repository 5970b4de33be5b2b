"""Connections in runs: a claim carries the named connection's values (and masks them), a
script printing a credential shows ``***``, and a step naming a missing or disabled connection
fails at once, before any agent sees it."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from opsflow.auth.connections import ConnectionVault
from opsflow.auth.secrets import SecretBox
from opsflow.runtime.agent_service import claimed
from opsflow.runtime.host import RuntimeHost
from opsflow.status import ExecutionStatus, JobStatus
from opsflow.store import logs as logs_store
from opsflow.store.db import Database

from ..runtime.conftest import Harness
from .conftest import BEARER, ApiServer

pytestmark = pytest.mark.anyio

TOKEN = "api-Tok3n-0f-the-connection-99"
AWS_SECRET = "aws-secret-key-value-1234567"


@pytest.fixture
def connections(database: Database) -> ConnectionVault:
    vault = ConnectionVault(database, SecretBox(b"k" * 32))
    vault.set(
        "api",
        "http",
        {"base_url": "https://api.example", "auth": "bearer", "token": TOKEN},
        "admin",
    )
    vault.set("cloud", "terraform", {"env": {"AWS_SECRET_ACCESS_KEY": AWS_SECRET}}, "admin")
    return vault


async def _host(
    database: Database, tmp_path: Path, connections: ConnectionVault, *, local_agent: bool
) -> RuntimeHost:
    host = RuntimeHost(
        database, work_dir=tmp_path / "work", connections=connections, local_agent=local_agent
    )
    await host.start()
    return host


@pytest.fixture
async def harness(
    database: Database, tmp_path: Path, connections: ConnectionVault
) -> AsyncIterator[Harness]:
    host = await _host(database, tmp_path, connections, local_agent=True)
    try:
        yield Harness(host)
    finally:
        await host.stop()


@pytest.fixture
async def no_agent(
    database: Database, tmp_path: Path, connections: ConnectionVault
) -> AsyncIterator[Harness]:
    host = await _host(database, tmp_path, connections, local_agent=False)
    try:
        yield Harness(host)
    finally:
        await host.stop()


PRINTS = """
id: prints
steps:
  - id: show
    type: script
    connection: cloud
    run: |
      echo "secret: $AWS_SECRET_ACCESS_KEY"
      printf '%s' "$AWS_SECRET_ACCESS_KEY" | base64
      echo "key=$AWS_SECRET_ACCESS_KEY" >> "$OPSFLOW_OUTPUT"
"""


async def test_a_script_printing_a_connection_value_shows_it_masked(harness: Harness) -> None:
    eid = await harness.start_async(PRINTS)
    ex = await harness.wait(eid)

    assert ex.status == ExecutionStatus.COMPLETED, harness.engine_log(eid)
    (job,) = harness.jobs(eid)
    with harness.runtime.db.read() as s:
        lines = [row["text"] for row in logs_store.query(s, eid)]
    assert "secret: ***" in lines
    stored = "\n".join(lines) + repr(job.outputs) + repr(job.spec)
    assert AWS_SECRET not in stored
    assert "YXdzLXNlY3JldC1rZXktdmFsdWUtMTIzNDU2Nw" not in stored  # its base64
    assert job.outputs["key"] == "***"
    assert job.spec["config"]["connection"] == "cloud"  # the stored spec holds the name only


async def test_a_claim_carries_the_connection_values_and_masks_its_credentials(
    no_agent: Harness,
) -> None:
    eid = await no_agent.start_async(
        """
id: call
steps:
  - {id: ping, type: http, connection: api, url: /health}
"""
    )
    jobs = no_agent.runtime.claim(agent_id="a1", pools=["default"], labels={}, limit=5)

    (job,) = jobs
    grant = claimed(job)
    assert grant.execution_id == eid
    assert grant.connection is not None
    assert grant.connection.name == "api" and grant.connection.type == "http"
    assert grant.connection.values == {
        "auth": "bearer",
        "base_url": "https://api.example",
        "token": TOKEN,
    }
    assert grant.mask == [TOKEN]  # credentials, not the plain settings
    (stored,) = no_agent.jobs(eid)
    assert TOKEN not in repr(stored.spec)
    # Another replica (no cached masker) masks what this job sends back all the same.
    with no_agent.runtime.db.read() as s:
        no_agent.runtime.jobs._maskers.clear()
        masker = no_agent.runtime.masker_for(s, job.id, eid)
    assert masker is not None and masker.mask(f"x {TOKEN} y") == "x *** y"


@pytest.mark.parametrize("state", ["missing", "disabled", "wrong type"])
async def test_a_step_naming_an_unusable_connection_fails_at_once(
    no_agent: Harness, connections: ConnectionVault, state: str
) -> None:
    name = {"missing": "nope", "disabled": "api", "wrong type": "cloud"}[state]
    if state == "disabled":
        connections.update("api", "admin", enabled=False, description=None)
    eid = await no_agent.start_async(
        f"""
id: broken
steps:
  - {{id: ping, type: http, connection: {name}, url: /health}}
"""
    )
    # No agent runs here: the step must fail on its own, not wait for a lease.
    ex = await no_agent.wait(eid, timeout=10)

    assert ex.status == ExecutionStatus.FAILED
    (job,) = no_agent.jobs(eid)
    assert job.status == JobStatus.FAILED and job.agent_id is None
    reason = {
        "missing": "connection 'nope' does not exist",
        "disabled": "connection 'api' is disabled",
        "wrong type": "connection 'cloud' is of type terraform; this step needs http",
    }[state]
    assert reason in (job.error or "")
    assert any(reason in line for line in no_agent.engine_log(eid))


async def test_http_and_notify_steps_use_their_connections(
    harness: Harness, connections: ConnectionVault, api_server: ApiServer
) -> None:
    connections.set(
        "local-api",
        "http",
        {"base_url": api_server.url, "auth": "bearer", "token": BEARER},
        "admin",
    )
    connections.set("team", "notify", {"url": f"json://{api_server.url[7:]}/hook"}, "admin")
    eid = await harness.start_async(
        """
id: calls
steps:
  - {id: ping, type: http, connection: local-api, url: /health}
  - {id: tell, type: notify, needs: [ping], channel: team, message: "pinged"}
"""
    )
    ex = await harness.wait(eid)

    assert ex.status == ExecutionStatus.COMPLETED, harness.engine_log(eid)
    steps = harness.steps(eid)
    assert steps["ping"].outputs["status"] == 200
    assert api_server.seen[0]["Authorization"] == f"Bearer {BEARER}"
    ((path, body),) = api_server.posted
    assert path == "/hook" and "pinged" in body
    jobs = {job.step_id: job for job in harness.jobs(eid)}
    assert jobs["tell"].spec["config"]["services"] == ["json"]  # names the service, no URL
    assert api_server.url[7:] not in repr(jobs["tell"].spec)
    with harness.runtime.db.read() as s:
        lines = "\n".join(row["text"] for row in logs_store.query(s, eid))
    assert f"GET {api_server.url}/health" in lines
    assert BEARER not in lines


async def test_a_notify_channel_that_is_not_configured_fails_at_once(no_agent: Harness) -> None:
    eid = await no_agent.start_async(
        """
id: tells
steps:
  - {id: tell, type: notify, channel: ops-room, message: "hi"}
"""
    )
    ex = await no_agent.wait(eid, timeout=10)

    assert ex.status == ExecutionStatus.FAILED
    (job,) = no_agent.jobs(eid)
    assert job.error == (
        "connection: notify channel 'ops-room' is not configured: a channel is a notify "
        "connection; set OPSFLOW_NOTIFY_OPS_ROOM on the server, or create it with opsflow "
        "connections set ops-room --type notify --from-file -"
    )


def test_configured_channels_load_as_notify_connections(connections: ConnectionVault) -> None:
    first = connections.load_channels({"ops": ["json://h/a", "json://h/b"], "api": ["json://x"]})
    again = connections.load_channels({"ops": ["json://h/a", "json://h/b"]})
    changed = connections.load_channels({"ops": ["json://h/c"]})

    assert first == ["ops"]  # "api" is an admin's http connection: left alone
    assert again == [] and changed == ["ops"]
    with connections._session() as session:
        ops = connections.reveal(session, "ops")
        api = connections.reveal(session, "api")
    assert ops.values == {"url": "json://h/c"}
    assert (ops.meta.type, ops.meta.services, ops.meta.updated_by) == (
        "notify",
        ("json",),
        "server configuration",
    )
    assert api.meta.type == "http"


def test_the_server_log_filter_learns_every_credential_and_no_plain_setting(
    database: Database, connections: ConnectionVault
) -> None:
    learned: list[str] = []
    vault = ConnectionVault(database, SecretBox(b"k" * 32), learn=learned.extend)

    assert vault.learn_all() == 2  # at start-up: the http token and the terraform variable
    assert set(learned) == {TOKEN, AWS_SECRET}
    vault.set("db", "ssh", {"user": "deploy", "password": "ssh-pass-word-1"}, "admin")
    assert "ssh-pass-word-1" in learned and "deploy" not in learned
    assert "https://api.example" not in learned
