"""A job's log on its way to the server: numbered, batched, capped, flow-controlled.

Executors write lines synchronously from the event loop, a read's worth at a time; this sink
numbers them (``seq`` per job, so the server can see a gap), keeps them in memory, and a
flusher task ships them in batches of at most ``MAX_BATCH_LINES`` lines and ``MAX_BATCH_BYTES``
bytes, so a chatty script costs one bounded transaction per batch rather than one per line (or
one huge one). When the backlog passes one batch the sink says it is congested and the
executor stops reading the process's pipes until the flusher has drained it, so memory stays
flat however fast a step prints. Past the per-job cap one visible system line says the log
was truncated, and later lines are counted, not kept.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from opsflow.agent.protocol import MAX_BATCH_BYTES, MAX_BATCH_LINES, LogLine, level_of
from opsflow.status import LogLevel, LogStream
from opsflow.words import counted

DEFAULT_CAP_BYTES = 10 * 1024 * 1024


class BatchingLogSink:
    """Implements ``LogSink``, ``BulkLogSink`` and ``FlowControl`` of ``opsflow.steps.base``."""

    def __init__(
        self,
        *,
        cap_bytes: int = DEFAULT_CAP_BYTES,
        mask: Callable[[str], str] | None = None,
        mask_all: Callable[[list[str]], list[str]] | None = None,
        clock: Callable[[], float] = time.time,
        batch_lines: int = MAX_BATCH_LINES,
        batch_bytes: int = MAX_BATCH_BYTES,
        first_seq: int = 1,
    ) -> None:
        self._cap = cap_bytes
        self._mask = mask
        # Masks a write's lines together (`Masker.mask_all`: one scan when none holds a
        # secret); when given, it is used instead of ``mask``.
        self._mask_all = mask_all
        self._clock = clock
        self._batch_lines = batch_lines
        self._batch_bytes = batch_bytes
        self._seq = first_seq - 1  # above what an earlier claim of the job stored
        self._bytes = 0
        self._dropped = 0
        self._truncated = False
        self._pending: list[LogLine] = []
        self._sizes: list[int] = []  # UTF-8 bytes (+1) of each pending line
        self._pending_bytes = 0
        self._drained: list[Callable[[], None]] = []
        self.on_line: Callable[[], None] | None = None  # the flusher's nudge

    def write(self, stream: LogStream, text: str, level: LogLevel | None = None) -> None:
        self.write_lines(stream, [text], level)

    def write_lines(
        self, stream: LogStream, texts: list[str], level: LogLevel | None = None
    ) -> None:
        """Number and keep lines of one stream (masked first), up to the cap; ``level`` is
        kept on system lines only (``info`` when not given)."""
        level = level_of(stream, level)
        at = self._clock()  # lines of one read arrive together
        mask = self._mask
        if self._mask_all is not None:
            texts, mask = self._mask_all(texts), None
        pending, sizes = self._pending, self._sizes
        seq, stored, added = self._seq, self._bytes, 0
        for text in texts:
            if mask is not None:
                text = mask(text)
            if self._truncated:
                self._dropped += 1
                continue
            size = (len(text) if text.isascii() else len(text.encode("utf-8", "replace"))) + 1
            if stored + size > self._cap:
                self._truncated = True
                self._dropped += 1
                text = (
                    f"[opsflow] log truncated: this job reached its {self._cap} byte log "
                    "limit; later lines are not stored"
                )
                stream, level, size = LogStream.SYSTEM, LogLevel.WARN, len(text) + 1
            else:
                stored += size
            seq += 1
            pending.append(LogLine(seq, at, stream, text, level))
            sizes.append(size)
            added += size
        self._seq, self._bytes = seq, stored
        self._pending_bytes += added
        if self.on_line is not None:
            self.on_line()

    def _append(self, stream: LogStream, text: str, level: LogLevel | None = None) -> None:
        size = len(text.encode("utf-8", "replace")) + 1
        self._seq += 1
        self._pending.append(
            LogLine(self._seq, self._clock(), stream, text, level_of(stream, level))
        )
        self._sizes.append(size)
        self._pending_bytes += size
        if self.on_line is not None:
            self.on_line()

    def take(self) -> list[LogLine]:
        """The oldest lines not yet shipped, at most one batch (lines and bytes within the
        limits; a line is never split, and one line always fits, lines being far shorter)."""
        count = weight = 0
        for size in self._sizes:
            if count >= self._batch_lines or (count and weight + size > self._batch_bytes):
                break
            count += 1
            weight += size
        batch = self._pending[:count]
        del self._pending[:count]
        del self._sizes[:count]
        self._pending_bytes -= weight
        if self._drained and not self.congested:
            callbacks, self._drained = self._drained, []
            for callback in callbacks:
                callback()
        return batch

    def finish(self) -> list[list[LogLine]]:
        """Every line not yet shipped, as batches within the limits (at least one, maybe
        empty), with the count of dropped lines when the log was truncated."""
        if self._truncated and self._dropped > 1:
            dropped = self._dropped - 1
            self._append(
                LogStream.SYSTEM,
                f"[opsflow] {counted(dropped, 'more log line')} "
                f"{'was' if dropped == 1 else 'were'} not stored",
                LogLevel.WARN,
            )
        batches = [self.take()]
        while self._pending:
            batches.append(self.take())
        return batches

    @property
    def pending(self) -> int:
        return len(self._pending)

    @property
    def pending_bytes(self) -> int:
        """What the waiting lines weigh (as ``MAX_BATCH_BYTES`` counts)."""
        return self._pending_bytes

    @property
    def full(self) -> bool:
        """At least one whole batch is waiting."""
        return len(self._pending) >= self._batch_lines or self._pending_bytes >= self._batch_bytes

    @property
    def congested(self) -> bool:
        """More than a batch waits: the producer should pause until ``when_drained``. One
        waiting batch keeps the flusher busy (the next is read while one is stored); more only
        adds to what is left to store when the step ends (its "stored after" figure in
        benchmarks/README.md)."""
        return len(self._pending) > self._batch_lines or self._pending_bytes > self._batch_bytes

    def when_drained(self, callback: Callable[[], None]) -> None:
        """Call ``callback`` once the backlog is back under the high-water mark."""
        if not self.congested:
            callback()
        else:
            self._drained.append(callback)
