"""Step executors: one module per step type an agent runs, behind one small interface.

``base`` defines the interface (``JobSpec``, ``LogSink``, ``StepResult``, ``CancelSignal``,
``Executor``); ``registry.executor_for`` finds the executor for a step type. Gate types
(approval, condition, workflow) are resolved by the runtime, not here.
"""

from .base import CancelSignal, Executor, JobSpec, LogSink, StepResult

__all__ = ["CancelSignal", "Executor", "JobSpec", "LogSink", "StepResult"]
