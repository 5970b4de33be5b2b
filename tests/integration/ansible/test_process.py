"""The playbook's process: events stream while it runs; cancel and timeout stop all of it."""

from __future__ import annotations

import asyncio
import os
import time
from pathlib import Path

import pytest

from opsflow.status import JobStatus, LogStream
from opsflow.steps.ansible import AnsibleExecutor
from opsflow.steps.base import CancelSignal

from ..steps.support import RecordingSink
from .support import ansible_job, run, write

pytestmark = pytest.mark.anyio

SLEEPER = """
- hosts: all
  gather_facts: false
  tasks:
    - name: Sleep
      shell: "echo $$ > {{ out }}/pid; exec sleep 30"
"""


async def wait_for_file(path: Path, within: float = 20.0) -> str:
    """The file's content once a task has written it (checked every 20 ms)."""
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        if path.exists() and (text := path.read_text()).strip():
            return text
        await asyncio.sleep(0.02)
    raise TimeoutError(f"{path} was not written within {within}s")


def ancestors(pid: int) -> list[int]:
    """``pid`` and its parents up to (not including) this test process."""
    chain: list[int] = []
    while pid > 1 and pid != os.getpid():
        chain.append(pid)
        stat = Path(f"/proc/{pid}/stat").read_text()
        pid = int(stat.rsplit(")", 1)[1].split()[1])
    return chain


def running(pid: int) -> bool:
    """Whether ``pid`` still runs (a zombie waiting to be reaped counts as gone)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


async def still_running(pids: list[int], within: float = 3.0) -> list[int]:
    """Those of ``pids`` still running after ``within`` seconds (SIGKILL takes a moment)."""
    deadline = time.monotonic() + within
    alive = [pid for pid in pids if running(pid)]
    while alive and time.monotonic() < deadline:
        await asyncio.sleep(0.02)
        alive = [pid for pid in alive if running(pid)]
    return alive


async def test_task_lines_reach_the_log_while_the_playbook_runs(
    workdir: Path, out: Path, sink: RecordingSink
) -> None:
    release = out / "release"
    write(
        workdir,
        "site.yml",
        """
        - hosts: all
          gather_facts: false
          tasks:
            - name: First
              debug: {msg: started}
            - name: Wait for the test
              wait_for: {path: "{{ release }}", timeout: 30, sleep: 1}
        """,
    )
    spec = ansible_job(workdir, {"playbook": "site.yml", "extra_vars": {"release": str(release)}})
    task = asyncio.create_task(run(spec, sink))
    await sink.wait_for("ok: [localhost] => started", LogStream.STDOUT)
    await sink.wait_for("TASK [Wait for the test]", LogStream.STDOUT)
    assert not task.done(), sink.lines  # the playbook cannot end before we release it
    release.touch()
    result = await asyncio.wait_for(task, 30)
    assert result.status is JobStatus.COMPLETED, result
    assert sink.text(LogStream.STDOUT).index("ok: [localhost] => started") < sink.text(
        LogStream.STDOUT
    ).index("PLAY RECAP")


async def test_cancel_stops_the_playbook_and_every_process_it_started(
    workdir: Path, out: Path, sink: RecordingSink
) -> None:
    write(workdir, "site.yml", SLEEPER)
    cancel = CancelSignal()
    spec = ansible_job(workdir, {"playbook": "site.yml", "extra_vars": {"out": str(out)}})
    task = asyncio.create_task(run(spec, sink, cancel, AnsibleExecutor(grace=3)))
    sleep_pid = int(await wait_for_file(out / "pid"))
    tree = ancestors(sleep_pid)  # sleep, the module, the worker, ansible-playbook
    assert len(tree) >= 3
    started = time.monotonic()
    cancel.request(force=False)
    result = await asyncio.wait_for(task, 15)
    assert result.status is JobStatus.CANCELLED
    assert result.error == "cancelled"
    assert not result.retryable
    assert time.monotonic() - started < 10
    assert await still_running(tree) == []


async def test_timeout_stops_the_playbook_and_the_task_it_was_running(
    workdir: Path, out: Path, sink: RecordingSink
) -> None:
    write(workdir, "site.yml", SLEEPER)
    spec = ansible_job(
        workdir, {"playbook": "site.yml", "extra_vars": {"out": str(out)}}, timeout=8
    )
    started = time.monotonic()
    result = await run(spec, sink, executor=AnsibleExecutor(grace=2))
    assert result.status is JobStatus.TIMEOUT
    assert result.error == "timed out after 8s"
    assert time.monotonic() - started < 20
    sleep_pid = int((out / "pid").read_text())
    assert await still_running([sleep_pid]) == []
    assert "TASK [Sleep]" in sink.text(LogStream.STDOUT)
    assert "timed out after 8s" in sink.text(LogStream.SYSTEM)


async def test_the_servers_timeout_stop_ends_the_playbook_as_timed_out(
    workdir: Path, out: Path, sink: RecordingSink
) -> None:
    """The server's clock passed the step's timeout first: a timeout (retryable), not a cancel."""
    write(workdir, "site.yml", SLEEPER)
    spec = ansible_job(
        workdir, {"playbook": "site.yml", "extra_vars": {"out": str(out)}}, timeout=60
    )
    cancel = CancelSignal()
    task = asyncio.create_task(run(spec, sink, cancel, executor=AnsibleExecutor(grace=2)))
    await sink.wait_for("TASK [Sleep]")
    cancel.time_out()
    result = await task
    assert (result.status, result.error, result.retryable) == (
        JobStatus.TIMEOUT,
        "timed out after 60s",
        True,
    )
    assert "timed out after 60s" in sink.text(LogStream.SYSTEM)
