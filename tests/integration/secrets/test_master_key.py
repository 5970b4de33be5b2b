"""The master key: taken from OPSFLOW_SECRET_KEY or generated once into the data dir, and a
server refuses to start on a key it cannot trust."""

from __future__ import annotations

import logging
import os
import re
import threading
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from opsflow.api.app import create_app
from opsflow.auth.secrets import KEY_ENV, SecretKeyInvalid, load_master_key, new_key_text
from opsflow.config import Settings


def test_the_first_start_generates_a_private_key_file_and_later_starts_reuse_it(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    data_dir = tmp_path / "data"
    with caplog.at_level(logging.WARNING, logger="opsflow.auth.secrets"):
        first = load_master_key(data_dir, {})
    second = load_master_key(data_dir, {})

    key_file = data_dir / "secret-key"
    assert first == second and len(first) == 32
    assert os.stat(key_file).st_mode & 0o777 == 0o600
    assert len(key_file.read_text().strip()) == 44
    assert [r.getMessage() for r in caplog.records] == [
        f"generated the secret master key in {key_file}: back it up, secrets cannot be read "
        "without it"
    ]
    assert sorted(p.name for p in data_dir.iterdir()) == ["secret-key"]


def test_servers_starting_at_the_same_moment_agree_on_one_key(tmp_path: Path) -> None:
    barrier = threading.Barrier(8)
    keys: list[bytes] = []

    def start() -> None:
        barrier.wait()
        keys.append(load_master_key(tmp_path, {}))

    threads = [threading.Thread(target=start) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert len(keys) == 8 and len(set(keys)) == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == ["secret-key"]


def test_the_environment_variable_wins_over_the_file(tmp_path: Path) -> None:
    from_file = load_master_key(tmp_path, {})
    text = new_key_text()
    from_env = load_master_key(tmp_path, {KEY_ENV: text})
    unpadded = load_master_key(tmp_path, {KEY_ENV: text.rstrip("=") + "\n"})
    assert from_env == unpadded != from_file


@pytest.mark.parametrize("bad", ["not-a-key", "c2hvcnQ", "!" * 44])
def test_a_malformed_variable_is_refused_by_name_without_echoing_it(
    tmp_path: Path, bad: str
) -> None:
    with pytest.raises(SecretKeyInvalid) as caught:
        load_master_key(tmp_path, {KEY_ENV: bad})
    assert caught.value.message.startswith(
        "OPSFLOW_SECRET_KEY must be 32 random bytes in base64url (44 characters)"
    )
    assert "secrets.token_bytes(32)" in caught.value.message
    assert bad not in caught.value.message
    assert not (tmp_path / "secret-key").exists()


def test_a_key_file_of_the_wrong_size_is_refused_not_replaced(tmp_path: Path) -> None:
    key_file = tmp_path / "secret-key"
    key_file.write_text("dG9vIHNob3J0\n")
    key_file.chmod(0o600)
    with pytest.raises(
        SecretKeyInvalid, match="^" + re.escape(f"{key_file} must be 32 random bytes")
    ):
        load_master_key(tmp_path, {})
    assert key_file.read_text() == "dG9vIHNob3J0\n"


def test_a_key_file_readable_by_others_is_refused(tmp_path: Path) -> None:
    load_master_key(tmp_path, {})
    key_file = tmp_path / "secret-key"
    key_file.chmod(0o644)
    with pytest.raises(SecretKeyInvalid) as caught:
        load_master_key(tmp_path, {})
    assert caught.value.message == (
        f"{key_file} is readable by other users (mode 0644); run `chmod 600 {key_file}` and "
        "start again"
    )


def test_the_server_does_not_start_with_a_malformed_key(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(KEY_ENV, "too-short")
    settings = Settings.from_env(env={}, data_dir=tmp_path / "data")
    app = create_app(settings, extensions=[])
    with pytest.raises(SecretKeyInvalid, match=r"^OPSFLOW_SECRET_KEY must be"), TestClient(app):
        pass
    assert not (tmp_path / "data" / "opsflow.db").exists()  # refused before migrating
