"""Reading a workflow definition from a request: YAML, JSON, or a form with the directory.

Every form ends in the spec loader, so the API refuses exactly what `opsflow validate` refuses,
with the same located problems. The id in the URL must match the definition's.
"""

from __future__ import annotations

import asyncio
import json
import multiprocessing
import os
import re
import tempfile
import threading
import time
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fastapi import Request
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import UploadFile

from opsflow.api.bundle_archive import read_bundle_archive
from opsflow.api.problems import UnsupportedMediaType
from opsflow.errors import InvalidInput, OpsflowError, PayloadTooLarge, Problem, SpecInvalid
from opsflow.spec.loader import canonical, load_definition, load_workflow
from opsflow.spec.yaml_source import dump_yaml

YAML_TYPES = frozenset(
    {"application/yaml", "application/x-yaml", "text/yaml", "text/x-yaml", "text/plain"}
)
JSON_TYPES = frozenset({"application/json"})
FORM_TYPES = frozenset({"multipart/form-data"})
REQUEST_FILENAME = "<request>"
# A request may exceed max_bundle_bytes by this much: the definition and the form's framing.
FORM_OVERHEAD_BYTES = 1024 * 1024

# For OpenAPI: the three body forms of create and update.
DEFINITION_BODY: dict[str, Any] = {
    "requestBody": {
        "required": True,
        "description": "The workflow definition as YAML, as a JSON object, or as a form with "
        "`definition` (YAML text) and an optional `bundle` (.tar.gz of its directory).",
        "content": {
            "application/yaml": {"schema": {"type": "string"}},
            "application/json": {"schema": {"type": "object"}},
            "multipart/form-data": {
                "schema": {
                    "type": "object",
                    "required": ["definition"],
                    "properties": {
                        "definition": {"type": "string"},
                        "bundle": {"type": "string", "format": "binary"},
                    },
                }
            },
        },
    }
}


@dataclass(frozen=True)
class Submission:
    """A validated definition, the YAML to keep, and the uploaded files (None: no bundle)."""

    definition: dict[str, Any]
    yaml_text: str
    files: dict[str, tuple[bytes, int]] | None

    @property
    def id(self) -> str:
        return str(self.definition["id"])


def _media_type(request: Request) -> str:
    return request.headers.get("content-type", "").split(";")[0].strip().lower()


def from_yaml(text: str) -> Submission:
    workflow = load_workflow(text, REQUEST_FILENAME)
    return Submission(canonical(workflow), text, None)


def from_object(obj: Any) -> Submission:
    if not isinstance(obj, dict):
        raise SpecInvalid(
            "the definition must be a JSON object",
            problems=[Problem("", f"expected an object, got {type(obj).__name__}")],
        )
    definition = canonical(load_definition(obj))
    text = dump_yaml(definition)
    return Submission(definition, text, None)


def _decode(data: bytes, what: str) -> str:
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise InvalidInput(f"{what} is not UTF-8 text: {exc}") from None


async def read_submission(request: Request, max_bytes: int) -> Submission:
    """The definition (and files) in the request body, validated; raises located problems."""
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > max_bytes + FORM_OVERHEAD_BYTES:
        raise PayloadTooLarge(
            f"the request is {declared} bytes; the limit is {max_bytes} bytes "
            "(server setting max_bundle_bytes)"
        )
    media = _media_type(request)
    if media in YAML_TYPES:
        text = _decode(await request.body(), "the body")
        return await _validated(len(text), from_yaml, text)
    if media in JSON_TYPES:
        body = await request.body()
        try:
            obj = json.loads(body)
        except json.JSONDecodeError as exc:
            raise InvalidInput(
                f"the body is not valid JSON: {exc}",
                problems=[Problem("", exc.msg, line=exc.lineno, column=exc.colno)],
            ) from None
        return await _validated(len(body), from_object, obj)
    if media in FORM_TYPES:
        return await _from_form(request, max_bytes)
    raise UnsupportedMediaType(
        f"Content-Type {media or '(none)'!r} is not accepted: send application/yaml, "
        "application/json, or multipart/form-data with a `definition` field"
    )


async def _from_form(request: Request, max_bytes: int) -> Submission:
    async with request.form(max_files=2, max_fields=8, max_part_size=max_bytes) as form:
        field = form.get("definition")
        if field is None:
            raise InvalidInput(
                "the form has no `definition` field",
                problems=[Problem("definition", "add the workflow YAML as the `definition` field")],
            )
        if isinstance(field, UploadFile):
            text = _decode(await field.read(), "the definition")
        else:
            text = field
        bundle = form.get("bundle")
        data: bytes | None = None
        if isinstance(bundle, UploadFile):
            data = await bundle.read(max_bytes + 1)
        elif isinstance(bundle, str) and bundle:
            raise InvalidInput(
                "`bundle` must be a file upload",
                problems=[Problem("bundle", "send the .tar.gz as a file part, not a text field")],
            )
    if data is None:
        return await _validated(len(text), from_yaml, text)
    return await _validated(len(text), _with_files, text, data, max_bytes)


# Reading and checking a definition is CPU work in proportion to its size (up to MAX_STEPS
# steps, a few seconds of CPU). In a thread of the server it would contend for the GIL with
# the event loop, and on a busy machine every hand-over of the GIL waits for the scheduler:
# `/healthz` stalled for seconds. So a large definition is validated in a helper process,
# a small one (most of them, milliseconds of work) in a worker thread.
ISOLATE_CHARS = 64 * 1024

_isolated: ProcessPoolExecutor | None = None
_isolated_lock = threading.Lock()


@dataclass(frozen=True)
class _Refusal:
    """An OpsflowError as it crosses back from the helper process, problems included."""

    kind: type[OpsflowError]
    message: str
    problems: list[Problem]


def _refusal_or(fn: Callable[..., Submission], *args: Any) -> Submission | _Refusal:
    try:
        return fn(*args)
    except OpsflowError as exc:
        return _Refusal(type(exc), exc.message, exc.problems)


# How often (seconds) the helper process looks whether the server that started it is alive.
PARENT_CHECK = 1.0


def _exit_with(parent: int) -> None:  # the helper process's initializer
    """End this helper process once ``parent`` (the server) is gone. A server that exits
    without shutting the pool down (``kill -9``, a forked test server's ``os._exit``) left
    it blocked for ever on its task queue, whose write end it holds itself: 115 MB each."""

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(PARENT_CHECK)
        os._exit(0)

    threading.Thread(target=watch, name="opsflow-parent-watch", daemon=True).start()


def _helper() -> ProcessPoolExecutor:
    global _isolated
    with _isolated_lock:
        if _isolated is None:
            # spawn, never fork: the server has threads (and their locks) a fork would copy.
            _isolated = ProcessPoolExecutor(
                1,
                mp_context=multiprocessing.get_context("spawn"),
                initializer=_exit_with,
                initargs=(os.getpid(),),
            )
        return _isolated


async def _validated(size: int, fn: Callable[..., Submission], *args: Any) -> Submission:
    """``fn(*args)`` off the event loop: in the helper process when ``size`` (characters of
    the definition) is at least ISOLATE_CHARS, else in a worker thread."""
    if size < ISOLATE_CHARS:
        return await run_in_threadpool(fn, *args)
    pool = _helper()
    try:
        result = await asyncio.get_running_loop().run_in_executor(pool, _refusal_or, fn, *args)
    except BrokenProcessPool:
        global _isolated
        with _isolated_lock:
            if _isolated is pool:
                _isolated = None  # the next large definition gets a new helper
        raise
    if isinstance(result, _Refusal):
        raise result.kind(result.message, problems=result.problems)
    return result


def _with_files(text: str, data: bytes, max_bytes: int) -> Submission:
    """Validate the definition against its files: a step's ``file`` must be in the bundle."""
    files = read_bundle_archive(data, max_bytes)
    with tempfile.TemporaryDirectory(prefix="opsflow-bundle-") as tmp:
        root = Path(tmp)
        for path, (content, mode) in files.items():
            target = root / path
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(content)
            target.chmod(mode & 0o777 | 0o600)
        workflow = load_workflow(text, REQUEST_FILENAME, base_dir=root)
    return Submission(canonical(workflow), text, files)


def check_path_id(submission: Submission, path_id: str) -> None:
    """The URL names the workflow; a definition with another id is refused, naming ``id``."""
    if submission.id != path_id:
        raise SpecInvalid(
            "the definition's id does not match the URL",
            problems=[
                Problem(
                    "id",
                    f"the definition's id is {submission.id!r} but the URL names {path_id!r}; "
                    "make them equal (to rename, duplicate the workflow)",
                    line=_top_level_line(submission.yaml_text, "id"),
                )
            ],
        )


def _top_level_line(text: str, key: str) -> int | None:
    for number, line in enumerate(text.splitlines(), start=1):
        if re.match(rf"{key}\s*:", line):
            return number
    return None


def renamed(
    source_yaml: str, source_definition: dict[str, Any], new_id: str, name: str | None
) -> Submission:
    """A copy of a definition under ``new_id`` (and ``name``), keeping the YAML's comments when
    its top-level ``id:``/``name:`` lines can be rewritten in place."""
    text = source_yaml
    id_line = re.compile(r"^id\s*:.*$", re.MULTILINE)
    name_line = re.compile(r"^name\s*:.*$", re.MULTILINE)
    if len(id_line.findall(text)) == 1:
        text = id_line.sub(lambda _m: f"id: {new_id}", text)
        if name is not None:
            quoted = json.dumps(name, ensure_ascii=False)
            if len(name_line.findall(text)) == 1:
                text = name_line.sub(lambda _m: f"name: {quoted}", text)
            else:
                text = id_line.sub(lambda _m: f"id: {new_id}\nname: {quoted}", text)
        try:
            submission = from_yaml(text)
            if submission.id == new_id and (
                name is None or submission.definition.get("name") == name
            ):
                return submission
        except SpecInvalid:
            pass  # a multi-line value matched our pattern; fall back to a fresh dump
    definition = dict(source_definition, id=new_id)
    if name is not None:
        definition["name"] = name
    return from_object(definition)
