"""``POST /hooks/{key}`` for webhook triggers, against a real server on each backend: who is
let in (bearer, Standard Webhooks signatures, and every way to get those wrong), what is
refused before anything runs (size, JSON, params, paused workflow, disabled trigger, rate),
that a repeat starts nothing (50 at once included), and that every delivery is visible
(API and CLI), with the secret shown once by ``rotate-secret``.

One server per backend for the module; each test uses its own workflow and hook key, so
their rate counters and deliveries do not mix.
"""

from __future__ import annotations

import json
import re
import subprocess
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from opsflow.triggers.webhook import sign
from tests.conftest import BACKENDS
from tests.servers import clean_env, fresh_database, opsflow_executable, run_server

pytestmark = pytest.mark.timeout(120)

DOCS = Path(__file__).resolve().parents[3] / "docs"
RATE = 60  # the module server's deliveries per key and minute
NAMED_SECRET = "hook-secret-for-tests-0123456789"


def workflow_yaml(
    workflow_id: str, *, named: bool = False, key: str | None = None, secret_name: str = ""
) -> str:
    secret = f", secret: {secret_name or 'HOOK_SECRET'}" if named else ""
    key_part = f", key: {key}" if key else ""
    return f"""\
id: {workflow_id}
params:
  replicas: {{type: integer, default: 1}}
  who: {{type: string, default: nobody}}
  environment: {{type: string, default: staging}}
triggers:
  - {{type: webhook{key_part}{secret}}}
steps:
  - id: show
    type: script
    shell: sh
    env: {{SHA: "{{{{ trigger.body.variables.sha }}}}", WHO: "{{{{ params.who }}}}"}}
    run: 'echo "sha=$SHA who=$WHO"'
"""


@dataclass
class Hook:
    """A published workflow with one webhook trigger: its URL and secret."""

    workflow_id: str
    name: str
    url: str
    secret: str


@dataclass
class Server:
    url: str
    api: httpx.Client
    env: dict[str, str]
    cwd: Path

    def hook(self, *, named: bool = False, secret_name: str = "") -> Hook:
        """Publish a fresh workflow with a webhook trigger; a generated secret is read the
        one way there is: rotating it."""
        workflow_id = f"hook-{uuid.uuid4().hex[:10]}"
        response = self.api.put(
            f"/workflows/{workflow_id}",
            params={"publish": "true"},
            content=workflow_yaml(workflow_id, named=named, secret_name=secret_name),
            headers={"Content-Type": "application/yaml"},
        )
        assert response.status_code in (200, 201), response.text
        (trigger,) = self.api.get(f"/workflows/{workflow_id}/triggers").json()
        assert trigger["type"] == "webhook"
        assert trigger["name"] == "webhook-1"
        assert trigger["url"].startswith(f"{self.url}/hooks/")
        if named:
            assert trigger["secret"] == f"secret {secret_name or 'HOOK_SECRET'}"
            return Hook(workflow_id, trigger["name"], trigger["url"], NAMED_SECRET)
        assert trigger["secret"] == "generated"
        rotated = self.api.post(f"/workflows/{workflow_id}/triggers/webhook-1/rotate-secret")
        assert rotated.status_code == 200, rotated.text
        return Hook(workflow_id, trigger["name"], trigger["url"], rotated.json()["secret"])

    def deliveries(self, hook: Hook) -> list[dict[str, Any]]:
        response = self.api.get(f"/workflows/{hook.workflow_id}/triggers/{hook.name}/deliveries")
        assert response.status_code == 200, response.text
        return list(response.json()["items"])

    def executions(self, hook: Hook) -> list[dict[str, Any]]:
        response = self.api.get("/executions", params={"workflow": hook.workflow_id})
        assert response.status_code == 200, response.text
        return list(response.json()["items"])

    def cli(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [opsflow_executable(), *args],
            cwd=self.cwd,
            env=self.env,
            capture_output=True,
            text=True,
            timeout=60,
        )


@pytest.fixture(scope="module", params=BACKENDS)
def server_db_url(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[str]:
    yield from fresh_database(request, tmp_path_factory, "hooks")


@pytest.fixture(scope="module")
def server(server_db_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    data_dir = tmp_path_factory.mktemp("hooks-data")
    env = {
        **clean_env(),
        "OPSFLOW_ADMIN_PASSWORD": "admin-pw-for-tests",
        "OPSFLOW_HOOK_RATE_PER_MINUTE": str(RATE),
    }
    with run_server(server_db_url, data_dir, env=env) as running:
        headers = {"Authorization": f"Bearer {running.token}"}
        with httpx.Client(base_url=f"{running.url}/api/v1", headers=headers, timeout=30) as api:
            put = api.put("/secrets/HOOK_SECRET", json={"value": NAMED_SECRET})
            assert put.status_code == 201, put.text
            cli_env = {**clean_env(), "OPSFLOW_URL": running.url, "OPSFLOW_TOKEN": running.token}
            cli_env["COLUMNS"] = "250"
            yield Server(running.url, api, cli_env, data_dir)


def bearer(secret: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {secret}", "Content-Type": "application/json"}


def signed(
    secret: str, body: bytes, *, at: float | None = None, msg_id: str = ""
) -> dict[str, str]:
    msg_id = msg_id or f"msg_{uuid.uuid4().hex}"
    stamp = int(time.time() if at is None else at)
    return {
        "webhook-id": msg_id,
        "webhook-timestamp": str(stamp),
        "webhook-signature": sign(secret, msg_id, stamp, body),
        "Content-Type": "application/json",
    }


BODY = json.dumps({"params": {"replicas": 3, "who": "ada"}, "variables": {"sha": "c0ffee"}})


def wait_ended(server: Server, execution_id: str) -> dict[str, Any]:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        detail = server.api.get(f"/executions/{execution_id}").json()
        if detail["status"] in ("completed", "failed", "error", "cancelled"):
            return dict(detail)
        time.sleep(0.1)  # the run is on the local agent; its status is what we wait for
    pytest.fail(f"execution {execution_id} did not end within 60 s")


def test_good_bearer_starts_a_run_that_sees_the_body_and_params(server: Server) -> None:
    hook = server.hook()
    started = time.monotonic()
    response = httpx.post(hook.url, content=BODY, headers=bearer(hook.secret))
    assert response.status_code == 202, response.text
    answer = response.json()
    assert answer["outcome"] == "started"
    assert answer["url"].endswith(f"/executions/{answer['execution_id']}")
    assert time.monotonic() - started < 5  # the answer does not wait for the run
    detail = wait_ended(server, answer["execution_id"])
    assert detail["status"] == "completed"
    assert detail["params"]["replicas"] == 3
    assert detail["trigger"]["type"] == "webhook"
    logs = server.api.get(f"/executions/{answer['execution_id']}/logs").text
    assert "sha=c0ffee who=ada" in logs
    (delivery,) = server.deliveries(hook)
    assert delivery["outcome"] == "started"
    assert delivery["execution_id"] == answer["execution_id"]
    assert delivery["source_address"] == "127.0.0.1"


def test_the_triggers_own_params_render_over_the_body_and_win(server: Server) -> None:
    workflow_id = f"hook-{uuid.uuid4().hex[:10]}"
    text = workflow_yaml(workflow_id).replace(
        "  - {type: webhook}", '  - {type: webhook, params: {who: "{{ trigger.body.user }}"}}'
    )
    put = server.api.put(
        f"/workflows/{workflow_id}",
        params={"publish": "true"},
        content=text,
        headers={"Content-Type": "application/yaml"},
    )
    assert put.status_code == 201, put.text
    rotated = server.api.post(f"/workflows/{workflow_id}/triggers/webhook-1/rotate-secret")
    url, secret = rotated.json()["url"], rotated.json()["secret"]
    body = json.dumps({"user": "grace", "params": {"who": "ada", "replicas": 2}})
    response = httpx.post(url, content=body, headers=bearer(secret))
    assert response.status_code == 202, response.text
    detail = server.api.get(f"/executions/{response.json()['execution_id']}").json()
    assert (detail["params"]["who"], detail["params"]["replicas"]) == ("grace", 2)


def test_good_signature_with_a_named_secret_starts_a_run(server: Server) -> None:
    hook = server.hook(named=True)
    body = BODY.encode()
    response = httpx.post(hook.url, content=body, headers=signed(hook.secret, body))
    assert response.status_code == 202, response.text
    assert response.json()["outcome"] == "started"


@pytest.mark.parametrize(
    ("case", "why"),
    [
        ("unsigned", "not authenticated"),
        ("wrong bearer", "not this trigger's secret"),
        ("wrong signing secret", "no v1 signature"),
        ("truncated signature", "no v1 signature"),
        ("stale timestamp", "old; at most 300 s"),
        ("future timestamp", "in the future; at most 300 s"),
    ],
)
def test_unauthenticated_deliveries_are_refused_and_start_nothing(
    server: Server, case: str, why: str
) -> None:
    hook = server.hook()
    body = BODY.encode()
    headers: dict[str, str] = {"Content-Type": "application/json"}
    if case == "wrong bearer":
        headers = bearer("whsec_" + "A" * 43)
    elif case == "wrong signing secret":
        headers = signed("whsec_" + "A" * 43, body)
    elif case == "truncated signature":
        headers = signed(hook.secret, body)
        headers["webhook-signature"] = headers["webhook-signature"][:20]
    elif case == "stale timestamp":
        headers = signed(hook.secret, body, at=time.time() - 301)
    elif case == "future timestamp":
        headers = signed(hook.secret, body, at=time.time() + 360)
    response = httpx.post(hook.url, content=body, headers=headers)
    assert response.status_code == 401, response.text
    assert response.headers["content-type"] == "application/problem+json"
    assert why in response.json()["detail"]
    assert server.executions(hook) == []
    (delivery,) = server.deliveries(hook)
    assert delivery["outcome"] == "refused"
    assert why in delivery["reason"]


def test_a_flood_of_forged_deliveries_records_only_the_first_ten_a_minute(
    server: Server,
) -> None:
    hook = server.hook()
    for _attempt in range(2):  # a flood across a minute boundary counts in two windows: again
        window = int(time.time() // 60)
        with httpx.Client(headers=bearer("forged"), timeout=30) as client:
            statuses = {client.post(hook.url, content=BODY).status_code for _ in range(12)}
        if int(time.time() // 60) == window:
            break
        hook = server.hook()
    assert statuses == {401}
    assert len(server.deliveries(hook)) == 10


def test_fifty_concurrent_replays_of_one_delivery_start_one_run(server: Server) -> None:
    hook = server.hook()
    body = BODY.encode()
    headers = signed(hook.secret, body, msg_id="msg_replayed_50_times")

    def send(_: int) -> httpx.Response:
        return httpx.post(hook.url, content=body, headers=headers, timeout=60)

    with ThreadPoolExecutor(max_workers=50) as pool:
        responses = list(pool.map(send, range(50)))
    statuses = sorted(r.status_code for r in responses)
    assert statuses == [200] * 49 + [202], [r.text for r in responses if r.status_code >= 300]
    ids = {r.json()["execution_id"] for r in responses}
    assert len(ids) == 1
    assert [e["id"] for e in server.executions(hook)] == list(ids)
    outcomes = sorted(d["outcome"] for d in server.deliveries(hook))
    assert outcomes == ["deduplicated"] * 49 + ["started"]
    # A later repeat, with Idempotency-Key this time, answers with the same run.
    again = httpx.post(
        hook.url,
        content=body,
        headers={**bearer(hook.secret), "Idempotency-Key": "msg_replayed_50_times"},
    )
    assert again.status_code == 200
    assert again.json()["execution_id"] in ids
    assert again.json()["outcome"] == "deduplicated"


def test_a_body_over_one_mebibyte_is_refused_with_413(server: Server) -> None:
    hook = server.hook()
    big = b'{"pad": "' + b"x" * (1024 * 1024) + b'"}'
    declared = httpx.post(hook.url, content=big, headers=bearer(hook.secret))
    assert declared.status_code == 413, declared.text

    def chunks() -> Iterator[bytes]:  # no Content-Length: the cap holds while it streams
        yield big[: len(big) // 2]
        yield big[len(big) // 2 :]

    streamed = httpx.post(hook.url, content=chunks(), headers=bearer(hook.secret))
    assert streamed.status_code == 413, streamed.text
    assert server.executions(hook) == []
    assert {d["status_code"] for d in server.deliveries(hook)} == {413}


@pytest.mark.parametrize(
    ("body", "loc"),
    [
        ('{"params": {"replicas": 3', "body"),
        ("[1, 2, 3]", "body"),
        ('{"params": {"replicas": "three"}}', "params.replicas"),
        ('{"params": {"replicas": true}}', "params.replicas"),
        ('{"params": {"colour": "red"}}', "params.colour"),
    ],
)
def test_malformed_json_and_wrong_params_are_refused_with_422(
    server: Server, body: str, loc: str
) -> None:
    hook = server.hook()
    response = httpx.post(hook.url, content=body, headers=bearer(hook.secret))
    assert response.status_code == 422, response.text
    assert [e["loc"] for e in response.json()["errors"]] == [loc]
    assert server.executions(hook) == []
    (delivery,) = server.deliveries(hook)
    assert (delivery["outcome"], delivery["status_code"]) == ("refused", 422)
    # The log keeps which param was wrong, as the 422 said, not only "invalid".
    assert loc in delivery["reason"], delivery
    if loc.startswith("params."):
        assert response.json()["errors"][0]["msg"] in delivery["reason"]
        assert delivery["reason"] == response.json()["detail"]


def test_a_paused_workflow_refuses_with_409_until_resumed(server: Server) -> None:
    hook = server.hook()
    assert server.api.post(f"/workflows/{hook.workflow_id}/pause").status_code == 200
    response = httpx.post(hook.url, content=BODY, headers=bearer(hook.secret))
    assert response.status_code == 409, response.text
    assert "paused" in response.json()["detail"]
    assert server.executions(hook) == []
    assert server.api.post(f"/workflows/{hook.workflow_id}/resume").status_code == 200
    assert httpx.post(hook.url, content=BODY, headers=bearer(hook.secret)).status_code == 202
    outcomes = [(d["outcome"], d["status_code"]) for d in server.deliveries(hook)]
    assert outcomes == [("started", 202), ("refused", 409)]


def test_a_disabled_trigger_refuses_with_409(server: Server) -> None:
    hook = server.hook()
    disabled = server.api.post(f"/workflows/{hook.workflow_id}/triggers/{hook.name}/disable")
    assert disabled.status_code == 200, disabled.text
    response = httpx.post(hook.url, content=BODY, headers=bearer(hook.secret))
    assert response.status_code == 409, response.text
    assert "disabled" in response.json()["detail"]
    (delivery,) = server.deliveries(hook)
    assert delivery["outcome"] == "refused"
    assert "disabled" in delivery["reason"]


def test_a_named_secret_not_yet_set_refuses_without_naming_it_to_the_sender(
    server: Server,
) -> None:
    hook = server.hook(named=True, secret_name="NOT_SET_YET")
    response = httpx.post(hook.url, content=BODY, headers=bearer("anything"))
    assert response.status_code == 409, response.text
    assert "NOT_SET_YET" not in response.text and "HOOK_SECRET" not in response.text
    (delivery,) = server.deliveries(hook)
    assert "opsflow secrets set NOT_SET_YET" in delivery["reason"]


def test_an_unknown_key_is_404(server: Server) -> None:
    response = httpx.post(f"{server.url}/hooks/no-such-key", content=BODY, headers=bearer("x"))
    assert response.status_code == 404


def test_an_unknown_long_key_is_404_without_echoing_it(server: Server) -> None:
    key = "k" * 5000
    response = httpx.post(f"{server.url}/hooks/{key}", content=BODY, headers=bearer("x"))
    assert response.status_code == 404, response.text[:300]
    assert "k" * 50 not in response.text
    assert len(response.text) < 1000


@pytest.mark.parametrize("method", ["GET", "HEAD"])
def test_other_methods_on_a_hook_url_answer_405_allowing_post(server: Server, method: str) -> None:
    hook = server.hook()
    response = httpx.request(method, hook.url)
    assert response.status_code == 405, response.text
    assert response.headers["allow"] == "POST"
    if method == "GET":
        assert "POST only" in response.json()["detail"]


def test_past_the_rate_limit_a_key_answers_429_with_retry_after(server: Server) -> None:
    for _attempt in range(2):  # a burst across a minute boundary counts in two windows: again
        hook = server.hook()
        window = int(time.time() // 60)
        with httpx.Client(headers=bearer(hook.secret), timeout=30) as client:
            answers = [
                client.post(hook.url, content=b"", headers={"Idempotency-Key": f"k{i}"})
                for i in range(RATE + 1)
            ]
            # Past the limit, 429 wins over what the delivery would get otherwise (a 422
            # for malformed JSON), signed or not, and nothing starts.
            malformed = client.post(
                hook.url, content=b"{not json", headers={"Idempotency-Key": "x"}
            )
        body = b"{}"
        late = httpx.post(hook.url, content=body, headers=signed(hook.secret, body), timeout=30)
        if int(time.time() // 60) == window:
            break
    assert [a.status_code for a in answers[:RATE]] == [202] * RATE
    refused = answers[RATE]
    assert refused.status_code == 429, refused.text
    assert 1 <= int(refused.headers["Retry-After"]) <= 60
    assert "more than 60 deliveries this minute" in refused.json()["detail"]
    assert (malformed.status_code, late.status_code) == (429, 429), malformed.text + late.text
    listed = server.api.get("/executions", params={"workflow": hook.workflow_id, "limit": 200})
    assert len(listed.json()["items"]) == RATE
    # Only the minute's first refusal is recorded; the rest are only counted.
    recorded = [d["status_code"] for d in server.deliveries(hook)]
    assert recorded[0] == 429 and recorded.count(429) == 1, recorded[:5]


def test_executions_show_says_which_trigger_started_the_run_and_from_where(
    server: Server,
) -> None:
    hook = server.hook()
    headers = {**bearer(hook.secret), "Idempotency-Key": "d-show-1"}
    answer = httpx.post(hook.url, content=BODY, headers=headers)
    assert answer.status_code == 202, answer.text
    shown = server.cli("executions", "show", answer.json()["execution_id"])
    assert shown.returncode == 0, shown.stderr
    (line,) = [ln for ln in shown.stdout.splitlines() if ln.startswith("trigger:")]
    assert line == f"trigger: webhook {hook.name}: webhook delivery d-show-1 (from 127.0.0.1)"


def test_the_cli_lists_triggers_and_deliveries_and_rotates_a_secret_once(
    server: Server,
) -> None:
    hook = server.hook()
    assert httpx.post(hook.url, content=BODY, headers=bearer(hook.secret)).status_code == 202
    listed = server.cli("triggers", "list", hook.workflow_id)
    assert listed.returncode == 0, listed.stderr
    assert hook.url in listed.stdout and "started" in listed.stdout
    as_json = json.loads(server.cli("triggers", "list", hook.workflow_id, "-o", "json").stdout)
    assert as_json[0]["url"] == hook.url
    shown = server.cli("triggers", "deliveries", hook.workflow_id, hook.name)
    assert shown.returncode == 0, shown.stderr
    assert "started" in shown.stdout and "127.0.0.1" in shown.stdout
    every = server.cli("triggers", "deliveries", hook.workflow_id, "-o", "json")
    assert [d["trigger_name"] for d in json.loads(every.stdout)["items"]] == [hook.name]
    rotated = server.cli("triggers", "rotate-secret", hook.workflow_id, hook.name, "--yes")
    assert rotated.returncode == 0, rotated.stderr
    new_secret = rotated.stdout.strip()
    assert new_secret.startswith("whsec_") and new_secret != hook.secret
    assert "shown this once" in rotated.stderr
    old = httpx.post(hook.url, content=BODY, headers=bearer(hook.secret))
    assert old.status_code == 401
    assert httpx.post(hook.url, content=BODY, headers=bearer(new_secret)).status_code == 202
    # Neither the API's listing nor the server's log ever shows a secret.
    assert new_secret not in json.dumps(as_json)
    log = (server.cwd / "server.log").read_text()
    assert new_secret not in log and hook.secret not in log


def test_rotating_a_named_secret_is_refused_naming_it(server: Server) -> None:
    hook = server.hook(named=True)
    response = server.api.post(f"/workflows/{hook.workflow_id}/triggers/{hook.name}/rotate-secret")
    assert response.status_code == 409
    assert "opsflow secrets set HOOK_SECRET" in response.json()["detail"]


def test_the_documented_openssl_recipe_signs_a_delivery_the_server_accepts(
    server: Server,
) -> None:
    hook = server.hook()
    howto = (DOCS / "triggers" / "webhook.md").read_text()
    (recipe,) = [b for b in re.findall(r"```bash\n(.*?)```", howto, re.S) if "openssl dgst" in b]
    script = re.sub(r"^SECRET=.*$", f"SECRET='{hook.secret}'", recipe, flags=re.M)
    script = script.replace("https://ops.example.com/hooks/deploy-hook", hook.url)
    assert hook.url in script
    done = subprocess.run(["bash", "-c", script], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    answer = json.loads(done.stdout)
    assert answer["outcome"] == "started", answer
    detail = server.api.get(f"/executions/{answer['execution_id']}").json()
    assert detail["params"]["environment"] == "staging"
