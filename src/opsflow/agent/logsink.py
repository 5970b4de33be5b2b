"""A job's log on its way to the server: numbered, batched, capped.

Executors write lines synchronously from the event loop; this sink numbers them (``seq`` per
job, so the server can see a gap), keeps them in memory, and a flusher task ships them in
batches, so a chatty script costs one transaction per batch rather than one per line. Past the
per-job cap one visible system line says the log was truncated, and later lines are counted,
not kept.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from opsflow.status import LogStream
from opsflow.store.logs import LogLine

DEFAULT_CAP_BYTES = 10 * 1024 * 1024


class BatchingLogSink:
    """Implements ``opsflow.steps.base.LogSink``."""

    def __init__(
        self,
        *,
        cap_bytes: int = DEFAULT_CAP_BYTES,
        mask: Callable[[str], str] | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._cap = cap_bytes
        self._mask = mask
        self._clock = clock
        self._seq = 0
        self._bytes = 0
        self._dropped = 0
        self._truncated = False
        self._pending: list[LogLine] = []
        self.on_line: Callable[[], None] | None = None  # the flusher's nudge

    def write(self, stream: LogStream, text: str) -> None:
        if self._mask is not None:
            text = self._mask(text)
        if self._truncated:
            self._dropped += 1
            return
        size = len(text.encode("utf-8", "replace")) + 1
        if self._bytes + size > self._cap:
            self._truncated = True
            self._dropped += 1
            self._append(
                LogStream.SYSTEM,
                f"[opsflow] log truncated: this job reached its {self._cap} byte log limit; "
                "later lines are not stored",
            )
            return
        self._bytes += size
        self._append(stream, text)

    def _append(self, stream: LogStream, text: str) -> None:
        self._seq += 1
        self._pending.append(LogLine(seq=self._seq, at=self._clock(), stream=stream, text=text))
        if self.on_line is not None:
            self.on_line()

    def take(self) -> list[LogLine]:
        """Hand over every line not yet shipped."""
        batch, self._pending = self._pending, []
        return batch

    def finish(self) -> list[LogLine]:
        """The last batch, with the count of dropped lines when the log was truncated."""
        if self._truncated and self._dropped > 1:
            self._seq += 1
            self._pending.append(
                LogLine(
                    seq=self._seq,
                    at=self._clock(),
                    stream=LogStream.SYSTEM,
                    text=f"[opsflow] {self._dropped - 1} more log lines were not stored",
                )
            )
        return self.take()

    @property
    def pending(self) -> int:
        return len(self._pending)
