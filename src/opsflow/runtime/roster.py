"""Which agents are online, and which pools and labels they serve.

Presence is the database's (the ``agents`` table: `opsflow.store.agents`), so every replica
answers alike: an agent is online while it was seen within `online_window` seconds and has
not left since, with the job slots it registered (``agents.concurrency``). Only the
server's own local agent is also held here, in memory (`AgentRoster`), with its slot count,
for as long as its server runs (before its registration commits too). The waiting reasons
say "every slot busy" from both.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping
from dataclasses import dataclass, field

PRESENCE_ROUND_MAX = 10.0


def presence_round(lease_seconds: float) -> float:
    """Seconds an idle agent's waiting claim goes between renewals of its presence row (one
    claim transaction each): a lease, at most `PRESENCE_ROUND_MAX`."""
    return min(PRESENCE_ROUND_MAX, lease_seconds)


def online_window(lease_seconds: float) -> float:
    """Seconds an agent stays online after it was last seen: two leases, and at least three
    presence rounds (30 s with the default 15 s lease), so a live agent never looks offline
    between two renewals, and one killed with ``kill -9`` looks offline within this time on
    every replica."""
    return max(2 * lease_seconds, 3 * presence_round(lease_seconds))


@dataclass(frozen=True)
class AgentPresence:
    """One agent as the roster knows it; ``capacity`` is its job slots when it said so;
    ``draining``: it takes no more jobs (its running ones finish)."""

    agent_id: str
    pools: tuple[str, ...]
    labels: Mapping[str, str] = field(default_factory=dict)
    capacity: int | None = None
    draining: bool = False

    def serves(self, pool: str, labels: Mapping[str, object]) -> bool:
        """True when this agent takes jobs of ``pool`` that want ``labels``."""
        return pool in self.pools and all(self.labels.get(k) == str(v) for k, v in labels.items())


class AgentRoster:
    """Thread-safe record of this process's own agents (the local agent), keyed by agent id."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._resident: dict[str, AgentPresence] = {}

    def serve(self, agent: AgentPresence) -> None:
        """Put an agent on the roster until ``leave`` (the in-process local agent)."""
        with self._lock:
            self._resident[agent.agent_id] = agent

    def leave(self, agent_id: str) -> None:
        with self._lock:
            self._resident.pop(agent_id, None)

    def residents(self) -> list[AgentPresence]:
        """This process's own agents."""
        with self._lock:
            return list(self._resident.values())
