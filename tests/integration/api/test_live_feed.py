"""``GET /api/v1/events`` against a real ``opsflow server`` on each backend: what lists hear
(executions, approvals, workflows), resuming with Last-Event-ID, keep-alives, and the stream
ending when its caller's credentials do."""

from __future__ import annotations

import json
import os
import queue
import signal
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest

from tests.conftest import BACKENDS
from tests.servers import clean_env, fresh_database, run_server, warm_launch

pytestmark = pytest.mark.timeout(90)

PASSWORD = "admin-pw-for-tests"
GATED = """\
id: feed-gated
steps:
  - {id: build, type: script, shell: sh, run: "echo built"}
  - {id: ship-it, type: approval, needs: [build], approvers: [admin]}
  - {id: deploy, type: script, shell: sh, needs: [ship-it], run: "echo deployed"}
"""
PLAIN = "id: feed-plain\nsteps:\n  - {id: only, type: script, shell: sh, run: 'true'}\n"
YAML = {"Content-Type": "application/yaml"}
YAML_BODY: dict[str, Any] = {"headers": YAML}


@dataclass
class Event:
    id: str
    kind: str
    data: dict[str, Any]


@dataclass
class Feed:
    """One open ``GET /events``, read by a thread into a queue (so a test can act while it
    listens). Comment lines (keep-alives) arrive as events of kind ``comment``."""

    url: str
    headers: dict[str, str]
    cookies: dict[str, str] = field(default_factory=dict)
    events: queue.Queue[Event | None] = field(default_factory=queue.Queue)
    status: int | None = None

    def __post_init__(self) -> None:
        self._client = httpx.Client(timeout=httpx.Timeout(30.0), cookies=self.cookies)
        self._opened = threading.Event()
        self._thread = threading.Thread(target=self._read, daemon=True)
        self._thread.start()
        assert self._opened.wait(30), "the stream never answered"

    def _read(self) -> None:
        try:
            with self._client.stream("GET", self.url, headers=self.headers) as response:
                self.status = response.status_code
                self._opened.set()
                kind, data, event_id = "message", "", ""
                for line in response.iter_lines():
                    if line.startswith(":"):
                        self.events.put(Event("", "comment", {"text": line[1:].strip()}))
                    elif line == "":
                        if data:
                            self.events.put(Event(event_id, kind, json.loads(data)))
                        kind, data, event_id = "message", "", ""
                    else:
                        name, _, value = line.partition(":")
                        value = value.removeprefix(" ")
                        if name == "event":
                            kind = value
                        elif name == "data":
                            data = value
                        elif name == "id":
                            event_id = value
        except httpx.HTTPError:
            pass  # closed by the test
        finally:
            self._opened.set()
            self.events.put(None)

    def next(self, kind: str, match: Callable[[dict[str, Any]], bool] = lambda d: True) -> Event:
        """The next event of ``kind`` whose data matches (earlier others are skipped)."""
        while True:
            event = self.events.get(timeout=30)
            assert event is not None, f"the stream ended while waiting for {kind}"
            if event.kind == kind and match(event.data):
                return event

    def ended(self) -> bool:
        """Whether the server closed the stream (waits for it)."""
        self._thread.join(timeout=30)
        return not self._thread.is_alive()

    def close(self) -> None:
        self._client.close()
        self._thread.join(timeout=10)


@dataclass(frozen=True)
class Server:
    url: str
    token: str

    @property
    def auth(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}

    def call(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        headers = {**self.auth, **kwargs.pop("headers", {})}
        return httpx.request(method, f"{self.url}/api/v1{path}", headers=headers, **kwargs)

    def feed(self, headers: dict[str, str] | None = None, **kwargs: Any) -> Feed:
        chosen = self.auth if headers is None else headers
        return Feed(f"{self.url}/api/v1/events", chosen, **kwargs)


@pytest.fixture(scope="module", params=BACKENDS)
def server_db_url(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[str]:
    yield from fresh_database(request, tmp_path_factory, "feed")


@pytest.fixture(scope="module")
def server(server_db_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """``opsflow server`` with its local agent, keep-alives every second."""
    data_dir = tmp_path_factory.mktemp("feed-data")
    env = {
        **clean_env(),
        "OPSFLOW_ADMIN_PASSWORD": PASSWORD,
        "OPSFLOW_STREAM_KEEPALIVE_SECONDS": "1",
    }
    with run_server(server_db_url, data_dir, env=env) as running:
        yield Server(running.url, running.token)


def test_lists_hear_of_workflows_runs_and_approvals(server: Server) -> None:
    feed = server.feed()
    try:
        assert feed.status == 200
        feed.next("ready")
        saved = server.call("PUT", "/workflows/feed-gated?publish=true", content=GATED, **YAML_BODY)
        assert saved.status_code == 201, saved.text
        created = feed.next("workflow", lambda d: d["workflow_id"] == "feed-gated")
        assert created.data["action"] == "create" and created.data["actor"] == "admin"
        feed.next("workflow", lambda d: d["action"] == "publish")

        started = server.call("POST", "/workflows/feed-gated/runs", json={})
        assert started.status_code == 201, started.text
        execution_id = started.json()["id"]
        mine: Callable[[dict[str, Any]], bool] = lambda d: d["execution_id"] == execution_id  # noqa: E731
        first = feed.next("execution", mine)
        assert first.data["change"] == "created" and first.data["workflow_id"] == "feed-gated"
        pending = feed.next("approval", mine)
        assert (pending.data["step"], pending.data["status"]) == ("ship-it", "pending")

        approved = server.call("POST", f"/executions/{execution_id}/steps/ship-it/approve", json={})
        assert approved.status_code == 200, approved.text
        assert feed.next("approval", mine).data["status"] == "approved"
        ended = feed.next("execution", lambda d: mine(d) and d["change"] == "ended")
        assert ended.data["status"] == "completed"
        assert ended.id.count("-") == 1, "ids are <execution event id>-<audit id>"
    finally:
        feed.close()


def test_a_dropped_stream_resumes_from_last_event_id(server: Server) -> None:
    feed = server.feed()
    ready = feed.next("ready")
    feed.close()
    saved = server.call("PUT", "/workflows/feed-plain?publish=true", content=PLAIN, headers=YAML)
    assert saved.status_code in (200, 201), saved.text
    run = server.call("POST", "/workflows/feed-plain/runs", json={}).json()["id"]

    again = server.feed({**server.auth, "Last-Event-ID": ready.id})
    try:
        missed = again.next("workflow", lambda d: d["workflow_id"] == "feed-plain")
        assert missed.data["action"] in ("create", "update")
        assert again.next("execution", lambda d: d["execution_id"] == run)
    finally:
        again.close()
    bad = httpx.get(f"{server.url}/api/v1/events", headers={**server.auth, "Last-Event-ID": "x"})
    assert bad.status_code == 422 and "Last-Event-ID" in bad.json()["detail"]


def test_a_quiet_stream_keeps_alive_and_ends_when_its_token_is_revoked(server: Server) -> None:
    made = server.call("POST", "/tokens", json={"name": "feed-reader"}).json()
    feed = server.feed({"Authorization": f"Bearer {made['token']}"})
    try:
        feed.next("ready")
        keepalive = feed.next("comment")  # every second on this server
        assert keepalive.data["text"] == "keep-alive"
        assert server.call("DELETE", f"/tokens/{made['id']}").status_code == 200
        end = feed.next("end")
        assert "revoked" in end.data["reason"]
        assert feed.ended()
    finally:
        feed.close()


def test_a_browser_session_reads_the_stream_until_it_logs_out(server: Server) -> None:
    login = httpx.post(
        f"{server.url}/api/v1/auth/login",
        json={"username": "admin", "password": PASSWORD, "session": True},
    )
    assert login.status_code == 200, login.text
    cookies = dict(login.cookies)
    feed = server.feed({}, cookies=cookies)
    try:
        assert feed.status == 200
        feed.next("ready")
        out = httpx.post(
            f"{server.url}/api/v1/auth/logout",
            cookies=cookies,
            headers={"X-CSRF-Token": login.json()["csrf_token"]},
        )
        assert out.status_code == 204
        assert "log in again" in feed.next("end").data["reason"]
    finally:
        feed.close()
    anonymous = httpx.get(f"{server.url}/api/v1/events")
    assert anonymous.status_code == 401


def test_open_streams_never_hold_up_the_server(server: Server) -> None:
    feeds = [server.feed() for _ in range(4)]
    try:
        for feed in feeds:
            feed.next("ready")
        for _ in range(3):
            assert server.call("GET", "/workflows").status_code == 200
        saved = server.call("PUT", "/workflows/feed-plain?publish=true", content=PLAIN, **YAML_BODY)
        assert saved.status_code in (200, 201), saved.text
    finally:
        for feed in feeds:
            feed.close()


@pytest.fixture(params=BACKENDS)
def own_db_url(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[str]:
    yield from fresh_database(request, tmp_path_factory, "feedstop")


def test_a_stopping_server_ends_its_live_streams_instead_of_waiting_for_them(
    own_db_url: str, tmp_path_factory: pytest.TempPathFactory
) -> None:
    """uvicorn waits for every open request before it stops, and a live stream never ends by
    itself: a server asked to stop (SIGTERM) ends its streams, the lists' feed and a running
    execution's events, and finishes; the browsers' EventSource reconnects."""
    data_dir = tmp_path_factory.mktemp("feedstop-data")
    env = {**clean_env(), "OPSFLOW_ADMIN_PASSWORD": PASSWORD}
    with run_server(own_db_url, data_dir, env=env, launch=warm_launch) as running:
        server = Server(running.url, running.token)
        saved = server.call("PUT", "/workflows/feed-gated?publish=true", content=GATED, **YAML_BODY)
        assert saved.status_code in (200, 201), saved.text
        run = server.call("POST", "/workflows/feed-gated/runs", json={})
        assert run.status_code == 201, run.text
        lists = server.feed()
        assert lists.status == 200
        execution = Feed(f"{server.url}/api/v1/executions/{run.json()['id']}/events", server.auth)
        assert execution.status == 200
        execution.next("step", lambda d: d.get("step") == "ship-it")  # waits for its approval
        os.kill(running.pid, signal.SIGTERM)
        stopping_at = time.monotonic()
        assert lists.ended() and execution.ended()
        deadline = stopping_at + 10  # loose bound (CI load); it waited for ever before
        while "Finished server process" not in running.log.read_text():
            assert time.monotonic() < deadline, running.log.read_text()
            time.sleep(0.05)  # the log is the only view of the server's end a test has
        lists.close()
        execution.close()
