"""Reading an execution's server-sent events from the CLI, resuming after a dropped connection."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from opsflow import __version__
from opsflow.cli.client import Connection
from opsflow.cli.output import CliError


@dataclass(frozen=True)
class Event:
    id: str
    kind: str
    data: dict[str, Any]


IDLE = "idle"


def follow(
    connection: Connection, execution_id: str, *, after_line: int = 0, retries: int = 20
) -> Iterator[Event]:
    """Every event until the stream says ``end``; reconnects with ``Last-Event-ID``.

    ``after_line`` skips the log lines up to that id (those a caller already printed). While
    the run is quiet the server sends keep-alives; each is yielded as an ``idle`` event, so a
    watcher can look at what the run waits for.
    """
    import httpx  # not at import: `opsflow server` loads the CLI's modules (see cli/client.py)

    headers = {"Accept": "text/event-stream", "User-Agent": f"opsflow-cli/{__version__}"}
    if connection.token:
        headers["Authorization"] = f"Bearer {connection.token}"
    last_id = f"0-{after_line}" if after_line else ""
    failures = 0
    url = f"{connection.url}/api/v1/executions/{execution_id}/events"
    while True:
        if last_id:
            headers["Last-Event-ID"] = last_id
        try:
            with httpx.stream("GET", url, headers=headers, timeout=httpx.Timeout(30, read=60)) as r:
                if r.status_code >= 400:
                    r.read()
                    raise CliError(
                        f"cannot follow execution {execution_id}: "
                        f"HTTP {r.status_code}: {r.text[:300]}"
                    )
                failures = 0
                kind, data, eid = "message", "", ""
                for line in r.iter_lines():
                    if line == "":
                        if data:
                            if eid:
                                last_id = eid
                            event = Event(eid, kind, json.loads(data))
                            if event.kind == "end":
                                return
                            yield event
                        kind, data, eid = "message", "", ""
                    elif line.startswith(":"):
                        yield Event("", IDLE, {})
                    else:
                        field, _, value = line.partition(":")
                        value = value[1:] if value.startswith(" ") else value
                        if field == "event":
                            kind = value
                        elif field == "data":
                            data = f"{data}\n{value}" if data else value
                        elif field == "id":
                            eid = value
        except httpx.TransportError as exc:
            failures += 1
            if failures > retries:
                raise CliError(f"lost the connection to {connection.url}: {exc}") from exc
            time.sleep(min(5.0, 0.2 * failures))
