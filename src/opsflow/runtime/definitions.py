"""Pinned definitions, parsed once: the workflow model by content, and each execution's
compiled graph and steps by id.

A definition is validated when it is saved; the runtime reads only its shape again (so a rule
added since never stops a run already under way). Parsing a large definition costs far more
than a step, so it is done once per distinct definition (the key is its JSON text, cheap next
to the parse and safe whatever database it came from) and once per execution for the graph,
not on every start and job end. A published version (immutable) is read once per process.
"""

from __future__ import annotations

import json
import threading
from collections import OrderedDict
from collections.abc import Callable, Hashable, Mapping
from datetime import datetime
from typing import Any, Generic, TypeVar

from sqlalchemy.orm import Session

from opsflow.engine import model as m
from opsflow.spec.graph import to_graph
from opsflow.spec.models import Workflow
from opsflow.store import workflows as workflows_store
from opsflow.store.runs import Execution
from opsflow.store.workflows import Workflow as StoredWorkflow
from opsflow.store.workflows import WorkflowVersion

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")


class _Lru(Generic[K, V]):
    """A small least-recently-used map, safe across threads (the timer thread, the loop's)."""

    def __init__(self, size: int) -> None:
        self._items: OrderedDict[K, V] = OrderedDict()
        self._size = size
        self._lock = threading.Lock()

    def get(self, key: K, make: Callable[[], V]) -> V:
        with self._lock:
            value = self._items.get(key)
            if value is not None:
                self._items.move_to_end(key)
                return value
        value = make()  # outside the lock: a parse may take a while; a race parses twice
        with self._lock:
            self._items[key] = value
            if len(self._items) > self._size:
                self._items.popitem(last=False)
        return value


_models: _Lru[str, Workflow] = _Lru(64)
# By execution: its id (a fresh uuid) and creation time, for ids a test may reuse.
_graphs: _Lru[tuple[str, float], m.Graph] = _Lru(512)
_steps: _Lru[tuple[str, float], Mapping[str, Mapping[str, Any]]] = _Lru(512)


def workflow_model(definition: Mapping[str, Any]) -> Workflow:
    """The model of a saved (already validated) definition, parsed once per content."""
    key = json.dumps(definition, sort_keys=True, separators=(",", ":"), default=str)
    return _models.get(key, lambda: Workflow.model_validate(definition))


# By database, workflow (its row's creation time too: a test's fresh database may reuse an
# id) and version number: versions are never updated.
_versions: _Lru[tuple[str, str, datetime, int], WorkflowVersion] = _Lru(256)


def published_version(session: Session, workflow: StoredWorkflow, number: int) -> WorkflowVersion:
    """Version ``number`` of ``workflow``, read from the database once per process (a
    trigger reads its workflow's latest version on every fire). `NotFound` if none."""
    key = (str(session.get_bind().engine.url), workflow.id, workflow.created_at, number)
    return _versions.get(key, lambda: workflows_store.get_version(session, workflow.id, number))


def graph_of(execution: Execution) -> m.Graph:
    """The engine's graph of an execution's pinned definition (which never changes)."""
    return _graphs.get(
        (execution.id, execution.created_at),
        lambda: to_graph(workflow_model(execution.definition)),
    )


def raw_step(execution: Execution, step_id: str) -> Mapping[str, Any]:
    """A step of an execution's pinned definition as written (``KeyError`` if none)."""

    def index() -> Mapping[str, Mapping[str, Any]]:
        return {str(raw.get("id")): raw for raw in execution.definition.get("steps", [])}

    return _steps.get((execution.id, execution.created_at), index)[step_id]
