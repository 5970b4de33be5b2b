"""The agents' side of the runtime: claim, start, heartbeat, ship logs, fetch artifacts and
report the end.

Each call is one transaction and a compare-and-set on the job's lease, so a report from an
agent whose lease has gone is refused. The reports' write also leases the jobs its reconciles
queued to the claims waiting in this process (`write_serving`), so a chain's next job is
leased in its predecessor's report transaction. After the claim an agent names a job by id,
lease token and epoch only (`JobRef`); execution, step and attempt come from the job's row. The
local agent reaches these through `agent_service` in-process, remote agents through the API.
Secrets are filled into the claimed copy of a job only, and everything an agent sends back is
masked again here before it is stored.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from sqlalchemy.orm import Session

from opsflow.agent.protocol import (
    CancelNotice,
    ConnectionGrant,
    JobRef,
    JobReport,
    LogBatch,
    LogLine,
)
from opsflow.auth.agent_tokens import ensure_live
from opsflow.auth.connections import ConnectionVault
from opsflow.auth.masking import Masker
from opsflow.auth.secrets import SecretVault
from opsflow.errors import InvalidInput, NotFound, OpsflowError, StaleReport, Unauthorized
from opsflow.runtime import events
from opsflow.runtime.connections import CONNECTION_KEY, named_connection
from opsflow.runtime.reconciler import Ended, Reconciler
from opsflow.runtime.secrets import VALUES_KEY, referenced, substitute
from opsflow.runtime.transaction import Transaction, Transactions
from opsflow.status import JobStatus
from opsflow.store import agents as agents_store
from opsflow.store import bundles as bundles_store
from opsflow.store import connections as connections_store
from opsflow.store import jobs as jobs_store
from opsflow.store import logs as logs_store
from opsflow.store import runs as runs_store
from opsflow.store import secrets as secrets_store
from opsflow.store.db import Database
from opsflow.store.jobs import Job, Lease
from opsflow.store.runs import Execution


@dataclass
class Handed:
    """What the jobs of each execution in a claim were handed so far: secret names and
    connection names, per execution id (grown as the claim hands out more)."""

    secrets: dict[str, set[str]]
    connections: dict[str, set[str]]


@dataclass(frozen=True, eq=False)
class WaitingClaim:
    """A claim of this process waiting for work (`AgentService.claim`), as a report's write
    sees it: whom the jobs its reconcile queued may be leased to in its own transaction
    (`AgentJobs.write_serving`). One object per wait: compared and hashed by identity."""

    agent_id: str
    pools: list[str]
    labels: dict[str, str]
    limit: int
    start: bool = False
    claim_id: str | None = None
    token_id: str | None = None  # a remote agent's token (None in-process)


class WaitingClaims(Protocol):
    """The waiting claims of this process, as a write takes them (any thread)."""

    def take(
        self, pools: set[str], eligible: Callable[[WaitingClaim], bool]
    ) -> WaitingClaim | None:
        """The longest-waiting claim for one of ``pools`` that ``eligible`` accepts, no longer
        waiting from now on: its answer is what the write leases to it (after the commit).
        None when there is none."""
        ...


# What a write leased to each waiting claim it took (or why it leased nothing to it).
Served = dict[WaitingClaim, list[Job] | OpsflowError]


class AgentJobs:
    """The claim / run / report path of the jobs agents run."""

    def __init__(
        self,
        db: Database,
        transactions: Transactions,
        reconciler: Reconciler,
        *,
        vault: SecretVault | None,
        connections: ConnectionVault | None = None,
        lease_seconds: float,
        clock: Callable[[], float],
    ) -> None:
        self.db = db
        self.transactions = transactions
        self.reconciler = reconciler
        self.vault = vault
        self.connections = connections
        self.lease_seconds = lease_seconds
        self.clock = clock
        self._maskers: dict[str, Masker | None] = {}
        # job id -> (epoch, lease) as a claim of this process handed it: the end report of
        # that lease reads no job row (execution, step and attempt of a job never change; the
        # end's compare-and-set on the lease token fences it, and a new claim has a new token).
        self._leased: dict[str, tuple[int, Lease]] = {}
        # agent id -> (when its presence row was last written, whether it was draining then).
        # Claims write it at most every ``presence_every`` seconds. It only spares a draining
        # agent's claims a claim statement: `jobs_store.claim_jobs` leases a draining agent
        # nothing from the drain's commit on, whatever this says.
        self._presence: dict[str, tuple[float, bool]] = {}
        self.presence_every = min(5.0, lease_seconds / 2)

    def register(
        self,
        *,
        agent_id: str,
        pools: list[str],
        labels: dict[str, str],
        version: str,
        hostname: str,
        token_id: str | None = None,
        concurrency: int | None = None,
    ) -> None:
        """Write an agent's presence row as it registers (who it is, where it runs, the agent
        token it used, its job slots). With ``token_id`` the same transaction checks the token
        is live: a registration authenticated just before its token's revocation gets
        `Unauthorized` rather than bringing the agent back online."""
        now = self.clock()

        def work(tx: Transaction) -> bool:
            if token_id is not None:
                ensure_live(tx.session, token_id)
            return agents_store.seen(
                tx.session,
                agent_id,
                pools=pools,
                labels=labels,
                now=now,
                version=version,
                hostname=hostname,
                token_id=token_id,
                concurrency=concurrency,
            )

        self._presence[agent_id] = (now, self.transactions.run(work))

    def _presence_due(self, agent_id: str, now: float) -> bool:
        last = self._presence.get(agent_id)
        return last is None or now - last[0] >= self.presence_every

    def claim(
        self,
        *,
        agent_id: str,
        pools: list[str],
        labels: dict[str, str],
        limit: int,
        token_id: str | None = None,
        claim_id: str | None = None,
        resent: bool = False,
        start: bool = False,
    ) -> list[Job]:
        """Lease jobs to an agent. The copies handed over carry the secrets their specs refer
        to, decrypted, and the values to mask (see `_with_secrets`); the stored specs keep
        placeholders. With ``token_id`` (a remote agent's token) the same transaction checks
        the token is live: a revoked one gets `Unauthorized` and no job.

        ``claim_id`` is the agent's id for this claim, the same on each try of it, stored on
        the jobs it leases. A try ``resent`` after one whose answer the agent never got (the
        replica died after its commit, the connection was cut) answers with the jobs that try
        leased, same lease token and epoch, lease renewed (`jobs_store.claimed_again`), and
        leases nothing new. Only a resent claim pays for that look.

        With ``start`` the jobs without a timeout are leased running, their start recorded in
        this transaction as `start_job` would (the agent sends no start for them)."""
        now = self.clock()
        due = self._presence_due(agent_id, now)
        if limit <= 0 and not due and token_id is None:
            return []

        def work(tx: Transaction) -> list[Job]:
            session = tx.session
            if token_id is not None:
                ensure_live(session, token_id)
            if due:
                draining = agents_store.seen(session, agent_id, pools=pools, labels=labels, now=now)
                self._presence[agent_id] = (now, draining)
            if claim_id is not None and resent:
                again = jobs_store.claimed_again(
                    session,
                    agent_id=agent_id,
                    claim_id=claim_id,
                    lease_seconds=self.lease_seconds,
                    now=self.clock(),
                )
                if again:
                    # Handed (and recorded as handed) at the first try already.
                    return [self._with_secrets(session, job, None) for job in again]
            last = self._presence.get(agent_id)  # gone when its token was revoked meanwhile
            if limit <= 0 or (last is not None and last[1]):
                return []  # a draining agent gets no more jobs
            jobs = jobs_store.claim_jobs(
                session,
                agent_id=agent_id,
                pools=pools,
                labels=labels,
                limit=limit,
                lease_seconds=self.lease_seconds,
                now=self.clock(),
                claim_id=claim_id,
                start=start,
            )
            if self.vault is None and any(referenced(job.spec) for job in jobs):
                raise InvalidInput(_NO_VAULT)
            return self._hand_over(tx, jobs)

        claimed = self.transactions.run(work)
        self._note_claimed(agent_id, claimed)
        return claimed

    def _hand_over(self, tx: Transaction, jobs: list[Job]) -> list[Job]:
        """The claimed copies of ``jobs``, just leased in ``tx``: the start of those leased
        running written as events, their secrets and connections filled in and recorded as
        handed (`_with_secrets`)."""
        session = tx.session
        started = [
            events.Stamped(
                job.execution_id,
                self.clock(),
                events.JobChanged(job.step_id, job.attempt, job.id, JobStatus.RUNNING),
            )
            for job in jobs
            if job.status == JobStatus.RUNNING
        ]
        if started:
            events.write(session, started)
            tx.changes.executions.update(event.execution_id for event in started)
        if not jobs:
            return []
        handed = self._handed(session, {job.execution_id for job in jobs})
        return [self._with_secrets(session, job, handed) for job in jobs]

    def _note_claimed(self, agent_id: str, claimed: list[Job]) -> None:
        """After the commit that leased ``claimed`` to ``agent_id``: remember each lease and
        its masker, so its reports read neither the job row nor the record of handed
        secrets."""
        if len(self._leased) > 4096:
            self._leased.clear()  # reports of the forgotten ones read their row instead
        for job in claimed:
            assert job.lease_token is not None
            self._leased[job.id] = (
                job.lease_epoch,
                Lease(
                    job.id,
                    job.execution_id,
                    job.step_id,
                    job.attempt,
                    job.timeout,
                    job.lease_token,
                    agent_id,
                ),
            )
            # What this job's agent sends back is masked with these values (none: nothing to
            # mask), so its reports need not read the record of handed secrets.
            values = job.spec.get(VALUES_KEY)
            self._remember(job.id, Masker(values) if values else None)

    def _serve_waiting(
        self, tx: Transaction, waiting: WaitingClaims, taken: list[WaitingClaim]
    ) -> Served:
        """Lease the jobs ``tx``'s reconcile queued to this process's waiting claims, in
        ``tx``, as each claim's own transaction would (`claim`): `jobs_store.claim_jobs` with
        the claim's pools, labels, limit, claim id and start flag, its token checked live, its
        secrets handed. Claims are taken longest-waiting first, only while a queued job is
        left, only of an agent whose presence this process wrote less than
        ``presence_every`` ago and which was not draining then (the claim's own rule: the
        others are left to their own claim transaction, which writes their presence row;
        writing it here would lock the agent's row after job rows, the reverse of a
        heartbeat's order). A drain since then is seen by `jobs_store.claim_jobs`, which
        leases that agent nothing. ``taken`` keeps what an earlier try of ``tx`` took.

        When every job ``tx`` queued was leased here, nobody else is woken for them (no
        `jobs_queued` wake-up, no NOTIFY): the other waiting claims would each run a claim
        transaction that finds nothing."""
        queued = dict(tx.changes.queued_jobs)
        served: Served = {}
        if not queued:
            return served
        session = tx.session
        now = self.clock()

        def eligible(claim: WaitingClaim) -> bool:
            last = self._presence.get(claim.agent_id)
            return last is not None and now - last[0] < self.presence_every and not last[1]

        left = set(queued)
        for i in range(len(taken) + len(queued) + 1):
            if not left:
                break
            if i < len(taken):
                claim = taken[i]
            else:
                found = waiting.take({queued[job_id] for job_id in left}, eligible)
                if found is None:
                    break
                taken.append(found)
                claim = found
            if claim.token_id is not None:
                try:
                    ensure_live(session, claim.token_id)
                except Unauthorized as exc:
                    served[claim] = exc
                    continue
            jobs = jobs_store.claim_jobs(
                session,
                agent_id=claim.agent_id,
                pools=claim.pools,
                labels=claim.labels,
                limit=claim.limit,
                lease_seconds=self.lease_seconds,
                now=self.clock(),
                claim_id=claim.claim_id,
                start=claim.start,
            )
            if self.vault is None and any(referenced(job.spec) for job in jobs):
                # Back to the queue in this transaction, as the claim's own would roll back.
                for job in jobs:
                    assert job.lease_token is not None
                    jobs_store.hand_back(session, job.id, job.lease_token)
                served[claim] = InvalidInput(_NO_VAULT)
                continue
            served[claim] = self._hand_over(tx, jobs)
            left -= {job.id for job in jobs}
        if not left:
            tx.changes.jobs_queued = False
        return served

    def _with_secrets(self, session: Session, job: Job, handed: Handed | None) -> Job:
        """The claimed copy of ``job``: its secrets substituted (and recorded as handed to it,
        with their versions), its connection's values under `CONNECTION_KEY` (recorded too),
        and under `VALUES_KEY` every value to mask in what it sends back: those of every
        secret and connection credential any job of the execution was handed so far, current
        and previous secret values alike. Upstream jobs are claimed before a downstream job
        exists, so a step that prints (or recombines) an upstream step's secret is masked for
        it too.

        ``handed`` None: the job is handed again, to the agent whose claim's answer was lost
        (see `claim`); what it was handed is already recorded, so read, not written."""
        if handed is None:
            handed = self._handed(session, {job.execution_id})
            record = False
        else:
            record = True
        names = referenced(job.spec)
        earlier = handed.secrets.setdefault(job.execution_id, set())
        earlier_connections = handed.connections.setdefault(job.execution_id, set())
        spec = dict(job.spec)
        if names and self.vault is not None:
            values, versions = self.vault.reveal_versions(session, names)
            if record:
                secrets_store.record_handed(session, job.execution_id, job.id, versions)
            spec = substitute(job.spec, values)
            earlier |= names  # the next job of this claim, in the same execution, sees them
        grant = self._grant(session, job, record=record)
        if grant is not None:
            spec[CONNECTION_KEY] = grant.model_dump()
            earlier_connections.add(grant.name)
        mask: set[str] = set()
        if earlier and self.vault is not None:
            mask |= self.vault.masking_values(session, earlier)
        if earlier_connections and self.connections is not None:
            mask |= self.connections.masking_values(session, earlier_connections)
        if not mask and spec == job.spec:
            return job
        if mask:
            spec[VALUES_KEY] = sorted(mask)
        return dataclasses.replace(job, spec=spec)

    def _handed(self, session: Session, executions: set[str]) -> Handed:
        """What the jobs of ``executions`` were handed so far (one statement when this server
        has both a secret store and connections)."""
        if self.vault is not None and self.connections is not None:
            return Handed(*connections_store.secrets_and_connections_handed(session, executions))
        return Handed(
            secrets_store.names_handed(session, executions) if self.vault else {},
            connections_store.names_handed(session, executions) if self.connections else {},
        )

    def _grant(self, session: Session, job: Job, *, record: bool) -> ConnectionGrant | None:
        """The connection the job's config names, decrypted, and recorded as handed to it.
        None when it names none, or when the connection was deleted or disabled since the job
        was made (the executor then fails the step saying so)."""
        name = named_connection((job.spec or {}).get("config") or {})
        if name is None or self.connections is None:
            return None
        meta = connections_store.find(session, name)
        if meta is None or not meta.enabled:
            return None
        revealed = self.connections.reveal(session, name)
        if record:
            connections_store.record_handed(session, job.execution_id, job.id, name)
        return ConnectionGrant(name=name, type=revealed.meta.type, values=revealed.values)

    def _remember(self, job_id: str, masker: Masker | None) -> None:
        if len(self._maskers) > 1024:
            self._maskers.clear()
        self._maskers[job_id] = masker

    def _masked_lines(self, session: Session, lease: Lease, lines: list[LogLine]) -> list[LogLine]:
        """Mask again on the server: an agent's own masking is not to be relied on alone."""
        masker = self.masker_for(session, lease.id, lease.execution_id) if lines else None
        if masker is None:
            return lines
        texts = [line.text for line in lines]
        masked = masker.mask_all(texts)
        if masked is texts:  # nothing to mask: the usual batch
            return lines
        return [
            line if text is line.text else line._replace(text=text)
            for line, text in zip(lines, masked, strict=True)
        ]

    def masker_for(self, session: Session, job_id: str, execution_id: str) -> Masker | None:
        """The masker for what a job's agent sends back (server-side): every value of every
        secret the execution's jobs were handed up to this job's claim, current and previous,
        and the credentials of every connection they were handed.
        Known from the claim when this process made it; otherwise read from the execution's
        record of handed secrets."""
        if job_id in self._maskers:
            return self._maskers[job_id]
        values: set[str] = set()
        handed = self._handed(session, {execution_id})
        names = handed.secrets.get(execution_id)
        if names and self.vault is not None:
            values |= self.vault.masking_values(session, names)
        used = handed.connections.get(execution_id)
        if used and self.connections is not None:
            values |= self.connections.masking_values(session, used)
        masker = Masker(values) if values else None
        self._remember(job_id, masker)
        return masker

    def _lease(self, session: Session, ref: JobRef) -> Lease:
        """The job ``ref`` names, if the lease it names is current; else `StaleReport`."""
        (found,) = jobs_store.leases(session, [(ref.job_id, ref.lease_token, ref.epoch)])
        if isinstance(found, StaleReport):
            raise found
        return found

    def start_job(self, ref: JobRef) -> CancelNotice:
        """dispatched -> running: the agent has begun the work. Idempotent for the same
        lease: the start of a job already running (its claim started it, e.g. an agent that
        sends a start anyway, or a start sent again after its answer was lost) renews the
        lease and answers its stop request, and writes no second start or event."""

        def work(tx: Transaction) -> CancelNotice:
            session = tx.session
            # The start's compare-and-set below refuses a lease that is not current (and
            # the transaction, lock included, is rolled back).
            lease = self._known_lease(ref) or self._lease(session, ref)
            if lease.timeout is not None:
                # Lock order is always execution, then job; the reconcile below arms the timeout.
                runs_store.lock_execution(session, lease.execution_id)
            notice, first = jobs_store.start_job(
                session,
                lease.id,
                ref.lease_token,
                now=self.clock(),
                lease_seconds=self.lease_seconds,
            )
            if not first:
                # Its first start wrote the event (and armed the timeout, if any).
                return _notice(notice)
            started = events.Stamped(
                lease.execution_id,
                self.clock(),
                events.JobChanged(lease.step_id, lease.attempt, lease.id, JobStatus.RUNNING),
            )
            if lease.timeout is not None:
                # The reconcile arms the timeout from this step alone, and writes the start's
                # event with its own, in one statement.
                news = Ended(events=[started], steps={lease.step_id})
                self.reconciler.reconcile(tx, lease.execution_id, ended=news)
            else:
                events.write(session, [started])
            tx.changes.executions.add(lease.execution_id)
            return _notice(notice)

        return self.transactions.run(work)

    def fetch_artifact(self, ref: JobRef, step_id: str, name: str) -> bytes:
        """A file an earlier step of the same execution left (e.g. the plan to apply),
        for the agent that holds ``ref``'s lease."""

        def work(tx: Transaction) -> bytes:
            session = tx.session
            lease = self._lease(session, ref)
            jobs_store.heartbeat(
                session,
                lease.id,
                ref.lease_token,
                now=self.clock(),
                lease_seconds=self.lease_seconds,
            )
            digest = jobs_store.artifact_digest(session, lease.execution_id, step_id, name)
            if digest is None:
                raise NotFound(
                    f"step {step_id!r} of execution {lease.execution_id} left no {name!r}; "
                    "did it complete?"
                )
            return bundles_store.read_blob(session, digest)

        return self.transactions.run(work)

    def read_bundle(self, digest: str, dest: Path) -> None:
        """Write the workflow files of bundle ``digest`` under ``dest``."""
        with self.db.session() as session:
            bundles_store.materialize_bundle(session, digest, dest)

    def declare_lost(self, agent_id: str) -> int:
        """Fail every attempt still leased to ``agent_id`` as "agent lost", now rather than when
        its lease expires: the agent says its previous process is gone (it restarted, and has
        stopped that process's leftovers). Each execution is reconciled, so retries start at
        once. Returns how many attempts were failed."""
        with self.db.read() as session:
            held = jobs_store.held_by_agent(session, agent_id)
        count = 0
        for job_id, execution_id in held:

            def work(tx: Transaction, job_id: str = job_id, eid: str = execution_id) -> bool:
                runs_store.lock_execution(tx.session, eid)  # lock order: execution, then job
                if not jobs_store.fail_abandoned_job(tx.session, job_id, agent_id, self.clock()):
                    return False
                tx.changes.executions.add(eid)
                self.reconciler.reconcile(tx, eid)
                return True

            count += int(self.transactions.run(work))
        return count

    def heartbeat(self, ref: JobRef) -> CancelNotice:
        """Extend the lease; the answer carries any stop request for the job. Like a claim,
        it also renews the agent's stored presence (``last_seen``), at most every
        ``presence_every`` seconds per agent: an agent busy with long jobs claims nothing,
        and must not look offline meanwhile."""

        def work(tx: Transaction) -> CancelNotice:
            lease = self._lease(tx.session, ref)
            now = self.clock()
            agent_id = lease.agent_id
            if agent_id is not None and self._presence_due(agent_id, now):
                draining = agents_store.touch(tx.session, agent_id, now)
                self._presence[agent_id] = (now, draining)
            return _notice(
                jobs_store.heartbeat(
                    tx.session,
                    ref.job_id,
                    ref.lease_token,
                    now=self.clock(),
                    lease_seconds=self.lease_seconds,
                )
            )

        return self.transactions.run(work)

    def leave(self, agent_id: str, *, token_id: str | None) -> None:
        """The agent stops: its presence row says it left (offline at once, for every
        replica). A claim or registration brings it back."""
        now = self.clock()

        def work(tx: Transaction) -> bool:
            return agents_store.leave(tx.session, agent_id, token_id=token_id, now=now)

        if self.transactions.run(work):
            self._presence.pop(agent_id, None)

    def forget(self, agent_ids: list[str]) -> None:
        """Drop what this process remembers of these agents' presence (their agent token was
        revoked: `agent_tokens.revoke_token` marked them left), so no report's write serves a
        claim of theirs as a recently seen agent's; a claim with the revoked token is refused
        before it writes presence (`ensure_live`)."""
        for agent_id in agent_ids:
            self._presence.pop(agent_id, None)

    def hand_back(self, ref: JobRef, *, unanswered: bool = False) -> None:
        """Queue a claimed job again (its agent is stopping: a job it had not started, or one
        still running when its ``--grace`` ran out, which it stopped), saying so in the engine
        log. ``unanswered``: the server hands it back itself, its claim abandoned before the
        answer went out (the agent never had it, even if the claim marked it running)."""

        def work(tx: Transaction) -> None:
            lease = self._lease(tx.session, ref)
            started = jobs_store.get_job(tx.session, lease.id).started_at is not None
            if jobs_store.hand_back(tx.session, lease.id, ref.lease_token):
                tx.changes.jobs_queued = True
                # Said in the engine log, or the step's wait for an agent looks unexplained.
                agent = f"agent {lease.agent_id}" if lease.agent_id else "its agent"
                if unanswered:
                    why = (
                        f"by the server: the claim of {agent} was abandoned before its "
                        f"answer (the agent went away or is stopping); attempt {lease.attempt} "
                        "never reached it"
                    )
                elif started:
                    why = f"by {agent} (draining; attempt {lease.attempt} was stopped unfinished)"
                else:
                    why = f"by {agent} (draining; attempt {lease.attempt} had not started)"
                runs_store.add_engine_log(
                    tx.session,
                    [
                        {
                            "execution_id": lease.execution_id,
                            "step_id": lease.step_id,
                            "at": self.clock(),
                            "message": f"step {lease.step_id}: job handed back {why}; "
                            "re-queued for another agent",
                        }
                    ],
                )
                tx.changes.executions.add(lease.execution_id)

        self.transactions.run(work)

    def append_logs(self, ref: JobRef, lines: list[LogLine]) -> None:
        def work(tx: Transaction) -> None:
            session = tx.session
            lease = self._lease(session, ref)
            if logs_store.append(
                session,
                job_id=lease.id,
                token=ref.lease_token,
                execution_id=lease.execution_id,
                step_id=lease.step_id,
                lines=self._masked_lines(session, lease, lines),
            ):
                tx.changes.executions.add(lease.execution_id)

        self.transactions.run(work)

    def finish_job(self, report: JobReport) -> None:
        """One final report; raises `StaleReport` when it is refused."""
        (problem,) = self.finish_jobs([report])
        if problem is not None:
            raise problem

    def finish_jobs(self, reports: list[JobReport]) -> list[StaleReport | None]:
        """Several final reports in one transaction, each execution reconciled once (see
        `write`)."""
        return self.write(reports, [])[0]

    def write(
        self, reports: list[JobReport], batches: list[LogBatch]
    ) -> tuple[list[StaleReport | None], list[OpsflowError | None]]:
        """Final reports and log batches, of any jobs, in one transaction (`write_serving`
        with no waiting claims). Returns what refused each report and each batch."""
        refused, refused_batches, _ = self.write_serving(reports, batches, None, [])
        return refused, refused_batches

    def write_serving(
        self,
        reports: list[JobReport],
        batches: list[LogBatch],
        waiting: WaitingClaims | None,
        taken: list[WaitingClaim],
    ) -> tuple[list[StaleReport | None], list[OpsflowError | None], Served]:
        """Final reports and log batches, of any jobs, in one transaction; each execution
        reconciled once; and the jobs those reconciles queued leased to ``waiting`` claims
        of this process in the same commit (`_serve_waiting`; ``taken`` collects every
        claim taken, served or not, so the caller answers each even when this raises).
        Returns, in order, what refused each report and each batch (None: stored), and what
        each served claim was leased. A chain's next job is thus leased in its
        predecessor's report transaction: no claim transaction between them, and the lease is
        committed before the claim answers.

        Agents hand in whatever finished or printed while the previous write was going on,
        so under load one commit and one reconcile serve many jobs, and a lone job is still
        written at once. A stale report or batch (an old lease, an already ended job) and a
        batch over the limits (`InvalidInput`) are refused on their own without failing the
        others: each is refused before it writes anything. The batches are stored after the
        reports (lock order: executions, then jobs); a caller must not put a job's batch
        with its own report when the batch came first (`AgentService` does not).
        """
        for report in reports:
            if not report.status.terminal:
                raise InvalidInput(
                    "a job ends as completed, failed, timeout or cancelled, "
                    f"not {report.status.value}"
                )

        def work(
            tx: Transaction,
        ) -> tuple[list[StaleReport | None], list[OpsflowError | None], Served]:
            session = tx.session
            results: list[StaleReport | None] = [None] * len(reports)
            found = self._leases_of(session, [(r.job, bool(r.artifacts)) for r in reports])
            current: list[tuple[int, Lease]] = []
            for i, lease in enumerate(found):
                if isinstance(lease, StaleReport):
                    results[i] = lease
                else:
                    current.append((i, lease))
            locked: dict[str, Execution] = {}
            ended: dict[str, Ended] = {}
            # Lock order: executions by id, then their jobs; so batches cannot deadlock.
            for i, lease in sorted(current, key=lambda pair: pair[1].execution_id):
                if lease.execution_id not in locked:
                    locked[lease.execution_id] = runs_store.lock_execution(
                        session, lease.execution_id
                    )
                    ended[lease.execution_id] = Ended()
                try:
                    # The end's compare-and-set refuses before anything is written.
                    self._record_end(session, lease, reports[i], ended[lease.execution_id])
                except StaleReport as exc:
                    results[i] = exc
                    continue
                tx.changes.executions.add(lease.execution_id)
            for execution_id, execution in locked.items():
                # The reconcile writes the jobs' end events with its own, in one statement,
                # and takes their outputs from here rather than reading them back.
                self.reconciler.reconcile(
                    tx, execution_id, locked=execution, ended=ended[execution_id]
                )
            stored = self._append_batches(tx, batches)
            # After the reconciles (lock order: executions, then jobs; the claim skips
            # locked job rows).
            served = self._serve_waiting(tx, waiting, taken) if waiting is not None else {}
            return results, stored, served

        refused, refused_batches, served = self.transactions.run(work)
        for claim, jobs in served.items():
            if isinstance(jobs, list):
                self._note_claimed(claim.agent_id, jobs)
        return refused, refused_batches, served

    def _append_batches(
        self, tx: Transaction, batches: list[LogBatch]
    ) -> list[OpsflowError | None]:
        """Store log batches in ``tx``, each refused on its own (a refusal writes nothing:
        the lease is read, the limits are checked, then the seq's compare-and-set on the lease
        token, before any line)."""
        session = tx.session
        out: list[OpsflowError | None] = [None] * len(batches)
        # Read from the rows, as `append_logs` does: lines of a job the server ended meanwhile
        # (timed out, agent lost) are refused, and the token alone would not say so.
        found = self._leases_of(session, [(b.job, True) for b in batches])
        for i, (batch, lease) in enumerate(zip(batches, found, strict=True)):
            if isinstance(lease, StaleReport):
                out[i] = lease
                continue
            try:
                stored = logs_store.append(
                    session,
                    job_id=lease.id,
                    token=batch.job.lease_token,
                    execution_id=lease.execution_id,
                    step_id=lease.step_id,
                    lines=self._masked_lines(session, lease, batch.lines),
                )
            except (StaleReport, InvalidInput) as exc:
                out[i] = exc
                continue
            if stored:
                tx.changes.executions.add(lease.execution_id)
        return out

    def _known_lease(self, ref: JobRef) -> Lease | None:
        """The lease ``ref`` names as this process's claim handed it, if it does."""
        known = self._leased.get(ref.job_id)
        if known is None or known[0] != ref.epoch or known[1].lease_token != ref.lease_token:
            return None
        return known[1]

    def _leases_of(
        self, session: Session, refs: list[tuple[JobRef, bool]]
    ) -> list[Lease | StaleReport]:
        """The lease each (ref, read) names: as this process's claim handed it when it names
        that very lease (token and epoch) and ``read`` is false, else read from the job's row
        (one statement for all of them). A report keeping files reads (an artifact is stored
        before the end's compare-and-set), and so does a log batch."""
        found: list[Lease | StaleReport | None] = [
            None if read else self._known_lease(ref) for ref, read in refs
        ]
        unknown = [i for i, lease in enumerate(found) if lease is None]
        if unknown:
            read = jobs_store.leases(
                session,
                [(refs[i][0].job_id, refs[i][0].lease_token, refs[i][0].epoch) for i in unknown],
            )
            for i, lease in zip(unknown, read, strict=True):
                found[i] = lease
        return [lease for lease in found if lease is not None]

    def _record_end(self, session: Session, lease: Lease, report: JobReport, ended: Ended) -> None:
        """Record one job's end. Its compare-and-set on the lease goes first: a report whose
        lease is no longer current (ended meanwhile, or claimed again) writes nothing."""
        self._leased.pop(lease.id, None)
        masker = self.masker_for(session, lease.id, lease.execution_id)
        outputs, error = report.outputs, report.error
        if masker is not None:
            outputs = masker.mask_value(outputs)
            error = masker.mask(error) if error else error
        stored = {
            name: bundles_store.store_blob(session, data) for name, data in report.artifacts.items()
        }
        ended_as, last_seq = jobs_store.finish_job(
            session,
            lease.id,
            lease.lease_token,
            artifacts=stored,
            status=report.status,
            now=self.clock(),
            outputs=outputs,
            error=error,
            retryable=report.retryable,
            exit_code=report.exit_code,
            last_seq=report.lines[-1].seq if report.lines else None,
        )
        if report.lines:
            logs_store.append(
                session,
                job_id=lease.id,
                token=lease.lease_token,
                execution_id=lease.execution_id,
                step_id=lease.step_id,
                lines=self._masked_lines(session, lease, report.lines),
                previous=last_seq,
                recorded=True,
            )
        self._maskers.pop(lease.id, None)
        ended.steps.add(lease.step_id)
        ended.outputs[lease.id] = outputs
        ended.events.append(
            events.Stamped(
                lease.execution_id,
                self.clock(),
                events.JobEnded(lease.step_id, lease.attempt, lease.id, ended_as, error),
            )
        )


_NO_VAULT = "this server has no secret store, but the job refers to secrets"


def _notice(notice: jobs_store.CancelNotice) -> CancelNotice:
    return CancelNotice(requested=notice.requested, force=notice.force, timed_out=notice.timed_out)
