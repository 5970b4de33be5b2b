"""API tokens and login. Anyone signed in manages their own tokens; another user's need
``users:manage``. A token's secret appears in exactly one response, the one that creates it."""

from __future__ import annotations

from datetime import timedelta
from typing import Annotated

from fastapi import APIRouter, Depends, Request, Response

from opsflow.api.people_models import (
    LoginRequest,
    LoginResult,
    TokenCreate,
    TokenCreated,
    TokenOut,
    UserOut,
)
from opsflow.api.problems import error_responses
from opsflow.api.security import authenticated, ensure
from opsflow.api.services import services_of
from opsflow.auth.browser import (
    CSRF_COOKIE,
    CSRF_HEADER,
    SESSION_COOKIE,
    authenticate_cookie,
    check_csrf,
    open_session,
)
from opsflow.auth.credentials import (
    LOGIN_TOKEN_NAME,
    Principal,
    authenticate_password,
    issue_token,
)
from opsflow.auth.permissions import Permission
from opsflow.auth.tokens import expiry
from opsflow.errors import InvalidInput, Problem, Unauthorized
from opsflow.store import audit
from opsflow.store import browser_sessions as session_store
from opsflow.store import tokens as store
from opsflow.store import users as user_store
from opsflow.store.base import utcnow

router = APIRouter(tags=["tokens"])

SignedIn = Annotated[Principal, Depends(authenticated)]
LOGIN_LIFETIME = "24h"


@router.get("/tokens", response_model=list[TokenOut], responses=error_responses(401, 403))
def list_tokens(request: Request, principal: SignedIn, user: str | None = None) -> list[TokenOut]:
    """Your tokens; ``?user=NAME`` (or ``?user=*`` for all) needs ``users:manage``."""
    if user is not None and user != principal.name:
        ensure(principal, Permission.USERS_MANAGE)
    owner = principal.name if user is None else (None if user == "*" else user)
    now = utcnow()
    with services_of(request).session() as session:
        return [TokenOut.of(t, now) for t in store.list_tokens(session, owner)]


@router.post(
    "/tokens",
    response_model=TokenCreated,
    status_code=201,
    responses=error_responses(401, 403, 404, 422),
)
def create_token(request: Request, body: TokenCreate, principal: SignedIn) -> TokenCreated:
    """A new token; the response is the only place its secret ever appears."""
    owner = body.user or principal.name
    if owner != principal.name:
        ensure(principal, Permission.USERS_MANAGE)
    expires_at = expiry(utcnow(), body.expires_in, body.expires_at)
    with services_of(request).session() as session:
        token, secret = issue_token(session, owner, body.name, expires_at)
        audit.record(
            session, principal.name, "token.create", token.id, {"user": owner, "name": body.name}
        )
    return TokenCreated(
        id=token.id,
        token=secret,
        name=token.name,
        user=owner,
        prefix=token.prefix,
        expires_at=token.expires_at,
    )


@router.delete(
    "/tokens/{token_id}", response_model=TokenOut, responses=error_responses(401, 403, 404)
)
def revoke_token(request: Request, token_id: str, principal: SignedIn) -> TokenOut:
    """Revoke a token at once (yours, or anyone's with ``users:manage``)."""
    with services_of(request).session() as session:
        token = store.get_token(session, token_id)
        if token.user_name != principal.name:
            ensure(principal, Permission.USERS_MANAGE)
        revoked = store.revoke_token(session, token_id, utcnow())
        audit.record(session, principal.name, "token.revoke", token_id, {"user": token.user_name})
    return TokenOut.of(revoked, utcnow())


@router.post("/auth/login", response_model=LoginResult, responses=error_responses(401, 422))
def login(request: Request, response: Response, body: LoginRequest) -> LoginResult:
    """Trade a user name and password for a token (default lifetime 24h) or, with
    ``session: true``, for a browser session: an HttpOnly cookie plus its CSRF token."""
    if body.session:
        return _open_browser_session(request, response, body)
    expires_at = expiry(utcnow(), body.expires_in or LOGIN_LIFETIME, None)
    with services_of(request).session() as session:
        principal = authenticate_password(session, body.username, body.password)
        token, secret = issue_token(session, principal.name, LOGIN_TOKEN_NAME, expires_at)
        audit.record(session, principal.name, "auth.login", token.id)
        teams = user_store.teams_of(session, principal.name)
    return LoginResult(
        token=secret,
        token_id=token.id,
        expires_at=token.expires_at,
        user=UserOut.of(principal.user, teams),
    )


def _open_browser_session(request: Request, response: Response, body: LoginRequest) -> LoginResult:
    if body.expires_in is not None:
        msg = "a browser session lasts OPSFLOW_SESSION_SECONDS; leave expires_in out"
        raise InvalidInput(f"expires_in: {msg}", problems=[Problem("body.expires_in", msg)])
    services = services_of(request)
    lifetime = timedelta(seconds=services.settings.session_seconds)
    with services.session() as session:
        principal = authenticate_password(session, body.username, body.password)
        opened = open_session(session, principal.name, lifetime, utcnow())
        audit.record(session, principal.name, "auth.login", opened.session.id, {"via": "session"})
        teams = user_store.teams_of(session, principal.name)
    secure = request.url.scheme == "https"
    max_age = int(lifetime.total_seconds())
    response.set_cookie(
        SESSION_COOKIE,
        opened.secret,
        max_age=max_age,
        path="/",
        httponly=True,
        secure=secure,
        samesite="lax",
    )
    response.set_cookie(
        CSRF_COOKIE,
        opened.session.csrf_token,
        max_age=max_age,
        path="/",
        httponly=False,  # the page reads it to send X-CSRF-Token
        secure=secure,
        samesite="lax",
    )
    return LoginResult(
        token=None,
        token_id=None,
        expires_at=opened.session.expires_at,
        user=UserOut.of(principal.user, teams),
        csrf_token=opened.session.csrf_token,
    )


def _session_cookie_dependency() -> None:
    """Logout reads the session cookie itself (an ended session may still log out)."""


_session_cookie_dependency.permission = None  # type: ignore[attr-defined]


@router.post(
    "/auth/logout",
    status_code=204,
    responses=error_responses(403),
    dependencies=[Depends(_session_cookie_dependency)],
)
def logout(request: Request) -> Response:
    """End the browser session and clear its cookies (204 also when it had already ended).
    Needs the session's X-CSRF-Token, like every change made with the cookie."""
    cookie = request.cookies.get(SESSION_COOKIE)
    if cookie:
        with services_of(request).session() as session:
            try:
                principal = authenticate_cookie(session, cookie, utcnow())
            except Unauthorized:
                principal = None  # expired or unknown: only the cookies are left to clear
            if principal is not None and principal.browser_session is not None:
                browser = principal.browser_session
                check_csrf(request.method, request.headers.get(CSRF_HEADER), browser)
                session_store.delete_session(session, browser.id)
                audit.record(session, principal.name, "auth.logout", browser.id)
    response = Response(status_code=204)
    secure = request.url.scheme == "https"
    for name, httponly in ((SESSION_COOKIE, True), (CSRF_COOKIE, False)):
        response.delete_cookie(name, path="/", secure=secure, httponly=httponly, samesite="lax")
    return response
