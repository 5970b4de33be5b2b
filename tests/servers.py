"""What the tests that start a real ``opsflow server`` share: a free port, the installed
console script, an environment without the developer's ``OPSFLOW_*`` settings, waiting for
health, and a fresh migrated database cloned from the session templates.

Servers are forked from one warm interpreter by default (`warm_launch`): each runs the console
script's entry point as its own process, without paying for its imports again. A test of the
real start path (imports, the script itself) passes ``launch=popen``, as
tests/integration/api/test_server_start.py does."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Generator, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import httpx
import pytest

from opsflow.steps.scope import _owner_prefix, own_cgroup_dir
from tests.conftest import _pg_admin, _pg_url


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def opsflow_executable() -> str:
    """The installed console script, next to the running interpreter or on PATH."""
    beside = Path(sys.executable).parent / "opsflow"
    found = str(beside) if beside.exists() else shutil.which("opsflow")
    if not found:
        pytest.fail("the `opsflow` console script is not installed: run `pip install -e .`")
    return found


def clean_env() -> dict[str, str]:
    """This process's environment without any ``OPSFLOW_*`` setting (no stray token or URL)."""
    return {k: v for k, v in os.environ.items() if not k.startswith("OPSFLOW_")}


def wait_healthy(url: str, process: ServerProcess, log: Path) -> None:
    """Until ``/healthz`` answers; fails with the server's log if it exits or never does."""
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail(f"opsflow server exited with {process.returncode}:\n{log.read_text()}")
        try:
            if httpx.get(f"{url}/healthz", timeout=1).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.05)  # polling the health endpoint is the readiness event we have
    pytest.fail(f"opsflow server did not become healthy within 60s:\n{log.read_text()}")


def wait_printed(text: str, process: ServerProcess, log: Path) -> None:
    """Until the server's output (in ``log``) holds ``text``; fails with the log if it exits
    or never prints it."""
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if text in log.read_text(errors="replace"):
            return
        if process.poll() is not None:
            pytest.fail(f"opsflow server exited with {process.returncode}:\n{log.read_text()}")
        time.sleep(0.05)  # the log file is the only view of the output a test has
    pytest.fail(f"opsflow server did not print {text!r} within 60s:\n{log.read_text()}")


@dataclass(frozen=True)
class RunningServer:
    """A started, healthy ``opsflow server``: its URL, data dir, log file, pid and the admin
    token it wrote."""

    url: str
    data_dir: Path
    log: Path
    pid: int
    token: str


class ServerProcess(Protocol):
    """What `run_server` needs of a started server process (``subprocess.Popen`` is one)."""

    @property
    def pid(self) -> int: ...

    @property
    def returncode(self) -> int | Any: ...

    def poll(self) -> int | None: ...

    def terminate(self) -> None: ...

    def kill(self) -> None: ...

    def wait(self, timeout: float | None = None) -> int: ...


# (argv, env, cwd, log) -> the started process, its stdout and stderr appended to log.
Launcher = Callable[[list[str], dict[str, str], Path, Path], ServerProcess]


def popen(argv: list[str], env: dict[str, str], cwd: Path, log: Path) -> ServerProcess:
    """The default `Launcher`: the console script as a child process."""
    with log.open("ab") as out:
        return subprocess.Popen(argv, cwd=cwd, env=env, stdout=out, stderr=subprocess.STDOUT)


class Zygote:
    """The handle on ``zygote.py``: ``spawn`` returns the pid of a new ``opsflow`` process."""

    def __init__(self) -> None:
        self.process = subprocess.Popen(
            [sys.executable, str(Path(__file__).with_name("zygote.py"))],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            env={k: v for k, v in os.environ.items() if not k.startswith("OPSFLOW_")},
        )
        # One request and its reply at a time: tests start servers from several threads.
        self._lock = threading.Lock()

    def launch(self, argv: list[str], env: dict[str, str], cwd: Path, log: Path) -> ForkedServer:
        """A `tests.servers.Launcher`: fork ``opsflow ARGV[1:]`` from the warm interpreter."""
        assert self.process.stdin is not None and self.process.stdout is not None
        request = json.dumps({"argv": argv[1:], "env": env, "cwd": str(cwd), "log": str(log)})
        try:
            with self._lock:
                self.process.stdin.write(request + "\n")
                self.process.stdin.flush()
                reply = self.process.stdout.readline()
        except BrokenPipeError:
            reply = ""
        if not reply:
            code = self.process.wait(timeout=10)
            pytest.fail(f"the zygote exited with {code} (its traceback is on stderr)")
        return ForkedServer(int(reply))

    def close(self) -> None:
        assert self.process.stdin is not None and self.process.stdout is not None
        with contextlib.suppress(BrokenPipeError):  # it may have died; wait() reports how
            self.process.stdin.close()
        self.process.wait(timeout=10)
        self.process.stdout.close()


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


class ForkedServer:
    """A server the zygote forked, as `tests.servers.run_server` handles one. It is the
    zygote's child, reaped by the kernel, so it is watched by its pid and its exit code is
    never known (``-1``)."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.returncode: int | None = None

    def poll(self) -> int | None:
        if self.returncode is None and not alive(self.pid):
            self.returncode = -1
        return self.returncode

    def terminate(self) -> None:
        self._signal(signal.SIGTERM)

    def kill(self) -> None:
        self._signal(signal.SIGKILL)

    def _signal(self, number: int) -> None:
        with contextlib.suppress(ProcessLookupError):  # gone already (a test killed it)
            os.kill(self.pid, number)

    def wait(self, timeout: float | None = None) -> int:
        """Until the pid is gone (once the kernel has reaped it, its sockets are closed)."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while self.poll() is None:
            if deadline is not None and time.monotonic() > deadline:
                raise subprocess.TimeoutExpired(f"pid {self.pid}", timeout or 0)
            time.sleep(0.005)
        return -1


_warm: Zygote | None = None
_warm_lock = threading.Lock()


def warm_launch(argv: list[str], env: dict[str, str], cwd: Path, log: Path) -> ServerProcess:
    """A `Launcher` that forks the console script's entry point from one warm interpreter per
    session (`tests/zygote.py`, started on first use, ended by `end_warm_launcher`): a start
    costs the server's start-up, not its imports (3-4 s against 27-34 s for the console script,
    measured at load 13). The server is its own process all the same."""
    global _warm
    with _warm_lock:
        if _warm is None or _warm.process.poll() is not None:
            _warm = Zygote()
        zygote = _warm
    return zygote.launch(argv, env, cwd, log)


def end_warm_launcher() -> None:
    """End the session's warm interpreter, if `warm_launch` started one."""
    global _warm
    if _warm is not None:
        _warm.close()
        _warm = None


@contextmanager
def run_server(
    db_url: str,
    data_dir: Path,
    *args: str,
    cwd: Path | None = None,
    env: dict[str, str] | None = None,
    ready_when_printed: str | None = None,
    port: int | None = None,
    log: Path | None = None,
    launch: Launcher = warm_launch,
) -> Iterator[RunningServer]:
    """``opsflow server --port P --data-dir D --db URL *args`` on a free port, healthy before
    it yields; stopped (SIGTERM, then SIGKILL after 15 s) when the block ends. ``env`` defaults
    to `clean_env` with a fixed admin password.

    Its stdout and stderr are appended to ``log`` (default ``D/server.log``). With
    ``ready_when_printed``, it yields as soon as the output holds that text, without asking
    ``/healthz`` first (for tests of what the server says when). ``port`` fixes the port (a
    restarted server on the one its clients know). ``launch`` starts the process: by default
    forked from the session's warm interpreter (`warm_launch`, the same entry point without the
    seconds of imports); ``launch=popen`` runs the console script itself, for a test of the real
    cold start; the crash tests pass their own zygote's.
    """
    port = port or free_port()
    log = log or data_dir / "server.log"
    argv = [opsflow_executable(), "server", "--port", str(port), "--data-dir", str(data_dir)]
    process = launch(
        [*argv, "--db", db_url, *args],
        env or {**clean_env(), "OPSFLOW_ADMIN_PASSWORD": "admin-pw-for-tests"},
        cwd or data_dir,
        log,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        if ready_when_printed is None:
            wait_healthy(url, process, log)
        else:
            wait_printed(ready_when_printed, process, log)
        token = (data_dir / "admin-token").read_text().strip()
        yield RunningServer(url, data_dir, log, process.pid, token)
    finally:
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def fresh_database(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory, prefix: str
) -> Generator[str, None, None]:
    """A fresh migrated database of the backend ``request.param``, cloned from the session
    templates of tests/conftest.py (as ``db_url`` does), dropped when the generator closes."""
    if request.param == "sqlite":
        template: Path = request.getfixturevalue("_sqlite_template")
        path = tmp_path_factory.mktemp(f"{prefix}-db") / "opsflow.db"
        shutil.copyfile(template, path)
        yield f"sqlite:///{path}"
        return
    template_name: str = request.getfixturevalue("_pg_template")
    name = f"opsflow_{prefix}_{uuid.uuid4().hex[:12]}"
    with _pg_admin() as conn:
        conn.execute(f'CREATE DATABASE "{name}" TEMPLATE "{template_name}"')
    try:
        yield _pg_url(name)
    finally:  # `close()` raises GeneratorExit at the yield: the drop must still run
        with _pg_admin() as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def step_cgroups(work_root: Path) -> list[str]:
    """The step cgroups on this machine named after ``work_root`` (the agent's owner prefix)."""
    parent = own_cgroup_dir()
    if parent is None or not parent.is_dir():
        return []
    prefix = _owner_prefix(str(work_root))
    return sorted(entry.name for entry in parent.iterdir() if entry.name.startswith(prefix))
