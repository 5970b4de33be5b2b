"""Agent presence: one row per agent id, written on register and (at most every half lease)
on claims and heartbeats, so every replica answers "which agents are there" alike.

``last_seen`` is epoch seconds; whether an agent is online is the reader's call (last seen
within a timeout). ``draining`` agents get no more jobs; their running jobs finish. Job
counts are not stored: they are computed from ``jobs.agent_id``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, NamedTuple, cast

from sqlalchemy import Boolean, Float, Integer, String, Table, func, select, update
from sqlalchemy.orm import Mapped, Session, mapped_column

from opsflow.errors import NotFound
from opsflow.status import JobStatus
from opsflow.store.base import Base, JSONType
from opsflow.store.jobs import IN_FLIGHT, JOBS


class AgentRow(Base):
    __tablename__ = "agents"

    id: Mapped[str] = mapped_column(String(100), primary_key=True)
    pools: Mapped[list[str]] = mapped_column(JSONType, default=list)
    labels: Mapped[dict[str, Any]] = mapped_column(JSONType, default=dict)
    version: Mapped[str] = mapped_column(String(64), default="")
    hostname: Mapped[str] = mapped_column(String(255), default="")
    first_seen: Mapped[float] = mapped_column(Float)
    last_seen: Mapped[float] = mapped_column(Float)
    draining: Mapped[bool] = mapped_column(Boolean, default=False)
    # The agent token it last registered with (None: a server's own local agent).
    token_id: Mapped[str | None] = mapped_column(String(32), nullable=True, index=True)
    # When it said it was leaving (a drain ended, it exited): offline from then on, until it
    # registers or claims again (which clears it). None: it did not leave.
    left_at: Mapped[float | None] = mapped_column(Float, nullable=True)
    # The job slots it registered with (``Registration.concurrency``); None: not known (a row
    # written before it was stored, until the agent registers again).
    concurrency: Mapped[int | None] = mapped_column(Integer, nullable=True)


AGENTS: Table = cast(Table, AgentRow.__table__)


@dataclass(frozen=True)
class AgentRecord:
    id: str
    pools: list[str]
    labels: dict[str, str]
    version: str
    hostname: str
    first_seen: float
    last_seen: float
    draining: bool
    token_id: str | None = None
    left_at: float | None = None  # it said it was leaving: offline, whatever last_seen says
    running: list[str] = field(default_factory=list)  # ids of the jobs it holds
    done: int = 0
    failed: int = 0
    concurrency: int | None = None  # the job slots it registered with; None: not known


def seen(
    session: Session,
    agent_id: str,
    *,
    pools: list[str],
    labels: dict[str, str],
    now: float,
    version: str | None = None,
    hostname: str | None = None,
    token_id: str | None = None,
    concurrency: int | None = None,
) -> bool:
    """Record that ``agent_id`` was there at ``now`` (and, at registration, its version,
    hostname, the agent token it used and its job slots, ``concurrency``); returns whether it
    is draining."""
    conn = session.connection()
    values: dict[str, Any] = {"pools": pools, "labels": labels, "last_seen": now, "left_at": None}
    if version is not None:
        values["version"] = version
    if hostname is not None:
        values["hostname"] = hostname
    if token_id is not None:
        values["token_id"] = token_id
    if concurrency is not None:
        values["concurrency"] = concurrency
    res = conn.execute(update(AGENTS).where(AGENTS.c.id == agent_id).values(**values))
    if not res.rowcount:
        # Two replicas may race to add the same new agent: the loser updates instead.
        nested = session.begin_nested()
        try:
            conn.execute(
                AGENTS.insert().values(
                    id=agent_id,
                    first_seen=now,
                    draining=False,
                    version=version or "",
                    hostname=hostname or "",
                    **{k: v for k, v in values.items() if k not in ("version", "hostname")},
                )
            )
            nested.commit()
        except Exception:
            nested.rollback()
            conn.execute(update(AGENTS).where(AGENTS.c.id == agent_id).values(**values))
        return False
    draining = conn.execute(select(AGENTS.c.draining).where(AGENTS.c.id == agent_id)).scalar()
    return bool(draining)


def touch(session: Session, agent_id: str, now: float) -> bool:
    """Record that ``agent_id`` was there at ``now`` (a heartbeat: nothing else changes);
    returns whether it is draining. An agent never registered is left alone."""
    conn = session.connection()
    res = conn.execute(update(AGENTS).where(AGENTS.c.id == agent_id).values(last_seen=now))
    if not res.rowcount:
        return False
    return bool(conn.execute(select(AGENTS.c.draining).where(AGENTS.c.id == agent_id)).scalar())


def leave(session: Session, agent_id: str, *, token_id: str | None, now: float) -> bool:
    """``agent_id`` says it is leaving (its drain ended): offline at once, until it registers
    or claims again. Only the agent token it registered with may say so for a remote agent
    (``token_id``; None for a server's own local agent). False when no such agent is known."""
    res = session.connection().execute(
        update(AGENTS)
        .where(
            AGENTS.c.id == agent_id,
            AGENTS.c.token_id.is_(None) if token_id is None else AGENTS.c.token_id == token_id,
        )
        .values(left_at=now)
    )
    return bool(res.rowcount)


def set_draining(session: Session, agent_id: str, draining: bool) -> None:
    res = session.connection().execute(
        update(AGENTS).where(AGENTS.c.id == agent_id).values(draining=draining)
    )
    if not res.rowcount:
        raise NotFound(f"agent {agent_id!r} not found")


def _records(session: Session, rows: list[Any]) -> list[AgentRecord]:
    ids = [r.id for r in rows]
    if not ids:
        return []
    conn = session.connection()
    running: dict[str, list[str]] = {}
    for job_id, agent_id in conn.execute(
        select(JOBS.c.id, JOBS.c.agent_id).where(
            JOBS.c.agent_id.in_(ids), JOBS.c.status.in_(IN_FLIGHT)
        )
    ):
        running.setdefault(agent_id, []).append(job_id)
    counts: dict[tuple[str, str], int] = {
        (agent_id, status): int(n)
        for agent_id, status, n in conn.execute(
            select(JOBS.c.agent_id, JOBS.c.status, func.count())
            .where(
                JOBS.c.agent_id.in_(ids),
                JOBS.c.status.in_(
                    [
                        JobStatus.COMPLETED.value,
                        JobStatus.FAILED.value,
                        JobStatus.TIMEOUT.value,
                    ]
                ),
            )
            .group_by(JOBS.c.agent_id, JOBS.c.status)
        )
    }
    return [
        AgentRecord(
            id=r.id,
            pools=list(r.pools or []),
            labels={str(k): str(v) for k, v in (r.labels or {}).items()},
            version=r.version or "",
            hostname=r.hostname or "",
            first_seen=float(r.first_seen),
            last_seen=float(r.last_seen),
            draining=bool(r.draining),
            token_id=r.token_id,
            left_at=r.left_at,
            running=sorted(running.get(r.id, [])),
            done=counts.get((r.id, JobStatus.COMPLETED.value), 0),
            failed=counts.get((r.id, JobStatus.FAILED.value), 0)
            + counts.get((r.id, JobStatus.TIMEOUT.value), 0),
            concurrency=r.concurrency,
        )
        for r in rows
    ]


def list_agents(session: Session) -> list[AgentRecord]:
    """Every agent ever seen, most recently seen first."""
    rows = list(
        session.connection().execute(
            select(AGENTS).order_by(AGENTS.c.last_seen.desc(), AGENTS.c.id)
        )
    )
    return _records(session, rows)


def get_agent(session: Session, agent_id: str) -> AgentRecord:
    rows = list(session.connection().execute(select(AGENTS).where(AGENTS.c.id == agent_id)))
    if not rows:
        raise NotFound(f"agent {agent_id!r} not found")
    return _records(session, rows)[0]


class OnlineAgent(NamedTuple):
    """An agent online now, as `seen_since` reads it; ``concurrency``: its job slots as it
    registered them (None: not known)."""

    id: str
    pools: list[str]
    labels: dict[str, str]
    draining: bool
    concurrency: int | None


def seen_since(session: Session, since: float) -> list[OnlineAgent]:
    """Every agent seen at or after ``since`` that has not left since."""
    rows = session.connection().execute(
        select(
            AGENTS.c.id, AGENTS.c.pools, AGENTS.c.labels, AGENTS.c.draining, AGENTS.c.concurrency
        ).where(AGENTS.c.last_seen >= since, AGENTS.c.left_at.is_(None))
    )
    return [
        OnlineAgent(
            r.id,
            list(r.pools or []),
            {str(k): str(v) for k, v in (r.labels or {}).items()},
            bool(r.draining),
            r.concurrency,
        )
        for r in rows
    ]
