"""``opsflow server`` says it listens only when it does: after migrations, bootstrap and the
runtime have started, so a script that waits for the line can use the server at once."""

from __future__ import annotations

import os
import signal
import subprocess
from pathlib import Path

import httpx
import pytest

from tests.servers import clean_env, free_port, opsflow_executable, popen, run_server

pytestmark = pytest.mark.timeout(120)


def test_listening_is_printed_once_the_server_answers(db_url: str, tmp_path: Path) -> None:
    # the server's own words are the event waited for: no health check comes first. The real
    # console script, cold (launch=popen): the suite's one run_server start of `opsflow server`
    # itself; the others fork it from a warm interpreter (tests/servers.py).
    with run_server(
        db_url, tmp_path, ready_when_printed="opsflow listening on", launch=popen
    ) as server:
        health = httpx.get(f"{server.url}/healthz", timeout=5)
        assert health.status_code == 200
        ready = httpx.get(f"{server.url}/readyz", timeout=5)
        assert ready.json() == {"status": "ok", "database": "ok"}
        printed = server.log.read_text()
    before = printed.split("opsflow listening on", 1)[0]
    assert "Application startup complete" in before, "the banner comes after start-up"
    assert f"opsflow listening on {server.url}" in printed
    # Links in messages: the bind address, with how to say where people reach the server.
    assert (
        f"links in notifications: {server.url} (set OPSFLOW_PUBLIC_URL to the address people use"
    ) in printed


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


def test_a_public_url_with_a_path_stops_the_start_with_what_to_do(tmp_path: Path) -> None:
    """The web UI is served from its host's root, so a public URL under a path (a proxy
    forwarding /opsflow/*) would open a blank page: the server refuses to start and says so."""
    done = subprocess.run(
        [
            *(opsflow_executable(), "server", "--port", str(free_port())),
            *("--data-dir", str(tmp_path / "data"), "--db", f"sqlite:///{tmp_path}/o.db"),
            *("--public-url", "http://127.0.0.1:8558/opsflow"),
        ],
        env=clean_env(),
        capture_output=True,
        text=True,
        timeout=60,
    )
    printed = done.stdout + done.stderr
    assert done.returncode != 0, printed
    assert "OPSFLOW_PUBLIC_URL must have no path" in printed
    assert "served at the root of its host" in printed
    assert "Traceback" not in printed
    assert "opsflow listening on" not in printed
