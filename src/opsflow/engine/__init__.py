"""The pure DAG engine: ``decide(graph, state, now) -> Decision`` (see ``engine.reducer``)."""

from opsflow.engine.reducer import decide

__all__ = ["decide"]
