"""Admission under a workflow's ``concurrency: {limit, policy}``: start, queue, skip or cancel.

Pure: the runtime passes the ids of the workflow's active executions (running or paused, oldest
first) and of its queued ones (PENDING, in queue order), holding a lock on the workflow so two
admissions cannot both take the last slot. A queued execution stays PENDING; ``release`` says
which queued executions may start when slots free up (the runtime calls it whenever one of the
workflow's executions ends). Policies, when every slot is taken:

* ``queue``: the new execution waits behind the ones already queued (first in, first out). It
  also queues when a slot is free but others are already waiting, so nobody jumps the line.
* ``skip``: the new execution is not started; it ends at once with the reason given.
* ``cancel-running``: the newest request wins: the oldest active executions are cancelled
  (``cancel_mode``, graceful so that in-flight jobs such as a Terraform apply are not cut off)
  until one slot is left for it, and every queued one is cancelled too (superseded). The new
  execution is queued and starts through ``release`` once the cancelled ones have ended, so the
  limit is never exceeded.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum

from opsflow.engine.model import CancelMode
from opsflow.status import ConcurrencyPolicy
from opsflow.words import counted


class Verdict(StrEnum):
    START = "start"
    QUEUE = "queue"
    SKIP = "skip"
    CANCEL_RUNNING = "cancel-running"  # cancel ``cancel``; the new one is queued meanwhile


@dataclass(frozen=True)
class Admission:
    """What to do with a newly requested execution."""

    verdict: Verdict
    reason: str
    cancel: tuple[str, ...] = ()  # executions to cancel (CANCEL_RUNNING only)
    cancel_mode: CancelMode = CancelMode.GRACEFUL


def _check_limit(limit: int | None) -> None:
    if limit is not None and limit < 1:
        raise ValueError(
            f"concurrency.limit must be at least 1, got {limit}; leave it out for none"
        )


def admit(
    policy: ConcurrencyPolicy,
    limit: int | None,
    active: Sequence[str],
    queued: Sequence[str],
) -> Admission:
    """Decide for a newly requested execution; ``limit`` None means no limit."""
    _check_limit(limit)
    if limit is None:
        return Admission(Verdict.START, "no concurrency limit")
    busy = f"{len(active)} of {limit} allowed executions are running"
    if len(active) < limit and not queued:
        return Admission(Verdict.START, f"{len(active)} of {limit} slots in use")
    if policy == ConcurrencyPolicy.QUEUE:
        where = f"position {len(queued) + 1} in the queue"
        return Admission(Verdict.QUEUE, f"queued at {where}: {busy}")
    if policy == ConcurrencyPolicy.SKIP:
        if len(active) < limit:
            busy = f"{counted(len(queued), 'execution')} already queued"
        return Admission(Verdict.SKIP, f"skipped by concurrency policy skip: {busy}")
    excess = max(0, len(active) - limit + 1)
    victims = tuple(active[:excess]) + tuple(queued)
    return Admission(
        Verdict.CANCEL_RUNNING,
        f"cancelling {counted(len(victims), 'older execution')} "
        "by concurrency policy cancel-running",
        cancel=victims,
    )


def release(limit: int | None, active: Sequence[str], queued: Sequence[str]) -> tuple[str, ...]:
    """The queued executions that may start now, oldest first."""
    _check_limit(limit)
    if limit is None:
        return tuple(queued)
    return tuple(queued[: max(0, limit - len(active))])
