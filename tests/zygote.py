"""Starts ``opsflow server`` processes by forking one interpreter that has already imported it.

The tests start servers dozens of times per backend (tests/servers.py's `run_server` forks
them from here by default). On this 2-core machine most of a cold start is importing FastAPI,
SQLAlchemy, Jinja2 and friends (seconds under load), which says nothing about what they test.
This process imports them once; each request forks a child that runs the real console-script
entry point (``opsflow.cli.main:app``) with the requested argv and environment, as its own
process: the test kills it with SIGKILL like any other.

Protocol: one JSON object per line on stdin,
``{"argv": [...], "env": {...}, "cwd": path, "log": path}``;
the reply is the child's pid on one line of stdout. End of stdin ends the zygote. Children are
reaped by the kernel (SIGCHLD ignored here), so the test waits for a pid to vanish.
"""

from __future__ import annotations

import json
import os
import signal
import sys
import traceback

# Everything `opsflow server` imports, imported before any fork. No thread, event loop or
# database connection exists yet, so forking is safe.
import opsflow.api.app
import opsflow.api.server
import opsflow.store.migrate
from opsflow.cli.main import app


def serve(argv: list[str], env: dict[str, str], cwd: str, log: str) -> int:
    """The child: its own environment, directory and log, then the CLI exactly as the script
    runs it."""
    signal.signal(signal.SIGCHLD, signal.SIG_DFL)  # the server waits for its jobs' processes
    os.chdir(cwd)
    os.environ.clear()
    os.environ.update(env)
    out = os.open(log, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
    null = os.open(os.devnull, os.O_RDONLY)
    os.dup2(null, 0)
    os.dup2(out, 1)
    os.dup2(out, 2)
    try:
        app(args=argv, prog_name="opsflow")
    except SystemExit as exc:
        return exc.code if isinstance(exc.code, int) else 1
    return 0


def main() -> None:
    assert opsflow.api.app and opsflow.api.server and opsflow.store.migrate  # kept warm
    signal.signal(signal.SIGCHLD, signal.SIG_IGN)
    for line in sys.stdin:
        request = json.loads(line)
        sys.stdout.flush()
        pid = os.fork()
        if pid == 0:
            code = 1
            try:
                code = serve(request["argv"], request["env"], request["cwd"], request["log"])
            except BaseException:
                traceback.print_exc()
            finally:
                sys.stdout.flush()
                sys.stderr.flush()
                os._exit(code)
        print(pid, flush=True)


if __name__ == "__main__":
    main()
