"""The git poller: polls each git trigger of poll mode when its ``next_due_at`` comes, with the
real ``git ls-remote`` (`opsflow.triggers.git_poll`), and starts a run per new commit through
the hook ingress's desk."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from opsflow.auth.secrets import SecretVault
from opsflow.errors import OpsflowError
from opsflow.spec.triggers import GitTrigger, TriggerType
from opsflow.store import triggers as store
from opsflow.store.session import Session
from opsflow.store.triggers import Trigger
from opsflow.triggers.delivery import Arrival, DeliveryDesk, HookTarget
from opsflow.triggers.git_poll import PollFailed, changes, commit_details, ls_remote
from opsflow.triggers.ingress import Reading, Skip, Start
from opsflow.triggers.scheduler import SchedulerClock

if TYPE_CHECKING:
    from opsflow.api.services import Services

log = logging.getLogger(__name__)
_T = TypeVar("_T")

TYPES = (TriggerType.GIT.value,)
POLLER_KEY = "git_poller"  # services.extra[POLLER_KEY]: the server's GitPoller
DESK_KEY = "hook_desk"  # services.extra: the hook ingress's DeliveryDesk (api.hooks)
VAULT_KEY = "secrets"  # services.extra: the server's SecretVault (api.secrets)


class GitPoller:
    """Polls every due git trigger of poll mode: one asyncio task per server process.

    It wakes at the earliest ``next_due_at`` of the live git triggers (capped by
    ``max_sleep``, so triggers other replicas publish are seen), takes each due trigger's turn
    with a compare-and-set of ``next_due_at`` to ``now + poll`` (one replica polls each
    turn), runs ``git ls-remote`` without blocking the loop, and hands what moved to the
    hook ingress's `DeliveryDesk.settle`, which starts runs under the dedupe key
    ``<ref>@<commit>`` and records them in the trigger's delivery log. Only then does the
    trigger's state remember the new refs: a server that dies in between polls again and
    finds the same commits, and the dedupe keys keep them at one run each.
    """

    def __init__(
        self,
        desk: DeliveryDesk,
        vault: SecretVault,
        *,
        clock: Callable[[], float] = time.time,
        rate: float = 1.0,
        max_sleep: float = 10.0,
        cache_dir: Path,
    ) -> None:
        self.desk = desk
        # A bare repository per trigger (by id), where polled commits are fetched to read.
        self.cache_dir = cache_dir
        self.db = desk.db
        self.vault = vault
        self.clock = clock
        self.rate = rate  # a test clock may run faster than real time
        self.max_sleep = max_sleep
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run(), name="git-poller")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    def wake(self) -> None:
        """Look again now (a publish may have added a trigger); callable from any thread."""
        loop = self._task.get_loop() if self._task is not None else None
        if loop is not None and not loop.is_closed():
            loop.call_soon_threadsafe(self._wake.set)

    async def _run(self) -> None:
        while True:
            try:
                delay = await self.tick()
            except Exception:
                log.exception("git poller tick failed; trying again")
                delay = self.max_sleep
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), delay)
            self._wake.clear()

    async def tick(self) -> float:
        """Poll every due trigger (side by side); return how long to sleep, in real seconds."""
        now = self.clock()
        due = await asyncio.to_thread(self._read, lambda s: store.due(s, now, types=TYPES))
        await asyncio.gather(*(self._poll(trigger, now) for trigger in due))
        wake = await asyncio.to_thread(self._read, lambda s: store.next_due(s, types=TYPES))
        if wake is None:
            return self.max_sleep
        return max(0.0, min(self.max_sleep, (wake - self.clock()) / self.rate))

    def _read(self, query: Callable[[Session], _T]) -> _T:
        with self.db.read() as session:
            return query(session)

    async def _poll(self, trigger: Trigger, now: float) -> None:
        try:
            spec = GitTrigger.model_validate(trigger.spec)
        except ValueError:
            spec = None
        if spec is None or not spec.polls:
            await asyncio.to_thread(self._advance, trigger, None)
            return
        if not await asyncio.to_thread(self._advance, trigger, now + spec.poll_seconds):
            return  # another replica took this turn
        url = spec.url or ""
        try:
            credentials = await asyncio.to_thread(self._credentials, spec.credentials)
            refs = await ls_remote(url, credentials)
        except OpsflowError as exc:  # PollFailed, or the credentials secret is missing
            log.warning("git trigger %s of %s: %s", trigger.name, trigger.workflow_id, exc.message)
            if exc.message != (trigger.state or {}).get("last_error"):
                # The delivery log says when polling starts failing (or fails differently),
                # not once a minute while it keeps failing the same way.
                await asyncio.to_thread(self._refuse, trigger, exc)
            await asyncio.to_thread(
                self._remember, trigger, last_poll_at=now, last_error=exc.message
            )
            return
        state = trigger.state or {}
        before = state.get("refs") if state.get("url") == url else None
        items = changes(spec, before, refs)
        items = [await self._detailed(trigger, url, credentials, item) for item in items]
        if items:
            await asyncio.to_thread(self._settle, trigger, items)
        await asyncio.to_thread(
            self._remember, trigger, url=url, refs=refs, last_poll_at=now, last_error=None
        )

    async def _detailed(
        self, trigger: Trigger, url: str, credentials: str | None, item: Start | Skip
    ) -> Start | Skip:
        """A start with the polled commit's message, author and changed files, as a
        provider's push payload has them; as it was (those left empty, and a warning
        logged) when the commit cannot be fetched."""
        git = item.trigger.get("git") if isinstance(item, Start) else None
        if not isinstance(item, Start) or not git or not git.get("commit"):
            return item  # filtered out, or a deletion: no commit to read
        cache = self.cache_dir / str(trigger.id)
        try:
            details = await commit_details(
                cache, url, credentials, git["ref"], git["before"], git["commit"]
            )
        except PollFailed as exc:
            log.warning("git trigger %s of %s: %s", trigger.name, trigger.workflow_id, exc.message)
            return item
        return dataclasses.replace(item, trigger={**item.trigger, "git": {**git, **details}})

    def _advance(self, trigger: Trigger, next_due_at: float | None) -> bool:
        with self.db.session() as session:
            return store.advance(
                session,
                trigger.id,
                expected_due=trigger.next_due_at,
                next_due_at=next_due_at,
                state=trigger.state,
            )

    def _credentials(self, name: str | None) -> str | None:
        if name is None:
            return None
        with self.db.read() as session:
            return self.vault.reveal(session, [name])[name]

    def _remember(self, trigger: Trigger, **values: Any) -> None:
        with self.db.session() as session:
            store.merge_state(session, trigger.id, **values)

    def _target(self, trigger: Trigger) -> HookTarget:
        return HookTarget(
            trigger_id=trigger.id,
            workflow_id=trigger.workflow_id,
            name=trigger.name,
            type=trigger.type,
            hook_key=trigger.hook_key or "",
            spec=trigger.spec,
            secret="",
        )

    def _refuse(self, trigger: Trigger, error: OpsflowError) -> None:
        self.desk.refuse(self._target(trigger), Arrival.now("poll"), error, authenticated=True)

    def _settle(self, trigger: Trigger, items: list[Start | Skip]) -> None:
        try:
            self.desk.settle(self._target(trigger), Arrival.now("poll"), Reading(items))
        except OpsflowError as exc:  # paused, disabled, bad params: recorded by the desk
            log.info("git trigger %s of %s: %s", trigger.name, trigger.workflow_id, exc.message)


@contextlib.asynccontextmanager
async def git_poller_extension(services: Services) -> AsyncIterator[GitPoller]:
    """The server's git poller, after the hook ingress (it starts runs through its desk)."""
    desk: DeliveryDesk = services.extra[DESK_KEY]
    clock = SchedulerClock.parse(services.settings.scheduler_clock)
    poller = GitPoller(
        desk,
        services.extra[VAULT_KEY],
        clock=clock.now,
        rate=clock.rate,
        cache_dir=services.settings.data_dir / "git-poll",
    )
    services.extra[POLLER_KEY] = poller
    poller.start()
    try:
        yield poller
    finally:
        await poller.stop()
