"""The pure DAG engine: ``decide(graph, state, now) -> Decision`` (see ``engine.reducer``)."""

from opsflow.engine.reducer import can_wake, decide

__all__ = ["can_wake", "decide"]
