"""Which agents are online, and which pools and labels they serve.

The local agent is on the roster for as long as its server runs; a remote agent is on it while
it keeps claiming (``seen``), for ``ttl`` seconds after its last claim. The roster answers why
a queued job waits (no agent for its pool or labels, or every slot busy); it is kept in memory
by the replica that agents talk to.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping
from dataclasses import dataclass, field


@dataclass(frozen=True)
class AgentPresence:
    """One agent as the roster knows it; ``capacity`` is its job slots when it said so."""

    agent_id: str
    pools: tuple[str, ...]
    labels: Mapping[str, str] = field(default_factory=dict)
    capacity: int | None = None

    def serves(self, pool: str, labels: Mapping[str, object]) -> bool:
        """True when this agent takes jobs of ``pool`` that want ``labels``."""
        return pool in self.pools and all(self.labels.get(k) == str(v) for k, v in labels.items())


class AgentRoster:
    """Thread-safe record of the agents serving this server, keyed by agent id."""

    def __init__(self, ttl: float = 30.0) -> None:
        self.ttl = ttl
        self._lock = threading.Lock()
        self._resident: dict[str, AgentPresence] = {}
        self._seen: dict[str, tuple[AgentPresence, float]] = {}

    def serve(self, agent: AgentPresence) -> None:
        """Put an agent on the roster until ``leave`` (the in-process local agent)."""
        with self._lock:
            self._resident[agent.agent_id] = agent

    def leave(self, agent_id: str) -> None:
        with self._lock:
            self._resident.pop(agent_id, None)
            self._seen.pop(agent_id, None)

    def seen(self, agent_id: str, pools: list[str], labels: Mapping[str, str], now: float) -> None:
        """An agent claimed work at ``now``: it is online until ``now + ttl``."""
        with self._lock:
            if agent_id in self._resident:
                return
            self._seen[agent_id] = (AgentPresence(agent_id, tuple(pools), dict(labels)), now)

    def online(self, now: float) -> list[AgentPresence]:
        """The agents online at ``now``, residents first."""
        with self._lock:
            fresh = [a for a, at in self._seen.values() if now - at <= self.ttl]
            return [*self._resident.values(), *fresh]
