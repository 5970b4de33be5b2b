"""What the API accepts: the size and nesting of a request body and the range of an integer.

Every integer a request carries (query, path, header, body) lies within +-`INT_MAX` (the
I-JSON range, 2**53 - 1), so nothing a client sends overflows a database column or loses
digits in a JavaScript client; body integers are strict (``true`` is not 1). `RequestLimits`
bounds every body before a route reads it: its size (413) and, for JSON, its nesting (422), so
no parser recurses without end. The figures are documented in docs/reference/api.md (Limits).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from itertools import accumulate
from typing import Annotated, Any

from fastapi import APIRouter
from fastapi.routing import APIRoute
from pydantic import Field
from starlette.routing import compile_path
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from opsflow.api.problems import problem_response, problem_type
from opsflow.errors import InvalidInput, OpsflowError, PayloadTooLarge, Problem
from opsflow.spec.params import INT_MAX as INT_MAX  # re-exported: the API's bound too

MAX_BODY_BYTES = 1024 * 1024  # a JSON body of an ordinary route; uploads have their own
MAX_JSON_DEPTH = 64  # as deep as a workflow's YAML may nest (spec.yaml_source.MAX_DEPTH)

# For request models: a strict integer (JSON true/false are refused) in the I-JSON range.
StrictCount = Annotated[int, Field(strict=True, ge=0, le=INT_MAX)]
StrictPositive = Annotated[int, Field(strict=True, ge=1, le=INT_MAX)]

_JSON_STRING = re.compile(rb'"(?:[^"\\]|\\.)*"', re.DOTALL)
_NOT_BRACKETS = bytes(b for b in range(256) if b not in b"[]{}")
_STEP = bytes.maketrans(b"[]{}", b"\x01\xff\x01\xff")


def json_depth(body: bytes) -> int:
    """How deep the arrays and objects of a JSON text nest (0 for a scalar), in linear time.

    Strings are removed first, so brackets inside them do not count; the result for text that
    is not JSON is meaningless but bounded, and the parser reports that text's real error.
    """
    brackets = _JSON_STRING.sub(b"", body).translate(None, _NOT_BRACKETS).translate(_STEP)
    if not brackets:
        return 0
    return max(accumulate(b if b == 1 else -1 for b in brackets))


def check_json_depth(body: bytes) -> None:
    """Refuse (422) a JSON body nested deeper than `MAX_JSON_DEPTH`, before it is parsed."""
    depth = json_depth(body)
    if depth > MAX_JSON_DEPTH:
        msg = f"the JSON nests {depth} levels deep; at most {MAX_JSON_DEPTH} are accepted"
        raise InvalidInput(msg, problems=[Problem("body", msg)])


def _is_json(scope: Scope) -> bool:
    for key, value in scope.get("headers", []):
        if key == b"content-type":
            media = value.split(b";")[0].strip().lower()
            return bool(media == b"application/json" or media.endswith(b"+json"))
    return False


def _declared_length(scope: Scope) -> int | None:
    for key, value in scope.get("headers", []):
        if key == b"content-length" and value.isdigit():
            return int(value)
    return None


@dataclass(frozen=True)
class Upload:
    """A route that reads a large body (a workflow bundle, a Terraform state): its methods,
    its path and its own limit in bytes."""

    methods: frozenset[str]
    path: re.Pattern[str]
    limit: int


def uploads(router: APIRouter, prefix: str, limits: dict[Callable[..., Any], int]) -> list[Upload]:
    """The `Upload` of each route of ``router`` whose endpoint ``limits`` names."""
    out: list[Upload] = []
    for route in router.routes:
        if isinstance(route, APIRoute) and route.endpoint in limits:
            regex, _, _ = compile_path(prefix + route.path)
            out.append(Upload(frozenset(route.methods or ()), regex, limits[route.endpoint]))
    return out


class RequestLimits:
    """Pure ASGI middleware: refuses a body over its route's limit (413) and a JSON body
    nested deeper than `MAX_JSON_DEPTH` (422), before any route or parser reads it."""

    def __init__(
        self, app: ASGIApp, uploads: list[Upload], own_limits: tuple[str, ...] = ()
    ) -> None:
        self.app = app
        self.uploads = uploads
        # Path prefixes whose routes read and bound their bodies themselves (``/hooks/``
        # authenticates a sender before it reads a byte of the body, then caps it per type).
        self.own_limits = own_limits

    def _limit(self, scope: Scope) -> int:
        for upload in self.uploads:
            if scope["method"] in upload.methods and upload.path.match(scope["path"]):
                return upload.limit
        return MAX_BODY_BYTES

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"].startswith(self.own_limits):
            await self.app(scope, receive, send)
            return
        limit = self._limit(scope)
        declared = _declared_length(scope)
        if declared is not None and declared > limit:
            await _refuse(scope, receive, send, _too_large(limit))
            return
        if _is_json(scope):
            body = bytearray()
            more = True
            while more:
                message = await receive()
                if message["type"] == "http.disconnect":
                    return
                body += message.get("body", b"")
                more = message.get("more_body", False)
                if len(body) > limit:
                    await _refuse(scope, receive, send, _too_large(limit))
                    return
            problem = _json_problem(bytes(body))
            if problem is not None:
                await _refuse(scope, receive, send, problem)
                return
            await self.app(scope, _replay(bytes(body), receive), send)
            return
        await self.app(scope, _counted(receive, limit), send)


def _too_large(limit: int) -> PayloadTooLarge:
    return PayloadTooLarge(
        f"the request body is larger than this endpoint's limit of {limit} bytes; "
        "see docs/reference/api.md (Limits)"
    )


def _json_problem(body: bytes) -> InvalidInput | None:
    """Why a JSON body is refused before parsing: not UTF-8, or nested too deeply."""
    try:
        body.decode("utf-8")
    except UnicodeDecodeError as exc:
        msg = f"the body is not UTF-8 text (byte {exc.start}); send JSON encoded as UTF-8"
        return InvalidInput(msg, problems=[Problem("body", msg)])
    depth = json_depth(body)
    if depth > MAX_JSON_DEPTH:
        msg = f"the JSON nests {depth} levels deep; at most {MAX_JSON_DEPTH} are accepted"
        return InvalidInput(msg, problems=[Problem("body", msg)])
    return None


def _replay(body: bytes, receive: Receive) -> Receive:
    sent = False

    async def replay() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return replay


def _counted(receive: Receive, limit: int) -> Receive:
    total = 0

    async def counted() -> Message:
        nonlocal total
        message = await receive()
        if message["type"] == "http.request":
            total += len(message.get("body", b""))
            if total > limit:
                raise _too_large(limit)
        return message

    return counted


async def _refuse(scope: Scope, receive: Receive, send: Send, error: OpsflowError) -> None:
    type_, title = problem_type(error)
    response = problem_response(
        error.status_code, type_, title, error.message, [p.as_dict() for p in error.problems]
    )
    await response(scope, receive, send)
