"""Workflow files: a run sees the files of the version it pins, in a fresh copy per job."""

from __future__ import annotations

from pathlib import Path

import pytest

from opsflow.status import ExecutionStatus

from .conftest import TEST_TIMEOUT, Api, step_of

pytestmark = pytest.mark.timeout(TEST_TIMEOUT)

WITH_FILE = """\
id: {id}
steps:
  - id: hello
    type: script
    shell: sh
    file: scripts/hello.sh
"""


def write_workflow(directory: Path, yaml_text: str, files: dict[str, str]) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "workflow.yaml").write_text(yaml_text)
    for rel, content in files.items():
        (directory / rel).parent.mkdir(parents=True, exist_ok=True)
        (directory / rel).write_text(content)
    return directory


def stdout_of(api: Api, execution_id: str) -> list[str]:
    return [line["text"] for line in api.logs(execution_id, stream="stdout")]


def test_a_run_sees_the_files_of_the_version_it_pins(api: Api, tmp_path: Path) -> None:
    yaml_text = WITH_FILE.format(id="pinned-files")
    directory = write_workflow(
        tmp_path / "wf", yaml_text, {"scripts/hello.sh": 'echo "hello from v1"\n'}
    )
    assert api.publish(yaml_text, files=directory)["version"] == 1
    first = api.run("pinned-files")
    assert first["status"] == ExecutionStatus.COMPLETED, first["engine_log"]
    assert (first["version"], stdout_of(api, first["id"])) == (1, ["hello from v1"])

    (directory / "scripts" / "hello.sh").write_text('echo "hello from v2"\n')
    assert api.publish(yaml_text, files=directory)["version"] == 2
    second = api.run("pinned-files")
    assert (second["version"], stdout_of(api, second["id"])) == (2, ["hello from v2"])

    pinned = api.run("pinned-files", version=1)
    assert pinned["status"] == ExecutionStatus.COMPLETED
    assert (pinned["version"], stdout_of(api, pinned["id"])) == (1, ["hello from v1"])


def test_a_run_started_before_a_new_version_keeps_its_files(api: Api, tmp_path: Path) -> None:
    yaml_text = """\
id: slow-files
steps:
  - {id: wait, type: script, shell: sh, run: "sleep 0.5"}
  - {id: hello, type: script, shell: sh, needs: [wait], file: scripts/hello.sh}
"""
    directory = write_workflow(tmp_path / "wf", yaml_text, {"scripts/hello.sh": "echo old\n"})
    api.publish(yaml_text, files=directory)
    started = api.start("slow-files")
    (directory / "scripts" / "hello.sh").write_text("echo new\n")
    assert api.publish(yaml_text, files=directory)["version"] == 2
    detail = api.wait(started["id"])
    assert detail["version"] == 1
    assert stdout_of(api, started["id"]) == ["old"]


def test_each_job_works_in_a_fresh_copy_of_the_files(api: Api, tmp_path: Path) -> None:
    """A file written, or a workflow file changed, by one job is seen by no other job."""
    yaml_text = """\
id: fresh-dirs
steps:
  - id: scribble
    type: script
    shell: sh
    run: |
      test ! -e scratch.txt || { echo "scratch.txt left over" >&2; exit 1; }
      echo scribbled > scratch.txt
      echo tampered > data.txt
      cat data.txt
  - id: read
    type: script
    shell: sh
    needs: [scribble]
    run: |
      test ! -e scratch.txt || { echo "scratch.txt left over" >&2; exit 1; }
      cat data.txt
"""
    directory = write_workflow(tmp_path / "wf", yaml_text, {"data.txt": "pristine\n"})
    api.publish(yaml_text, files=directory)
    for _ in range(2):
        detail = api.run("fresh-dirs")
        assert detail["status"] == ExecutionStatus.COMPLETED, [
            (s["id"], s["error"]) for s in detail["steps"]
        ]
        assert stdout_of(api, detail["id"]) == ["tampered", "pristine"]
        assert step_of(detail, "read")["jobs"][0]["exit_code"] == 0
