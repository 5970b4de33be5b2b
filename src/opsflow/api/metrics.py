"""``GET /metrics``: the server in the Prometheus text format (prometheus-client).

Database-wide figures are read on each scrape: executions by status and the queue depth are two
GROUP BY counts; the step-duration and dispatch-latency histograms take in the jobs that ended
or were dispatched since the previous scrape (a window that trails the clock by `SETTLE`
seconds, so a transaction that committed late is not skipped). Agents online come from the
``agents`` table too (seen within `opsflow.runtime.roster.online_window`, not left since), so
an agent that leaves or is killed drops out of every replica's gauge alike. These are the same
from every replica: scrape one, or aggregate with ``max``, not ``sum``. SSE clients are this
process's own (sum them across replicas).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator

from fastapi import APIRouter, Request, Response
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from opsflow.api.services import Services, services_of
from opsflow.runtime.roster import online_window
from opsflow.status import ExecutionStatus
from opsflow.store import agents as agents_store
from opsflow.store import metrics as metrics_store
from opsflow.store.db import Database

router = APIRouter(tags=["health"])

METRICS_KEY = "metrics"  # services.extra[METRICS_KEY]: this process's `ServerMetrics`
SETTLE = 2.0  # seconds the histograms' window trails the clock
STEP_BUCKETS = (0.1, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1800, 3600, float("inf"))
DISPATCH_BUCKETS = (0.001, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, float("inf"))


class ServerMetrics(Collector):
    """This process's registry: the histograms it keeps and the gauges it reads per scrape."""

    def __init__(self, services: Services, clock: Callable[[], float] = time.time) -> None:
        self.services = services
        self.clock = clock
        self.registry = CollectorRegistry(auto_describe=True)
        self.step_seconds = Histogram(
            "opsflow_step_duration_seconds",
            "How long step attempts ran on their agent, by step type and how they ended.",
            ["type", "status"],
            buckets=STEP_BUCKETS,
            registry=self.registry,
        )
        self.dispatch_seconds = Histogram(
            "opsflow_dispatch_latency_seconds",
            "Seconds from a job queued to an agent claiming it.",
            buckets=DISPATCH_BUCKETS,
            registry=self.registry,
        )
        self.registry.register(self)
        self._lock = threading.Lock()
        self._mark = clock() - SETTLE  # jobs before the process started are not counted

    @property
    def db(self) -> Database:
        return self.services.db

    def render(self) -> bytes:
        """One scrape: catch the histograms up, then the whole registry as text."""
        with self._lock:
            until = self.clock() - SETTLE
            if until > self._mark:
                with self.db.read() as session:
                    ended = metrics_store.jobs_ended_between(session, self._mark, until)
                    delays = metrics_store.dispatch_delays_between(session, self._mark, until)
                for job in ended:
                    self.step_seconds.labels(job.type, job.status).observe(job.seconds)
                for delay in delays:
                    self.dispatch_seconds.observe(delay)
                self._mark = until
            return generate_latest(self.registry)

    def describe(self) -> Iterator[Metric]:
        return iter(())  # read per scrape: nothing to declare ahead

    def collect(self) -> Iterator[Metric]:
        now = self.clock()
        with self.db.read() as session:
            by_status = metrics_store.executions_by_status(session)
            queued = metrics_store.queued_jobs_by_pool(session)
            online = agents_store.seen_since(
                session, now - online_window(self.services.settings.lease_seconds)
            )
        executions = GaugeMetricFamily(
            "opsflow_executions", "Executions in the database, by status.", labels=["status"]
        )
        for status in ExecutionStatus:
            executions.add_metric([status.value], by_status.get(status.value, 0))
        yield executions
        depth = GaugeMetricFamily(
            "opsflow_queue_depth", "Jobs waiting for an agent, by pool.", labels=["pool"]
        )
        for pool, n in sorted(queued.items()):
            depth.add_metric([pool], n)
        yield depth
        agents = GaugeMetricFamily(
            "opsflow_agents_online",
            "Agents online (seen within the online window and not left: every replica's local "
            "agent and every remote agent, whichever replica they talk to), by pool.",
            labels=["pool"],
        )
        host = self.services.extra.get("runtime")
        # This replica's own agent counts from its start, before its registration commits.
        residents = host.runtime.roster.residents() if host is not None else []
        stored = {agent.id for agent in online}
        per_pool: dict[str, int] = {}
        for pools in [agent.pools for agent in online] + [
            list(a.pools) for a in residents if a.agent_id not in stored
        ]:
            for pool in pools:
                per_pool[pool] = per_pool.get(pool, 0) + 1
        for pool, n in sorted(per_pool.items()):
            agents.add_metric([pool], n)
        yield agents
        sse = GaugeMetricFamily(
            "opsflow_sse_clients", "Live streams (SSE) this replica serves now."
        )
        sse.add_metric([], host.bus.viewers() if host is not None else 0)
        yield sse


def metrics_of(services: Services) -> ServerMetrics:
    """This process's metrics, made on the first scrape."""
    found = services.extra.get(METRICS_KEY)
    if found is None:
        found = services.extra.setdefault(METRICS_KEY, ServerMetrics(services))
    assert isinstance(found, ServerMetrics)
    return found


@router.get("/metrics", response_class=Response)
def metrics(request: Request) -> Response:
    """The Prometheus text exposition of this server (no authentication: expose it to the
    scraper's network only)."""
    body = metrics_of(services_of(request)).render()
    return Response(body, media_type=CONTENT_TYPE_LATEST)
