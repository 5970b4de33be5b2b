"""``opsflow server`` says it listens only when it does: after migrations, bootstrap and the
runtime have started, so a script that waits for the line can use the server at once."""

from __future__ import annotations

import os
import signal
import subprocess
from pathlib import Path

import httpx
import pytest

from tests.servers import clean_env, free_port, opsflow_executable

pytestmark = pytest.mark.timeout(120)


def test_listening_is_printed_once_the_server_answers(db_url: str, tmp_path: Path) -> None:
    port = free_port()
    process = subprocess.Popen(
        [
            *(opsflow_executable(), "server", "--port", str(port)),
            *("--data-dir", str(tmp_path), "--db", db_url),
        ],
        env={**clean_env(), "OPSFLOW_ADMIN_PASSWORD": "admin-pw-for-tests"},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    printed: list[str] = []
    try:
        assert process.stdout is not None
        for line in process.stdout:  # the server's own words are the event we wait for
            printed.append(line.rstrip())
            if "opsflow listening on" in line:
                health = httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=5)
                assert health.status_code == 200
                ready = httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=5)
                assert ready.json() == {"status": "ok", "database": "ok"}
                break
        else:
            pytest.fail("the server never said it listens:\n" + "\n".join(printed))
        before = "\n".join(printed)
        assert "Application startup complete" in before, "the banner comes after start-up"
    finally:
        process.terminate()
        process.communicate(timeout=30)


def test_make_run_listens_on_the_port_given_as_port(tmp_path: Path) -> None:
    """``make run PORT=P`` (the README's command) starts the demo server on P; the web build
    it depends on is taken as done (``-o web``), so only the server command runs."""
    makefile = Path(__file__).parents[3] / "Makefile"
    port = free_port()
    process = subprocess.Popen(
        [
            *("make", "-s", "-f", str(makefile), "-o", "web", "run"),
            f"PORT={port}",
            f"BIN={Path(opsflow_executable()).parent}",
        ],
        cwd=tmp_path,
        env={**clean_env(), "OPSFLOW_PORT": "1"},  # PORT wins over the environment
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,  # make and the server it starts stop together
    )
    printed: list[str] = []
    try:
        assert process.stdout is not None
        for line in process.stdout:
            printed.append(line.rstrip())
            if "opsflow listening on" in line:
                assert f"http://127.0.0.1:{port}" in line
                health = httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=5)
                assert health.status_code == 200
                break
        else:
            pytest.fail("make run never said it listens:\n" + "\n".join(printed))
        assert (tmp_path / "data" / "admin-token").exists(), "the demo's data dir is ./data"
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        process.communicate(timeout=30)
