"""Secrets on their way to a job: placeholders at render time, values only at claim time.

Templates see ``secrets.NAME`` as an opaque placeholder, so the rendered job spec that is
stored in the database holds placeholders, never values. When an agent claims the job, the
server decrypts the secrets the spec refers to and substitutes them into the copy it hands
over, together with the values themselves so the agent can mask them in everything it sends
back. A secret must be used as a whole value: a template that transforms one (a filter, a
slice) would transform the placeholder, so that is refused with a clear message.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import Any

from opsflow.errors import TemplateError

_MARK = "\x1fopsflow-secret:"
_PLACEHOLDER = re.compile("\x1fopsflow-secret:([A-Za-z_][A-Za-z0-9_]*)\x1f")

# The key under which a claimed job's in-memory spec carries the values to mask. It exists
# only in the copy handed to the agent, never in the stored spec.
VALUES_KEY = "_secret_values"


def placeholders(names: Iterable[str]) -> dict[str, str]:
    """What ``secrets`` is in the template context: name -> placeholder."""
    return {name: f"{_MARK}{name}\x1f" for name in names}


def _strings(obj: Any) -> Iterable[str]:
    if isinstance(obj, str):
        yield obj
    elif isinstance(obj, Mapping):
        for k, v in obj.items():
            yield from _strings(k)
            yield from _strings(v)
    elif isinstance(obj, (list, tuple)):
        for v in obj:
            yield from _strings(v)


def referenced(obj: Any) -> set[str]:
    """The secret names a rendered config refers to."""
    return {m.group(1) for s in _strings(obj) for m in _PLACEHOLDER.finditer(s)}


def check_whole(obj: Any, where: str = "") -> None:
    """Refuse a config in which a secret was transformed rather than used as a value."""
    for s in _strings(obj):
        rest = _PLACEHOLDER.sub("", s)
        # A placeholder written through JSON (inside a list or mapping) loses its \x1f marks.
        if "opsflow-secret:" in rest.lower() or "\x1f" in rest:
            raise TemplateError(
                f"{where + ': ' if where else ''}a secret can only be used as a whole value "
                "(as {{ secrets.NAME }}), not through a filter, a slice or a method"
            )


def substitute(obj: Any, values: Mapping[str, str]) -> Any:
    """The config with every placeholder replaced by its value."""
    if isinstance(obj, str):
        return _PLACEHOLDER.sub(lambda m: values[m.group(1)], obj) if _MARK in obj else obj
    if isinstance(obj, Mapping):
        return {substitute(k, values): substitute(v, values) for k, v in obj.items()}
    if isinstance(obj, list):
        return [substitute(v, values) for v in obj]
    if isinstance(obj, tuple):
        return tuple(substitute(v, values) for v in obj)
    return obj
