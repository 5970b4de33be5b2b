"""Sends queued notifications (approval requests, run-end messages) through their channels.

The outbox rows are written in the transaction that calls for them; this sender claims each
due row (moving its due time out, so a crash while sending only delays it), sends it through
the notify executor, and records the result. Failures are retried with a growing delay, a few
times, and the last error stays on the row; each failure is also written, masked, to the
server log and to the execution's engine log, and so is a later try that delivers it.
"""

from __future__ import annotations

import asyncio
import contextlib
import difflib
import logging
import tempfile
from pathlib import Path

from opsflow.auth.logmask import SERVER_LOG_FILTER
from opsflow.runtime import events
from opsflow.runtime.run_notify import apprise_type
from opsflow.runtime.service import Runtime
from opsflow.status import JobStatus, LogLevel, LogStream, StepType
from opsflow.steps.base import CancelSignal, JobSpec
from opsflow.steps.notify import split_urls
from opsflow.steps.registry import executor_for
from opsflow.store import approvals as approvals_store
from opsflow.store import connections as connections_store
from opsflow.store import runs as runs_store
from opsflow.store.approvals import Notification

log = logging.getLogger(__name__)

MAX_ATTEMPTS = 5
SEND_TIMEOUT = 30.0


class _Lines:
    def __init__(self) -> None:
        self.lines: list[str] = []

    def write(self, stream: LogStream, text: str, level: LogLevel | None = None) -> None:
        self.lines.append(text)


class OutboxSender:
    def __init__(self, runtime: Runtime, *, poll: float = 5.0) -> None:
        self.runtime = runtime
        self.poll = poll
        self._stopping = False

    def stop(self) -> None:
        self._stopping = True

    async def run(self) -> None:
        async with self.runtime.bus.watch_notifications() as sub:
            while not self._stopping:
                try:
                    await self.send_due()
                except Exception:
                    log.exception("sending notifications failed; will retry")
                await sub.wait(self.poll)

    async def send_due(self) -> int:
        now = self.runtime.clock()

        def due() -> list[Notification]:
            with self.runtime.db.session() as s:
                return approvals_store.due_notifications(s, now)

        sent = 0
        for note in await asyncio.to_thread(due):
            retry_at = now + SEND_TIMEOUT + 30.0 * (2**note.attempts)

            def claim(note: Notification = note, retry_at: float = retry_at) -> bool:
                with self.runtime.db.session() as s:
                    return approvals_store.claim_notification(s, note.id, now, retry_at)

            if not await asyncio.to_thread(claim):
                continue
            error = await self._send(note)
            if error is not None and note.attempts + 1 >= MAX_ATTEMPTS:
                # Give up: mark it done so it stops coming due, keeping the error to read.
                closed, kept = self.runtime.clock(), f"gave up after {MAX_ATTEMPTS} tries: {error}"
            elif error is not None:
                closed, kept = None, error
            else:
                closed, kept = self.runtime.clock(), None

            if kept is not None:
                kept = SERVER_LOG_FILTER.mask(kept)

            said = None
            if kept is not None:
                said = f"notification to channel {note.channel} failed: {kept}"
            elif note.attempts:
                # Its failures are in the run's engine log: so is the try that got through.
                said = (
                    f"notification to channel {note.channel} delivered on try "
                    f"{note.attempts + 1} (the earlier tries failed)"
                )

            def finish(
                note: Notification = note,
                sent: float | None = closed,
                err: str | None = kept,
                said: str | None = said,
            ) -> None:
                with self.runtime.db.session() as s:
                    approvals_store.finish_notification(s, note.id, sent_at=sent, error=err)
                    if said is not None and note.execution_id:
                        # Where the run's people look: its engine log (and its event stream).
                        at = self.runtime.clock()
                        entry = {
                            "execution_id": note.execution_id,
                            "step_id": None,
                            "at": at,
                            "message": said,
                        }
                        runs_store.add_engine_log(s, [entry])
                        events.write_one(s, note.execution_id, at, events.EngineNote(None, said))

            await asyncio.to_thread(finish)
            if error is None:
                sent += 1
                if note.attempts:
                    log.info("notification %s to %s: %s", note.id, note.channel, said)
            else:
                log.warning("notification %s to %s failed: %s", note.id, note.channel, kept)
        return sent

    async def _send(self, note: Notification) -> str | None:
        urls = self.runtime.notify_channels.get(note.channel) or await asyncio.to_thread(
            self._connection_urls, note.channel
        )
        if not urls:
            names = sorted(
                set(self.runtime.notify_channels) | set(await asyncio.to_thread(self._notifiers))
            )
            close = difflib.get_close_matches(note.channel, names, n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            return (
                f"notify channel {note.channel!r} is not configured (no configured channel and "
                f"no enabled notify connection of that name){hint}; configured: "
                f"{', '.join(names) or 'none'}; an admin adds it with opsflow connections set "
                f"{note.channel} --type notify"
            )
        with tempfile.TemporaryDirectory(prefix="opsflow-notify-") as tmp:
            spec = JobSpec(
                job_id=f"notification-{note.id}",
                execution_id=note.execution_id or "",
                step_id="notify",
                attempt=note.attempts + 1,
                type=StepType.NOTIFY,
                config={
                    "urls": urls,
                    "message": note.message,
                    "title": note.title,
                    "notify_type": apprise_type(note.key),
                },
                workdir=Path(tmp),
                timeout=SEND_TIMEOUT,
            )
            sink = _Lines()
            result = await executor_for(StepType.NOTIFY).run(spec, sink, CancelSignal())
        if result.status == JobStatus.COMPLETED:
            return None
        return result.error or "notification failed"

    def _connection_urls(self, name: str) -> list[str]:
        """The URLs of the enabled notify connection ``name`` (an admin-made channel)."""
        vault = self.runtime.jobs.connections
        if vault is None:
            return []
        with self.runtime.db.session() as s:
            meta = connections_store.find(s, name)
            if meta is None or not meta.enabled or meta.type != "notify":
                return []
            return split_urls(vault.reveal(s, name).values.get("url", ""))

    def _notifiers(self) -> list[str]:
        """The names of the enabled notify connections (the configured channels among them)."""
        with self.runtime.db.session() as s:
            return [
                meta.name
                for meta in connections_store.list_connections(s)
                if meta.enabled and meta.type == "notify"
            ]


async def stop_task(task: asyncio.Task[None] | None) -> None:
    if task is None:
        return
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task
