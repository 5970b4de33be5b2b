"""The seam behind ``POST /hooks/{key}``: one route, one `HookSource` per trigger type.

The route (``api/hooks.py``) finds the trigger that owns the key and asks that trigger type's
source, in this order:

1. `HookSource.authenticate` with the headers alone. A source whose proof needs no body (a
   bearer token, GitLab's ``X-Gitlab-Token``) answers True and nothing more is read from a
   sender who fails; one whose proof signs the body answers False.
2. The route reads the raw body, at most `HookSource.max_body_bytes` (413 past that, without
   reading the rest), then for a False above calls `HookSource.check_body`.
3. Only an authenticated delivery is parsed and read by `HookSource.read` into `Start`
   items (one execution each; a source may start several from one delivery, e.g. one per
   alert of an Alertmanager group) and `Skip` items (what its filters left out, and why),
   and counted against the key's rate limit (in the transaction that starts its first run).

Sources are pure: the headers (lower-case names), the raw body, the trigger's declared spec
and secret, and ``now`` go in; verdicts come out as values or as `NotAuthenticated` /
`BodyInvalid`. Starting executions (`opsflow.triggers.fire`), deduplicating and recording
deliveries happen in ``triggers/delivery.py``, the same way for every type.
`opsflow.triggers.sources` names each type's source.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from opsflow.spec.triggers import TriggerType

# Header names are lower-case, as ASGI gives them; one value per name (the last one sent).
Headers = Mapping[str, str]


class NotAuthenticated(Exception):
    """The delivery does not prove it knows the trigger's secret; the message says why."""


class BodyInvalid(Exception):
    """The delivery's body is not what its trigger type reads; the message says why (and
    ``loc``, e.g. ``params.replicas``, where)."""

    def __init__(self, message: str, loc: str = "body") -> None:
        super().__init__(message)
        self.loc = loc


@dataclass(frozen=True)
class Start:
    """One execution a delivery asks for.

    ``dedupe_key`` makes a repeat recognisable (kept 7 days per trigger); None never
    deduplicates. ``params`` are the delivery's own (the trigger's declared ``params`` are
    rendered over them and win; the result is checked against the workflow's params).
    ``trigger`` is the source's part of the execution's trigger record: ``body`` becomes
    ``trigger.body``, ``git`` and ``incident`` become the template names of those types, any
    other key (``delivery_id``) is kept in the record as it is. ``summary`` is one line for the
    delivery log (``push to main by ada``); ``source`` says which event it was on the
    execution (``github acme/infra@1a2b3c``), the summary when left empty.
    """

    dedupe_key: str | None
    params: dict[str, Any] = field(default_factory=dict)
    trigger: dict[str, Any] = field(default_factory=dict)
    summary: str = ""
    source: str = ""


@dataclass(frozen=True)
class Skip:
    """Something the delivery carried that the trigger's filters leave out: ``reason`` says
    which filter and why (``branch 'dev' matches none of: main, release/*``)."""

    reason: str
    dedupe_key: str | None = None


@dataclass(frozen=True)
class Reading:
    """What a delivery asks for, in the order it carried it."""

    items: list[Start | Skip]

    @property
    def starts(self) -> list[Start]:
        return [item for item in self.items if isinstance(item, Start)]


class HookSource(Protocol):
    """How one trigger type reads deliveries on its hook URL."""

    trigger_type: TriggerType
    max_body_bytes: int

    def authenticate(self, spec: Mapping[str, Any], secret: str, headers: Headers) -> bool:
        """From the headers alone: True when the sender is authenticated, False when the proof
        is a signature of the body (see `check_body`); raise `NotAuthenticated` otherwise.
        Only this source's own scheme (under the trigger's ``spec``: a git trigger's
        provider) proves anything; another source's header never does."""
        ...

    def check_body(
        self, spec: Mapping[str, Any], secret: str, headers: Headers, body: bytes, now: float
    ) -> None:
        """Check the signature of the raw ``body`` (``now`` is Unix seconds, for a replay
        window); raise `NotAuthenticated` saying what does not match."""
        ...

    def read(self, spec: Mapping[str, Any], headers: Headers, body: bytes) -> Reading:
        """What the authenticated delivery asks for under the trigger's declared ``spec``;
        raise `BodyInvalid` when the body is not what this type reads."""
        ...
