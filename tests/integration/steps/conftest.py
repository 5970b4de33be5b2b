"""Fixtures for executor tests; tests run on asyncio through anyio's pytest plugin."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.sshd import ssh_user_key, sshd_hosts  # noqa: F401  (pytest fixtures)

from .support import LoopbackServer, RecordingSink


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
def sink() -> RecordingSink:
    return RecordingSink()


@pytest.fixture
def workdir(tmp_path: Path) -> Path:
    """The job's fresh copy of the workflow files (empty unless a test adds files)."""
    path = tmp_path / "files"
    path.mkdir()
    return path


@pytest.fixture
def server() -> Iterator[LoopbackServer]:
    srv = LoopbackServer()
    try:
        yield srv
    finally:
        srv.close()
