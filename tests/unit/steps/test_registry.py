"""Looking up executors by step type."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from opsflow.status import StepType
from opsflow.steps import registry
from opsflow.steps.base import CancelSignal, JobSpec, LogSink, StepResult
from opsflow.steps.http import HttpExecutor
from opsflow.steps.notify import NotifyExecutor
from opsflow.steps.script import ScriptExecutor


@pytest.fixture(autouse=True)
def restore_registry() -> Iterator[None]:
    saved, loaded = dict(registry._executors), registry._builtins_loaded
    yield
    registry._executors.clear()
    registry._executors.update(saved)
    registry._builtins_loaded = loaded


def test_builtin_executors_are_found_by_type() -> None:
    assert isinstance(registry.executor_for(StepType.SCRIPT), ScriptExecutor)
    assert isinstance(registry.executor_for(StepType.HTTP), HttpExecutor)
    assert isinstance(registry.executor_for(StepType.NOTIFY), NotifyExecutor)


@pytest.mark.parametrize("gate", [StepType.APPROVAL, StepType.CONDITION, StepType.WORKFLOW])
def test_gate_types_are_refused_with_the_reason(gate: StepType) -> None:
    with pytest.raises(registry.NoExecutor, match="resolved by the server's runtime"):
        registry.executor_for(gate)


def test_type_without_an_installed_executor_names_what_is_available() -> None:
    registry.executor_for(StepType.SCRIPT)  # the built-ins are loaded now
    removed = registry._executors.pop(StepType.TERRAFORM, None)
    try:
        with pytest.raises(
            registry.NoExecutor, match=r"'terraform'.*available: ansible, http, notify, script"
        ):
            registry.executor_for(StepType.TERRAFORM)
    finally:
        if removed is not None:
            registry._executors[StepType.TERRAFORM] = removed


class FakeTerraform:
    type = StepType.TERRAFORM

    async def run(self, spec: JobSpec, log: LogSink, cancel: CancelSignal) -> StepResult:
        raise NotImplementedError


def test_registering_adds_or_replaces_an_executor() -> None:
    registry.executor_for(StepType.SCRIPT)  # the built-ins are loaded now
    saved = dict(registry._executors)
    try:
        executor = FakeTerraform()
        registry.register(executor)
        assert registry.executor_for(StepType.TERRAFORM) is executor
        replacement = ScriptExecutor(grace=1)
        registry.register(replacement)
        assert registry.executor_for(StepType.SCRIPT) is replacement
    finally:
        registry._executors.clear()
        registry._executors.update(saved)


def test_a_gate_type_cannot_be_registered() -> None:
    gate = FakeTerraform()
    gate.type = StepType.APPROVAL
    with pytest.raises(ValueError, match="resolved by the server's runtime"):
        registry.register(gate)
