"""Users and teams. Password hashes stay in the store; callers get frozen `User` values."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import delete, func, select
from sqlalchemy.orm import Session

from opsflow.auth.permissions import Role
from opsflow.errors import Conflict, NotFound
from opsflow.store import tables as t
from opsflow.store.integrity import conflict_on_duplicate
from opsflow.words import did_you_mean


@dataclass(frozen=True)
class User:
    id: int
    name: str
    display_name: str
    email: str | None
    role: Role
    active: bool
    created_at: datetime
    has_password: bool

    @classmethod
    def from_row(cls, row: t.User) -> User:
        return cls(
            id=row.id,
            name=row.name,
            display_name=row.display_name,
            email=row.email,
            role=Role(row.role),
            active=row.active,
            created_at=row.created_at,
            has_password=row.password_hash is not None,
        )


@dataclass(frozen=True)
class Team:
    id: int
    name: str
    display_name: str
    created_at: datetime
    members: tuple[str, ...]


def _user_row(session: Session, name: str) -> t.User:
    row = session.scalar(select(t.User).where(t.User.name == name))
    if row is None:
        raise NotFound(f"user {name!r} not found")
    return row


def create_user(
    session: Session,
    *,
    name: str,
    role: Role,
    password_hash: str | None = None,
    display_name: str = "",
    email: str | None = None,
    active: bool = True,
) -> User:
    """Add a user; `Conflict` if the name is taken."""
    row = t.User(
        name=name,
        role=role,
        password_hash=password_hash,
        display_name=display_name,
        email=email,
        active=active,
    )
    with conflict_on_duplicate(f"user {name!r} already exists"):
        session.add(row)
        session.flush()
    return User.from_row(row)


def get_user(session: Session, name: str) -> User:
    return User.from_row(_user_row(session, name))


def get_user_by_id(session: Session, user_id: int) -> User:
    row = session.get(t.User, user_id)
    if row is None:
        raise NotFound(f"user #{user_id} not found")
    return User.from_row(row)


def find_user(session: Session, name: str) -> User | None:
    row = session.scalar(select(t.User).where(t.User.name == name))
    return None if row is None else User.from_row(row)


def list_users(session: Session) -> list[User]:
    return [User.from_row(r) for r in session.scalars(select(t.User).order_by(t.User.name))]


def count_users(session: Session) -> int:
    return session.scalar(select(func.count()).select_from(t.User)) or 0


def password_hash_of(session: Session, name: str) -> str | None:
    """The stored argon2 hash, for login only; None when the user has no password."""
    return session.scalar(select(t.User.password_hash).where(t.User.name == name))


def update_user(
    session: Session,
    name: str,
    *,
    role: Role | None = None,
    password_hash: str | None = None,
    display_name: str | None = None,
    email: str | None = None,
    active: bool | None = None,
) -> User:
    """Change the given fields (None leaves a field as it is).

    Refuses (`Conflict`) to demote or deactivate the last active admin: nobody could undo it.
    """
    row = _user_row(session, name)
    loses_admin = (
        row.role == Role.ADMIN
        and row.active
        and ((role is not None and role != Role.ADMIN) or active is False)
    )
    if loses_admin and _active_admins(session) <= 1:
        raise Conflict(f"user {name!r} is the last active admin; make another admin first")
    if role is not None:
        row.role = role
    if password_hash is not None:
        row.password_hash = password_hash
    if display_name is not None:
        row.display_name = display_name
    if email is not None:
        row.email = email or None
    if active is not None:
        row.active = active
    session.flush()
    return User.from_row(row)


def delete_user(session: Session, name: str) -> None:
    """Remove a user with their tokens and memberships (never the last active admin)."""
    row = _user_row(session, name)
    if row.role == Role.ADMIN and row.active and _active_admins(session) <= 1:
        raise Conflict(f"user {name!r} is the last active admin; make another admin first")
    session.execute(delete(t.ApiToken).where(t.ApiToken.user_id == row.id))
    session.execute(delete(t.TeamMember).where(t.TeamMember.user_id == row.id))
    session.delete(row)
    session.flush()


def _active_admins(session: Session) -> int:
    query = select(func.count()).where(t.User.role == Role.ADMIN, t.User.active.is_(True))
    return session.scalar(query) or 0


# --------------------------------------------------------------------------- teams


def _team_row(session: Session, name: str) -> t.Team:
    row = session.scalar(select(t.Team).where(t.Team.name == name))
    if row is None:
        known = session.scalars(select(t.Team.name))
        raise NotFound(f"team {name!r} not found{did_you_mean(name, known)}")
    return row


def _team(session: Session, row: t.Team) -> Team:
    return Team(
        id=row.id,
        name=row.name,
        display_name=row.display_name,
        created_at=row.created_at,
        members=tuple(team_members(session, row.name)),
    )


def create_team(session: Session, name: str, display_name: str = "") -> Team:
    row = t.Team(name=name, display_name=display_name)
    with conflict_on_duplicate(f"team {name!r} already exists"):
        session.add(row)
        session.flush()
    return _team(session, row)


def get_team(session: Session, name: str) -> Team:
    return _team(session, _team_row(session, name))


def list_teams(session: Session) -> list[Team]:
    return [_team(session, r) for r in session.scalars(select(t.Team).order_by(t.Team.name))]


def delete_team(session: Session, name: str) -> None:
    row = _team_row(session, name)
    session.execute(delete(t.TeamMember).where(t.TeamMember.team_id == row.id))
    session.delete(row)
    session.flush()


def team_members(session: Session, team: str) -> list[str]:
    """Names of the team's users, sorted; approvals resolve ``team:<name>`` with this."""
    query = (
        select(t.User.name)
        .join(t.TeamMember, t.TeamMember.user_id == t.User.id)
        .join(t.Team, t.Team.id == t.TeamMember.team_id)
        .where(t.Team.name == team)
        .order_by(t.User.name)
    )
    return list(session.scalars(query))


def teams_of(session: Session, user: str) -> list[str]:
    """Names of the teams ``user`` belongs to, sorted."""
    query = (
        select(t.Team.name)
        .join(t.TeamMember, t.TeamMember.team_id == t.Team.id)
        .join(t.User, t.User.id == t.TeamMember.user_id)
        .where(t.User.name == user)
        .order_by(t.Team.name)
    )
    return list(session.scalars(query))


def add_member(session: Session, team: str, user: str) -> bool:
    """Put ``user`` in ``team``; False when they already were (the call is idempotent)."""
    team_row = _team_row(session, team)
    user_row = _user_row(session, user)
    if session.get(t.TeamMember, (team_row.id, user_row.id)) is not None:
        return False
    session.add(t.TeamMember(team_id=team_row.id, user_id=user_row.id))
    session.flush()
    return True


def remove_member(session: Session, team: str, user: str) -> None:
    """Take ``user`` out of ``team``; `NotFound` if they were not in it."""
    team_row = _team_row(session, team)
    user_row = _user_row(session, user)
    member = session.get(t.TeamMember, (team_row.id, user_row.id))
    if member is None:
        raise NotFound(f"user {user!r} is not a member of team {team!r}")
    session.delete(member)
    session.flush()
