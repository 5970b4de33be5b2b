"""The ``ssh`` step: run a command or script on a set of hosts over SSH (AsyncSSH).

``check_connection`` is what ``opsflow connections test`` does for an ``ssh`` connection.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping

from .ssh_login import DEFAULT_PORT, Login, SshFailed, SshInvalid, connect, parse_target


async def check_connection(values: Mapping[str, str], timeout: float) -> None:
    """Log in with an ``ssh`` connection's values to its ``host`` (and ``port``) and run
    ``true``, all within ``timeout`` seconds.

    Returns None when that worked; raises ``SshFailed`` (an ``OpsflowError``) saying why not:
    ``SshInvalid`` for unusable values, ``SshHostKeyUnknown`` with the key's SHA256
    fingerprint and the known_hosts line that accepts it, ``SshLoginRefused``,
    ``SshUnreachable``. The values are those listed in ``opsflow.steps.ssh_login``.
    """
    host = values.get("host", "").strip()
    if not host:
        raise SshInvalid("the connection has no host to test against: set its host")
    port_text = values.get("port", "").strip() or str(DEFAULT_PORT)
    if not port_text.isdigit():
        raise SshInvalid(f"port: {port_text!r} is not a number; give the SSH port, e.g. 22")
    try:
        target = parse_target(host, default_port=int(port_text))
    except ValueError as exc:
        raise SshInvalid(f"host: {exc}") from None
    login = Login.from_values(values)
    try:
        async with asyncio.timeout(timeout):
            connection = await connect(target, login, timeout)
            async with connection:
                result = await connection.run("true", check=False)
    except TimeoutError:
        raise SshFailed(f"{target}: `true` did not finish within {timeout:g}s") from None
    if result.exit_status != 0:
        raise SshFailed(
            f"{target}: logged in, but `true` ended with exit code {result.exit_status}"
            f"{' (signal ' + str(result.exit_signal[0]) + ')' if result.exit_signal else ''}"
        )
