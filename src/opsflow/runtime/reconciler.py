"""Apply the engine's decisions to one execution, durably.

``reconcile`` runs inside the caller's transaction, holding the execution's row lock: it
loads the state, asks the pure engine what to do, writes each action, and asks again until the
engine has nothing more to say, then sets the execution's one timer to the engine's
``wake_at``. The caller commits, and only then publishes wake-ups (see ``Changes``). Because a
finished job's report reconciles in the same transaction, the next step's job is queued in the
same commit that records the previous step's end: nothing on the hot path waits on a poll.
"""

from __future__ import annotations

import dataclasses
import logging
import uuid
from collections.abc import Callable, Collection, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, assert_never

from sqlalchemy.orm import Session

from opsflow.auth.connections import ConnectionUnusable
from opsflow.engine import can_wake, decide
from opsflow.engine import model as m
from opsflow.engine.advance import (
    Counts,
    Need,
    Partial,
    advance,
    count,
    needs_open_of,
    recount,
    successors,
)
from opsflow.engine.chains import DEFAULT_DEPTH_LIMIT
from opsflow.engine.topology import shape_of
from opsflow.errors import TemplateError
from opsflow.runtime import admission, events, fan_out
from opsflow.runtime.approvals import close_gate, open_gate
from opsflow.runtime.changes import Changes
from opsflow.runtime.children import cancel_child, start_child
from opsflow.runtime.cleanup import advance_cleanup
from opsflow.runtime.connections import check_usable
from opsflow.runtime.context import (
    ServerFacts,
    agent_placement,
    job_config,
    job_inputs,
    needs_outputs,
    run_outputs,
    step_definition,
    template_context,
)
from opsflow.runtime.definitions import graph_of
from opsflow.runtime.roster import AgentPresence
from opsflow.runtime.run_notify import queue_run_end
from opsflow.runtime.transaction import Transaction
from opsflow.runtime.waiting import queued_reason
from opsflow.spec.fan_out import FanOutError
from opsflow.spec.template import evaluate_condition
from opsflow.status import ExecutionStatus, JobPurpose, JobStatus, Outcome, StepStatus, StepType
from opsflow.store import jobs as jobs_store
from opsflow.store import runs as runs_store
from opsflow.store import writes as writes_store
from opsflow.store.jobs import Job
from opsflow.store.runs import Execution, Step
from opsflow.words import counted

log = logging.getLogger(__name__)


@dataclass
class Ended:
    """What the jobs' end reports of this transaction already know: their outputs (so the
    reconcile need not read them back) and their events (written with the reconcile's)."""

    outputs: dict[str, dict[str, Any]] = field(default_factory=dict)
    events: list[events.Stamped] = field(default_factory=list)
    # The steps whose jobs these are: the news the reconcile decides from (``engine.advance``).
    steps: set[str] = field(default_factory=set)


@dataclass(frozen=True)
class RunSettings:
    """The server's side of a reconcile: notify channels, how to list secret names (read
    only when a template is rendered), and the server's address."""

    channels: Mapping[str, list[str]] = field(default_factory=dict)
    secret_names: Callable[[Session], Iterable[str]] | None = None
    public_url: str | None = None
    # How deep runs may start runs (workflow steps and workflow triggers).
    chain_depth: int = DEFAULT_DEPTH_LIMIT
    # Attempts in a row a step's agent may be lost before the step fails.
    agent_lost_limit: int = m.DEFAULT_AGENT_LOST_LIMIT
    # The agents a queued job is judged against at ``now`` (`waiting.agents_for_queued`):
    # a job that waited out its placement timeout fails with its pending reason then. None:
    # not known here (the reason names only where the job waited).
    presence: Callable[[Session, float], list[AgentPresence]] | None = None

    def server_facts(self, session: Session) -> ServerFacts:
        names = self.secret_names
        return ServerFacts(
            channels=self.channels,
            secret_names=list(names(session)) if names else [],
            public_url=self.public_url,
        )


EXECUTION_TIMER = "execution"
MAX_ROUNDS = 10_000


def new_id() -> str:
    return uuid.uuid4().hex


class _Run:
    """The in-memory mirror of one execution during a reconcile."""

    def __init__(
        self,
        session: Session,
        execution: Execution,
        now: float,
        settings: RunSettings,
        ended: Ended | None = None,
        steps: Collection[str] | None = None,
    ) -> None:
        """``steps``: read only these steps and their jobs (a reconcile through
        ``engine.advance``); None reads every step (through ``decide``)."""
        self.session = session
        self.ended = ended or Ended()
        self.new_facts = False
        self.settings = settings
        self._server_facts: ServerFacts | None = None
        self.ex = execution
        self.now = now
        self.graph = graph_of(execution)
        self.whole = steps is None
        self.steps: dict[str, Step] = {}
        self._outputs_loaded = False
        self._others: dict[str, Step] | None = None  # every step with outputs (partial runs)
        self.jobs: dict[tuple[str, int], Job] = {}
        # A partial run's fanned-out steps: their completed attempts, read apart (only what
        # the engine needs of an item that is done; their jobs are not in ``jobs``).
        self.done_items: dict[str, list[m.Attempt]] = {}
        # Each step's latest attempt (of any purpose), kept with ``jobs``.
        self.last_jobs: dict[str, Job] = {}
        # Each step's status and open needs as read, before this reconcile changed them.
        self.read_status: dict[str, StepStatus] = {}
        self.read_needs: dict[str, int | None] = {}
        # Step updates and new jobs not yet sent: they go with the engine log and events in
        # one statement (`flush`), or before any statement that reads steps or jobs (`settle`).
        self.pending = writes_store.Writes()
        if steps is None:
            self._read(
                runs_store.list_step_states(session, execution.id),
                jobs_store.attempts_of_execution(session, execution.id),
            )
        else:
            self.read(steps)
        self.events: list[events.Stamped] = []
        self.logs: list[dict[str, Any]] = []
        # Lines about what applying an action found, held until the engine's line giving the
        # action's reason (the Log right after it) is written: "working out its items" must
        # come before "fans out to 4 items".
        self.held: list[tuple[str, str | None]] = []
        self.changes = Changes()
        # The agents online and their jobs in flight, read once, when a job's placement time
        # is up (`unplaced_reason`).
        self._queue_view: tuple[list[AgentPresence], dict[str, int]] | None = None

    def read(self, step_ids: Iterable[str]) -> None:
        """Add these steps and their jobs to a partial run (``engine.advance`` asked)."""
        wanted = [sid for sid in step_ids if sid not in self.steps]
        if wanted:
            self.settle()
            self._read(*jobs_store.steps_and_attempts(self.session, self.ex.id, wanted))
            nodes = shape_of(self.graph).nodes
            # A fanned-out step reset to work its list out again (a retry from a step
            # before it) has no list but keeps its completed item jobs: they are read too,
            # or its new jobs would take their attempt numbers.
            fanned = [
                sid
                for sid in wanted
                if self.steps[sid].item_count is not None
                or (self.steps[sid].retry_base and nodes[sid].fan_out is not None)
            ]
            if fanned:
                done = jobs_store.completed_items(self.session, self.ex.id, fanned)
                for sid, number, item, created_at, ended_at in done:
                    self.done_items.setdefault(sid, []).append(
                        m.Attempt(
                            number=number,
                            status=JobStatus.COMPLETED,
                            created_at=created_at,
                            started_at=created_at,
                            ended_at=ended_at,
                            item=item,
                        )
                    )

    def read_whole(self) -> None:
        """Read every step and job (what this transaction wrote included): ``decide`` needs
        the whole execution after all."""
        self.settle()
        self.whole = True
        self.steps.clear()
        self.jobs.clear()
        self.done_items.clear()
        self.last_jobs.clear()
        self._outputs_loaded = False
        self._others = None
        self._read(
            runs_store.list_step_states(self.session, self.ex.id),
            jobs_store.attempts_of_execution(self.session, self.ex.id),
        )

    def _read(self, steps: Iterable[Step], jobs: Iterable[Job]) -> None:
        for step in steps:
            self.steps[step.step_id] = step
            self.read_status.setdefault(step.step_id, step.status)
            self.read_needs.setdefault(step.step_id, step.needs_open)
        for job in jobs:
            self._note_job(job)

    def stored_counts(self) -> Counts | None:
        ex = self.ex
        if ex.steps_active is None or ex.approvals_waiting is None or ex.steps_failed is None:
            return None
        return Counts(ex.steps_active, ex.approvals_waiting, ex.steps_failed)

    def partial(self) -> Partial | None:
        """What ``engine.advance`` needs: the steps read and the counts as they are now
        (None when some count was never kept: a whole reconcile counts them)."""
        stored = self.stored_counts()
        needs: dict[str, int] = {}
        for sid, status in self.read_status.items():
            if status == StepStatus.PENDING:
                value = self.read_needs[sid]
                if value is None:
                    return None
                needs[sid] = value
        if stored is None:
            return None
        counts, still = recount(
            self.graph,
            stored,
            needs,
            self.read_status,
            {sid: self.steps[sid].status for sid in self.read_status},
        )
        return Partial(self.state(), counts, still)

    def write_counts(self) -> None:
        """Store the counts as this reconcile leaves them: recounted from the steps read, or
        counted afresh over every step after a whole reconcile; only what changed."""
        statuses = {sid: step.status for sid, step in self.steps.items()}
        if self.whole:
            counts = count(self.graph, statuses)
            needs = needs_open_of(self.graph, statuses)
        else:
            part = self.partial()
            assert part is not None  # a partial run had every count it needed
            counts, needs = part.counts, dict(part.needs_open)
        if counts != self.stored_counts():
            runs_store.update_execution(
                self.session,
                self.ex.id,
                steps_active=counts.active,
                approvals_waiting=counts.approvals,
                steps_failed=counts.failed,
            )
        for sid, value in needs.items():
            if self.steps[sid].needs_open != value:
                self.pending.set_step(self.ex.id, sid, {"needs_open": value})

    def unplaced_reason(self, job: Job) -> str | None:
        """Why no agent took ``job`` by the end of its placement timeout: its pending reason
        now (`queued_reason`); None when it is not known (no presence here, or an agent with
        a free slot serves it)."""
        presence = self.settings.presence
        if presence is None:
            return None
        if self._queue_view is None:
            self._queue_view = (
                presence(self.session, self.now),
                jobs_store.in_flight_by_agent(self.session),
            )
        agents, busy = self._queue_view
        return queued_reason(job, agents, busy)

    def attempt_of(self, job: Job, limit: float | None) -> m.Attempt:
        """The engine's view of ``job``, with the reason no agent took it once its
        placement time (``limit``: its step's ``placement_timeout``) is up: what the engine
        fails it with."""
        attempt = fan_out.attempt_of(job)
        if (
            limit
            and job.status == JobStatus.PENDING
            and not job.cancel_requested
            and self.now >= job.created_at + limit
        ):
            attempt = dataclasses.replace(attempt, unplaced_reason=self.unplaced_reason(job))
        return attempt

    def state(self) -> m.ExecutionState:
        attempts: dict[str, list[m.Attempt]] = {}
        nodes = shape_of(self.graph).nodes
        for (sid, _), job in sorted(self.jobs.items(), key=lambda kv: kv[0][1]):
            if job.purpose == JobPurpose.RUN:
                limit = nodes[sid].placement_timeout
                attempts.setdefault(sid, []).append(self.attempt_of(job, limit))
        for sid, done in self.done_items.items():
            merged = attempts.setdefault(sid, []) + done
            attempts[sid] = sorted(merged, key=lambda a: a.number)
        steps = {
            sid: m.StepState(
                status=s.status,
                attempts=tuple(attempts.get(sid, ())),
                entered_at=s.entered_at,
                retry_at=s.retry_at,
                gate_result=Outcome(s.gate_result) if s.gate_result else None,
                gate_reason=s.gate_reason,
                retry_base=s.retry_base,
                user_skipped=s.user_skipped,
                items=s.item_count,
                item_marks=fan_out.marks_of(s.item_marks),
            )
            for sid, s in self.steps.items()
        }
        cancel = None
        if self.ex.cancel_mode:
            cancel = m.CancelRequest(
                mode=m.CancelMode(self.ex.cancel_mode),
                requested_at=self.ex.cancel_requested_at or self.now,
                reason=self.ex.cancel_reason or "cancelled",
            )
        return m.ExecutionState(
            status=self.ex.status,
            created_at=self.ex.created_at,
            started_at=self.ex.started_at,
            steps=steps,
            cancel=cancel,
            resumed_at=self.ex.resumed_at,
        )

    def full_steps(self) -> dict[str, Step]:
        """Every step with its outputs, read once, when a template first needs them (a
        partial run reads the steps it has not read for this only)."""
        if not self._outputs_loaded:
            self.settle()
            outputs = runs_store.step_outputs(self.session, self.ex.id)
            for sid, step in self.steps.items():
                if not step.outputs and outputs.get(sid):
                    self.steps[sid] = dataclasses.replace(step, outputs=outputs[sid])
            if not self.whole:
                self._others = {
                    s.step_id: dataclasses.replace(s, outputs=outputs.get(s.step_id) or {})
                    for s in runs_store.list_step_states(self.session, self.ex.id)
                }
            self._outputs_loaded = True
        if self._others is None:
            return self.steps
        merged = dict(self._others)
        for sid, step in self.steps.items():
            known = merged.get(sid)
            merged[sid] = (
                step
                if known is None or step.outputs
                else dataclasses.replace(step, outputs=known.outputs)
            )
        return merged

    def server_facts(self) -> ServerFacts:
        """What templates need from the server; secret names are read once per reconcile and
        only when something is rendered."""
        if self._server_facts is None:
            self._server_facts = self.settings.server_facts(self.session)
        return self._server_facts

    # -- writing -------------------------------------------------------------------------

    def event(self, event: events.Event) -> None:
        self.events.append(events.Stamped(self.ex.id, self.now, event))

    def engine_log(self, message: str, step: str | None = None) -> None:
        self.logs.append(
            {"execution_id": self.ex.id, "step_id": step, "at": self.now, "message": message}
        )
        self.event(events.EngineNote(step, message))

    def set_step(self, step_id: str, **values: Any) -> None:
        """Change a step, here and (with the next `settle` or `flush`) in the database."""
        self.pending.set_step(self.ex.id, step_id, dict(values))
        if "status" in values:
            values["status"] = StepStatus(values["status"])
        self.steps[step_id] = dataclasses.replace(self.steps[step_id], **values)

    def settle(self) -> None:
        """Send the step updates and new jobs held so far: before a statement that reads (or
        writes otherwise) steps or jobs, and before handing this run to code that may."""
        writes_store.write(self.session, self.pending)

    def apply(self, action: m.Action) -> None:
        """Write one of the engine's actions (see ``engine.reducer`` for what each means)."""
        if not isinstance(action, m.Log | m.SetStepStatus | m.StartJob):
            self.settle()  # the hot path's actions hold their writes; the others settle
        match action:
            case m.Log():
                self._on_log(action)
            case m.SetExecutionStatus():
                self._on_set_execution_status(action)
            case m.SetStepStatus():
                self._on_set_step_status(action)
            case m.StartJob():
                self._on_start_job(action)
            case m.CancelJob():
                self._on_cancel_job(action)
            case m.ExpandItems():
                self._on_expand_items(action)
            case m.EvaluateCondition():
                self._on_evaluate_condition(action)
            case m.OpenApproval():
                self._on_open_approval(action)
            case m.StartChildWorkflow():
                self._on_start_child_workflow(action)
            case _:
                assert_never(action)

    def _on_log(self, a: m.Log) -> None:
        self.engine_log(a.message, a.step)
        self._release_held()

    def _release_held(self) -> None:
        held, self.held = self.held, []
        for message, step in held:
            self.engine_log(message, step)

    def _on_set_execution_status(self, a: m.SetExecutionStatus) -> None:
        values: dict[str, Any] = {"status": a.status.value, "status_reason": a.reason}
        if a.status == ExecutionStatus.COMPLETED and self.ex.definition.get("outputs"):
            try:
                values["outputs"] = run_outputs(self.ex, self.full_steps(), self.server_facts())
            except TemplateError as exc:
                # Followers read the outputs: a run whose outputs cannot be rendered did not
                # deliver what it promised.
                a = m.SetExecutionStatus(ExecutionStatus.FAILED, exc.message)
                values = {"status": a.status.value, "status_reason": a.reason}
                self.engine_log(f"execution failed: {exc.message}")
        if a.status == ExecutionStatus.RUNNING and self.ex.started_at is None:
            values["started_at"] = self.now
        if a.status.terminal:
            values["ended_at"] = self.now
            self.changes.finished.add(self.ex.id)
        runs_store.update_execution(self.session, self.ex.id, **values)
        self.ex = dataclasses.replace(
            self.ex,
            status=a.status,
            status_reason=a.reason,
            started_at=values.get("started_at", self.ex.started_at),
            ended_at=values.get("ended_at", self.ex.ended_at),
        )
        self.event(events.ExecutionChanged(a.status, a.reason))
        if a.status.terminal:
            # In the transaction that ends the run: the messages are kept or lost with it.
            queue_run_end(self)

    def _on_set_step_status(self, a: m.SetStepStatus) -> None:
        step = self.steps[a.step]
        if step.type == StepType.APPROVAL and a.status in (
            StepStatus.APPROVED,
            StepStatus.REJECTED,
        ):
            self.settle()
            close_gate(self, a.step, a.status, a.reason)
            step = self.steps[a.step]
        values: dict[str, Any] = {"status": a.status.value, "entered_at": self.now}
        values["retry_at"] = a.retry_at
        if a.status == StepStatus.RUNNING and step.started_at is None:
            values["started_at"] = self.now
        node = shape_of(self.graph).nodes[a.step]
        if a.status.terminal and node.fan_out is not None:
            values["ended_at"] = self.now
            if step.item_count is not None:
                values["outputs"] = self._gathered(a.step, a.status)
            values["error"] = a.reason if a.status != StepStatus.SUCCEEDED else None
        elif a.status.terminal:
            values["ended_at"] = self.now
            last = self._last_job(a.step)
            if last is not None and step.type not in (StepType.CONDITION, StepType.APPROVAL):
                known = self.ended.outputs.get(last.id)
                if known is None:
                    self.settle()
                    known = jobs_store.job_outputs(self.session, last.id)
                values["outputs"] = known
                values["error"] = last.error if a.status != StepStatus.SUCCEEDED else None
            elif a.status in (StepStatus.FAILED, StepStatus.REJECTED, StepStatus.SKIPPED):
                values["error"] = a.reason or step.error
        self.set_step(a.step, **values)
        self.event(events.StepChanged(a.step, a.status, a.reason))
        if step.type == StepType.WORKFLOW and a.status == StepStatus.CANCELLED:
            self.settle()
            cancel_child(self, a.step)

    def _gathered(self, step_id: str, status: StepStatus) -> dict[str, Any]:
        self.settle()
        step = self.steps[step_id]
        if step.items is None:
            step = dataclasses.replace(
                step, items=runs_store.step_items(self.session, self.ex.id, step_id)
            )
        state = dataclasses.replace(self.state().steps[step_id], status=status)
        return fan_out.gathered_outputs(
            self.session,
            self.ex,
            step,
            self.graph.step(step_id),
            state,
            self.now,
            lost_limit=self.settings.agent_lost_limit,
            stopped=self.ex.cancel_mode is not None,
        )

    def _on_expand_items(self, a: m.ExpandItems) -> None:
        """Record the step's list (or why it cannot be made); a recorded one is kept."""
        self.new_facts = True  # the items (or the failure) are news to the engine
        step = self.steps[a.step]
        values: dict[str, Any] = {
            "status": StepStatus.RUNNING.value,
            "entered_at": self.now,
            "retry_at": None,
            "gate_result": None,
            "gate_reason": None,
        }
        if step.started_at is None:
            values["started_at"] = self.now
        if step.item_count is None:
            raw = step_definition(self.ex, a.step)
            try:
                context = template_context(
                    self.ex, self.full_steps(), self.server_facts(), secrets_for="a for_each list"
                )
                items = fan_out.work_out(raw, context)
            except (TemplateError, FanOutError) as exc:
                reason = fan_out.expansion_failure(exc)
                values.update(gate_result=Outcome.FAILED.value, gate_reason=reason)
                self.held.append((f"step {a.step}: {reason}", a.step))
            else:
                values.update(items=items, item_count=len(items))
                self.held.append(
                    (f"step {a.step} fans out to {counted(len(items), 'item')}", a.step)
                )
        self.set_step(a.step, **values)
        self.event(events.StepChanged(a.step, StepStatus.RUNNING, ""))

    def _item_names(self, step_id: str, item: int) -> dict[str, Any]:
        step = self.steps[step_id]
        if step.items is None:  # read once per reconcile, when its first job is rendered
            self.settle()
            items = runs_store.step_items(self.session, self.ex.id, step_id) or []
            step = dataclasses.replace(step, items=items)
            self.steps[step_id] = step
        return fan_out.item_names(step_definition(self.ex, step_id), step.items or [], item)

    def _note_job(self, job: Job) -> None:
        self.jobs[(job.step_id, job.attempt)] = job
        last = self.last_jobs.get(job.step_id)
        if last is None or job.attempt >= last.attempt:
            self.last_jobs[job.step_id] = job

    def _last_job(self, step_id: str) -> Job | None:
        return self.last_jobs.get(step_id)

    def _on_start_job(self, a: m.StartJob) -> None:
        node = self.graph.step(a.step)
        raw = step_definition(self.ex, a.step)
        pool, labels = agent_placement(self.ex.definition, raw)
        job_id = new_id()
        values: dict[str, Any] = {
            "id": job_id,
            "execution_id": self.ex.id,
            "step_id": a.step,
            "attempt": a.attempt,
            "type": node.type.value,
            "status": JobStatus.PENDING.value,
            "pool": pool,
            "labels": labels,
            "timeout": node.timeout,
            "created_at": self.now,
            "item": a.item,
        }
        try:
            item = None if a.item is None else self._item_names(a.step, a.item)
            # Outputs and secret names are read only when a template may use them.
            if needs_outputs(node.type, raw):
                facts = self.server_facts()
                config = job_config(self.ex, node.type, raw, self.full_steps(), facts, item)
            else:
                plain = ServerFacts(
                    channels=self.settings.channels, public_url=self.settings.public_url
                )
                config = job_config(self.ex, node.type, raw, self.steps, plain)
            check_usable(self.session, node.type.value, config)
            values["spec"] = {
                "config": config,
                "bundle": self.ex.bundle_digest,
                "inputs": job_inputs(node.type, raw),
            }
            self.changes.jobs_queued = True
            self.changes.queued_jobs[job_id] = pool
        except (TemplateError, ConnectionUnusable) as exc:
            # The attempt fails before any agent sees it; retrying cannot fix a template, nor
            # a connection that is missing or disabled.
            self.new_facts = True
            values.update(
                status=JobStatus.FAILED.value,
                ended_at=self.now,
                error=exc.message,
                retryable=False,
                spec={},
            )
            self.engine_log(f"step {a.step}: {exc.message}", a.step)
        self.pending.jobs.append(values)
        self._note_job(jobs_store.Job.from_values(values))
        step = self.steps[a.step]
        if step.status != StepStatus.RUNNING:
            extra = {"started_at": self.now} if step.started_at is None else {}
            self.set_step(
                a.step, status=StepStatus.RUNNING.value, entered_at=self.now, retry_at=None, **extra
            )
            self.event(events.StepChanged(a.step, StepStatus.RUNNING, ""))
        self.event(
            events.JobChanged(a.step, a.attempt, job_id, JobStatus(values["status"]), item=a.item)
        )

    def _on_cancel_job(self, a: m.CancelJob) -> None:
        job = self.jobs.get((a.step, a.attempt))
        if job is None or job.status.terminal:
            return
        if not a.force and not a.graceful_stop and job.status != JobStatus.PENDING:
            return  # a graceful cancel withdraws only work no agent has picked up
        ended = jobs_store.request_cancel(
            self.session,
            job.id,
            as_status=a.as_status,
            force=a.force,
            reason=a.reason,
            now=self.now,
        )
        if ended is not None:
            self.new_facts = True
            self._note_job(ended)
            self.event(events.JobChanged(a.step, a.attempt, job.id, ended.status))
        else:
            self._note_job(
                dataclasses.replace(
                    job, cancel_requested=True, cancel_force=a.force, cancel_as=a.as_status.value
                )
            )
            self.changes.cancelled_jobs.add(job.id)

    def _on_evaluate_condition(self, a: m.EvaluateCondition) -> None:
        self.new_facts = True  # the answer is news to the engine
        raw = step_definition(self.ex, a.step)
        expr = str(raw.get("if", ""))
        if self.steps[a.step].status != StepStatus.RUNNING:
            self.set_step(
                a.step, status=StepStatus.RUNNING.value, entered_at=self.now, started_at=self.now
            )
        try:
            context = template_context(
                self.ex, self.full_steps(), self.server_facts(), secrets_for="a condition"
            )
            verdict = evaluate_condition(expr, context)
        except TemplateError as exc:
            self.set_step(
                a.step, gate_result=Outcome.FAILED.value, gate_reason=exc.message, error=exc.message
            )
            # Held: the engine's "evaluating its condition" line comes first.
            self.held.append((f"condition {a.step}: {exc.message}", a.step))
            return
        reads = ", ".join(f"{k}={v!r}" for k, v in verdict.reads.items()) or "nothing"
        self.held.append(
            (f"condition {a.step}: {expr} read {reads} -> {str(verdict.result).lower()}", a.step)
        )
        self.set_step(
            a.step,
            gate_result=(Outcome.TRUE if verdict.result else Outcome.FALSE).value,
            outputs={"result": verdict.result},
        )

    def _on_open_approval(self, a: m.OpenApproval) -> None:
        self.new_facts = True  # the gate's clock starts now: the engine arms its timeout
        if self.steps[a.step].status != StepStatus.WAITING:
            self.set_step(
                a.step,
                status=StepStatus.WAITING.value,
                entered_at=self.now,
                started_at=self.steps[a.step].started_at or self.now,
                gate_result=None,
                gate_reason=None,
            )
            self.event(events.StepChanged(a.step, StepStatus.WAITING, "approval opened"))
        gate = open_gate(self, a.step)
        self.event(events.ApprovalOpened(a.step, gate))

    def _on_start_child_workflow(self, a: m.StartChildWorkflow) -> None:
        self.new_facts = True  # the step may have its answer at once (failed, or wait: false)
        start_child(self, a.step, self.settings.chain_depth)

    def flush(self) -> None:
        """Send every write held: step updates, new jobs, engine log lines and events (one
        statement on PostgreSQL, see `writes_store`)."""
        self._release_held()
        self.pending.engine_log.extend(self.logs)
        self.pending.events.extend(events.row(stamped) for stamped in self.events)
        writes_store.write(self.session, self.pending)
        if self.events:
            self.changes.executions.add(self.ex.id)
        self.logs.clear()
        self.events.clear()


def execution_state(
    session: Session, execution: Execution, now: float
) -> tuple[m.Graph, m.ExecutionState]:
    """The graph and the engine's view of an execution, for manual control."""
    run = _Run(session, execution, now, RunSettings())
    return run.graph, run.state()


def reconcile(
    session: Session,
    execution_id: str,
    now: float,
    *,
    admit: bool = False,
    settings: RunSettings | None = None,
    locked: Execution | None = None,
    ended: Ended | None = None,
) -> Changes:
    """Bring one execution up to date with the engine; the caller holds the transaction.

    A PENDING execution is waiting for admission (its workflow's concurrency policy) and is
    left alone unless ``admit`` says it was just admitted, or someone cancelled it.

    With ``ended.steps`` (the steps whose jobs just started or ended) the reconcile reads only
    those steps, the steps that need them and the counts kept with the execution, and decides
    with ``engine.advance``; it reads the whole execution and calls ``decide`` when ``advance``
    cannot decide from that (see its docstring), when the execution's timer is due, and for
    every other reconcile (a cancel, a person's retry, a gate's answer, a timer, a restart),
    which also counts the kept counts afresh.
    """
    # ``locked``: the caller already holds the row lock and has this row (unchanged since).
    execution = locked if locked is not None else runs_store.lock_execution(session, execution_id)
    early = execution.status.terminal or (
        execution.status == ExecutionStatus.PENDING and not (admit or execution.cancel_mode)
    )
    if early and ended is not None and ended.events:
        events.write(session, ended.events)
    if execution.status.terminal:
        if execution.cancel_cleanup:
            return advance_cleanup(
                session, execution, now, (settings or RunSettings()).server_facts(session)
            )
        return Changes()
    if execution.status == ExecutionStatus.PENDING and not (admit or execution.cancel_mode):
        return Changes()
    settings = settings or RunSettings()
    graph = graph_of(execution)
    news = ended.steps if ended is not None else set()
    partial = bool(news) and _may_advance(session, execution, graph, now)
    steps = successors(graph, news) if partial else None
    run = _Run(session, execution, now, settings, ended, steps)
    # The jobs' end events go first, in the same statement as the reconcile's own.
    run.events.extend(run.ended.events)
    decision = m.Decision(actions=())
    for _ in range(MAX_ROUNDS):
        try:
            decision = _decide(run, now)
        except ValueError as exc:  # a state the engine refuses: end the run, loudly
            log.exception("engine refused the state of execution %s", execution_id)
            run.apply(m.SetExecutionStatus(ExecutionStatus.ERROR, f"engine error: {exc}"))
            decision = m.Decision(actions=())
            break
        if not decision.actions:
            break
        run.new_facts = False
        for action in decision.actions:
            run.apply(action)
        if not run.new_facts:
            # One decision works out every consequence of what it knew; asking again is
            # needed only when applying it produced facts it could not know (a condition's
            # answer, a job that failed before any agent saw it, a withdrawn attempt, the
            # moment a gate opened).
            break
    else:  # pragma: no cover - an engine bug; fail the run loudly rather than spin
        run.apply(m.SetExecutionStatus(ExecutionStatus.ERROR, "engine did not settle"))
        decision = m.Decision(actions=())
    wake = None if run.ex.status.terminal else decision.wake_at
    if run.whole:
        if wake is not None or can_wake(graph):  # else no timer of it exists to clear
            runs_store.set_timer(session, EXECUTION_TIMER, execution_id, wake)
    elif wake is not None:
        # ``advance`` saw only some steps' due times: the timer only moves earlier here, and
        # the whole reconcile it brings about sets it exactly.
        runs_store.lower_timer(session, EXECUTION_TIMER, execution_id, wake)
    run.changes.note_timer(wake)
    run.write_counts()
    run.flush()
    if run.ex.status.terminal and run.ex.cancel_cleanup:
        run.changes.merge(advance_cleanup(session, run.ex, now, run.server_facts()))
    return run.changes


def _may_advance(session: Session, execution: Execution, graph: m.Graph, now: float) -> bool:
    """Whether a reconcile of some steps' news may go through ``engine.advance``: a run
    going on, without a cancel or a failure, whose counts are kept and whose timer (if its
    graph has any) is not due. Else ``advance`` would decline, or miss what fell due."""
    if execution.status not in (ExecutionStatus.RUNNING, ExecutionStatus.PAUSED):
        return False
    if execution.cancel_mode or execution.steps_failed != 0 or execution.steps_active is None:
        return False
    if not can_wake(graph):
        return True
    due = runs_store.timer_due(session, EXECUTION_TIMER, execution.id)
    return due is None or due > now


def _decide(run: _Run, now: float) -> m.Decision:
    """The engine's next decision: ``advance`` from the steps read, while it can decide
    from them, else ``decide`` over the whole execution (read whole for it, once)."""
    limit = run.settings.agent_lost_limit
    while not run.whole:
        part = run.partial()
        result = None if part is None else advance(run.graph, part, now, agent_lost_limit=limit)
        if isinstance(result, m.Decision):
            return result
        if isinstance(result, Need):
            run.read(result.steps)
        else:
            run.read_whole()
    return decide(run.graph, run.state(), now, agent_lost_limit=limit)


# Work that follows a reconcile in its transaction (see `Reconciler.follow`).
Follower = Callable[[Transaction, Changes], None]


class Reconciler:
    """``reconcile`` as a service: the server's settings and clock bound, the transaction
    handed in; and when an execution ends, the queued executions of its workflow that may
    start now (its concurrency policy) are admitted and reconciled in the same transaction."""

    def __init__(self, settings: RunSettings, clock: Callable[[], float]) -> None:
        self.settings = settings
        self.clock = clock
        self.followers: list[Follower] = []

    def follow(self, follower: Follower) -> None:
        """Call ``follower`` after every reconcile, in its transaction, with what it changed
        (child runs of workflow steps, workflow triggers of runs that ended)."""
        self.followers.append(follower)

    def reconcile(
        self,
        tx: Transaction,
        execution_id: str,
        *,
        admit: bool = False,
        locked: Execution | None = None,
        ended: Ended | None = None,
    ) -> None:
        """Bring ``execution_id`` up to date (see `reconcile`) inside ``tx``."""
        result = reconcile(
            tx.session,
            execution_id,
            self.clock(),
            admit=admit,
            locked=locked,
            ended=ended,
            settings=self.settings,
        )
        tx.changes.merge(result)
        for finished in result.finished:
            for queued in admission.admit_queued(tx.session, finished):
                self.reconcile(tx, queued, admit=True)
        for follower in self.followers:
            follower(tx, result)
