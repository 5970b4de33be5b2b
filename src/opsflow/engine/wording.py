"""How the engine words its log lines: durations, edges, results and attempts.

The engine log is what users read to learn why a run went the way it did, so every phrase is
built here, once, in the user's words ("needs build.succeeded but build failed").
"""

from __future__ import annotations

from opsflow.engine.model import Attempt, Edge, StepNode, StepState
from opsflow.status import JobStatus, Outcome, StepStatus, StepType


def format_duration(seconds: float) -> str:
    """``90`` -> ``1m30s``; ``7200`` -> ``2h``; rounded as people say a wait: below a second to
    two digits (``0.25s``), below ten seconds to a tenth (``1.99975`` -> ``2s``, ``2.46`` ->
    ``2.5s``), else to the second (``59.7`` -> ``1m``)."""
    if seconds < 1:
        return f"{float(f'{seconds:.2g}'):g}s"
    if seconds < 9.95:
        return f"{round(seconds, 1):g}s"
    whole = round(seconds)
    if whole < 60:
        return f"{whole}s"
    parts: list[str] = []
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60), ("s", 1)):
        count, whole = divmod(whole, size)
        if count:
            parts.append(f"{count}{unit}")
    return "".join(parts)


def unplaced(node: StepNode, why: str | None = None) -> str:
    """Why a job that waited out its placement timeout failed. With ``why``, the job's
    pending reason at that moment: ``no agent took the job within 6s (placement timeout):
    waiting for a free slot on pool eu (1/1 busy)``; without, where it waited: ``no online
    agent in pool eu with labels region=eu took the job within 5m (placement timeout)``."""
    assert node.placement_timeout is not None
    wait = format_duration(node.placement_timeout)
    if why:
        return f"no agent took the job within {wait} (placement timeout): {why}"
    where = f"pool {node.pool}"
    if node.labels:
        where += " with labels " + ", ".join(f"{k}={v}" for k, v in node.labels)
    return f"no online agent in {where} took the job within {wait} (placement timeout)"


def spell_edge(edge: Edge) -> str:
    """An edge as the user wrote it in ``needs``: ``build`` or ``build.failed``."""
    if edge.outcome == Outcome.SUCCESS:
        return edge.step
    return f"{edge.step}.{edge.outcome.value}"


def describe_result(node: StepNode, status: StepStatus, state: StepState) -> str:
    """What a step did, as a verb phrase: ``failed``, ``was rejected``, ``was false``."""
    if status == StepStatus.SUCCEEDED and node.type == StepType.CONDITION:
        return "was true" if state.gate_result == Outcome.TRUE else "was false"
    if status == StepStatus.SKIPPED and state.user_skipped:
        return "was skipped by a user"
    return {
        StepStatus.PENDING: "has not started",
        StepStatus.WAITING: "is waiting",
        StepStatus.RUNNING: "is running",
        StepStatus.SUCCEEDED: "succeeded",
        StepStatus.FAILED: "failed",
        StepStatus.SKIPPED: "was skipped",
        StepStatus.CANCELLED: "was cancelled",
        StepStatus.APPROVED: "was approved",
        StepStatus.REJECTED: "was rejected",
    }[status]


def describe_attempt(attempt: Attempt, number: int | None = None) -> str:
    """How one attempt ended: ``attempt 2 failed: exit code 1``. ``number``: the attempt's
    number as the user counts it when that is not the step's (an item's own attempt)."""
    what = {
        JobStatus.COMPLETED: "completed",
        JobStatus.FAILED: "failed",
        JobStatus.TIMEOUT: "timed out",
        JobStatus.CANCELLED: "was cancelled",
    }.get(attempt.status, attempt.status.value)
    text = f"attempt {attempt.number if number is None else number} {what}"
    if attempt.error and attempt.status != JobStatus.COMPLETED:
        text += f": {attempt.error}"
    return text


# How a log line names each status a step moves to: "step deploy <verb>: <reason>".
STATUS_VERB: dict[StepStatus, str] = {
    StepStatus.PENDING: "was reset",
    StepStatus.WAITING: "is waiting",
    StepStatus.RUNNING: "is running",
    StepStatus.SUCCEEDED: "succeeded",
    StepStatus.FAILED: "failed",
    StepStatus.SKIPPED: "skipped",
    StepStatus.CANCELLED: "cancelled",
    StepStatus.APPROVED: "approved",
    StepStatus.REJECTED: "rejected",
}
