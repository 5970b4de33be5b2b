"""Fixtures for the ansible executor tests: real ansible-playbook against localhost."""

from __future__ import annotations

from pathlib import Path

import pytest

from ..steps.support import RecordingSink


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
def sink() -> RecordingSink:
    return RecordingSink()


@pytest.fixture
def workdir(tmp_path: Path) -> Path:
    """The job's fresh copy of the workflow files (the tests write playbooks into it)."""
    path = tmp_path / "files"
    path.mkdir()
    return path


@pytest.fixture
def out(tmp_path: Path) -> Path:
    """Where the playbooks under test create files (outside the workflow's files)."""
    path = tmp_path / "out"
    path.mkdir()
    return path
