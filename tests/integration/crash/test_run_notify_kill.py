"""A run-end message survives ``kill -9`` of the server between the run's end and the send.

The message is written in the transaction that ends the run. The first server here is an
API replica (``OPSFLOW_ROLE=api``: no outbox), so the window between that commit and a send is
held open for certain rather than hit by chance; it is killed with SIGKILL, and a full server
started on the same database and data dir sends the message exactly once.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from opsflow.store import approvals as approvals_store
from opsflow.store.db import Database

from .conftest import CrashServer

GATED = """
id: told-after-crash
notify:
  - {on: [rejected], channel: ops}
steps:
  - {id: gate, type: approval, message: "Go?"}
  - {id: work, type: script, needs: [gate], run: "true"}
"""


@pytest.fixture
def inbox() -> Iterator[tuple[str, list[dict[str, Any]]]]:
    received: list[dict[str, Any]] = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length", "0"))
            received.append(json.loads(self.rfile.read(length) or b"{}"))
            self.send_response(200)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    try:
        yield f"json://127.0.0.1:{httpd.server_address[1]}/ops", received
    finally:
        httpd.shutdown()
        httpd.server_close()


def _rows(db_url: str, execution_id: str) -> list[approvals_store.Notification]:
    db = Database(db_url)
    try:
        with db.session() as s:
            return approvals_store.notifications_of(s, execution_id)
    finally:
        db.dispose()


def test_kill_9_after_a_run_ends_and_before_its_message_is_sent_delivers_it_once_after_restart(
    crash_server: Callable[..., CrashServer],
    inbox: tuple[str, list[dict[str, Any]]],
) -> None:
    url, received = inbox
    server = crash_server(lease=2.0, heartbeat=0.5)
    server.env |= {"OPSFLOW_NOTIFY_OPS": url, "OPSFLOW_ROLE": "api"}
    api = server.start()
    api.publish("told-after-crash", GATED)
    eid = api.run("told-after-crash")
    api.wait_for(
        "the gate waits",
        lambda: api.execution(eid)["status"] == "paused",
        timeout=15,
        explain=server.log_tail,
    )
    res = api.client.post(f"/executions/{eid}/steps/gate/reject", json={"note": "no"})
    assert res.status_code == 200, res.text
    assert api.execution(eid)["status"] == "rejected"

    server.kill()
    (row,) = _rows(server.db_url, eid)
    assert row.sent_at is None and row.attempts == 0
    assert received == []

    server.env.pop("OPSFLOW_ROLE")
    api = server.start()
    api.wait_for(
        "the message is sent",
        lambda: all(r.sent_at is not None for r in _rows(server.db_url, eid)),
        timeout=15,
        explain=server.log_tail,
    )
    (row,) = _rows(server.db_url, eid)
    assert row.attempts == 1 and row.error is None
    (body,) = received
    assert body["title"] == "told-after-crash rejected"
    assert f"execution {eid} rejected" in body["message"]
    assert "Step gate rejected: " in body["message"]
