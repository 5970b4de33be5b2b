"""Settings come from the environment, the data dir's notify.yaml, and explicit overrides."""

from __future__ import annotations

from pathlib import Path

import pytest

from opsflow.config import Settings
from opsflow.errors import InvalidInput


def test_defaults_put_sqlite_in_the_data_dir(tmp_path: Path) -> None:
    settings = Settings.from_env(env={}, data_dir=tmp_path)
    assert settings.db_url == f"sqlite:///{(tmp_path / 'opsflow.db').resolve()}"
    assert (settings.host, settings.port, settings.local_agent) == ("127.0.0.1", 8321, True)
    assert settings.max_bundle_bytes == 20 * 1024 * 1024 and settings.admin_password is None


def test_environment_and_overrides(tmp_path: Path) -> None:
    (tmp_path / "notify.yaml").write_text(
        "deploys: slack://a/b/c\nops: [json://localhost/x, mailto://u:p@example.org]\n"
    )
    env = {
        "OPSFLOW_DATA_DIR": str(tmp_path),
        "OPSFLOW_PORT": "9000",
        "OPSFLOW_LOCAL_AGENT": "false",
        "OPSFLOW_ADMIN_PASSWORD": "pw-from-env",
        "OPSFLOW_NOTIFY_DEPLOYS": "json://localhost/deploys",
    }
    settings = Settings.from_env(env=env, port=9100, demo=True)
    assert settings.port == 9100 and settings.local_agent is False and settings.demo is True
    assert settings.admin_password == "pw-from-env"
    assert settings.notify_channels == {
        "deploys": ["json://localhost/deploys"],
        "ops": ["json://localhost/x", "mailto://u:p@example.org"],
    }


def test_bad_values_name_the_variable(tmp_path: Path) -> None:
    with pytest.raises(InvalidInput, match="OPSFLOW_PORT must be an integer"):
        Settings.from_env(env={"OPSFLOW_PORT": "http", "OPSFLOW_DATA_DIR": str(tmp_path)})
    with pytest.raises(TypeError, match="unknown settings: colour"):
        Settings.from_env(env={}, colour="blue")
