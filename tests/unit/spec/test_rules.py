"""One bad definition per validation rule: the exact path, line and message of its problem.

Each case is a whole small workflow with exactly one mistake, so a rule that fires where it
should not shows up here as a second problem.
"""

from __future__ import annotations

from typing import NamedTuple

import pytest

from opsflow.spec.loader import validate_text
from tests.unit.spec.support import only_problem


class Case(NamedTuple):
    rule: str
    text: str
    loc: str
    line: int
    msg: str


CASES = [
    Case(
        "workflow-id",
        """
        id: Prod_Deploy
        steps:
          - {id: a, type: script, run: "true"}
        """,
        "id",
        1,
        "'Prod_Deploy' is not a valid workflow id: use 1 to 63 lowercase letters, digits "
        "and '-', starting with a letter or digit",
    ),
    Case(
        "missing-steps",
        """
        id: w
        name: No steps
        """,
        "steps",
        1,
        "'steps' is required",
    ),
    Case(
        "empty-steps",
        """
        id: w
        steps: []
        """,
        "steps",
        2,
        "a workflow needs at least one step",
    ),
    Case(
        "unknown-top-field",
        """
        id: w
        stepz: []
        steps:
          - {id: a, type: script, run: "true"}
        """,
        "stepz",
        2,
        "unknown field 'stepz' (did you mean 'steps'?); allowed here: id, name, "
        "description, labels, params, triggers, concurrency, outputs, timeout, agent, notify, "
        "steps",
    ),
    Case(
        "step-typo",
        """
        id: w
        steps:
          - id: a
            type: script
            runn: echo hi
            run: echo hi
        """,
        "steps[0].runn",
        5,
        "unknown field 'runn' (did you mean 'run'?); allowed here: id, name, description, "
        "needs, join, retries, retry_delay, timeout, allow_skip, agent, for_each, matrix, "
        "max_parallel, fail_fast, min_success, type, shell, run, file, env, workdir, connection",
    ),
    Case(
        "step-id",
        """
        id: w
        steps:
          - id: Build Image
            type: script
            run: "true"
        """,
        "steps[0].id",
        3,
        "'Build Image' is not a valid step id: use 1 to 63 lowercase letters, digits, '-' "
        "and '_', starting with a letter or digit",
    ),
    Case(
        "step-missing-type",
        """
        id: w
        steps:
          - id: a
            run: "true"
        """,
        "steps[0].type",
        3,
        "'type' is required: the step type, one of: script, http, terraform, ansible, "
        "ssh, approval, condition, notify, workflow",
    ),
    Case(
        "step-unknown-type",
        """
        id: w
        steps:
          - id: a
            type: scrpit
            run: "true"
        """,
        "steps[0].type",
        4,
        "unknown step type 'scrpit' (did you mean 'script'?); use one of: script, http, "
        "terraform, ansible, ssh, approval, condition, notify, workflow",
    ),
    Case(
        "step-not-mapping",
        """
        id: w
        steps:
          - a
        """,
        "steps[0]",
        3,
        "expected a mapping (key: value), got the text 'a'",
    ),
    Case(
        "duplicate-id",
        """
        id: w
        steps:
          - {id: a, type: script, run: "true"}
          - {id: a, type: script, run: "true"}
        """,
        "steps[1].id",
        4,
        "duplicate step id 'a': steps[0] already has it; step ids must be unique",
    ),
    Case(
        "needs-unknown",
        """
        id: w
        steps:
          - {id: a, type: script, run: "true"}
          - {id: b, type: script, run: "true"}
          - id: c
            type: script
            needs: [deploy]
            run: "true"
        """,
        "steps[2].needs[0]",
        7,
        "unknown step 'deploy'; known steps: a, b, c",
    ),
    Case(
        "needs-self",
        """
        id: w
        steps:
          - id: a
            type: script
            needs: [a]
            run: "true"
        """,
        "steps[0].needs[0]",
        5,
        "step 'a' cannot need itself",
    ),
    Case(
        "needs-bad-outcome",
        """
        id: w
        steps:
          - {id: a, type: script, run: "true"}
          - id: b
            type: script
            needs: [a.broken]
            run: "true"
        """,
        "steps[1].needs[0]",
        6,
        "unknown outcome 'broken' in 'a.broken'; step 'a' is a script step and can be: "
        "succeeded, failed, always",
    ),
    Case(
        "needs-misspelled-outcome",
        """
        id: w
        steps:
          - {id: a, type: approval}
          - id: b
            type: script
            needs: [a.aproved]
            run: "true"
        """,
        "steps[1].needs[0]",
        6,
        "unknown outcome 'aproved' in 'a.aproved' (did you mean 'approved'?); step 'a' is an "
        "approval step and can be: approved, rejected, always",
    ),
    Case(
        "needs-impossible-outcome",
        """
        id: w
        steps:
          - {id: plan, type: terraform, action: plan}
          - id: b
            type: script
            needs: [plan.rejected]
            run: "true"
        """,
        "steps[1].needs[0]",
        6,
        "step 'plan' is a terraform step and has no outcome 'rejected'; it can be: "
        "succeeded, failed, always",
    ),
    Case(
        "needs-twice",
        """
        id: w
        steps:
          - {id: a, type: script, run: "true"}
          - id: b
            type: script
            needs: [a, a]
            run: "true"
        """,
        "steps[1].needs[1]",
        6,
        "'a' is listed twice in needs: keep one",
    ),
    Case(
        "cycle",
        """
        id: w
        steps:
          - id: a
            type: script
            needs: [c]
            run: "true"
          - id: b
            type: script
            needs: [a]
            run: "true"
          - id: c
            type: script
            needs: [b]
            run: "true"
        """,
        "steps[0].needs[0]",
        5,
        "needs form a cycle: a -> b -> c -> a; remove one of these needs",
    ),
    Case(
        "script-run-and-file",
        """
        id: w
        steps:
          - id: a
            type: script
            run: echo hi
            file: hi.sh
        """,
        "steps[0]",
        3,
        "give exactly one of 'run' (inline code) or 'file' (a script in the workflow directory)",
    ),
    Case(
        "script-shell",
        """
        id: w
        steps:
          - id: a
            type: script
            shell: zsh
            run: echo hi
        """,
        "steps[0].shell",
        5,
        "the text 'zsh' is not allowed: use 'bash', 'sh', 'python' or 'node'",
    ),
    Case(
        "retries-too-many",
        """
        id: w
        steps:
          - id: a
            type: script
            run: "true"
            retries: 500
        """,
        "steps[0].retries",
        6,
        "must be at most 100, got the number 500",
    ),
    Case(
        "duration-bad",
        """
        id: w
        steps:
          - id: a
            type: script
            run: "true"
            retry_delay: soon
        """,
        "steps[0].retry_delay",
        6,
        "'soon' is not a duration; use a number of seconds or units like 90s, 10m, 1h30m, "
        "2h, 1d, 500ms",
    ),
    Case(
        "timeout-zero",
        """
        id: w
        steps:
          - id: a
            type: script
            run: "true"
            timeout: 0
        """,
        "steps[0].timeout",
        6,
        "a timeout of 0 would stop the step at once; leave it out for none",
    ),
    Case(
        "env-name",
        """
        id: w
        steps:
          - id: a
            type: script
            run: "true"
            env: {MY-VAR: x}
        """,
        "steps[0].env.MY-VAR",
        6,
        "'MY-VAR' is not a valid name: use letters, digits and '_', not starting with a digit",
    ),
    Case(
        "http-url",
        """
        id: w
        steps:
          - id: a
            type: http
            url: ftp://files.example.com/x
        """,
        "steps[0].url",
        5,
        "'ftp://files.example.com/x' is not an http:// or https:// URL",
    ),
    Case(
        "http-body-and-json",
        """
        id: w
        steps:
          - id: a
            type: http
            url: https://example.com
            body: hello
            json: {a: 1}
        """,
        "steps[0].json",
        7,
        "give 'body' (raw text) or 'json' (a JSON value), not both",
    ),
    Case(
        "http-expect-status",
        """
        id: w
        steps:
          - id: a
            type: http
            url: https://example.com
            expect_status: [200, 700]
        """,
        "steps[0].expect_status[1]",
        6,
        "must be at most 599, got the number 700",
    ),
    Case(
        "plan-from-on-plan",
        """
        id: w
        steps:
          - {id: p, type: terraform, action: plan}
          - id: q
            type: terraform
            action: plan
            needs: [p]
            plan_from: p
        """,
        "steps[1].plan_from",
        8,
        "plan_from only goes with action apply, not plan",
    ),
    Case(
        "plan-from-unknown",
        """
        id: w
        steps:
          - id: apply
            type: terraform
            action: apply
            plan_from: plann
        """,
        "steps[0].plan_from",
        6,
        "unknown step 'plann'; known steps: apply",
    ),
    Case(
        "plan-from-not-plan",
        """
        id: w
        steps:
          - {id: p, type: terraform, action: destroy}
          - id: apply
            type: terraform
            action: apply
            needs: [p]
            plan_from: p
        """,
        "steps[1].plan_from",
        8,
        "step 'p' is not a terraform step with action plan",
    ),
    Case(
        "plan-from-not-upstream",
        """
        id: w
        steps:
          - {id: p, type: terraform, action: plan}
          - id: apply
            type: terraform
            action: apply
            plan_from: p
        """,
        "steps[1].plan_from",
        7,
        "step 'p' is not upstream of 'apply': add it to needs",
    ),
    Case(
        "tf-source-both",
        """
        id: w
        steps:
          - id: p
            type: terraform
            action: plan
            source: {dir: infra, git: "https://git.example.com/infra.git"}
        """,
        "steps[0].source",
        6,
        "give either {dir: PATH} (code in the workflow directory) or {git: URL, ref: REF, "
        "path: PATH} (code in a repository)",
    ),
    Case(
        "tf-ref-with-dir",
        """
        id: w
        steps:
          - id: p
            type: terraform
            action: plan
            source: {dir: infra, ref: main}
        """,
        "steps[0].source.ref",
        6,
        "'ref' and 'path' go with 'git', not with 'dir'",
    ),
    Case(
        "ansible-inventory",
        """
        id: w
        steps:
          - id: a
            type: ansible
            playbook: site.yml
            inventory: {hosts: [web1], script: inv.py}
        """,
        "steps[0].inventory",
        6,
        "give an inventory file path, or one of {hosts: [...]} or {script: PATH}",
    ),
    Case(
        "ansible-playbook-outside",
        """
        id: w
        steps:
          - id: a
            type: ansible
            playbook: ../../etc/site.yml
        """,
        "steps[0].playbook",
        5,
        "'../../etc/site.yml' must be a path inside the workflow directory (relative, "
        "without '..'): the workflow's files are copied for every job",
    ),
    Case(
        "approval-min",
        """
        id: w
        steps:
          - id: ok
            type: approval
            approvers: [ana, ben]
            min_approvals: 3
        """,
        "steps[0].min_approvals",
        6,
        "min_approvals is 3 but only 2 approvers are listed: list more people, add a "
        "team, or lower min_approvals",
    ),
    Case(
        "param-choice-empty",
        """
        id: w
        params:
          env: {type: choice, choices: []}
        steps:
          - {id: a, type: script, run: "true"}
        """,
        "params.env.choices",
        3,
        "needs at least 1 item",
    ),
    Case(
        "approval-min-one-approver",
        """
        id: w
        steps:
          - id: ok
            type: approval
            approvers: [ana]
            min_approvals: 2
        """,
        "steps[0].min_approvals",
        6,
        "min_approvals is 2 but only 1 approver is listed: list more people, add a "
        "team, or lower min_approvals",
    ),
    Case(
        "approval-approver",
        """
        id: w
        steps:
          - id: ok
            type: approval
            approvers: ["team:"]
        """,
        "steps[0].approvers[0]",
        5,
        "'team:' is not a valid approver: write a user name, or team:NAME for every "
        "member of a team",
    ),
    Case(
        "condition-no-if",
        """
        id: w
        steps:
          - id: c
            type: condition
        """,
        "steps[0].if",
        3,
        "'if' is required",
    ),
    Case(
        "notify-no-channel",
        """
        id: w
        steps:
          - id: n
            type: notify
            message: hi
        """,
        "steps[0].channel",
        3,
        "'channel' is required: set it here or notify.channel for the whole workflow",
    ),
    Case(
        "workflow-step-self",
        """
        id: w
        steps:
          - id: again
            type: workflow
            workflow: w
        """,
        "steps[0].workflow",
        5,
        "a workflow step cannot run its own workflow",
    ),
    Case(
        "workflow-step-timeout-does-not-apply",
        """
        id: w
        steps:
          - id: child
            type: workflow
            workflow: other
            timeout: 2s
        """,
        "steps[0].timeout",
        6,
        "timeout does not apply to a workflow step (the child run has its own workflow "
        "timeout: set timeout in the child workflow); remove it here",
    ),
    Case(
        "workflow-step-retries-do-not-apply",
        """
        id: w
        steps:
          - {id: child, type: workflow, workflow: other, retries: 2}
        """,
        "steps[0].retries",
        3,
        "retries does not apply to a workflow step (a child run is not retried: retry the "
        "step by hand, or give the child's steps retries); remove it here",
    ),
    Case(
        "condition-step-timeout-does-not-apply",
        """
        id: w
        steps:
          - {id: c, type: condition, if: "true", timeout: 2s}
        """,
        "steps[0].timeout",
        3,
        "timeout does not apply to a condition step (a condition is evaluated at once on "
        "the server); remove it here",
    ),
    Case(
        "approval-step-agent-does-not-apply",
        """
        id: w
        steps:
          - id: ok
            type: approval
            approvers: [admin]
            agent: {pool: eu}
        """,
        "steps[0].agent",
        6,
        "agent does not apply to an approval step (an approval is answered by people, on "
        "the server); remove it here",
    ),
    Case(
        "param-choice-without-choices",
        """
        id: w
        params:
          env: {type: choice}
        steps:
          - {id: a, type: script, run: "true"}
        """,
        "params.env.choices",
        3,
        "a choice param needs 'choices', the list of allowed values",
    ),
    Case(
        "param-default-not-choice",
        """
        id: w
        params:
          env:
            type: choice
            choices: [staging, production]
            default: prod
        steps:
          - {id: a, type: script, run: "true"}
        """,
        "params.env.default",
        6,
        "default 'prod' is not one of the choices: staging, production",
    ),
    Case(
        "param-default-below-minimum",
        """
        id: w
        params:
          replicas:
            type: integer
            minimum: 1
            default: 0
        steps:
          - {id: a, type: script, run: "true"}
        """,
        "params.replicas.default",
        6,
        "default 0 is below the minimum 1",
    ),
    Case(
        "param-default-type",
        """
        id: w
        params:
          replicas:
            type: integer
            default: two
        steps:
          - {id: a, type: script, run: "true"}
        """,
        "params.replicas.default",
        5,
        "default 'two' is not an integer",
    ),
    Case(
        "param-pattern-on-integer",
        """
        id: w
        params:
          n:
            type: integer
            pattern: "[0-9]+"
        steps:
          - {id: a, type: script, run: "true"}
        """,
        "params.n.pattern",
        5,
        "pattern applies to string params, not integer",
    ),
    Case(
        "param-bad-regex",
        """
        id: w
        params:
          name:
            type: string
            pattern: "[a-z"
        steps:
          - {id: a, type: script, run: "true"}
        """,
        "params.name.pattern",
        5,
        "'[a-z' is not a valid regular expression: unterminated character set at position 0",
    ),
    Case(
        "param-default-pattern",
        """
        id: w
        params:
          version:
            type: string
            pattern: "[0-9]+[.][0-9]+"
            default: latest
        steps:
          - {id: a, type: script, run: "true"}
        """,
        "params.version.default",
        6,
        "default 'latest' does not match the pattern '[0-9]+[.][0-9]+'",
    ),
    Case(
        "param-minimum-on-string",
        """
        id: w
        params:
          name:
            type: string
            minimum: 3
        steps:
          - {id: a, type: script, run: "true"}
        """,
        "params.name.minimum",
        5,
        "minimum and maximum apply to integer and number params, not string",
    ),
    Case(
        "param-choice-type",
        """
        id: w
        params:
          n:
            type: integer
            choices: [1, 2, three]
        steps:
          - {id: a, type: script, run: "true"}
        """,
        "params.n.choices",
        5,
        "choice 'three' is not an integer: every choice must be an integer",
    ),
    Case(
        "param-name",
        """
        id: w
        params:
          my-param: {type: string}
        steps:
          - {id: a, type: script, run: "true"}
        """,
        "params.my-param",
        3,
        "'my-param' is not a valid name: use letters, digits and '_', not starting with a digit",
    ),
    Case(
        "param-type",
        """
        id: w
        params:
          n: {type: int}
        steps:
          - {id: a, type: script, run: "true"}
        """,
        "params.n.type",
        3,
        "the text 'int' is not allowed: use 'string', 'integer', 'number', 'boolean' or 'choice'",
    ),
    Case(
        "cron",
        """
        id: w
        triggers:
          - type: schedule
            cron: "0 25 * * *"
        steps:
          - {id: a, type: script, run: "true"}
        """,
        "triggers[0].cron",
        4,
        "'0 25 * * *' is not a valid cron line: use minute (0-59) hour (0-23) "
        "day-of-month (1-31) month (1-12) day-of-week (0-6), with *, ranges, lists and "
        "/step",
    ),
    Case(
        "cron-fields",
        """
        id: w
        triggers:
          - type: schedule
            cron: "every day"
        steps:
          - {id: a, type: script, run: "true"}
        """,
        "triggers[0].cron",
        4,
        "'every day' has 2 fields; a cron line has five: minute hour day-of-month month "
        "day-of-week (e.g. '0 3 * * 1-5'), or @daily",
    ),
    Case(
        "cron-never-fires",
        """
        id: w
        triggers:
          - type: schedule
            cron: "0 0 30 2 *"
        steps:
          - {id: a, type: script, run: "true"}
        """,
        "triggers[0].cron",
        4,
        "'0 0 30 2 *' never fires: February has no 30th",
    ),
    Case(
        "cron-matches-no-date",
        """
        id: w
        triggers:
          - type: schedule
            cron: "0 0 31 4,6 *"
        steps:
          - {id: a, type: script, run: "true"}
        """,
        "triggers[0].cron",
        4,
        "'0 0 31 4,6 *' never fires: it matches no date (no month it names has the day of "
        "month it names); check the day-of-month and month fields",
    ),
    Case(
        "timezone",
        """
        id: w
        triggers:
          - type: schedule
            cron: "0 3 * * *"
            timezone: Europe/Atlantis
        steps:
          - {id: a, type: script, run: "true"}
        """,
        "triggers[0].timezone",
        5,
        "'Europe/Atlantis' is not a known IANA time zone: use a name such as 'UTC', "
        "'Europe/Berlin' or 'America/New_York'",
    ),
    Case(
        "trigger-param-undeclared",
        """
        id: w
        params:
          env: {type: string, default: dev}
        triggers:
          - type: schedule
            cron: "0 3 * * *"
            params: {enviroment: prod}
        steps:
          - {id: a, type: script, run: "true"}
        """,
        "triggers[0].params.enviroment",
        7,
        "unknown param 'enviroment'; declared: env",
    ),
    Case(
        "trigger-param-value",
        """
        id: w
        params:
          env: {type: choice, choices: [dev, prod], default: dev}
        triggers:
          - type: schedule
            cron: "0 3 * * *"
            params: {env: qa}
        steps:
          - {id: a, type: script, run: "true"}
        """,
        "triggers[0].params.env",
        7,
        "'qa' is not one of the choices: dev, prod",
    ),
    Case(
        "schedule-required-param",
        """
        id: w
        params:
          version: {type: string, required: true}
        triggers:
          - type: schedule
            cron: "0 3 * * *"
        steps:
          - {id: a, type: script, run: "true"}
        """,
        "triggers[0].params",
        5,
        "param 'version' is required and has no default: set it here, as nobody fills in "
        "a form for a scheduled run",
    ),
    Case(
        "workflow-trigger-status",
        """
        id: w
        triggers:
          - type: workflow
            workflow: build
            statuses: [running]
        steps:
          - {id: a, type: script, run: "true"}
        """,
        "triggers[0].statuses[0]",
        5,
        "'running' is not how a run ends: use one of completed, failed, cancelled, rejected, error",
    ),
    Case(
        # Only the statuses a run ends with are named (not pending, running, paused).
        "workflow-trigger-status-unknown",
        """
        id: w
        triggers:
          - type: workflow
            workflow: build
            statuses: [completed, faild]
        steps:
          - {id: a, type: script, run: "true"}
        """,
        "triggers[0].statuses[1]",
        5,
        "'faild' is not how a run ends: use one of completed, failed, cancelled, "
        "rejected, error; did you mean 'failed'?",
    ),
    Case(
        "workflow-trigger-self",
        """
        id: w
        triggers:
          - type: workflow
            workflow: w
        steps:
          - {id: a, type: script, run: "true"}
        """,
        "triggers[0].workflow",
        4,
        "a workflow cannot trigger itself",
    ),
    Case(
        "incident-regex",
        """
        id: w
        triggers:
          - type: incident
            match: {alertname: "Kube(Pod"}
        steps:
          - {id: a, type: script, run: "true"}
        """,
        "triggers[0].match",
        4,
        "label 'alertname': 'Kube(Pod' is not a valid regular expression: missing ), "
        "unterminated subpattern at position 4",
    ),
    Case(
        "git-provider",
        """
        id: w
        triggers:
          - type: git
            provider: bitbucket
            repository: acme/infra
        steps:
          - {id: a, type: script, run: "true"}
        """,
        "triggers[0].provider",
        4,
        "the text 'bitbucket' is not allowed: use 'github', 'gitlab' or 'gitea'",
    ),
    Case(
        "webhook-key",
        """
        id: w
        triggers:
          - type: webhook
            key: "deploy hook!"
        steps:
          - {id: a, type: script, run: "true"}
        """,
        "triggers[0].key",
        4,
        "'deploy hook!' is not a valid trigger key: use 1 to 64 letters, digits, '-' and '_'",
    ),
    Case(
        "trigger-unknown-type",
        """
        id: w
        triggers:
          - type: cron
        steps:
          - {id: a, type: script, run: "true"}
        """,
        "triggers[0].type",
        3,
        "unknown trigger type 'cron'; use one of: schedule, webhook, git, incident, workflow",
    ),
    Case(
        "trigger-param-reads-nodes",
        """
        id: w
        params:
          env: {type: string, default: dev}
        triggers:
          - type: webhook
            params: {env: "{{ nodes.a.output.env }}"}
        steps:
          - {id: a, type: script, run: "true"}
        """,
        "triggers[0].params.env",
        6,
        "unknown name 'nodes' in template; templates here can read: execution, git, "
        "incident, secrets, trigger, workflow",
    ),
    Case(
        "template-syntax",
        """
        id: w
        steps:
          - id: a
            type: script
            run: "true"
            env: {X: "{{ params.x }"}
        """,
        "steps[0].env.X",
        6,
        "template syntax error: unexpected '}'",
    ),
    Case(
        "template-undeclared-param",
        """
        id: w
        params:
          env: {type: string, default: dev}
        steps:
          - id: a
            type: script
            run: "true"
            env: {X: "{{ params.enviroment }}"}
        """,
        "steps[0].env.X",
        8,
        "undeclared param 'enviroment'; declared params: env",
    ),
    Case(
        "template-unknown-step",
        """
        id: w
        steps:
          - {id: a, type: script, run: "true"}
          - id: b
            type: script
            needs: [a]
            run: "true"
            env: {X: "{{ nodes.build.output.tag }}"}
        """,
        "steps[1].env.X",
        8,
        "unknown step 'build' in template; known steps: a, b",
    ),
    Case(
        "template-not-upstream",
        """
        id: w
        steps:
          - {id: a, type: script, run: "true"}
          - id: b
            type: notify
            channel: ops
            message: "a said {{ nodes.a.output.exit_code }}"
        """,
        "steps[1].message",
        7,
        "step 'a' is not upstream of 'b', so its output may not exist yet: add it to needs",
    ),
    Case(
        "template-unknown-root",
        """
        id: w
        steps:
          - id: a
            type: http
            url: "https://{{ host }}/x"
        """,
        "steps[0].url",
        5,
        "unknown name 'host' in template; templates here can read: execution, git, "
        "incident, nodes, params, secrets, trigger, workflow",
    ),
    Case(
        "template-own-output",
        """
        id: w
        steps:
          - id: a
            type: condition
            if: "{{ nodes.a.output.result }}"
        """,
        "steps[0].if",
        5,
        "step 'a' cannot read its own output",
    ),
    Case(
        "concurrency-limit",
        """
        id: w
        concurrency: {limit: 0}
        steps:
          - {id: a, type: script, run: "true"}
        """,
        "concurrency.limit",
        2,
        "must be at least 1, got the number 0",
    ),
    Case(
        "concurrency-policy",
        """
        id: w
        concurrency: {limit: 1, policy: drop}
        steps:
          - {id: a, type: script, run: "true"}
        """,
        "concurrency.policy",
        2,
        "the text 'drop' is not allowed: use 'queue', 'skip' or 'cancel-running'",
    ),
    Case(
        "labels-type",
        """
        id: w
        labels: {team: [a, b]}
        steps:
          - {id: a, type: script, run: "true"}
        """,
        "labels.team",
        2,
        "expected text, got a list",
    ),
    Case(
        "workflow-timeout-zero",
        """
        id: w
        timeout: 0s
        steps:
          - {id: a, type: script, run: "true"}
        """,
        "timeout",
        2,
        "a timeout of 0 would end every run at once; leave it out for none",
    ),
    Case(
        "yaml-syntax",
        """
        id: w
        steps:
          - id: a
            type: script
            run: echo "value: x"
              more
        """,
        "",
        5,
        "YAML syntax error: mapping values are not allowed here: a value holding ': ' "
        "must be quoted, or written as a block (|)",
    ),
    Case(
        "yaml-duplicate-key",
        """
        id: w
        steps:
          - id: a
            type: script
            run: "true"
            run: "false"
        """,
        "steps[0].run",
        6,
        "duplicate key 'run' (first on line 5): keep one",
    ),
    Case(
        "yaml-top-level-list",
        """
        - id: w
        """,
        "",
        1,
        "expected a mapping (key: value), got a list",
    ),
    Case(
        "yaml-two-documents",
        """
        id: w
        steps: []
        ---
        id: v
        """,
        "",
        3,
        "YAML syntax error: the file holds more than one YAML document: put one workflow per file",
    ),
    Case(
        "yaml-tag",
        """
        id: w
        steps:
          - id: a
            type: script
            run: !!binary aGVsbG8=
        """,
        "steps[0].run",
        5,
        "unsupported YAML tag !!binary: write a plain value",
    ),
    Case(
        "yaml-recursive-alias",
        """
        id: w
        labels: &l {a: *l}
        steps:
          - {id: a, type: script, run: "true"}
        """,
        "labels.a",
        2,
        "a YAML alias refers to itself: remove the loop",
    ),
]


@pytest.mark.parametrize("case", CASES, ids=[c.rule for c in CASES])
def test_each_rule_reports_its_place_and_message(case: Case) -> None:
    problem = only_problem(case.text)
    assert (problem.loc, problem.line, problem.msg) == (case.loc, case.line, case.msg)


@pytest.mark.parametrize(
    "fields",
    ["retries: 0", "retry_delay: 0", "agent: {}", "allow_skip: true"],
)
def test_a_field_written_with_the_value_that_changes_nothing_stays_valid(fields: str) -> None:
    text = f"""
id: w
steps:
  - {{id: child, type: workflow, workflow: other, {fields}}}
  - {{id: c, type: condition, needs: [child], if: "true", {fields}}}
"""
    workflow, problems = validate_text(text)
    assert problems == [] and workflow is not None


def test_timeouts_and_retries_stay_valid_on_every_step_type_that_runs_a_job() -> None:
    steps = [
        '{id: a, type: script, run: "true"',
        "{id: b, type: http, url: http://127.0.0.1/x",
        "{id: n, type: notify, channel: c, message: m",
    ]
    text = "id: w\nsteps:\n" + "".join(
        f"  - {s}, timeout: 2s, retries: 2, retry_delay: 1s}}\n" for s in steps
    )
    workflow, problems = validate_text(text)
    assert problems == [] and workflow is not None
