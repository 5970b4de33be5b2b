"""Terraform state kept by a real opsflow server: real Terraform writes, locks and reads it over
HTTP with the job's credentials; people read it through the API and the CLI."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import shutil
import subprocess
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import pytest

from opsflow.status import JobStatus
from opsflow.steps.base import CancelSignal
from opsflow.steps.terraform import TerraformExecutor
from opsflow.steps.terraform_program import EMBEDDED, find_terraform
from opsflow.steps.terraform_source import write_backend_override
from tests.servers import clean_env

from .conftest import StateServer
from .support import (
    ITEMS_TF,
    SLOW_TF,
    RecordingSink,
    fresh_copy,
    job_spec,
    processes_matching,
    write_module,
)

pytestmark = pytest.mark.anyio


def _state_name() -> str:
    return f"tests/{uuid.uuid4().hex[:10]}/infra"


def _basic(user: str, password: str) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()}


def _state(server: StateServer, name: str) -> dict[str, Any]:
    """The state's entry in the list; a name never written nor locked is not listed."""
    states = {s["name"]: s for s in server.api.get("/tfstate").json()}
    return states.get(name) or {"name": name, "current": None, "lock": None}


async def test_saved_plan_is_applied_exactly_and_a_stale_one_is_refused(
    state_server: StateServer, executor: TerraformExecutor, tmp_path: Path
) -> None:
    files = tmp_path / "files"
    write_module(files, "infra", ITEMS_TF)
    name = _state_name()

    async def run(execution: str, step: str, config: dict[str, Any], **inputs: Path) -> Any:
        job_id, token = state_server.start_job(execution, step, name)
        workdir = fresh_copy(files, tmp_path / f"{execution}-{step}")
        spec = job_spec(
            workdir,
            {"source": {"dir": "infra"}, "state_name": name, **config},
            step_id=step,
            execution_id=execution,
            job_id=job_id,
            server_url=state_server.url,
            credentials=(job_id, token),
            inputs=inputs,
        )
        result = await executor.run(spec, RecordingSink(), CancelSignal())
        state_server.end_job(job_id, token)
        return result

    first = await run("exec-a", "plan", {"action": "plan", "vars": {"n": 2}})
    assert first.status is JobStatus.COMPLETED, first.error
    assert first.outputs["changes"] == {"add": 2, "change": 0, "destroy": 0}
    assert first.outputs["resource_changes"] == [
        {"address": "terraform_data.item[0]", "action": "create"},
        {"address": "terraform_data.item[1]", "action": "create"},
    ]
    assert "# terraform_data.item[1] will be created" in first.outputs["plan_text"]
    assert "\x1b[" not in first.outputs["plan_text"], "no colour codes"
    assert first.outputs["has_changes"] is True
    assert first.outputs["state_name"] == name
    kept_first = shutil.copy(first.artifacts["tfplan"], tmp_path / "first.tfplan")

    second = await run("exec-b", "plan", {"action": "plan", "vars": {"n": 3}})
    assert second.status is JobStatus.COMPLETED, second.error
    kept_second = shutil.copy(second.artifacts["tfplan"], tmp_path / "second.tfplan")

    applied = await run(
        "exec-a", "apply", {"action": "apply", "plan_from": "plan"}, tfplan=Path(kept_first)
    )
    assert applied.status is JobStatus.COMPLETED, applied.error
    assert applied.outputs["changes"]["add"] == 2
    assert applied.outputs["outputs"] == {"names": ["item-0", "item-1"], "password": "(sensitive)"}
    current = _state(state_server, name)["current"]
    assert (current["execution_id"], current["step_id"]) == ("exec-a", "apply")
    assert current["serial"] >= 1 and current["size"] > 0

    stale = await run(
        "exec-b", "apply", {"action": "apply", "plan_from": "plan"}, tfplan=Path(kept_second)
    )
    assert stale.status is JobStatus.FAILED
    assert stale.error is not None
    assert stale.error.startswith(
        "Saved plan is stale: The given plan file can no longer be "
        "applied because the state was changed"
    ), stale.error
    assert not stale.retryable
    versions = state_server.api.get(f"/tfstate/{name}/versions").json()
    assert [v["step_id"] for v in versions] == ["apply"], "the stale apply wrote nothing"


async def test_a_held_lock_fails_terraform_naming_the_execution_and_step(
    state_server: StateServer, executor: TerraformExecutor, tmp_path: Path
) -> None:
    name = _state_name()
    holder_job, holder_token = state_server.start_job("exec-holder", "apply-a", name)
    url = f"{state_server.url}/api/v1/tfstate/{name}"
    taken = httpx.request(
        "LOCK",
        url,
        json={"ID": "lock-1", "Operation": "OperationTypeApply", "Who": "ci@agent-1"},
        headers=_basic(holder_job, holder_token),
    )
    assert taken.status_code == 200, taken.text

    again = httpx.request(
        "LOCK", url, json={"ID": "lock-2"}, headers=_basic(*state_server.admin_credentials)
    )
    assert again.status_code == 423
    assert again.json()["ID"] == "lock-1"
    assert again.json()["Info"] == "state locked by execution exec-holder, step apply-a"
    assert again.json()["Who"] == "ci@agent-1"

    write_module(tmp_path, "infra", ITEMS_TF)
    job_id, token = state_server.start_job("exec-second", "apply-b", name)
    spec = job_spec(
        tmp_path,
        {"action": "apply", "source": {"dir": "infra"}, "state_name": name},
        server_url=state_server.url,
        credentials=(job_id, token),
    )
    result = await executor.run(spec, RecordingSink(), CancelSignal())
    assert result.status is JobStatus.FAILED
    assert result.error is not None
    assert result.error.startswith("Error acquiring the state lock"), result.error
    assert "state locked by execution exec-holder, step apply-a" in result.error
    assert result.retryable, "the lock may be free on a later attempt"

    wrong = httpx.request(
        "UNLOCK", url, json={"ID": "lock-2"}, headers=_basic(holder_job, holder_token)
    )
    assert wrong.status_code == 409
    assert "state locked by execution exec-holder, step apply-a" in wrong.json()["detail"]
    released = httpx.request(
        "UNLOCK", url, json={"ID": "lock-1"}, headers=_basic(holder_job, holder_token)
    )
    assert released.status_code == 200
    assert _state(state_server, name)["lock"] is None


async def test_cancel_stops_terraform_which_releases_its_lock_and_output_streams_live(
    state_server: StateServer, executor: TerraformExecutor, tmp_path: Path
) -> None:
    marker = "41.75"
    write_module(tmp_path, "slow", SLOW_TF.replace("MARKER", marker))
    name = _state_name()
    job_id, token = state_server.start_job("exec-cancel", "apply", name)
    spec = job_spec(
        tmp_path,
        {"action": "apply", "source": {"dir": "slow"}, "state_name": name},
        step_id="apply",
        server_url=state_server.url,
        credentials=(job_id, token),
    )
    sink, cancel = RecordingSink(), CancelSignal()
    running = asyncio.ensure_future(executor.run(spec, sink, cancel))
    await sink.wait_for("provisioning-started")
    assert not running.done(), "the line arrived while Terraform was still running"
    lock = _state(state_server, name)["lock"]
    assert (lock["execution_id"], lock["step_id"]) == ("exec-cancel", "apply")

    cancel.request(force=False)
    result = await running
    assert result.status is JobStatus.CANCELLED
    assert result.error == "cancelled"
    assert "Interrupt received." in sink.text(), "Terraform got SIGTERM and stopped cleanly"
    assert processes_matching(f"sleep {marker}") == []
    assert _state(state_server, name)["lock"] is None, "Terraform released its lock"


def test_every_version_is_kept_and_only_the_lock_holder_writes(
    state_server: StateServer,
) -> None:
    name = _state_name()
    job_id, token = state_server.start_job("exec-proto", "apply", name)
    url = f"{state_server.url}/api/v1/tfstate/{name}"
    job = httpx.Client(
        headers=_basic(job_id, token),
        timeout=30,
    )

    def document(serial: int) -> bytes:
        return json.dumps(
            {
                "version": 4,
                "serial": serial,
                "lineage": "lin-1",
                "terraform_version": "1.15.5",
                "resources": [],
            }
        ).encode()

    assert job.get(url).status_code == 404
    assert job.request("LOCK", url, json={"ID": "L"}).status_code == 200
    assert job.post(url, content=document(1)).status_code == 423
    wrong = job.post(url, params={"ID": "other"}, content=document(1))
    assert wrong.status_code == 409
    assert "state locked by execution exec-proto, step apply" in wrong.json()["detail"]
    for serial in (1, 2):
        assert job.post(url, params={"ID": "L"}, content=document(serial)).status_code == 200
    damaged = job.post(
        url,
        params={"ID": "L"},
        content=document(3),
        headers={"Content-MD5": base64.b64encode(b"0" * 16).decode()},
    )
    assert damaged.status_code == 422
    assert job.request("UNLOCK", url, json={"ID": "L"}).status_code == 200

    current = job.get(url)
    assert current.status_code == 200 and current.json()["serial"] == 2
    assert (
        current.headers["Content-MD5"]
        == base64.b64encode(hashlib.md5(current.content).digest()).decode()
    )
    versions = state_server.api.get(f"/tfstate/{name}/versions").json()
    assert [(v["version"], v["serial"]) for v in versions] == [(2, 2), (1, 1)]
    assert {(v["execution_id"], v["step_id"], v["lineage"]) for v in versions} == {
        ("exec-proto", "apply", "lin-1")
    }
    first = state_server.api.get(f"/tfstate/{name}/versions/1").json()
    assert first["state"]["serial"] == 1

    assert job.delete(url).status_code == 200
    assert job.get(url).status_code == 404
    assert len(state_server.api.get(f"/tfstate/{name}/versions").json()) == 2, "history kept"
    assert _state(state_server, name)["current"] is None

    bad = state_server.api.get("/tfstate/a/../b/versions")
    assert bad.status_code in (404, 422)
    reserved = job.request(
        "LOCK", f"{state_server.url}/api/v1/tfstate/x/force-unlock/y", json={"ID": "L"}
    )
    assert reserved.status_code == 422
    job.close()


def test_concurrent_lock_requests_have_exactly_one_winner(state_server: StateServer) -> None:
    url = f"{state_server.url}/api/v1/tfstate/{_state_name()}"
    headers = _basic(*state_server.admin_credentials)

    def lock(n: int) -> int:
        return httpx.request("LOCK", url, json={"ID": f"racer-{n}"}, headers=headers).status_code

    with ThreadPoolExecutor(max_workers=8) as pool:
        codes = sorted(pool.map(lock, range(8)))
    assert codes == [200] + [423] * 7


def test_job_credentials_work_only_while_the_job_runs(state_server: StateServer) -> None:
    name = _state_name()
    url = f"{state_server.url}/api/v1/tfstate/{name}"
    job_id, token = state_server.start_job("exec-creds", "plan", name)
    assert httpx.get(url, headers=_basic(job_id, token)).status_code == 404  # allowed, no state
    assert httpx.get(url, headers=_basic(job_id, "not-the-token")).status_code == 401
    assert httpx.get(url).status_code == 401
    locked = httpx.request("LOCK", url, json={"ID": "J"}, headers=_basic(job_id, token))
    assert locked.status_code == 200

    state_server.end_job(job_id, token)
    refused = httpx.get(url, headers=_basic(job_id, token))
    assert refused.status_code == 401
    assert f"job {job_id} is completed" in refused.json()["detail"]
    # the ended job can never unlock: its lock is taken over rather than stuck forever
    taken = httpx.request(
        "LOCK", url, json={"ID": "K"}, headers=_basic(*state_server.admin_credentials)
    )
    assert taken.status_code == 200
    assert _state(state_server, name)["lock"]["holder"] == "user admin"


def test_cli_lists_shows_history_and_unlocks(state_server: StateServer, tmp_path: Path) -> None:
    name = _state_name()
    job_id, token = state_server.start_job("exec-cli", "apply", name)
    url = f"{state_server.url}/api/v1/tfstate/{name}"
    job = httpx.Client(
        headers=_basic(job_id, token),
        timeout=30,
    )
    assert job.request("LOCK", url, json={"ID": "C"}).status_code == 200
    for serial in (1, 2):
        body = json.dumps({"version": 4, "serial": serial, "lineage": "l"}).encode()
        assert job.post(url, params={"ID": "C"}, content=body).status_code == 200
    job.close()

    def cli(*args: str) -> str:
        done = subprocess.run(
            [state_server.executable, "tfstate", *args],
            env={
                **clean_env(),
                "OPSFLOW_URL": state_server.url,
                "OPSFLOW_TOKEN": state_server.admin_token,
                "COLUMNS": "250",
            },
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert done.returncode == 0, done.stderr
        return done.stdout

    listed = cli("list")
    line = next(row for row in listed.splitlines() if name in row)
    assert "locked by execution exec-cli, step apply" in line
    history = cli("history", name)
    assert history.count("execution exec-cli, step apply") == 2
    assert json.loads(cli("show", name, "--version", "1"))["serial"] == 1
    assert json.loads(cli("show", name))["serial"] == 2
    assert cli("unlock", name, "--yes").strip() == (
        f"unlocked {name}: the lock was held by execution exec-cli, step apply"
    )
    assert _state(state_server, name)["lock"] is None


def _document(serial: int) -> bytes:
    return json.dumps({"version": 4, "serial": serial, "lineage": "lin-x"}).encode()


def _every_protocol_call(url: str, headers: dict[str, str]) -> dict[str, int]:
    """The status of each call of Terraform's protocol on ``url``, in Terraform's order."""
    with httpx.Client(headers=headers, timeout=30) as client:
        return {
            "GET": client.get(url).status_code,
            "LOCK": client.request("LOCK", url, json={"ID": "intruder"}).status_code,
            "POST": client.post(url, params={"ID": "intruder"}, content=_document(9)).status_code,
            "UNLOCK": client.request("UNLOCK", url, json={"ID": "intruder"}).status_code,
            "DELETE": client.delete(url).status_code,
        }


async def test_job_credentials_reach_only_the_jobs_own_state(
    state_server: StateServer, executor: TerraformExecutor, tmp_path: Path
) -> None:
    # Workflow Y's state, written by its own job.
    theirs = _state_name()
    their_job, their_token = state_server.start_job("exec-y", "apply", theirs)
    their_url = f"{state_server.url}/api/v1/tfstate/{theirs}"
    with httpx.Client(headers=_basic(their_job, their_token), timeout=30) as client:
        assert client.post(their_url, content=_document(1)).status_code == 200
    # A job of workflow X, whose state is another name.
    mine = _state_name()
    job_id, token = state_server.start_job("exec-x", "apply", mine)
    creds = _basic(job_id, token)
    refused = {method: 403 for method in ("GET", "LOCK", "POST", "UNLOCK", "DELETE")}
    assert _every_protocol_call(their_url, creds) == refused
    new_url = f"{state_server.url}/api/v1/tfstate/{_state_name()}"
    assert _every_protocol_call(new_url, creds) == refused, "no new states either"
    detail = httpx.get(their_url, headers=creds).json()["detail"]
    assert f"may use only its own state {mine!r}, not {theirs!r}" in detail
    # Y's state is untouched: one version, current, not locked.
    assert [v["version"] for v in state_server.api.get(f"/tfstate/{theirs}/versions").json()] == [1]
    assert _state(state_server, theirs)["lock"] is None
    assert _state(state_server, theirs)["current"]["version"] == 1
    # Its own state: every call works.
    own_url = f"{state_server.url}/api/v1/tfstate/{mine}"
    assert _every_protocol_call(own_url, creds) == {
        "GET": 404,
        "LOCK": 200,
        "POST": 200,
        "UNLOCK": 200,
        "DELETE": 200,
    }
    # A job the server gave no state of ours (a script's, say) reaches none.
    other_job, other_token = state_server.start_job("exec-x", "script")
    assert httpx.get(own_url, headers=_basic(other_job, other_token)).status_code == 403

    # Real Terraform, pointed by its TF_HTTP_* settings at Y's state with X's credentials.
    write_module(tmp_path, "infra", ITEMS_TF)
    spec = job_spec(
        tmp_path,
        {"action": "apply", "source": {"dir": "infra"}, "state_name": theirs},
        server_url=state_server.url,
        credentials=(job_id, token),
    )
    sink = RecordingSink()
    result = await executor.run(spec, sink, CancelSignal())
    assert result.status is JobStatus.FAILED
    assert result.error is not None
    assert "HTTP remote state endpoint invalid auth" in result.error, sink.text()
    assert _state(state_server, theirs)["current"]["version"] == 1, "Terraform wrote nothing"
    assert _state(state_server, theirs)["lock"] is None


def _user(server: StateServer, role: str) -> dict[str, str]:
    name = f"{role}-{uuid.uuid4().hex[:6]}"
    made = server.api.post("/users", json={"name": name, "role": role, "password": "pw-" + name})
    assert made.status_code == 201, made.text
    return _basic(name, "pw-" + name)


def test_a_state_document_needs_the_same_permission_through_every_route(
    state_server: StateServer,
) -> None:
    name = _state_name()
    job_id, token = state_server.start_job("exec-doc", "apply", name)
    url = f"{state_server.url}/api/v1/tfstate/{name}"
    assert httpx.post(url, content=_document(1), headers=_basic(job_id, token)).status_code == 200
    api = f"{state_server.url}/api/v1"
    viewer, operator = _user(state_server, "viewer"), _user(state_server, "operator")

    assert httpx.get(url, headers=viewer).status_code == 403
    refused = httpx.get(f"{url}/versions/1", headers=viewer)
    assert refused.status_code == 403
    assert "workflows:run" in refused.json()["detail"]
    # What is not the document stays readable: the list and the history.
    assert httpx.get(f"{url}/versions", headers=viewer).status_code == 200
    assert name in {s["name"] for s in httpx.get(f"{api}/tfstate", headers=viewer).json()}
    # Whoever may GET the state may read its versions.
    assert httpx.get(url, headers=operator).status_code == 200
    version = httpx.get(f"{url}/versions/1", headers=operator)
    assert version.status_code == 200 and version.json()["state"]["serial"] == 1


def test_every_version_says_which_execution_and_step_wrote_it(
    state_server: StateServer,
) -> None:
    name = _state_name()
    job_id, token = state_server.start_job("exec-who", "apply", name)
    url = f"{state_server.url}/api/v1/tfstate/{name}"
    assert httpx.post(url, content=_document(1), headers=_basic(job_id, token)).status_code == 200
    person = _basic(*state_server.admin_credentials)
    assert httpx.post(url, content=_document(2), headers=person).status_code == 200

    versions = state_server.api.get(f"/tfstate/{name}/versions").json()
    by_job, by_person = versions[1], versions[0]
    assert (by_job["execution_id"], by_job["step_id"], by_job["job_id"]) == (
        "exec-who",
        "apply",
        job_id,
    )
    assert by_job["written_by"] == "execution exec-who, step apply"
    assert (by_person["execution_id"], by_person["written_by"]) == (None, "admin")
    document = state_server.api.get(f"/tfstate/{name}/versions/1").json()
    assert document["written_by"] == "execution exec-who, step apply"
    current = _state(state_server, name)["current"]
    assert current["written_by"] == "admin"


def _terraform(directory: Path, url: str, user: str, password: str, *args: str) -> str:
    """Run the embedded Terraform with the http backend at ``url`` as ``user``; its output."""
    env = {
        **clean_env(),
        "TF_IN_AUTOMATION": "1",
        "TF_INPUT": "0",
        "TF_HTTP_ADDRESS": url,
        "TF_HTTP_LOCK_ADDRESS": url,
        "TF_HTTP_UNLOCK_ADDRESS": url,
        "TF_HTTP_LOCK_METHOD": "LOCK",
        "TF_HTTP_UNLOCK_METHOD": "UNLOCK",
        "TF_HTTP_USERNAME": user,
        "TF_HTTP_PASSWORD": password,
    }
    argv = find_terraform(EMBEDDED, None).argv(["-chdir=" + str(directory), *args])
    done = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=180, check=False)
    return f"exit {done.returncode}\n{done.stdout}\n{done.stderr}"


def test_terraform_force_unlock_works_for_admins_and_tells_others_what_to_do(
    state_server: StateServer, tmp_path: Path
) -> None:
    name = _state_name()
    url = f"{state_server.url}/api/v1/tfstate/{name}"
    job_id, token = state_server.start_job("exec-stuck", "apply", name)
    held = httpx.request("LOCK", url, json={"ID": "held-1"}, headers=_basic(job_id, token))
    assert held.status_code == 200
    directory = write_module(tmp_path, "infra", ITEMS_TF)
    write_backend_override(directory)

    # An operator may run workflows but not remove another run's lock.
    operator = f"operator-{uuid.uuid4().hex[:6]}"
    made = state_server.api.post(
        "/users", json={"name": operator, "role": "operator", "password": "pw-operator"}
    )
    assert made.status_code == 201, made.text
    password = "pw-operator"
    assert _terraform(directory, url, operator, password, "init", "-no-color").startswith("exit 0")
    refused = _terraform(directory, url, operator, password, "force-unlock", "-force", "held-1")
    assert refused.startswith("exit 1"), refused
    answer = httpx.request("UNLOCK", url, headers=_basic(operator, "pw-operator"))
    assert answer.status_code == 403
    assert f"`opsflow tfstate unlock {name}`" in answer.json()["detail"]
    assert "agents:manage" in answer.json()["detail"]
    assert _state(state_server, name)["lock"]["id"] == "held-1"
    # The job itself must name its lock: a bodyless UNLOCK is not a way around the lock ID.
    assert httpx.request("UNLOCK", url, headers=_basic(job_id, token)).status_code == 422

    admin, admin_token = state_server.admin_credentials
    unlocked = _terraform(directory, url, admin, admin_token, "force-unlock", "-force", "held-1")
    assert unlocked.startswith("exit 0"), unlocked
    assert "successfully unlocked" in unlocked
    assert _state(state_server, name)["lock"] is None
    audit = state_server.api.get("/audit", params={"action": "tfstate.force_unlock"}).json()
    entry = next(e for e in audit["items"] if e["target"] == name)
    assert entry["actor"] == admin
    assert entry["detail"] == {
        "via": "terraform",
        "lock": "held-1",
        "holder": "execution exec-stuck, step apply",
    }
