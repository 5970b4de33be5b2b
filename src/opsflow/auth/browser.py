"""Browser log-in sessions: what the web UI uses instead of a bearer token.

Logging in with a password opens a server-side session and hands the browser two cookies:
``opsflow_session`` (a random secret, HttpOnly, so page scripts never see it; stored only as
its SHA-256) and ``opsflow_csrf`` (the session's CSRF token, readable by the page). A request
authenticated by the session cookie that changes something (any method but GET, HEAD,
OPTIONS) must send the CSRF token back in the ``X-CSRF-Token`` header; the server compares it
with the token it stored for the session (synchronizer token, sent double-submit style). A
cross-site page can make the browser send the cookie but cannot read the token, so it cannot
forge the header. Bearer tokens, Terraform's state backend, hooks and agents never read the
cookie, so they need no token.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

from opsflow.auth.credentials import Principal
from opsflow.errors import CsrfRefused, Unauthorized
from opsflow.store import browser_sessions as store
from opsflow.store import users as user_store
from opsflow.store.browser_sessions import BrowserSession
from opsflow.store.session import Session

SESSION_COOKIE = "opsflow_session"
CSRF_COOKIE = "opsflow_csrf"
CSRF_HEADER = "X-CSRF-Token"
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


@dataclass(frozen=True)
class OpenedSession:
    """A new session and the cookie secret to hand the browser (never stored)."""

    session: BrowserSession
    secret: str


def _hash(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def open_session(
    session: Session, user_name: str, lifetime: timedelta, now: datetime
) -> OpenedSession:
    """Start a session for ``user_name`` lasting ``lifetime``; expired sessions of anyone are
    removed on the way (log-ins are rare, so this keeps the table small without a sweeper)."""
    store.delete_expired(session, now)
    secret = secrets.token_urlsafe(32)
    opened = store.create_session(
        session,
        session_id=f"ses_{secrets.token_hex(8)}",
        user_name=user_name,
        secret_hash=_hash(secret),
        csrf_token=secrets.token_urlsafe(32),
        expires_at=now + lifetime,
    )
    return OpenedSession(opened, secret)


def authenticate_cookie(session: Session, secret: str, now: datetime) -> Principal:
    """The principal a session cookie stands for, or `Unauthorized` saying to log in again."""
    found = store.find_session(session, _hash(secret))
    if found is None:
        raise Unauthorized("your session has ended (logged out or unknown): log in again")
    if found.expires_at <= now:
        raise Unauthorized(f"your session expired at {found.expires_at.isoformat()}: log in again")
    user = user_store.get_user_by_id(session, found.user_id)
    if not user.active:
        raise Unauthorized(f"user {user.name!r} is deactivated")
    return Principal(user=user, browser_session=found)


def check_csrf(method: str, sent: str | None, browser_session: BrowserSession) -> None:
    """Refuse a change made with the session cookie unless ``sent`` (the ``X-CSRF-Token``
    header) equals the session's CSRF token."""
    if method.upper() in SAFE_METHODS:
        return
    if not sent:
        raise CsrfRefused(
            f"a change made with the session cookie needs the {CSRF_HEADER} header: send the "
            f"value of the {CSRF_COOKIE} cookie (or of csrf_token from GET /api/v1/me)"
        )
    if not hmac.compare_digest(sent.encode(), browser_session.csrf_token.encode()):
        raise CsrfRefused(
            f"the {CSRF_HEADER} header does not match this session's token: send the value "
            f"of the {CSRF_COOKIE} cookie (log in again if it is missing)"
        )
