"""The loader: every problem at once, located; JSON input; files; canonical form."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from opsflow.errors import SpecInvalid
from opsflow.spec.loader import (
    canonical,
    load_definition,
    load_workflow,
    load_workflow_file,
    validate_text,
)
from opsflow.spec.models import (
    ApprovalStep,
    ConditionStep,
    HttpStep,
    ScheduleTrigger,
    ScriptStep,
)
from opsflow.status import ConcurrencyPolicy, Join
from tests.unit.spec.support import load, problems

FIVE_MISTAKES = """
id: five-mistakes
params:
  env: {type: choice, choices: [dev, prod], default: qa}
triggers:
  - {type: schedule, cron: "0 3 * * *", timezone: Mars/Olympus}
steps:
  - id: build
    type: script
    run: make
    retry_delay: later
  - id: deploy
    type: script
    needs: [biuld]
    run: ./deploy.sh
  - id: check
    type: http
    needs: [deploy]
    url: "https://{{ params.region }}.example.com"
"""


def test_a_file_with_five_mistakes_reports_all_five_in_line_order() -> None:
    found = problems(FIVE_MISTAKES)
    assert [(p.loc, p.line) for p in found] == [
        ("params.env.default", 3),
        ("triggers[0].timezone", 5),
        ("steps[0].retry_delay", 10),
        ("steps[1].needs[0]", 13),
        ("steps[2].url", 18),
    ]
    assert all(p.msg and p.column for p in found)
    assert "did you mean 'build'?" in found[3].msg


def test_spec_invalid_message_counts_problems_and_names_the_first() -> None:
    with pytest.raises(SpecInvalid) as info:
        load_workflow(FIVE_MISTAKES.lstrip(), "deploy.yaml")
    assert str(info.value).startswith("invalid workflow (5 problems); first: deploy.yaml:3: ")


def test_validate_text_returns_problems_without_raising() -> None:
    workflow, found = validate_text("id: x\nsteps: nope\n")
    assert workflow is None
    assert [(p.loc, p.line, p.msg) for p in found] == [
        ("steps", 2, "expected a list, got the text 'nope'")
    ]


def test_a_minimal_workflow_gets_the_documented_defaults() -> None:
    workflow = load(
        """
        id: tiny
        triggers: [{type: schedule, cron: "@daily"}]
        concurrency: {limit: 2}
        steps:
          - {id: a, type: script, run: "echo {{ not a template }}"}
          - {id: b, type: http, url: "https://example.com", needs: [a]}
          - {id: c, type: approval, needs: [b], timeout: 0}
        """
    )
    script, http, approval = workflow.steps
    assert isinstance(script, ScriptStep) and script.shell == "bash" and script.join == Join.ALL
    assert isinstance(http, HttpStep) and http.expect_status == [] and http.verify_tls
    assert isinstance(approval, ApprovalStep) and approval.timeout == 0
    trigger = workflow.triggers[0]
    assert isinstance(trigger, ScheduleTrigger) and trigger.timezone == "UTC"
    assert workflow.concurrency is not None
    assert workflow.concurrency.policy == ConcurrencyPolicy.QUEUE
    assert workflow.title == "tiny"


def test_json_definitions_report_paths_without_lines() -> None:
    with pytest.raises(SpecInvalid) as info:
        load_definition({"id": "j", "steps": [{"id": "a", "type": "script"}]})
    [problem] = info.value.problems
    assert (problem.loc, problem.line) == ("steps[0]", None)
    assert "exactly one of 'run'" in problem.msg


@pytest.mark.parametrize("body", [[], "text", None, 3])
def test_a_definition_that_is_not_a_mapping_is_refused_clearly(body: object) -> None:
    with pytest.raises(SpecInvalid) as info:
        load_definition(body)
    assert [p.loc for p in info.value.problems] == [""]
    assert info.value.problems[0].msg.startswith("expected a mapping (key: value), got")


def test_json_text_is_read_as_yaml() -> None:
    text = json.dumps({"id": "j", "steps": [{"id": "a", "type": "script", "run": "true"}]})
    assert load_workflow(text).id == "j"


def test_anchors_and_merge_keys_work_and_keys_stay_text() -> None:
    workflow = load(
        """
        id: merged
        labels: {on: yes, 1: two}
        steps:
          - &base {id: a, type: script, run: "true", retries: 2}
          - {<<: *base, id: b, needs: [a]}
        """
    )
    assert workflow.labels == {"on": "yes", "1": "two"}
    assert [(s.id, s.retries) for s in workflow.steps] == [("a", 2), ("b", 2)]


def test_a_mistake_inside_merged_values_points_at_the_key_in_the_step() -> None:
    found = problems(
        """
        id: merged
        steps:
          - &base {id: a, type: script, run: "true"}
          - <<: *base
            id: b
            retries: many
        """
    )
    assert [(p.loc, p.line) for p in found] == [("steps[1].retries", 6)]


def test_a_step_id_with_a_dash_read_with_dots_gets_a_hint() -> None:
    found = problems(
        """
        id: dashes
        steps:
          - {id: build-image, type: script, run: "true"}
          - id: report
            type: notify
            channel: ops
            needs: [build-image]
            message: "{{ nodes.build-image.output.tag }}"
        """
    )
    assert "(for 'build-image' write nodes['build-image'])" in found[0].msg


def test_templates_may_read_upstream_steps_through_any_path() -> None:
    workflow = load(
        """
        id: chain
        params: {env: {type: string, default: dev}}
        steps:
          - {id: a, type: script, run: "true"}
          - {id: b, type: script, run: "true", needs: [a]}
          - id: c
            type: condition
            needs: [b.failed]
            if: "{{ nodes['a'].output.exit_code == 0 and params.env in ['dev'] }}"
          - id: d
            type: http
            needs: [c.true]
            url: "https://example.com/{% for k in range(2) %}{{ k }}{% endfor %}"
            json: {items: ["{{ nodes.b.status }}", 1, true]}
        """
    )
    assert len(workflow.steps) == 4


def write_workflow(tmp_path: Path, text: str) -> Path:
    (tmp_path / "workflow.yaml").write_text(text)
    return tmp_path


def test_a_directory_is_checked_for_the_files_its_steps_name(tmp_path: Path) -> None:
    (tmp_path / "scripts").mkdir()
    (tmp_path / "scripts" / "present.sh").write_text("true\n")
    write_workflow(
        tmp_path,
        "id: files\n"
        "steps:\n"
        "  - {id: a, type: script, file: scripts/present.sh}\n"
        "  - {id: b, type: script, file: scripts/missing.sh}\n"
        "  - {id: c, type: ansible, playbook: site.yml, inventory: /etc/ansible/hosts}\n",
    )
    with pytest.raises(SpecInvalid) as info:
        load_workflow_file(tmp_path)
    assert [(p.loc, p.line, p.msg) for p in info.value.problems] == [
        ("steps[1].file", 4, "there is no file 'scripts/missing.sh' in the workflow directory"),
        ("steps[2].playbook", 5, "there is no file 'site.yml' in the workflow directory"),
    ]


def test_a_file_that_is_not_utf8_is_refused(tmp_path: Path) -> None:
    (tmp_path / "workflow.yaml").write_bytes(b"id: x\nname: \xff\n")
    with pytest.raises(SpecInvalid) as info:
        load_workflow_file(tmp_path / "workflow.yaml")
    assert "not UTF-8" in info.value.problems[0].msg


def test_a_directory_without_workflow_yaml_is_refused(tmp_path: Path) -> None:
    with pytest.raises(SpecInvalid, match=r"has no workflow\.yaml"):
        load_workflow_file(tmp_path)


def test_canonical_ignores_formatting_order_and_explicit_defaults() -> None:
    one = load(
        """
        id: same
        steps:
          - {id: a, type: script, run: "true", timeout: 90s}
        """
    )
    two = load(
        """
        # the same workflow, written differently
        steps:
          - type: script
            run: "true"
            join: all
            shell: bash
            timeout: 1m30s
            id: a
        id: same
        """
    )
    assert canonical(one) == canonical(two)
    assert canonical(one) != canonical(load("id: same\nsteps: [{id: a, type: script, run: x}]"))


def test_canonical_form_loads_back_to_the_same_workflow() -> None:
    workflow = load(
        FIVE_MISTAKES.replace("qa", "dev")
        .replace("Mars/Olympus", "UTC")
        .replace("later", "5s")
        .replace("biuld", "build")
        .replace("params.region", "params.env")
    )
    again = load_definition(json.loads(json.dumps(canonical(workflow))))
    assert again == workflow


def test_a_bare_boolean_where_only_text_belongs_gets_a_hint_quoting_the_source() -> None:
    [problem] = problems(
        """
        id: words
        steps:
          - {id: a, type: notify, channel: ops, message: TRUE}
        """
    )
    assert problem.msg == (
        "expected text, got true (the unquoted TRUE is not text in YAML: quote it, 'TRUE')"
    )


@pytest.mark.parametrize(
    ("text", "line", "msg"),
    [
        (
            'id: x\nsteps:\n  - {id: a, type: script, run: "tr\x07ue"}\n',
            3,
            "YAML cannot hold this text: unacceptable character #x0007: "
            "special characters are not allowed",
        ),
        (
            "id: x\nlabels:\n" + "".join("  " * i + "a:\n" for i in range(1, 80)),
            66,
            "the YAML is nested more than 64 levels deep",
        ),
        (
            # libyaml gives up at 1,000 levels before any event is that deep; PyYAML's own
            # composer, asked for better words, then overflowed the stack (a 500 on the API).
            "id: x\nsteps: " + "[" * 100_000 + "]" * 100_000 + "\n",
            2,
            "the YAML is nested more than 64 levels deep",
        ),
        (
            "a: &a [x, x, x, x, x, x, x, x, x, x]\n"
            + "".join(
                f"{n}: &{n} [{', '.join([f'*{p}'] * 10)}]\n"
                for p, n in zip("abcde", "bcdef", strict=True)
            ),
            1,
            "the document expands to more than 100000 values (aliases?)",
        ),
        ("id: x\nsteps: !custom [1]\n", 2, "unsupported YAML tag !custom: write a plain value"),
        ("# only a comment\n", 1, "the file is empty: a workflow needs an id and steps"),
        (
            "id: x\nsteps: []\n---\nid: y\n",
            3,
            "YAML syntax error: the file holds more than one YAML document: "
            "put one workflow per file",
        ),
    ],
    ids=[
        "control-character",
        "too-deep",
        "flow-100000-deep",
        "alias-bomb",
        "custom-tag",
        "empty",
        "two-documents",
    ],
)
def test_unreadable_yaml_is_a_located_problem(text: str, line: int, msg: str) -> None:
    workflow, found = validate_text(text)
    assert workflow is None
    assert [(p.line, p.msg) for p in found] == [(line, msg)]


@pytest.mark.parametrize(("written", "text"), [("true", "true"), ("True", "True"), ("0", "0")])
def test_an_unquoted_boolean_or_number_in_if_is_its_text_as_written(
    written: str, text: str
) -> None:
    workflow = load(f"id: t\nsteps:\n  - {{id: c, type: condition, if: {written}}}\n")
    (step,) = workflow.steps
    assert isinstance(step, ConditionStep) and step.if_ == text
