"""Agent token secrets and pool binding, without a server."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta

import pytest

from opsflow.auth.agent_tokens import AgentCredential, CheckedTokens, agent_secret
from opsflow.auth.credentials import LAST_USED_PRECISION
from opsflow.auth.tokens import AGENT_TOKEN_PREFIX, hash_secret, new_secret
from opsflow.errors import Forbidden, Unauthorized


def test_an_agent_token_secret_is_random_prefixed_and_only_its_hash_is_kept() -> None:
    one, two = new_secret(AGENT_TOKEN_PREFIX), new_secret(AGENT_TOKEN_PREFIX)
    assert one.secret.startswith("opfa_") and one.secret != two.secret
    assert one.secret_hash == hash_secret(one.secret) and one.secret not in one.secret_hash
    assert one.prefix == one.secret[:13] and len(one.secret) > 40


def test_an_agent_serves_its_tokens_pool_and_no_other() -> None:
    token = AgentCredential(token_id="atk_1", pool="eu")
    assert token.pools_for([]) == ["eu"]
    assert token.pools_for(["eu"]) == ["eu"]
    with pytest.raises(Forbidden) as refused:
        token.pools_for(["eu", "us"])
    message = refused.value.message
    assert "'eu'" in message and "'us'" in message and "--pool eu" in message


def test_a_checked_token_is_remembered_until_the_next_wake_up_or_a_few_seconds(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    checked, now = CheckedTokens(), datetime(2026, 12, 1, tzinfo=UTC)
    live = AgentCredential(token_id="atk_1", pool="eu")
    checked.put("h1", 7, live, last_used=now)
    assert checked.get("h1", 7, now) == live
    assert checked.get("h2", 7, now) is None
    # A wake-up of the waiting claims (every revocation sends one) forgets it.
    assert checked.get("h1", 8, now) is None and checked.get("h1", 7, now) is None
    checked.put("h1", 8, live, last_used=now)
    clock = time.monotonic() + CheckedTokens.MAX_AGE_SECONDS + 0.1
    monkeypatch.setattr(time, "monotonic", lambda: clock)
    assert checked.get("h1", 8, now) is None


def test_a_remembered_token_says_its_last_use_is_due_once_a_minute() -> None:
    checked, now = CheckedTokens(), datetime(2026, 12, 1, tzinfo=UTC)
    checked.put("h1", 1, AgentCredential(token_id="atk_1", pool="eu"), last_used=now)
    assert not checked.get("h1", 1, now + timedelta(seconds=30)).touch  # type: ignore[union-attr]
    later = now + LAST_USED_PRECISION
    assert checked.get("h1", 1, later).touch  # type: ignore[union-attr]
    assert not checked.get("h1", 1, later).touch  # type: ignore[union-attr]


def test_the_agent_secret_is_read_from_a_bearer_header_of_the_right_kind() -> None:
    secret = new_secret(AGENT_TOKEN_PREFIX).secret
    assert agent_secret(f"Bearer {secret}") == secret
    for header in (None, "", "Basic abc", "Bearer ", "Bearer nope"):
        with pytest.raises(Unauthorized):
            agent_secret(header)
    with pytest.raises(Forbidden):
        agent_secret("Bearer opf_user")
