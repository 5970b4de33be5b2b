"""API tokens as the store keeps them: the SHA-256 of the secret, never the secret."""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from opsflow.errors import NotFound
from opsflow.store import tables as t
from opsflow.store.integrity import conflict_on_duplicate


@dataclass(frozen=True)
class Token:
    id: str
    user_id: int
    user_name: str
    name: str
    prefix: str
    created_at: datetime
    expires_at: datetime | None
    revoked_at: datetime | None
    last_used_at: datetime | None

    @classmethod
    def from_row(cls, row: t.ApiToken, user_name: str) -> Token:
        return cls(
            id=row.id,
            user_id=row.user_id,
            user_name=user_name,
            name=row.name,
            prefix=row.prefix,
            created_at=row.created_at,
            expires_at=row.expires_at,
            revoked_at=row.revoked_at,
            last_used_at=row.last_used_at,
        )


def create_token(
    session: Session,
    *,
    user_name: str,
    name: str,
    secret_hash: str,
    prefix: str,
    expires_at: datetime | None,
) -> Token:
    """Record a token whose secret hashes to ``secret_hash``."""
    user_id = session.scalar(select(t.User.id).where(t.User.name == user_name))
    if user_id is None:
        raise NotFound(f"user {user_name!r} not found")
    row = t.ApiToken(
        id=f"tok_{secrets.token_hex(8)}",
        user_id=user_id,
        name=name,
        secret_hash=secret_hash,
        prefix=prefix,
        expires_at=expires_at,
    )
    with conflict_on_duplicate("a token with this secret already exists"):
        session.add(row)
        session.flush()
    return Token.from_row(row, user_name)


def find_token(session: Session, secret_hash: str) -> Token | None:
    """The token whose secret hashes to ``secret_hash``, revoked or expired ones included."""
    query = (
        select(t.ApiToken, t.User.name)
        .join(t.User, t.User.id == t.ApiToken.user_id)
        .where(t.ApiToken.secret_hash == secret_hash)
    )
    found = session.execute(query).first()
    return None if found is None else Token.from_row(found[0], found[1])


def get_token(session: Session, token_id: str) -> Token:
    query = (
        select(t.ApiToken, t.User.name)
        .join(t.User, t.User.id == t.ApiToken.user_id)
        .where(t.ApiToken.id == token_id)
    )
    found = session.execute(query).first()
    if found is None:
        raise NotFound(f"token {token_id!r} not found")
    return Token.from_row(found[0], found[1])


def list_tokens(session: Session, user_name: str | None = None) -> list[Token]:
    """Tokens of one user (or everyone's), newest first."""
    query = select(t.ApiToken, t.User.name).join(t.User, t.User.id == t.ApiToken.user_id)
    if user_name is not None:
        query = query.where(t.User.name == user_name)
    query = query.order_by(t.ApiToken.created_at.desc(), t.ApiToken.id)
    return [Token.from_row(row, name) for row, name in session.execute(query)]


def revoke_token(session: Session, token_id: str, at: datetime) -> Token:
    """Mark the token revoked (idempotent: the first revocation time stays)."""
    row = session.get(t.ApiToken, token_id)
    if row is None:
        raise NotFound(f"token {token_id!r} not found")
    if row.revoked_at is None:
        row.revoked_at = at
        session.flush()
    return get_token(session, token_id)


def touch_token(session: Session, token_id: str, at: datetime) -> None:
    """Record a use of the token."""
    session.execute(update(t.ApiToken).where(t.ApiToken.id == token_id).values(last_used_at=at))


def revoke_named(
    session: Session, user_id: int, name: str, at: datetime, *, keep: str | None = None
) -> int:
    """Revoke every live token of the user with this ``name`` (e.g. the log-in tokens), except
    the one whose id is ``keep``; returns how many."""
    query = update(t.ApiToken).where(
        t.ApiToken.user_id == user_id, t.ApiToken.name == name, t.ApiToken.revoked_at.is_(None)
    )
    if keep is not None:
        query = query.where(t.ApiToken.id != keep)
    result = session.execute(query.values(revoked_at=at))
    return int(getattr(result, "rowcount", 0))
