"""Agent tokens: the credential of ``opsflow agent``, bound to one pool.

An admin creates one (``opsflow agents tokens create --pool eu``, ``POST
/api/v1/agents/tokens``); its secret ``opfa_<random>`` is shown once and stored as its SHA-256
(`opsflow.auth.tokens`). It opens the agent protocol (``/api/v1/agent/...``) for its pool and
nothing else; a user's API token does not open it. Revoking it refuses its next request on
every agent route, a claim already waiting on the server included.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import datetime

from opsflow.auth.credentials import LAST_USED_PRECISION
from opsflow.auth.tokens import AGENT_TOKEN_PREFIX, TOKEN_PREFIX, NewSecret, new_secret
from opsflow.errors import Forbidden, Unauthorized
from opsflow.store import agent_tokens as store
from opsflow.store.agent_tokens import AgentToken
from opsflow.store.session import Session

CREATE_HINT = "an admin creates one with `opsflow agents tokens create --pool POOL`"


@dataclass(frozen=True)
class AgentCredential:
    """An authenticated agent: the token it used and the pool that token is bound to."""

    token_id: str
    pool: str
    # Its last use is older than `LAST_USED_PRECISION`: the caller records this one
    # (`store.touch_token`, in a transaction of its own).
    touch: bool = False

    def pools_for(self, asked: list[str]) -> list[str]:
        """The pools an agent that asked for ``asked`` may serve: the token's pool when it
        asked for none; `Forbidden`, naming both pools, when it asked for another."""
        other = [pool for pool in asked if pool != self.pool]
        if other:
            raise Forbidden(
                f"agent token {self.token_id} is bound to pool {self.pool!r}; the agent asked "
                f"for pool {other[0]!r}: start it with --pool {self.pool} (or without --pool), "
                f"or with a token of pool {other[0]!r}"
            )
        return [self.pool]


def issue_agent_token(
    session: Session, *, name: str, pool: str, created_by: str
) -> tuple[AgentToken, str]:
    """Create an agent token of ``pool``; returns it and its secret, which is never stored."""
    fresh: NewSecret = new_secret(AGENT_TOKEN_PREFIX)
    token = store.create_token(
        session,
        name=name,
        pool=pool,
        secret_hash=fresh.secret_hash,
        prefix=fresh.prefix,
        created_by=created_by,
    )
    return token, fresh.secret


def agent_secret(authorization: str | None) -> str:
    """The agent token's secret an ``Authorization: Bearer opfa_...`` header carries, or why
    not: `Unauthorized` (401) for none or one that is not an agent token's, `Forbidden` (403)
    for a user's API token, which is the wrong kind. Reads no database."""
    scheme, _, secret = (authorization or "").strip().partition(" ")
    secret = secret.strip()
    if scheme.lower() != "bearer" or not secret:
        raise Unauthorized(f"no agent token: send `Authorization: Bearer opfa_...` ({CREATE_HINT})")
    if secret.startswith(TOKEN_PREFIX):
        raise Forbidden(
            "the agent protocol takes an agent token (opfa_...), not a user's API token: "
            + CREATE_HINT
        )
    if not secret.startswith(AGENT_TOKEN_PREFIX):
        raise Unauthorized(f"invalid agent token: agent tokens start with {AGENT_TOKEN_PREFIX!r}")
    return secret


def credential_of(token: AgentToken | None, now: datetime) -> AgentCredential:
    """The credential of ``token`` (found by the hash of the secret `agent_secret` read), or
    `Unauthorized` (401) for none or a revoked one; ``touch`` on the answer says when the
    token's last use is due to be recorded. The lookup only reads (one indexed lookup): an
    agent sends several requests per job, so the check must take no write lock."""
    if token is None:
        raise Unauthorized("invalid agent token: no such token (it may have been deleted)")
    if token.revoked_at is not None:
        raise Unauthorized(f"agent token {token.id} was revoked at {token.revoked_at.isoformat()}")
    touch = token.last_used_at is None or now - token.last_used_at >= LAST_USED_PRECISION
    return AgentCredential(token_id=token.id, pool=token.pool, touch=touch)


class CheckedTokens:
    """Agent tokens this process found live, by their secret's hash, so that the agent's
    next requests skip the lookup (a connection checkout and a worker thread each: a tenth
    of the server's CPU in a fan-out, py-spy, benchmarks/README.md).

    An entry holds while the ``generation`` it was checked under is current and for at most
    `MAX_AGE_SECONDS`. The caller's generation is the event bus's ``jobs_generation``: every
    revocation bumps it on every replica (the revocation wakes the waiting claims), as does a
    reconnect of the cross-replica bus, so a revoked token is refused from the revocation's
    wake-up on, as before. Read the generation *before* the lookup: a revocation committed
    after the lookup then bumps it past the entry. `MAX_AGE_SECONDS` bounds what no wake-up
    announces (a row changed by hand). Used from the event loop only (not thread-safe)."""

    MAX_AGE_SECONDS = 5.0
    MAX_ENTRIES = 1024

    def __init__(self) -> None:
        # secret hash -> (generation, checked at (monotonic), pool, token id, last use)
        self._entries: dict[str, tuple[int, float, str, str, datetime | None]] = {}

    def get(self, secret_hash: str, generation: int, now: datetime) -> AgentCredential | None:
        """The credential checked earlier, or None when it must be looked up again. A hit
        whose last use is due to be recorded says ``touch`` once (its later hits do not)."""
        entry = self._entries.get(secret_hash)
        if entry is None:
            return None
        checked_gen, checked_at, pool, token_id, last_used = entry
        if checked_gen != generation or time.monotonic() - checked_at > self.MAX_AGE_SECONDS:
            del self._entries[secret_hash]
            return None
        touch = last_used is None or now - last_used >= LAST_USED_PRECISION
        if touch:
            self._entries[secret_hash] = (checked_gen, checked_at, pool, token_id, now)
        return AgentCredential(token_id=token_id, pool=pool, touch=touch)

    def put(
        self,
        secret_hash: str,
        generation: int,
        credential: AgentCredential,
        last_used: datetime | None,
    ) -> None:
        """Remember a live token's credential, looked up under ``generation``; ``last_used``:
        its last use as recorded (the time of this one when the lookup recorded it)."""
        if len(self._entries) >= self.MAX_ENTRIES:
            self._entries.clear()
        self._entries[secret_hash] = (
            generation,
            time.monotonic(),
            credential.pool,
            credential.token_id,
            last_used,
        )


def ensure_live(session: Session, token_id: str) -> None:
    """`Unauthorized` if the token was revoked since its request was authenticated (a claim
    checks again in the transaction that leases jobs, so a revoked token is handed none)."""
    revoked = store.revoked_at(session, token_id)
    if revoked is not None:
        raise Unauthorized(f"agent token {token_id} was revoked at {revoked.isoformat()}")
