"""Publishing a version brings the ``triggers`` table in line with the version's ``triggers:``.

A trigger's identity is its name: its YAML ``key``, else ``<type>-<n>`` where n counts the
keyless triggers of that type in the definition (1-based, in order). A row found under that
name keeps its URL key, generated secret, fire state and enabled flag, so a new version never
changes a webhook URL; a new name gets a new row (and a generated key and secret where the
type has a URL); a name the version no longer declares is retired, and revived with all it
kept if a later version declares it again.

The whole sync runs in the publish's transaction: a refused key (used by another workflow)
raises before the transaction commits, so nothing is half-written.
"""

from __future__ import annotations

import logging
import secrets
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy.orm import Session

from opsflow.auth.secrets import SecretBox
from opsflow.errors import Conflict, Problem
from opsflow.spec.triggers import TriggerType
from opsflow.store import triggers as store
from opsflow.store import workflows as workflows_store
from opsflow.store.base import utcnow
from opsflow.store.db import Database
from opsflow.store.triggers import Trigger
from opsflow.store.workflows import WorkflowVersion
from opsflow.triggers import git_poll, schedule
from opsflow.triggers.cron import CronNeverFires

log = logging.getLogger(__name__)

# Trigger types reached at ``POST /hooks/{key}``: they get a URL key and a secret.
HOOK_TYPES = frozenset({TriggerType.WEBHOOK, TriggerType.GIT, TriggerType.INCIDENT})

# When the scheduler should first look at a trigger of a type it wakes for: given the row as
# it was (None when new, or its spec changed, or it comes back from retirement), the declared
# spec and now, the first ``next_due_at``. Types not listed have none.
FirstDue = Callable[[Trigger | None, Mapping[str, Any], float], float | None]
FIRST_DUE: dict[str, FirstDue] = {
    TriggerType.SCHEDULE: schedule.first_due,
    TriggerType.GIT: git_poll.first_due,  # only a trigger that polls its `url` has one
}


@dataclass(frozen=True)
class Declared:
    """One trigger of a definition: where it is (``index`` in ``triggers``) and its name."""

    index: int
    name: str
    type: str
    spec: dict[str, Any]


def declared(definition: Mapping[str, Any]) -> list[Declared]:
    """The triggers of a canonical definition with their names (see the module docstring)."""
    counts: dict[str, int] = {}
    out: list[Declared] = []
    for index, raw in enumerate(definition.get("triggers") or []):
        kind = str(raw["type"])
        key = raw.get("key")
        if key:
            name = str(key)
        else:
            counts[kind] = counts.get(kind, 0) + 1
            name = f"{kind}-{counts[kind]}"
        out.append(Declared(index, name, kind, dict(raw)))
    return out


def secret_box_name(workflow_id: str, name: str) -> str:
    """What a generated secret is encrypted under (authenticated with it: a ciphertext copied
    to another trigger does not decrypt)."""
    return f"trigger:{workflow_id}/{name}"


def generated_secret(box: SecretBox, trigger: Trigger) -> str | None:
    """The plaintext of the trigger's generated secret (None when it has none)."""
    if trigger.secret_ciphertext is None:
        return None
    name = secret_box_name(trigger.workflow_id, trigger.name)
    return box.decrypt(name, trigger.secret_ciphertext)


def new_hook_key() -> str:
    """A URL key nobody can guess: 24 random bytes, URL-safe (32 characters)."""
    return secrets.token_urlsafe(24)


def new_secret(box: SecretBox, workflow_id: str, name: str) -> bytes:
    return box.encrypt(secret_box_name(workflow_id, name), secrets.token_urlsafe(32))


def _check_keys(session: Session, workflow_id: str, wanted: Sequence[Declared]) -> None:
    """A YAML ``key`` another workflow holds is refused (409), naming ``triggers[i].key``.

    A key held only by a retired trigger, or by a trigger of a deleted workflow, is free: the
    old row lets go of it when the new one takes it."""
    keys = [d.name for d in wanted if d.type in HOOK_TYPES and d.spec.get("key")]
    holders = store.hook_key_holders(session, keys)
    problems: list[Problem] = []
    for d in wanted:
        holder = holders.get(d.name) if d.spec.get("key") else None
        if holder is None or holder[0] == workflow_id:
            continue
        problems.append(
            Problem(
                f"triggers[{d.index}].key",
                f"key '{d.name}' is already the URL key of trigger {holder[1]!r} of workflow "
                f"{holder[0]!r}: URL keys are unique on the server; choose another key, or "
                "leave it out to have one generated",
            )
        )
    if problems:
        raise Conflict("; ".join(p.msg for p in problems), problems=problems)


def sync(
    session: Session, workflow_id: str, definition: Mapping[str, Any], box: SecretBox, now: float
) -> list[Trigger]:
    """Upsert the rows of ``definition``'s triggers and retire the others; returns the live
    rows in declaration order."""
    wanted = declared(definition)
    _check_keys(session, workflow_id, wanted)
    rows = store.list_for_workflow(session, workflow_id, include_retired=True)
    existing = {t.name: t for t in rows}
    out: list[Trigger] = []
    for d in wanted:
        old = existing.get(d.name)
        values: dict[str, Any] = {"type": d.type, "spec": d.spec, "retired_at": None}
        # A git trigger that polls its `url` takes no deliveries: no URL key, no secret.
        if d.type in HOOK_TYPES and not (d.type == TriggerType.GIT and d.spec.get("url")):
            key = str(d.spec["key"]) if d.spec.get("key") else (old.hook_key if old else None)
            key = key or new_hook_key()
            store.release_hook_key(session, key, old.id if old else None)
            values["hook_key"] = key
            values["secret_name"] = d.spec.get("secret")
            if old is None or old.secret_ciphertext is None:
                values["secret_ciphertext"] = new_secret(box, workflow_id, d.name)
        else:
            values["hook_key"] = None
        first_due = FIRST_DUE.get(d.type)
        if first_due is not None:
            # A wake time long past (the workflow was deleted and is back) starts afresh:
            # what passed meanwhile was not "missed".
            unchanged = (
                old is not None
                and old.retired_at is None
                and _same_timing(old, d)
                and (old.next_due_at is None or old.next_due_at >= now - schedule.LATE_AFTER)
            )
            if not unchanged:
                values["next_due_at"] = None
                if old is None or old.enabled:
                    values.update(_first_wake(first_due, old, d.name, d.spec, now))
        else:
            values["next_due_at"] = None
        if old is None:
            row = store.insert(
                session, {"workflow_id": workflow_id, "name": d.name, "enabled": True, **values}
            )
        else:
            row = store.update_trigger(session, old.id, **values)
        out.append(row)
    names = {d.name for d in wanted}
    stamp = utcnow()
    for name, old in existing.items():
        if name not in names and old.retired_at is None:
            store.update_trigger(session, old.id, retired_at=stamp, next_due_at=None)
    return out


def _same_timing(old: Trigger, d: Declared) -> bool:
    """Whether the fields that decide when a trigger is due are unchanged (then its
    ``next_due_at`` stands)."""
    fields = ("cron", "timezone", "poll", "url")
    return all(old.spec.get(f) == d.spec.get(f) for f in fields)


def publish(
    session: Session, workflow_id: str, actor: str, box: SecretBox, now: float
) -> tuple[WorkflowVersion, bool]:
    """Publish the draft (`opsflow.store.workflows.publish`) and sync the triggers of the
    latest version, in the caller's transaction. Returns the version and whether it is new."""
    version, created = workflows_store.publish(session, workflow_id, actor)
    sync(session, workflow_id, version.definition, box, now)
    return version, created


def set_enabled(
    session: Session, workflow_id: str, name: str, enabled: bool, now: float
) -> Trigger:
    """Enable or disable one trigger. A disabled trigger keeps its key, secret and state, and
    the scheduler forgets it; enabled again, a schedule starts with the first instant after
    now (what it would have fired meanwhile is not "missed": someone turned it off)."""
    trigger = store.get(session, workflow_id, name, lock=True)
    if trigger.enabled == enabled:
        return trigger
    values: dict[str, Any] = {"next_due_at": None}
    first_due = FIRST_DUE.get(trigger.type)
    if enabled and first_due is not None:
        values.update(_first_wake(first_due, trigger, trigger.name, trigger.spec, now))
    return store.update_trigger(session, trigger.id, enabled=enabled, **values)


def _first_wake(
    first_due: FirstDue, old: Trigger | None, name: str, spec: Mapping[str, Any], now: float
) -> dict[str, Any]:
    """The row values for a trigger's first wake time. A cron line with no next instant (one
    stored before the spec refused such lines) gets no wake time and its error in the state,
    so the schedule is shown broken and skipped instead of failing the publish."""
    state = dict(old.state) if old is not None else {}
    try:
        values: dict[str, Any] = {"next_due_at": first_due(old, spec, now)}
    except CronNeverFires as exc:
        log.error("schedule %s is skipped: %s", name, exc)
        return {"next_due_at": None, "state": {**state, schedule.BROKEN: str(exc)}}
    if schedule.BROKEN in state:  # a new cron line that fires
        values["state"] = {k: v for k, v in state.items() if k != schedule.BROKEN}
    return values


def sync_unsynced(db: Database, box: SecretBox, now: float) -> int:
    """At start-up: give the published workflows that have no trigger rows yet (published by
    a version of opsflow before this table) their rows; returns how many were synced."""
    with db.read() as session:
        ids = store.published_without_rows(session)
    synced = 0
    for workflow_id in ids:
        with db.session() as session:
            latest = workflows_store.latest_version(session, workflow_id)
            if latest is None or not latest.definition.get("triggers"):
                continue
            sync(session, workflow_id, latest.definition, box, now)
            synced += 1
    return synced
