"""Token secrets: ``opf_<random>`` (API tokens of users) and ``opfa_<random>`` (agent tokens),
shown once, stored only as their SHA-256.

A fast hash is right here (unlike passwords): the secret has 256 bits of entropy, so nobody
can guess it from the hash, and every request checks one.
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

from opsflow.errors import InvalidInput
from opsflow.spec.duration import parse_duration

TOKEN_PREFIX = "opf_"
AGENT_TOKEN_PREFIX = "opfa_"  # an agent token: the agent protocol only, one pool


@dataclass(frozen=True)
class NewSecret:
    secret: str  # give to the user once
    secret_hash: str  # store
    prefix: str  # store and show


def new_secret(prefix: str = TOKEN_PREFIX) -> NewSecret:
    """A fresh secret (256 random bits after ``prefix``), its hash and its display prefix."""
    secret = prefix + secrets.token_urlsafe(32)
    # The prefix and 8 characters: enough to tell tokens apart in a list.
    return NewSecret(secret, hash_secret(secret), secret[: len(prefix) + 8])


def hash_secret(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def parse_lifetime(text: str) -> timedelta:
    """A token lifetime such as ``30d`` or ``12h``, read by the one duration parser."""
    try:
        seconds = parse_duration(text)
    except ValueError as exc:
        raise InvalidInput(f"expires_in: {exc}") from None
    if seconds <= 0:
        raise InvalidInput(f"expires_in {text!r} must be longer than zero")
    return timedelta(seconds=seconds)


def expiry(now: datetime, expires_in: str | None, expires_at: datetime | None) -> datetime | None:
    """When a new token expires: from a lifetime or an instant (not both); None is never."""
    if expires_in is not None and expires_at is not None:
        raise InvalidInput("give expires_in or expires_at, not both")
    if expires_in is not None:
        return now + parse_lifetime(expires_in)
    if expires_at is not None:
        if expires_at.tzinfo is None:
            raise InvalidInput("expires_at needs a time zone, for example 2030-01-01T00:00:00Z")
        if expires_at <= now:
            raise InvalidInput("expires_at is in the past")
    return expires_at
