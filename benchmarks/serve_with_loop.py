"""``opsflow server`` on a chosen event loop, for comparing loops: ``serve_with_loop.py LOOP
server [options]`` with LOOP ``asyncio`` or ``uvloop``. Used by server_bench.py ``--loop``."""

from __future__ import annotations

import sys

from opsflow.api import server
from opsflow.cli.main import app

if __name__ == "__main__":
    server.EVENT_LOOP = sys.argv.pop(1)
    app()
