"""The connections API on both databases: values go in and never come out, are stored
encrypted, are checked per type (422 naming the field), and only ``connections:manage`` may
touch them; a test calls out for real and records when the connection last worked."""

from __future__ import annotations

import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import asyncssh
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from opsflow.store.connections import ConnectionRow
from opsflow.store.db import Database
from tests.sshd import SshHost, SshUserKey

from .conftest import BEARER, ApiServer

PASSWORD = "ssh-Pa55word-never-shown-77"
TOKEN = "http-token-never-shown-0123"


def _key() -> str:
    return asyncssh.generate_private_key("ssh-ed25519").export_private_key().decode()


def _put(client: TestClient, name: str, body: dict[str, Any]) -> Any:
    return client.put(f"/api/v1/connections/{name}", json=body)


def test_create_list_get_change_and_delete_never_return_values(client: TestClient) -> None:
    key = _key()
    bodies: list[str] = []

    def call(method: str, path: str, **kwargs: Any) -> Any:
        response = client.request(method, f"/api/v1{path}", **kwargs)
        bodies.append(response.text)
        return response

    created = call(
        "PUT",
        "/connections/prod-ssh",
        json={
            "type": "ssh",
            "values": {"user": "deploy", "private_key": key, "port": 2222, "accept_new": True},
            "description": "production hosts",
        },
    )
    call(
        "PUT",
        "/connections/api",
        json={
            "type": "http",
            "values": {"base_url": "https://api.example", "auth": "bearer", "token": TOKEN},
        },
    )
    # An edit form leaves the write-only key empty: keep it, change the password-less rest.
    replaced = call(
        "PUT",
        "/connections/prod-ssh",
        json={
            "type": "ssh",
            "values": {"user": "ops", "password": PASSWORD},
            "keep": ["private_key"],
        },
    )
    listed = call("GET", "/connections")
    one = call("GET", "/connections/prod-ssh")
    disabled = call("PATCH", "/connections/prod-ssh", json={"enabled": False})
    deleted = call("DELETE", "/connections/api")
    gone = call("GET", "/connections/api")
    audit = call("GET", "/audit", params={"action": "connection."})

    assert created.status_code == 201, created.text
    assert created.json()["created"] is True
    assert created.json()["fields"] == ["accept_new", "port", "private_key", "user"]
    assert created.json()["reference"] == "connection: prod-ssh"
    assert replaced.status_code == 200, replaced.text
    assert replaced.json()["fields"] == ["password", "private_key", "user"]  # a full replace
    assert replaced.json()["description"] == "production hosts"  # left out, so kept
    assert [(c["name"], c["type"]) for c in listed.json()] == [("api", "http"), ("prod-ssh", "ssh")]
    assert one.json()["enabled"] is True and one.json()["last_test_ok"] is None
    assert disabled.json()["enabled"] is False
    assert deleted.status_code == 200 and gone.status_code == 404
    assert gone.json()["detail"] == "connection 'api' not found"
    actions = [(e["action"], e["target"]) for e in audit.json()["items"]]
    assert actions == [
        ("connection.delete", "api"),
        ("connection.disable", "prod-ssh"),
        ("connection.update", "prod-ssh"),
        ("connection.create", "api"),
        ("connection.create", "prod-ssh"),
    ]
    for body in bodies:
        for value in (PASSWORD, TOKEN, *[line for line in key.splitlines() if len(line) > 8]):
            assert value not in body


def test_values_are_stored_encrypted(client: TestClient, database: Database) -> None:
    key = _key()
    _put(
        client,
        "db",
        {"type": "ssh", "values": {"user": "u", "password": PASSWORD, "private_key": key}},
    ).raise_for_status()
    with database.session() as session:
        row = session.scalars(select(ConnectionRow)).one()
        raw = repr(row.ciphertext) + repr(row.fields) + row.description
    assert PASSWORD not in raw and PASSWORD.encode().hex() not in raw
    assert "BEGIN OPENSSH" not in raw
    assert row.fields == ["password", "private_key", "user"]


@pytest.mark.parametrize(
    ("body", "loc", "words"),
    [
        ({"type": "ssh", "values": {"user": "u"}}, "values.private_key", "private_key or password"),
        (
            {"type": "ssh", "values": {"user": "u", "private_key": "not a key"}},
            "values.private_key",
            "is not a private key",
        ),
        (
            {"type": "ssh", "values": {"user": "u", "password": "p", "port": 70000}},
            "values.port",
            "less than or equal to 65535",
        ),
        ({"type": "http", "values": {"base_url": "ftp://x"}}, "values.base_url", "http"),
        (
            {"type": "http", "values": {"base_url": "https://x", "auth": "bearer"}},
            "values.token",
            "auth bearer needs token",
        ),
        (
            {"type": "http", "values": {"base_url": "https://x", "colour": "red"}},
            "values.colour",
            "http connections have no field 'colour'",
        ),
        ({"type": "notify", "values": {"url": "nonsense://x"}}, "values.url", "Apprise"),
        ({"type": "terraform", "values": {"env": {"1BAD": "x"}}}, "values.env", "variable name"),
        ({"type": "git", "values": {}}, "values.token", "exactly one of token or deploy_key"),
        ({"type": "ftp", "values": {}}, "type", "ssh"),
    ],
)
def test_bad_values_answer_422_naming_the_field(
    client: TestClient, body: dict[str, Any], loc: str, words: str
) -> None:
    response = _put(client, "bad", body)
    listed = client.get("/api/v1/connections").json()

    assert response.status_code == 422, response.text
    errors = response.json()["errors"]
    assert any(e["loc"].endswith(loc) and words in e["msg"] for e in errors), errors
    assert listed == []  # nothing half-written


def test_a_bad_name_is_refused(client: TestClient) -> None:
    response = _put(client, "no spaces", {"type": "notify", "values": {"url": "json://x"}})
    assert response.status_code == 422
    assert response.json()["errors"][0]["loc"] == "name"


def test_permission_matrix(client: TestClient, token_for: Callable[[str], str]) -> None:
    _put(
        client,
        "chat",
        {"type": "notify", "values": {"url": "json://127.0.0.1:9/x"}, "description": "team chat"},
    ).raise_for_status()
    admin_headers = dict(client.headers)
    tokens = {role: token_for(role) for role in ("viewer", "operator", "editor")}
    outcomes: dict[str, dict[str, int]] = {}
    for role, token in tokens.items():
        client.headers["Authorization"] = f"Bearer {token}"
        listed = client.get("/api/v1/connections")
        outcomes[role] = {
            "list": listed.status_code,
            "get": client.get("/api/v1/connections/chat").status_code,
            "put": _put(client, "x", {"type": "notify", "values": {"url": "json://h"}}).status_code,
            "patch": client.patch("/api/v1/connections/chat", json={"enabled": False}).status_code,
            "test": client.post("/api/v1/connections/chat/test").status_code,
            "delete": client.delete("/api/v1/connections/chat").status_code,
        }
        # Those who may not manage see the name, type, flag and description, nothing else.
        (seen,) = listed.json()
        assert (seen["name"], seen["type"], seen["enabled"], seen["description"]) == (
            "chat",
            "notify",
            True,
            "team chat",
        )
        assert seen["fields"] is None and seen["created_by"] is None
    client.headers.update(admin_headers)
    client.headers.pop("X-CSRF-Token", None)

    forbidden = {"list": 200, "get": 403, "put": 403, "patch": 403, "test": 403, "delete": 403}
    assert outcomes == {"viewer": forbidden, "operator": forbidden, "editor": forbidden}
    assert client.get("/api/v1/connections/chat").json()["created_by"] == "admin"


def test_an_http_connection_test_passes_with_the_right_token_and_fails_without(
    client: TestClient, api_server: ApiServer
) -> None:
    values = {"base_url": api_server.url, "auth": "bearer", "token": BEARER}
    _put(client, "good", {"type": "http", "values": values}).raise_for_status()
    _put(client, "bad", {"type": "http", "values": {**values, "token": "wrong-token-x"}})

    passed = client.post("/api/v1/connections/good/test")
    failed = client.post("/api/v1/connections/bad/test")
    listed = {c["name"]: c for c in client.get("/api/v1/connections").json()}

    assert passed.status_code == 200, passed.text
    assert passed.json()["ok"] is True
    assert passed.json()["detail"] == f"GET {api_server.url} answered 200 OK"
    assert failed.json()["ok"] is False
    assert "401 Unauthorized: the server refused the credentials" in failed.json()["detail"]
    assert api_server.seen[0]["Authorization"] == f"Bearer {BEARER}"
    assert listed["good"]["last_test_ok"] is True and listed["good"]["last_tested_at"]
    assert listed["good"]["last_test_error"] is None
    assert listed["bad"]["last_test_ok"] is False
    assert "refused the credentials" in listed["bad"]["last_test_error"]
    assert BEARER not in failed.text + passed.text


def test_an_unreachable_http_connection_fails_its_test_naming_the_cause(
    client: TestClient,
) -> None:
    _put(client, "down", {"type": "http", "values": {"base_url": "http://127.0.0.1:9"}})
    failed = client.post("/api/v1/connections/down/test", params={"timeout": 3})
    assert failed.json()["ok"] is False
    assert failed.json()["detail"].startswith("GET http://127.0.0.1:9 failed:")


WITH_CONNECTIONS = """
id: uses-connections
steps:
  - {id: call, type: http, connection: api, url: /health}
  - {id: plan, type: terraform, action: plan, connection: api}
  - {id: gone, type: script, connection: nope, run: "true"}
"""


def test_validation_and_saving_warn_of_unusable_connections(client: TestClient) -> None:
    _put(client, "api", {"type": "http", "values": {"base_url": "https://x"}}).raise_for_status()
    headers = {"Content-Type": "application/yaml"}

    checked = client.post("/api/v1/workflows/validate", content=WITH_CONNECTIONS, headers=headers)
    saved = client.post("/api/v1/workflows", content=WITH_CONNECTIONS, headers=headers)

    assert checked.status_code == 200, checked.text
    expected = [
        (
            "steps[1].connection",
            "connection 'api' is of type http; this step needs terraform; the step fails at "
            "once when reached until then",
        ),
        (
            "steps[2].connection",
            "connection 'nope' does not exist; an admin creates it with opsflow connections "
            "set nope --type TYPE; the step fails at once when reached until then",
        ),
    ]
    assert [(w["loc"], w["msg"]) for w in checked.json()["warnings"]] == expected
    # located at the step's connection value, so the editor marks that line, not the document
    line_of = {"steps[1].connection": 5, "steps[2].connection": 6}
    text_lines = WITH_CONNECTIONS.splitlines()
    for warning in checked.json()["warnings"]:
        assert warning["line"] == line_of[warning["loc"]], warning
        column = warning["column"] - 1
        assert text_lines[warning["line"] - 1][column:].startswith(("api", "nope")), warning
    assert saved.status_code == 201, saved.text
    assert saved.json()["warnings"] == checked.json()["warnings"]
    published = client.post("/api/v1/workflows/uses-connections/publish")
    assert published.json()["warnings"] == checked.json()["warnings"]


def test_an_ssh_connection_test_logs_in_and_an_unknown_host_key_fails_with_its_fingerprint(
    client: TestClient, sshd_hosts: list[SshHost], ssh_user_key: SshUserKey
) -> None:
    host = sshd_hosts[0]
    values = host.connection_values(ssh_user_key)
    _put(client, "good", {"type": "ssh", "values": values}).raise_for_status()
    stranger = {
        **values,
        "known_hosts": sshd_hosts[1]
        .known_hosts()
        .replace(f":{sshd_hosts[1].port}]", f":{host.port}]"),
    }
    _put(client, "stranger", {"type": "ssh", "values": stranger}).raise_for_status()

    passed = client.post("/api/v1/connections/good/test", params={"timeout": 10})
    failed = client.post("/api/v1/connections/stranger/test", params={"timeout": 10})

    assert passed.json()["ok"] is True, passed.text
    assert passed.json()["connection"]["last_test_ok"] is True
    assert failed.json()["ok"] is False
    assert host.fingerprint in failed.json()["detail"]
    assert failed.json()["connection"]["last_test_error"] == failed.json()["detail"]


def test_a_notify_connection_test_sends_to_a_webhook_and_only_checks_chat_urls(
    client: TestClient, api_server: ApiServer
) -> None:
    hook = {"url": f"json://{api_server.url.removeprefix('http://')}/hook"}
    _put(client, "hook", {"type": "notify", "values": hook}).raise_for_status()
    chat = {"url": "slack://T1234/B5678/abcdefghij0123456789"}
    _put(client, "chat", {"type": "notify", "values": chat}).raise_for_status()

    sent = client.post("/api/v1/connections/hook/test").json()
    checked = client.post("/api/v1/connections/chat/test").json()

    assert sent["ok"] is True and sent["detail"] == "a test message was accepted by 1 webhook URL"
    ((path, body),) = api_server.posted
    assert path == "/hook" and "opsflow connection test" in body
    assert checked["ok"] is True
    assert checked["detail"] == (
        "1 Apprise URL well formed; nothing sent (only webhooks get a test)"
    )
    assert client.get("/api/v1/connections/chat").json()["last_test_ok"] is True


def test_a_git_connection_test_runs_ls_remote_and_terraform_is_checked_for_form(
    client: TestClient, tmp_path: Path
) -> None:
    repo = tmp_path / "repo.git"
    subprocess.run(["git", "init", "-q", "--bare", str(repo)], check=True)
    work = tmp_path / "work"
    subprocess.run(["git", "clone", "-q", str(repo), str(work)], check=True, capture_output=True)
    subprocess.run(
        [
            "git",
            "-C",
            str(work),
            "-c",
            "user.name=t",
            "-c",
            "user.email=t@x",
            "commit",
            "-q",
            "--allow-empty",
            "-m",
            "first",
        ],
        check=True,
    )
    subprocess.run(
        ["git", "-C", str(work), "push", "-q", "origin", "HEAD"], check=True, capture_output=True
    )
    token = {"token": "git-token-never-shown-42"}
    _put(client, "repo", {"type": "git", "values": {**token, "url": f"file://{repo}"}})
    _put(client, "gone", {"type": "git", "values": {**token, "url": f"file://{tmp_path}/nope"}})
    _put(client, "cloud", {"type": "terraform", "values": {"env": {"TF_VAR_x": "1"}}})

    found = client.post("/api/v1/connections/repo/test").json()
    missing = client.post("/api/v1/connections/gone/test").json()
    form = client.post("/api/v1/connections/cloud/test").json()

    assert found["ok"] is True, found
    assert found["detail"] == f"git ls-remote file://{repo} answered"
    assert missing["ok"] is False
    assert missing["detail"].startswith(f"git ls-remote file://{tmp_path}/nope failed:")
    assert "git-token-never-shown-42" not in missing["detail"]
    assert form["ok"] is True and "form only" in form["detail"]
