"""The one duration parser: ``90s``, ``10m``, ``1h30m``, ``1d``, ``500ms`` or plain seconds.

Every duration in a workflow (timeouts, retry delays, approval waits) goes through
``parse_duration`` so the YAML, the API and the CLI agree on what ``1h30m`` means. Models store
the result as float seconds (the ``Duration`` type), which is what the engine reads.
"""

from __future__ import annotations

import math
import re
from typing import Annotated, Any

from pydantic import BeforeValidator, WithJsonSchema

_UNIT_SECONDS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}
_PART = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h|d)")
_WHOLE = re.compile(r"(?:\d+(?:\.\d+)?(?:ms|s|m|h|d))+")
_NUMBER = re.compile(r"\d+(?:\.\d+)?")
_HINT = "use a number of seconds or units like 90s, 10m, 1h30m, 2h, 1d, 500ms"
# JSON Schema pattern for the text form, so editors flag typos before the loader does.
DURATION_PATTERN = r"^\s*(\d+(\.\d+)?|(\d+(\.\d+)?(ms|s|m|h|d))+)\s*$"


def parse_duration(text: str | int | float) -> float:
    """Seconds in ``text``; raises ValueError saying what is accepted when it is not a duration.

    Units may be combined largest first or in any order (``1h30m``, ``30m1h``); each unit adds.
    Negative durations and booleans are refused: YAML reads ``yes`` as true, which is never
    meant as one second.
    """
    if isinstance(text, bool):
        raise ValueError(f"{text!r} is not a duration; {_HINT}")
    if isinstance(text, int | float):
        if not math.isfinite(text) or text < 0:
            raise ValueError(f"{text!r} is not a duration: it must be zero or more seconds")
        return float(text)
    if not isinstance(text, str):
        raise ValueError(f"{text!r} is not a duration; {_HINT}")
    value = text.strip().lower()
    if _NUMBER.fullmatch(value):
        return float(value)
    if not value or not _WHOLE.fullmatch(value):
        raise ValueError(f"{text!r} is not a duration; {_HINT}")
    return sum(float(n) * _UNIT_SECONDS[unit] for n, unit in _PART.findall(value))


def format_duration(seconds: float) -> str:
    """The short text form of ``seconds`` (``5400`` -> ``1h30m``), for messages and the UI."""
    if seconds != int(seconds):
        return f"{seconds:g}s"
    rest = int(seconds)
    if rest == 0:
        return "0s"
    out = []
    for unit in ("d", "h", "m", "s"):
        size = int(_UNIT_SECONDS[unit])
        if rest >= size:
            out.append(f"{rest // size}{unit}")
            rest %= size
    return "".join(out)


def _validate(value: Any) -> float:
    return parse_duration(value)


Duration = Annotated[
    float,
    BeforeValidator(_validate),
    WithJsonSchema(
        {
            "anyOf": [
                {"type": "string", "pattern": DURATION_PATTERN},
                {"type": "number", "minimum": 0},
            ],
            "examples": ["90s", "10m", "1h30m"],
        }
    ),
]
"""A duration field: accepts what ``parse_duration`` accepts, holds float seconds."""
