"""The CLI on a real server: `run --follow` and `executions show` say why a step waits,
`logs -f` prints every line once, and execution ids may be shortened to a unique prefix."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from sqlalchemy import insert, select

from opsflow.store.db import Database
from opsflow.store.runs import EX
from tests.conftest import BACKENDS
from tests.servers import fresh_database, opsflow_executable

from .test_cli import Server, _wait_status, execution_id_in, start_server

pytestmark = pytest.mark.timeout(90)

REMOTE = """\
id: cli-remote
steps:
  - {id: plan-us, type: script, shell: sh, run: "true", agent: {pool: us-east}}
  - {id: after, type: script, shell: sh, run: "true", needs: [plan-us]}
"""
GATED = """\
id: cli-gated
params:
  gate: {type: string, required: true}
steps:
  - id: talk
    type: script
    shell: sh
    env: {GATE: "{{ params.gate }}"}
    run: |
      for n in 1 2 3; do echo "line $n"; done
      while [ ! -e "$GATE" ]; do sleep 0.05; done
      echo "line 4"
"""
SHOWN = """\
id: cli-shown
params:
  mark: {type: string, required: true}
steps:
  - id: flaky
    type: script
    shell: sh
    env: {MARK: "{{ params.mark }}"}
    run: |
      echo "greeting=hi" >> "$OPSFLOW_OUTPUT"
      [ -e "$MARK" ]
  - {id: gate, type: approval, message: "Go ahead?", needs: [flaky]}
  - {id: last, type: script, shell: sh, run: "exit 5", needs: [gate], allow_skip: true}
"""


@pytest.fixture(scope="module", params=BACKENDS)
def db_url(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[str]:
    yield from fresh_database(request, tmp_path_factory, "clwait")


@pytest.fixture(scope="module")
def server(db_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    yield from start_server(
        db_url,
        tmp_path_factory,
        {"remote": (REMOTE, {}), "gated": (GATED, {}), "shown": (SHOWN, {})},
    )


def _read_until(process: subprocess.Popen[str], text: str) -> list[str]:
    """The lines ``process`` printed up to and including the first one holding ``text``."""
    assert process.stdout is not None
    seen: list[str] = []
    for line in process.stdout:
        seen.append(line)
        if text in line:
            return seen
    process.wait(timeout=10)
    pytest.fail(f"{text!r} never came; the output was:\n{''.join(seen)}")


def _popen(server: Server, *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [opsflow_executable(), *args],
        cwd=server.cwd,
        env=server.env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def test_run_follow_says_no_agent_serves_the_pool_and_cancel_takes_a_short_id(
    server: Server,
) -> None:
    follow = _popen(server, "run", "cli-remote", "--follow")
    try:
        seen = _read_until(follow, "no agent serves pool us-east")
        execution_id = execution_id_in("".join(seen))
        # The step's job waits for an agent: said so with the reason, never as "running".
        (waits,) = [x.strip() for x in seen if x.strip().startswith("plan-us ")]
        assert waits == "plan-us waiting for an agent: no agent serves pool us-east", seen

        shown = server.cli("executions", "show", execution_id[:7])
        assert shown.returncode == 0, shown.stdout + shown.stderr
        (plan_row,) = [x for x in shown.stdout.splitlines() if x.startswith("plan-us ")]
        assert "running" in plan_row and "no agent serves pool us-east" in plan_row
        (after_row,) = [x for x in shown.stdout.splitlines() if x.startswith("after ")]
        assert "waiting for needs: plan-us" in after_row

        cancelled = server.cli("cancel", execution_id[:6])
        assert cancelled.returncode == 0, cancelled.stdout + cancelled.stderr
        rest, _ = follow.communicate(timeout=30)
    finally:
        follow.kill() if follow.poll() is None else None
    assert follow.returncode == 1, rest
    assert rest.rstrip().splitlines()[-1].startswith("execution cancelled")


def test_logs_follow_prints_each_line_once(server: Server, tmp_path: Path) -> None:
    gate = tmp_path / "gate"
    started = server.cli("run", "cli-gated", "-p", f"gate={gate}")
    assert started.returncode == 0, started.stderr
    execution_id = execution_id_in(started.stdout)
    # Wait for the first lines through the stream itself, then read them back with -f.
    ready = _popen(server, "logs", execution_id, "-f")
    try:
        _read_until(ready, "line 3")
    finally:
        ready.kill()
        ready.wait()

    logs = _popen(server, "logs", execution_id[:10], "-f")
    try:
        printed = _read_until(logs, "line 3")
        gate.touch()  # only now does the step print its last line: it must come from the stream
        rest, _ = logs.communicate(timeout=30)
    finally:
        logs.kill() if logs.poll() is None else None
    lines = [x.strip() for x in [*printed, *rest.splitlines()] if x.strip()]
    said = [x for x in lines if "] line " in x]
    assert said == ["[talk] line 1", "[talk] line 2", "[talk] line 3", "[talk] line 4"], lines
    assert len(set(lines)) == len(lines), f"a line was printed twice: {lines}"
    assert lines[-1] == "[talk] exit code 0"
    assert logs.returncode == 0


def test_short_ids_too_short_unknown_and_ambiguous_say_so(server: Server, db_url: str) -> None:
    gate_done = server.cli("run", "cli-remote")
    execution_id = execution_id_in(gate_done.stdout)
    server.cli("cancel", execution_id)

    too_short = server.cli("executions", "show", execution_id[:5])
    assert too_short.returncode == 2
    assert "too short" in too_short.stderr and "at least its first 6" in too_short.stderr

    unknown = server.cli("executions", "show", "ffffff" if execution_id[0] != "f" else "000000")
    assert unknown.returncode == 1
    assert "no execution id starts with" in unknown.stderr

    # Two executions whose ids share a prefix: copies of this one's row under chosen ids.
    twins = ["abcdef0" + "1" * 25, "abcdef0" + "2" * 25]
    database = Database(db_url)
    try:
        with database.session() as session:
            row = session.connection().execute(select(EX).where(EX.c.id == execution_id))
            values = dict(row.mappings().one())
            for twin in twins:
                session.connection().execute(insert(EX).values({**values, "id": twin}))
    finally:
        database.dispose()
    ambiguous = server.cli("executions", "show", "abcdef0")
    assert ambiguous.returncode == 1
    assert "ambiguous" in ambiguous.stderr
    assert twins[0] in ambiguous.stderr and twins[1] in ambiguous.stderr
    one = server.cli("executions", "show", "abcdef01", "-o", "json")
    assert one.returncode == 0, one.stderr
    assert twins[0] in one.stdout


def test_apply_of_a_lone_file_sends_only_the_files_it_names_and_lists_them(
    server: Server, tmp_path: Path
) -> None:
    home = tmp_path / "home"
    (home / "scripts").mkdir(parents=True)
    (home / "deploy.yaml").write_text(
        "id: cli-lone\nsteps:\n  - {id: run, type: script, shell: sh, file: scripts/run.sh}\n"
    )
    (home / "scripts" / "run.sh").write_text("echo from the named file\n")
    (home / "scripts" / "unrelated.sh").write_text("echo never sent\n")
    (home / "opsflow.db").write_bytes(b"\0" * 4096)
    (home / ".ssh").mkdir()
    (home / ".ssh" / "id_ed25519").write_text("private key")

    applied = server.cli("apply", "-f", str(home / "deploy.yaml"))
    assert applied.returncode == 0, applied.stdout + applied.stderr
    assert "cli-lone: created version 1" in applied.stdout
    assert "sent deploy.yaml with 1 file (25 bytes): scripts/run.sh" in applied.stdout

    version = server.get("/workflows/cli-lone/versions/1")
    files = version["files"]
    assert isinstance(files, list)
    assert [f["path"] for f in files] == ["scripts/run.sh"]
    ran = server.cli("run", "cli-lone", "--follow")
    assert ran.returncode == 0, ran.stdout + ran.stderr
    assert "[run] from the named file" in ran.stdout


def test_every_command_taking_an_execution_id_takes_a_short_one_and_show_tells_each_attempt(
    server: Server, tmp_path: Path
) -> None:
    """retry, approve, skip and executions show on a 6-character prefix (cancel, logs and show
    are above); show gives each attempt its own status and the approver with the note."""
    mark = tmp_path / "mark"
    failed = server.cli("run", "cli-shown", "-p", f"mark={mark}", "--follow")
    assert failed.returncode == 1, failed.stdout + failed.stderr
    short = execution_id_in(failed.stdout)[:6]

    mark.touch()
    retried = server.cli("retry", short, "flaky")
    assert retried.returncode == 0, retried.stdout + retried.stderr
    execution_id = execution_id_in(failed.stdout)
    _wait_status(server, execution_id, {"paused"})
    approved = server.cli("approve", short, "gate", "-n", "looks right")
    assert approved.returncode == 0, approved.stdout + approved.stderr
    _wait_status(server, execution_id, {"failed"})
    skipped = server.cli("skip", short, "last")
    assert skipped.returncode == 0, skipped.stdout + skipped.stderr
    _wait_status(server, execution_id, {"completed"})

    shown = server.cli("executions", "show", short)
    assert shown.returncode == 0, shown.stdout + shown.stderr
    rows = [x.split() for x in shown.stdout.splitlines()]
    assert ["flaky", "succeeded"] in [r[:2] for r in rows], shown.stdout
    attempts = [r[:3] for r in rows if r[:1] == ["attempt"]]
    # flaky's two attempts, then last's failed one; the step's status is not the attempts'.
    assert attempts == [
        ["attempt", "1", "failed"],
        ["attempt", "2", "completed"],
        ["attempt", "1", "failed"],
    ], shown.stdout
    assert "flaky: greeting=hi" in shown.stdout
    assert 'gate: approved by admin via cli: "looks right"' in shown.stdout


@pytest.mark.parametrize(
    "command",
    [
        ["executions", "show", "{id}"],
        ["logs", "{id}"],
        ["cancel", "{id}"],
        ["approve", "{id}", "gate"],
        ["reject", "{id}", "gate"],
        ["retry", "{id}", "flaky"],
        ["skip", "{id}", "flaky"],
    ],
    ids=lambda c: " ".join(c[: 2 if c[0] == "executions" else 1]),
)
def test_every_command_taking_an_execution_id_reads_a_prefix(
    server: Server, command: list[str]
) -> None:
    """Each command resolves a prefix: under 6 characters is a usage error, an unknown one
    says no execution id starts with it, neither reaches the server as an id."""
    short = server.cli(*[x.replace("{id}", "abcde") for x in command])
    assert short.returncode == 2, short.stdout + short.stderr
    assert "too short" in short.stderr and "at least its first 6" in short.stderr
    unknown = server.cli(*[x.replace("{id}", "fedcba9") for x in command])
    assert unknown.returncode == 1, unknown.stdout + unknown.stderr
    assert "no execution id starts with 'fedcba9'" in unknown.stderr, unknown.stderr


def test_apply_warns_above_5_mib_and_refuses_above_50_mib_sending_nothing(
    server: Server, tmp_path: Path
) -> None:
    home = tmp_path / "home"
    (home / "scripts").mkdir(parents=True)
    (home / "big.yaml").write_text(
        "id: cli-big\nsteps:\n  - {id: run, type: script, shell: sh, file: scripts/run.sh}\n"
    )
    (home / "scripts" / "run.sh").write_text("echo big\n" + "#" * (6 * 1024 * 1024) + "\n")
    warned = server.cli("apply", "-f", str(home / "big.yaml"), timeout=60)
    assert warned.returncode == 0, warned.stdout + warned.stderr
    assert "warning: " in warned.stderr and "uploading 6.0 MiB in 1 file" in warned.stderr
    assert "sent big.yaml with 1 file (6.0 MiB): scripts/run.sh" in warned.stdout

    (home / "huge.yaml").write_text(
        "id: cli-huge\nsteps:\n  - {id: run, type: script, shell: sh, file: scripts/huge.sh}\n"
    )
    with (home / "scripts" / "huge.sh").open("wb") as sparse:
        sparse.truncate(51 * 1024 * 1024)  # sparse: its size is all that is measured
    refused = server.cli("apply", "-f", str(home / "huge.yaml"))
    assert refused.returncode == 2, refused.stdout + refused.stderr
    assert "the files to upload pass 50.0 MiB" in refused.stderr
    assert ".opsflowignore" in refused.stderr
    missing = httpx.get(
        f"{server.url}/api/v1/workflows/cli-huge",
        headers={"Authorization": f"Bearer {server.token}"},
    )
    assert missing.status_code == 404, "nothing was created or sent"
