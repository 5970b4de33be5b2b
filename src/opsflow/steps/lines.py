"""Turn a byte stream from a child process into log lines as the bytes arrive.

Bytes are decoded as UTF-8 with replacement characters (a binary blob must not crash a job),
incrementally so a character split across two reads stays whole. A line longer than
``max_line`` characters is cut into several log lines rather than buffered without bound, and a
last line without a newline is still delivered when the stream ends.
"""

from __future__ import annotations

import codecs

from opsflow.status import LogStream

from .base import BulkLogSink, LogSink

MAX_LINE_CHARS = 16 * 1024


class LineSplitter:
    """Feed bytes in, get complete lines written to a ``LogSink`` on ``stream``."""

    def __init__(self, stream: LogStream, log: LogSink, *, max_line: int = MAX_LINE_CHARS) -> None:
        self._stream = stream
        self._log = log
        self._max_line = max_line
        self._decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        self._pending = ""

    def feed(self, data: bytes) -> None:
        """Add bytes; write every line they complete."""
        self._push(self._decoder.decode(data))

    def close(self) -> None:
        """End of stream: flush a partial character and a last line without a newline."""
        self._push(self._decoder.decode(b"", final=True))
        if self._pending:
            self._emit([self._pending])
            self._pending = ""

    def _push(self, text: str) -> None:
        if not text:
            return
        buffer = self._pending + text
        *complete, self._pending = buffer.split("\n")
        if complete:
            self._emit(complete)
        while len(self._pending) > self._max_line:
            self._log.write(self._stream, self._pending[: self._max_line])
            self._pending = self._pending[self._max_line :]

    def _emit(self, lines: list[str]) -> None:
        """Write complete lines, all at once when the sink takes lines in bulk (one read of
        a chatty process carries thousands of them)."""
        out: list[str] = []
        limit = self._max_line
        for line in lines:
            if line.endswith("\r"):
                line = line[:-1]
            if len(line) <= limit:
                out.append(line)
            else:
                out.extend(line[start : start + limit] for start in range(0, len(line), limit))
        if isinstance(self._log, BulkLogSink):
            self._log.write_lines(self._stream, out)
        else:
            for line in out:
                self._log.write(self._stream, line)
