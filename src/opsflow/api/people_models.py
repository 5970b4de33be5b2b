"""Request and response bodies for users, teams, tokens and login."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, Field, StrictBool

from opsflow.auth.permissions import Permission, Role
from opsflow.store.tokens import Token
from opsflow.store.users import Team, User

NAME_PATTERN = r"^[a-z0-9][a-z0-9._-]{0,63}$"
NAME_HELP = "lowercase letters, digits, '.', '_' and '-', at most 64 characters"


class UserOut(BaseModel):
    name: str
    display_name: str
    email: str | None
    role: Role
    active: bool
    created_at: datetime
    has_password: bool
    teams: list[str]

    @classmethod
    def of(cls, user: User, teams: list[str]) -> UserOut:
        return cls(
            name=user.name,
            display_name=user.display_name,
            email=user.email,
            role=user.role,
            active=user.active,
            created_at=user.created_at,
            has_password=user.has_password,
            teams=teams,
        )


class Me(UserOut):
    permissions: list[Permission] = Field(
        description="What the role allows; the UI hides what is not here (the server enforces)."
    )
    token_id: str | None = Field(description="The token this request used; null for a password.")
    session_expires_at: datetime | None = Field(
        None, description="When the browser session this request used ends; null otherwise."
    )
    csrf_token: str | None = Field(
        None,
        description="The browser session's CSRF token: send it as the X-CSRF-Token header on "
        "every change made with the session cookie; null without a session.",
    )


class UserCreate(BaseModel):
    name: str = Field(pattern=NAME_PATTERN, description=NAME_HELP)
    role: Role = Role.VIEWER
    password: str | None = Field(None, description="Leave out for a token-only user.")
    display_name: str = Field("", max_length=200)
    email: str | None = Field(None, max_length=320)


class PasswordChange(BaseModel):
    """``PATCH /me``: your own new password, proven by the current one."""

    current_password: str = Field(description="Your password now.")
    password: str = Field(description="The new password, at least 8 characters.")


class PasswordChanged(BaseModel):
    user: str
    sessions_ended: int = Field(description="Your other browser sessions, now signed out.")
    login_tokens_revoked: int = Field(
        description="Your other log-in tokens (from POST /auth/login), now revoked; API tokens "
        "made with `opsflow tokens create` stay valid."
    )


class UserPatch(BaseModel):
    role: Role | None = None
    password: str | None = None
    display_name: str | None = Field(None, max_length=200)
    email: str | None = Field(None, max_length=320)
    active: StrictBool | None = None


class TeamOut(BaseModel):
    name: str
    display_name: str
    created_at: datetime
    members: list[str]

    @classmethod
    def of(cls, team: Team) -> TeamOut:
        return cls(
            name=team.name,
            display_name=team.display_name,
            created_at=team.created_at,
            members=list(team.members),
        )


class TeamCreate(BaseModel):
    name: str = Field(pattern=NAME_PATTERN, description=NAME_HELP)
    display_name: str = Field("", max_length=200)
    members: list[str] = Field(default_factory=list, description="User names to add.")


class MembershipOut(BaseModel):
    team: str
    user: str
    member: bool
    changed: bool


class TokenOut(BaseModel):
    id: str
    name: str
    user: str
    prefix: str = Field(description="The secret's first characters, to recognise it.")
    created_at: datetime
    expires_at: datetime | None
    revoked_at: datetime | None
    last_used_at: datetime | None
    expired: bool
    active: bool

    @classmethod
    def of(cls, token: Token, now: datetime) -> TokenOut:
        expired = token.expires_at is not None and token.expires_at <= now
        return cls(
            id=token.id,
            name=token.name,
            user=token.user_name,
            prefix=token.prefix,
            created_at=token.created_at,
            expires_at=token.expires_at,
            revoked_at=token.revoked_at,
            last_used_at=token.last_used_at,
            expired=expired,
            active=not expired and token.revoked_at is None,
        )


class TokenCreate(BaseModel):
    name: str = Field("", max_length=200)
    user: str | None = Field(None, description="Whose token (admins only); default: yours.")
    expires_in: str | None = Field(None, description="Lifetime such as 30d or 12h.")
    expires_at: datetime | None = Field(None, description="Expiry instant, with a time zone.")


class TokenCreated(BaseModel):
    """The only time the secret is shown: store it now."""

    id: str
    token: str
    name: str
    user: str
    prefix: str
    expires_at: datetime | None


class LoginRequest(BaseModel):
    username: str
    password: str
    expires_in: str | None = Field(
        None, description="Token lifetime; default 24h (not with `session`)."
    )
    session: bool = Field(
        False,
        description="true (the web UI): open a browser session, set as an HttpOnly cookie with "
        "its CSRF token in the `opsflow_csrf` cookie, instead of issuing a token.",
    )


class LoginResult(BaseModel):
    token: str | None = Field(description="The new API token; null with `session`.")
    token_id: str | None = Field(description="Its id; null with `session`.")
    expires_at: datetime | None = Field(description="When the token or session expires.")
    user: UserOut
    csrf_token: str | None = Field(
        None,
        description="With `session`: send it as the X-CSRF-Token header on every change "
        "(also in the `opsflow_csrf` cookie and in GET /me).",
    )
