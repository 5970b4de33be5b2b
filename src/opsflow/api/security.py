"""Authentication and authorization for routes: every route declares `require(Permission.X)`
(or `authenticated` where any signed-in user may act on their own things).

401 means "we do not know who you are" and says why (no header, unknown, expired or revoked
token, bad password); 403 means "we know, and your role does not allow this" and names the
permission and the role.
"""

from __future__ import annotations

from collections.abc import Callable

from fastapi import Depends, Request
from fastapi.security import HTTPBasic, HTTPBearer

from opsflow.api.services import Services, services_of
from opsflow.auth.browser import CSRF_HEADER, SESSION_COOKIE, authenticate_cookie, check_csrf
from opsflow.auth.credentials import Principal, authenticate_header
from opsflow.auth.permissions import Permission
from opsflow.errors import Forbidden
from opsflow.store.base import utcnow


class _DeclaredBearer(HTTPBearer):
    """Listed in OpenAPI (securitySchemes, the "Authorize" button) but reads nothing: the header
    is parsed by `authenticate_header`, so every failure gets our own 401 message."""

    async def __call__(self, request: Request) -> None:  # type: ignore[override]
        return None


class _DeclaredBasic(HTTPBasic):
    """See `_DeclaredBearer`."""

    async def __call__(self, request: Request) -> None:  # type: ignore[override]
        return None


_bearer = _DeclaredBearer(scheme_name="token", description="An API token: `Bearer opf_...`")
_basic = _DeclaredBasic(scheme_name="password", description="User name and password.")


async def declare_schemes(_b: object = Depends(_bearer), _u: object = Depends(_basic)) -> None:
    """Only here so OpenAPI lists both schemes on every protected route. Async: FastAPI runs
    a plain ``def`` dependency in a worker thread, a thread hop per request for nothing."""


def identify(services: Services, authorization: str | None, cookie: str | None) -> Principal:
    """The caller named by an ``Authorization`` header or, without one, by the browser's
    session cookie; `Unauthorized` saying why not."""
    with services.session() as session:
        if authorization or not cookie:
            return authenticate_header(session, authorization, utcnow())
        return authenticate_cookie(session, cookie, utcnow())


def authenticated(request: Request, _schemes: None = Depends(declare_schemes)) -> Principal:
    """The caller, or 401 saying why not.

    An ``Authorization`` header wins; without one, the browser's session cookie is read, and
    a change made with it must carry the session's CSRF token (403 otherwise).
    """
    principal = identify(
        services_of(request),
        request.headers.get("authorization"),
        request.cookies.get(SESSION_COOKIE),
    )
    if principal.browser_session is not None:
        check_csrf(request.method, request.headers.get(CSRF_HEADER), principal.browser_session)
    request.state.principal = principal
    return principal


authenticated.permission = None  # type: ignore[attr-defined]


def require(permission: Permission) -> Callable[..., Principal]:
    """A dependency that authenticates the caller and checks their role grants ``permission``."""

    def check(principal: Principal = Depends(authenticated)) -> Principal:
        if not principal.can(permission):
            raise Forbidden(f"requires permission {permission}; your role is {principal.role}")
        return principal

    check.permission = permission  # type: ignore[attr-defined]
    check.__name__ = f"require_{permission.replace(':', '_')}"
    return check


def ensure(principal: Principal, permission: Permission) -> None:
    """The same check inside a route, for a permission that depends on the request's content
    (acting on another user's tokens needs ``users:manage``)."""
    if not principal.can(permission):
        raise Forbidden(f"requires permission {permission}; your role is {principal.role}")
