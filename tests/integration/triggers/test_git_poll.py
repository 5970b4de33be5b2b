"""Polling with the real ``git ls-remote`` against a local bare repository: a new commit on a
matching branch is one start, no new commit is none, credentials never reach the command line."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest
from pydantic import TypeAdapter

from opsflow.spec.triggers import GitTrigger, Trigger
from opsflow.triggers import git_poll
from opsflow.triggers.git import ZERO_SHA
from opsflow.triggers.ingress import Skip, Start
from tests.integration.triggers.gitrepo import Remote, git, smart_http


@pytest.fixture
def remote(tmp_path: Path) -> Remote:
    return Remote(tmp_path)


def trigger(**fields: Any) -> GitTrigger:
    spec = TypeAdapter(Trigger).validate_python({"type": "git", **fields})
    assert isinstance(spec, GitTrigger)
    return spec


def test_a_new_commit_on_a_matching_branch_is_one_start(remote: Remote) -> None:
    spec = trigger(url=str(remote.bare), branches=["main"])
    first = asyncio.run(git_poll.ls_remote(str(remote.bare)))
    assert git_poll.changes(spec, None, first) == []  # the first poll only looks
    assert git_poll.changes(spec, first, asyncio.run(git_poll.ls_remote(str(remote.bare)))) == []

    sha = remote.commit("second")
    now = asyncio.run(git_poll.ls_remote(str(remote.bare)))
    [start] = git_poll.changes(spec, first, now)
    assert isinstance(start, Start)
    assert start.dedupe_key == f"refs/heads/main@{sha}"
    assert start.trigger["git"]["commit"] == sha
    assert start.trigger["git"]["branch"] == "main"
    assert start.trigger["git"]["url"] == str(remote.bare)


def test_other_branches_tags_and_deletions_follow_the_filters(remote: Remote) -> None:
    spec = trigger(url=str(remote.bare), branches=["main"])
    before = asyncio.run(git_poll.ls_remote(str(remote.bare)))
    remote.commit("work", branch="feature/x")
    git("tag", "v1.0", cwd=remote.work)
    git("push", "origin", "v1.0", cwd=remote.work)
    now = asyncio.run(git_poll.ls_remote(str(remote.bare)))
    items = git_poll.changes(spec, before, now)
    assert all(isinstance(i, Skip) for i in items)
    assert [i.reason for i in items if isinstance(i, Skip)] == [
        "branch feature/x matches none of ['main']",
        "tag push v1.0: the trigger's events are [push]",
    ]
    tags = trigger(url=str(remote.bare), events=["tag", "delete"], tags=["v*"])
    git("push", "origin", "--delete", "feature/x", cwd=remote.work)
    later = asyncio.run(git_poll.ls_remote(str(remote.bare)))
    starts = [i for i in git_poll.changes(tags, now, later) if isinstance(i, Start)]
    assert [s.trigger["git"]["event"] for s in starts] == ["delete"]
    starts = [i for i in git_poll.changes(tags, before, now) if isinstance(i, Start)]
    assert [s.trigger["git"]["tag"] for s in starts] == ["v1.0"]


def test_a_remote_that_fails_says_why_without_the_credentials(tmp_path: Path) -> None:
    url = "https://ada:hunter2@127.0.0.1:9/nothing.git"
    with pytest.raises(git_poll.PollFailed) as failed:
        asyncio.run(git_poll.ls_remote(url, "ada:tok-123", timeout=20))
    message = str(failed.value)
    assert "https://***@127.0.0.1:9/nothing.git" in message
    assert "hunter2" not in message and "tok-123" not in message


def test_credentials_travel_in_the_environment_only() -> None:
    env = git_poll.git_env("ada:tok-123", base={"PATH": "/usr/bin"})
    assert env["GIT_CONFIG_KEY_0"] == "http.extraHeader"
    assert env["GIT_CONFIG_VALUE_0"] == "Authorization: Basic YWRhOnRvay0xMjM="
    assert env["GIT_TERMINAL_PROMPT"] == "0"
    bare = git_poll.git_env("tok-123", base={})
    assert bare["GIT_CONFIG_VALUE_0"] == "Authorization: Basic b3BzZmxvdzp0b2stMTIz"


def test_credentials_from_the_secret_open_an_https_remote(remote: Remote) -> None:
    with smart_http(remote.bare.parent, "ada:tok-123") as (base, seen):
        url = f"{base}/{remote.bare.name}"
        refs = asyncio.run(git_poll.ls_remote(url, "ada:tok-123"))
        assert refs["refs/heads/main"] == git("rev-parse", "HEAD", cwd=remote.work)
        with pytest.raises(git_poll.PollFailed) as refused:
            asyncio.run(git_poll.ls_remote(url, "ada:wrong"))
    assert "tok-123" not in str(refused.value) and "wrong" not in str(refused.value)
    assert "Basic YWRhOnRvay0xMjM=" in seen


def test_a_polled_commit_gets_its_message_author_and_changed_files(
    remote: Remote, tmp_path: Path
) -> None:
    cache = tmp_path / "cache"
    url = str(remote.bare)

    def details(ref: str, before: str, after: str) -> dict[str, Any]:
        return asyncio.run(git_poll.commit_details(cache, url, None, ref, before, after))

    first = asyncio.run(git_poll.ls_remote(url))["refs/heads/main"]
    (remote.work / "infra").mkdir()
    (remote.work / "infra" / "main.tf").write_text("# vpc\n")
    git("add", "infra/main.tf", cwd=remote.work)
    git("commit", "-m", "add the vpc", cwd=remote.work)
    sha = remote.commit("second\n\nwith a body")  # two commits in one move of main
    found = details("refs/heads/main", first, sha)
    assert found == {
        "message": "second\n\nwith a body",
        "author": "Ada",
        "changed_files": ["file.txt", "infra/main.tf"],
        "truncated": False,
    }
    # A new branch (no commit before): the files of its own commit.
    (remote.work / "README").write_text("hello\n")
    git("checkout", "-B", "feature", cwd=remote.work)
    git("add", "README", cwd=remote.work)
    git("commit", "-m", "readme", cwd=remote.work)
    git("push", "-f", "origin", "feature", cwd=remote.work)
    branch = git("rev-parse", "HEAD", cwd=remote.work)
    assert details("refs/heads/feature", ZERO_SHA, branch)["changed_files"] == ["README"]
    # A ref that cannot be fetched says why, without the URL's credentials.
    with pytest.raises(git_poll.PollFailed) as failed:
        asyncio.run(
            git_poll.commit_details(
                cache, "file:///nowhere.git", None, "refs/heads/main", first, sha, timeout=20
            )
        )
    assert failed.value.message.startswith("git fetch file:///nowhere.git refs/heads/main failed")
