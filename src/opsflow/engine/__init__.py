"""The pure DAG engine: ``decide(graph, state, now) -> Decision`` (see ``engine.decide``)."""

from opsflow.engine.decide import decide

__all__ = ["decide"]
