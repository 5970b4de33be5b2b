"""Read ansible-runner's job events out of ``ansible-playbook`` output, and turn them into a log.

ansible-runner's ``awx_display`` stdout callback frames every piece of output between two
markers, ``ESC[K<base64 JSON>ESC[<n>D...ESC[K``: a begin marker carrying the event's uuid and an
empty end marker. Before it prints the begin marker it writes the event's full data to
``<AWX_ISOLATED_DATA_DIR>/job_events/<uuid>-partial.json`` (atomically, by rename), so when we
see the marker the data is already on disk. This is the same framing ansible-runner's own
``OutputEventFilter`` parses; we parse it from the lines the process supervisor hands us and act
on each begin marker at once, so an event reaches the step log the moment Ansible prints it
rather than when the playbook ends.

``PlaybookProgress`` turns events into readable log lines (``TASK [name]``, ``ok: [host]``,
``changed: [host]``, ``failed: [host]: msg``, the recap) and keeps what the step outputs:
``stats`` per host and ``failed_tasks``.

A marker is never split across lines, except in one corner: a single output line longer than
the line splitter's limit (16 KiB) is cut, and a marker straddling the cut is then not
recognised; its text is logged as plain output and that one event is missed.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from opsflow.status import LogLevel, LogStream

from .base import LogSink

_MARKER = re.compile(r"\x1b\[K((?:[A-Za-z0-9+/=]+\x1b\[\d+D)+)\x1b\[K")
_CHUNK_END = re.compile(r"\x1b\[\d+D")
# Events whose printed text is all there is to them (warnings, errors, -v output).
_TEXT_EVENTS = frozenset(
    {"verbose", "debug", "warning", "system_warning", "deprecated", "error", "runner_on_file_diff"}
)
# ansible-playbook's exit codes for a playbook (4, also used for unreachable hosts, which the
# events tell apart) or options (5) it refused.
_REFUSED_EXIT_CODES = frozenset({4, 5})
_WARNING_PREFIXES = ("[WARNING]", "[DEPRECATION WARNING]")
MAX_MESSAGE_CHARS = 1000
STAT_KEYS = ("ok", "changed", "failed", "unreachable", "skipped")
# Ansible's recap names for the counters we output (stats "dark" means unreachable).
_RECAP_SOURCES = {
    "ok": "ok",
    "changed": "changed",
    "failed": "failures",
    "unreachable": "dark",
    "skipped": "skipped",
}


@dataclass(frozen=True)
class AnsibleEvent:
    """One job event: its kind (``runner_on_ok``...), its data, and the stream it came on."""

    name: str
    data: Mapping[str, Any]
    stream: LogStream


class EventReader:
    """Split one output stream of ansible-playbook into job events and lines of text.

    An event is handed on at its begin marker, whose data file is complete by then: the end
    marker only follows the event's text and may sit in a line that is not finished yet (it
    often shares a line with the next event's begin marker). Each line of text is handed on
    with the name of the event that printed it (None outside any event).
    """

    def __init__(
        self,
        stream: LogStream,
        events_dir: Path,
        on_event: Callable[[AnsibleEvent], None],
        on_text: Callable[[LogStream, str, str | None], None],
    ) -> None:
        self._stream = stream
        self._events_dir = events_dir
        self._on_event = on_event
        self._on_text = on_text
        self._current: str | None = None
        self._pending = ""

    def line(self, text: str) -> None:
        """Consume one output line (without its newline)."""
        position = 0
        for match in _MARKER.finditer(text):
            self._pending += text[position : match.start()]
            self._emit_pending()  # text printed without a newline before the marker
            self._marker(match.group(1))
            position = match.end()
        self._pending += text[position:]
        self._emit_pending()

    def close(self) -> None:
        """End of stream: deliver text still buffered."""
        self._emit_pending()

    def _emit_pending(self) -> None:
        text, self._pending = self._pending, ""
        if text.strip():
            self._on_text(self._stream, text.rstrip(), self._current)

    def _marker(self, encoded: str) -> None:
        uuid = _decode(encoded).get("uuid")
        if not isinstance(uuid, str):  # an end marker
            self._current = None
            return
        data = self._load(uuid)
        name = str(data.get("event") or "verbose")
        event_data = data.get("event_data")
        self._current = name
        self._on_event(
            AnsibleEvent(name, event_data if isinstance(event_data, Mapping) else {}, self._stream)
        )

    def _load(self, uuid: str) -> dict[str, Any]:
        path = self._events_dir / f"{uuid}-partial.json"
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return {"event": "verbose"}
        path.unlink(missing_ok=True)  # read once; keeps the directory small on long runs
        return data if isinstance(data, dict) else {"event": "verbose"}


class EventOutput:
    """The LogSink ansible-playbook's process writes to.

    Its stdout and stderr lines go through one ``EventReader`` each into ``progress``; the
    supervisor's own notes (timed out, stopping the step's processes) go straight to ``log``.
    """

    def __init__(self, log: LogSink, progress: PlaybookProgress, events_dir: Path) -> None:
        self._log = log
        self._readers = {
            stream: EventReader(stream, events_dir, progress.event, progress.text)
            for stream in (LogStream.STDOUT, LogStream.STDERR)
        }

    def write(self, stream: LogStream, text: str, level: LogLevel | None = None) -> None:
        """Take one line from the process supervisor."""
        reader = self._readers.get(stream)
        if reader is None:
            self._log.write(stream, text, level)
        else:
            reader.line(text)

    def close(self) -> None:
        """The process has ended: deliver what the readers still hold."""
        for reader in self._readers.values():
            reader.close()


def _decode(encoded: str) -> dict[str, Any]:
    try:
        value = json.loads(base64.b64decode(_CHUNK_END.sub("", encoded)).decode("utf-8"))
    except (ValueError, binascii.Error, UnicodeDecodeError):
        return {}
    return value if isinstance(value, dict) else {}


@dataclass
class PlaybookProgress:
    """Writes one readable log line per event and keeps the step's outputs.

    ``stats`` (per host: ok, changed, failed, unreachable, skipped) comes from Ansible's recap;
    ``failed_tasks`` lists every task failure that was not ignored, and every unreachable host,
    as ``{host, task, msg}``; ``errors`` keeps Ansible's own error messages (a playbook that
    does not parse) for the step's error when no task failed.
    """

    log: LogSink
    stats: dict[str, dict[str, int]] = field(default_factory=dict)
    failed_tasks: list[dict[str, str]] = field(default_factory=list)
    unreachable: list[dict[str, str]] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    _error_started: bool = field(default=False, init=False, repr=False)

    def event(self, event: AnsibleEvent) -> None:
        """Log ``event`` and record what it tells about the run."""
        data = event.data
        host = str(data.get("host") or "")
        res = data.get("res")
        result: Mapping[str, Any] = res if isinstance(res, Mapping) else {}
        name = event.name
        if name == "playbook_on_play_start":
            self._out(f"PLAY [{data.get('name') or data.get('pattern') or ''}]")
        elif name == "playbook_on_task_start":
            self._out(f"TASK [{data.get('name') or data.get('task') or ''}]")
        elif name in ("runner_on_ok", "runner_item_on_ok"):
            status = "changed" if result.get("changed") else "ok"
            self._out(f"{status}: [{host}]{_item(name, result)}{_debug_message(data, result)}")
        elif name in ("runner_on_failed", "runner_item_on_failed"):
            message = failure_message(result)
            ignored = bool(data.get("ignore_errors"))
            label = "failed (ignored)" if ignored else "failed"
            self._out(f"{label}: [{host}]{_item(name, result)}: {message}")
            if name == "runner_on_failed" and not ignored:
                self.failed_tasks.append({"host": host, "task": _task(data), "msg": message})
        elif name in ("runner_on_skipped", "runner_item_on_skipped"):
            self._out(f"skipping: [{host}]{_item(name, result)}")
        elif name == "runner_on_unreachable":
            message = failure_message(result)
            self._out(f"unreachable: [{host}]: {message}")
            entry = {"host": host, "task": _task(data), "msg": f"unreachable: {message}"}
            self.unreachable.append(entry)
            self.failed_tasks.append(entry)
        elif name == "runner_retry":
            attempt, retries = result.get("attempts"), result.get("retries")
            self._out(f"retrying: [{host}] (attempt {attempt} of {retries})")
        elif name == "playbook_on_no_hosts_matched":
            self._out("skipping: no hosts matched")
        elif name == "playbook_on_stats":
            self._recap(data)
        elif name == "error":
            self._error_started = True

    def text(self, stream: LogStream, line: str, event: str | None) -> None:
        """Log a line of Ansible's own text where no event line says it better.

        Text of result events is replaced by the one-line summaries above, except the
        warnings printed with a result. The first line of each error is kept for the step's
        error message (a playbook that does not parse fails before any task).
        """
        if event is None or event in _TEXT_EVENTS:
            self.log.write(stream, line)
            if event == "error" and self._error_started:
                self.errors.append(line.strip())
                self._error_started = False
            elif event is None and stream is LogStream.STDERR and "ERROR" in line:
                self.errors.append(line.strip())
        elif line.startswith(_WARNING_PREFIXES):
            self.log.write(LogStream.STDERR, line)

    def failure(self, exit_code: int) -> tuple[str, bool]:
        """The step's error for a non-zero exit, and whether another attempt might help.

        A task failure names the task and host; otherwise an unreachable host is named;
        otherwise Ansible's own error is quoted (a playbook or option it refused, which
        running again cannot fix: exit codes 4 and 5).
        """
        failures = [entry for entry in self.failed_tasks if entry not in self.unreachable]
        more = len(self.failed_tasks) - 1
        if failures:
            first = failures[0]
            error = f"task {first['task']!r} failed on {first['host']}: {first['msg']}"
            return _and_more(error, more), True
        if self.unreachable:
            first = self.unreachable[0]
            message = first["msg"].removeprefix("unreachable: ")
            error = f"host {first['host']} unreachable (task {first['task']!r}): {message}"
            return _and_more(error, more), True
        reason = self.errors[-1] if self.errors else "see the step log"
        error = f"ansible-playbook failed with exit code {exit_code}: {reason}"
        return error, exit_code not in _REFUSED_EXIT_CODES

    def _out(self, line: str) -> None:
        self.log.write(LogStream.STDOUT, line)

    def _recap(self, data: Mapping[str, Any]) -> None:
        hosts: set[str] = set()
        for key in ("processed", *_RECAP_SOURCES.values()):
            counts = data.get(key)
            if isinstance(counts, Mapping):
                hosts.update(str(host) for host in counts)
        self._out("PLAY RECAP")
        for host in sorted(hosts):
            row = {}
            for out_key, source in _RECAP_SOURCES.items():
                counts = data.get(source)
                value = counts.get(host, 0) if isinstance(counts, Mapping) else 0
                row[out_key] = int(value) if isinstance(value, int) else 0
            self.stats[host] = row
            self._out(f"{host} : " + " ".join(f"{key}={row[key]}" for key in STAT_KEYS))


def failure_message(result: Mapping[str, Any]) -> str:
    """One readable line saying why a task failed: Ansible's msg, plus rc and stderr if any."""
    if "censored" in result:
        return str(result["censored"])
    message = str(result.get("msg") or "").strip()
    stderr = str(result.get("stderr") or "").strip()
    rc = result.get("rc")
    if isinstance(rc, int) and rc != 0 and f"rc={rc}" not in message:
        message = f"{message} (rc={rc})" if message else f"exit code {rc}"
    if stderr and stderr not in message:
        last = stderr.splitlines()[-1].strip()
        message = f"{message}: {last}" if message else last
    item = _failed_item_message(result)  # a loop: say which item failed and why
    if item and item not in message:
        message = f"{message} ({item})" if message else item
    if not message:
        message = "failed (Ansible gave no message)"
    message = " ".join(message.split())  # one line in the log and in the error
    if len(message) > MAX_MESSAGE_CHARS:
        message = message[: MAX_MESSAGE_CHARS - 3] + "..."
    return message


def _failed_item_message(result: Mapping[str, Any]) -> str | None:
    for item in _as_list(result.get("results")):
        if isinstance(item, Mapping) and item.get("failed"):
            return f"item={_label(item)}: {failure_message(item)}"
    return None


def _task(data: Mapping[str, Any]) -> str:
    return str(data.get("task") or data.get("name") or "")


def _item(event_name: str, result: Mapping[str, Any]) -> str:
    """`` (item=...)`` for the per-item events of a loop."""
    if "_item_" not in event_name:
        return ""
    return f" (item={_label(result)})"


def _label(result: Mapping[str, Any]) -> str:
    label = result.get("_ansible_item_label", result.get("item"))
    return label if isinstance(label, str) else json.dumps(label, default=str)


def _debug_message(data: Mapping[str, Any], result: Mapping[str, Any]) -> str:
    """What a ``debug`` task prints: the point of such a task is to show it in the log."""
    action = str(data.get("resolved_action") or data.get("task_action") or "")
    if action.rsplit(".", 1)[-1] != "debug" or "msg" not in result:
        return ""
    message = result["msg"]
    text = message if isinstance(message, str) else json.dumps(message, default=str)
    return " => " + " ".join(text.split())


def _as_list(value: Any) -> list[Any]:
    return list(value) if isinstance(value, list | tuple) else []


def _and_more(error: str, more: int) -> str:
    if more <= 0:
        return error
    return f"{error} (and {more} more failure{'s' if more > 1 else ''})"
