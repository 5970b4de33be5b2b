"""Who is calling: a bearer token or a user name and password becomes a `Principal`.

Every refusal says why (no credentials, unknown token, expired, revoked, deactivated user,
wrong password) so a user can fix it; the API turns `Unauthorized` into 401.
"""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass
from datetime import datetime, timedelta

from opsflow.auth.passwords import verify_password
from opsflow.auth.permissions import Permission, Role, has_permission
from opsflow.auth.tokens import AGENT_TOKEN_PREFIX, TOKEN_PREFIX, hash_secret, new_secret
from opsflow.errors import Unauthorized
from opsflow.store import tokens as token_store
from opsflow.store import users as user_store
from opsflow.store.browser_sessions import BrowserSession
from opsflow.store.session import Session
from opsflow.store.tokens import Token
from opsflow.store.users import User

# The name of the tokens `POST /auth/login` issues; a password change revokes them.
LOGIN_TOKEN_NAME = "login"
# Recording every use would make every read a write; a minute's precision is plenty.
LAST_USED_PRECISION = timedelta(minutes=1)


@dataclass(frozen=True)
class Principal:
    """An authenticated caller: the user, and the token or browser session they used (both
    None for a password)."""

    user: User
    token_id: str | None = None
    browser_session: BrowserSession | None = None

    @property
    def name(self) -> str:
        return self.user.name

    @property
    def role(self) -> Role:
        return self.user.role

    def can(self, permission: Permission) -> bool:
        return has_permission(self.user.role, permission)


def authenticate_token(session: Session, secret: str, now: datetime) -> Principal:
    """The principal a bearer token stands for, or `Unauthorized` saying what is wrong."""
    if secret.startswith(AGENT_TOKEN_PREFIX):
        raise Unauthorized(
            "this is an agent token: it opens only the agent protocol (/api/v1/agent/...); "
            "use a user's API token here"
        )
    if not secret.startswith(TOKEN_PREFIX):
        raise Unauthorized(f"invalid token: opsflow tokens start with {TOKEN_PREFIX!r}")
    token = token_store.find_token(session, hash_secret(secret))
    if token is None:
        raise Unauthorized("invalid token: no such token (it may have been deleted)")
    if token.revoked_at is not None:
        raise Unauthorized(f"token {token.id} was revoked at {token.revoked_at.isoformat()}")
    if token.expires_at is not None and token.expires_at <= now:
        raise Unauthorized(f"token {token.id} expired at {token.expires_at.isoformat()}")
    user = user_store.get_user_by_id(session, token.user_id)
    if not user.active:
        raise Unauthorized(f"user {user.name!r} is deactivated")
    if token.last_used_at is None or now - token.last_used_at >= LAST_USED_PRECISION:
        token_store.touch_token(session, token.id, now)
    return Principal(user=user, token_id=token.id)


def authenticate_password(session: Session, name: str, password: str) -> Principal:
    """The principal for a user name and password (same message for unknown user and bad
    password, so the answer does not reveal which names exist)."""
    user = user_store.find_user(session, name)
    stored = user_store.password_hash_of(session, name) if user is not None else None
    if user is None or stored is None or not verify_password(stored, password):
        raise Unauthorized("wrong user name or password")
    if not user.active:
        raise Unauthorized(f"user {user.name!r} is deactivated")
    return Principal(user=user)


def authenticate_header(session: Session, authorization: str | None, now: datetime) -> Principal:
    """Read an ``Authorization`` header: ``Bearer <token>`` or ``Basic <base64 user:pass>``."""
    if not authorization or not authorization.strip():
        raise Unauthorized(
            "no credentials: send `Authorization: Bearer <token>` (or HTTP Basic auth)"
        )
    scheme, _, value = authorization.strip().partition(" ")
    value = value.strip()
    if scheme.lower() == "bearer" and value:
        return authenticate_token(session, value, now)
    if scheme.lower() == "basic" and value:
        try:
            decoded = base64.b64decode(value, validate=True).decode()
        except (binascii.Error, UnicodeDecodeError):
            raise Unauthorized(
                "malformed Basic credentials: expected base64 of user:password"
            ) from None
        name, sep, password = decoded.partition(":")
        if not sep:
            raise Unauthorized("malformed Basic credentials: expected base64 of user:password")
        return authenticate_password(session, name, password)
    raise Unauthorized(
        f"unsupported Authorization scheme {scheme!r}: use `Bearer <token>` or HTTP Basic"
    )


def issue_token(
    session: Session, user_name: str, name: str, expires_at: datetime | None
) -> tuple[Token, str]:
    """Create a token for ``user_name``; returns it and its secret, which is never stored."""
    fresh = new_secret()
    token = token_store.create_token(
        session,
        user_name=user_name,
        name=name,
        secret_hash=fresh.secret_hash,
        prefix=fresh.prefix,
        expires_at=expires_at,
    )
    return token, fresh.secret
