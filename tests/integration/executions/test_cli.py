"""The run commands of the installed ``opsflow`` script against a real server subprocess
(with its local agent): apply, run --follow, executions list/show, logs, cancel.

One server per backend for the whole module, since a start costs a second or two.
"""

from __future__ import annotations

import json
import re
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import BACKENDS
from tests.servers import clean_env as base_env
from tests.servers import fresh_database, opsflow_executable, run_server

pytestmark = pytest.mark.timeout(60)

HELLO = """\
id: cli-hello
params:
  who: {type: string, default: world}
  times: {type: integer, default: 1}
steps:
  - id: greet
    type: script
    shell: sh
    env: {WHO: "{{ params.who }}", TIMES: "{{ params.times }}"}
    file: scripts/hello.sh
  - id: wrap-up
    type: script
    shell: sh
    needs: [greet]
    run: echo "all done"
"""
HELLO_SCRIPT = """\
i=0
while [ $i -lt "$TIMES" ]; do echo "hello $WHO"; i=$((i+1)); done
echo "a warning" >&2
"""
FAILING = """\
id: cli-failing
steps:
  - {id: boom, type: script, shell: sh, run: "echo about to fail; exit 3"}
  - {id: never, type: script, shell: sh, needs: [boom], run: "echo never"}
"""
SLEEPY = """\
id: cli-sleepy
steps:
  - {id: nap, type: script, shell: sh, run: "echo napping; sleep 30"}
"""


def clean_env() -> dict[str, str]:
    env = base_env()
    env["COLUMNS"] = "200"  # wide enough that tables never fold a cell in assertions
    return env


@dataclass
class Server:
    """A running ``opsflow server`` and the environment that points the CLI at it."""

    url: str
    token: str
    env: dict[str, str]
    cwd: Path

    def cli(self, *args: str, timeout: float = 30) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [opsflow_executable(), *args],
            cwd=self.cwd,
            env=self.env,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )

    def get(self, path: str) -> dict[str, object]:
        response = httpx.get(
            f"{self.url}/api/v1{path}", headers={"Authorization": f"Bearer {self.token}"}
        )
        assert response.status_code == 200, response.text
        body: dict[str, object] = response.json()
        return body


@pytest.fixture(scope="module", params=BACKENDS)
def server_db_url(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[str]:
    """The server's own database (a second server on the API tests' one would take jobs)."""
    yield from fresh_database(request, tmp_path_factory, "excli")


@pytest.fixture(scope="module")
def server(server_db_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """``opsflow server`` with its local agent on a free port, with the three workflows above
    applied through ``opsflow apply -f DIR``."""
    yield from start_server(
        server_db_url,
        tmp_path_factory,
        {
            "hello": (HELLO, {"scripts/hello.sh": HELLO_SCRIPT}),
            "failing": (FAILING, {}),
            "sleepy": (SLEEPY, {}),
        },
    )


def start_server(
    db_url: str,
    tmp_path_factory: pytest.TempPathFactory,
    workflows: dict[str, tuple[str, dict[str, str]]],
) -> Iterator[Server]:
    """Run ``opsflow server`` on ``db_url`` and apply ``workflows`` (name -> YAML and files)
    with ``opsflow apply -f DIR``; stops the server when the generator closes."""
    data_dir = tmp_path_factory.mktemp("cli-server-data")
    cwd = tmp_path_factory.mktemp("cli-cwd")
    with run_server(db_url, data_dir, cwd=cwd) as running:
        env = {**clean_env(), "OPSFLOW_URL": running.url, "OPSFLOW_TOKEN": running.token}
        server = Server(running.url, running.token, env, cwd)
        for name, (yaml_text, files) in workflows.items():
            directory = cwd / "workflows" / name
            (directory / "scripts").mkdir(parents=True)
            (directory / "workflow.yaml").write_text(yaml_text)
            for rel, content in files.items():
                (directory / rel).write_text(content)
        applied = server.cli("apply", "-f", str(cwd / "workflows"))
        assert applied.returncode == 0, applied.stdout + applied.stderr
        yield server


def execution_id_in(output: str) -> str:
    (line,) = [x for x in output.splitlines() if x.startswith("started execution ")]
    return line.split()[2]


@pytest.fixture(scope="module")
def hello_run(server: Server) -> subprocess.CompletedProcess[str]:
    """``opsflow run cli-hello -p who=ops -p times=2 --follow``, run once for the module."""
    return server.cli("run", "cli-hello", "-p", "who=ops", "-p", "times=2", "--follow")


def test_run_follow_shows_progress_and_logs_and_exits_zero(
    server: Server, hello_run: subprocess.CompletedProcess[str]
) -> None:
    done = hello_run
    assert done.returncode == 0, done.stdout + done.stderr
    out = done.stdout
    execution_id = execution_id_in(out)
    assert "greet running" in out and "greet succeeded" in out
    assert "wrap-up succeeded" in out
    assert out.count("[greet] hello ops") == 2, "the script from the applied files ran"
    assert "[greet] a warning" in out and "[wrap-up] all done" in out
    assert out.index("greet running") < out.index("[greet] hello ops")
    assert out.index("[greet] hello ops") < out.index("wrap-up running")
    assert out.rstrip().splitlines()[-1].startswith("execution completed")

    detail = server.get(f"/executions/{execution_id}")
    assert detail["status"] == "completed"
    assert detail["params"] == {"who": "ops", "times": 2}


def test_run_follow_of_a_failing_workflow_exits_one(server: Server) -> None:
    failed = server.cli("run", "cli-failing", "--follow")
    assert failed.returncode == 1, failed.stdout + failed.stderr
    assert "boom failed" in failed.stdout
    assert "[boom] about to fail" in failed.stdout
    assert "execution failed" in failed.stdout
    assert server.get(f"/executions/{execution_id_in(failed.stdout)}")["status"] == "failed"


def test_run_with_a_bad_param_says_which_param(server: Server) -> None:
    refused = server.cli("run", "cli-hello", "-p", "times=many")
    assert refused.returncode != 0
    message = refused.stdout + refused.stderr
    assert "params.times" in message and "not an integer" in message, message


def test_run_with_a_misspelled_param_names_the_declared_ones_and_the_closest(
    server: Server,
) -> None:
    refused = server.cli("run", "cli-hello", "-p", "tims=2")
    assert refused.returncode != 0
    message = refused.stdout + refused.stderr
    assert "unknown param 'tims'; declared: times, who; did you mean 'times'?" in message, message


def test_executions_list_with_an_unknown_trigger_type_says_which_are_allowed(
    server: Server,
) -> None:
    refused = server.cli("executions", "list", "--trigger", "bogus")
    assert refused.returncode != 0
    message = refused.stdout + refused.stderr
    assert "trigger" in message and "schedule" in message and "webhook" in message, message


def test_executions_list_show_and_logs_of_a_step(
    server: Server, hello_run: subprocess.CompletedProcess[str]
) -> None:
    execution_id = execution_id_in(hello_run.stdout)

    listed = server.cli("executions", "list", "-w", "cli-hello", "-o", "json")
    assert listed.returncode == 0, listed.stderr
    body = json.loads(listed.stdout)
    assert body["items"][0]["id"] == execution_id
    assert {e["workflow_id"] for e in body["items"]} == {"cli-hello"}
    assert body["items"][0]["status"] == "completed"

    shown = server.cli("executions", "show", execution_id)
    assert shown.returncode == 0, shown.stderr
    assert "cli-hello v1" in shown.stdout and "completed" in shown.stdout
    assert "greet" in shown.stdout and "wrap-up" in shown.stdout
    assert "engine log:" in shown.stdout and "step greet started" in shown.stdout

    only_greet = server.cli("logs", execution_id, "--step", "greet")
    assert only_greet.returncode == 0, only_greet.stderr
    lines = only_greet.stdout.splitlines()
    assert lines.count("[greet] hello ops") == 2 and "[greet] a warning" in lines
    assert all(line.startswith("[greet] ") for line in lines), lines


def test_show_of_a_test_run_does_not_claim_a_version(server: Server) -> None:
    started = httpx.post(
        f"{server.url}/api/v1/workflows/cli-failing/runs",
        json={"test": True},
        headers={"Authorization": f"Bearer {server.token}"},
    )
    assert started.status_code == 201, started.text
    shown = server.cli("executions", "show", started.json()["id"])
    assert shown.returncode == 0, shown.stderr
    assert "vNone" not in shown.stdout and "None" not in shown.stdout.splitlines()[0]


def test_logs_follow_streams_until_the_run_ends_and_cancel_force_ends_it(
    server: Server,
) -> None:
    started = httpx.post(
        f"{server.url}/api/v1/workflows/cli-sleepy/runs",
        json={},
        headers={"Authorization": f"Bearer {server.token}"},
    )
    assert started.status_code == 201, started.text
    execution_id = started.json()["id"]
    follower = subprocess.Popen(
        [opsflow_executable(), "logs", execution_id, "-f"],
        cwd=server.cwd,
        env=server.env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert follower.stdout is not None
        first = follower.stdout.readline()
        while "napping" not in first:  # the follower's own output is the event we wait on
            assert first, follower.stderr.read() if follower.stderr else ""
            first = follower.stdout.readline()

        began = time.monotonic()
        cancelled = server.cli("cancel", execution_id, "--force")
        assert cancelled.returncode == 0, cancelled.stdout + cancelled.stderr
        assert "cancel requested (force)" in cancelled.stdout
        _, err = follower.communicate(timeout=15)
        assert follower.returncode == 0, err
        assert time.monotonic() - began < 5, "logs -f returns when the run ends"
    finally:
        if follower.poll() is None:
            follower.kill()
            follower.communicate()
    assert server.get(f"/executions/{execution_id}")["status"] == "cancelled"

    again = server.cli("cancel", execution_id)
    assert again.returncode != 0
    assert "already ended as cancelled" in again.stdout + again.stderr


GATED = """\
id: cli-gated
steps:
  - {id: approve, type: approval, message: "Go ahead?"}
  - {id: after, type: script, needs: [approve], run: "true"}
  - {id: refused, type: script, needs: [approve.rejected], run: "true"}
"""

SKIPPABLE = """\
id: cli-skippable
steps:
  - {id: flaky, type: script, shell: sh, run: "exit 4", allow_skip: true}
  - {id: after, type: script, needs: [flaky], run: "true"}
"""


def _publish(server: Server, yaml_text: str) -> None:
    workflow_id = yaml_text.split("id:", 1)[1].split("\n", 1)[0].strip()
    response = httpx.put(
        f"{server.url}/api/v1/workflows/{workflow_id}?publish=true",
        content=yaml_text,
        headers={"Authorization": f"Bearer {server.token}", "Content-Type": "application/yaml"},
    )
    assert response.status_code in (200, 201), response.text


def _wait_status(server: Server, execution_id: str, wanted: set[str]) -> dict[str, object]:
    deadline = time.monotonic() + 30
    while True:
        detail = server.get(f"/executions/{execution_id}")
        if detail["status"] in wanted:
            return detail
        assert time.monotonic() < deadline, detail["status"]
        time.sleep(0.1)  # the API is the only view a CLI user has


def test_approvals_list_then_approve_and_reject_from_the_cli(server: Server) -> None:
    _publish(server, GATED)
    started = [execution_id_in(server.cli("run", "cli-gated").stdout) for _ in range(2)]
    for execution_id in started:
        _wait_status(server, execution_id, {"paused"})
    listed = server.cli("approvals", "list", "-o", "json")
    assert listed.returncode == 0, listed.stderr
    pending = {a["execution_id"] for a in json.loads(listed.stdout)["items"]}
    assert set(started) <= pending
    approved = server.cli("approve", started[0], "approve", "--note", "checked")
    assert approved.returncode == 0, approved.stderr
    assert "approve: approved" in approved.stdout
    rejected = server.cli("reject", started[1], "approve", "--note", "not now")
    assert rejected.returncode == 0 and "approve: rejected" in rejected.stdout
    done = _wait_status(server, started[0], {"completed", "failed"})
    assert done["status"] == "completed"
    again = server.cli("approve", started[1], "approve")
    assert again.returncode == 1 and "already rejected by admin via cli" in again.stderr
    typo = server.cli("approve", started[1], "aprove")
    assert typo.returncode == 1
    assert "has no approval gate; did you mean 'approve'?" in typo.stderr, typo.stderr


TEAM_GATED = """\
id: cli-team-gated
steps:
  - {id: approve, type: approval, message: "Go ahead?", approvers: ["team:platform"]}
"""


def test_an_answer_from_outside_the_gates_teams_points_to_team_membership_not_a_role(
    server: Server,
) -> None:
    headers = {"Authorization": f"Bearer {server.token}"}
    team = httpx.post(f"{server.url}/api/v1/teams", json={"name": "platform"}, headers=headers)
    assert team.status_code in (201, 409), team.text
    _publish(server, TEAM_GATED)
    execution_id = execution_id_in(server.cli("run", "cli-team-gated").stdout)
    _wait_status(server, execution_id, {"paused"})
    refused = server.cli("approve", execution_id, "approve")
    assert refused.returncode == 1
    assert "admin is not among this gate's approvers (team platform)" in refused.stderr
    assert "`opsflow teams add-member platform admin`" in refused.stderr
    assert "role" not in refused.stderr.replace("a role does not make an approver", "")
    joined = server.cli("teams", "add-member", "platform", "admin")
    assert joined.returncode == 0, joined.stderr
    approved = server.cli("approve", execution_id, "approve")
    assert approved.returncode == 0, approved.stderr
    assert _wait_status(server, execution_id, {"completed", "failed"})["status"] == "completed"


def test_retry_and_skip_from_the_cli(server: Server) -> None:
    _publish(server, SKIPPABLE)
    run = server.cli("run", "cli-skippable", "--follow")
    assert run.returncode == 1
    execution_id = execution_id_in(run.stdout)
    retried = server.cli("retry", execution_id, "flaky")
    assert retried.returncode == 0, retried.stderr
    _wait_status(server, execution_id, {"failed"})
    skipped = server.cli("skip", execution_id, "flaky")
    assert skipped.returncode == 0, skipped.stderr
    detail = _wait_status(server, execution_id, {"completed"})
    steps = {s["id"]: s for s in detail["steps"]}  # type: ignore[attr-defined]
    assert [j["attempt"] for j in steps["flaky"]["jobs"]] == [1, 2]
    assert steps["after"]["status"] == "succeeded"
    refused = server.cli("skip", execution_id, "after")
    assert refused.returncode == 1 and "start a new run" in refused.stderr


RETRIED = """\
id: cli-retried
steps:
  - id: shaky
    type: script
    shell: sh
    retries: 1
    run: |
      echo "try $OPSFLOW_ATTEMPT"
      test "$OPSFLOW_ATTEMPT" -ge 2
"""


def test_show_names_each_attempts_agent_and_logs_name_the_attempts(server: Server) -> None:
    """New-user trial: ``executions show`` names the agent of each attempt (the deployment
    guide's check), and ``logs`` tells a retried step's attempts apart."""
    _publish(server, RETRIED)
    ran = server.cli("run", "cli-retried", "--follow")
    assert ran.returncode == 0, ran.stdout + ran.stderr
    execution_id = execution_id_in(ran.stdout)
    steps: list[dict[str, Any]] = server.get(f"/executions/{execution_id}")["steps"]  # type: ignore[assignment]
    (jobs,) = [s["jobs"] for s in steps]
    agents = [j["agent_id"] for j in jobs]
    assert [j["attempt"] for j in jobs] == [1, 2] and all(agents), jobs

    shown = server.cli("executions", "show", execution_id)
    assert shown.returncode == 0, shown.stderr
    (header,) = [line for line in shown.stdout.splitlines() if line.startswith("STEP / JOB")]
    assert header.split()[3:6] == ["STATUS", "AGENT", "DURATION"], header
    rows = [line.split()[:4] for line in shown.stdout.splitlines() if line.startswith("  attempt")]
    assert rows == [["attempt", "1", "failed", agents[0]], ["attempt", "2", "completed", agents[1]]]

    logs = server.cli("logs", execution_id)
    assert logs.returncode == 0, logs.stderr
    lines = logs.stdout.splitlines()
    assert "[shaky attempt 1] try 1" in lines and "[shaky attempt 2] try 2" in lines, lines
    assert all(line.startswith(("[shaky attempt 1] ", "[shaky attempt 2] ")) for line in lines)
    second = server.cli("logs", execution_id, "--step", "shaky", "--attempt", "2")
    assert second.returncode == 0, second.stderr
    assert "[shaky attempt 2] try 2" in second.stdout.splitlines()
    assert all(line.startswith("[shaky attempt 2] ") for line in second.stdout.splitlines())
    third = server.cli("logs", execution_id, "--step", "shaky", "--attempt", "3")
    # Exit 1, as the reference says and as an unknown execution or item exits.
    assert third.returncode == 1, third.stderr
    assert "step 'shaky' has no attempt 3; its attempts: 1, 2" in third.stdout + third.stderr
    unknown = server.cli("logs", "0" * 32)
    assert unknown.returncode == 1, unknown.stderr


def test_run_follow_names_a_retried_steps_attempt_as_logs_does(server: Server) -> None:
    """New-user trial: ``run --follow`` printed a retry's live lines as ``[shaky]``, where
    ``logs`` says ``[shaky attempt 2]``. Live, the first attempt cannot know a retry follows:
    its lines keep ``[shaky]`` (as a single-attempt step's do), the retry's name the attempt."""
    _publish(server, RETRIED)
    ran = server.cli("run", "cli-retried", "--follow")
    assert ran.returncode == 0, ran.stdout + ran.stderr
    logs = [line.strip() for line in ran.stdout.splitlines() if line.startswith("    [")]
    first = [line for line in logs if line.startswith("[shaky] ")]
    retry = [line for line in logs if line.startswith("[shaky attempt 2] ")]
    # Every line names its attempt so, opsflow's own lines ("exit code 1") included.
    assert logs == first + retry, ran.stdout
    assert "[shaky] try 1" in first and "[shaky] exit code 1" in first, first
    assert "[shaky attempt 2] try 2" in retry, retry


def test_run_follow_says_when_an_attempt_failed_and_a_retry_follows(server: Server) -> None:
    """New-user trial: when an attempt failed and the step was retried, ``run --follow`` said
    nothing between the last line of one attempt and the first of the next (after a
    ``kill -9`` of the agent, seconds of silence). A line names the attempt, how it ended
    (its error) and the retry, before the retry's own lines."""
    _publish(server, RETRIED)
    ran = server.cli("run", "cli-retried", "--follow")
    assert ran.returncode == 0, ran.stdout + ran.stderr
    lines = [line.strip() for line in ran.stdout.splitlines()]
    said = "[shaky] attempt 1 failed: exit code 1; retrying (attempt 2)"
    assert said in lines, ran.stdout
    assert lines.index("[shaky] try 1") < lines.index(said) < lines.index("[shaky attempt 2] try 2")
    assert lines.count(said) == 1, ran.stdout
    # A retry that waits for its retry_delay: the step's waiting line says it, once.
    _publish(server, RETRIED.replace("cli-retried", "cli-waits-to-retry") + "    retry_delay: 1s\n")
    ran = server.cli("run", "cli-waits-to-retry", "--follow")
    assert ran.returncode == 0, ran.stdout + ran.stderr
    assert "retry 1 of 1 in 1s" in ran.stdout and "retrying (attempt" not in ran.stdout, ran.stdout


ISO_TIME = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d")


def test_lists_show_times_in_words_while_json_keeps_iso(
    server: Server, hello_run: subprocess.CompletedProcess[str]
) -> None:
    listed = server.cli("executions", "list", "-w", "cli-hello")
    assert listed.returncode == 0, listed.stderr
    assert not ISO_TIME.search(listed.stdout), listed.stdout
    row = next(x for x in listed.stdout.splitlines() if execution_id_in(hello_run.stdout) in x)
    assert re.search(r"(just now|\d+ s ago|\d+ min ago)", row), row
    as_json = json.loads(server.cli("executions", "list", "-w", "cli-hello", "-o", "json").stdout)
    assert ISO_TIME.match(as_json["items"][0]["created_at"])

    _publish(server, TIMED_GATE)
    execution_id = execution_id_in(server.cli("run", "cli-timed-gate").stdout)
    _wait_status(server, execution_id, {"paused"})
    approvals = server.cli("approvals", "list", "-w", "cli-timed-gate")
    assert approvals.returncode == 0, approvals.stderr
    assert "ASKED" in approvals.stdout and "TIMES OUT" in approvals.stdout
    assert not ISO_TIME.search(approvals.stdout), approvals.stdout
    assert re.search(r"(just now|\d+ s ago).*in (59|60) min", approvals.stdout), approvals.stdout
    raw = server.cli("approvals", "list", "-w", "cli-timed-gate", "-o", "json")
    assert ISO_TIME.match(json.loads(raw.stdout)["items"][0]["timeout_at"])
    server.cli("reject", execution_id, "approve")


TIMED_GATE = """\
id: cli-timed-gate
steps:
  - {id: approve, type: approval, message: "Within the hour?", timeout: 1h}
"""


def test_an_unknown_workflow_id_gets_a_did_you_mean(server: Server) -> None:
    refused = server.cli("run", "cli-helo")
    assert refused.returncode == 1
    assert "workflow 'cli-helo' not found; did you mean 'cli-hello'?" in refused.stderr
    shown = server.cli("workflows", "show", "cli-sleepyy")
    assert "did you mean 'cli-sleepy'?" in shown.stderr
    nothing_close = server.cli("run", "quarterly-report")
    assert nothing_close.returncode == 1
    assert "not found" in nothing_close.stderr and "did you mean" not in nothing_close.stderr


REPORTING = """\
id: cli-reporting
steps:
  - id: report
    type: script
    shell: sh
    run: |
      {
        echo 'report<<END'
        i=0; while [ $i -lt 50 ]; do echo "line $i of the report"; i=$((i+1)); done
        echo END
        echo 'version=1.4.2'
      } > "$OPSFLOW_OUTPUT"
"""


def test_show_cuts_a_long_output_and_says_how_to_see_it_whole(server: Server) -> None:
    _publish(server, REPORTING)
    run = server.cli("run", "cli-reporting", "--follow")
    assert run.returncode == 0, run.stdout + run.stderr
    execution_id = execution_id_in(run.stdout)

    shown = server.cli("executions", "show", execution_id)
    assert shown.returncode == 0, shown.stderr
    assert "line 0 of the report... (50 lines," in shown.stdout
    assert "line 1 of the report" not in shown.stdout
    assert "version=1.4.2" in shown.stdout
    assert f"in full: opsflow executions show {execution_id} --step report" in shown.stdout

    whole = server.cli("executions", "show", execution_id[:8], "--step", "report")
    assert whole.returncode == 0, whole.stderr
    lines = whole.stdout.splitlines()
    assert lines[0] == "report:" and lines[1:51] == [f"line {i} of the report" for i in range(50)]
    assert "version: 1.4.2" in lines

    typo = server.cli("executions", "show", execution_id, "--step", "reprot")
    assert typo.returncode == 2
    assert "has no step 'reprot'; did you mean 'report'?" in typo.stderr


SKIPPING = """\
id: cli-skipping
concurrency: {limit: 1, policy: skip}
steps:
  - {id: nap, type: script, shell: sh, run: "sleep 30"}
"""


def test_run_skipped_by_the_concurrency_policy_says_so_not_started(server: Server) -> None:
    _publish(server, SKIPPING)
    first = execution_id_in(server.cli("run", "cli-skipping").stdout)
    _wait_status(server, first, {"running"})
    try:
        skipped = server.cli("run", "cli-skipping")
        assert skipped.returncode == 0, skipped.stdout + skipped.stderr
        assert "started execution" not in skipped.stdout
        line = " ".join(skipped.stdout.split())
        assert "of cli-skipping was not started: skipped by concurrency policy skip: " in line
        assert "1 of 1 allowed executions are running" in line
        skipped_id = line.split()[1]
        assert server.get(f"/executions/{skipped_id}")["status"] == "cancelled"

        followed = server.cli("run", "cli-skipping", "--follow")
        assert followed.returncode == 1, "a run that never started is not a success"
        assert "started execution" not in followed.stdout
        assert "was not started: skipped by concurrency policy skip" in followed.stdout
    finally:
        assert server.cli("cancel", first, "--force").returncode == 0
    _wait_status(server, first, {"cancelled"})


def test_cancel_of_an_ended_run_with_nothing_to_undo_does_not_offer_cleanup(
    server: Server,
) -> None:
    done = server.cli("run", "cli-failing", "--follow")
    execution_id = execution_id_in(done.stdout)
    refused = server.cli("cancel", execution_id)
    assert refused.returncode != 0
    said = " ".join((refused.stdout + refused.stderr).split())
    assert f"execution {execution_id} already ended as failed" in said
    assert "--cleanup" not in said and "undo" not in said


ONE_GATE = """\
id: cli-one-gate
steps:
  - {id: approve, type: approval, message: "Go ahead?"}
  - {id: after, type: script, needs: [approve], run: "true"}
"""


def test_retry_of_a_rejected_approval_points_to_from_here_which_asks_it_again(
    server: Server,
) -> None:
    _publish(server, ONE_GATE)
    execution_id = execution_id_in(server.cli("run", "cli-one-gate").stdout)
    _wait_status(server, execution_id, {"paused"})
    assert server.cli("reject", execution_id, "approve").returncode == 0
    _wait_status(server, execution_id, {"rejected"})
    plain = server.cli("retry", execution_id, "approve")
    assert plain.returncode == 1
    said = " ".join(plain.stderr.split())
    assert "it is rejected; to ask the approval again, retry it from here" in said, said
    assert "`opsflow retry EXECUTION approve --from-here`" in said, said

    again = server.cli("retry", execution_id, "approve", "--from-here")
    assert again.returncode == 0, again.stdout + again.stderr
    assert "retrying approve from here; reset after" in again.stdout
    _wait_status(server, execution_id, {"paused"})  # asked again, not the old answer
    assert server.cli("approve", execution_id, "approve").returncode == 0
    detail = _wait_status(server, execution_id, {"completed", "failed"})
    assert detail["status"] == "completed"
