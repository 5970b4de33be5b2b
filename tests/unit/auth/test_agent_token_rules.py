"""Agent token secrets and pool binding, without a server."""

from __future__ import annotations

import pytest

from opsflow.auth.agent_tokens import AgentCredential
from opsflow.auth.tokens import AGENT_TOKEN_PREFIX, hash_secret, new_secret
from opsflow.errors import Forbidden


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
