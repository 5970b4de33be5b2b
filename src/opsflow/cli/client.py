"""The CLI's one HTTP client: where it connects, which token it sends, how errors read.

Every command that talks to the server goes through :class:`ApiClient`, so an API error
(``application/problem+json``), a refused token, a missing permission or a server that is not
running is turned into the same readable :class:`~opsflow.cli.output.CliError` everywhere.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer

from opsflow import __version__
from opsflow.cli.output import CliError, OutputFormat, UsageError, confirm, print_json, say
from opsflow.errors import Problem

if TYPE_CHECKING:
    import httpx

# httpx is imported by the first request, not by `opsflow` itself: `opsflow server` goes through
# this package and need not hold it (tests/unit/test_server_imports.py).

DEFAULT_URL = "http://127.0.0.1:8321"
API_PREFIX = "/api/v1"
ADMIN_TOKEN_FILE = "admin-token"

# A query value may repeat (``label=a=1&label=b=2``), hence sequences.
QueryValue = str | int | bool | None | Sequence[str]


def local_data_dir() -> Path:
    """The server's data dir when it runs on this machine: ``OPSFLOW_DATA_DIR`` or ``./data``."""
    return Path(os.environ.get("OPSFLOW_DATA_DIR") or "data")


@dataclass(frozen=True)
class Connection:
    """Where the server is and how we authenticate; ``token_from`` explains a 401 later."""

    url: str
    token: str | None
    token_from: str | None = None

    @classmethod
    def resolve(cls, url: str | None, token: str | None) -> Connection:
        """Use the given token, else the admin token the server wrote into its local data dir.

        Reading ``<data-dir>/admin-token`` is what makes the CLI work with no set-up on the
        server's own machine; elsewhere people pass ``--token`` or set ``OPSFLOW_TOKEN``.
        """
        base = (url or DEFAULT_URL).rstrip("/")
        if token:
            return cls(base, token.strip(), "--token / OPSFLOW_TOKEN")
        token_file = local_data_dir() / ADMIN_TOKEN_FILE
        try:
            found = token_file.read_text(encoding="utf-8").strip()
        except OSError:
            return cls(base, None, None)
        return cls(base, found or None, str(token_file) if found else None)


class ApiClient:
    """Synchronous calls to ``/api/v1``; returns decoded JSON or raises ``CliError``."""

    def __init__(self, connection: Connection, *, timeout: float = 30.0) -> None:
        self.connection = connection
        self.timeout = timeout
        headers = {"User-Agent": f"opsflow-cli/{__version__}", "Accept": "application/json"}
        if connection.token:
            headers["Authorization"] = f"Bearer {connection.token}"
        import httpx

        self._http = httpx.Client(base_url=connection.url, headers=headers, timeout=timeout)

    def close(self) -> None:
        self._http.close()

    def get(self, path: str, params: Mapping[str, QueryValue] | None = None) -> Any:
        return self.request("GET", path, params=params)

    def post(self, path: str, json: Any = None) -> Any:
        return self.request("POST", path, json=json)

    def patch(self, path: str, json: Any) -> Any:
        return self.request("PATCH", path, json=json)

    def put(self, path: str, json: Any = None) -> Any:
        return self.request("PUT", path, json=json)

    def delete(self, path: str) -> Any:
        return self.request("DELETE", path)

    def request(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, QueryValue] | None = None,
        json: Any = None,
        data: Mapping[str, str] | None = None,
        files: Mapping[str, tuple[str, bytes, str]] | None = None,
    ) -> Any:
        """Send one request to ``/api/v1{path}``; ``None`` query values are left out."""
        import httpx

        query = [
            (key, item)
            for key, value in (params or {}).items()
            if value is not None
            for item in (value if isinstance(value, list | tuple) else [value])
        ]
        try:
            response = self._http.request(
                method,
                API_PREFIX + path,
                params=_stringify(query),
                json=json,
                data=data,
                files=files,
            )
        except httpx.ConnectError as exc:
            raise CliError(
                f"cannot reach opsflow at {self.connection.url}: is `opsflow server` running?",
                hint="pass --url or set OPSFLOW_URL if the server runs elsewhere",
            ) from exc
        except httpx.TimeoutException as exc:
            raise CliError(
                f"opsflow at {self.connection.url} did not answer within {self.timeout:g}s"
            ) from exc
        except (httpx.InvalidURL, httpx.UnsupportedProtocol) as exc:
            raise UsageError(
                f"invalid server URL {self.connection.url!r}: {exc}",
                hint="use a URL such as http://127.0.0.1:8321 in --url or OPSFLOW_URL",
            ) from exc
        except httpx.TransportError as exc:
            raise CliError(f"cannot talk to opsflow at {self.connection.url}: {exc}") from exc
        if response.is_success:
            return _body(response)
        raise self._error(response)

    def _error(self, response: httpx.Response) -> CliError:
        """Turn a problem+json (or any other) error response into one readable ``CliError``."""
        body = _body(response)
        title, detail, problems = _problem_parts(response, body)
        message = f"{title}: {detail}" if detail and detail != title else title
        hint: str | None = None
        if response.status_code == 401:
            message = f"not authenticated: {detail or title}"
            if self.connection.token is None:
                hint = (
                    "pass --token or set OPSFLOW_TOKEN; on the server's machine the CLI reads "
                    f"the admin token from {local_data_dir() / ADMIN_TOKEN_FILE} "
                    "(set OPSFLOW_DATA_DIR if the server uses another data dir)"
                )
            else:
                hint = (
                    f"the token from {self.connection.token_from} was refused: it may be "
                    "mistyped, expired or revoked; an admin can create one with "
                    "`opsflow tokens create`"
                )
        elif response.status_code == 403:
            message = f"permission denied: {detail or title}"
            kind = str(body.get("type", "")) if isinstance(body, dict) else ""
            if kind.endswith(":forbidden"):  # the role lacks a permission; other 403s say why
                hint = "ask an admin for a role that grants this (`opsflow users set-role`)"
        return CliError(message, problems=problems, hint=hint)


def _stringify(query: list[tuple[str, Any]]) -> list[tuple[str, str | int | float | bool | None]]:
    return [(k, ("true" if v else "false") if isinstance(v, bool) else str(v)) for k, v in query]


def _body(response: httpx.Response) -> Any:
    if response.status_code == 204 or not response.content:
        return None
    content_type = response.headers.get("content-type", "")
    if "json" in content_type:
        try:
            return response.json()
        except ValueError:
            return response.text
    return response.text


def _problem_parts(response: httpx.Response, body: Any) -> tuple[str, str, list[Problem]]:
    """``(title, detail, problems)`` from an RFC 9457 body, or from the bare status if not one."""
    if isinstance(body, dict):
        title = str(body.get("title") or response.reason_phrase or f"HTTP {response.status_code}")
        raw_detail = body.get("detail")
        if isinstance(raw_detail, list):  # FastAPI's own 422 shape, should it ever leak out
            problems = [_problem(item) for item in raw_detail if isinstance(item, dict)]
            return title, "the request is invalid", problems
        detail = "" if raw_detail is None else str(raw_detail)
        errors = body.get("errors") or []
        problems = [_problem(item) for item in errors if isinstance(item, dict)]
        return title, detail, problems
    text = str(body or "").strip()
    title = f"HTTP {response.status_code} {response.reason_phrase}".strip()
    return title, text[:500], []


def _problem(item: Mapping[str, Any]) -> Problem:
    loc = item.get("loc", "")
    if isinstance(loc, list):
        loc = ".".join(str(part) for part in loc)
    line = item.get("line")
    column = item.get("column")
    return Problem(
        loc=str(loc),
        msg=str(item.get("msg", "")),
        line=line if isinstance(line, int) else None,
        column=column if isinstance(column, int) else None,
    )


def client_for(ctx: typer.Context) -> ApiClient:
    """The client for this invocation, built from the root ``--url``/``--token`` options."""
    connection = ctx.find_root().obj
    if not isinstance(connection, Connection):  # a command invoked without the root callback
        connection = Connection.resolve(None, None)
    client = ApiClient(connection)
    ctx.call_on_close(client.close)
    return client


def delete_confirmed(
    ctx: typer.Context, path: str, name: str, question: str, *, yes: bool, output: OutputFormat
) -> None:
    """Ask ``question`` (unless ``yes``), DELETE ``path`` (relative to /api/v1), then print the
    answer as JSON or ``<name>: deleted``. Raises ``UsageError`` without a terminal or
    ``--yes``, and the API's problem as ``CliError``."""
    confirm(question, yes=yes)
    body = client_for(ctx).delete(path)
    if output is OutputFormat.JSON:
        print_json(body)
        return
    say(f"{name}: deleted")
