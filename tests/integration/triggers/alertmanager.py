"""A real Prometheus Alertmanager (Debian's ``prometheus-alertmanager``) for the incident
trigger's tests: started on a loopback port with a webhook receiver that points at an opsflow
hook URL, and short group_wait / group_interval / repeat_interval so it notifies within
seconds; alerts are posted to its API v2 (``POST /api/v2/alerts``), as Prometheus does."""

from __future__ import annotations

import shutil
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.servers import free_port

BINARY = "/usr/bin/prometheus-alertmanager"

CONFIG = """\
route:
  receiver: opsflow
  group_by: [alertname]
  group_wait: 1s
  group_interval: 1s
  repeat_interval: 2s
receivers:
  - name: opsflow
    webhook_configs:
      - url: "{url}"
        send_resolved: true
        {auth}
"""


@dataclass(frozen=True)
class Alertmanager:
    url: str
    log: Path

    def post(self, *alerts: dict[str, Any]) -> None:
        """Send alerts as Prometheus does (labels, annotations, startsAt, endsAt)."""
        answer = httpx.post(f"{self.url}/api/v2/alerts", json=list(alerts), timeout=10)
        assert answer.status_code == 200, answer.text


def alertmanager_binary() -> str:
    found = BINARY if Path(BINARY).exists() else shutil.which("prometheus-alertmanager")
    if not found:
        pytest.fail(
            "prometheus-alertmanager is not installed: apt-get install prometheus-alertmanager"
        )
    return found


@contextmanager
def run_alertmanager(
    workdir: Path, webhook_url: str, *, bearer: str | None = None
) -> Iterator[Alertmanager]:
    """Alertmanager on a free loopback port whose one receiver posts to ``webhook_url``
    (with ``Authorization: Bearer <bearer>`` when given), stopped and reaped on exit."""
    workdir.mkdir(parents=True, exist_ok=True)
    auth = (
        f"http_config: {{authorization: {{type: Bearer, credentials: '{bearer}'}}}}"
        if bearer
        else ""
    )
    config = workdir / "alertmanager.yml"
    config.write_text(CONFIG.format(url=webhook_url, auth=auth))
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    log = workdir / "alertmanager.log"
    with log.open("wb") as out:
        process = subprocess.Popen(
            [
                alertmanager_binary(),
                f"--config.file={config}",
                f"--storage.path={workdir / 'data'}",
                f"--web.listen-address=127.0.0.1:{port}",
                "--cluster.listen-address=",  # no gossip port: one instance, nothing to join
                "--log.level=debug",
            ],
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:
        deadline = time.monotonic() + 30
        while True:
            if process.poll() is not None:
                pytest.fail(f"alertmanager exited with {process.returncode}:\n{log.read_text()}")
            try:
                if httpx.get(f"{url}/-/ready", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                pytest.fail(f"alertmanager was not ready within 30s:\n{log.read_text()}")
            time.sleep(0.05)  # its readiness endpoint is the only signal it gives
        yield Alertmanager(url=url, log=log)
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
