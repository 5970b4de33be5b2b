"""Git pushes on ``POST /hooks/{key}`` of a real server, on each backend: GitHub, GitLab and
Gitea deliveries in their documented formats (tests/unit/triggers/payloads), signed as each
provider signs, through the branch and path filters, with tag pushes, pings, redeliveries and
forged signatures. One server per backend (``trigger_server``); each test publishes its own
workflow."""

from __future__ import annotations

import copy
import json
import re
import subprocess
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from opsflow.spec.triggers import GitProvider
from opsflow.triggers.git import sign
from tests.integration.triggers.conftest import GIT_SECRET as SECRET
from tests.integration.triggers.conftest import TriggerServer

pytestmark = pytest.mark.timeout(120)

PAYLOADS = Path(__file__).parents[2] / "unit" / "triggers" / "payloads"


def payload(name: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((PAYLOADS / f"{name}.json").read_text())
    return data


@dataclass
class Hook:
    workflow_id: str
    url: str


@dataclass
class Server:
    url: str
    api: httpx.Client

    def hook(self, trigger: str) -> Hook:
        """Publish a workflow whose one trigger is ``trigger`` (YAML flow mapping fields)."""
        workflow_id = f"git-{uuid.uuid4().hex[:10]}"
        text = f"""\
id: {workflow_id}
params:
  ref: {{type: string, default: none}}
triggers:
  - {{type: git, secret: GIT_SECRET, {trigger}, params: {{ref: "{{{{ git.ref }}}}"}}}}
steps:
  - id: show
    type: script
    shell: sh
    env: {{BRANCH: "{{{{ git.branch }}}}", FILES: "{{{{ git.changed_files | join(',') }}}}"}}
    run: 'echo "branch=$BRANCH files=$FILES"'
"""
        answer = self.api.put(
            f"/workflows/{workflow_id}",
            params={"publish": "true"},
            content=text,
            headers={"Content-Type": "application/yaml"},
        )
        assert answer.status_code in (200, 201), answer.text
        (trigger_out,) = self.api.get(f"/workflows/{workflow_id}/triggers").json()
        return Hook(workflow_id, trigger_out["url"])

    def executions(self, hook: Hook) -> list[dict[str, Any]]:
        answer = self.api.get("/executions", params={"workflow": hook.workflow_id})
        assert answer.status_code == 200, answer.text
        return list(answer.json()["items"])

    def deliveries(self, hook: Hook) -> list[dict[str, Any]]:
        answer = self.api.get(f"/workflows/{hook.workflow_id}/triggers/git-1/deliveries")
        assert answer.status_code == 200, answer.text
        return list(answer.json()["items"])


@pytest.fixture
def server(trigger_server: TriggerServer) -> Server:
    return Server(trigger_server.url, trigger_server.api)


def send(
    hook: Hook,
    provider: GitProvider,
    event: str,
    body: dict[str, Any],
    *,
    secret: str = SECRET,
    delivery: str | None = None,
) -> httpx.Response:
    """Deliver ``body`` as ``provider`` does: its event, delivery id and signature headers."""
    raw = json.dumps(body).encode()
    delivery = delivery or str(uuid.uuid4())
    headers = {"Content-Type": "application/json", **sign(provider, secret, raw)}
    match provider:
        case GitProvider.GITHUB:
            headers |= {"X-GitHub-Event": event, "X-GitHub-Delivery": delivery}
        case GitProvider.GITLAB:
            headers |= {"X-Gitlab-Event": event, "X-Gitlab-Event-UUID": delivery}
            headers |= {"Idempotency-Key": delivery}
        case GitProvider.GITEA:
            headers |= {"X-Gitea-Event": event, "X-Gitea-Delivery": delivery}
            headers |= {"X-GitHub-Event": event, "X-GitHub-Delivery": delivery}
    return httpx.post(hook.url, content=raw, headers=headers, timeout=30)


def wait_ended(server: Server, execution_id: str) -> dict[str, Any]:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        detail: dict[str, Any] = server.api.get(f"/executions/{execution_id}").json()
        if detail["status"] in ("completed", "failed", "error", "cancelled"):
            return detail
        time.sleep(0.1)  # the run is on the local agent; its status is what we wait for
    pytest.fail(f"execution {execution_id} did not end within 60 s")


def test_a_github_push_to_a_matching_branch_and_path_starts_one_run(server: Server) -> None:
    hook = server.hook(
        'provider: github, repository: acme/infra, branches: [main], paths: ["infra/**"]'
    )
    delivery = str(uuid.uuid4())
    answer = send(hook, GitProvider.GITHUB, "push", payload("github_push"), delivery=delivery)
    assert answer.status_code == 202, answer.text
    execution_id = answer.json()["execution_id"]
    detail = wait_ended(server, execution_id)
    assert detail["status"] == "completed"
    assert detail["params"] == {"ref": "refs/heads/main"}
    git = detail["trigger_data"]["git"]
    assert (git["provider"], git["repository"], git["branch"]) == ("github", "acme/infra", "main")
    assert git["commit"] == "0d1a26e67d8f5eaf1f6ba5c57fc3c7d91ac0fd1c"
    assert detail["trigger"]["source"] == "github acme/infra@0d1a26e67d8f"
    logs = server.api.get(f"/executions/{execution_id}/logs").text
    assert "branch=main files=infra/api/main.tf,docs/limits.md,README.md" in logs

    again = send(hook, GitProvider.GITHUB, "push", payload("github_push"), delivery=delivery)
    assert again.status_code == 200, again.text
    assert again.json()["execution_id"] == execution_id
    assert [e["id"] for e in server.executions(hook)] == [execution_id]


def test_pushes_the_filters_leave_out_start_nothing_and_say_why(server: Server) -> None:
    hook = server.hook(
        'provider: github, repository: acme/infra, branches: [main], paths: ["infra/**"]'
    )
    other_branch = payload("github_push") | {"ref": "refs/heads/dev"}
    other_paths = copy.deepcopy(payload("github_push"))
    other_paths["commits"] = other_paths["commits"][1:]  # docs only
    other_repo = copy.deepcopy(payload("github_push"))
    other_repo["repository"]["full_name"] = "acme/web"
    for body in (other_branch, other_paths, other_repo, payload("github_tag")):
        answer = send(hook, GitProvider.GITHUB, "push", body)
        assert answer.status_code == 200, answer.text
        assert answer.json()["outcome"] == "filtered"
    reasons = [d["reason"] for d in reversed(server.deliveries(hook))]
    assert reasons == [
        "branch dev matches none of ['main']",
        "none of the 3 changed files matches ['infra/**']",
        "repository acme/web is not acme/infra",
        "tag push v1.4.0: the trigger's events are [push]",
    ]
    assert server.executions(hook) == []


def test_a_ping_answers_200_and_starts_nothing(server: Server) -> None:
    hook = server.hook("provider: github, repository: acme/infra")
    answer = send(hook, GitProvider.GITHUB, "ping", payload("github_ping"))
    assert answer.status_code == 200, answer.text
    assert answer.json()["items"][0]["reason"].startswith("ping:")
    assert server.executions(hook) == []


def test_a_pull_request_starts_nothing_and_the_delivery_log_says_so(server: Server) -> None:
    # The trimmed shapes of GitHub's pull_request and GitLab's merge request events.
    github = {
        "action": "opened",
        "number": 7,
        "pull_request": {"number": 7, "head": {"ref": "feature"}, "base": {"ref": "main"}},
        "repository": {"full_name": "acme/infra"},
    }
    gitlab = {
        "object_kind": "merge_request",
        "project": {"path_with_namespace": "acme/infra"},
        "object_attributes": {"iid": 7, "source_branch": "feature", "target_branch": "main"},
    }
    for provider, event, body, events in (
        (GitProvider.GITHUB, "pull_request", github, "[push, pull_request]"),
        (GitProvider.GITLAB, "Merge Request Hook", gitlab, "[push]"),
    ):
        hook = server.hook(f"provider: {provider.value}, repository: acme/infra, events: {events}")
        answer = send(hook, provider, event, body)
        assert answer.status_code == 200, answer.text
        assert answer.json()["outcome"] == "filtered"
        (item,) = answer.json()["items"]
        assert f"a pull request event ({event!r})" in item["reason"]
        assert "starts no runs for pull requests" in item["reason"]
        listed = "lists pull_request in `events`" in item["reason"]
        assert listed == ("pull_request" in events), item["reason"]
        (recorded,) = server.deliveries(hook)
        assert (recorded["outcome"], recorded["reason"]) == ("filtered", item["reason"])
        assert server.executions(hook) == []


def test_a_forged_signature_is_refused_and_recorded(server: Server) -> None:
    hook = server.hook("provider: github, repository: acme/infra")
    answer = send(hook, GitProvider.GITHUB, "push", payload("github_push"), secret="guess")
    assert answer.status_code == 401, answer.text
    unsigned = httpx.post(
        hook.url,
        content=json.dumps(payload("github_push")),
        headers={"X-GitHub-Event": "push", "Content-Type": "application/json"},
    )
    assert unsigned.status_code == 401, unsigned.text
    assert [d["outcome"] for d in server.deliveries(hook)] == ["refused", "refused"]
    assert server.executions(hook) == []


PUSHES = {
    GitProvider.GITHUB: ("push", "github_push"),
    GitProvider.GITLAB: ("Push Hook", "gitlab_push"),
    GitProvider.GITEA: ("push", "gitea_push"),
}


@pytest.mark.parametrize("provider", list(GitProvider))
def test_a_trigger_refuses_every_other_providers_proof_even_with_the_right_secret(
    server: Server, provider: GitProvider
) -> None:
    """A GitHub trigger once started a run for an unsigned push carrying the plain secret in
    X-Gitlab-Token: each provider's trigger takes only its own header."""
    repository = {
        GitProvider.GITHUB: "acme/infra",
        GitProvider.GITLAB: "platform/edge/stack",
        GitProvider.GITEA: "gitea/webhooks",
    }[provider]
    hook = server.hook(f"provider: {provider.value}, repository: {repository}")
    event, name = PUSHES[provider]
    raw = json.dumps(payload(name)).encode()
    events = {
        "X-GitHub-Event": event,
        "X-Gitlab-Event": event,
        "X-Gitea-Event": event,
        "Content-Type": "application/json",
    }
    others = [sign(other, SECRET, raw) for other in GitProvider if other is not provider]
    if provider is not GitProvider.GITEA:
        gitea = sign(GitProvider.GITEA, SECRET, raw)["X-Gitea-Signature"]
        others.append({"X-Forgejo-Signature": gitea})
    others.append({"Authorization": f"Bearer {SECRET}"})  # a webhook's or an incident's
    for proof in others:
        answer = httpx.post(hook.url, content=raw, headers={**events, **proof}, timeout=30)
        assert answer.status_code == 401, (proof, answer.text)
    outcomes = [d["outcome"] for d in server.deliveries(hook)]
    assert outcomes == ["refused"] * len(others)
    assert server.executions(hook) == []
    # Its own proof still works, so the refusals above were about the header alone.
    own = httpx.post(hook.url, content=raw, headers={**events, **sign(provider, SECRET, raw)})
    assert own.status_code == 202, own.text


def test_a_tag_push_runs_when_tags_are_asked_for(server: Server) -> None:
    hook = server.hook(
        'provider: gitlab, repository: platform/edge/stack, events: [push, tag], tags: ["v*"]'
    )
    answer = send(hook, GitProvider.GITLAB, "Tag Push Hook", payload("gitlab_tag"))
    assert answer.status_code == 202, answer.text
    detail = wait_ended(server, answer.json()["execution_id"])
    assert detail["params"] == {"ref": "refs/tags/v2.3.0"}
    assert detail["trigger_data"]["git"]["tag"] == "v2.3.0"


def test_a_gitlab_push_with_a_truncated_commit_list_counts_as_a_path_match(
    server: Server,
) -> None:
    hook = server.hook(
        'provider: gitlab, repository: platform/edge/stack, branches: ["release/*"], '
        'paths: ["charts/**"]'
    )
    body = payload("gitlab_push")
    body["total_commits_count"] = 35  # GitLab lists at most 20 of them
    answer = send(hook, GitProvider.GITLAB, "Push Hook", body)
    assert answer.status_code == 202, answer.text
    (delivery,) = server.deliveries(hook)
    assert delivery["outcome"] == "started"
    assert delivery["reason"].endswith(
        "the provider listed 2 of 35 commits: paths counted as matched"
    )
    wrong_token = httpx.post(
        hook.url,
        content=json.dumps(body),
        headers={"X-Gitlab-Event": "Push Hook", "X-Gitlab-Token": "guess"},
    )
    assert wrong_token.status_code == 401


def test_a_gitea_push_is_verified_with_its_own_signature(server: Server) -> None:
    hook = server.hook('provider: gitea, repository: gitea/webhooks, paths: ["deploy/**"]')
    answer = send(hook, GitProvider.GITEA, "push", payload("gitea_push"))
    assert answer.status_code == 202, answer.text
    detail = wait_ended(server, answer.json()["execution_id"])
    assert detail["trigger_data"]["git"]["changed_files"] == ["deploy/values.yaml"]
    deletion = send(hook, GitProvider.GITEA, "delete", payload("gitea_delete"))
    assert deletion.status_code == 200
    assert "was deleted" in deletion.json()["items"][0]["reason"]


@pytest.mark.parametrize(
    ("provider", "trigger", "fixture", "example_url"),
    [
        ("GitHub", "provider: github, repository: acme/infra", "github_push", "infra-push"),
        (
            "GitLab",
            "provider: gitlab, repository: platform/edge/stack",
            "gitlab_push",
            "edge-push",
        ),
        ("Gitea", "provider: gitea, repository: gitea/webhooks", "gitea_push", "app-push"),
    ],
)
def test_the_documented_curl_recipes_deliver_a_push_the_server_accepts(
    server: Server, tmp_path: Path, provider: str, trigger: str, fixture: str, example_url: str
) -> None:
    hook = server.hook(trigger)
    howto = (Path(__file__).parents[3] / "docs" / "triggers" / "git.md").read_text()
    section = howto.split(f"\n## {provider}", 1)[1].split("\n## ", 1)[0]
    (recipe,) = [b for b in re.findall(r"```sh\n(.*?)```", section, re.S) if "curl" in b]
    script = f"SECRET='{SECRET}'\n" + re.sub(r"^SECRET=.*$", "", recipe, flags=re.M)
    script = script.replace(f"https://opsflow.example.com/hooks/{example_url}", hook.url)
    assert hook.url in script
    (tmp_path / "push.json").write_text(json.dumps(payload(fixture), indent=2) + "\n")
    done = subprocess.run(
        ["bash", "-c", script], cwd=tmp_path, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    answer = json.loads(done.stdout)
    assert answer["outcome"] == "started", answer
