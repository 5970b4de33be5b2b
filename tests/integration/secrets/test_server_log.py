"""What ``opsflow server`` prints to its own stdout and stderr never carries a secret: an http
step whose URL (and the redirect it follows) holds one in the query string, in a real server
process on each backend."""

from __future__ import annotations

import base64
import http.server
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import quote, quote_plus

import httpx
import pytest

from opsflow.auth.masking import literal_variants
from tests.servers import clean_env, run_server

pytestmark = pytest.mark.timeout(120)

# Characters that URL encoding changes, so the encoded forms differ from the plain one.
TOKEN = "log-t0ken/with space&more=42"
YAML = {"Content-Type": "application/yaml"}


class _Redirecting(http.server.BaseHTTPRequestHandler):
    """``/start?token=...`` redirects to ``/final?token=...`` (the same value), which answers."""

    def do_GET(self) -> None:
        if self.path.startswith("/start"):
            self.send_response(302)
            self.send_header("Location", "/final?" + self.path.split("?", 1)[1])
            self.end_headers()
            return
        body = b'{"ok": true}'
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        pass  # this test server's own lines would go to the test's output, not the server's


@pytest.fixture
def target() -> Iterator[str]:
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Redirecting)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}"
    finally:
        httpd.shutdown()
        httpd.server_close()


def _forbidden(value: str) -> set[str]:
    raw = value.encode()
    return literal_variants(value) | {
        quote(value, safe=""),
        quote_plus(value),
        base64.b64encode(raw).decode(),
        base64.urlsafe_b64encode(raw).decode(),
    }


def test_the_server_log_never_shows_a_secret_an_http_step_sends(
    db_url: str, tmp_path: Path, target: str
) -> None:
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    # stdout and stderr both go to the one log run_server keeps; no admin password is set
    with (
        run_server(db_url, data_dir, env=clean_env()) as server,
        httpx.Client(
            base_url=f"{server.url}/api/v1",
            headers={"Authorization": f"Bearer {server.token}"},
            timeout=30,
        ) as api,
    ):
        r = api.put("/secrets/CALL_TOKEN", json={"value": TOKEN})
        assert r.status_code == 201, r.text
        flow = f"""
id: calls-out
steps:
  - id: call
    type: http
    url: "{target}/start?token={{{{ secrets.CALL_TOKEN }}}}"
    expect_status: [200]
"""
        r = api.put("/workflows/calls-out?publish=true", content=flow, headers=YAML)
        assert r.status_code in (200, 201), r.text
        r = api.post("/workflows/calls-out/runs", json={})
        assert r.status_code == 201, r.text
        eid = r.json()["id"]
        deadline = time.monotonic() + 60
        while (ex := api.get(f"/executions/{eid}").json())["status"] not in (
            "completed",
            "failed",
        ):
            assert time.monotonic() < deadline, ex
            time.sleep(0.1)  # polling the execution is the event this client has
        assert ex["status"] == "completed", ex["engine_log"]
        # The step really called with the value and followed the redirect.
        call = next(s for s in ex["steps"] if s["id"] == "call")
        assert call["outputs"]["status"] == 200
        # A request to the server itself whose query string holds the value: its access line
        # is printed, masked, by uvicorn's own formatter.
        assert api.get("/executions", params={"q": TOKEN}).status_code in (200, 422)
    printed = (data_dir / "server.log").read_text()
    assert "Application startup complete" in printed  # the log was captured at all
    assert "--- Logging error ---" not in printed  # masking kept every record printable
    assert '"GET /api/v1/executions?q=' in printed  # the access line is there
    # Its first part too: whatever encoding a library chose, that part stays as it is.
    for value in (*_forbidden(TOKEN), TOKEN.split("/")[0]):
        assert value not in printed, f"{value!r} is in the server's log:\n{printed}"
