"""The secrets API on both databases: values go in and never come out, are stored encrypted,
need the server's key to read, and only ``secrets:manage`` may touch them."""

from __future__ import annotations

import base64
from collections.abc import Callable
from typing import Any

import pytest
from fastapi.testclient import TestClient

from opsflow.auth.masking import literal_variants
from opsflow.auth.secrets import SecretUndecryptable, SecretVault, UnknownSecret, key_id
from opsflow.store import secrets as store
from opsflow.store.db import Database

VALUE = "pg-Pa55word/with+symbols=ü"
NEW_VALUE = "rotated-9f8e7d6c5b4a"
OTHER_KEY = bytes(range(32))


def _leaks(text: str, *values: str) -> list[str]:
    """Every form of ``values`` (plain, encodings, base64) found in ``text``."""
    found = []
    for value in values:
        forms = literal_variants(value) | {
            base64.b64encode(value.encode()).decode().rstrip("="),
            base64.urlsafe_b64encode(value.encode()).decode().rstrip("="),
        }
        found += [form for form in forms if form in text]
    return found


class Recorder:
    """Sends requests through the test client and keeps every response body."""

    def __init__(self, client: TestClient) -> None:
        self.client = client
        self.bodies: list[str] = []

    def __call__(self, method: str, path: str, **kwargs: Any) -> Any:
        response = self.client.request(method, f"/api/v1{path}", **kwargs)
        self.bodies.append(response.text)
        return response


def test_create_replace_read_and_delete_never_return_the_value(client: TestClient) -> None:
    call = Recorder(client)

    created = call("PUT", "/secrets/DB_PASSWORD", json={"value": VALUE, "description": "pg"})
    replaced = call("PUT", "/secrets/DB_PASSWORD", json={"value": NEW_VALUE})
    call("PUT", "/secrets/API_TOKEN", json={"value": "tok_0123456789"})
    listed = call("GET", "/secrets")
    one = call("GET", "/secrets/DB_PASSWORD")
    deleted = call("DELETE", "/secrets/API_TOKEN")
    gone = call("GET", "/secrets/API_TOKEN")
    audit = call("GET", "/audit", params={"action": "secret."})
    schemas = call("GET", "/openapi.json").json()["components"]["schemas"]

    assert created.status_code == 201, created.text
    assert created.json()["created"] is True
    assert created.json()["version"] == 1
    assert created.json()["reference"] == "{{ secrets.DB_PASSWORD }}"
    assert created.json()["created_by"] == "admin"
    assert replaced.status_code == 200, replaced.text
    assert (replaced.json()["created"], replaced.json()["version"]) == (False, 2)
    assert replaced.json()["description"] == "pg"  # left out, so kept
    assert [s["name"] for s in listed.json()] == ["API_TOKEN", "DB_PASSWORD"]
    assert one.json()["version"] == 2 and one.json()["updated_by"] == "admin"
    assert deleted.status_code == 200 and deleted.json()["name"] == "API_TOKEN"
    assert gone.status_code == 404
    assert gone.json()["detail"] == "secret 'API_TOKEN' not found"
    actions = [(e["action"], e["target"]) for e in audit.json()["items"]]
    assert actions == [
        ("secret.delete", "API_TOKEN"),
        ("secret.create", "API_TOKEN"),
        ("secret.update", "DB_PASSWORD"),
        ("secret.create", "DB_PASSWORD"),
    ]
    assert "value" in schemas["SecretPut"]["properties"]
    assert "value" not in schemas["SecretOut"]["properties"]
    assert "value" not in schemas["SecretSet"]["properties"]
    for body in call.bodies:
        assert _leaks(body, VALUE, NEW_VALUE, "tok_0123456789") == []


def test_the_stored_value_is_ciphertext_that_only_the_server_key_opens(
    client: TestClient,
    vault_with_key: Callable[..., SecretVault],
    database: Database,
) -> None:
    client.put("/api/v1/secrets/DB_PASSWORD", json={"value": VALUE}).raise_for_status()
    vault, wrong = vault_with_key(), vault_with_key(OTHER_KEY)

    with database.session() as session:
        blob = store.get_ciphertexts(session, ["DB_PASSWORD", "MISSING"])["DB_PASSWORD"]
        revealed = vault.reveal(session, ["DB_PASSWORD"])
    with database.session() as session, pytest.raises(SecretUndecryptable) as caught:
        wrong.reveal(session, ["DB_PASSWORD"])

    assert revealed == {"DB_PASSWORD": VALUE}
    assert VALUE.encode() not in blob
    assert base64.b64encode(VALUE.encode()) not in blob
    assert VALUE.encode().hex().encode() not in blob
    assert blob[1:5].hex() == vault.box.key_id
    assert caught.value.message.startswith(
        f"secret 'DB_PASSWORD' was encrypted under key {vault.box.key_id}, but this server's "
        f"key is {key_id(OTHER_KEY)}: start the server with the OPSFLOW_SECRET_KEY"
    )


def test_revealing_an_unknown_secret_names_it_and_the_defined_ones(
    client: TestClient,
    vault_with_key: Callable[..., SecretVault],
    database: Database,
) -> None:
    for name in ("B", "A"):
        client.put(f"/api/v1/secrets/{name}", json={"value": VALUE}).raise_for_status()
    vault = vault_with_key()

    with database.session() as session, pytest.raises(UnknownSecret) as caught:
        vault.reveal(session, ["A", "DB_PASSWORD"])
    with database.session() as session:
        names = vault.names(session)
        nothing = vault.reveal(session, [])

    assert caught.value.message == "unknown secret 'DB_PASSWORD'; defined: A, B"
    assert caught.value.unknown == ["DB_PASSWORD"]
    assert [p.loc for p in caught.value.problems] == ["secrets.DB_PASSWORD"]
    assert names == ["A", "B"]
    assert nothing == {}


def test_an_editor_gets_403_naming_secrets_manage_everywhere(
    client: TestClient, token_for: Callable[[str], str]
) -> None:
    client.put("/api/v1/secrets/DB_PASSWORD", json={"value": VALUE}).raise_for_status()
    editor = {"Authorization": f"Bearer {token_for('editor')}"}
    requests: list[tuple[str, str, dict[str, Any] | None]] = [
        ("GET", "/api/v1/secrets", None),
        ("GET", "/api/v1/secrets/DB_PASSWORD", None),
        ("PUT", "/api/v1/secrets/DB_PASSWORD", {"value": "overwritten!"}),
        ("DELETE", "/api/v1/secrets/DB_PASSWORD", None),
    ]
    for method, path, body in requests:
        refused = client.request(method, path, json=body, headers=editor)
        assert refused.status_code == 403, (method, path)
        assert refused.json()["detail"] == (
            "requires permission secrets:manage; your role is editor"
        )
    anonymous = client.request("GET", "/api/v1/secrets", headers={"Authorization": ""})
    assert anonymous.status_code == 401
    assert client.get("/api/v1/secrets/DB_PASSWORD").json()["version"] == 1


def test_bad_names_and_values_get_422_naming_the_field(client: TestClient) -> None:
    bad_name = client.put("/api/v1/secrets/db-password", json={"value": VALUE})
    empty = client.put("/api/v1/secrets/DB_PASSWORD", json={"value": ""})
    missing = client.put("/api/v1/secrets/DB_PASSWORD", json={"description": "x"})
    short = client.put("/api/v1/secrets/PIN", json={"value": "123"})

    assert bad_name.status_code == 422
    assert bad_name.json()["errors"] == [
        {
            "loc": "name",
            "msg": "invalid secret name 'db-password': use letters, digits and '_', not starting "
            "with a digit (it is used as {{ secrets.NAME }} and as an environment variable "
            "name), at most 128",
        }
    ]
    assert empty.status_code == 422
    assert empty.json()["errors"] == [
        {"loc": "value", "msg": "the value is empty; a secret needs a value"}
    ]
    assert missing.status_code == 422
    assert [e["loc"] for e in missing.json()["errors"]] == ["body.value"]
    assert short.status_code == 201
    assert short.json()["warnings"] == [
        "the value is shorter than 4 characters: logs mask it only where it is a whole line, "
        "not inside longer text"
    ]
