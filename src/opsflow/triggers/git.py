"""Git pushes: who sent a delivery, whether its signature holds, what it pushed, and whether the
trigger wants it.

Pure: headers and raw bytes in, values out. The hook ingress authenticates before it parses
anything (`authenticate`, `check_body`), then `read_delivery` and `decide` say what to start.

Providers and their headers:

- GitHub: ``X-Hub-Signature-256: sha256=<hex HMAC-SHA256 of the raw body>``,
  ``X-GitHub-Event: push | ping``, ``X-GitHub-Delivery`` (a GUID, kept for dedupe).
- GitLab: ``X-Gitlab-Token: <the secret itself>``, ``X-Gitlab-Event: Push Hook | Tag Push Hook``,
  ``Idempotency-Key`` (same on retries) or ``X-Gitlab-Event-UUID``. GitLab sends at most 20
  commits and says how many there were in ``total_commits_count``.
- Gitea and Forgejo: ``X-Gitea-Signature`` / ``X-Forgejo-Signature: <hex HMAC-SHA256>``,
  ``X-Gitea-Event`` / ``X-Forgejo-Event: push | delete | ...``, ``X-Gitea-Delivery``. Gitea
  also sends GitHub's event headers, so the trigger's ``provider`` decides which are read,
  never a guess from the headers.

`GitSource` is the `HookSource` the ``/hooks/{key}`` route uses for git triggers.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any
from urllib.parse import parse_qs

from opsflow.spec.triggers import GitEvent, GitProvider, GitTrigger, TriggerType
from opsflow.triggers.ingress import (
    BodyInvalid,
    Headers,
    NotAuthenticated,
    Reading,
    Skip,
    Start,
)
from opsflow.triggers.webhook import same_secret

ZERO_SHA = "0" * 40
# changed_files is capped so one enormous push cannot bloat every run's trigger data.
MAX_CHANGED_FILES = 1000


def _lower(headers: Mapping[str, str]) -> dict[str, str]:
    return {k.lower(): v for k, v in headers.items()}


def _hmac_hex(secret: str, body: bytes) -> str:
    return hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def sign(provider: GitProvider, secret: str, body: bytes) -> dict[str, str]:
    """The auth header a provider sends for ``body``: for tests, docs and ``curl`` examples."""
    match provider:
        case GitProvider.GITHUB:
            return {"X-Hub-Signature-256": "sha256=" + _hmac_hex(secret, body)}
        case GitProvider.GITLAB:
            return {"X-Gitlab-Token": secret}
        case GitProvider.GITEA:
            return {"X-Gitea-Signature": _hmac_hex(secret, body)}


# Each provider's own proof, and only that: a trigger accepts no other provider's header (a
# GitHub trigger that took ``X-Gitlab-Token`` would let anyone who saw the secret once in
# transit start runs without signing the body).
_OWN_HEADERS: dict[GitProvider, tuple[str, ...]] = {
    GitProvider.GITHUB: ("x-hub-signature-256",),
    GitProvider.GITLAB: ("x-gitlab-token",),
    GitProvider.GITEA: ("x-gitea-signature", "x-forgejo-signature"),
}
_HEADER_NAMES = {
    "x-hub-signature-256": "X-Hub-Signature-256",
    "x-gitlab-token": "X-Gitlab-Token",
    "x-gitea-signature": "X-Gitea-Signature",
    "x-forgejo-signature": "X-Forgejo-Signature",
}


def _expected(provider: GitProvider) -> str:
    names = " or ".join(_HEADER_NAMES[h] for h in _OWN_HEADERS[provider])
    return f"a {provider.value} trigger takes only {names}"


def authenticate(provider: GitProvider, secret: str, headers: Headers) -> bool:
    """From the headers: True for GitLab's token (the secret itself, compared in constant
    time), False for GitHub's or Gitea's HMAC of the body (`check_body` follows),
    `NotAuthenticated` when the delivery lacks the trigger's provider's own header, whatever
    other provider's header it carries."""
    own = [name for name in _OWN_HEADERS[provider] if name in headers]
    if not own:
        others = [
            _HEADER_NAMES[name]
            for other, names in _OWN_HEADERS.items()
            if other is not provider
            for name in names
            if name in headers
        ]
        if others:
            raise NotAuthenticated(
                f"the delivery is authenticated with {', '.join(others)}: {_expected(provider)}"
                " (is the trigger's provider right?)"
            )
        raise NotAuthenticated(
            f"the delivery is not signed: {_expected(provider)}; set the webhook's secret on "
            "the provider (GitHub sends X-Hub-Signature-256, GitLab X-Gitlab-Token, Gitea and "
            "Forgejo X-Gitea-Signature)"
        )
    if provider is GitProvider.GITLAB:
        if not same_secret(headers["x-gitlab-token"], secret):
            raise NotAuthenticated("X-Gitlab-Token is not this trigger's secret")
        return True
    return False


def check_body(provider: GitProvider, secret: str, headers: Headers, body: bytes) -> None:
    """Accept the provider's HMAC-SHA256 of the raw ``body`` with ``secret``: GitHub's
    ``X-Hub-Signature-256: sha256=<hex>``, Gitea's ``X-Gitea-Signature: <hex>`` (or
    Forgejo's ``X-Forgejo-Signature``). GitLab does not sign bodies: never accepted here."""
    expected = _hmac_hex(secret, body)
    match provider:
        case GitProvider.GITHUB:
            sent, wanted = headers.get("x-hub-signature-256", ""), "sha256=" + expected
        case GitProvider.GITEA:
            sent = headers.get("x-gitea-signature") or headers.get("x-forgejo-signature") or ""
            wanted = expected
        case GitProvider.GITLAB:
            raise NotAuthenticated(_expected(provider))
    if not hmac.compare_digest(sent.strip().encode(), wanted.encode()):
        raise NotAuthenticated(
            "the signature does not match the body signed with this trigger's secret "
            "(HMAC-SHA256 of the raw body)"
        )


def delivery_id(provider: GitProvider, headers: Mapping[str, str]) -> str | None:
    """The provider's id of this delivery, the same when it redelivers: the dedupe key."""
    h = _lower(headers)
    match provider:
        case GitProvider.GITHUB:
            names: tuple[str, ...] = ("x-github-delivery",)
        case GitProvider.GITLAB:
            names = ("idempotency-key", "x-gitlab-event-uuid")
        case GitProvider.GITEA:
            names = ("x-gitea-delivery", "x-forgejo-delivery")
    for name in names:
        if h.get(name):
            return h[name]
    return None


def event_header(provider: GitProvider, headers: Mapping[str, str]) -> str:
    """The provider's event name as sent (``push``, ``Push Hook``, ``ping`` ...)."""
    h = _lower(headers)
    match provider:
        case GitProvider.GITHUB:
            return h.get("x-github-event", "")
        case GitProvider.GITLAB:
            return h.get("x-gitlab-event", "")
        case GitProvider.GITEA:
            return h.get("x-gitea-event") or h.get("x-forgejo-event") or ""


# -- what a delivery says ------------------------------------------------------------------------


@dataclass(frozen=True)
class Ping:
    """A provider checking the URL (GitHub's ``ping``): answered 200, starts nothing."""


@dataclass(frozen=True)
class Ignored:
    """An event this trigger does not handle (an issue comment, a Gitea ``create``)."""

    event: str


@dataclass(frozen=True)
class Commit:
    id: str
    message: str
    author: str
    added: tuple[str, ...] = ()
    modified: tuple[str, ...] = ()
    removed: tuple[str, ...] = ()


@dataclass(frozen=True)
class Push:
    """One ref update, whoever sent it. ``commits`` may be fewer than ``total_commits``."""

    provider: str
    repository: str
    ref: str
    before: str
    after: str
    commits: tuple[Commit, ...] = ()
    total_commits: int | None = None
    compare_url: str = ""
    pusher: str = ""
    message: str = ""  # GitLab: an annotated tag's message

    @property
    def is_tag(self) -> bool:
        return self.ref.startswith("refs/tags/")

    @property
    def deleted(self) -> bool:
        return self.after in ("", ZERO_SHA)

    @property
    def event(self) -> GitEvent:
        if self.deleted:
            return GitEvent.DELETE
        return GitEvent.TAG if self.is_tag else GitEvent.PUSH

    @property
    def short_ref(self) -> str:
        for prefix in ("refs/heads/", "refs/tags/"):
            if self.ref.startswith(prefix):
                return self.ref[len(prefix) :]
        return self.ref

    @property
    def truncated(self) -> bool:
        """The provider left commits out, so their files are unknown."""
        return self.total_commits is not None and self.total_commits > len(self.commits)

    @property
    def head(self) -> Commit | None:
        for commit in self.commits:
            if commit.id == self.after:
                return commit
        return self.commits[-1] if self.commits else None

    def changed_files(self) -> list[str]:
        """Added, modified and removed paths of every commit, each once, in push order."""
        seen: dict[str, None] = {}
        for commit in self.commits:
            for path in (*commit.added, *commit.modified, *commit.removed):
                seen.setdefault(path, None)
        return list(seen)


Delivery = Push | Ping | Ignored


class MalformedDelivery(ValueError):
    """The body is not the provider's push payload; the message says what is missing."""


def read_delivery(
    provider: GitProvider, headers: Mapping[str, str], payload: Mapping[str, Any]
) -> Delivery:
    """What a verified delivery says; raises `MalformedDelivery` when a push lacks its fields."""
    event = event_header(provider, headers)
    try:
        match provider:
            case GitProvider.GITHUB:
                return _github(event, payload)
            case GitProvider.GITLAB:
                return _gitlab(event, payload)
            case GitProvider.GITEA:
                return _gitea(event, payload)
    except (KeyError, TypeError, AttributeError) as exc:
        raise MalformedDelivery(
            f"the {event or 'push'} payload lacks {exc} (is the webhook's content type JSON?)"
        ) from exc


def _commits(raw: Iterable[Mapping[str, Any]]) -> tuple[Commit, ...]:
    return tuple(
        Commit(
            id=str(c.get("id", "")),
            message=str(c.get("message", "")),
            author=str((c.get("author") or {}).get("name", "")),
            added=tuple(str(p) for p in c.get("added") or ()),
            modified=tuple(str(p) for p in c.get("modified") or ()),
            removed=tuple(str(p) for p in c.get("removed") or ()),
        )
        for c in raw
    )


def _github(event: str, p: Mapping[str, Any]) -> Delivery:
    if event == "ping":
        return Ping()
    if event != "push":
        return Ignored(event or "(no X-GitHub-Event)")
    commits = _commits(p.get("commits") or ())
    return Push(
        provider=GitProvider.GITHUB.value,
        repository=str(p["repository"]["full_name"]),
        ref=str(p["ref"]),
        before=str(p.get("before") or ""),
        after=str(p.get("after") or ""),
        commits=commits,
        # GitHub lists at most 2048 commits and does not say how many it left out.
        total_commits=None if len(commits) < 2048 else len(commits) + 1,
        compare_url=str(p.get("compare") or ""),
        pusher=str((p.get("pusher") or {}).get("name", "")),
    )


def _gitlab(event: str, p: Mapping[str, Any]) -> Delivery:
    kind = str(p.get("object_kind", ""))
    # System hooks say "System Hook" in the header; the body's object_kind tells the event.
    if event not in ("Push Hook", "Tag Push Hook", "System Hook") or kind not in (
        "push",
        "tag_push",
    ):
        return Ignored(event or kind or "(no X-Gitlab-Event)")
    project = p.get("project") or {}
    before, after = str(p.get("before") or ""), str(p.get("after") or "")
    web_url = str(project.get("web_url") or "")
    compare = ""
    if web_url and before and after and ZERO_SHA not in (before, after):
        compare = f"{web_url}/-/compare/{before}...{after}"
    total = p.get("total_commits_count")
    return Push(
        provider=GitProvider.GITLAB.value,
        repository=str(project["path_with_namespace"]),
        ref=str(p["ref"]),
        before=before,
        after=after,
        commits=_commits(p.get("commits") or ()),
        total_commits=int(total) if isinstance(total, int) else None,
        compare_url=compare,
        pusher=str(p.get("user_username") or p.get("user_name") or ""),
        message=str(p.get("message") or ""),
    )


def _gitea(event: str, p: Mapping[str, Any]) -> Delivery:
    repository = str(p["repository"]["full_name"]) if event in ("push", "delete") else ""
    if event == "delete":
        # Gitea's delete event names the ref without its prefix and carries no commits.
        prefix = "refs/tags/" if p.get("ref_type") == "tag" else "refs/heads/"
        return Push(
            provider=GitProvider.GITEA.value,
            repository=repository,
            ref=prefix + str(p["ref"]),
            before="",
            after=ZERO_SHA,
            pusher=str((p.get("sender") or {}).get("login", "")),
        )
    if event != "push":
        return Ignored(event or "(no X-Gitea-Event)")
    commits = _commits(p.get("commits") or ())
    total = p.get("total_commits")
    return Push(
        provider=GitProvider.GITEA.value,
        repository=repository,
        ref=str(p["ref"]),
        before=str(p.get("before") or ""),
        after=str(p.get("after") or ""),
        commits=commits,
        total_commits=int(total) if isinstance(total, int) else None,
        compare_url=str(p.get("compare_url") or ""),
        pusher=str((p.get("pusher") or {}).get("login", "")),
    )


# -- does the trigger want it --------------------------------------------------------------------


@lru_cache(maxsize=1024)
def _glob(pattern: str) -> re.Pattern[str]:
    """``*`` and ``?`` stay within one path segment, ``**`` crosses segments (as in GitHub
    Actions' branch and path filters): ``release/*`` matches ``release/1.2``, not
    ``release/1/2``; ``infra/**`` matches everything below ``infra/``."""
    out, i = [], 0
    while i < len(pattern):
        if pattern.startswith("**/", i):
            out.append("(?:.*/)?")
            i += 3
        elif pattern.startswith("**", i):
            out.append(".*")
            i += 2
        elif pattern[i] == "*":
            out.append("[^/]*")
            i += 1
        elif pattern[i] == "?":
            out.append("[^/]")
            i += 1
        else:
            out.append(re.escape(pattern[i]))
            i += 1
    return re.compile("".join(out))


def glob_match(pattern: str, value: str) -> bool:
    return _glob(pattern).fullmatch(value) is not None


def _any(patterns: Sequence[str], value: str) -> bool:
    return not patterns or any(glob_match(p, value) for p in patterns)


@dataclass(frozen=True)
class Verdict:
    """Whether a push starts a run; ``reason`` says why not, ``note`` what the log should add
    (a truncated commit list); ``variables`` are the run's ``git``."""

    start: bool
    reason: str = ""
    note: str = ""
    variables: dict[str, Any] = field(default_factory=dict)


def decide(trigger: GitTrigger, push: Push) -> Verdict:
    """Apply the trigger's repository, event, branch/tag and path filters to ``push``."""
    if trigger.repository and push.repository.lower() != trigger.repository.lower():
        return Verdict(False, f"repository {push.repository} is not {trigger.repository}")
    event = push.event
    if event not in trigger.events:
        what = {
            GitEvent.DELETE: f"{push.ref} was deleted",
            GitEvent.TAG: f"tag push {push.short_ref}",
            GitEvent.PUSH: f"push to {push.short_ref}",
        }[event]
        wanted = ", ".join(e.value for e in trigger.events)
        return Verdict(False, f"{what}: the trigger's events are [{wanted}]")
    if push.is_tag:
        if not _any(trigger.tags, push.short_ref):
            return Verdict(False, f"tag {push.short_ref} matches none of {trigger.tags}")
    elif not _any(trigger.branches, push.short_ref):
        return Verdict(False, f"branch {push.short_ref} matches none of {trigger.branches}")
    changed = push.changed_files()
    note = ""
    if trigger.paths and event is not GitEvent.DELETE:
        if push.truncated:
            note = (
                f"the provider listed {len(push.commits)} of {push.total_commits} commits: "
                "paths counted as matched"
            )
        elif not any(_any(trigger.paths, path) for path in changed):
            return Verdict(
                False, f"none of the {len(changed)} changed files matches {trigger.paths}"
            )
    return Verdict(True, note=note, variables=variables(push, changed))


def variables(push: Push, changed: list[str] | None = None) -> dict[str, Any]:
    """The run's ``git`` template names."""
    changed = push.changed_files() if changed is None else changed
    head = push.head
    return {
        "provider": push.provider,
        "repository": push.repository,
        "event": push.event.value,
        "ref": push.ref,
        "branch": "" if push.is_tag else push.short_ref,
        "tag": push.short_ref if push.is_tag else "",
        "commit": "" if push.deleted else push.after,
        "before": push.before,
        "message": head.message if head else push.message,
        "author": head.author if head and head.author else push.pusher,
        "pusher": push.pusher,
        "changed_files": changed[:MAX_CHANGED_FILES],
        "truncated": push.truncated or len(changed) > MAX_CHANGED_FILES,
        "compare_url": push.compare_url,
    }


# -- the hook source -----------------------------------------------------------------------------

MAX_BODY_BYTES = 25 * 1024 * 1024  # a push of many commits is large; GitHub caps at 25 MB


def _parse(headers: Headers, body: bytes) -> dict[str, Any]:
    """The JSON payload; GitHub's "application/x-www-form-urlencoded" content type sends it as
    the ``payload`` form field."""
    raw: bytes | str = body
    if headers.get("content-type", "").startswith("application/x-www-form-urlencoded"):
        fields = parse_qs(body.decode("utf-8", "replace"))
        if "payload" not in fields:
            raise BodyInvalid("a form-encoded delivery needs its JSON in the 'payload' field")
        raw = fields["payload"][0]
    try:
        parsed = json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise BodyInvalid(f"the body is not JSON: {exc}") from exc
    if not isinstance(parsed, dict):
        raise BodyInvalid("the body must be a JSON object")
    return parsed


class GitSource:
    """Push deliveries of GitHub, GitLab and Gitea/Forgejo: the provider's signature, at most
    25 MiB, one run per push the filters let through, deduplicated by the delivery id."""

    trigger_type = TriggerType.GIT
    max_body_bytes = MAX_BODY_BYTES

    def authenticate(self, spec: Mapping[str, Any], secret: str, headers: Headers) -> bool:
        return authenticate(_provider(spec), secret, headers)

    def check_body(
        self, spec: Mapping[str, Any], secret: str, headers: Headers, body: bytes, now: float
    ) -> None:
        check_body(_provider(spec), secret, headers, body)

    def read(self, spec: Mapping[str, Any], headers: Headers, body: bytes) -> Reading:
        trigger = GitTrigger.model_validate(dict(spec))
        if trigger.provider is None:
            raise BodyInvalid("this git trigger polls its `url`; it takes no deliveries")
        payload = _parse(headers, body)
        try:
            delivery = read_delivery(trigger.provider, headers, payload)
        except MalformedDelivery as exc:
            raise BodyInvalid(str(exc)) from exc
        key = delivery_id(trigger.provider, headers)
        match delivery:
            case Ping():
                return Reading([Skip("ping: the URL and the secret work; a ping starts nothing")])
            case Ignored(event=event):
                return Reading([Skip(_ignored_reason(trigger, event), dedupe_key=key)])
            case Push() as push:
                verdict = decide(trigger, push)
                if not verdict.start:
                    return Reading([Skip(verdict.reason, dedupe_key=key)])
                return Reading(
                    [
                        Start(
                            dedupe_key=key or f"{push.ref}@{push.after}",
                            trigger={"git": verdict.variables, "delivery_id": key},
                            summary=summary(push, verdict),
                            source=source(push),
                        )
                    ]
                )


# How each provider names a pull (merge) request event in its event header.
PULL_REQUEST_EVENTS = frozenset({"pull_request", "Merge Request Hook"})


def _ignored_reason(trigger: GitTrigger, event: str) -> str:
    """What the delivery log says of an event that starts nothing. A pull request event is
    named as such: ``events: [pull_request]`` is accepted but starts no runs in this version
    (docs/triggers/git.md), and the record says so rather than leave people guessing."""
    if event in PULL_REQUEST_EVENTS:
        listed = GitEvent.PULL_REQUEST in trigger.events
        why = (
            "the trigger lists pull_request in `events`, but this version of opsflow starts "
            "no runs for pull requests"
            if listed
            else "this version of opsflow starts no runs for pull requests"
        )
        return f"a pull request event ({event!r}): {why}; runs start on push, tag and delete"
    return f"event {event!r} is not a push, tag or delete: it starts nothing"


def _provider(spec: Mapping[str, Any]) -> GitProvider:
    """The trigger's declared provider: it alone decides which header proves a delivery."""
    provider = GitTrigger.model_validate(dict(spec)).provider
    if provider is None:
        raise NotAuthenticated("this git trigger polls its `url`; it takes no deliveries")
    return provider


def source(push: Push) -> str:
    """Which event started a run, for its trigger record: ``github acme/infra@0d1a26e67d8f``."""
    where = push.ref if push.deleted else push.after[:12]
    return f"{push.provider} {push.repository}@{where}"


def summary(push: Push, verdict: Verdict) -> str:
    """One line for the delivery log: ``push to main by ada (2 commits)`` and any note."""
    match push.event:
        case GitEvent.DELETE:
            text = f"{push.ref} deleted"
        case GitEvent.TAG:
            text = f"tag {push.short_ref} at {push.after[:12]}"
        case GitEvent.PUSH:
            count = push.total_commits if push.total_commits is not None else len(push.commits)
            text = f"push to {push.short_ref} at {push.after[:12]}"
            if count:
                text += f" ({count} commits)"
    if push.pusher:
        text += f" by {push.pusher}"
    return f"{text}; {verdict.note}" if verdict.note else text
