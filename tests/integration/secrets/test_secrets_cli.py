"""``opsflow secrets`` against a real server: values go in by stdin or flag and never come out."""

from __future__ import annotations

import json

import pytest

from opsflow.auth.secrets import SecretBox, SecretVault, load_master_key
from opsflow.store.db import Database
from tests.integration.cli.conftest import (  # noqa: F401  (fixtures used by name)
    Server,
    server,
    server_db_url,
)

# The CLI is a thin client; the API tests cover both databases, one SQLite server suffices here.
pytestmark = pytest.mark.parametrize("server_db_url", ["sqlite"], indirect=True, scope="module")

PEM = "-----BEGIN KEY-----\nAAAAB3NzaC1yc2EAAAADAQABAAABAQ\n-----END KEY-----\n"


def _stored(server: Server, server_db_url: str, *names: str) -> dict[str, str]:  # noqa: F811
    """What the server stored, decrypted with its own key (as the runtime would)."""
    db = Database(server_db_url)
    try:
        vault = SecretVault(db, SecretBox(load_master_key(server.data_dir, {})))
        with db.session() as session:
            return vault.reveal(session, names)
    finally:
        db.dispose()


def test_set_list_and_delete_without_the_value_ever_printed(
    server: Server,  # noqa: F811
    server_db_url: str,  # noqa: F811
) -> None:
    cli = server.cli
    created = cli(
        "secrets", "set", "DB_PASSWORD", "--from-stdin", "--description", "pg", input="hunter2-pg\n"
    )
    key = cli("secrets", "set", "SSH_KEY", "--from-stdin", "-o", "json", input=PEM)
    flagged = cli("secrets", "set", "DB_PASSWORD", "--value", "hunter3-pg")
    listed = cli("secrets", "list")
    stored = _stored(server, server_db_url, "DB_PASSWORD", "SSH_KEY")
    unconfirmed = cli("secrets", "delete", "SSH_KEY")
    deleted = cli("secrets", "delete", "SSH_KEY", "--yes")

    assert (created.returncode, created.stdout) == (
        0,
        "created secret DB_PASSWORD (version 1)\nuse it in a workflow as "
        "{{ secrets.DB_PASSWORD }}\n",
    )
    assert json.loads(key.stdout)["created"] is True
    assert flagged.returncode == 0
    assert flagged.stdout.startswith("replaced secret DB_PASSWORD (version 2)\n")
    assert flagged.stderr == (
        "warning: --value leaves the secret in your shell history and the process list; "
        "prefer --from-stdin\n"
    )
    # one trailing newline is dropped from a one-line value; a PEM key keeps its own
    assert stored == {"DB_PASSWORD": "hunter3-pg", "SSH_KEY": PEM}
    assert listed.stdout.split("\n")[0].split() == [
        "NAME",
        "DESCRIPTION",
        "VERSION",
        "UPDATED",
        "UPDATED",
        "BY",
    ]
    assert [line.split()[:3] for line in listed.stdout.splitlines()[1:]] == [
        ["DB_PASSWORD", "pg", "2"],
        ["SSH_KEY", "-", "1"],
    ]
    assert unconfirmed.returncode == 2
    assert "pass --yes" in unconfirmed.stderr
    assert (deleted.returncode, deleted.stdout) == (0, "SSH_KEY: deleted\n")
    everything = created.stdout + key.stdout + flagged.stdout + listed.stdout + deleted.stdout
    for value in ("hunter2", "hunter3", "AAAAB3NzaC1yc2E"):
        assert value not in everything


def test_refusals_are_clear(server: Server) -> None:  # noqa: F811
    cli = server.cli
    server.api.post("/users", json={"name": "eddie", "role": "editor"}).raise_for_status()
    token = server.api.post("/tokens", json={"user": "eddie", "name": "t"}).json()["token"]

    as_editor = cli("secrets", "list", env={"OPSFLOW_TOKEN": token})
    bad_name = cli("secrets", "set", "db-password", "--from-stdin", input="x1234\n")
    no_value = cli("secrets", "set", "DB_PASSWORD")

    assert as_editor.returncode == 1
    assert as_editor.stderr.splitlines()[0] == (
        "error: permission denied: requires permission secrets:manage; your role is editor"
    )
    assert bad_name.returncode == 1
    assert bad_name.stderr.splitlines()[1].startswith(
        "  name: invalid secret name 'db-password': use letters, digits and '_'"
    )
    assert no_value.returncode == 2
    assert no_value.stderr.startswith("error: no value given\nhint: pipe it in with --from-stdin")
