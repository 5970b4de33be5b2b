"""Browser log-in sessions as the store keeps them: the SHA-256 of the cookie's secret (never
the secret), the user, the expiry and the session's CSRF token."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from opsflow.errors import NotFound
from opsflow.store import tables as t


@dataclass(frozen=True)
class BrowserSession:
    id: str
    user_id: int
    csrf_token: str
    created_at: datetime
    expires_at: datetime

    @classmethod
    def from_row(cls, row: t.BrowserSession) -> BrowserSession:
        return cls(
            id=row.id,
            user_id=row.user_id,
            csrf_token=row.csrf_token,
            created_at=row.created_at,
            expires_at=row.expires_at,
        )


def create_session(
    session: Session,
    *,
    session_id: str,
    user_name: str,
    secret_hash: str,
    csrf_token: str,
    expires_at: datetime,
) -> BrowserSession:
    """Record a session whose cookie secret hashes to ``secret_hash``."""
    user_id = session.scalar(select(t.User.id).where(t.User.name == user_name))
    if user_id is None:
        raise NotFound(f"user {user_name!r} not found")
    row = t.BrowserSession(
        id=session_id,
        user_id=user_id,
        secret_hash=secret_hash,
        csrf_token=csrf_token,
        expires_at=expires_at,
    )
    session.add(row)
    session.flush()
    return BrowserSession.from_row(row)


def find_session(session: Session, secret_hash: str) -> BrowserSession | None:
    row = session.scalar(
        select(t.BrowserSession).where(t.BrowserSession.secret_hash == secret_hash)
    )
    return None if row is None else BrowserSession.from_row(row)


def delete_session(session: Session, session_id: str) -> bool:
    """Forget one session (log out); False if it was already gone."""
    result = session.execute(delete(t.BrowserSession).where(t.BrowserSession.id == session_id))
    return bool(getattr(result, "rowcount", 0))


def delete_expired(session: Session, now: datetime) -> int:
    """Forget every session that has expired; returns how many."""
    result = session.execute(delete(t.BrowserSession).where(t.BrowserSession.expires_at <= now))
    return int(getattr(result, "rowcount", 0))


def delete_sessions_of(session: Session, user_id: int, *, keep: str | None = None) -> int:
    """End every browser session of the user except the one whose id is ``keep``."""
    query = delete(t.BrowserSession).where(t.BrowserSession.user_id == user_id)
    if keep is not None:
        query = query.where(t.BrowserSession.id != keep)
    result = session.execute(query)
    return int(getattr(result, "rowcount", 0))
