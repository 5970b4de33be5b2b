"""Users, teams and ``/me``: who exists, their roles, and which teams approvals can name."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Path, Request, Response

from opsflow.api.people_models import (
    NAME_PATTERN,
    Me,
    MembershipOut,
    PasswordChange,
    PasswordChanged,
    TeamCreate,
    TeamOut,
    UserCreate,
    UserOut,
    UserPatch,
)
from opsflow.api.problems import error_responses
from opsflow.api.security import authenticated, require
from opsflow.api.services import services_of
from opsflow.auth.credentials import LOGIN_TOKEN_NAME, Principal
from opsflow.auth.passwords import hash_password, verify_password
from opsflow.auth.permissions import ROLE_PERMISSIONS, Permission
from opsflow.errors import Conflict, InvalidInput, Problem
from opsflow.store import audit
from opsflow.store import browser_sessions as sessions_store
from opsflow.store import tokens as tokens_store
from opsflow.store import users as store
from opsflow.store.base import utcnow
from opsflow.store.session import Session

router = APIRouter(tags=["users"])

Admin = Annotated[Principal, Depends(require(Permission.USERS_MANAGE))]
Name = Annotated[str, Path(pattern=NAME_PATTERN)]


def _user_out(session: Session, name: str) -> UserOut:
    return UserOut.of(store.get_user(session, name), store.teams_of(session, name))


@router.get("/me", response_model=Me, responses=error_responses(401))
def me(request: Request, principal: Annotated[Principal, Depends(authenticated)]) -> Me:
    """The caller: user, role, teams and the permissions the role grants."""
    with services_of(request).session() as session:
        out = _user_out(session, principal.name)
    browser = principal.browser_session
    return Me(
        **out.model_dump(),
        permissions=sorted(ROLE_PERMISSIONS[principal.role]),
        token_id=principal.token_id,
        session_expires_at=browser.expires_at if browser is not None else None,
        csrf_token=browser.csrf_token if browser is not None else None,
    )


@router.patch("/me", response_model=PasswordChanged, responses=error_responses(409))
def change_own_password(
    request: Request,
    body: PasswordChange,
    principal: Annotated[Principal, Depends(authenticated)],
) -> PasswordChanged:
    """Change your own password (argon2id), proven by the current one. Your other browser
    sessions and log-in tokens end, since they were opened with the old password; the
    credential this request used and API tokens stay valid."""
    new_hash = hash_password(body.password)
    with services_of(request).session() as session:
        stored = store.password_hash_of(session, principal.name)
        if stored is None:
            raise Conflict(
                f"{principal.name} has no password (a token-only user): an admin gives the "
                f"first one with PATCH /api/v1/users/{principal.name} and a `password`"
            )
        if not verify_password(stored, body.current_password):
            msg = "this is not your current password"
            raise InvalidInput(
                f"current_password: {msg}", problems=[Problem("body.current_password", msg)]
            )
        store.update_user(session, principal.name, password_hash=new_hash)
        now = utcnow()
        keep_session = principal.browser_session.id if principal.browser_session else None
        ended = sessions_store.delete_sessions_of(session, principal.user.id, keep=keep_session)
        revoked = tokens_store.revoke_named(
            session, principal.user.id, LOGIN_TOKEN_NAME, now, keep=principal.token_id
        )
        audit.record(
            session,
            principal.name,
            "user.password",
            principal.name,
            {"sessions_ended": ended, "login_tokens_revoked": revoked},
        )
    return PasswordChanged(user=principal.name, sessions_ended=ended, login_tokens_revoked=revoked)


@router.get("/users", response_model=list[UserOut], responses=error_responses(401, 403))
def list_users(request: Request, _p: Admin) -> list[UserOut]:
    with services_of(request).session() as session:
        return [UserOut.of(u, store.teams_of(session, u.name)) for u in store.list_users(session)]


@router.post(
    "/users", response_model=UserOut, status_code=201, responses=error_responses(401, 403, 409, 422)
)
def create_user(request: Request, body: UserCreate, principal: Admin) -> UserOut:
    """Add a user (409 if the name is taken)."""
    password_hash = hash_password(body.password) if body.password is not None else None
    with services_of(request).session() as session:
        store.create_user(
            session,
            name=body.name,
            role=body.role,
            password_hash=password_hash,
            display_name=body.display_name,
            email=body.email,
        )
        audit.record(session, principal.name, "user.create", body.name, {"role": body.role})
        return _user_out(session, body.name)


@router.get("/users/{name}", response_model=UserOut, responses=error_responses(401, 403, 404))
def get_user(request: Request, name: Name, _p: Admin) -> UserOut:
    with services_of(request).session() as session:
        return _user_out(session, name)


@router.patch(
    "/users/{name}", response_model=UserOut, responses=error_responses(401, 403, 404, 409, 422)
)
def update_user(request: Request, name: Name, body: UserPatch, principal: Admin) -> UserOut:
    """Change role, password, display name, email or active (never the last active admin's
    role or activity)."""
    password_hash = hash_password(body.password) if body.password is not None else None
    with services_of(request).session() as session:
        store.update_user(
            session,
            name,
            role=body.role,
            password_hash=password_hash,
            display_name=body.display_name,
            email=body.email,
            active=body.active,
        )
        changed = sorted(body.model_dump(exclude_none=True))
        audit.record(session, principal.name, "user.update", name, {"fields": changed})
        return _user_out(session, name)


@router.delete("/users/{name}", status_code=204, responses=error_responses(401, 403, 404, 409))
def delete_user(request: Request, name: Name, principal: Admin) -> Response:
    """Remove a user with their tokens and team memberships."""
    with services_of(request).session() as session:
        store.delete_user(session, name)
        audit.record(session, principal.name, "user.delete", name)
    return Response(status_code=204)


@router.get("/teams", response_model=list[TeamOut], responses=error_responses(401, 403))
def list_teams(
    request: Request, _p: Annotated[Principal, Depends(require(Permission.WORKFLOWS_READ))]
) -> list[TeamOut]:
    """Teams and members (readable by all: approvals name teams)."""
    with services_of(request).session() as session:
        return [TeamOut.of(t) for t in store.list_teams(session)]


@router.post(
    "/teams", response_model=TeamOut, status_code=201, responses=error_responses(401, 403, 404, 409)
)
def create_team(request: Request, body: TeamCreate, principal: Admin) -> TeamOut:
    with services_of(request).session() as session:
        store.create_team(session, body.name, body.display_name)
        for member in body.members:
            store.add_member(session, body.name, member)
        audit.record(session, principal.name, "team.create", body.name, {"members": body.members})
        return TeamOut.of(store.get_team(session, body.name))


@router.get("/teams/{team}", response_model=TeamOut, responses=error_responses(401, 403, 404))
def get_team(
    request: Request,
    team: Name,
    _p: Annotated[Principal, Depends(require(Permission.WORKFLOWS_READ))],
) -> TeamOut:
    with services_of(request).session() as session:
        return TeamOut.of(store.get_team(session, team))


@router.delete("/teams/{team}", status_code=204, responses=error_responses(401, 403, 404))
def delete_team(request: Request, team: Name, principal: Admin) -> Response:
    with services_of(request).session() as session:
        store.delete_team(session, team)
        audit.record(session, principal.name, "team.delete", team)
    return Response(status_code=204)


@router.put(
    "/teams/{team}/members/{user}",
    response_model=MembershipOut,
    responses=error_responses(401, 403, 404),
)
def add_member(request: Request, team: Name, user: Name, principal: Admin) -> MembershipOut:
    """Put a user in a team (idempotent: ``changed`` says whether they were already in)."""
    with services_of(request).session() as session:
        changed = store.add_member(session, team, user)
        if changed:
            audit.record(session, principal.name, "team.member.add", team, {"user": user})
    return MembershipOut(team=team, user=user, member=True, changed=changed)


@router.delete(
    "/teams/{team}/members/{user}",
    response_model=MembershipOut,
    responses=error_responses(401, 403, 404),
)
def remove_member(request: Request, team: Name, user: Name, principal: Admin) -> MembershipOut:
    with services_of(request).session() as session:
        store.remove_member(session, team, user)
        audit.record(session, principal.name, "team.member.remove", team, {"user": user})
    return MembershipOut(team=team, user=user, member=False, changed=True)
