"""Short ids: an execution's by any unambiguous prefix of at least six characters, as git
takes commits; an agent's by any unambiguous prefix.

The server resolves an execution's prefix (``GET /executions?id_prefix=``), so the CLI never
lists every execution to find one; agents are few, and their list is read whole.
"""

from __future__ import annotations

import re

from opsflow.cli.client import ApiClient
from opsflow.cli.output import CliError, UsageError

MIN_PREFIX = 6
FULL_ID = re.compile(r"[0-9a-f]{32}")
SHOWN_MATCHES = 10


def execution_id(client: ApiClient, given: str) -> str:
    """The full id of the one execution whose id starts with ``given``.

    Raises UsageError for a prefix under six characters, CliError when no execution or more
    than one matches (naming the ones that do).
    """
    wanted = given.strip().lower()
    if FULL_ID.fullmatch(wanted):
        return wanted
    if len(wanted) < MIN_PREFIX:
        raise UsageError(
            f"execution id {given!r} is too short",
            hint=f"give the full id or at least its first {MIN_PREFIX} characters",
        )
    page = client.get("/executions", params={"id_prefix": wanted, "limit": SHOWN_MATCHES})
    ids = [str(e["id"]) for e in page.get("items", [])]
    if not ids:
        raise CliError(
            f"no execution id starts with {given!r}: `opsflow executions list` shows them"
        )
    if len(ids) > 1:
        total = int(page.get("total", len(ids)))
        more = f" and {total - len(ids)} more" if total > len(ids) else ""
        raise CliError(
            f"execution id {given!r} is ambiguous: it matches {', '.join(ids)}{more}; "
            "give more characters"
        )
    return ids[0]


def agent_id(client: ApiClient, given: str) -> str:
    """The full id of the one agent whose id is ``given`` or starts with it (``agent-3f``:
    agents list shows them; the list is short, so it is read whole).

    Raises CliError when no agent or more than one matches (naming the ones that do)."""
    ids = [str(a["id"]) for a in client.get("/agents")]
    if given in ids:
        return given
    matches = [i for i in ids if i.startswith(given)]
    if not matches:
        raise CliError(f"no agent id starts with {given!r}: `opsflow agents list` shows them")
    if len(matches) > 1:
        shown = ", ".join(matches[:SHOWN_MATCHES])
        more = f" and {len(matches) - SHOWN_MATCHES} more" if len(matches) > SHOWN_MATCHES else ""
        raise CliError(
            f"agent id {given!r} is ambiguous: it matches {shown}{more}; give more characters"
        )
    return matches[0]
