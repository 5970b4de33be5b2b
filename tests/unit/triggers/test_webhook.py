"""Webhook authentication (bearer, Standard Webhooks signatures) and body reading, pure."""

from __future__ import annotations

import base64
from datetime import UTC, datetime

import pytest
from standardwebhooks import Webhook

from opsflow.triggers.ingress import BodyInvalid, NotAuthenticated, Start
from opsflow.triggers.webhook import (
    TOLERANCE_SECONDS,
    WebhookSource,
    check_bearer,
    check_signature,
    new_secret,
    read_body,
    sign,
    signing_key,
)

NOW = 1_767_225_600  # 2026-01-01T00:00:00Z
BODY = b'{"params": {"replicas": 3}, "variables": {"sha": "abc"}}'


def signed(
    secret: str, body: bytes = BODY, *, at: int = NOW, msg_id: str = "msg_1"
) -> dict[str, str]:
    return {
        "webhook-id": msg_id,
        "webhook-timestamp": str(at),
        "webhook-signature": sign(secret, msg_id, at, body),
    }


def test_generated_secret_follows_the_spec_serialization() -> None:
    secret = new_secret()
    assert secret.startswith("whsec_")
    assert len(signing_key(secret)) == 32
    assert new_secret() != secret


def test_signature_made_by_the_reference_library_is_accepted() -> None:
    secret = new_secret()
    reference = Webhook(secret)
    at = datetime.fromtimestamp(NOW, UTC)
    headers = {
        "webhook-id": "msg_2KWPBgLlAfxdpx2AI54pPJ85f4W",
        "webhook-timestamp": str(NOW),
        "webhook-signature": reference.sign("msg_2KWPBgLlAfxdpx2AI54pPJ85f4W", at, BODY.decode()),
    }
    assert check_signature(secret, headers, BODY, NOW) == "msg_2KWPBgLlAfxdpx2AI54pPJ85f4W"


def test_our_signature_is_accepted_by_the_reference_library() -> None:
    secret = new_secret()
    headers = signed(secret, at=int(datetime.now(UTC).timestamp()))
    assert Webhook(secret).verify(BODY, headers) == {
        "params": {"replicas": 3},
        "variables": {"sha": "abc"},
    }


def test_a_person_chosen_secret_signs_with_its_utf8_bytes() -> None:
    assert signing_key("correct horse battery staple") == b"correct horse battery staple"
    assert signing_key("whsec_not base64!") == b"whsec_not base64!"
    check_signature("hunter2-hunter2", signed("hunter2-hunter2"), BODY, NOW)


def test_wrong_secret_is_refused() -> None:
    with pytest.raises(NotAuthenticated, match="no v1 signature"):
        check_signature(new_secret(), signed(new_secret()), BODY, NOW)


def test_changed_body_is_refused() -> None:
    secret = new_secret()
    with pytest.raises(NotAuthenticated, match="no v1 signature"):
        check_signature(secret, signed(secret), BODY + b" ", NOW)


@pytest.mark.parametrize("cut", [1, 10, 43])
def test_truncated_signature_is_refused(cut: int) -> None:
    secret = new_secret()
    headers = signed(secret)
    headers["webhook-signature"] = headers["webhook-signature"][:-cut]
    with pytest.raises(NotAuthenticated):
        check_signature(secret, headers, BODY, NOW)


@pytest.mark.parametrize("skew", [-TOLERANCE_SECONDS - 1, TOLERANCE_SECONDS + 1, -86400])
def test_timestamp_outside_five_minutes_is_refused_either_way(skew: int) -> None:
    secret = new_secret()
    with pytest.raises(NotAuthenticated, match="at most 300 s either way"):
        check_signature(secret, signed(secret, at=NOW + skew), BODY, NOW)


@pytest.mark.parametrize("skew", [-TOLERANCE_SECONDS, TOLERANCE_SECONDS, 0])
def test_timestamp_within_five_minutes_is_accepted(skew: int) -> None:
    secret = new_secret()
    check_signature(secret, signed(secret, at=NOW + skew), BODY, NOW)


def test_timestamp_is_part_of_what_is_signed() -> None:
    secret = new_secret()
    headers = signed(secret, at=NOW - 100)
    headers["webhook-timestamp"] = str(NOW)  # a replay with a fresh timestamp
    with pytest.raises(NotAuthenticated, match="no v1 signature"):
        check_signature(secret, headers, BODY, NOW)


@pytest.mark.parametrize("stamp", ["", "1767225600.5", "-1", "soon", "1e9"])
def test_malformed_timestamp_is_refused(stamp: str) -> None:
    secret = new_secret()
    headers = {**signed(secret), "webhook-timestamp": stamp}
    with pytest.raises(NotAuthenticated):
        check_signature(secret, headers, BODY, NOW)


def test_missing_id_is_refused_by_name() -> None:
    secret = new_secret()
    headers = signed(secret)
    del headers["webhook-id"]
    with pytest.raises(NotAuthenticated, match="webhook-id header"):
        check_signature(secret, headers, BODY, NOW)


def test_any_one_of_several_signatures_may_match() -> None:
    secret = new_secret()
    good = signed(secret)["webhook-signature"]
    headers = signed(secret)
    headers["webhook-signature"] = f"v1a,{base64.b64encode(b'x' * 64).decode()} v1,!!!! {good}"
    assert check_signature(secret, headers, BODY, NOW) == "msg_1"


def test_entries_of_other_versions_or_shapes_never_match() -> None:
    secret = new_secret()
    digest = signed(secret)["webhook-signature"].split(",", 1)[1]
    for value in (f"v2,{digest}", digest, f"v1 {digest}", "v1,", ""):
        headers = {**signed(secret), "webhook-signature": value}
        with pytest.raises(NotAuthenticated):
            check_signature(secret, headers, BODY, NOW)


def test_bearer_with_the_secret_is_accepted() -> None:
    check_bearer("s3cret-value", {"authorization": "Bearer s3cret-value"})
    check_bearer("s3cret-value", {"authorization": "bearer  s3cret-value "})


@pytest.mark.parametrize(
    ("authorization", "why"),
    [
        (None, "not authenticated"),
        ("Bearer wrong", "not this trigger's secret"),
        ("Bearer s3cret-valu", "not this trigger's secret"),
        ("Basic czNjcmV0LXZhbHVl", "must read 'Bearer"),
        ("Bearer", "must read 'Bearer"),
    ],
)
def test_bearer_refusals_say_why(authorization: str | None, why: str) -> None:
    headers = {} if authorization is None else {"authorization": authorization}
    with pytest.raises(NotAuthenticated, match=why):
        check_bearer("s3cret-value", headers)


def test_source_asks_for_the_body_only_when_signed() -> None:
    source = WebhookSource()
    assert source.authenticate({}, "k", {"authorization": "Bearer k"}) is True
    assert source.authenticate({}, "k", signed("k")) is False
    with pytest.raises(NotAuthenticated):
        source.authenticate({}, "k", {})


def test_body_is_the_whole_object_and_its_params() -> None:
    parsed = read_body(BODY)
    assert parsed.params == {"replicas": 3}
    assert parsed.body["variables"] == {"sha": "abc"}
    assert read_body(b"").body == {}
    assert read_body(b"  \n").params == {}


@pytest.mark.parametrize(
    ("raw", "why"),
    [
        (b'{"params": ', "not JSON"),
        (b"[1, 2]", "a JSON object, not an array"),
        (b'"text"', "not a string"),
        (b'{"params": [1]}', "'params' must be an object"),
        (b"\xff\xfe{}", "not"),
    ],
)
def test_malformed_bodies_say_what_is_wrong(raw: bytes, why: str) -> None:
    with pytest.raises(BodyInvalid, match=why):
        read_body(raw)


def test_idempotency_key_wins_over_webhook_id() -> None:
    source = WebhookSource()
    both = {**signed("k"), "idempotency-key": "deploy-42"}
    (start,) = source.read({}, both, BODY).items
    assert isinstance(start, Start)
    assert start.dedupe_key == "deploy-42"
    assert start.trigger["body"]["variables"] == {"sha": "abc"}
    assert start.params == {"replicas": 3}
    (plain,) = source.read({}, {}, b"{}").items
    assert isinstance(plain, Start) and plain.dedupe_key is None
    with pytest.raises(BodyInvalid, match="longer than"):
        source.read({}, {"idempotency-key": "x" * 201}, b"{}")


@pytest.mark.parametrize(
    "proof",
    [
        {"x-gitlab-token": "k"},
        {"x-hub-signature-256": "sha256=" + "0" * 64},
        {"x-gitea-signature": "0" * 64},
        {"authorization": "Basic " + base64.b64encode(b"alertmanager:k").decode()},
    ],
)
def test_another_sources_scheme_with_the_right_secret_is_refused(proof: dict[str, str]) -> None:
    with pytest.raises(NotAuthenticated):
        WebhookSource().authenticate({}, "k", proof)
