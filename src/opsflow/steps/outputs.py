"""Read the outputs a script wrote to the file named by ``$OPSFLOW_OUTPUT``.

Two forms, chosen by the first non-blank character:

- one JSON object: ``{"version": "1.4.2", "replicas": 3}`` (values keep their JSON types);
- lines of ``key=value`` (values are strings, everything after the first ``=``), plus
  ``key<<DELIMITER`` ... ``DELIMITER`` for a multi-line value. Blank lines are ignored and a
  later key replaces an earlier one, so a script can append as it goes.

Malformed content is an error naming the line, never a silently empty output: a later step's
template would otherwise fail far from the cause.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

MAX_OUTPUT_BYTES = 1024 * 1024
_KEY = re.compile(r"[A-Za-z_][A-Za-z0-9_-]*\Z")


class OutputFileError(Exception):
    """The output file cannot be read as outputs; the message says where and how to fix it."""


def read_outputs(path: Path) -> dict[str, Any]:
    """Parse the output file at ``path`` (missing or empty means no outputs)."""
    try:
        size = path.stat().st_size
    except FileNotFoundError:
        return {}
    if size > MAX_OUTPUT_BYTES:
        raise OutputFileError(
            f"OPSFLOW_OUTPUT holds {size} bytes; the limit is {MAX_OUTPUT_BYTES} bytes "
            "(write large data to a file instead)"
        )
    text = path.read_bytes().decode("utf-8", errors="replace")
    return parse_outputs(text)


def parse_outputs(text: str) -> dict[str, Any]:
    """Parse output-file content in either form (see the module docstring)."""
    if text.lstrip().startswith("{"):
        return _parse_json(text)
    return _parse_lines(text)


def _parse_json(text: str) -> dict[str, Any]:
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        raise OutputFileError(
            f"OPSFLOW_OUTPUT line {exc.lineno}: invalid JSON ({exc.msg}); write one JSON object "
            "or key=value lines"
        ) from exc
    if not isinstance(value, dict):
        raise OutputFileError("OPSFLOW_OUTPUT must hold one JSON object, not a list or value")
    return value


def _parse_lines(text: str) -> dict[str, Any]:
    outputs: dict[str, Any] = {}
    lines = text.split("\n")
    index = 0
    while index < len(lines):
        number = index + 1
        line = lines[index].removesuffix("\r")
        index += 1
        if not line.strip():
            continue
        if "=" in line and ("<<" not in line or line.index("=") < line.index("<<")):
            key, value = line.split("=", 1)
            outputs[_key(key, number)] = value
            continue
        if "<<" in line:
            key, delimiter = line.split("<<", 1)
            delimiter = delimiter.strip()
            if not delimiter:
                raise OutputFileError(f"OPSFLOW_OUTPUT line {number}: `key<<` needs a delimiter")
            body: list[str] = []
            while index < len(lines) and lines[index].removesuffix("\r") != delimiter:
                body.append(lines[index].removesuffix("\r"))
                index += 1
            if index == len(lines):
                raise OutputFileError(
                    f"OPSFLOW_OUTPUT line {number}: no closing line {delimiter!r} for "
                    f"{key.strip()!r}"
                )
            index += 1  # the delimiter line
            outputs[_key(key, number)] = "\n".join(body)
            continue
        raise OutputFileError(
            f"OPSFLOW_OUTPUT line {number}: expected key=value or key<<DELIMITER, got {line[:60]!r}"
        )
    return outputs


def _key(raw: str, number: int) -> str:
    key = raw.strip()
    if not _KEY.match(key):
        raise OutputFileError(
            f"OPSFLOW_OUTPUT line {number}: {key!r} is not a valid output name; use letters, "
            "digits, _ and - (not first a digit)"
        )
    return key
