"""ssh steps through a real ``opsflow server``: the sshd fixtures of tests/sshd.py."""

from __future__ import annotations

from tests.sshd import ssh_user_key, sshd_hosts  # noqa: F401  (pytest fixtures)
