"""Webhook triggers: how a generic JSON delivery on ``POST /hooks/{key}`` proves who sent it.

A sender holds the trigger's secret and shows it one of two ways:

- **Bearer**: ``Authorization: Bearer <secret>``. Checked from the headers alone, so a wrong
  secret is refused before one byte of the body is read.
- **Standard Webhooks signature** (https://www.standardwebhooks.com, spec
  ``spec/standard-webhooks.md``, "Signature scheme" and "Verifying signatures"): headers
  ``webhook-id``, ``webhook-timestamp`` (integer Unix seconds) and ``webhook-signature``, a
  space-separated list of ``v1,<base64 HMAC-SHA256>`` entries over the bytes
  ``<id>.<timestamp>.<raw body>``. One matching entry is enough (senders list several while
  they rotate keys); entries of other versions (``v1a`` is ed25519) are skipped. The timestamp
  must lie within `TOLERANCE_SECONDS` of the server's clock, in either direction, so a recorded
  delivery cannot be replayed later. The body's bytes are verified exactly as received, never
  re-serialized JSON.

The HMAC key follows the spec's secret format: a secret written ``whsec_<base64>`` signs with
the decoded bytes (the form opsflow generates, and what Standard Webhooks libraries expect);
any other secret (an opsflow secret a person chose) signs with its UTF-8 bytes. Every
comparison is constant-time (`hmac.compare_digest`).

The standardwebhooks package (the spec's reference library) is not used to verify: it decodes
the body as UTF-8 text, lets malformed headers escape as ValueError or binascii.Error, and
reads the wall clock itself. The tests sign with it to show the two agree.

Everything here is pure: the caller passes the headers, the body and ``now``.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import re
import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from opsflow.spec.triggers import TriggerType
from opsflow.triggers.ingress import BodyInvalid, Headers, NotAuthenticated, Reading, Start

TOLERANCE_SECONDS = 5 * 60  # the spec's recommendation, and the limit
SECRET_PREFIX = "whsec_"
SECRET_BYTES = 32  # the spec asks for 24 to 64 random bytes
MAX_ID_LENGTH = 200  # a webhook-id / Idempotency-Key is stored to deduplicate: keep it bounded
MAX_BODY_BYTES = 1024 * 1024

ID_HEADER = "webhook-id"
TIMESTAMP_HEADER = "webhook-timestamp"
SIGNATURE_HEADER = "webhook-signature"
IDEMPOTENCY_HEADER = "idempotency-key"

_TIMESTAMP = re.compile(r"[0-9]{1,12}")


def new_secret() -> str:
    """A fresh secret in the spec's serialization: ``whsec_`` and 32 random bytes in base64."""
    return SECRET_PREFIX + base64.b64encode(secrets.token_bytes(SECRET_BYTES)).decode()


def signing_key(secret: str) -> bytes:
    """The HMAC key of ``secret``: the decoded bytes of a ``whsec_`` secret, else its UTF-8."""
    if secret.startswith(SECRET_PREFIX):
        encoded = secret[len(SECRET_PREFIX) :]
        try:
            return base64.b64decode(encoded + "=" * (-len(encoded) % 4), validate=True)
        except binascii.Error:
            pass  # not base64 after all: a person's secret that happens to start so
    return secret.encode()


def sign(secret: str, webhook_id: str, timestamp: int | str, body: bytes) -> str:
    """The ``webhook-signature`` value a sender puts on ``body`` (one ``v1`` entry)."""
    content = f"{webhook_id}.{timestamp}.".encode() + body
    digest = hmac.new(signing_key(secret), content, hashlib.sha256).digest()
    return "v1," + base64.b64encode(digest).decode()


def is_signed(headers: Mapping[str, str]) -> bool:
    """Whether the delivery carries a Standard Webhooks signature (to be checked with the
    body) rather than a bearer token (checked from the headers alone)."""
    return SIGNATURE_HEADER in headers


def check_bearer(secret: str, headers: Mapping[str, str]) -> None:
    """Accept ``Authorization: Bearer <secret>``, or raise `NotAuthenticated`.

    Both sides are hashed first, so the comparison takes the same time whatever the length
    of what was sent.
    """
    authorization = headers.get("authorization")
    if authorization is None:
        raise NotAuthenticated(
            "the delivery is not authenticated: send the trigger's secret as "
            "'Authorization: Bearer <secret>', or sign the body with the webhook-id, "
            "webhook-timestamp and webhook-signature headers (Standard Webhooks)"
        )
    scheme, _, token = authorization.strip().partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise NotAuthenticated("the Authorization header must read 'Bearer <secret>'")
    if not same_secret(token.strip(), secret):
        raise NotAuthenticated("the bearer token is not this trigger's secret")


def same_secret(given: str, secret: str) -> bool:
    """Constant-time equality of two secrets of any lengths."""
    return hmac.compare_digest(
        hashlib.sha256(given.encode()).digest(), hashlib.sha256(secret.encode()).digest()
    )


def check_signature(secret: str, headers: Mapping[str, str], body: bytes, now: float) -> str:
    """Accept a Standard Webhooks signature of ``body`` made at most `TOLERANCE_SECONDS` from
    ``now``; return its ``webhook-id``. Raise `NotAuthenticated` naming what is wrong."""
    webhook_id = headers.get(ID_HEADER, "")
    stamp = headers.get(TIMESTAMP_HEADER, "")
    signatures = headers.get(SIGNATURE_HEADER, "")
    missing = [
        name for name, value in ((ID_HEADER, webhook_id), (TIMESTAMP_HEADER, stamp)) if not value
    ]
    if missing:
        raise NotAuthenticated(
            f"a signed delivery needs the {' and '.join(missing)} header"
            f"{'s' if len(missing) > 1 else ''} as well as {SIGNATURE_HEADER}"
        )
    if len(webhook_id) > MAX_ID_LENGTH:
        raise NotAuthenticated(f"{ID_HEADER} is longer than {MAX_ID_LENGTH} characters")
    if not _TIMESTAMP.fullmatch(stamp):
        raise NotAuthenticated(
            f"{TIMESTAMP_HEADER} must be whole seconds since 1970 (e.g. {int(now)}), "
            f"not {stamp[:40]!r}"
        )
    skew = int(stamp) - now
    if abs(skew) > TOLERANCE_SECONDS:
        when = "in the future" if skew > 0 else "old"
        raise NotAuthenticated(
            f"the signature's timestamp is {abs(skew):.0f} s {when}; at most "
            f"{TOLERANCE_SECONDS} s either way is accepted (check the sender's clock)"
        )
    expected = base64.b64decode(sign(secret, webhook_id, stamp, body)[3:])
    for entry in signatures.split():
        version, _, encoded = entry.partition(",")
        if version != "v1":
            continue
        try:
            given = base64.b64decode(encoded, validate=True)
        except binascii.Error:
            continue  # a malformed entry matches nothing; another entry may still match
        if hmac.compare_digest(given, expected):
            return webhook_id
    raise NotAuthenticated(
        "no v1 signature in webhook-signature matches the body signed with this trigger's "
        "secret (sign '<webhook-id>.<webhook-timestamp>.<raw body>' with HMAC-SHA256)"
    )


def dedupe_key(headers: Mapping[str, str]) -> str | None:
    """What makes a repeat of this delivery recognisable: ``Idempotency-Key``, else the
    signature's ``webhook-id``; None when the sender gave neither."""
    key = headers.get(IDEMPOTENCY_HEADER) or headers.get(ID_HEADER)
    if key is not None and len(key) > MAX_ID_LENGTH:
        raise BodyInvalid(f"the idempotency key is longer than {MAX_ID_LENGTH} characters")
    return key or None


@dataclass(frozen=True)
class WebhookBody:
    """A webhook delivery's JSON body: the whole object (``trigger.body``) and the run's
    params it asks for (its ``params`` object)."""

    body: dict[str, Any]
    params: dict[str, Any]


def read_body(raw: bytes) -> WebhookBody:
    """Parse a webhook body: empty means ``{}``; otherwise one JSON object whose optional
    ``params`` is an object. Raise `BodyInvalid` saying what is wrong and where."""
    if not raw.strip():
        return WebhookBody(body={}, params={})
    try:
        parsed = json.loads(raw)
    except UnicodeDecodeError as exc:
        raise BodyInvalid(f"the body is not UTF-8 text: {exc.reason} at byte {exc.start}") from exc
    except json.JSONDecodeError as exc:
        raise BodyInvalid(
            f"the body is not JSON: {exc.msg} at line {exc.lineno} column {exc.colno}"
        ) from exc
    if not isinstance(parsed, dict):
        raise BodyInvalid(f"the body must be a JSON object, not {_json_kind(parsed)}")
    params = parsed.get("params", {})
    if not isinstance(params, dict):
        raise BodyInvalid(
            f"'params' must be an object of param names to values, not {_json_kind(params)}"
        )
    return WebhookBody(body=parsed, params=params)


def _json_kind(value: Any) -> str:
    if isinstance(value, list):
        return "an array"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, bool):
        return "a boolean"
    if value is None:
        return "null"
    return "a number"


class WebhookSource:
    """Generic JSON deliveries: bearer or Standard Webhooks signature, at most 1 MiB, one run
    each, deduplicated by ``Idempotency-Key`` or ``webhook-id``."""

    trigger_type = TriggerType.WEBHOOK
    max_body_bytes = MAX_BODY_BYTES

    def authenticate(self, spec: Mapping[str, Any], secret: str, headers: Headers) -> bool:
        if is_signed(headers):
            return False
        check_bearer(secret, headers)
        return True

    def check_body(
        self, spec: Mapping[str, Any], secret: str, headers: Headers, body: bytes, now: float
    ) -> None:
        check_signature(secret, headers, body, now)

    def read(self, spec: Mapping[str, Any], headers: Headers, body: bytes) -> Reading:
        parsed = read_body(body)
        key = dedupe_key(headers)
        summary = f"delivery {key}" if key else "delivery without an idempotency key"
        return Reading(
            [
                Start(
                    dedupe_key=key,
                    params=parsed.params,
                    trigger={"body": parsed.body, "delivery_id": key},
                    summary=summary,
                    source=f"webhook {summary}",
                )
            ]
        )
