"""What the server writes to its own log carries no secret: a filter on the log handlers.

Libraries log on their own terms (httpx writes every request line at INFO, query string
included), and an exception message may quote a value; the server's stdout and stderr are a
sink like any other. `SecretLogFilter` masks, with the same `Masker` (and so every encoding it
knows), each record that reaches a handler it is installed on: the message with its arguments,
the exception text and the stack. It learns values from the vault: every secret (and kept
previous value) when the server starts, and every value the vault reveals or sets afterwards,
so a value another replica set is known here before any job of this process can see it.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterable, Mapping
from typing import Any

from opsflow.auth.masking import Masker

# Loggers whose per-request INFO lines are silenced: they say nothing an operator needs, and
# an http step's URL may carry a secret (masked by the filter, but best not written at all).
# AsyncSSH writes several lines per SSH session of an ssh step (each host's login, channel,
# command line); its warnings and errors still show.
CHATTY_LOGGERS = ("httpx", "httpcore", "asyncssh")


class SecretLogFilter(logging.Filter):
    """Masks every secret value it has learned in each record; never drops a record."""

    def __init__(self) -> None:
        super().__init__()
        self._lock = threading.Lock()
        self._values: frozenset[str] = frozenset()
        self._masker = Masker(())

    def learn(self, values: Iterable[str]) -> None:
        """Add ``values`` to what is masked (cheap when they are all known already)."""
        new = {v for v in values if v} - self._values
        if not new:
            return
        with self._lock:
            merged = self._values | new
            self._masker = Masker(sorted(merged))
            self._values = merged

    def mask(self, text: str) -> str:
        """``text`` with every learned value masked."""
        return self._masker.mask(text)

    def filter(self, record: logging.LogRecord) -> bool:
        masker = self._masker
        if not masker:
            return True
        try:
            message = record.getMessage()
        except Exception:  # a broken format string: leave it for the handler to report
            return True
        if masker.mask(message) != message:
            record.msg, record.args = self._masked_parts(record, masker)
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = masker.mask(record.exc_text)
        if record.stack_info:
            record.stack_info = masker.mask(record.stack_info)
        return True

    @staticmethod
    def _masked_parts(record: logging.LogRecord, masker: Masker) -> tuple[Any, Any]:
        """The record's format and arguments with secrets masked, each where it is.

        Formatters may read the arguments themselves (uvicorn's access formatter unpacks
        ``(client, method, path, version, status)``), so they keep their shape: string
        arguments are masked one by one. Only when that still leaves a secret in the message
        (an argument that is not a string prints one) is the record flattened into its masked
        message, with the arguments of the shape it had emptied."""
        args = record.args
        msg = masker.mask(record.msg) if isinstance(record.msg, str) else record.msg
        kept: Any
        if isinstance(args, tuple):
            kept = tuple(masker.mask(a) if isinstance(a, str) else a for a in args)
        elif isinstance(args, Mapping):
            kept = {k: masker.mask(v) if isinstance(v, str) else v for k, v in args.items()}
        else:
            kept = args
        try:
            rebuilt = str(msg) % kept if kept else str(msg)
        except Exception:
            rebuilt = None
        if rebuilt is not None and masker.mask(rebuilt) == rebuilt:
            return msg, kept
        flat = masker.mask(record.getMessage())
        return flat, ({} if isinstance(args, Mapping) else ())

    def install(self) -> None:
        """Put the filter on every handler configured now (the root's and those of named
        loggers such as uvicorn's), and quiet the libraries' per-request lines."""
        handlers = list(logging.getLogger().handlers)
        for logger in list(logging.Logger.manager.loggerDict.values()):
            if isinstance(logger, logging.Logger):
                handlers.extend(logger.handlers)
        for handler in handlers:
            if self not in handler.filters:
                handler.addFilter(self)
        for name in CHATTY_LOGGERS:
            logging.getLogger(name).setLevel(logging.WARNING)


# The server's one filter: logging is process-wide, and so is what it must not print.
SERVER_LOG_FILTER = SecretLogFilter()
