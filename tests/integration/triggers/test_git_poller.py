"""The git poller in a real server, on each backend: a polling trigger records where the
branches are, a new commit on a matching branch starts one run, and polls without one start
nothing."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from opsflow.store import triggers as triggers_store
from opsflow.store.db import Database
from tests.integration.triggers.conftest import TriggerServer
from tests.integration.triggers.gitrepo import Remote


@pytest.fixture
def remote(tmp_path: Path) -> Remote:
    return Remote(tmp_path)


def trigger_state(db_url: str, workflow_id: str) -> dict[str, Any]:
    db = Database(db_url)
    try:
        with db.read() as session:
            return dict(triggers_store.get(session, workflow_id, "git-1").state)
    finally:
        db.dispose()


def wait_for(what: str, check: Callable[[], bool], timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.1)  # the poller's state and the runs are what we wait for
    pytest.fail(f"timed out waiting for {what}")


@pytest.mark.timeout(120)
def test_a_polling_server_runs_once_per_new_commit(
    trigger_server: TriggerServer, remote: Remote
) -> None:
    api = trigger_server.api
    workflow_id = f"polled-{uuid.uuid4().hex[:8]}"
    text = f"""\
id: {workflow_id}
triggers:
  - {{type: git, url: "{remote.bare}", poll: 10s, branches: [main]}}
steps:
  - {{id: show, type: script, shell: sh, env: {{C: "{{{{ git.commit }}}}"}}, run: 'echo "$C"'}}
"""
    answer = api.put(
        f"/workflows/{workflow_id}",
        params={"publish": "true"},
        content=text,
        headers={"Content-Type": "application/yaml"},
    )
    assert answer.status_code in (200, 201), answer.text

    def runs() -> list[dict[str, Any]]:
        return list(api.get("/executions", params={"workflow": workflow_id}).json()["items"])

    def polls() -> float:
        state = trigger_state(trigger_server.db_url, workflow_id)
        return float(state.get("last_poll_at") or 0)

    # The server's trigger clock runs 10 times as fast: `poll: 10s` polls every real second.
    wait_for("the first poll", lambda: polls() > 0)
    assert runs() == []  # the first poll only records where the branches are

    sha = remote.commit("second")
    wait_for("the run of the new commit", lambda: len(runs()) == 1)
    (run,) = runs()
    detail = api.get(f"/executions/{run['id']}").json()
    assert detail["trigger_data"]["git"]["commit"] == sha
    assert detail["trigger_data"]["git"]["branch"] == "main"
    # What a provider's payload would say of the commit, read from the polled repository.
    assert detail["trigger_data"]["git"]["message"] == "second"
    assert detail["trigger_data"]["git"]["author"] == "Ada"
    assert detail["trigger_data"]["git"]["changed_files"] == ["file.txt"]

    remote.commit("elsewhere", branch="feature/x")
    seen = polls()
    wait_for("two more polls", lambda: polls() > seen + 15)
    assert len(runs()) == 1  # no new commit on main, and feature/x is filtered out
    deliveries = api.get(f"/workflows/{workflow_id}/triggers/git-1/deliveries").json()
    reasons = [d["reason"] for d in deliveries["items"]]
    assert "branch feature/x matches none of ['main']" in reasons


@pytest.mark.timeout(120)
def test_a_remote_that_cannot_be_read_is_in_the_delivery_log_once(
    trigger_server: TriggerServer, tmp_path: Path
) -> None:
    api = trigger_server.api
    workflow_id = f"unreadable-{uuid.uuid4().hex[:8]}"
    missing = tmp_path / "no-such-repo.git"
    text = f"""\
id: {workflow_id}
triggers:
  - {{type: git, url: "{missing}", poll: 10s}}
steps:
  - {{id: show, type: script, shell: sh, run: 'true'}}
"""
    answer = api.put(
        f"/workflows/{workflow_id}",
        params={"publish": "true"},
        content=text,
        headers={"Content-Type": "application/yaml"},
    )
    assert answer.status_code in (200, 201), answer.text

    def polls() -> float:
        state = trigger_state(trigger_server.db_url, workflow_id)
        return float(state.get("last_poll_at") or 0)

    wait_for("the first poll", lambda: polls() > 0)
    first = polls()
    wait_for("two more polls", lambda: polls() > first + 15)
    deliveries = api.get(f"/workflows/{workflow_id}/triggers/git-1/deliveries").json()["items"]
    assert len(deliveries) == 1  # the same failure is recorded when it starts, not every poll
    (refused,) = deliveries
    assert (refused["outcome"], refused["status_code"]) == ("refused", 502)
    assert refused["reason"].startswith(f"git ls-remote {missing} failed (exit 128)")
    assert refused["source_address"] == "poll"
    state = trigger_state(trigger_server.db_url, workflow_id)
    assert state["last_error"] == refused["reason"]
