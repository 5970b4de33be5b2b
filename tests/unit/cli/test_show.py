"""``opsflow executions show`` as people read it: each job with its own status, cleanup jobs
named as such, and each step's outputs (plan changes, who approved and why)."""

from __future__ import annotations

from typing import Any

import pytest

from opsflow.cli.runs import print_detail, print_step_outputs, step_outputs, trigger_line


def job(attempt: int, status: str, **extra: Any) -> dict[str, Any]:
    return {
        "attempt": attempt,
        "status": status,
        "duration_ms": 1500.0,
        "exit_code": extra.pop("exit_code", None),
        "error": extra.pop("error", None),
        "purpose": extra.pop("purpose", "run"),
    }


DETAIL: dict[str, Any] = {
    "id": "0123456789abcdef0123456789abcdef",
    "workflow_id": "deploy",
    "version": 3,
    "status": "cancelled",
    "status_reason": "cancelled by admin",
    "engine_log": [],
    "steps": [
        {
            "id": "plan",
            "status": "succeeded",
            "pending_reason": None,
            "error": None,
            "outputs": {"changes": {"add": 2, "change": 1, "destroy": 0}, "outputs": {}},
            "jobs": [
                job(1, "failed", exit_code=1, error="exit code 1"),
                job(2, "completed", exit_code=0),
                job(2, "completed", purpose="cleanup"),
            ],
        },
        {
            "id": "approve",
            "status": "approved",
            "pending_reason": None,
            "error": None,
            "outputs": {
                "approved": True,
                "responded_by": "dana",
                "responded_via": "cli",
                "response_note": "plan looks right",
                "responded_at": "2026-11-30T10:00:00+00:00",
            },
            "jobs": [],
        },
        {
            "id": "apply-eu",
            "status": "running",
            "pending_reason": "no agent serves pool eu-west",
            "error": None,
            "outputs": {},
            "jobs": [job(1, "pending")],
        },
    ],
}


@pytest.fixture
def shown(capsys: pytest.CaptureFixture[str]) -> list[str]:
    print_detail(DETAIL)
    return capsys.readouterr().out.splitlines()


def _rows(lines: list[str], start: str) -> list[list[str]]:
    """The table rows whose first cells read ``start``."""
    words = start.split()
    return [x.split() for x in lines if x.split()[: len(words)] == words]


def _row(lines: list[str], start: str) -> list[str]:
    (row,) = _rows(lines, start)
    return row


def test_each_attempt_shows_its_own_status_not_the_steps(shown: list[str]) -> None:
    assert _row(shown, "plan")[:2] == ["plan", "succeeded"]
    assert [r[2] for r in _rows(shown, "attempt 1")] == ["failed", "pending"]
    assert [r[2] for r in _rows(shown, "attempt 2")] == ["completed"]


def test_a_cleanup_job_is_labelled_cleanup_not_as_another_attempt(shown: list[str]) -> None:
    assert _row(shown, "cleanup")[:2] == ["cleanup", "completed"]
    assert len(_rows(shown, "attempt")) == 3, "plan's two attempts and apply-eu's one"


def test_a_waiting_step_shows_why(shown: list[str]) -> None:
    assert "no agent serves pool eu-west" in " ".join(_row(shown, "apply-eu"))


def test_outputs_show_plan_changes_and_the_approver_with_the_note(shown: list[str]) -> None:
    text = "\n".join(shown)
    assert "plan: changes +2 ~1 -0" in text
    assert 'approve: approved by dana via cli: "plan looks right"' in text


def test_other_outputs_are_key_value_pairs_in_json_spelling() -> None:
    step = {"outputs": {"exit_code": 0, "greeting": "hi", "ok": True, "n": None}}
    assert step_outputs(step) == ("greeting=hi; ok=true; n=null", False)
    assert step_outputs({"outputs": {}}) == (None, False)


PLAN_TEXT = "\n".join(
    ["Terraform will perform the following actions:"]
    + [f'  # n[{i}] will be created\n  + resource "null_resource" "n"' for i in range(40)]
    + ["Plan: 40 to add, 0 to change, 0 to destroy."]
)
PLANNED: dict[str, Any] = {
    **DETAIL,
    "status": "paused",
    "status_reason": None,
    "steps": [
        {
            "id": "plan",
            "status": "succeeded",
            "pending_reason": None,
            "error": None,
            "outputs": {
                "changes": {"add": 40, "change": 0, "destroy": 0},
                "resource_changes": [
                    {"address": f"null_resource.n[{i}]", "action": "create"} for i in range(40)
                ],
                "plan_text": PLAN_TEXT,
                "has_changes": True,
            },
            "jobs": [job(1, "completed", exit_code=0)],
        }
    ],
}


def test_a_plan_shows_its_changes_and_how_to_see_it_whole_not_its_text(
    capsys: pytest.CaptureFixture[str],
) -> None:
    print_detail(PLANNED)
    out = capsys.readouterr().out
    assert "plan: changes +40 ~0 -0; plan_text of 82 lines; resource_changes=[40 items]" in out
    assert "will be created" not in out, "the plan's text is not printed inline"
    assert f"opsflow executions show {DETAIL['id']} --step plan" in out
    assert max(len(line) for line in out.splitlines()) < 400


def test_a_long_text_output_is_cut_with_its_size() -> None:
    text, cut = step_outputs({"outputs": {"report": "x" * 300 + "\nsecond line"}})
    assert cut and text is not None
    assert text.startswith("report=xxx") and text.endswith("... (2 lines, 312 characters)")
    assert len(text) < 160


def test_a_steps_outputs_in_full_print_the_plan_line_by_line(
    capsys: pytest.CaptureFixture[str],
) -> None:
    print_step_outputs(PLANNED["steps"][0])
    out = capsys.readouterr().out
    assert PLAN_TEXT in out
    assert "has_changes: True" not in out and "has_changes: true" in out
    assert '"address": "null_resource.n[39]"' in out


def test_a_completed_child_run_shows_its_workflow_outputs_and_its_parent(
    capsys: pytest.CaptureFixture[str],
) -> None:
    child = {
        **DETAIL,
        "status": "completed",
        "status_reason": "",
        "steps": [],
        "outputs": {"image": "registry/app:1.2.3", "sizes": [1, 2]},
        "parent": {"execution_id": "feedface" * 4, "step": "build"},
    }
    print_detail(child)
    text = capsys.readouterr().out
    assert "workflow outputs:" in text
    assert "image = registry/app:1.2.3" in text
    assert "sizes = [1, 2]" in text
    assert f"started by step build of execution {'feedface' * 4}" in text


@pytest.mark.parametrize(
    ("record", "data", "line"),
    [
        (
            {"type": "schedule", "name": "schedule-1", "source": "schedule-1 at 2026-11-30 09:00"},
            {},
            "schedule schedule-1 at 2026-11-30 09:00",
        ),
        (
            {"type": "workflow", "name": "workflow-1", "source": "ex123", "actor": "ada"},
            {},
            "workflow workflow-1 after execution ex123, acting for ada",
        ),
        (
            {"type": "git", "name": "git-1", "source": "github acme/infra@0d1a26e67d8f"},
            {"address": "10.0.0.5"},
            "git git-1: github acme/infra@0d1a26e67d8f (from 10.0.0.5)",
        ),
        (
            {
                "type": "incident",
                "name": "pages",
                "source": "alertmanager",
                "actor": "incident:pages",
            },
            {"address": "10.0.0.9"},
            "incident pages: alertmanager (from 10.0.0.9)",
        ),
        ({"type": "manual", "name": None, "source": None, "actor": "ada"}, {}, "manual by ada"),
    ],
)
def test_the_trigger_line_says_how_a_run_started(
    record: dict[str, Any], data: dict[str, Any], line: str
) -> None:
    assert trigger_line({"trigger": record, "trigger_data": data}) == line
