"""``opsflow server`` says it listens only when it does: after migrations, bootstrap and the
runtime have started, so a script that waits for the line can use the server at once."""

from __future__ import annotations

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
