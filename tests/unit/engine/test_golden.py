"""Replay recorded execution histories and check the engine still decides the same way.

Each file in ``golden/`` holds a graph, the outside events of one run in order (a job starts
or ends, people answer, the clock reaches a timer, a person retries a step) and, after each
event, the actions the engine took and the ``wake_at`` it asked for. The replay feeds the same
events through ``Sim`` and compares every action. A change in the engine's behaviour or wording
shows up here as a readable diff; when the change is intended, re-record with
``OPSFLOW_UPDATE_GOLDEN=1 pytest tests/unit/engine/test_golden.py`` and review the file diff.
"""

from __future__ import annotations

import dataclasses
import json
import os
from enum import Enum
from pathlib import Path
from typing import Any

import pytest

from opsflow.engine.control import retry_step, skip_step
from opsflow.engine.model import Action, CancelMode, Graph
from opsflow.status import ExecutionStatus, JobStatus, Outcome
from tests.unit.engine.sim import Sim, graph, node

GOLDEN = Path(__file__).parent / "golden"
UPDATE = os.environ.get("OPSFLOW_UPDATE_GOLDEN") == "1"


def to_json(action: Action) -> dict[str, Any]:
    out: dict[str, Any] = {"action": type(action).__name__}
    for f in dataclasses.fields(action):
        value = getattr(action, f.name)
        if f.name == "item" and value is None:
            continue  # a job of a step that does not fan out (as recorded before items)
        if f.name == "graceful_stop" and not value:
            continue  # as recorded before a person's item cancel stopped gracefully
        out[f.name] = value.value if isinstance(value, Enum) else value
    return out


def load_graph(spec: dict[str, Any]) -> Graph:
    steps = [
        node(
            s["id"],
            s["type"],
            needs=s.get("needs", []),
            join=s.get("join", "all"),
            retries=s.get("retries", 0),
            retry_delay=s.get("retry_delay", 0.0),
            timeout=s.get("timeout"),
            allow_skip=s.get("allow_skip", False),
        )
        for s in spec["steps"]
    ]
    return graph(*steps, timeout=spec.get("timeout"))


def happen(sim: Sim, event: dict[str, Any]) -> None:
    """Apply one recorded outside event to the simulated runtime."""
    kind, step = event["kind"], event.get("step", "")
    if kind in ("start", "timer"):
        return
    if kind == "job_running":
        sim.job_running(step)
    elif kind == "job_ends":
        sim.job_ends(
            step,
            JobStatus(event["status"]),
            retryable=event.get("retryable", True),
            error=event.get("error"),
        )
    elif kind == "killed":
        sim.killed(step)
    elif kind == "answer":
        sim.answer(step, Outcome(event["outcome"]), event.get("note"))
    elif kind == "cancel":
        sim.cancel(CancelMode(event["mode"]), event.get("reason", "cancelled"))
    elif kind == "retry":
        changes = retry_step(sim.graph, sim.state, step, event.get("from_here", False), now=sim.now)
        sim.write(changes, ExecutionStatus.RUNNING)
    elif kind == "skip":
        sim.write(skip_step(sim.graph, sim.state, step, now=sim.now), ExecutionStatus.RUNNING)
    else:
        raise AssertionError(f"unknown event kind {kind!r}")


def replay(record: dict[str, Any]) -> list[dict[str, Any]]:
    """Run the record's events; return its history as this engine would write it."""
    sim = Sim(load_graph(record["graph"]), now=record["history"][0]["at"])
    history = []
    for entry in record["history"]:
        sim.now = entry["at"]
        happen(sim, entry["event"])
        actions = [to_json(a) for a in sim.reconcile()]
        history.append(
            {
                "at": entry["at"],
                "event": entry["event"],
                "actions": actions,
                "wake_at": sim.wake_at,
                "execution": sim.execution.value,
            }
        )
    return history


@pytest.mark.parametrize("path", sorted(GOLDEN.glob("*.json")), ids=lambda p: p.stem)
def test_recorded_history_replays_identically(path: Path) -> None:
    record = json.loads(path.read_text())
    history = replay(record)
    if UPDATE:
        record["history"] = history
        path.write_text(json.dumps(record, indent=1) + "\n")
    for recorded, now in zip(record["history"], history, strict=True):
        assert now == recorded, f"{path.name}: history differs at t={recorded['at']}"
    assert record["history"][-1]["execution"] == record["outcome"]


def test_golden_files_exist() -> None:
    assert len(list(GOLDEN.glob("*.json"))) >= 3
