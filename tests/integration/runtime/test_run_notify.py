"""Run-end messages (the workflow's ``notify: [{on, channel, message}]``) through the real
runtime and outbox to a real HTTP server on loopback (Apprise ``json://``), on SQLite and
PostgreSQL."""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections.abc import AsyncIterator, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import update

from opsflow.auth.connections import ConnectionVault
from opsflow.auth.permissions import Role
from opsflow.auth.secrets import SecretBox
from opsflow.engine.model import CancelMode
from opsflow.runtime.host import RuntimeHost
from opsflow.status import ExecutionStatus, StepStatus
from opsflow.store import approvals as approvals_store
from opsflow.store import runs as runs_store
from opsflow.store import users as users_store
from opsflow.store.approvals import Notification
from opsflow.store.db import Database
from tests.servers import free_port

from .conftest import Harness

pytestmark = pytest.mark.anyio

SERVER_URL = "http://opsflow.test"
# Where people open the server (OPSFLOW_PUBLIC_URL): the links in messages use it.
PUBLIC_URL = "https://ops.example.com:8443"


class Inbox:
    """A chat service stand-in: every JSON body POSTed to it, with its path, answered 200."""

    def __init__(self) -> None:
        self.received: list[tuple[str, dict[str, Any]]] = []
        inbox = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length", "0"))
                inbox.received.append((self.path, json.loads(self.rfile.read(length) or b"{}")))
                self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"json://127.0.0.1:{self.httpd.server_address[1]}"

    def channels(self) -> dict[str, list[str]]:
        return {
            "ops": [f"{self.url}/ops"],
            "audit": [f"{self.url}/audit"],
            # Nothing listens there: every delivery is refused.
            "down": [f"json://127.0.0.1:{free_port()}/down"],
        }


@pytest.fixture
def inbox() -> Iterator[Inbox]:
    box = Inbox()
    thread = threading.Thread(target=box.httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield box
    finally:
        box.httpd.shutdown()
        box.httpd.server_close()


def _host(database: Database, tmp_path: Path, inbox: Inbox, **kw: Any) -> RuntimeHost:
    return RuntimeHost(
        database,
        work_dir=tmp_path / "work",
        lease_seconds=5.0,
        heartbeat_interval=1.0,
        notify_channels=inbox.channels(),
        server_url=SERVER_URL,
        public_url=PUBLIC_URL,
        **kw,
    )


@pytest.fixture
async def told(database: Database, tmp_path: Path, inbox: Inbox) -> AsyncIterator[Harness]:
    with database.session() as s:
        users_store.create_user(s, name="alice", role=Role.OPERATOR)
    host = _host(database, tmp_path, inbox)
    await host.start()
    try:
        yield Harness(host)
    finally:
        await host.stop()


def _rows(harness: Harness, eid: str) -> list[Notification]:
    with harness.runtime.db.read() as s:
        return approvals_store.notifications_of(s, eid)


async def _settled(harness: Harness, eid: str, count: int) -> list[Notification]:
    """The execution's ``count`` outbox rows once each was sent or failed at least once."""
    deadline = time.monotonic() + 15
    while True:
        rows = await asyncio.to_thread(_rows, harness, eid)
        if len(rows) == count and all(r.sent_at is not None or r.error for r in rows):
            return rows
        assert time.monotonic() < deadline, f"outbox rows not settled: {rows}"
        await asyncio.sleep(0.05)


FAILING = """
id: told
notify:
  - {on: [failed], channel: ops}
  - {on: [completed, cancelled, rejected], channel: audit, message: "not this one"}
steps:
  - {id: build, type: script, shell: sh, run: "echo broken >&2; exit 3"}
  - {id: after, type: script, needs: [build], run: "true"}
"""


async def test_a_failed_run_sends_its_summary_once_and_only_to_the_failed_entry(
    told: Harness, inbox: Inbox
) -> None:
    eid = await told.start_async(FAILING)
    ex = await told.wait(eid)
    assert ex.status == ExecutionStatus.FAILED

    (row,) = await _settled(told, eid, 1)

    assert row.sent_at is not None and row.error is None and row.channel == "ops"
    assert row.key == f"run-end:{eid}:0:failed"
    ((path, body),) = inbox.received
    assert path == "/ops"
    assert body["title"] == "told failed"
    message = str(body["message"])
    assert message.startswith(f"told: execution {eid} failed after ")
    assert "\nStep build failed: exit code 3\n" in message
    assert "no step handles" not in message
    assert message.endswith(f"\n{PUBLIC_URL}/executions/{eid}")
    assert body["type"] == "failure"
    assert any("run-end notification notify[0] queued" in m for m in told.engine_log(eid))


ENDINGS = """
id: endings
params:
  who: {type: string, default: team}
notify:
  - on: [%s]
    channel: ops
    title: "{{ workflow.id }}: {{ execution.status }}"
    message: >-
      {{ execution.status }} for {{ params.who }}; failed_step={{ execution.failed_step }};
      took {{ execution.duration >= 0 }}; {{ execution.url }} {{ execution.api_url }}
  - {on: [failed, error], channel: audit}
steps:
%s
"""

STEPS = {
    "completed": '  - {id: work, type: script, run: "true"}',
    "cancelled": '  - {id: work, type: script, run: "sleep 30"}',
    "rejected": "  - {id: gate, type: approval, message: Go?}\n"
    '  - {id: work, type: script, needs: [gate], run: "true"}',
}


@pytest.mark.parametrize("ending", ["completed", "cancelled", "rejected"])
async def test_each_run_end_sends_the_entries_that_name_it(
    told: Harness, inbox: Inbox, ending: str
) -> None:
    eid = await told.start_async(ENDINGS % (ending, STEPS[ending]), {"who": "ops-team"})
    if ending == "cancelled":
        await told.wait(eid, until=lambda _: told.steps(eid)["work"].status == StepStatus.RUNNING)
        await asyncio.to_thread(told.runtime.cancel, eid, mode=CancelMode.FORCE, by="alice")
    if ending == "rejected":
        await told.wait(eid, until=lambda ex: ex.status == ExecutionStatus.PAUSED)
        await asyncio.to_thread(
            told.runtime.respond, eid, "gate", user="alice", approve=False, note="no", via="cli"
        )
    ex = await told.wait(eid)
    assert ex.status == ExecutionStatus(ending)

    await _settled(told, eid, 1)

    failed_step = "gate" if ending == "rejected" else "null"
    ((path, body),) = inbox.received
    assert path == "/ops"
    assert body["title"] == f"endings: {ending}"
    assert body["message"] == (
        f"{ending} for ops-team; failed_step={failed_step}; took true; "
        f"{PUBLIC_URL}/executions/{eid} {PUBLIC_URL}/api/v1/executions/{eid}"
    )
    assert body["type"] == {"completed": "success"}.get(ending, "warning")


async def test_a_message_that_cannot_render_sends_the_summary_and_says_why(
    told: Harness, inbox: Inbox
) -> None:
    text = FAILING.replace(
        "{on: [failed], channel: ops}",
        "{on: [failed], channel: ops, title: '{{ workflow.id }} broke', "
        'message: "{{ nodes.build.output.nothing }}"}',
    )
    eid = await told.start_async(text)
    await told.wait(eid)

    await _settled(told, eid, 1)

    ((_, body),) = inbox.received
    assert body["title"] == "told broke"  # the title rendered: only the message falls back
    message = str(body["message"])
    assert message.startswith(f"told: execution {eid} failed after ")
    assert "(the message could not be rendered: notify[0].message: " in message
    assert "nothing" in message.rsplit("could not be rendered", 1)[1]
    assert any(m.startswith("run-end notification notify[0]: ") for m in told.engine_log(eid))


# The new-user trial's run-end message: a fanned-out step's ``items`` and a script's outputs
# named like dict methods (``items=3``) or written as a false word (``enabled=false``).
OUTPUT_NAMES = """
id: output-names
notify:
  - on: [completed]
    channel: ops
    title: "{{ nodes.p.output.items }} items"
    message: >-
      items={{ nodes.each.output.items }}
      {% if not nodes.probe.output.enabled %}disabled{% else %}enabled{% endif %}
steps:
  - {id: p, type: script, shell: sh, run: 'echo "items=3" >> "$OPSFLOW_OUTPUT"'}
  - {id: probe, type: script, shell: sh, run: 'echo "enabled=false" >> "$OPSFLOW_OUTPUT"'}
  - id: each
    type: script
    shell: sh
    needs: [p]
    for_each: "{{ nodes.p.output.items }}"
    env: {ITEM: "{{ item }}"}
    run: echo "got=$ITEM" >> "$OPSFLOW_OUTPUT"
"""


async def test_a_run_end_message_reads_outputs_named_like_methods_and_false_words(
    told: Harness, inbox: Inbox
) -> None:
    eid = await told.start_async(OUTPUT_NAMES)
    ex = await told.wait(eid)
    assert ex.status == ExecutionStatus.COMPLETED, told.engine_log(eid)

    await _settled(told, eid, 1)

    ((_, body),) = inbox.received
    assert body["title"] == "3 items"
    listed, _, flag = str(body["message"]).removeprefix("items=").rpartition(" ")
    assert flag == "disabled"
    (item,) = json.loads(listed)
    assert (item["item"], item["outputs"]["got"]) == ("3", "3")


async def test_a_failed_delivery_shows_in_the_run_log_and_stays_queued_for_a_retry(
    told: Harness, inbox: Inbox, caplog: pytest.LogCaptureFixture
) -> None:
    eid = await told.start_async(FAILING.replace("channel: ops}", "channel: down}"))
    await told.wait(eid)

    (row,) = await _settled(told, eid, 1)

    assert row.sent_at is None and row.attempts == 1 and row.error
    assert inbox.received == []
    said = [m for m in told.engine_log(eid) if m.startswith("notification to channel down")]
    assert said == [f"notification to channel down failed: {row.error}"]
    assert f"to down failed: {row.error}" in caplog.text


async def test_a_run_end_queued_by_a_server_that_died_is_sent_once_by_the_next(
    database: Database, tmp_path: Path, inbox: Inbox
) -> None:
    # The first server runs the work but does no background work: its outbox never sends,
    # as if it died right after committing the run's end.
    first = _host(database, tmp_path, inbox, background=False)
    await first.start()
    try:
        harness = Harness(first)
        eid = await harness.start_async(FAILING)
        await harness.wait(eid)
        (row,) = await asyncio.to_thread(_rows, harness, eid)
        assert row.sent_at is None and row.attempts == 0
    finally:
        await first.stop()
    assert inbox.received == []

    second = _host(database, tmp_path, inbox)
    await second.start()
    try:
        (row,) = await _settled(Harness(second), eid, 1)
        assert row.sent_at is not None and row.attempts == 1
        # A reconcile of the ended run (as after any restart) queues nothing more.
        await asyncio.to_thread(second.runtime.reconcile_all_active)
        assert len(await asyncio.to_thread(_rows, Harness(second), eid)) == 1
    finally:
        await second.stop()
    assert [path for path, _ in inbox.received] == ["/ops"]


RETRIED = """
id: retried
notify:
  - {on: [failed], channel: ops}
  - {on: [completed], channel: audit, message: "{{ workflow.id }} completed at last"}
steps:
  - id: flaky
    type: script
    shell: sh
    env: {MARK: "%s"}
    run: 'test -e "$MARK.2" && exit 0; test -e "$MARK" && touch "$MARK.2"; touch "$MARK"; exit 3'
"""


async def test_a_retried_run_is_announced_once_per_way_it_ends(
    told: Harness, inbox: Inbox, tmp_path: Path
) -> None:
    eid = await told.start_async(RETRIED % (tmp_path / "mark"))
    assert (await told.wait(eid)).status == ExecutionStatus.FAILED
    await _settled(told, eid, 1)

    await asyncio.to_thread(told.runtime.retry_step, eid, "flaky", by="alice")
    assert (await told.wait(eid)).status == ExecutionStatus.FAILED
    await asyncio.to_thread(told.runtime.retry_step, eid, "flaky", by="alice")
    assert (await told.wait(eid)).status == ExecutionStatus.COMPLETED

    rows = await _settled(told, eid, 2)
    assert [r.key for r in rows] == [f"run-end:{eid}:0:failed", f"run-end:{eid}:1:completed"]
    assert [path for path, _ in inbox.received] == ["/ops", "/audit"]
    assert inbox.received[1][1]["message"] == "retried completed at last"


SKIPPING = """
id: one-at-a-time
concurrency: {limit: 1, policy: skip}
notify:
  - on: [cancelled]
    channel: ops
    message: "{{ execution.status }}: {{ execution.status_reason }}"
steps:
  - {id: work, type: script, run: "sleep 30"}
"""


async def test_a_run_skipped_by_the_concurrency_policy_is_announced_as_cancelled(
    told: Harness, inbox: Inbox
) -> None:
    first = await told.start_async(SKIPPING)
    await told.wait(first, until=lambda ex: ex.status == ExecutionStatus.RUNNING)
    second = await told.start_async(SKIPPING)
    assert told.execution(second).status == ExecutionStatus.CANCELLED

    (row,) = await _settled(told, second, 1)

    assert row.sent_at is not None
    ((path, body),) = inbox.received
    assert path == "/ops" and body["message"].startswith("cancelled: ")
    assert body["message"] == f"cancelled: {told.execution(second).status_reason}"
    assert await asyncio.to_thread(_rows, told, first) == []
    await asyncio.to_thread(told.runtime.cancel, first, mode=CancelMode.FORCE, by="alice")
    await told.wait(first)


TWO_FAIL = """
id: twice
notify:
  - {on: [failed], channel: ops}
steps:
  - {id: first, type: script, shell: sh, run: "exit 3"}
  - {id: second, type: script, shell: sh, run: "sleep 0.3; exit 4"}
"""


async def test_the_summary_names_every_step_that_failed_without_engine_talk(
    told: Harness, inbox: Inbox
) -> None:
    eid = await told.start_async(TWO_FAIL)
    assert (await told.wait(eid)).status == ExecutionStatus.FAILED

    await _settled(told, eid, 1)

    ((_, body),) = inbox.received
    lines = str(body["message"]).splitlines()
    assert lines[1:] == [
        "Step first failed: exit code 3",
        "Step second failed: exit code 4",
        f"{PUBLIC_URL}/executions/{eid}",
    ]
    assert body["type"] == "failure"


async def test_a_test_run_sends_no_run_end_message_and_says_so(told: Harness, inbox: Inbox) -> None:
    eid = await told.start_async(FAILING, test_run=True)
    assert (await told.wait(eid)).status == ExecutionStatus.FAILED

    assert await asyncio.to_thread(_rows, told, eid) == []
    assert "test run: run-end notification notify[0] to channel ops not sent" in (
        told.engine_log(eid)
    )
    assert not any("queued" in m for m in told.engine_log(eid))
    assert inbox.received == []


APPROVAL = """
id: gated
notify: {channel: ops}
steps:
  - {id: gate, type: approval, message: Go?}
"""


async def test_an_approval_request_links_the_execution_page(told: Harness, inbox: Inbox) -> None:
    eid = await told.start_async(APPROVAL)
    await told.wait(eid, until=lambda ex: ex.status == ExecutionStatus.PAUSED)

    await _settled(told, eid, 1)

    ((path, body),) = inbox.received
    assert path == "/ops"
    assert (
        f"Answer on {PUBLIC_URL}/executions/{eid} or with: opsflow approve {eid} gate"
        in (body["message"])
    )
    await asyncio.to_thread(told.runtime.cancel, eid, mode=CancelMode.FORCE, by="alice")
    await told.wait(eid)


def _due_now(harness: Harness, row_id: int) -> None:
    """Bring a failed row's next try forward (the outbox waits a minute or more)."""
    with harness.runtime.db.session() as s:
        s.connection().execute(
            update(approvals_store.NT).where(approvals_store.NT.c.id == row_id).values(due_at=0)
        )


async def test_a_channel_created_after_a_failed_send_gets_the_message_and_the_log_says_so(
    database: Database, tmp_path: Path, inbox: Inbox
) -> None:
    connections = ConnectionVault(database, SecretBox(b"k" * 32))
    connections.set("pager", "notify", {"url": f"{inbox.url}/pager"}, "admin")
    # The outbox is driven by hand (no background sender): each send_due is one try.
    host = _host(database, tmp_path, inbox, background=False, connections=connections)
    await host.start()
    try:
        harness = Harness(host)
        eid = await harness.start_async(FAILING.replace("channel: ops}", "channel: later}"))
        await harness.wait(eid)
        assert await host.outbox.send_due() == 0
        (row,) = await asyncio.to_thread(_rows, harness, eid)
        assert row.error and "notify channel 'later' is not configured" in row.error
        # The notify connections are named with the configured channels, and how to add it.
        assert "configured: audit, down, ops, pager;" in row.error
        assert row.error.endswith("opsflow connections set later --type notify")
        first_error = row.error

        await asyncio.to_thread(
            connections.set, "later", "notify", {"url": f"{inbox.url}/later"}, "admin"
        )
        await asyncio.to_thread(_due_now, harness, row.id)
        assert await host.outbox.send_due() == 1

        (row,) = await asyncio.to_thread(_rows, harness, eid)
        assert row.sent_at is not None and row.attempts == 2
        assert [path for path, _ in inbox.received] == ["/later"]
        log = [m for m in harness.engine_log(eid) if m.startswith("notification to channel")]
        assert log == [
            f"notification to channel later failed: {first_error}",
            "notification to channel later delivered on try 2 (the earlier tries failed)",
        ]
        with harness.runtime.db.read() as s:
            said = [e["data"] for e in runs_store.events_after(s, eid, 0)]
        assert any(log[1] in str(data) for data in said)
    finally:
        await host.stop()


async def test_a_close_channel_name_is_suggested(told: Harness, inbox: Inbox) -> None:
    eid = await told.start_async(FAILING.replace("channel: ops}", "channel: opps}"))
    await told.wait(eid)

    (row,) = await _settled(told, eid, 1)

    assert row.error and "(did you mean 'ops'?)" in row.error
