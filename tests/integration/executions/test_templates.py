"""Templates during a run, over the HTTP API: a failing template fails the step it renders and
nothing else, conditions read text by the documented words, values are written as JSON, and
secrets are refused where no job would receive them."""

from __future__ import annotations

import json

import pytest

from opsflow.status import ExecutionStatus, JobStatus, StepStatus

from .conftest import TEST_TIMEOUT, YAML, Api, step_of

pytestmark = pytest.mark.timeout(TEST_TIMEOUT)

DOWNSTREAM_ERROR = """\
id: tmpl-downstream-error
steps:
  - id: a
    type: script
    shell: sh
    retries: 2
    run: echo done=yes >> "$OPSFLOW_OUTPUT"
  - id: b
    type: script
    needs: [a]
    env: {X: "{{ 1/0 }}"}
    run: echo "$X"
"""


def test_a_downstream_template_error_fails_that_step_and_leaves_the_upstream_report(
    api: Api,
) -> None:
    api.publish(DOWNSTREAM_ERROR)
    detail = api.run("tmpl-downstream-error")
    assert detail["status"] == ExecutionStatus.FAILED, detail["engine_log"]
    a = step_of(detail, "a")
    assert a["status"] == StepStatus.SUCCEEDED
    (only,) = a["jobs"]  # reported once, never lost and run again
    assert (only["attempt"], only["status"]) == (1, JobStatus.COMPLETED)
    b = step_of(detail, "b")
    assert b["status"] == StepStatus.FAILED
    (failed,) = b["jobs"]  # a template cannot be fixed by retrying
    assert failed["status"] == JobStatus.FAILED
    assert failed["error"].startswith("env.X: division by zero (ZeroDivisionError)")
    assert b["error"] == failed["error"]


@pytest.mark.parametrize(
    ("template", "says"),
    [
        ("{{ 1/0 }}", "division by zero"),
        ("{{ 'a' + 1 }}", "TypeError"),
        ("{{ (10**(10**7)) > 1 }}", "more than the limit of 4,096"),
        ("{{ 'x' * (2**21) }}", "more than the limit of 1,048,576"),
    ],
)
def test_a_failing_first_step_template_starts_the_run_and_fails_the_step(
    api: Api, template: str, says: str
) -> None:
    api.publish(
        f"""\
id: tmpl-first-step
steps:
  - id: first
    type: script
    env: {{X: {json.dumps(template)}}}
    run: echo "$X"
"""
    )
    response = api.client.post("/api/v1/workflows/tmpl-first-step/runs", json={})
    assert response.status_code == 201, response.text
    detail = api.wait(response.json()["id"])
    assert detail["status"] == ExecutionStatus.FAILED
    first = step_of(detail, "first")
    assert first["status"] == StepStatus.FAILED
    assert first["error"].startswith("env.X: ") and says in first["error"], first["error"]


CONDITION_ON_TEXT = """\
id: tmpl-condition-words
params:
  written: {type: string, default: "false"}
steps:
  - id: probe
    type: script
    shell: sh
    env: {WRITTEN: "{{ params.written }}"}
    run: echo "enabled=$WRITTEN" >> "$OPSFLOW_OUTPUT"
  - id: enabled
    type: condition
    needs: [probe]
    if: "{{ nodes.probe.output.enabled }}"
  - {id: when-on, type: script, needs: [enabled.true], run: "true"}
  - {id: when-off, type: script, needs: [enabled.false], run: "true"}
"""


@pytest.mark.parametrize(
    ("written", "branch"),
    [
        ("false", "when-off"),
        ("FALSE", "when-off"),
        ("off", "when-off"),
        ("0", "when-off"),
        ("true", "when-on"),
        ("Yes", "when-on"),
        ("1", "when-on"),
    ],
)
def test_a_condition_on_output_text_follows_the_truth_words(
    api: Api, written: str, branch: str
) -> None:
    api.publish(CONDITION_ON_TEXT)
    detail = api.run("tmpl-condition-words", params={"written": written})
    assert detail["status"] == ExecutionStatus.COMPLETED, detail["engine_log"]
    other = "when-on" if branch == "when-off" else "when-off"
    assert step_of(detail, branch)["status"] == StepStatus.SUCCEEDED
    assert step_of(detail, other)["status"] == StepStatus.SKIPPED
    assert step_of(detail, "enabled")["outputs"] == {"result": branch == "when-on"}


def test_a_condition_on_unclear_text_fails_naming_the_value(api: Api) -> None:
    api.publish(CONDITION_ON_TEXT)
    detail = api.run("tmpl-condition-words", params={"written": "maybe"})
    assert detail["status"] == ExecutionStatus.FAILED
    enabled = step_of(detail, "enabled")
    assert enabled["status"] == StepStatus.FAILED
    assert "the text 'maybe' is not a truth word" in enabled["error"], enabled["error"]
    assert step_of(detail, "when-on")["status"] == StepStatus.SKIPPED


JSON_SPELLINGS = """\
id: tmpl-json-spellings
steps:
  - id: x
    type: script
    shell: sh
    run: |
      echo '{"flag": true, "off": false, "missing": null, "d": {"k": [1, null]}}' \
        > "$OPSFLOW_OUTPUT"
  - id: show
    type: script
    shell: python
    needs: [x]
    env:
      FLAG: "{{ nodes.x.output.flag }}"
      OFF: "flag is {{ nodes.x.output.off }}"
      MISSING: "{{ nodes.x.output.missing }}"
      D: "{{ nodes.x.output.d }}"
      JOINED: "{{ [nodes.x.output.flag, nodes.x.output.missing] | join(',') }}"
      TILDE: "{{ 'off=' ~ nodes.x.output.off }}"
    run: |
      import json, os
      names = ["FLAG", "OFF", "MISSING", "D", "JOINED", "TILDE"]
      with open(os.environ["OPSFLOW_OUTPUT"], "w") as f:
          json.dump({n: os.environ[n] for n in names}, f)
"""


def test_values_rendered_into_text_use_json_spellings(api: Api) -> None:
    api.publish(JSON_SPELLINGS)
    detail = api.run("tmpl-json-spellings")
    assert detail["status"] == ExecutionStatus.COMPLETED, detail["engine_log"]
    seen = step_of(detail, "show")["outputs"]
    assert {k: v for k, v in seen.items() if k != "exit_code"} == {
        "FLAG": "true",
        "OFF": "flag is false",
        "MISSING": "null",
        "D": '{"k": [1, null]}',
        "JOINED": "true,null",
        "TILDE": "off=false",
    }


@pytest.mark.parametrize(
    ("step", "loc", "says"),
    [
        (
            "{id: c, type: condition, needs: [a], if: \"{{ secrets.X == 'value' }}\"}",
            "steps[1].if",
            "cannot be used here",
        ),
        (
            '{id: c, type: approval, needs: [a], message: "token {{ secrets.X }}"}',
            "steps[1].message",
            "cannot be used here",
        ),
        (
            '{id: c, type: script, needs: [a], run: "true",'
            " env: {X: \"{{ 'y' if secrets.X == 'v' else 'n' }}\"}}",
            "steps[1].env.X",
            "can only be written out whole",
        ),
        (
            '{id: c, type: script, needs: [a], run: "true", env: {X: "{{ secrets.X | lower }}"}}',
            "steps[1].env.X",
            "can only be written out whole",
        ),
    ],
)
def test_secrets_where_no_job_receives_them_are_refused_naming_the_field(
    api: Api, step: str, loc: str, says: str
) -> None:
    text = f"id: tmpl-secret-use\nsteps:\n  - {{id: a, type: script, run: 'true'}}\n  - {step}\n"
    response = api.client.put("/api/v1/workflows/tmpl-secret-use", content=text, headers=YAML)
    assert response.status_code == 422, response.text
    (error,) = response.json()["errors"]
    assert error["loc"] == loc
    assert "'secrets.X'" in error["msg"] and says in error["msg"], error["msg"]


def test_a_secret_written_out_whole_in_a_job_field_is_accepted(api: Api) -> None:
    text = (
        "id: tmpl-secret-whole\nsteps:\n"
        '  - {id: a, type: script, run: "true", env: {T: "Bearer {{ secrets.X }}"}}\n'
    )
    response = api.client.put("/api/v1/workflows/tmpl-secret-whole", content=text, headers=YAML)
    assert response.status_code in (200, 201), response.text


# The new-user trial's scripts: an output named like a dict method (``items``, the name a
# fanned-out step's outputs use too) and a flag written as text (``enabled=false``).
OUTPUT_KEYS_AND_WORDS = """\
id: tmpl-output-keys
outputs:
  n: "{{ nodes.p.output.items }}"
  each: "{{ nodes.each.output.items | map(attribute='item') | join(',') }}"
steps:
  - id: p
    type: script
    shell: sh
    run: echo "items=3" >> "$OPSFLOW_OUTPUT"
  - id: probe
    type: script
    shell: sh
    run: echo "enabled=false" >> "$OPSFLOW_OUTPUT"
  - id: show
    type: script
    shell: sh
    needs: [p, probe]
    env:
      V: "{{ nodes.p.output.items }}"
      NOT_ENABLED: "{{ not nodes.probe.output.enabled }}"
    run: |
      echo "v=$V" >> "$OPSFLOW_OUTPUT"
      echo "not_enabled=$NOT_ENABLED" >> "$OPSFLOW_OUTPUT"
  - {id: three, type: condition, needs: [p], if: "{{ nodes.p.output.items == '3' }}"}
  - {id: disabled, type: condition, needs: [probe], if: "{{ not nodes.probe.output.enabled }}"}
  - id: is-false
    type: condition
    needs: [probe]
    if: "{{ nodes.probe.output.enabled == false }}"
  - id: each
    type: script
    shell: sh
    needs: [p]
    for_each: "{{ nodes.p.output.items }}"
    env: {ITEM: "{{ item }}"}
    run: echo "got=$ITEM" >> "$OPSFLOW_OUTPUT"
"""


def test_output_keys_named_like_methods_and_false_text_read_as_written(api: Api) -> None:
    api.publish(OUTPUT_KEYS_AND_WORDS)
    detail = api.run("tmpl-output-keys")
    assert detail["status"] == ExecutionStatus.COMPLETED, detail["engine_log"]
    shown = step_of(detail, "show")["outputs"]
    assert (shown["v"], shown["not_enabled"]) == ("3", "true")
    for condition in ("three", "disabled", "is-false"):
        assert step_of(detail, condition)["outputs"] == {"result": True}, condition
    each = step_of(detail, "each")
    assert [i["outputs"]["got"] for i in each["outputs"]["items"]] == ["3"]
    assert detail["outputs"] == {"n": "3", "each": "3"}
    # What the conditions read, as the engine log shows it: the text, not a method.
    log = "\n".join(line["message"] for line in detail["engine_log"])
    assert "nodes.p.output.items='3'" in log, log
    assert "nodes.probe.output.enabled='false'" in log, log


def test_output_text_compared_with_a_number_says_to_convert_it(api: Api) -> None:
    api.publish(
        """\
id: tmpl-text-vs-number
steps:
  - {id: p, type: script, shell: sh, run: 'echo "count=3" >> "$OPSFLOW_OUTPUT"'}
  - {id: many, type: condition, needs: [p], if: "{{ nodes.p.output.count > 2 }}"}
"""
    )
    detail = api.run("tmpl-text-vs-number")
    error = step_of(detail, "many")["error"]
    assert "cannot compare text with a number using '>'" in error, error
    assert "| int or | float" in error and "TypeError" not in error, error


def test_an_unquoted_true_in_if_is_accepted_and_true(api: Api) -> None:
    api.publish(
        """\
id: tmpl-if-true
steps:
  - {id: always, type: condition, if: true}
  - {id: then, type: script, needs: [always.true], run: "true"}
"""
    )
    detail = api.run("tmpl-if-true")
    assert detail["status"] == ExecutionStatus.COMPLETED, detail["engine_log"]
    assert step_of(detail, "always")["outputs"] == {"result": True}
    assert step_of(detail, "then")["status"] == StepStatus.SUCCEEDED
