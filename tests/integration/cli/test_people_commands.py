"""``opsflow users``, ``teams`` and ``tokens`` against a real server, and what 401/403 say."""

from __future__ import annotations

import json

import httpx
import pytest

from tests.integration.cli.conftest import Server

# The CLI side of people management does not vary by database (the API tests run these
# endpoints on both); one SQLite server keeps this module inside the time budget.
pytestmark = pytest.mark.parametrize("server_db_url", ["sqlite"], indirect=True, scope="module")


def _create_user(server: Server, name: str, role: str) -> None:
    response = server.api.post("/users", json={"name": name, "role": role})
    assert response.status_code == 201, response.text


def test_a_viewer_token_reads_but_gets_a_clear_403_on_changes(server: Server) -> None:
    cli = server.cli
    created = cli(
        "users", "create", "vera", "--role", "viewer", "--password-stdin", input="vera-password-1\n"
    )
    token = json.loads(
        cli("tokens", "create", "--user", "vera", "--name", "ci", "-o", "json").stdout
    )
    as_vera = {"OPSFLOW_TOKEN": token["token"]}

    listed = cli("workflows", "list", env=as_vera)
    refused = cli("users", "create", "mallory", "--role", "admin", env=as_vera)

    assert (created.returncode, created.stdout) == (0, "created user vera (viewer)\n")
    assert token["user"] == "vera"
    assert listed.returncode == 0, listed.stderr
    assert refused.returncode == 1
    first_line = refused.stderr.splitlines()[0]
    assert first_line == (
        "error: permission denied: requires permission users:manage; your role is viewer"
    )
    assert "opsflow users set-role" in refused.stderr


def test_a_revoked_token_is_refused_with_the_reason(server: Server) -> None:
    cli = server.cli
    token = server.api.post("/tokens", json={"name": "short-lived"}).json()

    revoked = cli("tokens", "revoke", token["id"])
    listed = json.loads(cli("tokens", "list", "-o", "json").stdout)
    refused = cli("workflows", "list", env={"OPSFLOW_TOKEN": token["token"]})

    assert (revoked.returncode, revoked.stdout) == (0, f"{token['id']}: revoked\n")
    assert next(t for t in listed if t["id"] == token["id"])["active"] is False
    assert refused.returncode == 1
    assert refused.stderr.startswith("error: not authenticated: ")
    assert "revoked" in refused.stderr.splitlines()[0]
    assert "--token / OPSFLOW_TOKEN was refused" in refused.stderr


def test_token_create_prints_the_secret_once_with_its_expiry(server: Server) -> None:
    created = server.cli("tokens", "create", "--name", "deploy-bot", "--expires-in", "30d")
    listed = server.cli("tokens", "list")

    assert created.returncode == 0, created.stderr
    secret = created.stdout.split("token: ", 1)[1].split()[0]
    assert secret.startswith("opf_")
    assert "expires: 20" in created.stdout
    assert "deploy-bot" in listed.stdout
    assert secret not in listed.stdout


def test_user_create_generates_a_password_that_signs_in(server: Server) -> None:
    cli = server.cli

    created = cli("users", "create", "eddie", "--role", "editor")
    password = created.stdout.split("password: ", 1)[1].split()[0]
    login = httpx.post(
        f"{server.url}/api/v1/auth/login", json={"username": "eddie", "password": password}
    )

    assert created.returncode == 0, created.stderr
    assert login.status_code == 200, login.text


def test_set_role_disable_and_delete_a_user(server: Server) -> None:
    cli = server.cli
    _create_user(server, "olga", "viewer")

    promoted = cli("users", "set-role", "olga", "operator")
    disabled = cli("users", "disable", "olga", "-o", "json")
    deleted = cli("users", "delete", "olga", "--yes")
    missing = cli("users", "set-role", "olga", "viewer")

    assert promoted.stdout == "olga: role is now operator\n"
    olga = json.loads(disabled.stdout)
    assert (olga["name"], olga["role"], olga["active"]) == ("olga", "operator", False)
    assert deleted.stdout == "olga: deleted\n"
    assert missing.returncode == 1
    assert missing.stderr.startswith("error: Not found: ")


def test_teams_create_and_change_members(server: Server) -> None:
    cli = server.cli
    _create_user(server, "pat", "operator")
    _create_user(server, "sam", "operator")

    created = cli("teams", "create", "platform", "--member", "pat")
    added = cli("teams", "add-member", "platform", "sam")
    again = cli("teams", "add-member", "platform", "sam")
    removed = cli("teams", "remove-member", "platform", "pat")
    teams = json.loads(cli("teams", "list", "-o", "json").stdout)

    assert created.stdout == "created team platform\n"
    assert added.stdout == "platform: added sam\n"
    assert again.stdout == "platform: sam was already a member\n"
    assert removed.stdout == "platform: removed pat\n"
    assert next(t for t in teams if t["name"] == "platform")["members"] == ["sam"]


def test_without_a_token_the_admin_token_in_the_data_dir_is_used(server: Server) -> None:
    anonymous = {"OPSFLOW_TOKEN": ""}

    found = server.cli("users", "list", env={**anonymous, "OPSFLOW_DATA_DIR": str(server.data_dir)})
    missing = server.cli("users", "list", env=anonymous)

    assert found.returncode == 0, found.stderr
    assert "admin" in found.stdout
    assert missing.returncode == 1
    assert missing.stderr.startswith("error: not authenticated: ")
    assert "pass --token or set OPSFLOW_TOKEN" in missing.stderr


def test_a_user_changes_their_own_password_with_me_set_password(server: Server) -> None:
    cli = server.cli
    created = cli(
        "users", "create", "petra", "--role", "operator", "--password-stdin", input="old-pass-123\n"
    )
    assert created.returncode == 0, created.stderr
    login = httpx.post(
        f"{server.url}/api/v1/auth/login", json={"username": "petra", "password": "old-pass-123"}
    )
    as_petra = {"OPSFLOW_TOKEN": login.json()["token"]}

    wrong = cli("me", "set-password", "--stdin", input="not-it-123\nnew-pass-456\n", env=as_petra)
    changed = cli(
        "me", "set-password", "--stdin", input="old-pass-123\nnew-pass-456\n", env=as_petra
    )

    assert wrong.returncode == 1
    assert "body.current_password: this is not your current password" in wrong.stderr
    assert changed.returncode == 0, changed.stderr
    assert changed.stdout.startswith("password changed for petra; signed out 0 other browser ")
    me = f"{server.url}/api/v1/me"
    assert httpx.get(me, auth=("petra", "new-pass-456")).status_code == 200
    assert httpx.get(me, auth=("petra", "old-pass-123")).status_code == 401
    shown = cli("me", "show", env=as_petra)  # the token this change used stays valid
    assert (shown.returncode, shown.stdout) == (0, "petra (operator); teams: none\n")


def test_users_create_points_to_the_command_that_changes_a_password(server: Server) -> None:
    created = server.cli("users", "create", "quinn", "--role", "viewer")
    assert created.returncode == 0, created.stderr
    assert "`opsflow me set-password`" in created.stdout
    assert "set-password" in server.cli("me", "--help").stdout
