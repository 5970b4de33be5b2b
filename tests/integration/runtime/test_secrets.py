"""Secrets reach a job's process and nothing else: stored specs, logs, outputs and errors
never hold a value, in any common encoding."""

from __future__ import annotations

import asyncio
import base64
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import yaml

from opsflow.auth.secrets import SecretBox, SecretVault
from opsflow.errors import SpecInvalid
from opsflow.runtime.host import RuntimeHost
from opsflow.runtime.service import RunRequest
from opsflow.spec.loader import load_workflow
from opsflow.status import ExecutionStatus, JobStatus
from opsflow.store import logs as logs_store
from opsflow.store.db import Database

from .conftest import Harness

pytestmark = pytest.mark.anyio

TOKEN = "s3cr3t-Tok3n-value-42"
PEM = "-----BEGIN KEY-----\nMIIBOgIBAAJBAKj34GkxFhD9\n0mcWlJf2ZRQs4Dw1\n-----END KEY-----"


@pytest.fixture
async def vaulted(database: Database, tmp_path: Path) -> AsyncIterator[Harness]:
    vault = SecretVault(database, SecretBox(b"k" * 32))
    vault.set("API_TOKEN", TOKEN, actor="admin")
    vault.set("PEM_KEY", PEM, actor="admin")
    host = RuntimeHost(database, work_dir=tmp_path / "work", vault=vault)
    await host.start()
    try:
        yield Harness(host)
    finally:
        await host.stop()


LEAKY = """
id: leaky
steps:
  - id: leak
    type: script
    shell: bash
    env: {TOKEN: "{{ secrets.API_TOKEN }}", PEM: "{{ secrets.PEM_KEY }}"}
    run: |
      echo "plain: $TOKEN"
      printf '%s' "$TOKEN" | base64
      printf '%s' "$TOKEN" | od -A n -t x1 | tr -d ' \\n'; echo
      echo "$PEM"
      echo "${TOKEN:0:10}"
      echo "${TOKEN:10}"
      echo "token=$TOKEN" >> "$OPSFLOW_OUTPUT"
      echo "about to fail with $TOKEN" >&2
      exit 3
"""


def _forbidden() -> list[str]:
    raw = TOKEN.encode()
    return [
        TOKEN,
        base64.b64encode(raw).decode(),
        raw.hex(),
        *[line for line in PEM.splitlines() if len(line) >= 4],
    ]


async def test_a_script_echoing_secrets_never_shows_them(vaulted: Harness) -> None:
    eid = await vaulted.start_async(LEAKY)
    ex = await vaulted.wait(eid)
    assert ex.status == ExecutionStatus.FAILED
    (job,) = vaulted.jobs(eid)
    assert job.status == JobStatus.FAILED
    with vaulted.runtime.db.session() as s:
        lines = [row["text"] for row in logs_store.query(s, eid)]
    stored = "\n".join(lines) + repr(job.outputs) + repr(job.error) + repr(job.spec)
    stored += "\n".join(vaulted.engine_log(eid)) + repr(vaulted.steps(eid)["leak"].outputs)
    for value in _forbidden():
        assert value not in stored, f"{value!r} leaked"
    # The script did see the real values: its lines were there, masked.
    assert "plain: ***" in lines
    assert job.outputs["token"] == "***"
    # The stored spec holds a placeholder, not the value; the agent got the value only
    # inside the claimed copy.
    assert "opsflow-secret:API_TOKEN" in repr(job.spec)


async def test_an_unknown_secret_fails_the_step_naming_it(vaulted: Harness) -> None:
    eid = await vaulted.start_async(
        """
id: unknown
steps:
  - {id: s, type: script, env: {X: "{{ secrets.NOPE }}"}, run: "true"}
"""
    )
    assert (await vaulted.wait(eid)).status == ExecutionStatus.FAILED
    (job,) = vaulted.jobs(eid)
    assert "secrets.NOPE" in (job.error or "")


SLICED = """
id: sliced
steps:
  - {id: s, type: script, env: {X: "{{ secrets.API_TOKEN[:4] }}"}, run: "true"}
"""


async def test_a_transformed_secret_is_refused(vaulted: Harness) -> None:
    with pytest.raises(SpecInvalid) as refused:
        load_workflow(SLICED)
    (problem,) = refused.value.problems
    assert (problem.loc, problem.line) == ("steps[0].env.X", 4)
    assert "secrets.API_TOKEN' can only be written out whole" in problem.msg
    # A definition stored before that rule existed is refused when its job is rendered.
    definition = yaml.safe_load(SLICED)
    eid = await asyncio.to_thread(
        vaulted.runtime.start_execution,
        RunRequest(workflow_id="sliced", definition=definition, params={}),
    )
    assert (await vaulted.wait(eid)).status == ExecutionStatus.FAILED
    (job,) = vaulted.jobs(eid)
    assert job.error is not None and job.error.startswith("env.X: 'secrets.API_TOKEN'")
    assert job.spec == {}


async def test_a_secret_recombined_downstream_is_still_masked(vaulted: Harness) -> None:
    # a reverses the secret (which no masker recognises) into its output; b, which was handed
    # no secret at all, reverses it back and prints it: still the secret, so still masked.
    eid = await vaulted.start_async(
        """
id: recombined
steps:
  - id: a
    type: script
    shell: bash
    env: {TOKEN: "{{ secrets.API_TOKEN }}"}
    run: echo "reversed=$(printf '%s' "$TOKEN" | rev)" >> "$OPSFLOW_OUTPUT"
  - id: b
    type: script
    shell: bash
    needs: [a]
    env: {REVERSED: "{{ nodes.a.output.reversed }}"}
    run: |
      plain=$(printf '%s' "$REVERSED" | rev)
      echo "recombined: $plain"
      echo "again=$plain" >> "$OPSFLOW_OUTPUT"
      echo "failing over $plain" >&2
      exit 4
"""
    )
    assert (await vaulted.wait(eid)).status == ExecutionStatus.FAILED
    jobs = {job.step_id: job for job in vaulted.jobs(eid)}
    assert jobs["a"].outputs["reversed"] == TOKEN[::-1]  # the script really had the value
    with vaulted.runtime.db.session() as s:
        lines = [row["text"] for row in logs_store.query(s, eid, step="b")]
    assert "recombined: ***" in lines
    assert jobs["b"].outputs["again"] == "***"
    stored = "\n".join(lines) + repr(jobs["b"].outputs) + repr(jobs["b"].error)
    stored += repr(vaulted.steps(eid)["b"].outputs) + "\n".join(vaulted.engine_log(eid))
    for value in _forbidden():
        assert value not in stored, f"{value!r} leaked"


async def test_an_earlier_value_of_a_changed_secret_is_masked(
    vaulted: Harness, tmp_path: Path
) -> None:
    # Like a Terraform state: the first run leaves the value it was handed where the second
    # run prints it next to the new one (``~ input = "closed" -> "***"``).
    state = tmp_path / "state"
    flow = (
        """
id: remembers
steps:
  - id: apply
    type: script
    shell: bash
    env: {TOKEN: "{{ secrets.API_TOKEN }}", STATE: "STATE_FILE"}
    run: |
      if [ -e "$STATE" ]; then
        echo "~ input = \\"$(cat "$STATE")\\" -> \\"$TOKEN\\""
        printf '%s' "$(cat "$STATE")" | base64
      fi
      printf '%s' "$TOKEN" > "$STATE"
"""
    ).replace("STATE_FILE", str(state))
    first = await vaulted.start_async(flow)
    assert (await vaulted.wait(first)).status == ExecutionStatus.COMPLETED
    vault = vaulted.host.runtime.vault
    assert vault is not None
    vault.set("API_TOKEN", "closed-door-2", actor="admin")
    second = await vaulted.start_async(flow)
    assert (await vaulted.wait(second)).status == ExecutionStatus.COMPLETED
    with vaulted.runtime.db.session() as s:
        lines = [row["text"] for row in logs_store.query(s, second)]
    assert '~ input = "***" -> "***"' in lines, lines
    text = "\n".join(lines)
    for value in (*_forbidden(), "closed-door-2"):
        assert value not in text, f"{value!r} leaked"
