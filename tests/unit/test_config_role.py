"""``OPSFLOW_ROLE`` / ``--role``: what one server replica does."""

from __future__ import annotations

import pytest

from opsflow.config import ServerRole, Settings
from opsflow.errors import InvalidInput


def test_a_server_does_everything_unless_told_its_role() -> None:
    role = Settings.from_env({}).role
    assert role is ServerRole.ALL and role.serves_api and role.does_work


def test_an_api_replica_does_no_background_work_and_a_worker_serves_no_api() -> None:
    api = Settings.from_env({"OPSFLOW_ROLE": "API"}).role
    worker = Settings.from_env({}, role=ServerRole.WORKER).role
    assert (api.serves_api, api.does_work) == (True, False)
    assert (worker.serves_api, worker.does_work) == (False, True)


def test_an_unknown_role_is_refused_with_the_choices() -> None:
    with pytest.raises(InvalidInput, match="one of api, worker, all"):
        Settings.from_env({"OPSFLOW_ROLE": "scheduler"})
