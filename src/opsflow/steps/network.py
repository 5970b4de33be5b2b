"""Why a network call failed, in words: "name not resolved", "connection refused", "TLS
verification failed", "timed out", never an errno string like "[Errno 111]" or "Unknown error -2".

HTTP steps hand over the exception, whose chain holds the socket-level cause. Notify steps only
get Apprise's text of the exception, so the same causes are also recognised in a message.
"""

from __future__ import annotations

import errno
import os
import re
import socket
import ssl
from dataclasses import dataclass

NAME_NOT_RESOLVED = "name not resolved"
CONNECTION_REFUSED = "connection refused"
TLS_VERIFICATION_FAILED = "TLS verification failed"
TLS_FAILED = "TLS handshake failed"
TIMED_OUT = "timed out"
CONNECTION_RESET = "connection reset by the server"
NETWORK_UNREACHABLE = "network unreachable"
HOST_UNREACHABLE = "host unreachable"

_ERRNO_WORDS = {
    errno.ECONNREFUSED: CONNECTION_REFUSED,
    errno.ECONNRESET: CONNECTION_RESET,
    errno.ECONNABORTED: "connection aborted",
    errno.EPIPE: "connection closed by the server",
    errno.ENETUNREACH: NETWORK_UNREACHABLE,
    errno.EHOSTUNREACH: HOST_UNREACHABLE,
    errno.ETIMEDOUT: TIMED_OUT,
    errno.EADDRNOTAVAIL: "address not available",
}
_GAI_DETAIL = {
    socket.EAI_AGAIN: "the DNS server did not answer in time",
    socket.EAI_FAIL: "the DNS server failed",
}
_ERRNO_PREFIX = re.compile(r"\[Errno -?\d+\]\s*")


@dataclass(frozen=True)
class NetworkCause:
    """A failure's cause in words; ``retryable`` is False when trying again cannot help (a
    certificate the agent does not trust)."""

    words: str
    detail: str = ""
    retryable: bool = True

    def __str__(self) -> str:
        return f"{self.words}: {self.detail}" if self.detail else self.words


def cause_of(exc: BaseException) -> NetworkCause | None:
    """The socket-level cause found in ``exc``'s chain, or None when there is none."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        found = _cause(current)
        if found is not None:
            return found
        current = current.__cause__ or current.__context__
    return None


def _cause(exc: BaseException) -> NetworkCause | None:
    if isinstance(exc, socket.gaierror):
        return NetworkCause(NAME_NOT_RESOLVED, _GAI_DETAIL.get(exc.errno or 0, ""))
    if isinstance(exc, ssl.SSLCertVerificationError):
        return NetworkCause(TLS_VERIFICATION_FAILED, exc.verify_message or "", retryable=False)
    if isinstance(exc, ssl.SSLError):
        return NetworkCause(TLS_FAILED, (exc.reason or "").replace("_", " ").lower())
    if isinstance(exc, TimeoutError):
        return NetworkCause(TIMED_OUT)
    if isinstance(exc, OSError) and exc.errno:
        words = _ERRNO_WORDS.get(exc.errno)
        if words is None and exc.errno > 0:
            words = os.strerror(exc.errno).lower()
        if words is not None:
            return NetworkCause(words)
    return None


_TEXT_CAUSES: tuple[tuple[re.Pattern[str], str], ...] = (
    (
        re.compile(
            r"NameResolutionError|Name or service not known|nodename nor servname|"
            r"getaddrinfo failed|failure in name resolution|No address associated|"
            r"Failed to resolve",
            re.IGNORECASE,
        ),
        NAME_NOT_RESOLVED,
    ),
    (
        re.compile(r"CERTIFICATE_VERIFY_FAILED|certificate verify failed", re.IGNORECASE),
        TLS_VERIFICATION_FAILED,
    ),
    (re.compile(r"Connection refused|\[Errno 111\]", re.I), CONNECTION_REFUSED),
    (re.compile(r"Connection reset|\[Errno 104\]", re.I), CONNECTION_RESET),
    (re.compile(r"Network is unreachable", re.I), NETWORK_UNREACHABLE),
    (re.compile(r"No route to host", re.I), HOST_UNREACHABLE),
    (re.compile(r"timed out|timeout", re.I), TIMED_OUT),
    (re.compile(r"SSLError|\[SSL[:\]]", re.I), TLS_FAILED),
)
_VERIFY_DETAIL = re.compile(r"certificate verify failed: ([^()'\"]+?)\s*(?:\(_ssl|['\")]|$)")


def cause_in_text(text: str) -> NetworkCause | None:
    """The cause named in a library's message about a failed call (Apprise logs only text)."""
    for pattern, words in _TEXT_CAUSES:
        if pattern.search(text):
            if words == TLS_VERIFICATION_FAILED:
                detail = _VERIFY_DETAIL.search(text)
                return NetworkCause(words, detail.group(1) if detail else "", retryable=False)
            return NetworkCause(words)
    return None


def without_errno(text: str) -> str:
    """``"[Errno 113] No route to host"`` -> ``"No route to host"``: the words only."""
    return _ERRNO_PREFIX.sub("", text)
