"""``opsflow executions show`` as people read it: each job with its own status, cleanup jobs
named as such, and each step's outputs (plan changes, who approved and why)."""

from __future__ import annotations

from typing import Any

import pytest

from opsflow.cli.runs import print_detail, step_outputs


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
    assert step_outputs(step) == "greeting=hi; ok=true; n=null"
    assert step_outputs({"outputs": {}}) is None
