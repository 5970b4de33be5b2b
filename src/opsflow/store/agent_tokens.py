"""Agent tokens as the store keeps them: bound to one pool, the SHA-256 of the secret, never
the secret (hashed like users' API tokens, `opsflow.auth.tokens`).

An agent token lets its holder speak the agent protocol for its pool and nothing else. A
revoked token stays listed (with ``revoked_at``) so the audit trail and the agents that used
it still name it. Which agents used a token is ``agents.token_id``, written at registration.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass, field
from datetime import datetime
from typing import cast

from sqlalchemy import String, Table, select, update
from sqlalchemy.orm import Mapped, Session, mapped_column

from opsflow.errors import NotFound
from opsflow.store.agents import AGENTS
from opsflow.store.base import Base, UTCDateTime, utcnow
from opsflow.store.integrity import conflict_on_duplicate


class AgentTokenRow(Base):
    __tablename__ = "agent_tokens"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    name: Mapped[str] = mapped_column(String(200), default="")
    pool: Mapped[str] = mapped_column(String(100))
    secret_hash: Mapped[str] = mapped_column(String(64), unique=True)
    prefix: Mapped[str] = mapped_column(String(16))
    created_by: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    last_used_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)


AGENT_TOKENS: Table = cast(Table, AgentTokenRow.__table__)


@dataclass(frozen=True)
class AgentToken:
    id: str
    name: str
    pool: str
    prefix: str
    created_by: str
    created_at: datetime
    revoked_at: datetime | None
    last_used_at: datetime | None
    agents: list[str] = field(default_factory=list)  # ids of the agents that registered with it

    @classmethod
    def from_row(cls, row: AgentTokenRow, agents: list[str] | None = None) -> AgentToken:
        return cls(
            id=row.id,
            name=row.name,
            pool=row.pool,
            prefix=row.prefix,
            created_by=row.created_by,
            created_at=row.created_at,
            revoked_at=row.revoked_at,
            last_used_at=row.last_used_at,
            agents=agents or [],
        )


def create_token(
    session: Session, *, name: str, pool: str, secret_hash: str, prefix: str, created_by: str
) -> AgentToken:
    """Record an agent token of ``pool`` whose secret hashes to ``secret_hash``."""
    row = AgentTokenRow(
        id=f"atk_{secrets.token_hex(8)}",
        name=name,
        pool=pool,
        secret_hash=secret_hash,
        prefix=prefix,
        created_by=created_by,
    )
    with conflict_on_duplicate("an agent token with this secret already exists"):
        session.add(row)
        session.flush()
    return AgentToken.from_row(row)


def find_token(session: Session, secret_hash: str) -> AgentToken | None:
    """The token whose secret hashes to ``secret_hash``, revoked ones included."""
    row = session.scalars(
        select(AgentTokenRow).where(AgentTokenRow.secret_hash == secret_hash)
    ).first()
    return None if row is None else AgentToken.from_row(row)


def _agents_of(session: Session, token_ids: list[str]) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    if not token_ids:
        return out
    rows = session.connection().execute(
        select(AGENTS.c.token_id, AGENTS.c.id)
        .where(AGENTS.c.token_id.in_(token_ids))
        .order_by(AGENTS.c.id)
    )
    for token_id, agent_id in rows:
        out.setdefault(str(token_id), []).append(str(agent_id))
    return out


def get_token(session: Session, token_id: str) -> AgentToken:
    row = session.get(AgentTokenRow, token_id)
    if row is None:
        raise NotFound(f"agent token {token_id!r} not found (see `opsflow agents tokens list`)")
    return AgentToken.from_row(row, _agents_of(session, [token_id]).get(token_id))


def list_tokens(session: Session) -> list[AgentToken]:
    """Every agent token, newest first, with the agents that registered with each."""
    rows = list(
        session.scalars(
            select(AgentTokenRow).order_by(AgentTokenRow.created_at.desc(), AgentTokenRow.id)
        )
    )
    used = _agents_of(session, [r.id for r in rows])
    return [AgentToken.from_row(r, used.get(r.id)) for r in rows]


def revoke_token(session: Session, token_id: str, at: datetime) -> tuple[AgentToken, bool]:
    """Mark the token revoked, a compare-and-set on ``revoked_at IS NULL``: idempotent, the
    first revocation time stays. The agents registered with it are marked left in the same
    write (offline at once on every replica, as their own leave does: `agents.leave`); their
    running jobs keep their leases. Returns the token and whether this call revoked it (False
    when it was already revoked, so the caller audits only the first). `NotFound` for no such
    token."""
    # RETURNING, not rowcount: the drivers do not agree on a skipped row's rowcount.
    done = session.execute(
        update(AGENT_TOKENS)
        .where(AGENT_TOKENS.c.id == token_id, AGENT_TOKENS.c.revoked_at.is_(None))
        .values(revoked_at=at)
        .returning(AGENT_TOKENS.c.id)
    ).first()
    if done is not None:
        session.execute(
            update(AGENTS)
            .where(AGENTS.c.token_id == token_id, AGENTS.c.left_at.is_(None))
            .values(left_at=at.timestamp())
        )
    session.expire_all()  # the ORM row, if loaded, must show the new revoked_at
    return get_token(session, token_id), done is not None


def revoked_at(session: Session, token_id: str) -> datetime | None:
    """When the token was revoked; None while it is live. `NotFound` for no such token."""
    found = session.execute(
        select(AGENT_TOKENS.c.revoked_at).where(AGENT_TOKENS.c.id == token_id)
    ).first()
    if found is None:
        raise NotFound(f"agent token {token_id!r} not found")
    value: datetime | None = found[0]
    return value


def revoked_among(session: Session, token_ids: set[str]) -> set[str]:
    """Which of ``token_ids`` are revoked (one statement; none for an empty set)."""
    if not token_ids:
        return set()
    rows = session.execute(
        select(AGENT_TOKENS.c.id).where(
            AGENT_TOKENS.c.id.in_(sorted(token_ids)), AGENT_TOKENS.c.revoked_at.is_not(None)
        )
    )
    return {str(r[0]) for r in rows}


def touch_token(session: Session, token_id: str, at: datetime) -> None:
    """Record a use of the token."""
    session.execute(
        update(AgentTokenRow).where(AgentTokenRow.id == token_id).values(last_used_at=at)
    )


def token_of_agent(session: Session, agent_id: str) -> str | None:
    """The id of the agent token ``agent_id`` last registered with (None: the local agent, or
    an agent from before agent tokens). `NotFound` for an agent never seen."""
    found = (
        session.connection()
        .execute(select(AGENTS.c.token_id).where(AGENTS.c.id == agent_id))
        .first()
    )
    if found is None:
        raise NotFound(f"no agent or agent token {agent_id!r} (see `opsflow agents list`)")
    return None if found[0] is None else str(found[0])


def known_pools(session: Session) -> set[str]:
    """Every pool an agent can serve here: the local agents' ``default``, the pools of live
    agent tokens, and those any agent registered with (``agents.pools``, JSON lists)."""
    conn = session.connection()
    tokens = conn.execute(
        select(AGENT_TOKENS.c.pool).where(AGENT_TOKENS.c.revoked_at.is_(None)).distinct()
    )
    pools = {"default", *(str(row.pool) for row in tokens)}
    for row in conn.execute(select(AGENTS.c.pools)):
        pools.update(str(p) for p in row.pools or [])
    return pools
