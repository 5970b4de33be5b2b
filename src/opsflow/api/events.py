"""Live events of an execution as server-sent events.

Status changes, step and job updates, engine log entries and log lines, interleaved by time,
resumable with ``Last-Event-ID`` (``<event id>-<line id>``), closed with an ``end`` event when
the run has ended. Rows are read from the database, so a viewer misses nothing a commit
recorded; the bus only says when to look.

On PostgreSQL, ids come from sequences and two transactions can commit out of id order, so
"everything after the last id sent" could skip a row that commits late. A live stream
therefore looks at a short window behind its position: it counts the rows stored there (an
index range count) and re-reads them only when there are more than it sent, skipping the ids
it already sent; otherwise it reads only what lies past its position (a wide fan-out's
viewer would else decode every event of the last seconds again at each commit).

A wide run commits many times a second; a stream reads at most every ``READ_INTERVAL``, so a
burst of commits costs one read (and a viewer sees news at most that much later).
"""

from __future__ import annotations

import asyncio
import heapq
import json
import time
from collections import deque
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass
from typing import Any

from fastapi import APIRouter, Depends, Header, Query, Request
from fastapi.responses import StreamingResponse

from opsflow.api.execution_models import LogLineOut, iso
from opsflow.api.executions import host_of
from opsflow.api.limits import INT_MAX
from opsflow.api.security import require
from opsflow.api.services import services_of
from opsflow.auth.credentials import Principal
from opsflow.auth.permissions import Permission
from opsflow.errors import InvalidInput, Problem
from opsflow.store import logs as logs_store
from opsflow.store import runs as runs_store

router = APIRouter(tags=["executions"])

LOOKBACK_SECONDS = 5.0
BATCH = 1000
READ_INTERVAL = 0.1  # seconds: the least time between two reads of one stream


@dataclass(frozen=True)
class Position:
    """Where a `Window` stands: its floor, the highest id sent, how many ids above the floor
    were sent (each at most ``top``)."""

    floor: int
    top: int
    sent: int

    def read_after(self, count: Callable[[int, int], int]) -> int:
        """The id to read after, given ``count(after, upto)``, the rows stored in that range:
        ``top`` when the rows in ``(floor, top]`` are exactly those sent (none committed late
        among them), else ``floor`` (`Window.fresh` then drops what was sent)."""
        if self.top <= self.floor or count(self.floor, self.top) == self.sent:
            return self.top
        return self.floor


class Window:
    """The ids sent recently, and the floor below which everything was sent long enough
    ago that no earlier id can still be committing. Each call costs O(log n) amortised in
    the ids of the look-back window (a wide fan-out sends thousands in it)."""

    def __init__(self, after: int, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self.floor = after
        self.top = after
        self._recent: set[int] = set()  # the ids sent above the floor
        self._heap: list[int] = []  # the same ids, lowest first
        self._times: deque[tuple[float, int]] = deque()  # (when, id), in the order sent

    def fresh(self, rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
        return [r for r in rows if r["id"] not in self._recent and r["id"] > self.floor]

    def position(self) -> Position:
        self._drop_settled()
        return Position(self.floor, self.top, len(self._recent))

    def sent(self, row_id: int) -> None:
        self._recent.add(row_id)
        heapq.heappush(self._heap, row_id)
        self._times.append((self._clock(), row_id))
        self.top = max(self.top, row_id)

    def advance(self) -> None:
        old = self._clock() - LOOKBACK_SECONDS
        times = self._times
        while times and times[0][0] < old:
            self.floor = max(self.floor, times.popleft()[1])
        self._drop_settled()

    def _drop_settled(self) -> None:
        heap = self._heap
        while heap and heap[0] <= self.floor:
            self._recent.discard(heapq.heappop(heap))


def parse_cursor(value: str | None) -> tuple[int, int]:
    """``<a>-<b>`` (an SSE id this server sent) as two ids; (0, 0) when absent."""
    if not value:
        return 0, 0
    try:
        events, lines = (int(part) for part in value.split("-", 1))
        if not (0 <= events <= INT_MAX and 0 <= lines <= INT_MAX):
            raise ValueError(value)
        return events, lines
    except ValueError as exc:
        msg = f"{value!r} is not an id this stream sent (it looks like 12-34)"
        raise InvalidInput(
            f"Last-Event-ID: {msg}", problems=[Problem("header.Last-Event-ID", msg)]
        ) from exc


def _merge(
    events: list[dict[str, Any]], lines: list[dict[str, Any]]
) -> Iterator[tuple[bool, dict[str, Any]]]:
    """Interleave events and log lines by time, so a step's lines come between its start and
    its end, while each keeps its own id order."""
    i = j = 0
    while i < len(events) or j < len(lines):
        if j >= len(lines) or (i < len(events) and events[i]["at"] <= lines[j]["at"]):
            yield False, events[i]
            i += 1
        else:
            yield True, lines[j]
            j += 1


def sse(event_id: str, kind: str, data: Any) -> str:
    """One server-sent event."""
    return f"id: {event_id}\nevent: {kind}\ndata: {json.dumps(data, default=str)}\n\n"


@router.get(
    "/executions/{execution_id}/events",
    response_class=StreamingResponse,
    responses={
        200: {
            "content": {"text/event-stream": {"schema": {"type": "string"}}},
            "description": "Server-sent events until the run ends (then an `end` event); "
            "a `log` event's data is a LogLineOut (with its `stream` and `level`).",
        }
    },
)
async def stream_events(
    execution_id: str,
    request: Request,
    last_event_id: str | None = Header(None, alias="Last-Event-ID"),
    after: str | None = Query(None, description="Resume after this event id (as Last-Event-ID)."),
    _p: Principal = Depends(require(Permission.EXECUTIONS_READ)),
) -> StreamingResponse:
    """Server-sent events: status changes, step and job updates, engine log entries and log
    lines, in commit order; resumable with `Last-Event-ID`; closed when the run ends."""
    ev_start, line_start = parse_cursor(last_event_id or after)
    services = services_of(request)
    host = host_of(services)
    with services.db.read() as session:
        runs_store.get_execution(session, execution_id)

    def read(ev: Position, ln: Position) -> tuple[list[dict[str, Any]], list[dict[str, Any]], bool]:
        with services.db.read() as session:
            # The status first: once it reads terminal, every row of the run is committed.
            terminal = runs_store.execution_status(session, execution_id).terminal
            after = ev.read_after(lambda a, b: runs_store.count_events(session, execution_id, a, b))
            events = runs_store.events_after(session, execution_id, after, limit=BATCH)
            after = ln.read_after(lambda a, b: logs_store.count_lines(session, execution_id, a, b))
            lines = logs_store.query(session, execution_id, after_id=after, limit=BATCH)
        return events, lines, terminal

    async def gen() -> AsyncIterator[str]:
        evw, lnw = Window(ev_start), Window(line_start)
        loop = asyncio.get_running_loop()
        next_read = 0.0
        async with host.bus.watch_execution(execution_id) as sub:
            while True:
                # A burst of commits wakes the stream once: what commits during the pause
                # is read with the rest (wake-ups before the `clear` are in the read).
                pause = next_read - loop.time()
                if pause > 0:
                    await asyncio.sleep(pause)
                sub.clear()
                next_read = loop.time() + READ_INTERVAL
                evw.advance()
                lnw.advance()
                events, lines, terminal = await asyncio.to_thread(
                    read, evw.position(), lnw.position()
                )
                full = len(events) >= BATCH or len(lines) >= BATCH
                for is_line, item in _merge(evw.fresh(events), lnw.fresh(lines)):
                    if not is_line:
                        evw.sent(item["id"])
                        data = {**item["data"], "at": iso(item["at"])}
                        yield sse(f"{evw.top}-{lnw.top}", item["kind"], data)
                    else:
                        lnw.sent(item["id"])
                        line = LogLineOut.of(item).model_dump(mode="json")
                        yield sse(f"{evw.top}-{lnw.top}", "log", line)
                if full:
                    # More than a batch behind: move the floors up to what was just sent,
                    # and read on at once.
                    evw.floor, lnw.floor = evw.top, lnw.top
                    next_read = 0.0
                    continue
                if terminal:
                    yield sse(f"{evw.top}-{lnw.top}", "end", {"execution_id": execution_id})
                    return
                # The server is stopping (it waits for every open request): the client's
                # EventSource reconnects, from its Last-Event-ID, to whichever server answers.
                if host.bus.stopping:
                    return
                if not await sub.wait(15.0):
                    # A client that hung up ends the response at once (the response listens
                    # for it, ASGI spec < 2.4) or at the next write: looked at when idle only.
                    if await request.is_disconnected():
                        return
                    yield ": keep-alive\n\n"

    return StreamingResponse(
        gen(),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
    )
