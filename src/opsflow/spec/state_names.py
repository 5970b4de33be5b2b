"""Names of the Terraform states opsflow keeps: what a name may be, and how a step's is built.

A state name is segments of letters, digits, ``.``, ``_`` and ``-`` (each starting with a
letter or digit) joined by ``/``, at most ``MAX_LENGTH`` characters, and no segment is a word
of the state API's paths (``versions``, ``force-unlock``), so every URL has one meaning.

A terraform step's state, unless its code declares its own backend, is
``<workflow id>/<source dir or git path, '/' replaced by '-', or 'root'>/<workspace or
'default'>``, built from the step's *rendered* fields: a templated ``workspace`` names the
state of the value it renders to. The directory part is made into a valid segment (other
characters become ``-``); a workspace is the user's own word and is refused when it is not a
valid segment, never changed.
"""

from __future__ import annotations

import hashlib
import posixpath
import re
from collections.abc import Mapping
from typing import Any

MAX_LENGTH = 300
RESERVED = frozenset({"versions", "force-unlock"})
_SEGMENT = r"[A-Za-z0-9][A-Za-z0-9._-]*"
_NAME = re.compile(rf"{_SEGMENT}(/{_SEGMENT})*\Z")
_ONE_SEGMENT = re.compile(rf"{_SEGMENT}\Z")
_OTHER = re.compile(r"[^A-Za-z0-9._-]+")
# A directory part longer than this is shortened with a hash, so the whole name always fits.
_PART_LENGTH = 120
_WORKSPACE_LENGTH = 100


def name_problem(name: str) -> str | None:
    """Why ``name`` is not a valid state name, or None when it is."""
    if len(name) > MAX_LENGTH or not _NAME.match(name):
        return (
            f"invalid state name {name!r}: use segments of letters, digits, '.', '_' and '-' "
            f"separated by '/', at most {MAX_LENGTH} characters"
        )
    if RESERVED & set(name.split("/")):
        return (
            f"invalid state name {name!r}: 'versions' and 'force-unlock' are "
            "reserved words of the API and cannot be a segment"
        )
    return None


def workspace_problem(workspace: str) -> str | None:
    """Why ``workspace`` cannot be part of a state name, or None when it can."""
    if len(workspace) > _WORKSPACE_LENGTH or not _ONE_SEGMENT.match(workspace):
        return (
            f"{workspace!r} is not a valid workspace name: use letters, digits, '.', '_' and "
            f"'-', starting with a letter or digit, at most {_WORKSPACE_LENGTH} characters"
        )
    if workspace in RESERVED:
        return f"{workspace!r} is a reserved word of the state API; choose another workspace name"
    return None


def _directory_part(source: Mapping[str, Any]) -> str:
    where = source.get("dir") or source.get("path") or ""
    normal = posixpath.normpath(str(where)).strip("/") if where else ""
    if normal in ("", "."):
        return "root"
    part = _OTHER.sub("-", normal.replace("/", "-")).lstrip("._-") or "root"
    if len(part) > _PART_LENGTH:
        digest = hashlib.sha256(normal.encode()).hexdigest()[:8]
        part = f"{part[: _PART_LENGTH - 9]}-{digest}"
    return f"{part}_" if part in RESERVED else part


def state_name(workflow_id: str, source: Any, workspace: Any) -> str:
    """The state of a terraform step of ``workflow_id`` with these rendered ``source`` and
    ``workspace`` values; ``ValueError`` naming the fix when the workspace cannot be used."""
    ws = "default" if workspace is None or workspace == "" else str(workspace)
    problem = workspace_problem(ws)
    if problem is not None:
        raise ValueError(problem)
    where = _directory_part(source if isinstance(source, Mapping) else {})
    return f"{workflow_id}/{where}/{ws}"
