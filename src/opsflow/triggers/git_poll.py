"""Git triggers in poll mode: ``git ls-remote`` against any remote every ``poll`` seconds, and a
run for each branch that moved to a new commit (tags and deletions when asked for).

`ls_remote` runs the real ``git`` in a subprocess (asyncio's, so the event loop never waits on
it) with a time limit. Credentials reach git only through its environment: the opsflow secret
named by ``credentials`` (``user:token``) becomes an ``Authorization: Basic`` header given by
``GIT_CONFIG_*`` variables, never an argument (``ps`` shows arguments) nor a log line; messages
show the URL without any ``user:password@`` part.

`commit_details` fills in what a provider's payload would say of a polled commit (message,
author, changed files) from a bare repository the poller keeps per trigger, with the real
``git fetch``, ``git log`` and ``git diff-tree``.

`changes` is pure: the refs seen last time and now in, `Start` and `Skip` items out. The first
poll of a trigger only records where the refs are, so a new trigger does not run once for every
existing branch. Each start's dedupe key is the ref and its new commit, so one commit on one
branch starts one run, however many servers poll.
"""

from __future__ import annotations

import asyncio
import base64
import os
import re
from collections.abc import Mapping
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any

from opsflow.errors import OpsflowError
from opsflow.spec.triggers import GitTrigger
from opsflow.triggers.git import MAX_CHANGED_FILES, ZERO_SHA, Push, decide, source, summary
from opsflow.triggers.ingress import Skip, Start

if TYPE_CHECKING:
    from opsflow.store.triggers import Trigger

LS_REMOTE_TIMEOUT = 30.0
FETCH_TIMEOUT = 120.0  # the first fetch of a trigger's cache brings the branch's history
_CREDENTIALS_IN_URL = re.compile(r"(?<=://)[^/@\s]+@")
_LINE = re.compile(r"^([0-9a-f]{40}|[0-9a-f]{64})\t(refs/(?:heads|tags)/\S+)$")
DEFAULT_USER = "opsflow"  # GitHub, GitLab and Gitea accept any user name with a token


class PollFailed(OpsflowError):
    """``git ls-remote`` did not list the remote's refs; the message says why (no secrets)."""

    status_code = 502  # the remote, not the request, failed


def shown_url(url: str) -> str:
    """The URL without any ``user:password@`` part, for messages and logs."""
    return _CREDENTIALS_IN_URL.sub("***@", url)


def git_env(credentials: str | None, base: Mapping[str, str] | None = None) -> dict[str, str]:
    """The environment ``git`` runs in: never prompting, and with ``credentials``
    (``user:token``, or a bare token) as an HTTP basic-auth header when given."""
    env = dict(os.environ if base is None else base)
    env["GIT_TERMINAL_PROMPT"] = "0"
    env["GIT_SSH_COMMAND"] = env.get("GIT_SSH_COMMAND", "ssh -o BatchMode=yes")
    env.pop("GIT_ASKPASS", None)
    env.pop("SSH_ASKPASS", None)
    if credentials:
        user, sep, _ = credentials.partition(":")
        pair = credentials if sep else f"{DEFAULT_USER}:{user}"
        encoded = base64.b64encode(pair.encode()).decode()
        env["GIT_CONFIG_COUNT"] = "1"
        env["GIT_CONFIG_KEY_0"] = "http.extraHeader"
        env["GIT_CONFIG_VALUE_0"] = f"Authorization: Basic {encoded}"
    return env


async def ls_remote(
    url: str, credentials: str | None = None, *, timeout: float = LS_REMOTE_TIMEOUT
) -> dict[str, str]:
    """The remote's branches and tags, ``{ref: commit}``; raises `PollFailed`."""
    process = await asyncio.create_subprocess_exec(
        "git",
        "ls-remote",
        "--refs",
        "--",
        url,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env=git_env(credentials),
    )
    try:
        out, err = await asyncio.wait_for(process.communicate(), timeout)
    except TimeoutError:
        process.kill()
        await process.wait()
        raise PollFailed(
            f"git ls-remote {shown_url(url)} did not answer within {timeout:g}s"
        ) from None
    if process.returncode != 0:
        last = err.decode("utf-8", "replace").strip().splitlines()[-1:] or [""]
        text = shown_url(last[0])
        if credentials:
            text = text.replace(credentials, "***")
        raise PollFailed(
            f"git ls-remote {shown_url(url)} failed (exit {process.returncode}): {text}"
        )
    refs: dict[str, str] = {}
    for line in out.decode("utf-8", "replace").splitlines():
        found = _LINE.match(line.strip())
        if found:
            refs[found.group(2)] = found.group(1)
    return refs


async def _git(*args: str, cwd: Path, env: Mapping[str, str], timeout: float, what: str) -> str:
    """``git args`` in ``cwd``; its standard output, or `PollFailed` naming ``what`` failed."""
    process = await asyncio.create_subprocess_exec(
        "git",
        *args,
        cwd=cwd,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env=dict(env),
    )
    try:
        out, err = await asyncio.wait_for(process.communicate(), timeout)
    except TimeoutError:
        process.kill()
        await process.wait()
        raise PollFailed(f"{what} did not finish within {timeout:g}s") from None
    if process.returncode != 0:
        last = err.decode("utf-8", "replace").strip().splitlines()[-1:] or [""]
        raise PollFailed(f"{what} failed (exit {process.returncode}): {shown_url(last[0])}")
    return out.decode("utf-8", "replace")


async def commit_details(
    cache: Path,
    url: str,
    credentials: str | None,
    ref: str,
    before: str,
    after: str,
    *,
    timeout: float = FETCH_TIMEOUT,
) -> dict[str, Any]:
    """``message``, ``author``, ``changed_files`` and ``truncated`` of the commit ``after``
    that ``ref`` moved to (from ``before``, `ZERO_SHA` for a new ref), as a webhook's payload
    would give them: the ref is fetched into ``cache`` (a bare repository kept per trigger,
    so a fetch brings only what is new), then ``git log`` reads the commit and ``git
    diff-tree`` the files changed since ``before`` (the commit's own changes when ``before``
    is new or was force-pushed away). Raises `PollFailed`."""
    env = git_env(credentials)
    run = partial(_git, env=env, timeout=timeout)
    if not (cache / "HEAD").exists():
        cache.mkdir(parents=True, exist_ok=True)
        await run("init", "--quiet", "--bare", ".", cwd=cache, what="git init")
    shown = shown_url(url)
    await run(
        "fetch", "--quiet", "--no-tags", "--", url, f"+{ref}:{ref}",
        cwd=cache, what=f"git fetch {shown} {ref}",
    )  # fmt: skip
    commit = f"{after}^{{commit}}"
    head = await run("log", "-1", "--format=%an%x00%B", commit, "--", cwd=cache, what="git log")
    author, _, message = head.partition("\0")
    known = before != ZERO_SHA and await _has_commit(cache, env, before)
    diff = ["diff-tree", "-r", "--name-only", "--no-commit-id"]
    diff += [f"{before}^{{commit}}", commit] if known else ["--root", commit]
    files = (await run(*diff, cwd=cache, what="git diff-tree")).splitlines()
    return {
        "message": message.strip(),
        "author": author,
        "changed_files": files[:MAX_CHANGED_FILES],
        "truncated": len(files) > MAX_CHANGED_FILES,
    }


async def _has_commit(cache: Path, env: Mapping[str, str], sha: str) -> bool:
    try:
        await _git("cat-file", "-e", f"{sha}^{{commit}}", cwd=cache, env=env, timeout=10, what="")
    except PollFailed:
        return False
    return True


def changes(
    trigger: GitTrigger, before: Mapping[str, str] | None, now: Mapping[str, str]
) -> list[Start | Skip]:
    """What moved between two listings, as the trigger's filters see it. ``before`` is None on
    a trigger's first poll: nothing starts then."""
    if before is None:
        return []
    provider = trigger.provider.value if trigger.provider else "git"
    repository = trigger.repository or shown_url(trigger.url or "")
    items: list[Start | Skip] = []
    moved = [(ref, before.get(ref, ZERO_SHA), sha) for ref, sha in now.items()]
    gone = [(ref, old, ZERO_SHA) for ref, old in before.items() if ref not in now]
    for ref, old, new in sorted(moved + gone):
        if old == new:
            continue
        push = Push(provider=provider, repository=repository, ref=ref, before=old, after=new)
        key = f"{ref}@{new}"
        verdict = decide(trigger, push)
        if not verdict.start:
            items.append(Skip(verdict.reason, dedupe_key=key))
            continue
        variables = dict(verdict.variables)
        variables["url"] = shown_url(trigger.url or "")
        items.append(
            Start(
                dedupe_key=key,
                trigger={"git": variables},
                summary=summary(push, verdict) + " (polled)",
                source=source(push),
            )
        )
    return items


def first_due(old: Trigger | None, spec: Mapping[str, Any], now: float) -> float | None:
    """A polling git trigger is first looked at right away (to record where its refs are);
    a webhook-mode one is never polled."""
    return now if spec.get("url") else None
