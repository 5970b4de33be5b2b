"""The runtime's entry points: start and cancel executions, and the agents' claim / start /
heartbeat / log / finish path.

Every method is one transaction: it changes state, reconciles the executions it touched under
their row locks, commits, and only then publishes wake-ups. The same methods serve the local
agent (called in-process) and, through the API, remote agents.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, TypeVar

from sqlalchemy.orm import Session

from opsflow.auth.masking import Masker
from opsflow.auth.secrets import SecretVault
from opsflow.engine import control
from opsflow.engine.model import CancelMode, ExecutionState, Graph, StepState
from opsflow.errors import Conflict, InvalidInput, NotFound, StaleReport
from opsflow.runtime import approvals
from opsflow.runtime.approvals import Responder
from opsflow.runtime.bus import EventBus
from opsflow.runtime.changes import Changes
from opsflow.runtime.reconciler import RunSettings, execution_state, new_id, reconcile
from opsflow.runtime.secrets import VALUES_KEY, referenced, substitute
from opsflow.status import ExecutionStatus, JobStatus, StepStatus
from opsflow.store import bundles as bundles_store
from opsflow.store import jobs as jobs_store
from opsflow.store import logs as logs_store
from opsflow.store import runs as runs_store
from opsflow.store import users as users_store
from opsflow.store.approvals import Approval
from opsflow.store.db import Database
from opsflow.store.jobs import CancelNotice, Job
from opsflow.store.logs import LogLine
from opsflow.store.runs import Execution

T = TypeVar("T")
log = logging.getLogger(__name__)


@dataclass(frozen=True)
class JobReport:
    """How one job ended, as its agent reports it, with the last log lines."""

    job: Job
    token: str
    status: JobStatus
    outputs: dict[str, Any]
    error: str | None = None
    retryable: bool = True
    exit_code: int | None = None
    lines: list[LogLine] = field(default_factory=list)
    artifacts: dict[str, bytes] = field(default_factory=dict)


@dataclass(frozen=True)
class RunRequest:
    """Everything needed to start one execution of a pinned definition."""

    workflow_id: str
    definition: dict[str, Any]
    params: dict[str, Any]
    version: int | None = None
    bundle_digest: str | None = None
    test_run: bool = False
    trigger_type: str = "manual"
    trigger: dict[str, Any] | None = None
    started_by: str | None = None


class Runtime:
    """Applies the engine durably; any number of these may share one database."""

    def __init__(
        self,
        db: Database,
        bus: EventBus | None = None,
        *,
        lease_seconds: float = 15.0,
        clock: Callable[[], float] = time.time,
        notify_channels: Mapping[str, list[str]] | None = None,
        vault: SecretVault | None = None,
        server_url: str | None = None,
    ) -> None:
        self.db = db
        self.server_url = server_url
        self.vault = vault
        self.notify_channels = dict(notify_channels or {})
        self._maskers: dict[str, Masker] = {}
        self.bus = bus or EventBus()
        self.lease_seconds = lease_seconds
        self.clock = clock

    # -- plumbing --------------------------------------------------------------------------

    def transact(self, fn: Callable[[Session, Changes], T]) -> T:
        """Run ``fn`` in one transaction, publish its changes after the commit.

        A transaction the database aborted to break a deadlock (or a SQLite lock wait that
        ran out) is run again from the start, a few times, before the error is let through.
        """
        for attempt in range(1, 4):
            changes = Changes()
            try:
                with self.db.session() as session:
                    result = fn(session, changes)
            except Exception as exc:
                if attempt < 3 and self.db.is_transient(exc):
                    log.warning("transaction aborted (%s); retrying", exc.__class__.__name__)
                    continue
                raise
            self.publish(changes)
            return result
        raise AssertionError("unreachable")

    def publish(self, changes: Changes) -> None:
        if changes.executions:
            self.bus.executions_changed(changes.executions)
        if changes.finished:
            self.bus.executions_finished(changes.finished)
        if changes.jobs_queued:
            self.bus.jobs_queued()
        if changes.cancelled_jobs:
            self.bus.cancel_requested(changes.cancelled_jobs)
        if changes.notifications:
            self.bus.notifications_queued()
        if changes.earliest_timer is not None:
            self.bus.timer_set(changes.earliest_timer)

    def _reconcile(
        self, session: Session, execution_id: str, changes: Changes, *, admit: bool = False
    ) -> None:
        now = self.clock()
        result = reconcile(
            session,
            execution_id,
            now,
            admit=admit,
            settings=RunSettings(
                channels=self.notify_channels,
                secret_names=self.vault.names if self.vault else None,
                server_url=self.server_url,
            ),
        )
        changes.merge(result)
        for finished in result.finished:
            self._admit_queued(session, finished, changes)

    # -- executions ------------------------------------------------------------------------

    def start_execution(self, request: RunRequest) -> str:
        """Create the execution and start what can start, in one commit."""

        def work(session: Session, changes: Changes) -> str:
            # Whole microseconds, so the time people see (ISO 8601) is the time stored and
            # filtering by it finds the run.
            now = round(self.clock(), 6)
            execution_id = new_id()
            steps = [
                {
                    "step_id": s["id"],
                    "position": i,
                    "type": s["type"],
                    "status": StepStatus.PENDING.value,
                    "retry_base": 0,
                    "user_skipped": False,
                    "outputs": {},
                }
                for i, s in enumerate(request.definition.get("steps", []))
            ]
            runs_store.insert_execution(
                session,
                {
                    "id": execution_id,
                    "workflow_id": request.workflow_id,
                    "version": request.version,
                    "test_run": request.test_run,
                    "definition": request.definition,
                    "bundle_digest": request.bundle_digest,
                    "status": ExecutionStatus.PENDING.value,
                    "status_reason": "",
                    "trigger_type": request.trigger_type,
                    "trigger": request.trigger or {},
                    "params": request.params,
                    "started_by": request.started_by,
                    "created_at": now,
                },
                steps,
            )
            runs_store.add_events(
                session,
                [
                    {
                        "execution_id": execution_id,
                        "at": now,
                        "kind": "execution",
                        "data": {"status": ExecutionStatus.PENDING.value, "reason": "created"},
                    }
                ],
            )
            changes.executions.add(execution_id)
            if self._admit(session, request, execution_id, changes):
                self._reconcile(session, execution_id, changes, admit=True)
            return execution_id

        return self.transact(work)

    def _admit(
        self, session: Session, request: RunRequest, execution_id: str, changes: Changes
    ) -> bool:
        """The workflow's concurrency policy: start now, or wait in its queue."""
        from opsflow.runtime.admission import admit_new

        return admit_new(session, request, execution_id, changes, self)

    def _admit_queued(self, session: Session, finished_id: str, changes: Changes) -> None:
        from opsflow.runtime.admission import admit_queued

        for execution_id in admit_queued(session, finished_id):
            self._reconcile(session, execution_id, changes, admit=True)

    def cancel(
        self, execution_id: str, *, mode: CancelMode, by: str | None, reason: str = ""
    ) -> Execution:
        """Record the cancel request and let the engine act on it at once.

        Idempotent, and requests only ever strengthen: graceful may become forced, and a
        request for cleanup stays even when a later one forces the cancel.
        """

        def work(session: Session, changes: Changes) -> Execution:
            ex = runs_store.lock_execution(session, execution_id)
            if ex.status.terminal:
                raise Conflict(f"execution {execution_id} already ended as {ex.status.value}")
            engine_mode = CancelMode.FORCE if mode == CancelMode.FORCE else CancelMode.GRACEFUL
            values: dict[str, Any] = {}
            if ex.cancel_mode is None:
                values.update(
                    cancel_mode=engine_mode.value,
                    cancel_requested_at=self.clock(),
                    cancel_reason=reason or (f"cancelled by {by}" if by else "cancelled"),
                    cancel_by=by,
                )
            elif engine_mode == CancelMode.FORCE and ex.cancel_mode != CancelMode.FORCE.value:
                values["cancel_mode"] = CancelMode.FORCE.value
            if mode == CancelMode.CLEANUP and not ex.cancel_cleanup:
                values["cancel_cleanup"] = True
            if values:
                runs_store.update_execution(session, execution_id, **values)
            self._reconcile(session, execution_id, changes)
            return runs_store.get_execution(session, execution_id)

        return self.transact(work)

    # -- people's decisions ------------------------------------------------------------------

    def respond(
        self,
        execution_id: str,
        step_id: str,
        *,
        user: str,
        approve: bool,
        note: str | None = None,
        via: str = "api",
    ) -> tuple[Approval, bool]:
        """Approve or reject a waiting gate; returns the gate and whether this answer decided it."""

        def work(session: Session, changes: Changes) -> tuple[Approval, bool]:
            who = Responder(user, frozenset(users_store.teams_of(session, user)))
            return approvals.respond(
                session,
                execution_id,
                step_id,
                who,
                approve=approve,
                note=note,
                via=via,
                now=self.clock(),
                reconcile=lambda: self._reconcile(session, execution_id, changes),
            )

        result = self.transact(work)
        return result

    def retry_step(
        self, execution_id: str, step_id: str, *, by: str, from_here: bool = False
    ) -> None:
        """Run a failed step again (and, ``from_here``, everything after it)."""
        verb = "retried" + (" from" if from_here else "")

        def change(graph: Graph, state: ExecutionState, now: float) -> dict[str, StepState]:
            return control.retry_step(graph, state, step_id, from_here, now=now)

        self._manual(execution_id, step_id, by, change, verb)

    def skip_step(self, execution_id: str, step_id: str, *, by: str) -> None:
        """Mark a failed step skipped by a person; downstream goes on as if it succeeded."""

        def change(graph: Graph, state: ExecutionState, now: float) -> dict[str, StepState]:
            return control.skip_step(graph, state, step_id, now=now)

        self._manual(execution_id, step_id, by, change, "skipped")

    def _manual(
        self,
        execution_id: str,
        step_id: str,
        by: str,
        change: Callable[[Graph, ExecutionState, float], dict[str, StepState]],
        verb: str,
    ) -> None:
        def work(session: Session, changes: Changes) -> None:
            now = self.clock()
            ex = runs_store.lock_execution(session, execution_id)
            graph, state = execution_state(session, ex, now)
            try:
                new_states = change(graph, state, now)
            except ValueError as exc:
                raise Conflict(str(exc)) from exc
            for sid, st in new_states.items():
                values: dict[str, Any] = {
                    "status": st.status.value,
                    "entered_at": now,
                    "retry_at": None,
                    "retry_base": st.retry_base,
                    "user_skipped": st.user_skipped,
                    "gate_result": st.gate_result.value if st.gate_result else None,
                    "gate_reason": st.gate_reason,
                }
                if st.status == StepStatus.PENDING:
                    values.update(ended_at=None, error=None, outputs={})
                elif st.status.terminal:
                    values["ended_at"] = now
                runs_store.update_step(session, execution_id, sid, **values)
                runs_store.add_events(
                    session,
                    [
                        {
                            "execution_id": execution_id,
                            "at": now,
                            "kind": "step",
                            "data": {
                                "step": sid,
                                "status": st.status.value,
                                "reason": f"{verb} by {by}",
                            },
                        }
                    ],
                )
            update: dict[str, Any] = {"resumed_at": now}
            if ex.status.terminal:
                update.update(
                    status=ExecutionStatus.RUNNING.value,
                    ended_at=None,
                    status_reason=f"resumed: {by} {verb} step {step_id}",
                )
                runs_store.add_events(
                    session,
                    [
                        {
                            "execution_id": execution_id,
                            "at": now,
                            "kind": "execution",
                            "data": {
                                "status": ExecutionStatus.RUNNING.value,
                                "reason": f"resumed: {by} {verb} step {step_id}",
                            },
                        }
                    ],
                )
            runs_store.update_execution(session, execution_id, **update)
            others = sorted(set(new_states) - {step_id})
            message = f"{by} {verb} step {step_id}" + (
                f"; reset {', '.join(others)}" if others else ""
            )
            runs_store.add_engine_log(
                session,
                [{"execution_id": execution_id, "step_id": step_id, "at": now, "message": message}],
            )
            changes.executions.add(execution_id)
            self._reconcile(session, execution_id, changes)

        self.transact(work)

    def reconcile_all_active(self) -> int:
        """At start-up: bring every unfinished execution up to date (cheap, and it makes a
        restart independent of which wake-ups were lost with the old process)."""
        ids = self.transact(lambda s, c: runs_store.active_execution_ids(s))
        for execution_id in ids:
            self.transact(lambda s, c, eid=execution_id: self._reconcile(s, eid, c))  # type: ignore[misc]
        return len(ids)

    # -- timers and leases -----------------------------------------------------------------

    def fire_due_timers(self) -> int:
        now = self.clock()
        with self.db.read() as session:
            due = runs_store.due_timers(session, now)
        fired = 0
        for kind, key, _ in due:

            def work(session: Session, changes: Changes, kind: str = kind, key: str = key) -> bool:
                # Lock order everywhere: the execution first, then its rows (timer, jobs).
                runs_store.lock_execution(session, key)
                if not runs_store.take_timer(session, kind, key, self.clock()):
                    return False  # another replica fired it, or it moved
                self._reconcile(session, key, changes)
                return True

            fired += int(self.transact(work))
        return fired

    def expire_leases(self) -> int:
        """Jobs whose agent stopped heartbeating become failed attempts ("agent lost")."""
        now = self.clock()
        with self.db.read() as session:
            expired = jobs_store.expired_leases(session, now)
        count = 0
        for job_id, execution_id in expired:

            def work(
                session: Session, changes: Changes, job_id: str = job_id, eid: str = execution_id
            ) -> bool:
                runs_store.lock_execution(session, eid)
                if not jobs_store.fail_lost_job(session, job_id, self.clock()):
                    return False
                self._reconcile(session, eid, changes)
                return True

            count += int(self.transact(work))
        return count

    def next_wake(self) -> float | None:
        with self.db.read() as session:
            times = [
                t
                for t in (
                    runs_store.next_timer_due(session),
                    jobs_store.next_lease_expiry(session),
                )
                if t is not None
            ]
        return min(times) if times else None

    # -- the agent path --------------------------------------------------------------------

    def claim(
        self, *, agent_id: str, pools: list[str], labels: dict[str, str], limit: int
    ) -> list[Job]:
        """Lease jobs to an agent. The copies handed over carry the secrets their specs refer
        to, decrypted, and the values to mask; the stored specs keep placeholders."""
        if limit <= 0:
            return []

        def work(session: Session, changes: Changes) -> list[Job]:
            jobs = jobs_store.claim_jobs(
                session,
                agent_id=agent_id,
                pools=pools,
                labels=labels,
                limit=limit,
                lease_seconds=self.lease_seconds,
                now=self.clock(),
            )
            return [self._with_secrets(session, job) for job in jobs]

        return self.transact(work)

    def _with_secrets(self, session: Session, job: Job) -> Job:
        names = referenced(job.spec)
        if not names:
            return job
        if self.vault is None:
            raise InvalidInput("this server has no secret store, but the job refers to secrets")
        values = self.vault.reveal(session, sorted(names))
        spec = substitute(job.spec, values)
        spec[VALUES_KEY] = sorted(values.values())
        return dataclasses.replace(job, spec=spec)

    def _masked_lines(
        self,
        session: Session,
        job_id: str,
        lines: list[LogLine],
        spec: Mapping[str, Any] | None = None,
    ) -> list[LogLine]:
        """Mask again on the server: an agent's own masking is not to be relied on alone."""
        masker = self.masker_for(session, job_id, spec) if lines else None
        if masker is None:
            return lines
        return [dataclasses.replace(line, text=masker.mask(line.text)) for line in lines]

    def masker_for(
        self, session: Session, job_id: str, spec: Mapping[str, Any] | None = None
    ) -> Masker | None:
        """The masker for a job's secrets (server-side, for what its agent sends back).

        ``spec`` is the claimed copy when the caller has it (the local agent's reports):
        it carries the values, so no read is needed; otherwise the stored spec says which
        secrets the job got.
        """
        cached = self._maskers.get(job_id)
        if cached is not None:
            return cached
        if spec is not None and VALUES_KEY in spec:
            return Masker(spec[VALUES_KEY])
        if spec is not None and not referenced(spec):
            return None
        spec = jobs_store.get_job(session, job_id).spec
        names = referenced(spec)
        if not names or self.vault is None:
            return None
        masker = Masker(self.vault.reveal(session, sorted(names)).values())
        if len(self._maskers) > 256:
            self._maskers.clear()
        self._maskers[job_id] = masker
        return masker

    def start_job(self, job: Job, token: str) -> CancelNotice:
        def work(session: Session, changes: Changes) -> CancelNotice:
            if job.timeout is not None:
                # Lock order is always execution, then job; the reconcile below arms the timeout.
                runs_store.lock_execution(session, job.execution_id)
            notice = jobs_store.start_job(
                session, job.id, token, now=self.clock(), lease_seconds=self.lease_seconds
            )
            if job.timeout is not None:
                self._reconcile(session, job.execution_id, changes)
            runs_store.add_events(
                session,
                [
                    {
                        "execution_id": job.execution_id,
                        "at": self.clock(),
                        "kind": "job",
                        "data": {
                            "step": job.step_id,
                            "attempt": job.attempt,
                            "job_id": job.id,
                            "status": JobStatus.RUNNING.value,
                        },
                    }
                ],
            )
            changes.executions.add(job.execution_id)
            return notice

        return self.transact(work)

    def fetch_artifact(self, job: Job, token: str, step_id: str, name: str) -> bytes:
        """A file an earlier step of the same execution left (e.g. the plan to apply),
        for the agent that holds ``job``'s lease."""

        def work(session: Session, changes: Changes) -> bytes:
            jobs_store.heartbeat(
                session, job.id, token, now=self.clock(), lease_seconds=self.lease_seconds
            )
            digest = jobs_store.artifact_digest(session, job.execution_id, step_id, name)
            if digest is None:
                raise NotFound(
                    f"step {step_id!r} of execution {job.execution_id} left no {name!r}; "
                    "did it complete?"
                )
            return bundles_store.read_blob(session, digest)

        return self.transact(work)

    def heartbeat(self, job_id: str, token: str) -> CancelNotice:
        return self.transact(
            lambda s, c: jobs_store.heartbeat(
                s, job_id, token, now=self.clock(), lease_seconds=self.lease_seconds
            )
        )

    def append_logs(self, job: Job, token: str, lines: list[LogLine]) -> None:
        def work(session: Session, changes: Changes) -> None:
            if logs_store.append(
                session,
                job_id=job.id,
                token=token,
                execution_id=job.execution_id,
                step_id=job.step_id,
                lines=self._masked_lines(session, job.id, lines, job.spec),
            ):
                changes.executions.add(job.execution_id)

        self.transact(work)

    def finish_job(
        self,
        job: Job,
        token: str,
        *,
        status: JobStatus,
        outputs: dict[str, Any] | None = None,
        error: str | None = None,
        retryable: bool = True,
        exit_code: int | None = None,
        lines: Iterable[LogLine] = (),
    ) -> None:
        """The final report (with the last log lines) and the reconcile it causes, one commit."""
        report = JobReport(
            job=job,
            token=token,
            status=status,
            outputs=outputs or {},
            error=error,
            retryable=retryable,
            exit_code=exit_code,
            lines=list(lines),
        )
        (problem,) = self.finish_jobs([report])
        if problem is not None:
            raise problem

    def finish_jobs(self, reports: list[JobReport]) -> list[StaleReport | None]:
        """Several final reports in one transaction, each execution reconciled once.

        Agents hand in whatever finished while their previous report was being written, so
        under load one commit and one reconcile serve many jobs, and a lone job is still
        reported at once. A stale report (an old lease, an already ended job) is refused on
        its own without failing the others.
        """
        for report in reports:
            if not report.status.terminal:
                raise InvalidInput(
                    "a job ends as completed, failed, timeout or cancelled, "
                    f"not {report.status.value}"
                )

        def work(session: Session, changes: Changes) -> list[StaleReport | None]:
            results: list[StaleReport | None] = [None] * len(reports)
            touched: list[str] = []
            # Lock order: executions by id, then their jobs; so batches cannot deadlock.
            order = sorted(range(len(reports)), key=lambda i: reports[i].job.execution_id)
            for i in order:
                report = reports[i]
                job = report.job
                if job.execution_id not in touched:
                    runs_store.lock_execution(session, job.execution_id)
                    touched.append(job.execution_id)
                try:
                    # Both checks (log lease, end CAS) refuse before writing anything.
                    self._record_end(session, report)
                except StaleReport as exc:
                    results[i] = exc
                    continue
                changes.executions.add(job.execution_id)
            for execution_id in touched:
                self._reconcile(session, execution_id, changes)
            return results

        return self.transact(work)

    def _record_end(self, session: Session, report: JobReport) -> None:
        job = report.job
        masker = self.masker_for(session, job.id, job.spec)
        if report.lines:
            logs_store.append(
                session,
                job_id=job.id,
                token=report.token,
                execution_id=job.execution_id,
                step_id=job.step_id,
                lines=self._masked_lines(session, job.id, report.lines, job.spec),
            )
        outputs, error = report.outputs, report.error
        if masker is not None:
            outputs = masker.mask_value(outputs)
            error = masker.mask(error) if error else error
        stored = {
            name: bundles_store.store_blob(session, data) for name, data in report.artifacts.items()
        }
        ended_as = jobs_store.finish_job(
            session,
            job.id,
            report.token,
            artifacts=stored,
            status=report.status,
            now=self.clock(),
            outputs=outputs,
            error=error,
            retryable=report.retryable,
            exit_code=report.exit_code,
        )
        runs_store.add_events(
            session,
            [
                {
                    "execution_id": job.execution_id,
                    "at": self.clock(),
                    "kind": "job",
                    "data": {
                        "step": job.step_id,
                        "attempt": job.attempt,
                        "job_id": job.id,
                        "status": ended_as.value,
                        "error": error,
                    },
                }
            ],
        )
