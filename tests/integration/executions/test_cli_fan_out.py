"""The CLI on fanned-out steps, against a real server subprocess: logs of one item, retry of
one item, cancel of a step's items."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import BACKENDS
from tests.servers import fresh_database

from .test_cli import Server, execution_id_in, start_server

pytestmark = pytest.mark.timeout(60)

EACH = """\
id: cli-each
steps:
  - id: each
    type: script
    shell: sh
    for_each: [a, b, c]
    env: {X: "{{ item }}", MARK: "{{ execution.id }}"}
    run: |
      echo "item $X"
      test "$X" != b || test -e "/tmp/opsflow-cli-each-$MARK"
"""
# The new-user trial's run: 4 items, `retries: 1`, the last item fails every time.
LAST = """\
id: cli-last
steps:
  - id: each
    type: script
    shell: sh
    for_each: [a, b, c, d]
    retries: 1
    env: {X: "{{ item }}"}
    run: |
      echo "item $X"
      test "$X" != d
"""
# Trial 2, M3: item 2 fails under fail_fast, one at a time, so items 3-4 never start.
FAST = """\
id: cli-fast
steps:
  - id: m
    type: script
    shell: sh
    matrix: {n: [0, 1, 2, 3, 4]}
    max_parallel: 1
    fail_fast: true
    allow_skip: true
    env: {N: "{{ matrix.n }}"}
    run: test "$N" != 2
"""
NAPS = """\
id: cli-naps
steps:
  - {id: nap, type: script, shell: sh, for_each: [1, 2], min_success: 0, run: "sleep 30"}
"""


@pytest.fixture(scope="module", params=BACKENDS)
def fan_db_url(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[str]:
    yield from fresh_database(request, tmp_path_factory, "excli-fan")


@pytest.fixture(scope="module")
def server(fan_db_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    workflows: dict[str, tuple[str, dict[str, str]]] = {
        "each": (EACH, {}),
        "naps": (NAPS, {}),
        "last": (LAST, {}),
        "fast": (FAST, {}),
    }
    yield from start_server(fan_db_url, tmp_path_factory, workflows)


def _status(server: Server, execution_id: str) -> str:
    return str(server.get(f"/executions/{execution_id}")["status"])


def _until(server: Server, execution_id: str, check: Callable[[str], bool]) -> str:
    deadline = time.monotonic() + 30
    while True:
        status = _status(server, execution_id)
        if check(status):
            return status
        assert time.monotonic() < deadline, status
        time.sleep(0.1)  # the status endpoint is what a client polls


def test_logs_of_one_item_then_retry_of_that_item(server: Server) -> None:
    ran = server.cli("run", "cli-each", "--follow")
    assert ran.returncode == 1, ran.stdout + ran.stderr
    execution_id = execution_id_in(ran.stdout)

    logs = server.cli("logs", execution_id, "--step", "each", "--item", "1")
    assert logs.returncode == 0, logs.stderr
    assert "[each#1] item b" in logs.stdout.splitlines()
    assert "item a" not in logs.stdout and "item c" not in logs.stdout

    marker = Path(f"/tmp/opsflow-cli-each-{execution_id}")
    marker.touch()
    try:
        retried = server.cli("retry", execution_id, "each", "--item", "1")
        assert retried.returncode == 0, retried.stdout + retried.stderr
        assert "retrying item 1 of each" in retried.stdout
        assert _until(server, execution_id, lambda s: s != "running") == "completed"
    finally:
        marker.unlink()
    shown = server.cli("executions", "show", execution_id)
    assert shown.returncode == 0, shown.stderr
    assert "3 items: 3 succeeded" in shown.stdout
    # Jobs grouped by item, each item's attempts counted on their own: the retry of item 1
    # is the step's fourth job but the item's second attempt.
    assert _job_labels(shown.stdout) == [
        "item 0 attempt 1",
        "item 1 attempt 1",
        "item 1 attempt 2",
        "item 2 attempt 1",
    ]
    again = server.cli("retry", execution_id, "each", "--item", "0")
    assert again.returncode != 0
    assert "item 0 of step 'each'" in again.stdout + again.stderr
    # Trial 2, L7: logs of an item that is not there say so and exit 1.
    past = server.cli("logs", execution_id, "--step", "each", "--item", "99")
    assert past.returncode == 1, past.stdout + past.stderr
    assert "step 'each' has no item 99; its items are 0 to 2" in past.stdout + past.stderr


def _job_labels(shown: str) -> list[str]:
    """The job rows' labels of ``executions show`` (``item N attempt M``), in order."""
    return [" ".join(line.split()[:4]) for line in shown.splitlines() if line.startswith("  item ")]


def test_follow_names_each_items_lines_and_show_counts_each_items_attempts(
    server: Server,
) -> None:
    ran = server.cli("run", "cli-last", "--follow")
    assert ran.returncode == 1, ran.stdout + ran.stderr
    execution_id = execution_id_in(ran.stdout)
    lines = [line.strip() for line in ran.stdout.splitlines()]
    # As `logs -f` prints them: the step and the item.
    for index, value in enumerate("abcd"):
        assert f"[each#{index}] item {value}" in lines, ran.stdout
    # Its two attempts: the retry named as `logs` names it (live, the first cannot know).
    assert lines.count("[each#3] item d") == 1 and "[each#3 attempt 2] item d" in lines
    said = "[each#3] attempt 1 failed: exit code 1; retrying (attempt 2)"
    assert (
        lines.index("[each#3] item d")
        < lines.index(said)
        < lines.index("[each#3 attempt 2] item d")
    ), ran.stdout
    assert not [line for line in lines if line.startswith("[each]")], ran.stdout
    assert "1 of 4 items failed (item 3: attempt 2 failed: exit code 1)" in ran.stdout

    shown = server.cli("executions", "show", execution_id)
    assert shown.returncode == 0, shown.stderr
    assert _job_labels(shown.stdout) == [
        "item 0 attempt 1",
        "item 1 attempt 1",
        "item 2 attempt 1",
        "item 3 attempt 1",
        "item 3 attempt 2",
    ]
    assert (
        "step each item 3 started (attempt 2 of 2): retrying after attempt 1 failed: exit code 1"
        in shown.stdout
    )
    assert "attempt 5" not in shown.stdout and "attempt 4" not in shown.stdout


def test_cancel_of_a_steps_items(server: Server) -> None:
    started = server.cli("run", "cli-naps")
    assert started.returncode == 0, started.stdout + started.stderr
    execution_id = execution_id_in(started.stdout)

    def both_running() -> bool:
        detail: dict[str, Any] = server.get(f"/executions/{execution_id}")
        fan = detail["steps"][0]["fan_out"]
        return bool(fan and fan["counts"]["running"] == 2)

    deadline = time.monotonic() + 30
    while not both_running():
        assert time.monotonic() < deadline
        time.sleep(0.1)  # the status endpoint is what a client polls
    one = server.cli("cancel", execution_id, "--step", "nap", "--item", "0")
    assert one.returncode == 0, one.stdout + one.stderr
    assert "cancelled item 0 of nap" in one.stdout
    rest = server.cli("cancel", execution_id, "--step", "nap")
    assert rest.returncode == 0, rest.stdout + rest.stderr
    assert _until(server, execution_id, lambda s: s != "running") == "completed"


def test_retry_of_one_item_held_by_fail_fast_says_why_it_is_refused(server: Server) -> None:
    ran = server.cli("run", "cli-fast", "--follow")
    assert ran.returncode == 1, ran.stdout + ran.stderr
    execution_id = execution_id_in(ran.stdout)
    refused = server.cli("retry", execution_id, "m", "--item", "4")
    assert refused.returncode == 1, refused.stdout + refused.stderr
    said = refused.stdout + refused.stderr
    assert "fail_fast: item 2 failed; retry item 2 or the step, or skip item 2 first" in said
    assert "retrying item 4" not in said
    assert _status(server, execution_id) == "failed"
    # Trial 2, L14: a skip that leaves item 2's failure standing fails the run again at once;
    # the reply says so with why, not only 'execution is failed'.
    skipped = server.cli("skip", execution_id, "m", "--item", "4")
    assert skipped.returncode == 0, skipped.stdout + skipped.stderr
    assert "skipped item 4 of m; execution is failed (step m failed)" in skipped.stdout
