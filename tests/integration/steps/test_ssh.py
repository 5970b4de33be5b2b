"""The ssh executor against two real sshd "hosts" on loopback (tests/sshd.py)."""

from __future__ import annotations

import asyncio
import json
import os
import shlex
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

import opsflow
from opsflow.status import JobStatus, LogStream, StepType
from opsflow.steps.base import CancelSignal, Connection, JobSpec, StepResult
from opsflow.steps.ssh import SshExecutor
from opsflow.steps.ssh_login import Login, connect, parse_target
from tests.servers import free_port
from tests.sshd import SshHost, SshUserKey

from .support import RecordingSink, job

pytestmark = pytest.mark.anyio


def ssh_job(
    workdir: Path,
    servers: list[SshHost],
    key: SshUserKey,
    *,
    timeout: float | None = None,
    known_hosts: str | None = None,
    **fields: Any,
) -> JobSpec:
    """A JobSpec of an ssh step on ``servers`` (unless ``fields`` names its own ``hosts``),
    with an ssh connection that knows their host keys."""
    values = servers[0].connection_values(key)
    values["known_hosts"] = (
        "".join(h.known_hosts() for h in servers) if known_hosts is None else known_hosts
    )
    config = {"hosts": [h.target for h in servers], "connection": "prod-ssh", **fields}
    spec = job(workdir, StepType.SSH, config, timeout=timeout)
    return JobSpec(
        **{**spec.__dict__, "connection": Connection("prod-ssh", "ssh", values)},
    )


async def run(spec: JobSpec, sink: RecordingSink, cancel: CancelSignal | None = None) -> StepResult:
    return await SshExecutor(grace=1.0).run(spec, sink, cancel or CancelSignal())


async def remote(host: SshHost, key: SshUserKey, command: str) -> tuple[int, str]:
    """Run ``command`` on ``host`` over a fresh login: (exit status, stdout)."""
    login = Login.from_values(host.connection_values(key))
    async with await connect(parse_target(host.target), login, 10) as connection:
        done = await connection.run(command)
    return int(done.exit_status or 0), str(done.stdout)


async def no_process(host: SshHost, key: SshUserKey, pattern: str, within: float = 5) -> bool:
    """True once ``pgrep -f pattern`` over SSH finds nothing on the host (within ``within``
    seconds); raises AssertionError naming what still runs."""
    deadline = asyncio.get_running_loop().time() + within
    while True:
        status, found = await remote(host, key, shlex.join(["pgrep", "-af", pattern]))
        if status == 1:
            return True
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"still running on {host.target}: {found}")
        await asyncio.sleep(0.1)  # a SIGKILLed group may take a moment to be reaped


async def test_a_command_runs_on_two_hosts_in_parallel_with_prefixed_output(
    workdir: Path, sink: RecordingSink, sshd_hosts: list[SshHost], ssh_user_key: SshUserKey
) -> None:
    command = 'echo "begin $GREETING"; sleep 1; echo end; echo oops >&2'
    spec = ssh_job(workdir, sshd_hosts, ssh_user_key, command=command, env={"GREETING": "hi"})
    result = await run(spec, sink)
    assert result.status is JobStatus.COMPLETED, (result, sink.lines)
    first, second = (h.target for h in sshd_hosts)
    stdout = sink.text(LogStream.STDOUT)
    for name in (first, second):
        assert f"[{name}] begin hi" in stdout and f"[{name}] end" in stdout
        assert f"[{name}] oops" in sink.text(LogStream.STDERR)
        entry = result.outputs["hosts"][name]
        assert entry["exit_code"] == 0 and entry["status"] == "completed"
        assert entry["stdout_tail"] == "begin hi\nend"
        assert 1000 <= entry["duration_ms"] < 10_000
    # both began before either ended: they ran at the same time
    assert max(stdout.index(f"[{n}] begin hi") for n in (first, second)) < min(
        stdout.index(f"[{n}] end") for n in (first, second)
    )
    assert result.outputs["failed_hosts"] == []
    # the wrapper's watcher (see test_a_killed_agent_...) ends with the command
    assert await no_process(sshd_hosts[0], ssh_user_key, "opsflow-env-en[d]")


async def test_parallel_one_runs_hosts_one_after_the_other(
    workdir: Path, sink: RecordingSink, sshd_hosts: list[SshHost], ssh_user_key: SshUserKey
) -> None:
    spec = ssh_job(
        workdir, sshd_hosts, ssh_user_key, command="echo begin; sleep 0.3; echo end", parallel=1
    )
    result = await run(spec, sink)
    assert result.status is JobStatus.COMPLETED
    first, second = (h.target for h in sshd_hosts)
    assert [line for line in sink.text(LogStream.STDOUT)] == [
        f"[{first}] begin",
        f"[{first}] end",
        f"[{second}] begin",
        f"[{second}] end",
    ]


def failing_on(host: SshHost) -> str:
    """A command that exits 3 on ``host`` only (told apart by the server port it reached)."""
    return f'echo on; if [ "${{SSH_CONNECTION##* }}" = {host.port} ]; then exit 3; fi'


async def test_one_failing_host_fails_the_step_with_fail_on_any(
    workdir: Path, sink: RecordingSink, sshd_hosts: list[SshHost], ssh_user_key: SshUserKey
) -> None:
    good, bad = sshd_hosts
    result = await run(ssh_job(workdir, sshd_hosts, ssh_user_key, command=failing_on(bad)), sink)
    assert result.status is JobStatus.FAILED
    assert result.outputs["failed_hosts"] == [bad.target]
    assert result.outputs["hosts"][bad.target]["exit_code"] == 3
    assert result.outputs["hosts"][good.target]["exit_code"] == 0
    assert result.error is not None and bad.target in result.error and "1 of 2" in result.error


async def test_fail_on_all_tolerates_one_failing_host_but_not_all(
    workdir: Path, sink: RecordingSink, sshd_hosts: list[SshHost], ssh_user_key: SshUserKey
) -> None:
    good, bad = sshd_hosts
    spec = ssh_job(workdir, sshd_hosts, ssh_user_key, command=failing_on(bad), fail_on="all")
    result = await run(spec, sink)
    assert result.status is JobStatus.COMPLETED
    assert result.outputs["failed_hosts"] == [bad.target]
    spec = ssh_job(workdir, sshd_hosts, ssh_user_key, command="exit 4", fail_on="all")
    result = await run(spec, RecordingSink())
    assert result.status is JobStatus.FAILED
    assert result.outputs["failed_hosts"] == [good.target, bad.target]


async def test_an_unreachable_host_is_a_failed_host(
    workdir: Path, sink: RecordingSink, sshd_hosts: list[SshHost], ssh_user_key: SshUserKey
) -> None:
    gone = f"127.0.0.1:{free_port()}"
    hosts = [sshd_hosts[0].target, gone]
    spec = ssh_job(workdir, sshd_hosts, ssh_user_key, command="true", hosts=hosts, fail_on="all")
    result = await run(spec, sink)
    assert result.status is JobStatus.COMPLETED
    assert result.outputs["failed_hosts"] == [gone]
    assert "cannot connect" in result.outputs["hosts"][gone]["error"]
    assert any(line.startswith(f"[{gone}] ") for line in sink.text(LogStream.SYSTEM))


async def test_an_unknown_host_key_is_refused_with_its_fingerprint(
    workdir: Path, sink: RecordingSink, sshd_hosts: list[SshHost], ssh_user_key: SshUserKey
) -> None:
    known, unknown = sshd_hosts
    spec = ssh_job(
        workdir, sshd_hosts, ssh_user_key, command="echo ran", known_hosts=known.known_hosts()
    )
    result = await run(spec, sink)
    assert result.status is JobStatus.FAILED
    assert result.outputs["failed_hosts"] == [unknown.target]
    error = result.outputs["hosts"][unknown.target]["error"]
    assert unknown.fingerprint in error and "known_hosts" in error
    assert f"[{unknown.target}] ran" not in sink.text(LogStream.STDOUT)
    assert any(unknown.fingerprint in line for line in sink.text(LogStream.SYSTEM))


async def test_accept_new_lets_an_unlisted_host_in_and_says_how_to_pin_its_key(
    workdir: Path, sink: RecordingSink, sshd_hosts: list[SshHost], ssh_user_key: SshUserKey
) -> None:
    known, unlisted = sshd_hosts
    spec = ssh_job(
        workdir, sshd_hosts, ssh_user_key, command="true", known_hosts=known.known_hosts()
    )
    assert spec.connection is not None
    values = {**spec.connection.values, "accept_new": "true"}
    spec = JobSpec(**{**spec.__dict__, "connection": Connection("prod-ssh", "ssh", values)})
    result = await run(spec, sink)
    assert result.status is JobStatus.COMPLETED, sink.lines
    warnings = [line for line in sink.text(LogStream.SYSTEM) if "accepted the new host key" in line]
    assert len(warnings) == 1 and warnings[0].startswith(f"[{unlisted.target}] ")
    assert unlisted.fingerprint in warnings[0]
    assert warnings[0].endswith(f"[127.0.0.1]:{unlisted.port} {unlisted.host_key}")


async def test_a_host_timeout_stops_the_whole_process_group_on_the_host(
    workdir: Path, sink: RecordingSink, sshd_hosts: list[SshHost], ssh_user_key: SshUserKey
) -> None:
    host = sshd_hosts[0]
    # a background child and a foreground one that ignores SIGTERM: only SIGKILL ends it
    command = "sleep 3517 & trap '' TERM; echo started; sleep 3518; wait"
    spec = ssh_job(workdir, [host], ssh_user_key, command=command, host_timeout=1)
    result = await run(spec, sink)
    assert result.status is JobStatus.FAILED
    entry = result.outputs["hosts"][host.target]
    assert entry["status"] == "timeout" and entry["error"] == "timed out after 1s"
    assert result.outputs["failed_hosts"] == [host.target]
    assert await no_process(host, ssh_user_key, "sleep 351[78]")


async def test_cancel_mid_command_stops_it_on_every_host(
    workdir: Path, sink: RecordingSink, sshd_hosts: list[SshHost], ssh_user_key: SshUserKey
) -> None:
    spec = ssh_job(workdir, sshd_hosts, ssh_user_key, command="echo started; sleep 3519")
    cancel = CancelSignal()
    running = asyncio.ensure_future(run(spec, sink, cancel))
    for host in sshd_hosts:
        await sink.wait_for(f"[{host.target}] started")
    cancel.request(force=False)
    result = await asyncio.wait_for(running, 10)
    assert result.status is JobStatus.CANCELLED and not result.retryable
    for host in sshd_hosts:
        assert result.outputs["hosts"][host.target]["status"] == "cancelled"
    assert await no_process(sshd_hosts[0], ssh_user_key, "sleep 3519")


async def test_sudo_runs_the_command_as_root_and_a_cancel_still_stops_it(
    workdir: Path, sink: RecordingSink, sshd_hosts: list[SshHost], ssh_user_key: SshUserKey
) -> None:
    host = sshd_hosts[0]
    command = 'echo "as $(id -u) for $SUDO_USER with $GREETING"; sleep 3521'
    spec = ssh_job(
        workdir, [host], ssh_user_key, command=command, sudo=True, env={"GREETING": "hi"}
    )
    cancel = CancelSignal()
    running = asyncio.ensure_future(run(spec, sink, cancel))
    await sink.wait_for(f"[{host.target}] as 0 for {host.user} with hi")
    cancel.request(force=True)
    result = await asyncio.wait_for(running, 10)
    assert (
        result.status is JobStatus.CANCELLED
        and result.error == "cancelled (forced) (0 of 1 host succeeded)"
    )
    assert await no_process(host, ssh_user_key, "sleep 3521")


async def test_a_forced_cancel_cuts_the_grace_of_a_graceful_one_short(
    workdir: Path, sink: RecordingSink, sshd_hosts: list[SshHost], ssh_user_key: SshUserKey
) -> None:
    host = sshd_hosts[0]
    spec = ssh_job(workdir, [host], ssh_user_key, command="trap '' TERM; echo started; sleep 3523")
    cancel = CancelSignal()
    running = asyncio.ensure_future(SshExecutor(grace=60).run(spec, sink, cancel))
    await sink.wait_for(f"[{host.target}] started")
    cancel.request(force=False)  # SIGTERM is ignored: the 60 s grace would run out
    await asyncio.sleep(0.5)
    cancel.request(force=True)
    result = await asyncio.wait_for(running, 10)
    assert result.status is JobStatus.CANCELLED and "forced" in (result.error or "")
    assert await no_process(host, ssh_user_key, "sleep 3523")


async def test_a_cancelled_job_task_still_stops_the_command_on_the_host(
    workdir: Path, sink: RecordingSink, sshd_hosts: list[SshHost], ssh_user_key: SshUserKey
) -> None:
    host = sshd_hosts[0]
    spec = ssh_job(workdir, [host], ssh_user_key, command="echo started; sleep 3524")
    running = asyncio.ensure_future(run(spec, sink))
    await sink.wait_for(f"[{host.target}] started")
    running.cancel()  # what an agent shutting down does to the jobs it runs
    with pytest.raises(asyncio.CancelledError):
        await running
    assert await no_process(host, ssh_user_key, "sleep 3524")


async def test_the_step_timeout_stops_every_host_and_times_the_job_out(
    workdir: Path, sink: RecordingSink, sshd_hosts: list[SshHost], ssh_user_key: SshUserKey
) -> None:
    spec = ssh_job(workdir, sshd_hosts, ssh_user_key, command="sleep 3520", timeout=1)
    result = await run(spec, sink)
    assert result.status is JobStatus.TIMEOUT
    assert await no_process(sshd_hosts[0], ssh_user_key, "sleep 3520")


async def test_env_values_reach_the_command_as_data_never_as_code(
    workdir: Path, sink: RecordingSink, sshd_hosts: list[SshHost], ssh_user_key: SshUserKey
) -> None:
    host = sshd_hosts[0]
    marker = workdir / "pwned"
    nasty = f'it\'s "quoted" $(touch {marker}) `touch {marker}`; touch {marker} | & *'
    spec = ssh_job(
        workdir, [host], ssh_user_key, command='printf "%s\\n" "$NASTY"', env={"NASTY": nasty}
    )
    result = await run(spec, sink)
    assert result.status is JobStatus.COMPLETED, sink.lines
    assert sink.text(LogStream.STDOUT) == [f"[{host.target}] {nasty}"]
    assert not marker.exists()


async def test_env_values_never_show_in_the_hosts_process_list(
    workdir: Path, sink: RecordingSink, sshd_hosts: list[SshHost], ssh_user_key: SshUserKey
) -> None:
    host = sshd_hosts[0]
    secret = "hunter2-" + "x" * 12
    command = 'echo "have ${#TOKEN} chars"; sleep 3522'
    spec = ssh_job(workdir, [host], ssh_user_key, command=command, sudo=True, env={"TOKEN": secret})
    cancel = CancelSignal()
    running = asyncio.ensure_future(run(spec, sink, cancel))
    await sink.wait_for(f"[{host.target}] have {len(secret)} chars")
    _, processes = await remote(host, ssh_user_key, "ps -eo args")
    assert "sleep 3522" in processes and "hunter2" not in processes
    cancel.request(force=True)
    assert (await asyncio.wait_for(running, 10)).status is JobStatus.CANCELLED


async def test_a_script_is_uploaded_run_and_removed(
    workdir: Path, sink: RecordingSink, sshd_hosts: list[SshHost], ssh_user_key: SshUserKey
) -> None:
    (workdir / "deploy.sh").write_text(
        '#!/bin/sh\necho "version $VERSION from $(dirname "$0")"\n'
    )  # no execute bit: the upload sets it
    host = sshd_hosts[0]
    spec = ssh_job(workdir, [host], ssh_user_key, script="deploy.sh", env={"VERSION": "1.2"})
    result = await run(spec, sink)
    assert result.status is JobStatus.COMPLETED, sink.lines
    line = result.outputs["hosts"][host.target]["stdout_tail"]
    assert line.startswith("version 1.2 from /")
    remote_dir = line.rsplit(" ", 1)[1]
    status, _ = await remote(host, ssh_user_key, shlex.join(["test", "-e", remote_dir]))
    assert status == 1  # removed after the run


async def test_hosts_from_an_ansible_inventory_group(
    workdir: Path, sink: RecordingSink, sshd_hosts: list[SshHost], ssh_user_key: SshUserKey
) -> None:
    first, second = sshd_hosts
    (workdir / "inventory.ini").write_text(
        "[web]\n"
        f"web1 ansible_host=127.0.0.1 ansible_port={first.port}\n"
        f"web2 ansible_host=127.0.0.1 ansible_port={second.port}\n"
        "[db]\n"
        "db1 ansible_host=127.0.0.1 ansible_port=1\n"
    )
    hosts = {"file": "inventory.ini", "pattern": "web"}
    spec = ssh_job(workdir, sshd_hosts, ssh_user_key, command="echo up", hosts=hosts)
    result = await run(spec, sink)
    assert result.status is JobStatus.COMPLETED, sink.lines
    assert sorted(result.outputs["hosts"]) == ["web1", "web2"]
    assert sorted(sink.text(LogStream.STDOUT)) == ["[web1] up", "[web2] up"]


async def test_a_rendered_host_string_is_split_on_commas_and_spaces(
    workdir: Path, sink: RecordingSink, sshd_hosts: list[SshHost], ssh_user_key: SshUserKey
) -> None:
    hosts = f" {sshd_hosts[0].target}, {sshd_hosts[1].target} "
    spec = ssh_job(workdir, sshd_hosts, ssh_user_key, command="true", hosts=hosts)
    result = await run(spec, sink)
    assert result.status is JobStatus.COMPLETED
    assert list(result.outputs["hosts"]) == [h.target for h in sshd_hosts]


async def test_bad_fields_fail_naming_the_field(
    workdir: Path, sink: RecordingSink, sshd_hosts: list[SshHost], ssh_user_key: SshUserKey
) -> None:
    cases: list[tuple[dict[str, Any], str]] = [
        ({"command": "true", "script": "x.sh"}, "command: give exactly one"),
        ({"command": "true", "hosts": ["bad host"]}, "hosts[0]"),
        ({"command": "true", "parallel": 0}, "parallel:"),
        ({"command": "true", "fail_on": "some"}, "fail_on:"),
        ({"script": "../etc/passwd"}, "script:"),
        ({"command": "true", "hosts": {"file": "missing.ini"}}, "hosts.file:"),
    ]
    for fields, expected in cases:
        result = await run(ssh_job(workdir, sshd_hosts, ssh_user_key, **fields), sink)
        assert result.status is JobStatus.FAILED and not result.retryable
        assert result.error is not None and expected in result.error, result.error
    no_connection = job(workdir, StepType.SSH, {"hosts": ["h"], "command": "true"})
    result = await run(no_connection, sink)
    assert result.error is not None and result.error.startswith("connection: is required")


async def test_a_script_inventory_with_its_hosts_users_and_ports(
    workdir: Path, sink: RecordingSink, sshd_hosts: list[SshHost], ssh_user_key: SshUserKey
) -> None:
    first, second = sshd_hosts
    inventory = {
        "web": {"hosts": ["web1", "web2"]},
        "_meta": {
            "hostvars": {
                name: {"ansible_host": "127.0.0.1", "ansible_port": h.port, "ansible_user": h.user}
                for name, h in (("web1", first), ("web2", second))
            }
        },
    }
    (workdir / "inventory.py").write_text(
        f"#!{sys.executable}\nimport json\nprint(json.dumps({json.dumps(inventory)}))\n"
    )  # no execute bit: the job's copy gets one
    spec = ssh_job(
        workdir,
        sshd_hosts,
        ssh_user_key,
        command="id -un",
        hosts={"script": "inventory.py", "pattern": "web"},
        user="no-such-user-here",  # each host's ansible_user wins over the step's user
    )
    result = await run(spec, sink)
    assert result.status is JobStatus.COMPLETED, sink.lines
    assert {name: h["stdout_tail"] for name, h in result.outputs["hosts"].items()} == {
        "web1": first.user,
        "web2": second.user,
    }


# An agent in a process of its own: it runs the job given as JSON on argv and prints every log
# line to its stdout, so the test can kill it -9 mid-command as a host loses its agent.
AGENT = """
import asyncio, json, sys
from pathlib import Path
from opsflow.status import StepType
from opsflow.steps.base import CancelSignal, Connection, JobSpec
from opsflow.steps.ssh import SshExecutor

class Printer:
    def write(self, stream, text, level=None):
        print(text, flush=True)

given = json.loads(sys.argv[1])
spec = JobSpec(
    job_id="job-1", execution_id="exec-1", step_id="step", attempt=1, type=StepType.SSH,
    config=given["config"], workdir=Path(given["workdir"]),
    connection=Connection("prod-ssh", "ssh", given["values"]),
)
asyncio.run(SshExecutor(grace=1.0).run(spec, Printer(), CancelSignal()))
"""


@pytest.mark.parametrize("sudo", [False, True])
async def test_a_killed_agent_leaves_nothing_running_on_the_host(
    workdir: Path, sshd_hosts: list[SshHost], ssh_user_key: SshUserKey, sudo: bool
) -> None:
    host = sshd_hosts[0]
    # a background child and a foreground one that ignores SIGTERM: only SIGKILL ends them all
    command = 'sleep 3525 & trap "" TERM; echo "started $RELEASE"; sleep 3526; wait'
    env = {"RELEASE": "1.4\nend"}  # a value over two lines does not end the env block early
    spec = ssh_job(workdir, [host], ssh_user_key, command=command, env=env, sudo=sudo)
    assert spec.connection is not None
    given = {"config": dict(spec.config), "workdir": str(workdir), "values": spec.connection.values}
    source = str(Path(opsflow.__file__).parents[1])
    agent = subprocess.Popen(
        [sys.executable, "-c", AGENT, json.dumps(given)],
        stdout=subprocess.PIPE,
        env={**os.environ, "PYTHONPATH": source},
    )
    try:
        assert agent.stdout is not None
        lines: list[bytes] = []
        while not lines or b"started" not in lines[-1]:  # the agent's own lines come first
            lines.append(await asyncio.wait_for(asyncio.to_thread(agent.stdout.readline), 30))
            assert lines[-1], lines  # the agent ended before the command started
        assert lines[-1].decode() == f"[{host.target}] started 1.4\n", lines
        assert agent.stdout.readline().decode() == f"[{host.target}] end\n"
        status, found = await remote(host, ssh_user_key, "pgrep -af 'sleep 352[56]'")
        assert status == 0 and "sleep 3525" in found and "sleep 3526" in found, found
        agent.send_signal(signal.SIGKILL)  # no chance to stop anything itself
        agent.wait(10)
        # SIGTERM at once, SIGKILL after the 1 s grace; the wrapper's watcher goes too
        assert await no_process(host, ssh_user_key, "sleep 352[56]|opsflow-env-en[d]", within=10)
    finally:
        agent.kill()
        agent.wait()
        await remote(host, ssh_user_key, "pkill -KILL -f 'sleep 352[56]'")
