"""Every error the API returns, as ``application/problem+json`` (RFC 9457), from one table.

Routes raise `OpsflowError` subclasses and never catch them; `PROBLEM_TYPES` gives each class
its ``type`` and ``title``, found by walking the exception's class hierarchy, so a new subclass
inherits its parent's entry until it gets its own. The HTTP status is the class's
``status_code``.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel
from starlette.exceptions import HTTPException

from opsflow.errors import (
    Conflict,
    CsrfRefused,
    Forbidden,
    GateRefused,
    InvalidInput,
    NotFound,
    OpsflowError,
    PayloadTooLarge,
    PreconditionFailed,
    RateLimited,
    SpecInvalid,
    StaleReport,
    TemplateError,
    Unauthorized,
)

log = logging.getLogger(__name__)

PROBLEM_MEDIA_TYPE = "application/problem+json"
TYPE_BASE = "urn:opsflow:problem:"


class UnsupportedMediaType(InvalidInput):
    """The request body's Content-Type is not one this endpoint reads."""

    status_code = 415


PROBLEM_TYPES: dict[type[OpsflowError], tuple[str, str]] = {
    OpsflowError: ("internal", "Internal error"),
    SpecInvalid: ("spec-invalid", "The workflow definition is invalid"),
    InvalidInput: ("invalid-input", "The request is invalid"),
    UnsupportedMediaType: ("unsupported-media-type", "Unsupported Content-Type"),
    NotFound: ("not-found", "Not found"),
    Conflict: ("conflict", "Conflict with the current state"),
    PreconditionFailed: ("precondition-failed", "The resource changed since you read it"),
    StaleReport: ("stale-report", "Stale report"),
    Unauthorized: ("unauthorized", "Authentication required"),
    Forbidden: ("forbidden", "Permission denied"),
    GateRefused: ("gate-refused", "The approval gate refuses your answer"),
    CsrfRefused: ("csrf", "Cross-site request refused"),
    PayloadTooLarge: ("payload-too-large", "Payload too large"),
    RateLimited: ("rate-limited", "Too many requests"),
    TemplateError: ("template-error", "Template error"),
}


class ProblemItem(BaseModel):
    loc: str
    msg: str
    line: int | None = None
    column: int | None = None


class ProblemDetails(BaseModel):
    """The body of every error response."""

    type: str
    title: str
    status: int
    detail: str
    errors: list[ProblemItem] = []


def problem_type(exc: OpsflowError) -> tuple[str, str]:
    """``(type, title)`` of the nearest class in ``exc``'s hierarchy that the table names."""
    for cls in type(exc).__mro__:
        if cls in PROBLEM_TYPES:
            slug, title = PROBLEM_TYPES[cls]
            return TYPE_BASE + slug, title
    raise AssertionError("OpsflowError is in the table")  # pragma: no cover


def problem_response(
    status: int,
    type_: str,
    title: str,
    detail: str,
    errors: list[dict[str, Any]] | None = None,
    headers: Mapping[str, str] | None = None,
) -> JSONResponse:
    body = {"type": type_, "title": title, "status": status, "detail": detail}
    body["errors"] = errors or []
    return JSONResponse(body, status_code=status, media_type=PROBLEM_MEDIA_TYPE, headers=headers)


async def _opsflow_error(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, OpsflowError)
    type_, title = problem_type(exc)
    headers = {"WWW-Authenticate": 'Bearer realm="opsflow"'} if exc.status_code == 401 else None
    if isinstance(exc, RateLimited):
        headers = {"Retry-After": str(exc.retry_after)}
    if exc.status_code >= 500:
        log.error("internal error: %s", exc.message, exc_info=exc)
    return problem_response(
        exc.status_code,
        type_,
        title,
        exc.message,
        [p.as_dict() for p in exc.problems],
        headers,
    )


def _loc(parts: tuple[Any, ...] | list[Any]) -> str:
    """``("body", "steps", 2, "id")`` -> ``body.steps[2].id``."""
    out = ""
    for part in parts:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else str(part)
    return out


async def _validation_error(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    errors = [{"loc": _loc(e.get("loc", ())), "msg": str(e.get("msg", ""))} for e in exc.errors()]
    where = ", ".join(e["loc"] for e in errors[:5])
    return problem_response(
        422, TYPE_BASE + "invalid-input", "The request is invalid", f"invalid {where}", errors
    )


async def _http_error(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, HTTPException)
    title = {404: "Not found", 405: "Method not allowed"}.get(exc.status_code, "HTTP error")
    slug = {404: "not-found", 405: "method-not-allowed"}.get(exc.status_code, "http")
    return problem_response(
        exc.status_code, TYPE_BASE + slug, title, str(exc.detail), headers=exc.headers
    )


async def _unexpected(_request: Request, exc: Exception) -> JSONResponse:
    log.exception("unhandled error", exc_info=exc)
    return problem_response(
        500, TYPE_BASE + "internal", "Internal error", "an unexpected error happened; see the log"
    )


def install(app: FastAPI) -> None:
    """Register the handlers: ours, FastAPI's request validation, Starlette's HTTP errors."""
    app.add_exception_handler(OpsflowError, _opsflow_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(HTTPException, _http_error)
    app.add_exception_handler(Exception, _unexpected)


STATUS_DESCRIPTIONS = {
    400: "Bad request",
    401: "Authentication required",
    403: "Permission denied",
    404: "Not found",
    409: "Conflict with the current state",
    412: "Precondition failed (If-Match)",
    413: "Payload too large",
    415: "Unsupported Content-Type",
    422: "The request is invalid",
    423: "Locked",
    429: "Too many requests",
}


def error_responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """For ``responses=`` of a route: the error statuses only this route answers (409, 415,
    ...). `declare_errors` adds the ones every route of its kind answers and gives every error
    status its problem+json body."""
    return {s: {"description": STATUS_DESCRIPTIONS.get(s, "Error")} for s in statuses}


def _statuses_of(operation: dict[str, Any]) -> set[int]:
    """The error statuses an operation answers because of what it takes: a credential (401,
    403), path parameters (404), parameters or a body (422), a body (413, the size limit), a
    form (400 when it cannot be parsed)."""
    params = operation.get("parameters", [])
    out: set[int] = set()
    if operation.get("security"):
        out |= {401, 403}
    if any(p.get("in") == "path" for p in params):
        out.add(404)
    if params or "requestBody" in operation:
        out.add(422)
    if "requestBody" in operation:
        out.add(413)
    if "multipart/form-data" in operation.get("requestBody", {}).get("content", {}):
        out.add(400)  # a form Starlette cannot parse
    return out


def declare_errors(app: FastAPI) -> None:
    """Make OpenAPI tell the truth about errors: every operation lists the error statuses it
    can answer (those `_statuses_of` derives, plus the route's own `error_responses`), each as
    ``application/problem+json`` with the `ProblemDetails` schema; FastAPI's own
    ``HTTPValidationError`` is never what we send."""
    generate = app.openapi

    def openapi() -> dict[str, Any]:
        fresh = app.openapi_schema is None
        schema = generate()
        if fresh:
            _problem_bodies(schema)
        return schema

    app.openapi = openapi  # type: ignore[method-assign]


def _problem_bodies(schema: dict[str, Any]) -> None:
    """Every 4xx response of every operation: problem+json with the ProblemDetails schema."""
    components = schema.setdefault("components", {}).setdefault("schemas", {})
    problem = ProblemDetails.model_json_schema(ref_template="#/components/schemas/{model}")
    components.update(problem.pop("$defs", {}))
    components["ProblemDetails"] = problem
    body = {PROBLEM_MEDIA_TYPE: {"schema": {"$ref": "#/components/schemas/ProblemDetails"}}}
    for operations in schema.get("paths", {}).values():
        for operation in operations.values():
            responses = operation.setdefault("responses", {})
            for status in sorted(_statuses_of(operation)):
                responses.setdefault(str(status), {"description": STATUS_DESCRIPTIONS[status]})
            for status, response in responses.items():
                if str(status).startswith("4"):
                    response["content"] = dict(body)
    for unused in ("HTTPValidationError", "ValidationError"):
        components.pop(unused, None)
