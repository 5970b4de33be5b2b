"""What ``opsflow apply`` packs: the workflow directory minus ignored files, reproducibly."""

from __future__ import annotations

import io
import os
import tarfile
from pathlib import Path

import pytest

from opsflow.cli.bundle import bundle_files, find_workflows, pack_bundle, plan_bundle
from opsflow.cli.output import UsageError


def _tree(root: Path, files: dict[str, str]) -> Path:
    for rel, content in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(content)
    return root


def test_bundle_leaves_out_git_pycache_and_ignored_files(tmp_path: Path) -> None:
    root = _tree(
        tmp_path / "wf",
        {
            "workflow.yaml": "id: wf\n",
            "deploy.sh": "echo deploy\n",
            "infra/main.tf": "",
            "infra/.terraform/plugin": "binary",
            "build/out.txt": "",
            "notes.log": "",
            "keep.log": "",
            "secret.env": "",
            ".git/HEAD": "ref: refs/heads/main\n",
            "lib/__pycache__/x.cpython-311.pyc": "",
            "lib/x.py": "",
            ".gitignore": "build/\n*.log\n!keep.log\n.terraform/\n",
            ".opsflowignore": "# local only\nsecret.env\n",
        },
    )

    assert bundle_files(root) == [
        ".gitignore",
        ".opsflowignore",
        "deploy.sh",
        "infra/main.tf",
        "keep.log",
        "lib/x.py",
        "workflow.yaml",
    ]


def test_bundle_is_byte_identical_for_identical_content(tmp_path: Path) -> None:
    files = {"workflow.yaml": "id: wf\n", "scripts/run.sh": "echo hi\n"}
    first = _tree(tmp_path / "a", files)
    second = _tree(tmp_path / "b", files)
    os.utime(second / "scripts/run.sh", (1_000_000, 1_000_000))  # only the mtime differs

    assert pack_bundle(first) == pack_bundle(second)
    (second / "scripts/run.sh").write_text("echo changed\n")
    assert pack_bundle(first) != pack_bundle(second)


def test_bundle_keeps_contents_and_the_executable_bit(tmp_path: Path) -> None:
    root = _tree(tmp_path / "wf", {"workflow.yaml": "id: wf\n", "run.sh": "echo hi\n"})
    (root / "run.sh").chmod(0o755)

    with tarfile.open(fileobj=io.BytesIO(pack_bundle(root)), mode="r:gz") as tar:
        members = {m.name: m for m in tar.getmembers()}
        assert set(members) == {"run.sh", "workflow.yaml"}
        assert members["run.sh"].mode == 0o755
        assert members["workflow.yaml"].mode == 0o644
        extracted = tar.extractfile("run.sh")
        assert extracted is not None
        assert extracted.read() == b"echo hi\n"


def test_a_directory_of_workflow_directories_names_each(tmp_path: Path) -> None:
    _tree(
        tmp_path / "all",
        {
            "beta/workflow.yaml": "id: beta\n",
            "alpha/workflow.yaml": "id: alpha\n",
            "docs/readme.md": "not a workflow\n",
        },
    )

    sources = find_workflows(tmp_path / "all")

    assert [s.directory.name for s in sources] == ["alpha", "beta"]
    assert [s.file.name for s in sources] == ["workflow.yaml", "workflow.yaml"]


def test_a_directory_without_any_workflow_is_a_usage_error(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()

    with pytest.raises(UsageError, match=r"no workflow\.yaml in this directory"):
        find_workflows(tmp_path / "empty")


LONE = """\
id: lone
steps:
  - {id: run, type: script, file: scripts/run.sh}
  - {id: plan, type: terraform, action: plan, source: {dir: infra}, var_files: [vars/eu.tfvars]}
"""


def test_a_lone_yaml_file_sends_only_the_files_its_steps_name(tmp_path: Path) -> None:
    home = _tree(
        tmp_path / "home",
        {
            "deploy.yaml": LONE,
            "scripts/run.sh": "echo run\n",
            "scripts/other.sh": "echo not named\n",
            "infra/main.tf": "",
            "infra/modules/net/main.tf": "",
            "vars/eu.tfvars": "",
            "vars/us.tfvars": "",
            "opsflow.db": "a database beside the file",
            ".ssh/id_ed25519": "a key",
            "Documents/taxes.pdf": "private",
        },
    )
    [source] = find_workflows(home / "deploy.yaml")
    assert source.only == ("infra", "scripts/run.sh", "vars/eu.tfvars")
    assert plan_bundle(source).files == [
        "infra/main.tf",
        "infra/modules/net/main.tf",
        "scripts/run.sh",
        "vars/eu.tfvars",
    ]


def test_a_workflow_yaml_file_sends_its_whole_workflow_directory(tmp_path: Path) -> None:
    root = _tree(tmp_path / "wf", {"workflow.yaml": "id: wf\n", "lib/helper.sh": ""})
    [source] = find_workflows(root / "workflow.yaml")
    assert source.only is None
    assert plan_bundle(source).files == ["lib/helper.sh", "workflow.yaml"]


def test_files_past_the_limit_are_refused_before_anything_is_read(tmp_path: Path) -> None:
    root = _tree(tmp_path / "wf", {"workflow.yaml": "id: wf\n", "a.bin": "x" * 600})
    _tree(root, {"b.bin": "y" * 600})
    [source] = find_workflows(root)
    with pytest.raises(UsageError, match=r"pass 1\.0 KiB") as info:
        plan_bundle(source, limit=1024)
    assert ".opsflowignore" in str(info.value.hint)
    assert plan_bundle(source, limit=4096).total_bytes == 1200 + len("id: wf\n")
