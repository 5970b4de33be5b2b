"""Splitting a child's byte stream into log lines (pure)."""

from __future__ import annotations

from opsflow.status import LogLevel, LogStream
from opsflow.steps.lines import LineSplitter


class Lines:
    def __init__(self) -> None:
        self.got: list[str] = []

    def write(self, stream: LogStream, text: str, level: LogLevel | None = None) -> None:
        assert stream is LogStream.STDERR
        self.got.append(text)


def test_lines_are_written_as_they_complete_and_crlf_is_trimmed() -> None:
    sink = Lines()
    splitter = LineSplitter(LogStream.STDERR, sink)
    splitter.feed(b"one\r\ntw")
    assert sink.got == ["one"]
    splitter.feed(b"o\n\nthree")
    assert sink.got == ["one", "two", ""]
    splitter.close()
    assert sink.got == ["one", "two", "", "three"]


def test_multibyte_character_split_across_reads_stays_whole() -> None:
    sink = Lines()
    splitter = LineSplitter(LogStream.STDERR, sink)
    data = "naïve ☃\n".encode()
    for i in range(len(data)):
        splitter.feed(data[i : i + 1])
    splitter.close()
    assert sink.got == ["naïve ☃"]


def test_invalid_utf8_becomes_replacement_characters() -> None:
    sink = Lines()
    splitter = LineSplitter(LogStream.STDERR, sink)
    splitter.feed(b"ok \xff\xfe\n\xc3")
    splitter.close()
    assert sink.got == ["ok \ufffd\ufffd", "\ufffd"]


def test_long_line_is_cut_into_bounded_pieces_without_waiting_for_its_end() -> None:
    sink = Lines()
    splitter = LineSplitter(LogStream.STDERR, sink, max_line=10)
    splitter.feed(b"a" * 25)
    assert sink.got == ["a" * 10, "a" * 10]
    splitter.feed(b"bb\n")
    assert sink.got == ["a" * 10, "a" * 10, "aaaaabb"]
    splitter.close()
    assert len(sink.got) == 3
