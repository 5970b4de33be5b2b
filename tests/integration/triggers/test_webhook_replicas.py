"""Two ``opsflow server`` replicas on one PostgreSQL share a hook's deduplication and its rate
limit: 50 concurrent copies of one delivery, spread over both, start one run, and the key's
deliveries per minute are counted once for both."""

from __future__ import annotations

import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest

from tests.conftest import BACKENDS
from tests.integration.triggers.test_webhooks import BODY, bearer, signed, workflow_yaml
from tests.servers import RunningServer, clean_env, fresh_database, run_server

pytestmark = [pytest.mark.timeout(120), pytest.mark.postgres]

RATE = 60  # above the 50 copies of the deduplication test


@pytest.fixture(scope="module", params=[b for b in BACKENDS if b == "postgresql"])
def shared_db_url(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[str]:
    yield from fresh_database(request, tmp_path_factory, "replicas")


@pytest.fixture(scope="module")
def replicas(
    shared_db_url: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[RunningServer, RunningServer]]:
    """Two servers on one database and one master key (replicas share their secrets)."""
    first_dir = tmp_path_factory.mktemp("replica-a")
    second_dir = tmp_path_factory.mktemp("replica-b")
    env = {
        **clean_env(),
        "OPSFLOW_ADMIN_PASSWORD": "admin-pw-for-tests",
        "OPSFLOW_HOOK_RATE_PER_MINUTE": str(RATE),
    }
    with run_server(shared_db_url, first_dir, "--no-local-agent", env=env) as first:
        key = (first_dir / "secret-key").read_text().strip()
        # The admin exists already, so the second server writes no token: it shares the first's.
        (second_dir / "admin-token").write_text((first_dir / "admin-token").read_text())
        with run_server(
            shared_db_url,
            second_dir,
            "--no-local-agent",
            env={**env, "OPSFLOW_SECRET_KEY": key},
        ) as second:
            yield first, second


def publish(server: RunningServer, workflow_id: str) -> tuple[str, str]:
    """The hook path and a fresh secret of a new workflow with one webhook trigger."""
    headers = {"Authorization": f"Bearer {server.token}"}
    with httpx.Client(base_url=f"{server.url}/api/v1", headers=headers, timeout=30) as api:
        put = api.put(
            f"/workflows/{workflow_id}",
            params={"publish": "true"},
            content=workflow_yaml(workflow_id),
            headers={"Content-Type": "application/yaml"},
        )
        assert put.status_code == 201, put.text
        rotated = api.post(f"/workflows/{workflow_id}/triggers/webhook-1/rotate-secret")
        assert rotated.status_code == 200, rotated.text
    answer = rotated.json()
    return "/hooks/" + answer["url"].rsplit("/", 1)[1], answer["secret"]


def test_fifty_copies_over_two_replicas_start_one_run(
    replicas: tuple[RunningServer, RunningServer],
) -> None:
    path, secret = publish(replicas[0], "replicated-dedupe")
    body = BODY.encode()
    headers = signed(secret, body, msg_id="msg_over_two_replicas")

    def send(i: int) -> httpx.Response:
        url = replicas[i % 2].url + path
        return httpx.post(url, content=body, headers=headers, timeout=60)

    with ThreadPoolExecutor(max_workers=50) as pool:
        responses = list(pool.map(send, range(50)))
    assert sorted(r.status_code for r in responses) == [200] * 49 + [202]
    assert len({r.json()["execution_id"] for r in responses}) == 1


def test_the_rate_limit_counts_both_replicas_deliveries(
    replicas: tuple[RunningServer, RunningServer],
) -> None:
    for attempt in range(2):  # a burst across a minute boundary counts in two windows: again
        path, secret = publish(replicas[0], f"replicated-rate-{attempt}")
        window = int(time.time() // 60)
        answers = [
            httpx.post(
                replicas[i % 2].url + path,
                content=b"",
                headers={**bearer(secret), "Idempotency-Key": f"k{i}"},
                timeout=30,
            )
            for i in range(RATE + 1)
        ]
        if int(time.time() // 60) == window:
            break
    assert [a.status_code for a in answers[:RATE]] == [202] * RATE
    assert answers[RATE].status_code == 429
    assert int(answers[RATE].headers["Retry-After"]) >= 1
