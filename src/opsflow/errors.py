"""One root for every user-facing error.

Each subclass is a one-liner whose docstring is its default message. The API maps these to
``application/problem+json`` in one table (``opsflow.api.problems``), looked up along the
exception's class hierarchy, so no route needs its own try/except.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Problem:
    """One located problem: ``loc`` is a path such as ``steps[2].needs[0]``.

    ``line`` and ``column`` are 1-based positions in the YAML source when known.
    """

    loc: str
    msg: str
    line: int | None = None
    column: int | None = None

    def as_dict(self) -> dict[str, object]:
        out: dict[str, object] = {"loc": self.loc, "msg": self.msg}
        if self.line is not None:
            out["line"] = self.line
        if self.column is not None:
            out["column"] = self.column
        return out

    def format(self, filename: str | None = None) -> str:
        """``file:line: loc: message``, the shape editors and `opsflow validate` print."""
        where = filename or "<input>"
        if self.line is not None:
            where = f"{where}:{self.line}"
        loc = self.loc or "(root)"
        return f"{where}: {loc}: {self.msg}"


class OpsflowError(Exception):
    """Something went wrong in opsflow."""

    status_code = 500

    def __init__(self, message: str | None = None, *, problems: list[Problem] | None = None):
        self.message = message or (self.__doc__ or "").strip().splitlines()[0]
        self.problems: list[Problem] = list(problems or [])
        super().__init__(self.message)


class SpecInvalid(OpsflowError):
    """The workflow definition is invalid."""

    status_code = 422


class InvalidInput(OpsflowError):
    """The request is invalid."""

    status_code = 422


class NotFound(OpsflowError):
    """Not found."""

    status_code = 404


class Conflict(OpsflowError):
    """The request conflicts with the current state."""

    status_code = 409


class PreconditionFailed(Conflict):
    """The resource changed since you read it (its `If-Match` tag is not current)."""

    status_code = 412


class Unauthorized(OpsflowError):
    """Authentication is required: send `Authorization: Bearer <token>`."""

    status_code = 401


class Forbidden(OpsflowError):
    """You do not have permission to do this."""

    status_code = 403


class CsrfRefused(Forbidden):
    """A change made with the session cookie did not carry the session's CSRF token."""


class GateRefused(Forbidden):
    """This approval gate does not accept your answer."""


class PayloadTooLarge(OpsflowError):
    """The upload is too large."""

    status_code = 413


class RateLimited(OpsflowError):
    """Too many requests; try again after ``retry_after`` seconds."""

    status_code = 429

    def __init__(self, message: str | None = None, *, retry_after: int) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class TemplateError(OpsflowError):
    """A template could not be rendered."""

    status_code = 422


class StaleReport(Conflict):
    """The report came from an attempt or lease that is no longer current."""


class ServerUnreachable(OpsflowError):
    """The server did not answer (connection refused, reset or timed out) or answered 5xx;
    try again later."""

    status_code = 503
