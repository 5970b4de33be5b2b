"""The ``notify`` step: send a message through Apprise (Slack, Teams, Discord, email, webhooks...).

Workflows name a channel (``channel: deploys``, or ``connection: deploys``): a notify
connection, whose Apprise URLs (``url``, several separated by spaces or commas) the claim
delivers with the rendered ``message`` and optional ``title``, so channel credentials live in
one place on the server (the configured channels are loaded as connections) and never in
workflow files or stored job specs.

Apprise is a blocking library: it runs in a worker thread so the agent's event loop stays free.
A failure carries, for each channel URL that failed, the cause of a network failure in words
("connection refused", "name not resolved", "TLS verification failed", "timed out") and what
Apprise warned. Log lines name services ("Slack"), never the URLs, which hold tokens.

One scheme is opsflow's own: ``opsflowlog://CHANNEL`` writes the message to the agent
process's log (for the local agent, the server's log). The demo points the channels its
examples name at it when the server has no real ones, so a bare demo's notifications land
somewhere a person can read them.

Outputs: ``delivered`` (how many channel URLs accepted the message).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
from dataclasses import dataclass
from types import ModuleType
from typing import Any
from urllib.parse import urlsplit

from opsflow.status import JobStatus, LogLevel, LogStream, StepType
from opsflow.words import counted

from .base import CancelSignal, JobSpec, LogSink, StepResult, format_seconds
from .config import StepConfig, StepConfigError, connection_of
from .network import NetworkCause, cause_in_text

DEFAULT_TIMEOUT = 60.0
# Extra time we wait beyond Apprise's own deadline before giving up on the worker thread.
_DEADLINE_MARGIN = 2.0
LOG_SCHEME = "opsflowlog"
LOG_SERVICE = "opsflow log"
# Apprise's logger (``apprise.logger.LOGGER_NAME``), named here so that nothing imports Apprise
# before a notification is sent or a notify connection checked: it weighs about 20 MB, which an
# idle server does not hold (tests/unit/test_server_imports.py).
APPRISE_LOGGER = "apprise"

log_channel = logging.getLogger("opsflow.notify")


@dataclass(frozen=True)
class _ServiceOutcome:
    name: str
    delivered: bool
    timed_out: bool
    reasons: tuple[str, ...]  # what Apprise warned about (never its DEBUG lines: they hold URLs)
    cause: NetworkCause | None = None  # a network failure's cause, from any of its lines


# Apprise's message types (``apprise.NotifyType``): how a chat service marks the message.
_NOTIFY_TYPES = ("info", "success", "warning", "failure")


@dataclass(frozen=True)
class _Delivery:
    services: tuple[_ServiceOutcome, ...]
    call_reasons: tuple[str, ...]


class NotifyExecutor:
    """Runs ``notify`` steps with Apprise in a worker thread."""

    type = StepType.NOTIFY

    async def run(self, spec: JobSpec, log: LogSink, cancel: CancelSignal) -> StepResult:
        """Send the message to every channel URL; fail if any of them did not take it."""
        try:
            config = StepConfig(spec.config)
            connection = connection_of(spec, "notify")
            if connection is not None:
                urls = split_urls(connection.values.get("url", ""))
            else:  # a job queued by a server from before connections
                urls = config.string_list("urls", required=True)
            message = config.required_text("message")
            title = config.text("title", default="") or ""
            # Set by the server's outbox (a run-end message follows the run's status); a
            # notify step sends info.
            kind = config.text("notify_type", default="info") or "info"
            if kind not in _NOTIFY_TYPES:
                raise StepConfigError("notify_type", f"must be one of {', '.join(_NOTIFY_TYPES)}")
        except StepConfigError as exc:
            log.write(LogStream.SYSTEM, str(exc), LogLevel.ERROR)
            return exc.result()
        if cancel.requested:
            return StepResult(JobStatus.CANCELLED, error="cancelled before start", retryable=False)
        timeout = spec.timeout if spec.timeout is not None else DEFAULT_TIMEOUT
        log.write(
            LogStream.SYSTEM, f"sending a notification to {counted(len(urls), 'channel URL')}"
        )
        sending = asyncio.ensure_future(
            asyncio.to_thread(_deliver, urls, message, title, timeout, kind)
        )
        cancelled = asyncio.ensure_future(cancel.wait())
        try:
            done, _ = await asyncio.wait(
                {sending, cancelled},
                timeout=timeout + _DEADLINE_MARGIN,
                return_when=asyncio.FIRST_COMPLETED,
            )
        finally:
            cancelled.cancel()
            if not sending.done():
                # The worker thread cannot be interrupted; Apprise's own deadline ends it.
                sending.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await sending
        if sending not in done:
            if cancelled in done and not cancel.timed_out:
                return StepResult(JobStatus.CANCELLED, error="cancelled", retryable=False)
            return _timed_out(timeout, log)  # our clock, or the server's (a timed-out stop)
        try:
            delivery = sending.result()
        except StepConfigError as exc:
            log.write(LogStream.SYSTEM, str(exc), LogLevel.ERROR)
            return exc.result()
        return _result(delivery, timeout, log)


def _deliver(
    urls: list[str], message: str, title: str, timeout: float, kind: str = "info"
) -> _Delivery:
    """Build the Apprise object and send (blocking; runs in a worker thread)."""
    apprise = _apprise()
    asset = apprise.AppriseAsset(
        app_id="opsflow",
        app_desc="opsflow workflow notification",
        storage_mode="memory",  # agents keep no Apprise cache files
    )
    sender = apprise.Apprise(asset=asset)
    for index, url in enumerate(urls):
        if not sender.add(url):
            scheme = urlsplit(url).scheme or "(none)"
            raise StepConfigError(
                f"urls[{index}]",
                f"is not a valid Apprise URL (scheme {scheme!r}); fix the channel's URL in the "
                "server's notification channels",
            )
    # DEBUG is captured only to learn a failure's cause ("Socket Exception: ... [Errno 111]
    # Connection refused"); those lines name channel URLs and are never shown.
    result = sender.notify(
        body=message,
        title=title,
        notify_type=apprise.NotifyType(kind),
        timeout=timeout,
        log_level=logging.DEBUG,
    )
    services = []
    for service in result.results:
        entries = list(service.logs())
        cause = None
        if not service:
            cause = next((c for e in entries if (c := cause_in_text(e.message)) is not None), None)
        services.append(
            _ServiceOutcome(
                name=service.name,
                delivered=bool(service),
                timed_out=service.status == apprise.AppriseResultStatus.TIMEOUT,
                reasons=tuple(e.message for e in entries if _shown(e.level)),
                cause=cause,
            )
        )
    call_reasons = tuple(e.message for e in result.call_logs() if _shown(e.level))
    return _Delivery(tuple(services), call_reasons)


def _shown(level: str) -> bool:
    return logging.getLevelName(level) in (logging.WARNING, logging.ERROR, logging.CRITICAL)


class _Onward(logging.Handler):
    """Hands Apprise's WARNING-and-above records on to the server's own log handlers."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)

    def emit(self, record: logging.LogRecord) -> None:
        parent = logging.getLogger(APPRISE_LOGGER).parent
        if parent is not None:
            parent.handle(record)


def _let_apprise_say_why() -> None:
    """Apprise states a network failure's cause only at DEBUG, and captures for a delivery only
    what its logger lets through. Let it produce DEBUG records for the capture, but hand only
    WARNING and above on to the server's log: DEBUG lines carry channel URLs and tokens."""
    logger = logging.getLogger(APPRISE_LOGGER)
    if any(isinstance(h, _Onward) for h in logger.handlers):
        return
    logger.addHandler(_Onward())
    logger.propagate = False
    if logger.getEffectiveLevel() > logging.DEBUG:
        logger.setLevel(logging.DEBUG)


_set_up = False
_setting_up = threading.Lock()


def _apprise() -> ModuleType:
    """Apprise, imported (in the calling thread: a worker thread's, never the event loop's) and
    set up once per process: its log records' way to the server's log (before it sends
    anything, see `_let_apprise_say_why`) and ``opsflowlog://`` (Apprise keeps schemes global
    and warns on a second registration)."""
    global _set_up
    import apprise
    import apprise.decorators

    with _setting_up:
        if not _set_up:
            _let_apprise_say_why()
            apprise.decorators.notify(on=LOG_SCHEME, name=LOG_SERVICE)(_write_to_log)  # type: ignore[no-untyped-call]
            _set_up = True
    return apprise


def split_urls(text: str) -> list[str]:
    """``"a://x, b://y"`` -> ``["a://x", "b://y"]``: a notify connection's URLs."""
    return text.replace(",", " ").split()


def register_log_scheme() -> None:
    """Teach Apprise ``opsflowlog://CHANNEL`` and route its log (see `_apprise`); call it before
    using Apprise anywhere else."""
    _apprise()


def _write_to_log(body: str, title: str, notify_type: str, meta: dict[str, Any], **_: Any) -> bool:
    """Deliver a message to this process's log: ``notify channel deploys: <title>: <body>``."""
    heading = f"{title}: " if title else ""
    log_channel.info("notify channel %s: %s%s", meta.get("host") or "?", heading, body)
    return True


def _result(delivery: _Delivery, timeout: float, log: LogSink) -> StepResult:
    for service in delivery.services:
        state = "delivered" if service.delivered else "not delivered"
        level = LogLevel.INFO if service.delivered else LogLevel.ERROR
        log.write(LogStream.SYSTEM, f"{service.name}: {state}", level)
        for reason in service.reasons:
            log.write(LogStream.SYSTEM, f"{service.name}: {reason}", level)
    for reason in delivery.call_reasons:
        log.write(LogStream.SYSTEM, reason, LogLevel.WARN)
    delivered = sum(1 for s in delivery.services if s.delivered)
    outputs = {"delivered": delivered}
    failed = [s for s in delivery.services if not s.delivered]
    if delivery.services and not failed:
        return StepResult(JobStatus.COMPLETED, outputs=outputs)
    if failed and all(s.timed_out for s in failed):
        return _timed_out(timeout, log)
    reasons = [_why(s) for s in failed]
    reasons += list(delivery.call_reasons)
    total = len(delivery.services)
    error = (
        f"notification failed for {len(failed)} of {counted(total, 'channel URL')}: "
        + "; ".join(reasons or ["Apprise sent nothing"])
    )
    retryable = all(s.cause is None or s.cause.retryable for s in failed)
    return StepResult(JobStatus.FAILED, outputs=outputs, error=error, retryable=retryable)


def _why(service: _ServiceOutcome) -> str:
    """``"JSON: connection refused (A Connection error occurred sending ... to db.)"``."""
    said = " ".join(service.reasons)
    if service.cause is None:
        return f"{service.name}: {said or 'no reason given'}"
    return f"{service.name}: {service.cause}" + (f" ({said})" if said else "")


def _timed_out(timeout: float, log: LogSink) -> StepResult:
    error = f"timed out after {format_seconds(timeout)}"
    log.write(LogStream.SYSTEM, error, LogLevel.ERROR)
    return StepResult(JobStatus.TIMEOUT, error=error)
