"""``OPSFLOW_PUBLIC_URL`` / ``--public-url``: where people open the server, for the links in
messages (the bind address is no such place when it is ``0.0.0.0`` or behind a proxy)."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest

from opsflow.api.server import banner
from opsflow.config import Settings
from opsflow.errors import InvalidInput


def test_links_use_the_public_url_when_set_without_its_trailing_slash() -> None:
    settings = Settings.from_env({"OPSFLOW_PUBLIC_URL": "https://ops.example.com:8443/"})
    assert settings.public_base == "https://ops.example.com:8443"
    assert "links in notifications: https://ops.example.com:8443\n" in banner(settings) + "\n"


def test_without_it_links_use_the_bind_address_and_the_banner_says_to_set_it() -> None:
    settings = Settings.from_env({}, host="127.0.0.1", port=8600)
    assert settings.public_base == "http://127.0.0.1:8600"
    assert (
        "links in notifications: http://127.0.0.1:8600 (set OPSFLOW_PUBLIC_URL to the address "
        "people use, e.g. behind a proxy)"
    ) in banner(settings)


@pytest.mark.parametrize("host", ["0.0.0.0", "::"])
def test_a_wildcard_bind_address_is_never_a_link(host: str) -> None:
    settings = Settings.from_env({"OPSFLOW_HOST": host, "OPSFLOW_PORT": "8600"})
    assert settings.public_base == f"http://{socket.gethostname() or '127.0.0.1'}:8600"
    assert "0.0.0.0" not in settings.public_base and "[::]" not in settings.public_base


@pytest.mark.parametrize("value", ["ops.example.com", "ftp://ops.example.com", "https://x/?a=1"])
def test_a_public_url_that_is_no_web_address_is_refused_naming_the_variable(value: str) -> None:
    with pytest.raises(InvalidInput, match="OPSFLOW_PUBLIC_URL must be an http"):
        Settings.from_env({"OPSFLOW_PUBLIC_URL": value})


@pytest.mark.parametrize("value", ["https://example.com/opsflow", "http://127.0.0.1:8558/ops/"])
def test_a_public_url_with_a_path_is_refused_saying_opsflow_is_served_at_its_hosts_root(
    value: str,
) -> None:
    # the web UI loads /assets/... and calls /api/v1 from the root: under a path it is blank
    with pytest.raises(InvalidInput) as refused:
        Settings.from_env({"OPSFLOW_PUBLIC_URL": value})
    message = str(refused.value)
    assert f"OPSFLOW_PUBLIC_URL must have no path, got {value!r}" in message
    assert "served at the root of its host" in message
    assert "own host name or port" in message


def test_the_banner_names_the_admin_files_only_where_this_server_wrote_them(
    tmp_path: Path,
) -> None:
    """A replica whose database already had an admin (another replica made it) has no
    admin-password or admin-token file in its data dir: the banner must not point there."""
    settings = Settings.from_env({}, data_dir=tmp_path)
    text = banner(settings)
    assert str(tmp_path.resolve() / "admin-password") not in text
    assert "the admin exists already" in text
    assert "API token for the CLI: none in this data dir" in text
    (tmp_path / "admin-password").write_text("pw\n")
    (tmp_path / "admin-token").write_text("tok\n")
    text = banner(settings)
    assert f"log in as admin with the password in {tmp_path.resolve() / 'admin-password'}" in text
    assert f"API token for the CLI: {tmp_path.resolve() / 'admin-token'}" in text


def test_the_banner_says_how_the_cli_finds_the_admin_token(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The CLI reads ``<OPSFLOW_DATA_DIR or ./data>/admin-token``: from another directory, or
    with a data dir of another name, it needs OPSFLOW_DATA_DIR, and the banner says so."""
    default = tmp_path / "data"
    default.mkdir()
    (default / "admin-token").write_text("tok\n")
    monkeypatch.chdir(tmp_path)
    text = banner(Settings.from_env({}, data_dir=Path("data")))
    assert f"the CLI run in {tmp_path} reads it" in text
    assert f"elsewhere set OPSFLOW_DATA_DIR={default.resolve()}" in text
    custom = tmp_path / "state"
    custom.mkdir()
    (custom / "admin-token").write_text("tok\n")
    text = banner(Settings.from_env({}, data_dir=custom))
    assert f"the CLI reads it with OPSFLOW_DATA_DIR={custom.resolve()}" in text
