"""``opsflow connections test``: check a connection for real, from the server.

What each type's check does (docs/reference/connections.md says the same):

- ``http``: ``GET`` the base URL with the connection's auth. It passes when the server answers
  with a status below 400, or 404/405 (an API without a page at its root still took the
  credentials); 401, 403 and 407 fail as refused credentials, any other status and every
  network failure fail with the cause.
- ``ssh``: log in to the connection's ``host`` as ssh steps do (`opsflow.steps.ssh`: key or
  password, host key checked against ``known_hosts``, ``accept_new``, ``jump_host``) and run
  ``true``; an unknown host key fails with its fingerprint and the line that accepts it.
- ``notify``: the URLs were checked by Apprise when the connection was saved; plain webhook
  URLs (``json://``, ``form://``, ``xml://`` and their ``s`` forms) also get a test message,
  since they go to the user's own receiver. Chat and e-mail services get nothing sent, so a
  test never posts into a real channel.
- ``git``: ``git ls-remote`` of the connection's ``url`` with its token or deploy key (when
  there is no ``url``, the credentials were checked for form when saved, and that is all).
- ``terraform``: environment variables have no cheap check of their own; the test says so and
  passes on form alone.

A failed check raises `CheckFailed` with a message that never holds a credential.
"""

from __future__ import annotations

import asyncio
import base64
import os
import tempfile
from collections.abc import Mapping
from pathlib import Path

import httpx

from opsflow.auth.connections import ConnectionType
from opsflow.errors import OpsflowError
from opsflow.steps.http import connection_headers
from opsflow.steps.notify import split_urls
from opsflow.steps.ssh import check_connection as check_ssh_connection
from opsflow.steps.ssh import load_modules as load_ssh_modules
from opsflow.words import counted

REFUSED_STATUSES = frozenset({401, 403, 407})
WEBHOOK_SCHEMES = frozenset({"json", "jsons", "form", "forms", "xml", "xmls"})


class CheckFailed(OpsflowError):
    """The connection did not work; the message says how."""


async def check(kind: str, values: Mapping[str, str], timeout: float) -> str:
    """Check a connection of type ``kind``; return what was checked, in words. Raises
    `CheckFailed` (the reason) when it does not work; ``timeout`` is in seconds."""
    match ConnectionType(kind):
        case ConnectionType.HTTP:
            return await _check_http(values, timeout)
        case ConnectionType.SSH:
            return await _check_ssh(values, timeout)
        case ConnectionType.NOTIFY:
            # Apprise blocks in its thread; the answer does not wait for it past the timeout.
            try:
                return await asyncio.wait_for(
                    asyncio.to_thread(_check_notify, values, timeout), timeout
                )
            except TimeoutError:
                raise CheckFailed(f"the test message was not sent within {timeout:g}s") from None
        case ConnectionType.GIT:
            return await _check_git(values, timeout)
        case ConnectionType.TERRAFORM:
            return "terraform connections are checked for their form only (no cheap real check)"


async def _check_http(values: Mapping[str, str], timeout: float) -> str:
    url = values["base_url"]
    try:
        async with httpx.AsyncClient(timeout=timeout, follow_redirects=True) as client:
            response = await client.get(url, headers=connection_headers(values))
    except httpx.TimeoutException:
        raise CheckFailed(f"GET {url} timed out after {timeout:g}s") from None
    except httpx.HTTPError as exc:
        raise CheckFailed(f"GET {url} failed: {exc}") from None
    status = response.status_code
    if status in REFUSED_STATUSES:
        raise CheckFailed(
            f"GET {url} answered {status} {response.reason_phrase}: the server refused the "
            "credentials"
        )
    if status >= 400 and status not in (404, 405):
        raise CheckFailed(f"GET {url} answered {status} {response.reason_phrase}")
    return f"GET {url} answered {status} {response.reason_phrase}"


async def _check_ssh(values: Mapping[str, str], timeout: float) -> str:
    await asyncio.to_thread(load_ssh_modules)  # AsyncSSH: not imported on the event loop
    from opsflow.steps.ssh_login import SshFailed

    try:
        await check_ssh_connection(values, timeout)
    except SshFailed as exc:
        raise CheckFailed(exc.message) from None
    return f"logged in to {values.get('user')}@{values.get('host')} and ran true"


def _check_notify(values: Mapping[str, str], timeout: float) -> str:
    import apprise

    urls = split_urls(values["url"])
    hooks = [u for u in urls if u.split("://", 1)[0].lower() in WEBHOOK_SCHEMES]
    if not hooks:
        return (
            f"{counted(len(urls), 'Apprise URL')} well formed; nothing sent "
            "(only webhooks get a test)"
        )
    sender = apprise.Apprise()
    for url in hooks:
        sender.add(url)
    if not sender.notify(title="opsflow", body="opsflow connection test"):
        raise CheckFailed(
            f"a test message to {counted(len(hooks), 'webhook URL')} was not accepted"
        )
    return f"a test message was accepted by {counted(len(hooks), 'webhook URL')}"


async def _check_git(values: Mapping[str, str], timeout: float) -> str:
    url = values.get("url")
    if not url:
        return "no url to test against: the token or key was checked for form only"
    env = {k: v for k, v in os.environ.items() if not k.startswith("GIT_")}
    env |= {"GIT_TERMINAL_PROMPT": "0", "GIT_ASKPASS": "true", "SSH_ASKPASS": "true"}
    with tempfile.TemporaryDirectory(prefix="opsflow-git-check-") as tmp:
        if values.get("token"):
            pair = f"{values.get('username', 'x-access-token')}:{values['token']}".encode()
            # Through the environment, never argv: `ps` shows argv to every user.
            env |= {
                "GIT_CONFIG_COUNT": "1",
                "GIT_CONFIG_KEY_0": "http.extraHeader",
                "GIT_CONFIG_VALUE_0": "Authorization: Basic " + base64.b64encode(pair).decode(),
            }
        else:
            key = Path(tmp) / "deploy_key"
            key.touch(mode=0o600)
            key.write_text(values["deploy_key"].rstrip("\n") + "\n")
            env["GIT_SSH_COMMAND"] = (
                f"ssh -i {key} -o IdentitiesOnly=yes -o BatchMode=yes "
                "-o StrictHostKeyChecking=accept-new"
            )
        process = await asyncio.create_subprocess_exec(
            "git",
            "ls-remote",
            "--",
            url,
            "HEAD",
            env=env,
            stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.PIPE,
            stdin=asyncio.subprocess.DEVNULL,
        )
        try:
            async with asyncio.timeout(timeout):
                _, err = await process.communicate()
        except TimeoutError:
            process.kill()
            await process.wait()
            raise CheckFailed(f"git ls-remote {url} timed out after {timeout:g}s") from None
    if process.returncode != 0:
        reason = err.decode("utf-8", "replace").strip().splitlines()
        raise CheckFailed(f"git ls-remote {url} failed: {' / '.join(reason[-3:])}")
    return f"git ls-remote {url} answered"
