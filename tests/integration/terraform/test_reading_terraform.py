"""How the step reads Terraform's output and code: change counts, outputs, errors, backends.

Pure functions over text Terraform really prints (copied from runs of Terraform 1.15).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from opsflow.steps.terraform_report import (
    PLAN_TEXT_LIMIT,
    applied_changes,
    capped_plan_text,
    masked_outputs,
    plan_changes,
    terraform_errors,
)
from opsflow.steps.terraform_source import OVERRIDE_FILE, declares_backend


def test_plan_changes_count_a_replacement_as_an_add_and_a_destroy() -> None:
    plan = {
        "resource_changes": [
            {"address": "a.new", "change": {"actions": ["create"]}},
            {"address": "a.same", "change": {"actions": ["no-op"]}},
            {"address": "a.edit", "change": {"actions": ["update"]}},
            {"address": "a.swap", "change": {"actions": ["delete", "create"]}},
            {"address": "a.gone", "change": {"actions": ["delete"]}},
            {"address": "data.x", "change": {"actions": ["read"]}},
        ]
    }
    changes, resources = plan_changes(plan)
    assert changes == {"add": 2, "change": 1, "destroy": 2}
    assert [(r["address"], r["action"]) for r in resources] == [
        ("a.new", "create"),
        ("a.edit", "update"),
        ("a.swap", "replace"),
        ("a.gone", "delete"),
        ("data.x", "read"),
    ]
    assert plan_changes({}) == ({"add": 0, "change": 0, "destroy": 0}, [])


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        ("Apply complete! Resources: 3 added, 1 changed, 2 destroyed.", (3, 1, 2)),
        ("Apply complete! Resources: 1 added, 0 changed, 0 destroyed.", (1, 0, 0)),
        ("Apply complete! Resources: 2 imported, 1 added, 0 changed, 0 destroyed.", (1, 0, 0)),
        ("Destroy complete! Resources: 4 destroyed.", (0, 0, 4)),
        ("No changes. Your infrastructure matches the configuration.", (0, 0, 0)),
    ],
)
def test_applied_changes_read_terraforms_summary_line(
    line: str, expected: tuple[int, int, int]
) -> None:
    changes = applied_changes(["", "some output", line, ""])
    assert (changes["add"], changes["change"], changes["destroy"]) == expected


def test_sensitive_outputs_are_masked() -> None:
    document = json.loads(
        '{"url": {"sensitive": false, "type": "string", "value": "https://x"},'
        ' "token": {"sensitive": true, "type": "string", "value": "s3cr3t"},'
        ' "ports": {"sensitive": false, "type": ["list", "number"], "value": [80, 443]}}'
    )
    assert masked_outputs(document) == {
        "url": "https://x",
        "token": "(sensitive)",
        "ports": [80, 443],
    }


def test_terraform_errors_keep_summary_and_detail_without_the_source_snippet() -> None:
    stderr = """\
╷
│ Warning: Unable to open CLI configuration file
│
│ The CLI configuration file at "/root/.terraformrc" does not exist.
╵

Error: Resource precondition failed

  on main.tf line 10, in resource "terraform_data" "item":
  10:       condition     = var.n < 5
    ├────────────────
    │ var.n is 7

n must be less than 5.

Error: Resource precondition failed

  on main.tf line 10, in resource "terraform_data" "item":
  10:       condition     = var.n < 5
    ├────────────────
    │ var.n is 7

n must be less than 5.
""".splitlines()
    assert terraform_errors(stderr) == "Resource precondition failed: n must be less than 5."
    assert terraform_errors(["all good", "Apply complete!"]) is None


def test_a_lock_error_keeps_the_holder_terraform_prints() -> None:
    stderr = """\

Error: Error acquiring the state lock

Error message: HTTP remote state already locked: ID=lock-1
Lock Info:
  ID:        lock-1
  Path:
  Operation: OperationTypeApply
  Who:       ci@agent-1
  Version:   1.15.5
  Created:   2026-11-25 19:00:00 +0000 UTC
  Info:      state locked by execution e1, step apply

Terraform acquires a state lock to protect the state from being written
by multiple users at the same time.
""".splitlines()
    error = terraform_errors(stderr)
    assert error is not None
    assert error.startswith("Error acquiring the state lock: Error message: HTTP remote state")
    assert "Info: state locked by execution e1, step apply" in error


def test_many_distinct_errors_are_cut_to_three_with_a_count() -> None:
    lines = [f"Error: problem {n}" for n in range(5)]
    assert terraform_errors(lines) == (
        "problem 0\nproblem 1\nproblem 2\n(and 2 more errors; see the step's log)"
    )


def test_plan_text_is_capped_with_a_note() -> None:
    short = "Plan: 1 to add, 0 to change, 0 to destroy.\n"
    assert capped_plan_text(short) == short
    long = "é" * PLAN_TEXT_LIMIT
    capped = capped_plan_text(long)
    assert len(capped.encode()) < PLAN_TEXT_LIMIT + 200
    assert capped.endswith("(plan text cut at 200 KB; the whole plan is in the step's log)\n")


@pytest.mark.parametrize(
    ("files", "declared"),
    [
        ({"main.tf": 'terraform {\n  backend "s3" {\n    bucket = "b"\n  }\n}\n'}, True),
        ({"main.tf": 'terraform {\n  cloud {\n    organization = "o"\n  }\n}\n'}, True),
        ({"main.tf": '# backend "s3" {}\n/* backend "gcs" {\n} */\nresource "x" "y" {}\n'}, False),
        ({"main.tf.json": json.dumps({"terraform": {"backend": {"local": {}}}})}, True),
        ({"main.tf.json": json.dumps({"terraform": [{"required_version": ">= 1"}]})}, False),
        ({OVERRIDE_FILE: 'terraform {\n  backend "http" {}\n}\n', "main.tf": ""}, False),
        ({"nested/backend.tf": 'terraform {\n  backend "local" {}\n}\n'}, False),
    ],
)
def test_declares_backend_reads_the_root_modules_own_files(
    tmp_path: Path, files: dict[str, str], declared: bool
) -> None:
    for relative, text in files.items():
        (tmp_path / relative).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / relative).write_text(text)
    assert declares_backend(tmp_path) is declared
