"""An agent's identity that outlives its process, kept in a file.

Leases name the agent that holds them. With a fresh name per process, a restarted agent could
not tell its predecessor's attempts from anyone else's and they would wait out their leases; with
one shared name (``local``), several servers on one database would take each other's attempts
for their own. So each agent keeps its name in a file of its own directory (the server's local
agent: ``<data_dir>/agent-id``) and, once restarted, declares what is still leased to that name
lost at once.
"""

from __future__ import annotations

import os
import re
import uuid
from pathlib import Path

ID_FILE = "agent-id"
_VALID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$")


def persistent_agent_id(directory: Path, *, prefix: str = "local") -> str:
    """The id kept in ``directory/agent-id``, created (``<prefix>-<12 hex digits>``) on first use.

    Raises ``ValueError`` naming the file when it holds something that is not an agent id.
    """
    path = directory / ID_FILE
    try:
        text = path.read_text(encoding="utf-8").strip()
    except FileNotFoundError:
        text = ""
    if text:
        if not _VALID.match(text):
            raise ValueError(
                f"{path} does not hold an agent id ({text[:40]!r}); remove it to get a new one"
            )
        return text
    directory.mkdir(parents=True, exist_ok=True)
    new = f"{prefix}-{uuid.uuid4().hex[:12]}"
    partial = directory / f".{ID_FILE}.{os.getpid()}"
    partial.write_text(new + "\n", encoding="utf-8")
    try:
        os.link(partial, path)  # first writer wins, even if two processes start at once
    except FileExistsError:
        return persistent_agent_id(directory, prefix=prefix)
    finally:
        partial.unlink(missing_ok=True)
    return new
