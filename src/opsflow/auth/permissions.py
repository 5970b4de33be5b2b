"""Roles and the named permissions each grants, in one table.

Every API route declares one `Permission`; `ROLE_PERMISSIONS` is the only place that says
which role holds it. The roles nest: each grants everything the one below it does.
"""

from __future__ import annotations

from enum import StrEnum


class Permission(StrEnum):
    WORKFLOWS_LIST = "workflows:list"
    WORKFLOWS_READ = "workflows:read"
    WORKFLOWS_UPDATE = "workflows:update"
    WORKFLOWS_RUN = "workflows:run"
    EXECUTIONS_READ = "executions:read"
    EXECUTIONS_CANCEL = "executions:cancel"
    EXECUTIONS_RETRY = "executions:retry"
    EXECUTIONS_CLEANUP = "executions:cleanup"  # undo what a run applied (terraform destroy)
    APPROVALS_RESPOND = "approvals:respond"
    AGENTS_MANAGE = "agents:manage"
    SECRETS_MANAGE = "secrets:manage"
    CONNECTIONS_MANAGE = "connections:manage"  # create, change, test, delete connections
    USERS_MANAGE = "users:manage"
    AUDIT_READ = "audit:read"


class Role(StrEnum):
    ADMIN = "admin"
    EDITOR = "editor"
    OPERATOR = "operator"
    VIEWER = "viewer"


_VIEWER = frozenset(
    {Permission.WORKFLOWS_LIST, Permission.WORKFLOWS_READ, Permission.EXECUTIONS_READ}
)
_OPERATOR = _VIEWER | {
    Permission.WORKFLOWS_RUN,
    Permission.EXECUTIONS_CANCEL,
    Permission.EXECUTIONS_RETRY,
    Permission.EXECUTIONS_CLEANUP,
    Permission.APPROVALS_RESPOND,
}
_EDITOR = _OPERATOR | {Permission.WORKFLOWS_UPDATE}

ROLE_PERMISSIONS: dict[Role, frozenset[Permission]] = {
    Role.VIEWER: _VIEWER,
    Role.OPERATOR: _OPERATOR,
    Role.EDITOR: _EDITOR,
    Role.ADMIN: frozenset(Permission),
}


def has_permission(role: Role, permission: Permission) -> bool:
    """Whether ``role`` grants ``permission``."""
    return permission in ROLE_PERMISSIONS[role]
