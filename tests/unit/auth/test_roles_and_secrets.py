"""Roles grant exactly the permissions the product promises; secrets are hashed and checked."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from opsflow.auth.passwords import hash_password, verify_password
from opsflow.auth.permissions import ROLE_PERMISSIONS, Permission, Role
from opsflow.auth.tokens import expiry, hash_secret, new_secret, parse_lifetime
from opsflow.errors import InvalidInput


def test_each_role_grants_exactly_its_permissions() -> None:
    viewer = {"workflows:list", "workflows:read", "executions:read"}
    operator = viewer | {
        "workflows:run",
        "executions:cancel",
        "executions:retry",
        "executions:cleanup",
        "approvals:respond",
    }
    editor = operator | {"workflows:update"}
    admin = editor | {
        "agents:manage",
        "secrets:manage",
        "connections:manage",
        "users:manage",
        "audit:read",
    }
    assert {str(p) for p in ROLE_PERMISSIONS[Role.VIEWER]} == viewer
    assert {str(p) for p in ROLE_PERMISSIONS[Role.OPERATOR]} == operator
    assert {str(p) for p in ROLE_PERMISSIONS[Role.EDITOR]} == editor
    assert {str(p) for p in ROLE_PERMISSIONS[Role.ADMIN]} == admin == {str(p) for p in Permission}


def test_token_secrets_are_random_and_only_their_hash_is_kept() -> None:
    one, two = new_secret(), new_secret()
    assert one.secret != two.secret and one.secret.startswith("opf_")
    assert one.secret_hash == hash_secret(one.secret) and one.secret not in one.secret_hash
    assert len(one.secret_hash) == 64 and one.prefix == one.secret[:12]


def test_passwords_hash_with_argon2_and_verify() -> None:
    stored = hash_password("a long password")
    assert stored.startswith("$argon2id$")
    assert verify_password(stored, "a long password")
    assert not verify_password(stored, "another password")
    assert not verify_password("not a hash", "a long password")
    with pytest.raises(InvalidInput, match="at least 8"):
        hash_password("short")


def test_token_lifetimes() -> None:
    now = datetime(2030, 1, 1, tzinfo=UTC)
    assert parse_lifetime("30d") == timedelta(days=30)
    assert expiry(now, "1h30m", None) == now + timedelta(hours=1, minutes=30)
    assert expiry(now, None, None) is None
    with pytest.raises(InvalidInput, match="not a duration"):
        parse_lifetime("soon")
    with pytest.raises(InvalidInput, match="longer than zero"):
        parse_lifetime("0s")
    with pytest.raises(InvalidInput, match="not both"):
        expiry(now, "1d", now + timedelta(days=1))
    with pytest.raises(InvalidInput, match="time zone"):
        expiry(now, None, datetime(2031, 1, 1))
