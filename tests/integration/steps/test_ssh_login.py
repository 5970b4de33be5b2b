"""Logging in with an ``ssh`` connection's values (``check_connection``) against real sshd."""

from __future__ import annotations

from pathlib import Path

import pytest

from opsflow.steps.ssh import check_connection
from opsflow.steps.ssh_login import (
    SshHostKeyChanged,
    SshHostKeyUnknown,
    SshInvalid,
    SshLoginRefused,
    SshUnreachable,
)
from tests.servers import free_port
from tests.sshd import SshHost, SshUserKey, make_user_key

pytestmark = pytest.mark.anyio


async def test_check_connection_logs_in_and_runs_true(
    sshd_hosts: list[SshHost], ssh_user_key: SshUserKey
) -> None:
    for host in sshd_hosts:
        await check_connection(host.connection_values(ssh_user_key), timeout=10)


async def test_unknown_host_key_is_refused_with_its_fingerprint_and_line(
    sshd_hosts: list[SshHost], ssh_user_key: SshUserKey
) -> None:
    host = sshd_hosts[0]
    with pytest.raises(SshHostKeyUnknown) as caught:
        await check_connection(host.connection_values(ssh_user_key, known_hosts=""), timeout=10)
    error = caught.value
    assert error.fingerprint == host.fingerprint  # what ssh-keygen -l prints for the host key
    assert host.fingerprint in str(error)
    assert error.known_hosts_line == f"[127.0.0.1]:{host.port} {host.host_key}"
    assert "accept_new" in str(error) and "known_hosts" in str(error)
    # the line it offers really accepts the host
    values = host.connection_values(ssh_user_key, known_hosts=error.known_hosts_line + "\n")
    await check_connection(values, timeout=10)


async def test_accept_new_accepts_an_unlisted_host_but_never_a_changed_key(
    sshd_hosts: list[SshHost], ssh_user_key: SshUserKey
) -> None:
    first, second = sshd_hosts
    await check_connection(
        first.connection_values(ssh_user_key, known_hosts="", accept_new="true"), timeout=10
    )
    # known_hosts lists another key for this host:port: a changed key, refused even so
    wrong = f"[127.0.0.1]:{first.port} {second.host_key}\n"
    with pytest.raises(SshHostKeyChanged) as caught:
        await check_connection(
            first.connection_values(ssh_user_key, known_hosts=wrong, accept_new="true"),
            timeout=10,
        )
    assert first.fingerprint in str(caught.value) and "changed" in str(caught.value)


async def test_a_key_the_host_does_not_know_is_refused(
    sshd_hosts: list[SshHost], ssh_user_key: SshUserKey, tmp_path: Path
) -> None:
    other = make_user_key(tmp_path / "other-key")
    values = sshd_hosts[0].connection_values(ssh_user_key, private_key=other.private_text)
    with pytest.raises(SshLoginRefused, match="refused"):
        await check_connection(values, timeout=10)


async def test_a_closed_port_is_unreachable() -> None:
    values = {"host": "127.0.0.1", "port": str(free_port()), "user": "root", "password": "x"}
    with pytest.raises(SshUnreachable, match="cannot connect"):
        await check_connection(values, timeout=5)


async def test_unusable_values_name_what_to_fix(
    sshd_hosts: list[SshHost], ssh_user_key: SshUserKey
) -> None:
    host = sshd_hosts[0]
    with pytest.raises(SshInvalid, match="private_key"):
        await check_connection(
            host.connection_values(ssh_user_key, private_key="not a key"), timeout=5
        )
    with pytest.raises(SshInvalid, match="no host"):
        await check_connection({"user": "root", "password": "x"}, timeout=5)
    with pytest.raises(SshInvalid, match="neither a private_key nor a password"):
        await check_connection({"host": "127.0.0.1", "user": "root"}, timeout=5)


async def test_a_jump_host_tunnels_to_the_target(
    sshd_hosts: list[SshHost], ssh_user_key: SshUserKey
) -> None:
    jump, target = sshd_hosts
    values = target.connection_values(
        ssh_user_key,
        known_hosts=jump.known_hosts() + target.known_hosts(),
        jump_host=f"{jump.user}@{jump.target}",
    )
    await check_connection(values, timeout=10)
    # the jump host's key is checked too
    values["known_hosts"] = target.known_hosts()
    with pytest.raises(SshHostKeyUnknown) as caught:
        await check_connection(values, timeout=10)
    assert caught.value.fingerprint == jump.fingerprint
