"""Triggers follow published versions: names, URL keys and secrets survive re-publishing, a
key another workflow holds is refused whole, one trigger can be disabled, and a fired trigger
starts a run that records where it came from (only while the workflow is Active)."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from fastapi.testclient import TestClient
from sqlalchemy import text

from opsflow.api.app import create_app
from opsflow.config import Settings
from opsflow.store import triggers as triggers_store
from opsflow.store.db import Database
from opsflow.store.triggers import Trigger
from tests.integration.triggers.conftest import YAML

STEPS = "steps:\n  - {id: wait, type: approval, approvers: [admin]}\n"


def workflow(workflow_id: str, triggers: str, params: str = "") -> str:
    return f"id: {workflow_id}\n{params}triggers:\n{triggers}{STEPS}"


def apply(client: TestClient, text: str) -> Any:
    response = client.put(
        f"/api/v1/workflows/{text.split()[1]}?publish=true", content=text, headers=YAML
    )
    assert response.status_code in (200, 201, 409), response.text
    return response


def rows(database: Database, workflow_id: str, retired: bool = False) -> dict[str, Trigger]:
    with database.read() as session:
        found = triggers_store.list_for_workflow(session, workflow_id, include_retired=retired)
    return {t.name: t for t in found}


FIVE = (
    "  - {type: schedule, cron: '0 3 * * *'}\n"
    "  - {type: webhook}\n"
    "  - {type: schedule, cron: '@hourly', timezone: Europe/Berlin}\n"
    "  - {type: webhook, key: deploy-hook}\n"
    "  - {type: git, provider: github, repository: acme/infra}\n"
)


def test_names_keys_and_secrets_survive_republishing(
    client: TestClient, database: Database
) -> None:
    assert apply(client, workflow("deploy", FIVE)).status_code in (200, 201)
    first = rows(database, "deploy")
    assert list(first) == ["schedule-1", "webhook-1", "schedule-2", "deploy-hook", "git-1"]
    assert first["deploy-hook"].hook_key == "deploy-hook"
    generated = first["webhook-1"].hook_key
    assert generated and len(generated) >= 32
    assert first["schedule-1"].hook_key is None and first["schedule-1"].next_due_at
    assert first["git-1"].secret_ciphertext and first["webhook-1"].secret_ciphertext
    # A new version (one trigger gone, one changed) keeps what the others had.
    changed = FIVE.replace("0 3 * * *", "0 4 * * *").replace(
        "  - {type: git, provider: github, repository: acme/infra}\n", ""
    )
    response = apply(client, workflow("deploy", changed))
    assert response.status_code == 200, response.text
    second = rows(database, "deploy")
    assert list(second) == ["schedule-1", "webhook-1", "schedule-2", "deploy-hook"]
    assert second["webhook-1"].hook_key == generated
    assert second["webhook-1"].secret_ciphertext == first["webhook-1"].secret_ciphertext
    assert second["schedule-2"].next_due_at == first["schedule-2"].next_due_at
    assert second["schedule-1"].spec["cron"] == "0 4 * * *"
    assert rows(database, "deploy", retired=True)["git-1"].retired_at is not None
    # Declared again, the retired trigger comes back with its URL key.
    apply(client, workflow("deploy", FIVE))
    assert rows(database, "deploy")["git-1"].hook_key == first["git-1"].hook_key


def test_a_key_another_workflow_holds_is_refused_and_nothing_is_written(
    client: TestClient, database: Database
) -> None:
    apply(client, workflow("one", "  - {type: webhook, key: shared}\n"))
    both = "  - {type: schedule, cron: '@daily'}\n  - {type: webhook, key: shared}\n"
    response = apply(client, workflow("two", both))
    assert response.status_code == 409, response.text
    assert [e["loc"] for e in response.json()["errors"]] == ["triggers[1].key"]
    assert "'one'" in response.json()["errors"][0]["msg"]
    # The draft, its version and its triggers were one transaction: none of it is there.
    assert client.get("/api/v1/workflows/two").status_code == 404
    assert rows(database, "two") == {}
    # Once the first workflow lets go of the key, the second may take it.
    apply(client, workflow("one", "  - {type: webhook}\n"))
    assert apply(client, workflow("two", "  - {type: webhook, key: shared}\n")).status_code in (
        200,
        201,
    )
    assert rows(database, "two")["shared"].hook_key == "shared"


SCHEDULED = workflow(
    "report",
    "  - {type: schedule, cron: '0 2 * * *', params: "
    "{size: '{{ trigger.name | length }}', who: '{{ execution.started_by }}'}}\n",
    params="params:\n  size: {type: integer}\n  who: {type: string}\n",
)


def test_a_fired_schedule_records_its_trigger_and_renders_params(client: TestClient) -> None:
    apply(client, SCHEDULED)
    response = client.post("/api/v1/workflows/report/triggers/schedule-1/fire")
    assert response.status_code == 201, response.text
    execution = client.get(f"/api/v1/executions/{response.json()['execution_id']}").json()
    assert execution["trigger"]["type"] == "schedule"
    assert execution["trigger"]["actor"] == "admin"
    assert "schedule-1" in execution["trigger"]["source"]
    assert execution["trigger_data"]["name"] == "schedule-1"
    assert execution["params"] == {"size": 10, "who": "admin"}
    (listed,) = client.get("/api/v1/schedules").json()
    assert listed["last_fire"]["execution_id"] == execution["id"]
    assert listed["last_fire"]["status"] == execution["status"]


def test_a_hand_fire_answers_the_execution_under_the_public_url(settings: Settings) -> None:
    behind = replace(settings, host="0.0.0.0", public_url="https://ops.example.com")
    with TestClient(create_app(behind)) as client:
        token = (settings.data_dir / "admin-token").read_text().strip()
        client.headers["Authorization"] = f"Bearer {token}"
        apply(client, SCHEDULED)
        response = client.post("/api/v1/workflows/report/triggers/schedule-1/fire")
    assert response.status_code == 201, response.text
    eid = response.json()["execution_id"]
    assert response.json()["url"] == f"https://ops.example.com/api/v1/executions/{eid}"


def test_disabled_triggers_do_not_fire_and_a_paused_workflow_takes_a_hand_fire(
    client: TestClient,
) -> None:
    apply(client, SCHEDULED)
    fire = "/api/v1/workflows/report/triggers/schedule-1/fire"
    client.post("/api/v1/workflows/report/pause")
    # A hand fire is a manual act: like a run started by hand, a paused workflow allows it.
    assert client.post(fire).status_code == 201
    client.post("/api/v1/workflows/report/resume")
    disabled = client.post("/api/v1/workflows/report/triggers/schedule-1/disable")
    assert disabled.status_code == 200 and disabled.json()["enabled"] is False
    assert disabled.json()["next_due_at"] is None
    refused = client.post(fire)
    assert refused.status_code == 409 and "disabled" in refused.json()["detail"]
    enabled = client.post("/api/v1/workflows/report/triggers/schedule-1/enable")
    assert enabled.json()["enabled"] is True and enabled.json()["next_due_at"]
    assert client.post(fire).status_code == 201
    # Re-publishing keeps a trigger disabled.
    client.post("/api/v1/workflows/report/triggers/schedule-1/disable")
    apply(client, SCHEDULED.replace("0 2 * * *", "0 3 * * *"))
    assert client.post(fire).status_code == 409
    assert client.post("/api/v1/workflows/report/triggers/nope/disable").status_code == 404


def test_params_that_do_not_suit_the_workflow_are_refused_by_name(client: TestClient) -> None:
    apply(client, SCHEDULED.replace("trigger.name | length", "trigger.name"))
    response = client.post("/api/v1/workflows/report/triggers/schedule-1/fire")
    assert response.status_code == 422, response.text
    assert [e["loc"] for e in response.json()["errors"]] == ["params.size"]


def test_an_instant_is_claimed_once(client: TestClient, database: Database) -> None:
    apply(client, SCHEDULED)
    trigger = rows(database, "report")["schedule-1"]
    with database.session() as session:
        assert triggers_store.claim_fire(session, trigger.id, 60.0, "first", 1.0) is None
    with database.session() as session:
        assert triggers_store.claim_fire(session, trigger.id, 60.0, "second", 2.0) == "first"
        assert triggers_store.claim_fire(session, trigger.id, 120.0, "third", 2.0) is None


def test_the_schedule_list_shows_next_fire_and_a_preview(client: TestClient) -> None:
    berlin = "timezone: Europe/Berlin"
    apply(client, workflow("backup", f"  - {{type: schedule, cron: '30 2 * * *', {berlin}}}\n"))
    (listed,) = client.get("/api/v1/schedules").json()
    assert listed["workflow_id"] == "backup" and listed["name"] == "schedule-1"
    assert listed["missed"] == "skip" and listed["last_fire"] is None
    assert listed["next_fire_at"] == listed["preview"][0]
    assert len(listed["preview"]) == 5
    assert all("T02:30:00+0" in instant for instant in listed["preview"])
    client.post("/api/v1/workflows/backup/pause")
    (paused,) = client.get("/api/v1/schedules").json()
    assert paused["next_fire_at"] is None and paused["workflow_status"] == "paused"


def test_workflows_published_before_trigger_rows_get_them_at_start(
    client: TestClient, settings: Settings, database: Database
) -> None:
    apply(client, workflow("older", FIVE))
    with database.session() as session:  # as a database from before the triggers table was
        session.execute(text("DELETE FROM triggers"))
    with TestClient(create_app(settings)):
        assert list(rows(database, "older")) == [
            "schedule-1",
            "webhook-1",
            "schedule-2",
            "deploy-hook",
            "git-1",
        ]


def test_a_schedule_that_overlaps_its_last_run_follows_concurrency(client: TestClient) -> None:
    apply(
        client,
        workflow("single", "  - {type: schedule, cron: '@hourly'}\n").replace(
            "triggers:", "concurrency: {limit: 1, policy: skip}\ntriggers:"
        ),
    )
    fire = "/api/v1/workflows/single/triggers/schedule-1/fire"
    first = client.post(fire).json()["execution_id"]
    second = client.post(fire).json()["execution_id"]
    assert client.get(f"/api/v1/executions/{first}").json()["status"] in ("running", "paused")
    skipped = client.get(f"/api/v1/executions/{second}").json()
    assert skipped["status"] == "cancelled" and "concurrency" in skipped["status_reason"]


def test_a_schedule_and_a_workflow_trigger_take_a_key_as_their_name(
    client: TestClient, database: Database
) -> None:
    keyed = (
        "  - {type: schedule, key: nightly, cron: '0 2 * * *'}\n"
        "  - {type: schedule, cron: '0 3 * * *'}\n"
        "  - {type: workflow, key: after-build, workflow: build}\n"
    )
    assert apply(client, workflow("keyed", keyed)).status_code in (200, 201)
    found = rows(database, "keyed")
    assert list(found) == ["nightly", "schedule-1", "after-build"]
    assert found["nightly"].hook_key is None and found["nightly"].next_due_at
    fired = client.post("/api/v1/workflows/keyed/triggers/nightly/fire")
    assert fired.status_code == 201, fired.text
    execution = client.get(f"/api/v1/executions/{fired.json()['execution_id']}").json()
    assert execution["trigger_data"]["name"] == "nightly"
    listed = {s["name"] for s in client.get("/api/v1/schedules").json()}
    assert {"nightly", "schedule-1"} <= listed
    # Its fire state follows the key when the cron line changes in a new version.
    apply(client, workflow("keyed", keyed.replace("0 2 * * *", "0 4 * * *")))
    assert rows(database, "keyed")["nightly"].id == found["nightly"].id
    # A key that is the name a keyless trigger gets would make two triggers one.
    clash = (
        "  - {type: schedule, key: schedule-1, cron: '0 2 * * *'}\n"
        + keyed[keyed.index("  - {type: schedule, cron") :]
    )
    refused = client.put(
        "/api/v1/workflows/clash?publish=true", content=workflow("clash", clash), headers=YAML
    )
    assert refused.status_code == 422, refused.text
    assert "triggers[0].key" in refused.text
    assert "is the name triggers[1] gets without a key" in refused.text
