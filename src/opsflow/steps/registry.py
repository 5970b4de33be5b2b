"""Which executor runs which step type on an agent.

The built-in executors are registered the first time one is looked up (nothing happens at
import); ``register`` adds or replaces one, so a new step type is one module plus one line in
``_builtin_executors``. Gate types (approval, condition, workflow) never reach an agent: the
runtime resolves them, and asking for their executor is a programming error that says so.
"""

from __future__ import annotations

import threading

from opsflow.status import GATE_TYPES, StepType

from .base import Executor

_executors: dict[StepType, Executor] = {}
_builtins_loaded = False
_loading = threading.Lock()


class NoExecutor(LookupError):
    """No executor on this agent runs the requested step type."""


def register(executor: Executor) -> None:
    """Make ``executor`` the one that runs ``executor.type`` (replacing any earlier one)."""
    step_type = StepType(executor.type)
    if step_type in GATE_TYPES:
        raise ValueError(
            f"{step_type.value!r} steps are resolved by the server's runtime; "
            "they cannot have an agent executor"
        )
    _executors[step_type] = executor  # built-ins load later with setdefault: this one wins


def executor_for(step_type: StepType) -> Executor:
    """The executor for ``step_type``; raises ``NoExecutor`` with the reason when there is none."""
    step_type = StepType(step_type)
    if step_type in GATE_TYPES:
        raise NoExecutor(
            f"{step_type.value!r} steps are resolved by the server's runtime, not run by an agent"
        )
    _load_builtins()
    try:
        return _executors[step_type]
    except KeyError:
        raise NoExecutor(
            f"no executor for {step_type.value!r} steps is installed on this agent "
            f"(available: {', '.join(sorted(t.value for t in _executors))})"
        ) from None


def load_builtins() -> None:
    """Load every built-in executor now (their modules import Apprise, httpx and more: about a
    second). An agent calls it in a worker thread before its first claim, so no job it holds
    waits, with its lease running, while the event loop imports them."""
    _load_builtins()


def _load_builtins() -> None:
    global _builtins_loaded
    if _builtins_loaded:
        return
    with _loading:  # a worker thread may be loading them while the event loop asks
        if _builtins_loaded:
            return
        for executor in _builtin_executors():
            _executors.setdefault(executor.type, executor)
        _builtins_loaded = True


def _builtin_executors() -> list[Executor]:
    """One entry per built-in step type an agent runs."""
    from .ansible import AnsibleExecutor
    from .http import HttpExecutor
    from .notify import NotifyExecutor
    from .script import ScriptExecutor
    from .ssh import SshExecutor
    from .terraform import TerraformExecutor

    return [
        ScriptExecutor(),
        HttpExecutor(),
        NotifyExecutor(),
        AnsibleExecutor(),
        TerraformExecutor(),
        SshExecutor(),
    ]
