"""The live stream's cheap parts: a burst of wake-ups reaches a reader once, and nothing a
wake-up announced is lost; the stream's look-back window counts and forgets what it sent."""

from __future__ import annotations

import asyncio

from opsflow.api import events as live
from opsflow.runtime.bus import EventBus


def test_a_burst_of_wake_ups_wakes_the_reader_once_and_a_later_one_again() -> None:
    async def scenario() -> list[bool]:
        bus = EventBus()
        async with bus.watch_execution("e1") as sub:
            for _ in range(50):
                bus.executions_changed(["e1"])
            first = await sub.wait(1.0)
            coalesced = await sub.wait(0.05)  # the 49 others were the same news
            bus.executions_changed(["e1"])  # after the reader cleared: news again
            again = await sub.wait(1.0)
        return [first, coalesced, again]

    assert asyncio.run(scenario()) == [True, False, True]


def test_the_window_counts_what_it_sent_and_forgets_it_after_the_look_back() -> None:
    now = [1000.0]
    window = live.Window(after=10, clock=lambda: now[0])
    for row_id in (12, 11, 14):  # 11 committed after 12: sent later, lower id
        window.sent(row_id)
    assert window.position() == live.Position(floor=10, top=14, sent=3)
    assert window.fresh([{"id": i} for i in (10, 11, 13, 14, 15)]) == [{"id": 13}, {"id": 15}]
    now[0] += live.LOOKBACK_SECONDS / 2
    window.sent(13)
    now[0] += live.LOOKBACK_SECONDS / 2 + 0.1
    window.advance()  # 12, 11 and 14 settled: the floor rises to 14, 13 is below it
    assert window.position() == live.Position(floor=14, top=14, sent=0)
    assert window.fresh([{"id": i} for i in (13, 14, 15)]) == [{"id": 15}]
