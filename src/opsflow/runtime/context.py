"""What templates see during a run, and the rendering of one step into a job's config.

The context is built from committed state only: params, the trigger's data (as values, never
as template source), the outputs of finished steps, and facts about the execution and the
workflow. Script bodies are never rendered; values reach scripts through ``env``.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from opsflow.errors import TemplateError
from opsflow.runtime.definitions import raw_step
from opsflow.runtime.secrets import check_whole, placeholders
from opsflow.spec.findings import format_loc
from opsflow.spec.models import SECRET_FIELDS, TEMPLATED_FIELDS
from opsflow.spec.notifications import default_channel
from opsflow.spec.output_text import OutputMap
from opsflow.spec.sandbox import budget
from opsflow.spec.state_names import state_name
from opsflow.spec.template import is_template, render_value, secret_problem
from opsflow.spec.template_checks import template_strings
from opsflow.status import StepType
from opsflow.store.runs import Execution, Step

# Fields every step has: the engine reads them, executors never need them.
COMMON_FIELDS = frozenset(
    {
        "id",
        "name",
        "description",
        "type",
        "needs",
        "join",
        "retries",
        "retry_delay",
        "timeout",
        "allow_skip",
        "agent",
        "for_each",
        "matrix",
        "max_parallel",
        "fail_fast",
        "min_success",
    }
)


@dataclass(frozen=True)
class ServerFacts:
    """What the server knows that a definition does not: where notify channels deliver,
    which secrets exist (names only), and where people open the server's pages
    (``Settings.public_base``: the base of the links in messages)."""

    channels: Mapping[str, list[str]] = field(default_factory=dict)
    secret_names: Iterable[str] = ()
    public_url: str | None = None


class SecretsRefused:
    """``secrets`` where no job receives the values (a condition, an approval message): any
    use fails the render, naming the secret, instead of reading a placeholder."""

    def __init__(self, where: str) -> None:
        self._where = where

    def _refuse(self, name: str) -> TemplateError:
        return TemplateError(
            f"secrets.{name} cannot be used in {self._where}: a secret is only filled in for "
            "the job whose values use it"
        )

    def __getattr__(self, name: str) -> Any:
        raise self._refuse(name)

    def __getitem__(self, name: str) -> Any:
        raise self._refuse(name)

    def __str__(self) -> str:
        raise self._refuse("*")


def execution_page(public_url: str | None, execution_id: str) -> str:
    """The web page of an execution (the UI's ``/executions/:id`` route) under the server's
    public URL, the link people follow from a message."""
    return f"{(public_url or '').rstrip('/')}/executions/{execution_id}"


class NodesView(Mapping[str, Mapping[str, Any]]):
    """``nodes`` as templates see it: step id -> ``{status, output, error}``, each made when
    it is read, so a context costs the same for a run of 5 steps or 5,000. ``output`` is an
    ``OutputMap``: its text reads by the truth words in ``not x`` and ``x == false`` too."""

    __slots__ = ("_steps",)

    def __init__(self, steps: Mapping[str, Step]) -> None:
        self._steps = dict(steps)  # the steps as they are now (their rows are frozen)

    def __getitem__(self, step_id: str) -> Mapping[str, Any]:
        step = self._steps[step_id]
        return {"status": step.status.value, "output": OutputMap(step.outputs), "error": step.error}

    def __contains__(self, step_id: object) -> bool:
        return step_id in self._steps

    def __iter__(self) -> Iterator[str]:
        return iter(self._steps)

    def __len__(self) -> int:
        return len(self._steps)


def template_context(
    execution: Execution,
    steps: Mapping[str, Step],
    facts: ServerFacts | None = None,
    *,
    secrets_for: str | None = None,
) -> dict[str, Any]:
    """The names a template may read; their fields are listed in ``spec.template.FIELDS``.

    ``secrets_for``: None when what is rendered goes to a job (secrets are placeholders the
    claim fills in), else the place rendered (``"a condition"``), where secrets are refused.
    """
    facts = facts or ServerFacts()
    base = (facts.public_url or "").rstrip("/")
    trigger = execution.trigger or {}
    return {
        "params": execution.params,
        "trigger": trigger,
        "incident": trigger.get("incident", {}) if isinstance(trigger, dict) else {},
        "git": trigger.get("git", {}) if isinstance(trigger, dict) else {},
        "nodes": NodesView(steps),
        "execution": {
            "id": execution.id,
            "started_by": execution.started_by,
            "trigger_type": execution.trigger_type,
            "created_at": execution.created_at,
            "test_run": execution.test_run,
            "url": execution_page(base, execution.id),
            "api_url": f"{base}/api/v1/executions/{execution.id}",
        },
        "workflow": {
            "id": execution.workflow_id,
            "name": execution.definition.get("name", execution.workflow_id),
            "version": execution.version,
        },
        "secrets": (
            SecretsRefused(secrets_for) if secrets_for else placeholders(facts.secret_names)
        ),
    }


def step_definition(execution: Execution, step_id: str) -> dict[str, Any]:
    """The step as written, with what it takes over from the step it builds on: an apply
    of a saved plan (``plan_from``) works on the plan's code, workspace, variables and state."""
    raw = _raw_step(execution, step_id)
    if raw.get("type") == StepType.TERRAFORM.value and raw.get("plan_from"):
        plan = _raw_step(execution, str(raw["plan_from"]))
        for key in ("source", "workspace", "vars", "var_files", "env", "connection"):
            if key in plan and key not in raw:
                raw[key] = plan[key]
    return raw


def _raw_step(execution: Execution, step_id: str) -> dict[str, Any]:
    return dict(raw_step(execution, step_id))


def render_step_config(
    step_type: StepType, raw: Mapping[str, Any], context: Mapping[str, Any]
) -> dict[str, Any]:
    """The executor's config: the step's own fields, templates rendered (raises
    TemplateError naming the field and the missing name)."""
    templated = TEMPLATED_FIELDS.get(step_type, ())
    config: dict[str, Any] = {}
    with budget():  # one CPU budget for all the fields of the step, not one per field
        for key, value in raw.items():
            if key in COMMON_FIELDS or value is None:
                continue
            if key in templated:
                _check_secret_uses(step_type, key, value)
                config[key] = render_value(value, context, where=key)
            else:
                config[key] = value
    return config


def _check_secret_uses(step_type: StepType, key: str, value: Any) -> None:
    """The load-time rule on secrets, again for definitions stored before it existed."""
    allowed = key in SECRET_FIELDS.get(step_type, ())
    for loc, text in template_strings((key,), value):
        problem = secret_problem(text, allowed=allowed)
        if problem:
            raise TemplateError(f"{format_loc(loc)}: {problem}")


def agent_placement(
    definition: Mapping[str, Any], raw: Mapping[str, Any]
) -> tuple[str, dict[str, Any]]:
    """Pool and labels for a step: its own ``agent`` over the workflow's default."""
    base = definition.get("agent") or {}
    own = raw.get("agent") or {}
    pool = own.get("pool") or base.get("pool") or "default"
    labels = {**(base.get("labels") or {}), **(own.get("labels") or {})}
    return str(pool), labels


def notify_connection(definition: Mapping[str, Any], config: Mapping[str, Any]) -> str:
    """The notify connection a notify step sends through: its ``connection``, else its
    ``channel``, else the workflow's ``notify.channel`` (a channel is a notify connection;
    the server's configured channels are loaded as such). The claim delivers its URLs."""
    name = config.get("connection") or config.get("channel") or default_channel(definition)
    if not name:
        raise TemplateError(
            "notify step has no channel and the workflow sets no notify.channel; "
            "name a notify connection (opsflow connections list)"
        )
    return str(name)


def job_config(
    execution: Execution,
    step_type: StepType,
    raw: Mapping[str, Any],
    steps: Mapping[str, Step],
    facts: ServerFacts,
    item: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """Everything an agent needs to run one job of this step: the rendered fields, and what
    the server knows that the YAML does not (a notify step's connection, the Terraform
    state's name). ``item``: for a job of a fanned-out step, its ``item``, ``index`` and
    ``matrix`` (``runtime.fan_out.item_names``), which its templates read.
    Secrets stay placeholders here; they are filled in when an agent claims the job."""
    # Every step's status and outputs are gathered only when some field is a template: a
    # field without markup never reads them, and a wide execution would pay for each job.
    context = template_context(execution, steps, facts) if needs_outputs(step_type, raw) else {}
    if item is not None and context:
        context.update(item)
    config = render_step_config(step_type, raw, context)
    check_whole(config)
    if step_type == StepType.NOTIFY:
        config["connection"] = notify_connection(execution.definition, config)
    if step_type == StepType.TERRAFORM:
        # From the rendered fields: a templated workspace names the state it renders to.
        try:
            name = state_name(execution.workflow_id, config.get("source"), config.get("workspace"))
        except ValueError as exc:
            raise TemplateError(f"workspace: {exc}") from None
        config["state_name"] = name
    return config


def job_inputs(step_type: StepType, raw: Mapping[str, Any]) -> dict[str, dict[str, str]]:
    """Files from earlier steps this job needs on its agent: name -> {step, name}."""
    if step_type == StepType.TERRAFORM and raw.get("plan_from"):
        return {"tfplan": {"step": str(raw["plan_from"]), "name": "tfplan"}}
    return {}


def _has_markup(value: Any) -> bool:
    if isinstance(value, str):
        return is_template(value)
    if isinstance(value, Mapping):
        return any(_has_markup(v) for v in value.values())
    if isinstance(value, (list, tuple)):
        return any(_has_markup(v) for v in value)
    return False


def needs_outputs(step_type: StepType, raw: Mapping[str, Any]) -> bool:
    """Whether rendering this step may read other steps' outputs (any template at all)."""
    return any(_has_markup(raw.get(key)) for key in TEMPLATED_FIELDS.get(step_type, ()))


def run_outputs(
    execution: Execution, steps: Mapping[str, Step], facts: ServerFacts | None = None
) -> dict[str, Any]:
    """The workflow's ``outputs`` rendered over the finished run (secrets refused: outputs
    are stored and shown). Raises `TemplateError` naming ``outputs.<name>``."""
    templates = execution.definition.get("outputs") or {}
    context = template_context(execution, steps, facts, secrets_for="a workflow's outputs")
    with budget():
        return {
            name: render_value(value, context, where=f"outputs.{name}")
            for name, value in templates.items()
        }
