"""``opsflow connections`` against a real server: values go in from files and stdin, never
from argv for a credential, and never come out; test exits 1 when the check fails."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.integration.cli.conftest import (  # noqa: F401  (fixtures used by name)
    Server,
    server,
    server_db_url,
)

from .conftest import BEARER, ApiServer

# The CLI is a thin client; the API tests cover both databases, one SQLite server suffices here.
pytestmark = pytest.mark.parametrize("server_db_url", ["sqlite"], indirect=True, scope="module")


def test_set_list_test_disable_and_delete(
    server: Server,  # noqa: F811
    api_server: ApiServer,
    tmp_path: Path,
) -> None:
    cli = server.cli
    token_file = tmp_path / "token"
    token_file.write_text(BEARER + "\n")
    created = cli(
        "connections",
        "set",
        "api",
        "--type",
        "http",
        "--field",
        f"base_url={api_server.url}",
        "--field",
        "auth=bearer",
        "--field-file",
        f"token={token_file}",
        "--description",
        "the API",
    )
    from_stdin = cli(
        "connections",
        "set",
        "cloud",
        "--type",
        "terraform",
        "--from-file",
        "-",
        "-o",
        "json",
        input="env:\n  AWS_SECRET_ACCESS_KEY: cloud-secret-from-stdin-99\n",
    )
    on_argv = cli(
        "connections",
        "set",
        "leaky",
        "--type",
        "http",
        "--field",
        "base_url=https://x",
        "--field",
        "auth=bearer",
        "--field",
        "token=oops-123",
    )
    passed = cli("connections", "test", "api")
    listed = cli("connections", "list")
    disabled = cli("connections", "set", "api", "--disable")
    cli(
        "connections",
        "set",
        "api",
        "--type",
        "http",
        "--field",
        f"base_url={api_server.url}",
        "--field",
        "auth=bearer",
        "--field-file",
        f"token={tmp_path / 'missing'}",
    )
    token_file.write_text("not-the-token-at-all\n")
    cli(
        "connections",
        "set",
        "api",
        "--type",
        "http",
        "--field",
        f"base_url={api_server.url}",
        "--field",
        "auth=bearer",
        "--field-file",
        f"token={token_file}",
    )
    failed = cli("connections", "test", "api")
    bad = cli("connections", "set", "ssh1", "--type", "ssh", "--field", "user=deploy")
    deleted = cli("connections", "delete", "cloud", "--yes")

    assert created.returncode == 0, created.stderr
    assert created.stdout.startswith("created http connection api (auth, base_url, token)\n")
    assert json.loads(from_stdin.stdout)["fields"] == ["AWS_SECRET_ACCESS_KEY"]
    assert on_argv.returncode == 2
    assert "--field token: a credential does not go on the command line" in on_argv.stderr
    assert passed.returncode == 0, passed.stderr
    assert (
        "api: ok in " in passed.stdout and f"GET {api_server.url} answered 200 OK" in passed.stdout
    )
    rows = {line.split()[0]: line for line in listed.stdout.splitlines()[1:] if line.strip()}
    assert "http" in rows["api"] and "ok" in rows["api"]
    assert "terraform" in rows["cloud"] and "never" in rows["cloud"]
    assert disabled.stdout == "connection api disabled\n"
    assert failed.returncode == 1
    assert "refused the credentials" in failed.stdout + failed.stderr
    assert bad.returncode != 0 and "values.private_key" in bad.stderr
    assert deleted.returncode == 0
    everything = "".join(
        r.stdout + r.stderr for r in (created, from_stdin, passed, listed, failed, deleted)
    )
    assert BEARER not in everything and "cloud-secret-from-stdin-99" not in everything
