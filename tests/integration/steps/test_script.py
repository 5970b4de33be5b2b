"""The script executor against real bash, sh, python and node processes."""

from __future__ import annotations

import asyncio
import os
import re
import time
from pathlib import Path

import pytest

from opsflow.status import JobStatus, LogStream, StepType
from opsflow.steps.base import CancelSignal, JobSpec, StepResult
from opsflow.steps.script import ScriptExecutor

from .support import RecordingSink, job

pytestmark = pytest.mark.anyio


def script(workdir: Path, run: str, **fields: object) -> JobSpec:
    timeout = fields.pop("timeout", None)
    assert timeout is None or isinstance(timeout, float | int)
    return job(workdir, StepType.SCRIPT, {"run": run, **fields}, timeout=timeout)


async def run(
    spec: JobSpec, sink: RecordingSink, executor: ScriptExecutor | None = None
) -> StepResult:
    return await (executor or ScriptExecutor()).run(spec, sink, CancelSignal())


def pid_gone(pid: int, within: float = 3.0) -> bool:
    """True once ``pid`` no longer runs (absent, or a zombie waiting to be reaped)."""
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        try:
            stat = Path(f"/proc/{pid}/stat").read_text()
        except FileNotFoundError:
            return True
        if stat.rsplit(")", 1)[1].split()[0] == "Z":
            return True
        time.sleep(0.01)
    return False


def pids(sink: RecordingSink, name: str) -> list[int]:
    return [
        int(m.group(1)) for t in sink.text(LogStream.STDOUT) if (m := re.match(rf"{name}=(\d+)", t))
    ]


async def test_key_value_outputs_with_multiline_value_and_exit_code(
    workdir: Path, sink: RecordingSink
) -> None:
    body = """
echo "version=1.4.2" >> "$OPSFLOW_OUTPUT"
printf 'notes<<EOF\\nline one\\nline two\\nEOF\\n' >> "$OPSFLOW_OUTPUT"
echo "empty=" >> "$OPSFLOW_OUTPUT"
"""
    result = await run(script(workdir, body), sink)
    assert result.status is JobStatus.COMPLETED, result
    assert result.outputs == {
        "version": "1.4.2",
        "notes": "line one\nline two",
        "empty": "",
        "exit_code": 0,
    }
    assert result.error is None


async def test_json_object_outputs_keep_their_types(workdir: Path, sink: RecordingSink) -> None:
    body = """echo '{"replicas": 3, "ready": true, "hosts": ["a", "b"]}' > "$OPSFLOW_OUTPUT" """
    result = await run(script(workdir, body), sink)
    assert result.outputs == {"replicas": 3, "ready": True, "hosts": ["a", "b"], "exit_code": 0}


async def test_malformed_output_file_fails_naming_the_line(
    workdir: Path, sink: RecordingSink
) -> None:
    body = """printf 'ok=1\\nthis line has no separator\\n' > "$OPSFLOW_OUTPUT" """
    result = await run(script(workdir, body), sink)
    assert result.status is JobStatus.FAILED
    assert result.error is not None and "OPSFLOW_OUTPUT line 2" in result.error
    assert result.retryable is False


async def test_env_values_reach_the_script_as_data_never_as_code(
    workdir: Path, sink: RecordingSink, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OPSFLOW_AGENT_TOKEN", "agent-secret")  # the agent's own setting
    evil = {"SUBST": "$(rm -rf ~)", "QUOTE": '"; echo pwned', "TICK": "`id`"}
    spec = job(
        workdir,
        StepType.SCRIPT,
        {
            "env": {**evil, "COUNT": 3, "DRY": False},
            "run": 'printf "%s\\n" "$SUBST" "$QUOTE" "$TICK" "$COUNT" "$DRY" '
            '"$OPSFLOW_EXECUTION_ID" "${OPSFLOW_AGENT_TOKEN:-unset}"',
        },
        env={"OPSFLOW_EXECUTION_ID": "exec-1"},
    )
    result = await run(spec, sink)
    assert result.status is JobStatus.COMPLETED, sink.lines
    assert sink.text(LogStream.STDOUT) == [
        "$(rm -rf ~)",
        '"; echo pwned',
        "`id`",
        "3",
        "false",
        "exec-1",
        "unset",
    ]
    start = sink.text(LogStream.SYSTEM)[0]
    assert "COUNT, DRY, QUOTE, SUBST, TICK" in start
    assert "rm -rf" not in start and "pwned" not in start


async def test_stdout_and_stderr_lines_keep_their_streams(
    workdir: Path, sink: RecordingSink
) -> None:
    body = "echo to-out\necho to-err >&2\necho again-out"
    result = await run(script(workdir, body), sink)
    assert result.status is JobStatus.COMPLETED
    assert sink.text(LogStream.STDOUT) == ["to-out", "again-out"]
    assert sink.text(LogStream.STDERR) == ["to-err"]
    assert sink.text(LogStream.SYSTEM)[0].startswith("running inline bash script (3 lines)")
    assert sink.text(LogStream.SYSTEM)[-1] == "exit code 0"


async def test_a_one_line_script_is_described_as_one_line(
    workdir: Path, sink: RecordingSink
) -> None:
    result = await run(script(workdir, "echo hi"), sink)
    assert result.status is JobStatus.COMPLETED
    assert sink.text(LogStream.SYSTEM)[0].startswith("running inline bash script (1 line) ")


async def test_non_zero_exit_fails_with_the_exit_code_and_keeps_outputs(
    workdir: Path, sink: RecordingSink
) -> None:
    body = 'echo "reason=disk full" >> "$OPSFLOW_OUTPUT"\nexit 3'
    result = await run(script(workdir, body), sink)
    assert result.status is JobStatus.FAILED
    assert result.error == "exit code 3"
    assert result.outputs == {"reason": "disk full", "exit_code": 3}
    assert result.retryable is True


async def test_bash_stops_at_the_first_failing_command(workdir: Path, sink: RecordingSink) -> None:
    result = await run(script(workdir, "false | true\nfalse\necho unreachable"), sink)
    assert result.status is JobStatus.FAILED
    assert "unreachable" not in sink.text(LogStream.STDOUT)


async def test_timeout_kills_children_and_grandchildren(workdir: Path, sink: RecordingSink) -> None:
    body = """
sleep 300 &
echo "child=$!"
( sleep 301 & echo "grandchild=$!"; wait ) &
wait
"""
    started = time.monotonic()
    result = await run(script(workdir, body, timeout=0.5), sink)
    assert result.status is JobStatus.TIMEOUT
    assert result.error == "timed out after 0.5s"
    assert time.monotonic() - started < 5
    found = pids(sink, "child") + pids(sink, "grandchild")
    assert len(found) == 2, sink.lines
    assert all(pid_gone(pid) for pid in found)
    assert "timed out after 0.5s" in sink.text(LogStream.SYSTEM)


async def test_background_processes_left_running_are_stopped_when_the_script_ends(
    workdir: Path, sink: RecordingSink
) -> None:
    started = time.monotonic()
    result = await run(script(workdir, 'sleep 300 &\necho "child=$!"'), sink)
    assert result.status is JobStatus.COMPLETED
    assert time.monotonic() - started < 5  # did not wait for the pipe the sleep held open
    [child] = pids(sink, "child")
    assert pid_gone(child)


async def test_graceful_cancel_lets_the_script_clean_up(workdir: Path, sink: RecordingSink) -> None:
    body = "trap 'echo cleaning up; exit 0' TERM\necho ready\nsleep 300 &\nwait"
    cancel = CancelSignal()
    task = asyncio.create_task(ScriptExecutor().run(script(workdir, body), sink, cancel))
    await sink.wait_for("ready")
    cancel.request(force=False)
    result = await task
    assert result.status is JobStatus.CANCELLED
    assert result.error == "cancelled"
    assert result.retryable is False
    assert "cleaning up" in sink.text(LogStream.STDOUT)


async def test_script_ignoring_sigterm_is_killed_after_the_grace_period(
    workdir: Path, sink: RecordingSink
) -> None:
    body = "trap '' TERM\necho ready\nwhile true; do sleep 0.05; done"
    cancel = CancelSignal()
    executor = ScriptExecutor(grace=0.3)
    task = asyncio.create_task(executor.run(script(workdir, body), sink, cancel))
    await sink.wait_for("ready")
    cancel.request(force=False)
    result = await task
    assert result.status is JobStatus.CANCELLED
    assert result.error == "cancelled"
    assert any("sending SIGKILL" in line for line in sink.text(LogStream.SYSTEM))


async def test_server_side_timeout_stops_with_the_default_5s_grace_and_reports_a_timeout(
    workdir: Path, sink: RecordingSink
) -> None:
    """The server's clock passed the step's timeout: SIGTERM, 5 s (the documented default) for a
    script that traps it, then SIGKILL; the attempt timed out (retryable), it was not cancelled."""
    body = "trap 'echo got TERM' TERM\necho ready\nwhile true; do sleep 0.05 || true; done"
    cancel = CancelSignal()
    task = asyncio.create_task(ScriptExecutor().run(script(workdir, body, timeout=2), sink, cancel))
    await sink.wait_for("ready")
    cancel.time_out()
    await sink.wait_for("got TERM", LogStream.STDOUT)
    termed = time.monotonic()
    result = await task
    assert 4.8 <= time.monotonic() - termed < 8
    assert result.status is JobStatus.TIMEOUT
    assert result.error == "timed out after 2s"
    assert result.retryable
    system = sink.text(LogStream.SYSTEM)
    assert "timed out after 2s" in system
    assert any("SIGKILL after 5s" in line for line in system), system


async def test_forced_cancel_cuts_a_long_grace_period_short(
    workdir: Path, sink: RecordingSink
) -> None:
    body = "trap '' TERM\necho ready\nwhile true; do sleep 0.05; done"
    cancel = CancelSignal()
    executor = ScriptExecutor(grace=60)
    task = asyncio.create_task(executor.run(script(workdir, body), sink, cancel))
    await sink.wait_for("ready")
    cancel.request(force=False)
    await sink.wait_for("stopping the step's processes", LogStream.SYSTEM)
    started = time.monotonic()
    cancel.request(force=True)
    result = await task
    assert time.monotonic() - started < 2.5
    assert result.status is JobStatus.CANCELLED
    assert result.error == "cancelled (forced)"


async def test_lines_reach_the_sink_while_the_script_still_runs(
    workdir: Path, sink: RecordingSink
) -> None:
    body = "echo first\nwhile [ ! -e go ]; do sleep 0.02; done\necho second"
    task = asyncio.create_task(run(script(workdir, body), sink))
    await sink.wait_for("first")
    assert not task.done()
    assert "second" not in sink.text(LogStream.STDOUT)
    (workdir / "go").touch()
    result = await task
    assert result.status is JobStatus.COMPLETED
    assert sink.text(LogStream.STDOUT) == ["first", "second"]


async def test_long_lines_partial_last_line_and_bad_utf8(
    workdir: Path, sink: RecordingSink
) -> None:
    body = (
        "import sys\n"
        "sys.stdout.write('x' * 40000 + '\\n')\n"
        "sys.stdout.flush()\n"
        "sys.stdout.buffer.write(b'caf\\xc3\\xa9 \\xff\\xfe end\\nno newline at end')\n"
    )
    result = await run(script(workdir, body, shell="python"), sink)
    assert result.status is JobStatus.COMPLETED
    out = sink.text(LogStream.STDOUT)
    assert "".join(out[:-2]) == "x" * 40000
    assert all(len(line) <= 16 * 1024 for line in out)
    assert out[-2] == "café \ufffd\ufffd end"
    assert out[-1] == "no newline at end"


async def test_file_from_the_workflow_files_runs_in_the_workdir_field(
    workdir: Path, sink: RecordingSink
) -> None:
    (workdir / "scripts").mkdir()
    (workdir / "scripts" / "deploy.sh").write_text('echo "where=$(basename "$PWD")"\n')
    (workdir / "infra").mkdir()
    spec = job(workdir, StepType.SCRIPT, {"file": "scripts/deploy.sh", "workdir": "infra"})
    result = await run(spec, sink)
    assert result.status is JobStatus.COMPLETED, sink.lines
    assert sink.text(LogStream.STDOUT) == ["where=infra"]
    assert "scripts/deploy.sh with bash in ./infra" in sink.text(LogStream.SYSTEM)[0]


@pytest.mark.parametrize(
    ("fields", "needle"),
    [
        ({"file": "../outside.sh"}, "file: '../outside.sh' points outside the workflow's files"),
        ({"file": "/etc/passwd"}, "file: '/etc/passwd' must be relative"),
        ({"file": "missing.sh"}, "file: missing.sh does not exist"),
        ({"run": "true", "workdir": "../.."}, "workdir: '../..' points outside"),
        ({"run": "true", "shell": "zsh"}, "shell: 'zsh' is not supported; use one of bash, sh"),
        ({}, "give exactly one of `run`"),
        ({"run": "true", "file": "a.sh"}, "give exactly one of `run`"),
        ({"run": "true", "env": {"BAD-NAME": "x"}}, "env.BAD-NAME: is not a valid variable"),
        ({"run": "true", "env": {"X": ["a"]}}, "env.X: must be a string or number, got a list"),
    ],
)
async def test_bad_configuration_fails_without_retry_naming_the_field(
    workdir: Path, sink: RecordingSink, fields: dict[str, object], needle: str
) -> None:
    (workdir.parent / "outside.sh").write_text("echo escaped\n")
    result = await run(job(workdir, StepType.SCRIPT, fields), sink)
    assert result.status is JobStatus.FAILED
    assert result.retryable is False
    assert result.error is not None and needle in result.error
    assert sink.text(LogStream.STDOUT) == []


async def test_symlink_escaping_the_workflow_files_is_refused(
    workdir: Path, sink: RecordingSink
) -> None:
    (workdir.parent / "secret.sh").write_text("echo escaped\n")
    (workdir / "link.sh").symlink_to(workdir.parent / "secret.sh")
    result = await run(job(workdir, StepType.SCRIPT, {"file": "link.sh"}), sink)
    assert result.status is JobStatus.FAILED
    assert result.error is not None and "outside the workflow's files" in result.error


async def test_python_shell_streams_and_writes_json_outputs(
    workdir: Path, sink: RecordingSink
) -> None:
    body = (
        "import json, os, sys\n"
        "print('hello from python')\n"
        "print('warning', file=sys.stderr)\n"
        "json.dump({'answer': 42}, open(os.environ['OPSFLOW_OUTPUT'], 'w'))\n"
    )
    result = await run(script(workdir, body, shell="python"), sink)
    assert result.status is JobStatus.COMPLETED, sink.lines
    assert result.outputs == {"answer": 42, "exit_code": 0}
    assert sink.text(LogStream.STDOUT) == ["hello from python"]
    assert sink.text(LogStream.STDERR) == ["warning"]


async def test_node_shell_runs_and_writes_key_value_outputs(
    workdir: Path, sink: RecordingSink
) -> None:
    body = (
        "const fs = require('fs');\n"
        "console.log('hello from node ' + process.env.GREETING);\n"
        "fs.appendFileSync(process.env.OPSFLOW_OUTPUT, 'lang=js\\n');\n"
        "process.exit(0);\n"
    )
    spec = job(workdir, StepType.SCRIPT, {"shell": "node", "run": body, "env": {"GREETING": "hi"}})
    result = await run(spec, sink)
    assert result.status is JobStatus.COMPLETED, sink.lines
    assert result.outputs == {"lang": "js", "exit_code": 0}
    assert sink.text(LogStream.STDOUT) == ["hello from node hi"]


async def test_sh_shell_and_inline_file_is_removed_afterwards(
    workdir: Path, sink: RecordingSink
) -> None:
    result = await run(script(workdir, 'echo "$0"', shell="sh"), sink)
    assert result.status is JobStatus.COMPLETED
    [path] = sink.text(LogStream.STDOUT)
    assert Path(path).name.startswith(".opsflow-step-1")
    assert Path(path).parent == workdir.resolve()
    assert os.listdir(workdir) == []


async def test_process_killed_by_a_signal_fails_naming_it(
    workdir: Path, sink: RecordingSink
) -> None:
    result = await run(script(workdir, "kill -KILL $$"), sink)
    assert result.status is JobStatus.FAILED
    assert result.error == "killed by signal SIGKILL"
    assert result.outputs["exit_code"] == 137


async def test_the_output_file_is_there_empty_at_the_start_and_gone_afterwards(
    workdir: Path, sink: RecordingSink
) -> None:
    body = (
        'test -f "$OPSFLOW_OUTPUT" && ! test -s "$OPSFLOW_OUTPUT"\n'
        'echo "path=$OPSFLOW_OUTPUT" >> "$OPSFLOW_OUTPUT"'
    )
    result = await run(script(workdir, body, shell="sh"), sink)
    assert result.status is JobStatus.COMPLETED, sink.lines
    path = Path(result.outputs["path"])
    assert not path.exists() and not path.is_relative_to(workdir)
    assert path.parent == workdir.parent  # the agent's work root: its start-up sweep's


async def test_a_step_takes_two_worker_thread_hops_from_start_to_result(
    workdir: Path, sink: RecordingSink, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Its files written with the scope's opening and read and removed with its closing
    (each hop costs the server CPU: benchmarks/README.md, "The script step's process start")."""
    hops: list[str] = []
    original = asyncio.to_thread

    async def counted(func: object, /, *args: object, **kwargs: object) -> object:
        hops.append(getattr(func, "__name__", repr(func)))
        return await original(func, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(asyncio, "to_thread", counted)
    result = await run(script(workdir, 'echo "v=1" >> "$OPSFLOW_OUTPUT"'), sink)
    assert result.status is JobStatus.COMPLETED, sink.lines
    assert result.outputs == {"v": "1", "exit_code": 0}
    assert len(hops) == 2, hops


async def test_an_inline_script_that_cannot_be_written_fails_the_step_saying_why(
    workdir: Path, sink: RecordingSink
) -> None:
    (workdir / ".opsflow-step-1.sh").mkdir()  # where the body would go
    result = await run(script(workdir, "echo never"), sink)
    assert result.status is JobStatus.FAILED
    assert result.error is not None and "could not write" in result.error, result.error
    assert "Is a directory" in result.error
    assert sink.text(LogStream.STDOUT) == []
    assert os.listdir(workdir) == [".opsflow-step-1.sh"]
