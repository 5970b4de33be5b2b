"""Parsing of the $OPSFLOW_OUTPUT file (pure)."""

from __future__ import annotations

from pathlib import Path

import pytest

from opsflow.steps.outputs import MAX_OUTPUT_BYTES, OutputFileError, parse_outputs, read_outputs


def test_key_value_lines_later_keys_win_and_values_keep_equals_signs() -> None:
    text = "a=1\n\nurl=https://x/?q=1&r=2\r\na=2\n"
    assert parse_outputs(text) == {"a": "2", "url": "https://x/?q=1&r=2"}


def test_heredoc_value_spans_lines() -> None:
    text = "notes<<END\nfirst\n\nthird=3\nEND\nafter=yes\n"
    assert parse_outputs(text) == {"notes": "first\n\nthird=3", "after": "yes"}


def test_json_object_keeps_types() -> None:
    assert parse_outputs('  {"n": 1, "ok": false, "l": [1]}\n') == {"n": 1, "ok": False, "l": [1]}


def test_empty_content_means_no_outputs() -> None:
    assert parse_outputs("") == {}
    assert parse_outputs("\n\n") == {}


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("ok=1\nnot a pair\n", "line 2: expected key=value or key<<DELIMITER"),
        ("1st=x\n", "line 1: '1st' is not a valid output name"),
        ("=x\n", "line 1: '' is not a valid output name"),
        ("body<<EOF\nnever closed\n", "line 1: no closing line 'EOF' for 'body'"),
        ("body<<\n", "line 1: `key<<` needs a delimiter"),
        ('{"a": 1,}', "line 1: invalid JSON"),
        ("[1, 2]", "expected key=value"),
    ],
)
def test_malformed_content_names_the_line(text: str, message: str) -> None:
    with pytest.raises(OutputFileError, match="OPSFLOW_OUTPUT") as info:
        parse_outputs(text)
    assert message in str(info.value)


def test_two_json_objects_are_refused() -> None:
    with pytest.raises(OutputFileError, match="line 2: invalid JSON"):
        parse_outputs('{"x": 1}\n{"y": 2}')


def test_missing_file_means_no_outputs_and_huge_file_is_refused(tmp_path: Path) -> None:
    assert read_outputs(tmp_path / "absent") == {}
    big = tmp_path / "big"
    big.write_bytes(b"a=" + b"x" * MAX_OUTPUT_BYTES)
    with pytest.raises(OutputFileError, match="the limit is"):
        read_outputs(big)
