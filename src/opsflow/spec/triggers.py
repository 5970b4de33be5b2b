"""Trigger declarations: what starts a run besides a person (schedule, webhook, git, incident,
another workflow). The ``triggers/`` package turns these into executions; here they are only
declared and checked, so a bad cron line or time zone is refused when the workflow is applied.
"""

from __future__ import annotations

import calendar
import re
import zoneinfo
from datetime import datetime
from enum import StrEnum
from typing import Annotated, Any, Literal

from croniter import CroniterError, croniter
from pydantic import AfterValidator, Field, model_validator

from opsflow.spec.duration import Duration, format_duration
from opsflow.spec.fields import EndStatus, NonBlank, SpecModel, TriggerKey, WorkflowId, matching
from opsflow.status import ExecutionStatus

# A trigger's params: param name -> fixed value or a template over the trigger's payload.
TriggerParams = dict[str, Any]

_CRON_MACROS = ("@yearly", "@annually", "@monthly", "@weekly", "@daily", "@midnight", "@hourly")


def _check_cron(value: str) -> str:
    text = value.strip()
    fields = text.split()
    if text.lower() in _CRON_MACROS:
        return text
    if len(fields) != 5:
        raise ValueError(
            f"{value!r} has {len(fields)} fields; a cron line has five: "
            "minute hour day-of-month month day-of-week (e.g. '0 3 * * 1-5'), or @daily"
        )
    if not croniter.is_valid(text):
        raise ValueError(
            f"{value!r} is not a valid cron line: use minute (0-59) hour (0-23) "
            "day-of-month (1-31) month (1-12) day-of-week (0-6), with *, ranges, lists and /step"
        )
    try:
        # From a fixed start (a leap year's eve) so the answer never depends on today.
        croniter(text, datetime(1999, 12, 31)).get_next(datetime)
    except CroniterError as exc:
        raise ValueError(_never_fires(value, fields)) from exc
    return text


_MONTH_DAYS = (31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31)  # February in a leap year


def _never_fires(value: str, fields: list[str]) -> str:
    """Why a valid cron line matches no date: named when day and month are plain numbers."""
    day, month = fields[2], fields[3]
    if day.isdigit() and month.isdigit() and 1 <= int(month) <= 12:
        name, days = calendar.month_name[int(month)], _MONTH_DAYS[int(month) - 1]
        if int(day) > days:
            return f"{value!r} never fires: {name} has no {_ordinal(int(day))}"
    return (
        f"{value!r} never fires: it matches no date (no month it names has the day of month "
        "it names); check the day-of-month and month fields"
    )


def _ordinal(n: int) -> str:
    suffix = "th" if 10 <= n % 100 <= 20 else {1: "st", 2: "nd", 3: "rd"}.get(n % 10, "th")
    return f"{n}{suffix}"


def _check_timezone(value: str) -> str:
    try:
        zoneinfo.ZoneInfo(value)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError) as exc:
        raise ValueError(
            f"{value!r} is not a known IANA time zone: use a name such as "
            "'UTC', 'Europe/Berlin' or 'America/New_York'"
        ) from exc
    return value


class TriggerType(StrEnum):
    SCHEDULE = "schedule"
    WEBHOOK = "webhook"
    GIT = "git"
    INCIDENT = "incident"
    WORKFLOW = "workflow"


class RunTrigger(StrEnum):
    """How an execution was started: by a person (``manual``; every workflow can be run by
    hand) or by one of the `TriggerType` a definition declares."""

    MANUAL = "manual"
    SCHEDULE = TriggerType.SCHEDULE.value
    WEBHOOK = TriggerType.WEBHOOK.value
    GIT = TriggerType.GIT.value
    INCIDENT = TriggerType.INCIDENT.value
    WORKFLOW = TriggerType.WORKFLOW.value


class MissedRuns(StrEnum):
    """What the scheduler does with instants it missed while no server was running."""

    SKIP = "skip"
    RUN_ONCE = "run-once"
    ALL = "all"  # each missed instant, up to the scheduler's cap (100)


class ScheduleTrigger(SpecModel):
    """Run on a cron schedule, once per scheduled instant across all replicas."""

    type: Literal[TriggerType.SCHEDULE]
    key: TriggerKey | None = Field(
        None,
        description="The schedule's name (fire, enable, disable and list it by this); "
        "schedule-<n> when left out. Its fire state and on/off switch follow it across versions.",
    )
    cron: Annotated[str, AfterValidator(_check_cron)] = Field(
        description="Five-field cron line (minute hour day-of-month month day-of-week) or @daily."
    )
    timezone: Annotated[str, AfterValidator(_check_timezone)] = Field(
        "UTC", description="IANA time zone the cron line is read in, e.g. Europe/Berlin."
    )
    params: TriggerParams = Field(default_factory=dict, description="Params for each run.")
    missed: MissedRuns = Field(
        MissedRuns.SKIP,
        description="Instants missed while no server was running: skip them, run once for "
        "all of them, or run each (at most the last 100).",
    )


class WebhookTrigger(SpecModel):
    """Run on ``POST /hooks/<key>``, signed with the trigger's secret."""

    type: Literal[TriggerType.WEBHOOK]
    key: TriggerKey | None = Field(None, description="URL key; generated when left out.")
    secret: NonBlank | None = Field(
        None, description="Name of the opsflow secret that signs requests; generated if unset."
    )
    params: TriggerParams = Field(
        default_factory=dict, description="Params for each run; may template over `trigger`."
    )


class GitProvider(StrEnum):
    GITHUB = "github"
    GITLAB = "gitlab"
    GITEA = "gitea"


class GitEvent(StrEnum):
    """What happened to a ref. ``push``: new commits on a branch (a new branch included);
    ``tag``: a tag created or moved; ``delete``: a branch or tag removed."""

    PUSH = "push"
    TAG = "tag"
    DELETE = "delete"
    PULL_REQUEST = "pull_request"


# Shortest poll interval: ``git ls-remote`` against a hosted remote more often than this is
# rude to the host and rarely what anyone wants.
MIN_POLL_SECONDS = 10.0
DEFAULT_POLL_SECONDS = 60.0


class GitTrigger(SpecModel):
    """Run when a repository receives a push (optionally only to some branches and paths).

    Two modes: the provider calls ``POST /hooks/<key>`` on each push (``provider`` and
    ``repository`` name who sends it), or opsflow polls any remote itself (``url`` and
    ``poll``) with ``git ls-remote``.
    """

    type: Literal[TriggerType.GIT]
    provider: GitProvider | None = Field(
        None,
        description="Who sends the webhook: github, gitlab or gitea (Forgejo too). "
        "Required unless `url` polls a remote.",
    )
    repository: (
        Annotated[
            str,
            matching(r"[\w.-]+(/[\w.-]+)+", "repository", "write owner/name, e.g. acme/infra"),
        ]
        | None
    ) = Field(
        None,
        description="owner/name of the repository (groups allowed: group/sub/name). "
        "Required unless `url` polls a remote.",
    )
    url: NonBlank | None = Field(
        None, description="Remote to poll with `git ls-remote` (https://, ssh:// or a path)."
    )
    poll: Duration | None = Field(
        None, description="How often to poll `url`, e.g. 60s (default 60s, at least 10s)."
    )
    credentials: NonBlank | None = Field(
        None,
        description="Name of the opsflow secret holding `user:token` for an https `url`.",
    )
    branches: list[NonBlank] = Field(
        default_factory=list, description="Branch globs to react to; empty means every branch."
    )
    tags: list[NonBlank] = Field(
        default_factory=list,
        description="Tag globs to react to (with the `tag` event); empty means every tag.",
    )
    paths: list[NonBlank] = Field(
        default_factory=list, description="Path globs a push must touch; empty means any."
    )
    events: list[GitEvent] = Field(
        default_factory=lambda: [GitEvent.PUSH], description="Events that start a run."
    )
    key: TriggerKey | None = Field(None, description="URL key; generated when left out.")
    secret: NonBlank | None = Field(None, description="Name of the opsflow secret for signatures.")
    params: TriggerParams = Field(
        default_factory=dict, description="Params for each run; may template over `git`."
    )

    @model_validator(mode="after")
    def _one_mode(self) -> GitTrigger:
        if self.url is None:
            missing = [n for n in ("provider", "repository") if getattr(self, n) is None]
            if missing:
                raise ValueError(
                    f"a git trigger needs {' and '.join(missing)} (the webhook's sender), "
                    "or `url` to poll a remote instead"
                )
            if self.poll is not None:
                raise ValueError("`poll` needs `url`: the remote to poll")
            if self.credentials is not None:
                raise ValueError("`credentials` are for polling `url`; a webhook uses `secret`")
            return self
        if self.poll is not None and self.poll < MIN_POLL_SECONDS:
            raise ValueError(
                f"poll every {format_duration(self.poll)} is too often: "
                f"use {format_duration(MIN_POLL_SECONDS)} or more"
            )
        if self.key is not None or self.secret is not None:
            raise ValueError(
                "a git trigger that polls its `url` has no hook URL: drop `key` and `secret` "
                "(`credentials` names the secret git reads the remote with)"
            )
        if self.paths:
            raise ValueError(
                "`paths` needs the provider's webhook (it lists the files each push changed); "
                "polling sees only where each branch points: drop `url` or `paths`"
            )
        if GitEvent.PULL_REQUEST in self.events:
            raise ValueError("polling sees branches and tags, not pull requests")
        return self

    @property
    def polls(self) -> bool:
        """True when opsflow polls ``url`` instead of waiting for the provider's webhook."""
        return self.url is not None

    @property
    def poll_seconds(self) -> float:
        return self.poll if self.poll is not None else DEFAULT_POLL_SECONDS


def _check_patterns(value: dict[str, str]) -> dict[str, str]:
    for label, pattern in value.items():
        try:
            re.compile(pattern)
        except re.error as exc:
            raise ValueError(
                f"label {label!r}: {pattern!r} is not a valid regular expression: {exc}"
            ) from exc
    return value


class IncidentSource(StrEnum):
    ALERTMANAGER = "alertmanager"


class AlertStatus(StrEnum):
    """An alert's state in an Alertmanager notification."""

    FIRING = "firing"
    RESOLVED = "resolved"


class IncidentTrigger(SpecModel):
    """Run when a firing alert's labels match every regular expression of ``match``.

    One run per alert (its fingerprint) while it keeps firing; with ``on: [firing, resolved]``
    one more when it resolves.
    """

    type: Literal[TriggerType.INCIDENT]
    source: IncidentSource = Field(
        IncidentSource.ALERTMANAGER, description="Who sends alerts: alertmanager."
    )
    match: Annotated[dict[str, str], AfterValidator(_check_patterns)] = Field(
        default_factory=dict,
        description="Alert label -> regular expression matched against the whole label value.",
    )
    annotations: Annotated[dict[str, str], AfterValidator(_check_patterns)] = Field(
        default_factory=dict,
        description="Alert annotation -> regular expression matched against the whole value.",
    )
    on: list[AlertStatus] = Field(
        default_factory=lambda: [AlertStatus.FIRING],
        min_length=1,
        description="Alert states that start a run: [firing] (default) or [firing, resolved].",
    )
    key: TriggerKey | None = Field(None, description="URL key; generated when left out.")
    secret: NonBlank | None = Field(None, description="Name of the opsflow secret for the token.")
    params: TriggerParams = Field(
        default_factory=dict, description="Params for each run; may template over `incident`."
    )


class WorkflowTrigger(SpecModel):
    """Run when another workflow's run ends with one of ``statuses``."""

    type: Literal[TriggerType.WORKFLOW]
    key: TriggerKey | None = Field(
        None, description="The trigger's name; workflow-<n> when left out."
    )
    workflow: WorkflowId = Field(description="Id of the workflow to follow.")
    statuses: list[EndStatus] = Field(
        default_factory=lambda: [ExecutionStatus.COMPLETED],
        min_length=1,
        description="End statuses of that workflow's runs that start this one.",
    )
    params: TriggerParams = Field(default_factory=dict, description="Params for each run.")


Trigger = Annotated[
    ScheduleTrigger | WebhookTrigger | GitTrigger | IncidentTrigger | WorkflowTrigger,
    Field(discriminator="type"),
]

TRIGGER_MODELS: dict[TriggerType, type[SpecModel]] = {
    TriggerType.SCHEDULE: ScheduleTrigger,
    TriggerType.WEBHOOK: WebhookTrigger,
    TriggerType.GIT: GitTrigger,
    TriggerType.INCIDENT: IncidentTrigger,
    TriggerType.WORKFLOW: WorkflowTrigger,
}
