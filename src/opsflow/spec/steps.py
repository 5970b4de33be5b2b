"""Step declarations: the fields every step shares, and one model per step type.

Executors come later, one module per type in ``steps/``; their configuration is checked here
so a workflow with a wrong field is refused when it is applied, not when the step runs.
Terraform and Ansible, the two larger configurations, live in ``spec/tool_steps.py``.
"""

from __future__ import annotations

import difflib
from collections.abc import Mapping
from enum import StrEnum
from typing import Annotated, Any, ClassVar, Literal, Self

from pydantic import BeforeValidator, Field, field_validator, model_validator

from opsflow.spec.duration import Duration
from opsflow.spec.fan_out import FanOutError, Matrix, matrix_items, split_matrix
from opsflow.spec.fields import (
    AgentSelector,
    ConnectionName,
    EnvMap,
    FieldProblem,
    NonBlank,
    NonBlankText,
    RelativePath,
    SpecModel,
    StepId,
    TextMap,
    WorkflowId,
    matching,
)
from opsflow.spec.template import is_template
from opsflow.status import GATE_TYPES, Join, StepType
from opsflow.words import counted


class StepBase(SpecModel):
    """Fields every step has: identity, edges, retry policy, timeout, placement."""

    # An approval's timeout of 0 means "wait for people forever"; elsewhere 0 is a mistake.
    zero_timeout_waits_forever: ClassVar[bool] = False

    id: StepId = Field(description="Unique id; other steps name it in needs and templates.")
    name: str | None = Field(None, description="Display name; defaults to the id.")
    description: str | None = Field(None, description="What the step is for.")
    needs: list[str] = Field(
        default_factory=list,
        description="Steps this one waits for: 'id' (its success) or 'id.outcome' "
        "(succeeded, failed, approved, rejected, true, false, always).",
    )
    join: Join = Field(
        Join.ALL, description="'all': every need must be met; 'any': one met need is enough."
    )
    retries: int = Field(0, ge=0, le=100, description="Extra attempts after a failure.")
    retry_delay: Duration = Field(0.0, description="Wait between attempts, e.g. 30s.")
    timeout: Duration | None = Field(None, description="Limit for one attempt, e.g. 10m.")
    allow_skip: bool = Field(
        False, description="People may skip this step after it failed, so the run goes on."
    )
    agent: AgentSelector | None = Field(None, description="Where the step's jobs run.")
    for_each: str | list[Any] | None = Field(
        None,
        description="Run the step once per item: a list, or a template giving a JSON list or "
        "lines of text (at most 1,000 items); templates read item and index.",
    )
    matrix: Matrix | None = Field(
        None,
        description="Run the step once per combination of these lists (with exclude and "
        "include entries); templates read matrix.<key>, item and index.",
    )
    max_parallel: int | None = Field(
        None, ge=1, description="With for_each or matrix: items running at once (no limit)."
    )
    fail_fast: bool = Field(
        False,
        description="With for_each or matrix: once the step can no longer succeed (its first "
        "failed item, or too many for min_success), the items not started are cancelled.",
    )
    min_success: int | None = Field(
        None,
        ge=0,
        description="With for_each or matrix: items that must succeed for the step to "
        "succeed (all of them when left out).",
    )

    @model_validator(mode="after")
    def _fan_out(self) -> Self:
        kind = getattr(self, "type", None)
        fans = self.for_each is not None or self.matrix is not None
        if fans and kind in GATE_TYPES:
            field = "for_each" if self.for_each is not None else "matrix"
            raise FieldProblem(
                field,
                f"{_article(StepType(kind).value)} step cannot fan out: only steps that run "
                "on agents (script, http, terraform, ansible, ssh, notify) take for_each or matrix",
            )
        if self.for_each is not None and self.matrix is not None:
            raise FieldProblem("matrix", "give for_each or matrix, not both")
        if not fans:
            for name in ("max_parallel", "min_success"):
                if getattr(self, name) is not None:
                    raise FieldProblem(name, f"{name} applies only with for_each or matrix")
            if self.fail_fast:
                raise FieldProblem("fail_fast", "fail_fast applies only with for_each or matrix")
        if isinstance(self.for_each, str) and not is_template(self.for_each):
            raise FieldProblem(
                "for_each",
                'for_each must be a list or a template such as "{{ params.regions }}"',
            )
        if self.matrix is not None:
            _check_matrix_entries(self.matrix.root)
        total, what = self._static_items()
        if total is not None and self.min_success is not None and self.min_success > total:
            raise FieldProblem(
                "min_success",
                f"min_success is {self.min_success} but {what} gives only "
                f"{counted(total, 'item')}, so the step could never succeed; make it at most "
                f"{total}",
            )
        return self

    def _static_items(self) -> tuple[int | None, str]:
        """How many items a literal ``for_each`` list or a matrix without templates gives
        (None: known only when the step starts), and what gives them."""
        if isinstance(self.for_each, list):
            return len(self.for_each), "its for_each list"
        if self.matrix is None:
            return None, ""
        dims, extras = split_matrix(self.matrix.root)
        if any(not isinstance(v, list) for v in dims.values()):
            return None, ""
        try:
            return len(matrix_items(dims, extras)), "its matrix"
        except FanOutError:
            return None, ""  # too many: the step fails saying so when it starts

    @field_validator("timeout")
    @classmethod
    def _timeout_positive(cls, value: float | None) -> float | None:
        if value == 0 and not cls.zero_timeout_waits_forever:
            raise ValueError("a timeout of 0 would stop the step at once; leave it out for none")
        return value


def _check_matrix_entries(matrix: Mapping[str, Any]) -> None:
    """Each ``exclude``/``include`` entry names only keys the matrix has (when it has any): an
    entry naming another key would never match (exclude) or give an item other templates
    cannot read (include). Raises ``FieldProblem`` at the entry, with a close key if any."""
    dims, extras = split_matrix(matrix)
    if not dims:
        return  # a matrix of include entries only: they are its items
    for extra in ("exclude", "include"):
        for n, entry in enumerate(extras.get(extra) or []):
            for key in entry:
                if key not in dims:
                    match = difflib.get_close_matches(str(key), list(dims), n=1)
                    close = f" (did you mean '{match[0]}'?)" if match else ""
                    raise FieldProblem(
                        "matrix",
                        f"{extra} entry names key {key!r}, which the matrix lacks{close}; "
                        f"its keys are {', '.join(sorted(dims))}",
                        at=(extra, n),
                    )


def _article(word: str) -> str:
    return f"{'an' if word[:1] in 'aeiou' else 'a'} {word}"


class Shell(StrEnum):
    BASH = "bash"
    SH = "sh"
    PYTHON = "python"
    NODE = "node"


class ScriptStep(StepBase):
    """Run code on an agent. The body is never templated: values reach it through ``env``."""

    type: Literal[StepType.SCRIPT]
    shell: Shell = Field(Shell.BASH, description="Interpreter: bash, sh, python or node.")
    run: str | None = Field(None, description="Inline code (not templated; use env).")
    file: RelativePath | None = Field(None, description="Script in the workflow directory.")
    env: EnvMap = Field(default_factory=dict, description="Environment variables (templated).")
    workdir: RelativePath | None = Field(
        None, description="Working directory, relative to the workflow directory."
    )
    connection: ConnectionName | None = Field(
        None,
        description="A connection whose values reach the script as environment variables: "
        "CONNECTION_<FIELD> (a terraform connection: its variables as they are); masked.",
    )

    @model_validator(mode="after")
    def _one_source(self) -> Self:
        if (self.run is None) == (self.file is None):
            raise ValueError(
                "give exactly one of 'run' (inline code) or 'file' (a script in the "
                "workflow directory)"
            )
        return self


class HttpMethod(StrEnum):
    GET = "GET"
    POST = "POST"
    PUT = "PUT"
    PATCH = "PATCH"
    DELETE = "DELETE"
    HEAD = "HEAD"
    OPTIONS = "OPTIONS"


def _upper(value: Any) -> Any:
    return value.upper() if isinstance(value, str) else value


def _check_url(value: str) -> str:
    # A templated URL is checked once rendered, by the http step.
    if not is_template(value) and not value.startswith(("http://", "https://")):
        raise ValueError(f"{value!r} is not an http:// or https:// URL")
    return value


class HttpStep(StepBase):
    """Call an HTTP endpoint; the step fails when the status is not expected."""

    type: Literal[StepType.HTTP]
    method: Annotated[HttpMethod, BeforeValidator(_upper)] = Field(
        HttpMethod.GET, description="HTTP method."
    )
    url: NonBlank = Field(
        description="http(s) URL (templated); with a connection, a path relative to its base URL."
    )
    connection: ConnectionName | None = Field(
        None, description="An http connection: its base URL and auth (bearer, basic, header)."
    )
    headers: TextMap = Field(default_factory=dict, description="Request headers (templated).")
    body: str | None = Field(None, description="Raw request body (templated).")
    json_body: Any = Field(
        None, alias="json", description="JSON request body (strings inside are templated)."
    )
    expect_status: list[Annotated[int, Field(ge=100, le=599)]] = Field(
        default_factory=list, description="Statuses that count as success; empty means 2xx."
    )
    follow_redirects: bool = Field(True, description="Follow 3xx redirects.")
    verify_tls: bool = Field(True, description="Check the server's TLS certificate.")

    @model_validator(mode="after")
    def _url(self) -> Self:
        # With a connection the URL may be a path under its base URL.
        if self.connection is None or "://" in self.url:
            try:
                _check_url(self.url)
            except ValueError as exc:
                raise FieldProblem("url", str(exc)) from None
        return self

    @model_validator(mode="after")
    def _one_body(self) -> Self:
        if self.body is not None and self.json_body is not None:
            raise FieldProblem("json", "give 'body' (raw text) or 'json' (a JSON value), not both")
        return self


_APPROVER = r"(team:[a-z0-9][a-z0-9_-]*|[A-Za-z0-9][A-Za-z0-9_.@-]*)"
Approver = Annotated[
    str,
    matching(_APPROVER, "approver", "write a user name, or team:NAME for every member of a team"),
]


class ApprovalStep(StepBase):
    """Wait until people approve or reject; rejection (or timing out) takes ``.rejected``."""

    zero_timeout_waits_forever: ClassVar[bool] = True

    type: Literal[StepType.APPROVAL]
    message: str | None = Field(None, description="What people are asked (templated).")
    approvers: list[Approver] = Field(
        default_factory=list,
        description="User names or team:NAME; empty means anyone allowed to respond.",
    )
    min_approvals: int = Field(1, ge=1, description="Approvals needed to pass.")
    allow_self_approval: bool = Field(
        True, description="Whether the person who started the run may approve it."
    )

    @model_validator(mode="after")
    def _enough_approvers(self) -> Self:
        users = [a for a in self.approvers if not a.startswith("team:")]
        only_people = bool(self.approvers) and len(users) == len(self.approvers)
        if only_people and self.min_approvals > len(users):
            raise FieldProblem(
                "min_approvals",
                f"min_approvals is {self.min_approvals} but only "
                f"{counted(len(users), 'approver')} {'is' if len(users) == 1 else 'are'} "
                "listed: list more people, add a team, or lower min_approvals",
            )
        return self


class ConditionStep(StepBase):
    """Branch: evaluate ``if`` and take the ``.true`` or ``.false`` edges."""

    type: Literal[StepType.CONDITION]
    # An unquoted ``if: true`` is the text ``true``: always true, as "true" is.
    if_: NonBlankText = Field(
        alias="if", description="Template whose result is true or false, e.g. {{ x > 1 }}."
    )


class NotifyStep(StepBase):
    """Send a message to a channel (chat, e-mail; configured on the server)."""

    type: Literal[StepType.NOTIFY]
    channel: NonBlank | None = Field(
        None,
        description="Channel name: a notify connection (the server's configured channels are "
        "connections too); defaults to the workflow's notify.channel.",
    )
    connection: ConnectionName | None = Field(
        None, description="A notify connection (Apprise URLs); the same as channel."
    )

    @model_validator(mode="after")
    def _one_target(self) -> Self:
        if self.channel is not None and self.connection is not None:
            raise FieldProblem(
                "connection", "give channel or connection (they name the same thing), not both"
            )
        return self

    message: NonBlank = Field(description="Message text (templated).")
    title: str | None = Field(None, description="Title (templated).")


class WorkflowStep(StepBase):
    """Run another workflow; with ``wait`` the step ends when that run ends."""

    type: Literal[StepType.WORKFLOW]
    workflow: WorkflowId = Field(description="Id of the workflow to run.")
    params: dict[str, Any] = Field(default_factory=dict, description="Its params (templated).")
    wait: bool = Field(True, description="Wait for the run to end and take its outcome.")


# Apprise URL schemes (https://github.com/caronc/apprise/wiki) named by the service they reach;
# any other scheme is the service's own name (slack, discord, msteams, tgram, ...).
_NOTIFY_SERVICES = {
    "mailto": "email",
    "mailtos": "email",
    "json": "webhook",
    "jsons": "webhook",
    "form": "webhook",
    "forms": "webhook",
    "xml": "webhook",
    "xmls": "webhook",
}


def _notify_service(urls: Any) -> str:
    """The one service a notify job's Apprise URLs reach (``slack``), else ``send``."""
    if not isinstance(urls, list) or not urls:
        return "send"
    schemes = {str(url).partition("://")[0].lower() if "://" in str(url) else "" for url in urls}
    if len(schemes) != 1 or not next(iter(schemes)).isalnum():
        return "send"
    scheme = schemes.pop()
    return _NOTIFY_SERVICES.get(scheme, scheme)


def step_action(step_type: StepType, config: Mapping[str, Any]) -> str:
    """What one job of a step does, as ``type.verb``: ``script.bash`` (the shell),
    ``http.request``, ``terraform.plan|apply|destroy``, ``ansible.playbook``,
    ``notify.<service>`` (``notify.slack`` from the channel's Apprise URLs; ``notify.send`` when
    they reach several services or are not known yet),
    ``ssh.command|script``;
    gates give ``approval.wait``, ``condition.evaluate``, ``workflow.run``.

    ``config`` is the job's rendered configuration (or the step's definition): a Terraform
    cleanup job's own ``action`` is ``destroy`` whatever the step did.
    """
    match StepType(step_type):
        case StepType.SCRIPT:
            return f"script.{config.get('shell') or Shell.BASH.value}"
        case StepType.TERRAFORM:
            return f"terraform.{config.get('action') or 'plan'}"
        case StepType.HTTP:
            return "http.request"
        case StepType.ANSIBLE:
            return "ansible.playbook"
        case StepType.NOTIFY:
            # A job's config names the services of its notify connection (not its URLs).
            urls = config.get("urls") or [f"{s}://" for s in config.get("services") or []]
            return f"notify.{_notify_service(urls)}"
        case StepType.SSH:
            return "ssh.script" if config.get("script") else "ssh.command"
        case StepType.APPROVAL:
            return "approval.wait"
        case StepType.CONDITION:
            return "condition.evaluate"
        case StepType.WORKFLOW:
            return "workflow.run"
