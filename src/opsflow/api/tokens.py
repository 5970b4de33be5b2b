"""API tokens and login. Anyone signed in manages their own tokens; another user's need
``users:manage``. A token's secret appears in exactly one response, the one that creates it."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Request

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
from opsflow.auth.credentials import Principal, authenticate_password, issue_token
from opsflow.auth.permissions import Permission
from opsflow.auth.tokens import expiry
from opsflow.store import audit
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
def login(request: Request, body: LoginRequest) -> LoginResult:
    """Trade a user name and password for a token (default lifetime 24h), for the web UI."""
    expires_at = expiry(utcnow(), body.expires_in or LOGIN_LIFETIME, None)
    with services_of(request).session() as session:
        principal = authenticate_password(session, body.username, body.password)
        token, secret = issue_token(session, principal.name, "login", expires_at)
        audit.record(session, principal.name, "auth.login", token.id)
        teams = user_store.teams_of(session, principal.name)
    return LoginResult(
        token=secret,
        token_id=token.id,
        expires_at=token.expires_at,
        user=UserOut.of(principal.user, teams),
    )
