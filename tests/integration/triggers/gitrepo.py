"""A real git remote for the git trigger tests: a bare repository and a clone that pushes to
it, with a fixed author and no user configuration; and git's smart HTTP protocol in front of
it, behind basic auth."""

from __future__ import annotations

import base64
import subprocess
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path


def git(*args: str, cwd: Path) -> str:
    env = {
        "GIT_AUTHOR_NAME": "Ada",
        "GIT_AUTHOR_EMAIL": "ada@example.com",
        "GIT_COMMITTER_NAME": "Ada",
        "GIT_COMMITTER_EMAIL": "ada@example.com",
        "HOME": str(cwd),
        "PATH": "/usr/bin:/bin",
    }
    done = subprocess.run(
        ["git", *args], cwd=cwd, env=env, check=True, capture_output=True, text=True
    )
    return done.stdout.strip()


class Remote:
    """A bare repository and a clone that pushes to it."""

    def __init__(self, root: Path) -> None:
        self.bare = root / "remote.git"
        self.work = root / "work"
        git("init", "--bare", "--initial-branch=main", str(self.bare), cwd=root)
        git("clone", str(self.bare), str(self.work), cwd=root)
        git("checkout", "-b", "main", cwd=self.work)
        self.commit("first")

    def commit(self, message: str, branch: str = "main") -> str:
        git("checkout", "-B", branch, cwd=self.work)
        (self.work / "file.txt").write_text(message)
        git("add", "file.txt", cwd=self.work)
        git("commit", "-m", message, cwd=self.work)
        git("push", "-f", "origin", branch, cwd=self.work)
        return git("rev-parse", "HEAD", cwd=self.work)


class _SmartHttp(BaseHTTPRequestHandler):
    """git's smart HTTP protocol through ``git http-backend`` (CGI), behind basic auth."""

    root: Path
    credentials: str
    seen: list[str]

    def _serve(self) -> None:
        authorization = self.headers.get("Authorization", "")
        self.seen.append(authorization)
        expected = "Basic " + base64.b64encode(self.credentials.encode()).decode()
        if authorization != expected:
            self.send_response(401)
            self.send_header("WWW-Authenticate", 'Basic realm="git"')
            self.end_headers()
            return
        path, _, query = self.path.partition("?")
        length = int(self.headers.get("Content-Length") or 0)
        env = {
            "GIT_PROJECT_ROOT": str(self.root),
            "GIT_HTTP_EXPORT_ALL": "1",
            "PATH_INFO": path,
            "QUERY_STRING": query,
            "REQUEST_METHOD": self.command,
            "CONTENT_TYPE": self.headers.get("Content-Type", ""),
            "CONTENT_LENGTH": str(length),
            "GIT_PROTOCOL": self.headers.get("Git-Protocol", ""),
            "PATH": "/usr/bin:/bin",
        }
        done = subprocess.run(
            ["git", "http-backend"], input=self.rfile.read(length), env=env, capture_output=True
        )
        head, _, body = done.stdout.partition(b"\r\n\r\n")
        status = 200
        headers = []
        for line in head.decode().split("\r\n"):
            name, _, value = line.partition(": ")
            if name.lower() == "status":
                status = int(value.split()[0])
            elif name:
                headers.append((name, value))
        self.send_response(status)
        for name, value in headers:
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    do_GET = _serve
    do_POST = _serve

    def log_message(self, format: str, *args: object) -> None:
        """Quiet: the test reads what it needs from ``seen``."""


@contextmanager
def smart_http(root: Path, credentials: str) -> Iterator[tuple[str, list[str]]]:
    """Serve the repositories under ``root`` over HTTP on loopback, for ``user:password``
    only; yields the base URL and the Authorization headers received."""
    seen: list[str] = []
    handler = type(
        "Handler", (_SmartHttp,), {"root": root, "credentials": credentials, "seen": seen}
    )
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}", seen
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)
