"""The agent's log sink: bounded batches, numbering without gaps, and backpressure on a
process that prints faster than its lines are shipped (real ``sh`` processes)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from pathlib import Path

import pytest
import uvloop

from opsflow.agent.logsink import BatchingLogSink
from opsflow.status import LogStream
from opsflow.steps.base import CancelSignal
from opsflow.steps.process import run_process
from opsflow.store.logs import LogLine, batch_bytes

pytestmark = pytest.mark.timeout(120)


def test_batches_stay_within_lines_and_bytes_and_number_every_line() -> None:
    sink = BatchingLogSink(batch_lines=100, batch_bytes=1000)
    sink.write_lines(LogStream.STDOUT, [f"line {n}" for n in range(1, 251)])
    sink.write(LogStream.STDERR, "é" * 600)  # 1201 bytes in UTF-8: alone in its batch
    sink.write_lines(LogStream.STDOUT, ["x" * 40] * 30)
    batches = [sink.take()]
    while sink.pending:
        batches.append(sink.take())
    batches.extend(sink.finish())
    lines = [line for batch in batches for line in batch]
    assert [line.seq for line in lines] == list(range(1, 282))
    assert [line.text for line in lines[:250]] == [f"line {n}" for n in range(1, 251)]
    for batch in batches:
        assert len(batch) <= 100
        assert len(batch) == 1 or batch_bytes(batch) <= 1000, batch_bytes(batch)
    assert [batch for batch in batches if batch and batch[0].text.startswith("é")] == [
        [LogLine(251, lines[250].at, LogStream.STDERR, "é" * 600)]
    ]


def test_finish_hands_back_bounded_batches_with_the_truncation_count() -> None:
    sink = BatchingLogSink(cap_bytes=5000, batch_lines=10, batch_bytes=10_000)
    sink.write_lines(LogStream.STDOUT, ["0123456789"] * 1000)  # 11 bytes a line
    batches = sink.finish()
    lines = [line for batch in batches for line in batch]
    assert all(0 < len(batch) <= 10 for batch in batches)
    assert [line.seq for line in lines] == list(range(1, len(lines) + 1))
    assert len(lines) == 5000 // 11 + 2
    assert "log truncated" in lines[-2].text
    assert lines[-1].text == f"[opsflow] {1000 - 5000 // 11 - 1} more log lines were not stored"


@pytest.mark.parametrize("loop_factory", [asyncio.new_event_loop, uvloop.new_event_loop])
def test_a_fast_printer_waits_in_its_pipe_while_the_log_is_slow_to_ship(
    tmp_path: Path, loop_factory: Callable[[], asyncio.AbstractEventLoop]
) -> None:
    """500,000 lines (3.4 MB) into a sink drained 16 KiB at a time, slower than the process
    prints: the backlog never holds more than one batch plus one pipe read (256 KiB), and
    no line is lost or reordered; on the standard loop and on uvloop (whose transports are
    not asyncio's classes)."""
    with asyncio.Runner(loop_factory=loop_factory) as runner:
        runner.run(_fast_printer(tmp_path))


async def _fast_printer(tmp_path: Path) -> None:
    total = 500_000
    sink = BatchingLogSink(batch_lines=2000, batch_bytes=16 * 1024)
    most = 0

    def observe() -> None:
        nonlocal most
        most = max(most, sink.pending_bytes)

    sink.on_line = observe
    shipped: list[LogLine] = []
    run = asyncio.create_task(
        run_process(
            ["sh", "-c", f"seq 1 {total}"],
            cwd=tmp_path,
            env={"PATH": "/usr/bin:/bin"},
            log=sink,
            cancel=CancelSignal(),
            timeout=100,
        )
    )
    began = time.monotonic()
    while not run.done():
        shipped.extend(sink.take())
        await asyncio.sleep(0.001)  # a slow database: one small batch a millisecond at best
    outcome = await run
    assert outcome.returncode == 0
    for batch in sink.finish():
        shipped.extend(batch)
    assert [line.text for line in shipped if line.stream is LogStream.STDOUT] == [
        str(n) for n in range(1, total + 1)
    ]
    assert [line.seq for line in shipped] == list(range(1, len(shipped) + 1))
    assert most <= 16 * 1024 + 256 * 1024 + 64, (most, time.monotonic() - began)
