"""The terraform executor with real Terraform, on code that keeps its own (local) state.

These need no opsflow server: a module that declares its own backend is left alone.
"""

from __future__ import annotations

import asyncio
import subprocess
from pathlib import Path

import pytest

from opsflow.status import JobStatus, LogStream, StepType
from opsflow.steps.base import CancelSignal
from opsflow.steps.registry import executor_for
from opsflow.steps.terraform import TerraformExecutor
from opsflow.steps.terraform_source import OVERRIDE_FILE

from .support import ITEMS_TF, SLOW_TF, RecordingSink, job_spec, processes_matching, write_module

pytestmark = pytest.mark.anyio


async def test_apply_in_a_workspace_reports_masked_outputs_and_destroy_counts(
    executor: TerraformExecutor, sink: RecordingSink, tmp_path: Path
) -> None:
    write_module(tmp_path, "infra", ITEMS_TF, local_backend=True)
    config = {"source": {"dir": "infra"}, "vars": {"n": 3}, "workspace": "blue"}
    applied = await executor.run(
        job_spec(tmp_path, {"action": "apply", **config}), sink, CancelSignal()
    )
    assert applied.status is JobStatus.COMPLETED, applied.error
    assert applied.outputs["changes"] == {"add": 3, "change": 0, "destroy": 0}
    assert applied.outputs["outputs"] == {
        "names": ["item-0", "item-1", "item-2"],
        "password": "(sensitive)",
    }
    assert "hunter2" not in sink.text()
    assert not (tmp_path / "infra" / OVERRIDE_FILE).exists(), "its own backend is kept"
    assert "state: the backend declared in the code" in sink.text()
    assert (tmp_path / "infra" / "terraform.tfstate.d" / "blue" / "terraform.tfstate").is_file()

    destroyed = await executor.run(
        job_spec(tmp_path, {"action": "destroy", **config}),
        RecordingSink(),
        CancelSignal(),
    )
    assert destroyed.status is JobStatus.COMPLETED, destroyed.error
    assert destroyed.outputs["changes"] == {"add": 0, "change": 0, "destroy": 3}


async def test_failing_precondition_fails_the_step_with_terraforms_message(
    sink: RecordingSink, tmp_path: Path
) -> None:
    """Through the registry's executor and whatever Terraform this machine has (PATH first)."""
    write_module(tmp_path, "infra", ITEMS_TF, local_backend=True)
    executor = executor_for(StepType.TERRAFORM)
    result = await executor.run(
        job_spec(tmp_path, {"action": "apply", "source": {"dir": "infra"}, "vars": {"n": 7}}),
        sink,
        CancelSignal(),
    )
    assert result.status is JobStatus.FAILED
    # once, although Terraform reports it for each of the 7 instances
    assert result.error == "Resource precondition failed: n must be less than 5 (got 7)."
    assert "Error: Resource precondition failed" in sink.text()


async def test_timeout_stops_terraform_and_everything_it_started(
    executor: TerraformExecutor, sink: RecordingSink, tmp_path: Path
) -> None:
    marker = "37.25"
    write_module(tmp_path, "slow", SLOW_TF.replace("MARKER", marker), local_backend=True)
    spec = job_spec(tmp_path, {"action": "apply", "source": {"dir": "slow"}}, timeout=6)
    result = await executor.run(spec, sink, CancelSignal())
    assert result.status is JobStatus.TIMEOUT
    assert result.error == "timed out after 6s"
    assert "provisioning-started" in sink.text()
    assert processes_matching(f"sleep {marker}") == []


async def test_the_servers_timeout_stop_ends_terraform_as_timed_out(
    executor: TerraformExecutor, sink: RecordingSink, tmp_path: Path
) -> None:
    """The server's clock passed the step's timeout first: a timeout, not a cancel."""
    marker = "37.75"
    write_module(tmp_path, "slow", SLOW_TF.replace("MARKER", marker), local_backend=True)
    spec = job_spec(tmp_path, {"action": "apply", "source": {"dir": "slow"}}, timeout=60)
    cancel = CancelSignal()
    task = asyncio.create_task(executor.run(spec, sink, cancel))
    await sink.wait_for("provisioning-started")
    cancel.time_out()
    result = await task
    assert (result.status, result.error, result.retryable) == (
        JobStatus.TIMEOUT,
        "timed out after 60s",
        True,
    )
    assert processes_matching(f"sleep {marker}") == []


async def test_plan_from_a_git_repository_uses_the_ref_and_refreshes_the_cache(
    executor: TerraformExecutor, tmp_path: Path
) -> None:
    repo = _bare_repo(tmp_path, {"stacks/app/main.tf": ITEMS_TF})
    source = {"git": repo.as_uri(), "ref": "main", "path": "stacks/app"}
    spec_dir = tmp_path / "job-1"
    spec_dir.mkdir()
    first_log = RecordingSink()
    first = await executor.run(
        job_spec(spec_dir, {"action": "plan", "source": source, "vars": {"n": 1}}),
        first_log,
        CancelSignal(),
    )
    assert first.status is JobStatus.COMPLETED, first.error
    assert first.outputs["changes"]["add"] == 1
    assert "git clone" in first_log.text()
    assert "file://" in first_log.text()

    _commit(
        tmp_path / "work", {"stacks/app/main.tf": ITEMS_TF.replace("default = 2", "default = 4")}
    )
    second_dir = tmp_path / "job-2"
    second_dir.mkdir()
    second_log = RecordingSink()
    second = await executor.run(
        job_spec(second_dir, {"action": "plan", "source": source}), second_log, CancelSignal()
    )
    assert second.status is JobStatus.COMPLETED, second.error
    assert second.outputs["changes"]["add"] == 4, "the new commit of main was used"
    assert "git fetch" in second_log.text() and "git clone" not in second_log.text()

    missing = await executor.run(
        job_spec(tmp_path / "job-2", {"action": "plan", "source": {**source, "ref": "nope"}}),
        RecordingSink(),
        CancelSignal(),
    )
    assert missing.status is JobStatus.FAILED and not missing.retryable
    assert missing.error is not None and "source.ref: 'nope' is not a branch, tag or commit" in (
        missing.error
    )


@pytest.mark.parametrize(
    ("config", "message"),
    [
        (
            {"action": "plan", "source": {"dir": "../elsewhere"}},
            "source.dir: '../elsewhere' points outside the workflow's files",
        ),
        (
            {"action": "plan", "source": {"dir": "infra"}, "var_files": ["/etc/passwd"]},
            "var_files[0]: '/etc/passwd' must be a path relative to the workflow's files",
        ),
        ({"action": "import"}, "action: 'import' is not one of plan, apply, destroy"),
        ({"action": "plan", "plan_from": "p"}, "plan_from: only goes with action apply, not plan"),
        (
            {"action": "apply", "plan_from": "p", "source": {"dir": "infra"}},
            "plan_from: the plan saved by step 'p' did not reach this agent",
        ),
        (
            {"action": "plan", "binary": "/nonexistent/terraform"},
            "binary: '/nonexistent/terraform' is not an executable Terraform on this agent",
        ),
    ],
)
async def test_bad_configuration_fails_without_retry_naming_the_field(
    executor: TerraformExecutor, tmp_path: Path, config: dict[str, object], message: str
) -> None:
    write_module(tmp_path, "infra", ITEMS_TF, local_backend=True)
    sink = RecordingSink()
    result = await executor.run(job_spec(tmp_path, config), sink, CancelSignal())
    assert result.status is JobStatus.FAILED
    assert not result.retryable
    assert result.error is not None and result.error.startswith(message), result.error
    assert (LogStream.SYSTEM, result.error) in sink.lines


async def test_cancel_before_start_runs_nothing(
    executor: TerraformExecutor, sink: RecordingSink, tmp_path: Path
) -> None:
    cancel = CancelSignal()
    cancel.request(force=False)
    result = await executor.run(job_spec(tmp_path, {"action": "plan"}), sink, cancel)
    assert result.status is JobStatus.CANCELLED
    assert sink.lines == []


def _git(cwd: Path, *args: str) -> None:
    subprocess.run(
        ["git", "-c", "user.name=Tester", "-c", "user.email=t@example.com", *args],
        cwd=cwd,
        check=True,
        capture_output=True,
    )


def _commit(work: Path, files: dict[str, str]) -> None:
    for relative, text in files.items():
        (work / relative).parent.mkdir(parents=True, exist_ok=True)
        (work / relative).write_text(text)
    _git(work, "add", "-A")
    _git(work, "commit", "-m", "change")
    _git(work, "push", "origin", "main")


def _bare_repo(tmp_path: Path, files: dict[str, str]) -> Path:
    """A bare repository (the "remote") with one commit on main holding ``files`` and a local
    backend for stacks/app (these tests need no state server)."""
    bare = tmp_path / "remote.git"
    _git(tmp_path, "init", "--bare", "--initial-branch=main", str(bare))
    work = tmp_path / "work"
    _git(tmp_path, "clone", str(bare), str(work))
    _git(work, "checkout", "-b", "main")
    files = {**files, "stacks/app/b.tf": 'terraform {\n  backend "local" {}\n}\n'}
    _commit(work, files)
    return bare
