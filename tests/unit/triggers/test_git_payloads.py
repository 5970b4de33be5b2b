"""Push deliveries of GitHub, GitLab and Gitea, in their documented formats (payloads in
``payloads/``): signatures, events, and the trigger's repository, branch, tag and path filters."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import pytest
from pydantic import TypeAdapter, ValidationError

from opsflow.spec.template import FIELDS
from opsflow.spec.triggers import GitEvent, GitProvider, GitTrigger, Trigger
from opsflow.triggers import git
from opsflow.triggers.ingress import NotAuthenticated, Skip, Start

PAYLOADS = Path(__file__).parent / "payloads"
SECRET = "s3cret-for-tests"


def payload(name: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((PAYLOADS / f"{name}.json").read_text())
    return data


def trigger(**fields: Any) -> GitTrigger:
    spec = TypeAdapter(Trigger).validate_python({"type": "git", **fields})
    assert isinstance(spec, GitTrigger)
    return spec


GITHUB = {"X-GitHub-Event": "push", "X-GitHub-Delivery": "72d3162e-cc78-11e3-81ab-4c9367dc0958"}
GITLAB = {"X-Gitlab-Event": "Push Hook", "X-Gitlab-Event-UUID": "13792a34-cac6-4fda-95a8"}
GITEA = {
    # Gitea sends GitHub's and Gogs' headers too; a gitea trigger reads only its own.
    "X-GitHub-Event": "push",
    "X-Gitea-Event": "push",
    "X-Gitea-Delivery": "f6266f16-1bf3-46a5-9ea4-602e06ead473",
}


def read(provider: GitProvider, headers: dict[str, str], body: dict[str, Any]) -> git.Delivery:
    return git.read_delivery(provider, headers, body)


# -- signatures -------------------------------------------------------------------------------


def accepts(
    provider: GitProvider, headers: dict[str, str], body: bytes, secret: str = SECRET
) -> bool:
    """The route's order: the headers alone, then (for an HMAC) the raw body."""
    lowered = {k.lower(): v for k, v in headers.items()}
    try:
        if not git.authenticate(provider, secret, lowered):
            git.check_body(provider, secret, lowered, body)
    except NotAuthenticated:
        return False
    return True


@pytest.mark.parametrize("provider", list(GitProvider))
def test_the_providers_own_signature_is_accepted(provider: GitProvider) -> None:
    body = json.dumps(payload("github_push")).encode()
    assert accepts(provider, git.sign(provider, SECRET, body), body)


@pytest.mark.parametrize("provider", list(GitProvider))
def test_a_signature_made_with_another_secret_is_refused(provider: GitProvider) -> None:
    body = b'{"ref": "refs/heads/main"}'
    assert not accepts(provider, git.sign(provider, "other", body), body)


@pytest.mark.parametrize("provider", [GitProvider.GITHUB, GitProvider.GITEA])
def test_a_signature_over_other_bytes_is_refused(provider: GitProvider) -> None:
    headers = git.sign(provider, SECRET, b'{"ref": "refs/heads/main"}')
    assert not accepts(provider, headers, b'{"ref": "refs/heads/evil"}')


def test_a_truncated_github_signature_is_refused() -> None:
    body = b"{}"
    sent = git.sign(GitProvider.GITHUB, SECRET, body)["X-Hub-Signature-256"][:-8]
    assert not accepts(GitProvider.GITHUB, {"X-Hub-Signature-256": sent}, body)


def test_an_unsigned_delivery_is_refused_naming_each_providers_header() -> None:
    with pytest.raises(NotAuthenticated) as refused:
        git.authenticate(GitProvider.GITHUB, SECRET, {"x-github-event": "push"})
    for header in ("X-Hub-Signature-256", "X-Gitlab-Token", "X-Gitea-Signature"):
        assert header in str(refused.value)


def test_a_wrong_gitlab_token_is_refused_before_the_body_is_read() -> None:
    with pytest.raises(NotAuthenticated, match="X-Gitlab-Token is not this trigger's secret"):
        git.authenticate(GitProvider.GITLAB, SECRET, {"x-gitlab-token": "guess"})


def test_forgejo_signature_header_is_accepted_for_gitea() -> None:
    body = b"{}"
    sent = git.sign(GitProvider.GITEA, SECRET, body)["X-Gitea-Signature"]
    assert accepts(GitProvider.GITEA, {"X-Forgejo-Signature": sent}, body)


@pytest.mark.parametrize("provider", list(GitProvider))
@pytest.mark.parametrize("sender", list(GitProvider))
def test_a_trigger_accepts_only_its_own_providers_proof(
    provider: GitProvider, sender: GitProvider
) -> None:
    """A GitHub trigger refuses GitLab's plain token (and every other cross pairing), even
    with the right secret: only the trigger's provider's own header proves a delivery."""
    body = json.dumps(payload("github_push")).encode()
    assert accepts(provider, git.sign(sender, SECRET, body), body) is (sender is provider)


def test_delivery_ids_are_each_providers_own() -> None:
    assert git.delivery_id(GitProvider.GITHUB, GITHUB) == GITHUB["X-GitHub-Delivery"]
    assert git.delivery_id(GitProvider.GITEA, GITEA) == GITEA["X-Gitea-Delivery"]
    assert git.delivery_id(GitProvider.GITLAB, GITLAB) == GITLAB["X-Gitlab-Event-UUID"]
    # GitLab's Idempotency-Key stays the same when it retries; the event UUID too, but the key
    # is the documented one.
    both = {**GITLAB, "Idempotency-Key": "f4a1-retry-stable"}
    assert git.delivery_id(GitProvider.GITLAB, both) == "f4a1-retry-stable"


# -- reading deliveries ------------------------------------------------------------------------


def test_github_push_gives_every_variable() -> None:
    push = read(GitProvider.GITHUB, GITHUB, payload("github_push"))
    assert isinstance(push, git.Push)
    verdict = git.decide(trigger(provider="github", repository="acme/infra"), push)
    assert verdict.start
    assert verdict.variables == {
        "provider": "github",
        "repository": "acme/infra",
        "event": "push",
        "ref": "refs/heads/main",
        "branch": "main",
        "tag": "",
        "commit": "0d1a26e67d8f5eaf1f6ba5c57fc3c7d91ac0fd1c",
        "before": "6113728f27ae82c7b1a177c8d03f9e96e0adf246",
        "message": "Document the new limit",
        "author": "Octo Cat",
        "pusher": "octocat",
        "changed_files": [
            "infra/api/main.tf",
            "docs/limits.md",
            "README.md",
            "docs/old-limits.md",
        ],
        "truncated": False,
        "compare_url": "https://github.com/acme/infra/compare/6113728f27ae...0d1a26e67d8f",
    }


def test_gitlab_push_reads_the_project_path_and_builds_a_compare_url() -> None:
    push = read(GitProvider.GITLAB, GITLAB, payload("gitlab_push"))
    assert isinstance(push, git.Push)
    got = git.variables(push)
    assert got["repository"] == "platform/edge/stack"
    assert got["branch"] == "release/2.3"
    assert got["message"] == "fixed readme"
    assert got["author"] == "GitLab dev user"
    assert got["compare_url"] == (
        "https://gitlab.example.com/platform/edge/stack/-/compare/"
        "95790bf891e76fee5e1747ab589903a6a1f80f22...da1560886d4f094c3e6c9ef40349f7d38b5d27d7"
    )
    assert got["changed_files"] == ["locale/ca.yml", "infra/edge.tf", "README.md", "docs/old.md"]


def test_gitea_push_is_read_from_gitea_headers() -> None:
    push = read(GitProvider.GITEA, GITEA, payload("gitea_push"))
    assert isinstance(push, git.Push)
    got = git.variables(push)
    assert (got["repository"], got["branch"], got["author"]) == (
        "gitea/webhooks",
        "develop",
        "Gitea",
    )
    assert got["compare_url"].endswith(
        "compare/28e1879d029cb852e4844d9c718537df08844e03...bffeb74224043ba2feb48d137756c8a9331c449a"
    )


def test_github_ping_is_a_ping() -> None:
    got = read(GitProvider.GITHUB, {"X-GitHub-Event": "ping"}, payload("github_ping"))
    assert got == git.Ping()


def test_other_events_are_ignored_by_name() -> None:
    got = read(GitProvider.GITHUB, {"X-GitHub-Event": "issues"}, {"action": "opened"})
    assert got == git.Ignored("issues")
    got = read(GitProvider.GITLAB, {"X-Gitlab-Event": "Note Hook"}, {"object_kind": "note"})
    assert got == git.Ignored("Note Hook")
    got = read(GitProvider.GITEA, {"X-Gitea-Event": "create"}, {"ref": "v1"})
    assert got == git.Ignored("create")


def test_a_push_without_its_fields_is_malformed() -> None:
    with pytest.raises(git.MalformedDelivery, match="'repository'"):
        read(GitProvider.GITHUB, GITHUB, {"ref": "refs/heads/main"})


# -- filters -----------------------------------------------------------------------------------


def test_another_repository_is_filtered_out() -> None:
    push = read(GitProvider.GITHUB, GITHUB, payload("github_push"))
    assert isinstance(push, git.Push)
    verdict = git.decide(trigger(provider="github", repository="acme/other"), push)
    assert not verdict.start
    assert verdict.reason == "repository acme/infra is not acme/other"


def test_repository_names_compare_without_case() -> None:
    push = read(GitProvider.GITHUB, GITHUB, payload("github_push"))
    assert isinstance(push, git.Push)
    assert git.decide(trigger(provider="github", repository="ACME/Infra"), push).start


@pytest.mark.parametrize(
    ("branches", "starts"),
    [
        ([], True),
        (["release/*"], True),
        (["release/2.*"], True),
        (["main"], False),
        (["release"], False),
        (["*"], False),  # one segment only: release/2.3 has two
        (["**"], True),
    ],
)
def test_branch_globs(branches: list[str], starts: bool) -> None:
    push = read(GitProvider.GITLAB, GITLAB, payload("gitlab_push"))
    assert isinstance(push, git.Push)
    spec = trigger(provider="gitlab", repository="platform/edge/stack", branches=branches)
    verdict = git.decide(spec, push)
    assert verdict.start is starts
    if not starts:
        assert verdict.reason == f"branch release/2.3 matches none of {branches}"


@pytest.mark.parametrize(
    ("paths", "starts"),
    [
        (["infra/**"], True),  # a modified file of the first commit
        (["docs/old.md"], True),  # a removed file
        (["locale/*.yml"], True),  # an added file
        (["**/*.md"], True),
        (["*.md"], True),
        (["src/**"], False),
        (["infra"], False),
    ],
)
def test_path_globs_cover_added_modified_and_removed_files_of_every_commit(
    paths: list[str], starts: bool
) -> None:
    push = read(GitProvider.GITLAB, GITLAB, payload("gitlab_push"))
    assert isinstance(push, git.Push)
    spec = trigger(provider="gitlab", repository="platform/edge/stack", paths=paths)
    verdict = git.decide(spec, push)
    assert verdict.start is starts
    if not starts:
        assert verdict.reason == f"none of the 4 changed files matches {paths}"


def test_a_truncated_commit_list_counts_as_a_path_match_and_says_so() -> None:
    body = payload("gitlab_push")
    first = body["commits"][0]
    body["commits"] = [
        {**copy.deepcopy(first), "id": f"{i:040x}", "modified": ["README.md"], "added": []}
        for i in range(20)
    ]
    body["total_commits_count"] = 35
    push = read(GitProvider.GITLAB, GITLAB, body)
    assert isinstance(push, git.Push)
    spec = trigger(provider="gitlab", repository="platform/edge/stack", paths=["infra/**"])
    verdict = git.decide(spec, push)
    assert verdict.start
    assert verdict.note == "the provider listed 20 of 35 commits: paths counted as matched"
    assert verdict.variables["truncated"] is True


def test_a_tag_push_starts_nothing_unless_tags_are_asked_for() -> None:
    push = read(GitProvider.GITHUB, GITHUB, payload("github_tag"))
    assert isinstance(push, git.Push)
    verdict = git.decide(trigger(provider="github", repository="acme/infra"), push)
    assert not verdict.start
    assert verdict.reason == "tag push v1.4.0: the trigger's events are [push]"
    spec = trigger(provider="github", repository="acme/infra", events=["tag"], tags=["v*"])
    verdict = git.decide(spec, push)
    assert verdict.start
    assert (verdict.variables["tag"], verdict.variables["branch"]) == ("v1.4.0", "")
    assert verdict.variables["event"] == "tag"


def test_branch_globs_do_not_filter_tags_and_tag_globs_do() -> None:
    push = read(GitProvider.GITLAB, {"X-Gitlab-Event": "Tag Push Hook"}, payload("gitlab_tag"))
    assert isinstance(push, git.Push)
    spec = trigger(
        provider="gitlab",
        repository="platform/edge/stack",
        branches=["main"],
        events=["push", "tag"],
    )
    verdict = git.decide(spec, push)
    assert verdict.start
    assert verdict.variables["message"] == "Release 2.3.0"
    spec = trigger(
        provider="gitlab", repository="platform/edge/stack", events=["tag"], tags=["release-*"]
    )
    assert git.decide(spec, push).reason == "tag v2.3.0 matches none of ['release-*']"


def test_a_branch_deletion_starts_nothing_unless_asked_for() -> None:
    push = read(GitProvider.GITHUB, GITHUB, payload("github_delete"))
    assert isinstance(push, git.Push)
    verdict = git.decide(trigger(provider="github", repository="acme/infra"), push)
    assert verdict.reason == "refs/heads/feature/old was deleted: the trigger's events are [push]"
    spec = trigger(provider="github", repository="acme/infra", events=["delete"], paths=["x/**"])
    verdict = git.decide(spec, push)
    assert verdict.start
    assert (verdict.variables["branch"], verdict.variables["commit"]) == ("feature/old", "")


def test_a_gitea_delete_event_is_a_branch_deletion() -> None:
    headers = {"X-Gitea-Event": "delete", "X-Gitea-Delivery": "d1"}
    push = read(GitProvider.GITEA, headers, payload("gitea_delete"))
    assert isinstance(push, git.Push)
    assert (push.event, push.ref) == (GitEvent.DELETE, "refs/heads/feature/old")


# -- the trigger's two modes --------------------------------------------------------------------


def test_a_webhook_trigger_needs_provider_and_repository() -> None:
    with pytest.raises(ValidationError, match="needs provider and repository"):
        trigger(branches=["main"])


def test_a_polling_trigger_needs_only_a_url() -> None:
    spec = trigger(url="https://git.example.com/acme/infra.git", branches=["main"])
    assert spec.polls and spec.poll_seconds == 60.0
    assert trigger(url="/srv/git/infra.git", poll="5m").poll_seconds == 300.0


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"url": "/srv/x.git", "poll": "2s"}, "poll every 2s is too often: use 10s or more"),
        ({"url": "/srv/x.git", "paths": ["a/**"]}, "`paths` needs the provider's webhook"),
        ({"provider": "github", "repository": "a/b", "poll": "60s"}, "`poll` needs `url`"),
    ],
)
def test_polling_refuses_what_it_cannot_do(fields: dict[str, Any], message: str) -> None:
    with pytest.raises(ValidationError, match=message.replace("`", ".")):
        trigger(**fields)


# -- the hook source ---------------------------------------------------------------------------


def lower(headers: dict[str, str]) -> dict[str, str]:
    return {k.lower(): v for k, v in headers.items()}


SPEC = {"type": "git", "provider": "github", "repository": "acme/infra"}


def test_the_source_starts_one_run_keyed_by_the_delivery_id() -> None:
    body = json.dumps(payload("github_push")).encode()
    reading = git.GitSource().read(SPEC, lower(GITHUB), body)
    [start] = reading.items
    assert isinstance(start, Start)
    assert start.dedupe_key == GITHUB["X-GitHub-Delivery"]
    assert start.trigger["git"]["commit"] == "0d1a26e67d8f5eaf1f6ba5c57fc3c7d91ac0fd1c"
    assert start.summary == "push to main at 0d1a26e67d8f (2 commits) by octocat"


def test_a_ping_reads_as_a_skip_that_says_so() -> None:
    body = json.dumps(payload("github_ping")).encode()
    reading = git.GitSource().read(SPEC, {"x-github-event": "ping"}, body)
    assert reading.starts == []
    [skip] = reading.items
    assert isinstance(skip, Skip) and skip.reason.startswith("ping")


def test_a_truncated_push_says_so_in_its_summary() -> None:
    body = payload("gitlab_push")
    body["total_commits_count"] = 35
    spec = {**SPEC, "provider": "gitlab", "repository": "platform/edge/stack", "paths": ["x/**"]}
    reading = git.GitSource().read(spec, lower(GITLAB), json.dumps(body).encode())
    [start] = reading.starts
    assert start.summary.endswith("the provider listed 2 of 35 commits: paths counted as matched")


def test_github_form_encoded_deliveries_are_read() -> None:
    body = urlencode({"payload": json.dumps(payload("github_push"))}).encode()
    headers = {**lower(GITHUB), "content-type": "application/x-www-form-urlencoded"}
    assert len(git.GitSource().read(SPEC, headers, body).starts) == 1


def test_every_git_variable_is_a_field_templates_may_name() -> None:
    push = read(GitProvider.GITHUB, GITHUB, payload("github_push"))
    assert isinstance(push, git.Push)
    assert set(git.variables(push)) | {"url"} == FIELDS["git"]


def test_a_polling_trigger_has_no_hook_key_or_secret() -> None:
    with pytest.raises(ValidationError, match="has no hook URL: drop `key` and `secret`"):
        trigger(url="/srv/x.git", key="infra-push")
