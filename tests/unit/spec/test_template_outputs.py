"""What templates read from a run: a mapping's key wins over its methods (``output.items``),
output text reads by the truth words in ``not`` and ``== false`` too, text compared with a
number says to convert it, and nothing of the context's own types leaks into what is stored."""

from __future__ import annotations

import json
from typing import Any

import pytest

from opsflow.errors import TemplateError
from opsflow.runtime.context import template_context
from opsflow.spec.loader import load_workflow
from opsflow.spec.template import evaluate_condition, evaluate_value, render, render_value
from opsflow.status import ExecutionStatus, StepStatus
from opsflow.store.runs import Execution, Step


def _execution(params: dict[str, Any], trigger: dict[str, Any]) -> Execution:
    return Execution(
        id="e1",
        workflow_id="wf",
        version=1,
        test_run=False,
        definition={"id": "wf", "steps": []},
        bundle_digest=None,
        status=ExecutionStatus.RUNNING,
        status_reason="",
        trigger_type="webhook",
        trigger=trigger,
        params=params,
        started_by="admin",
        created_at=0.0,
        started_at=0.0,
        ended_at=None,
        cancel_mode=None,
        cancel_requested_at=None,
        cancel_reason=None,
        cancel_by=None,
    )


def _step(step_id: str, outputs: dict[str, Any]) -> Step:
    return Step(
        execution_id="e1",
        step_id=step_id,
        position=0,
        type="script",
        status=StepStatus.SUCCEEDED,
        entered_at=0.0,
        started_at=0.0,
        ended_at=1.0,
        retry_at=None,
        gate_result=None,
        gate_reason=None,
        retry_base=0,
        user_skipped=False,
        outputs=outputs,
    )


# What the trial's scripts wrote (``items=3``, ``enabled=false``) and a fanned-out step's
# gathered outputs (``items`` a list), as the runtime builds the context from the rows.
STEPS = {
    "p": _step(
        "p",
        {
            "items": "3",
            "values": "yes",
            "keys": "k",
            "get": "g",
            "update": "u",
            "copy": "c",
            "pop": "o",
            "exit_code": 0,
        },
    ),
    "probe": _step("probe", {"enabled": "false", "on": "TRUE", "msg": "deploy done"}),
    "each": _step("each", {"items": [{"index": 0, "item": "a"}], "total": 1}),
}


def _context() -> dict[str, Any]:
    context = template_context(
        _execution({"items": "pi"}, {"get": "tg", "body": {"values": "tv"}}), STEPS
    )
    # A job of a matrix item reads ``item`` and ``matrix`` (runtime.fan_out.item_names).
    context.update({"item": {"keys": "ik"}, "index": 0, "matrix": {"update": "mu"}})
    return context


@pytest.mark.parametrize(
    ("source", "text"),
    [
        ("{{ nodes.p.output.items }}", "3"),
        ("{{ nodes.p.output.values }}", "yes"),
        (
            "{{ nodes.p.output.keys }}{{ nodes.p.output.get }}{{ nodes.p.output.update }}"
            "{{ nodes.p.output.copy }}{{ nodes.p.output.pop }}",
            "kguco",
        ),
        ("{{ params.items }}", "pi"),
        ("{{ trigger.get }} {{ trigger.body.values }}", "tg tv"),
        ("{{ item.keys }} {{ matrix.update }}", "ik mu"),
        ("items={{ nodes.each.output.items }}", 'items=[{"index": 0, "item": "a"}]'),
        # A name that is not a key is still the mapping's method.
        ("{{ nodes.probe.output.keys() | sort | join(',') }}", "enabled,msg,on"),
    ],
)
def test_a_key_wins_over_a_method_of_the_same_name(source: str, text: str) -> None:
    assert render(source, _context(), where="env.V") == text


def test_a_key_named_like_a_method_reads_in_conditions_and_lists() -> None:
    context = _context()
    assert evaluate_condition("{{ nodes.p.output.items == '3' }}", context).result is True
    assert evaluate_condition("{{ nodes.p.output.values }}", context).result is True
    assert evaluate_value("{{ nodes.each.output.items }}", context, where="for_each") == [
        {"index": 0, "item": "a"}
    ]
    assert render_value({"n": "{{ nodes.p.output.items | int + 1 }}"}, context) == {"n": "4"}


def test_the_validator_accepts_output_keys_named_like_methods_and_they_read_as_keys() -> None:
    workflow = load_workflow(
        """
id: t
steps:
  - {id: p, type: script, run: "true"}
  - id: b
    type: script
    needs: [p]
    env: {V: "{{ nodes.p.output.items }}", W: "{{ nodes.p.output.values }}"}
    run: "true"
  - {id: c, type: condition, needs: [p], if: "{{ nodes.p.output.items == '3' }}"}
  - {id: f, type: script, needs: [p], for_each: "{{ nodes.p.output.items }}", run: "true"}
"""
    )
    assert [s.id for s in workflow.steps] == ["p", "b", "c", "f"]
    env = workflow.steps[1].env  # type: ignore[union-attr]
    assert render_value(env, _context()) == {"V": "3", "W": "yes"}


@pytest.mark.parametrize(
    ("condition", "answer"),
    [
        ("{{ nodes.probe.output.enabled }}", False),
        ("{{ not nodes.probe.output.enabled }}", True),
        ("{{ nodes.probe.output.enabled == false }}", True),
        ("{{ nodes.probe.output.enabled == true }}", False),
        ("{{ nodes.probe.output.enabled != false }}", False),
        ("{{ false == nodes.probe.output.enabled }}", True),
        ("{{ nodes.probe.output.enabled is false }}", True),
        ("{{ nodes.probe.output.on == true }}", True),
        ("{{ not nodes.probe.output.on }}", False),
        ("{{ nodes.probe.output.on and not nodes.probe.output.enabled }}", True),
        ("{{ nodes.probe.output.enabled == 'false' }}", True),
        ("{{ nodes.probe.output.enabled in ['false', 'no'] }}", True),
        # Ordinary text: true in ``not``/``and``, equal to neither true nor false.
        ("{{ not nodes.probe.output.msg }}", False),
        ("{{ nodes.probe.output.msg == true or nodes.probe.output.msg == false }}", False),
    ],
)
def test_output_text_reads_by_the_truth_words_in_every_expression(
    condition: str, answer: bool
) -> None:
    assert evaluate_condition(condition, _context()).result is answer


def test_if_blocks_on_output_text_read_false_words_and_ordinary_text() -> None:
    source = (
        "{% if nodes.probe.output.enabled %}on{% else %}off{% endif %} "
        "{% if nodes.probe.output.msg %}{{ nodes.probe.output.msg }}{% endif %}"
    )
    assert render(source, _context(), where="message") == "off deploy done"


def test_output_text_leaves_the_renderer_as_plain_text() -> None:
    context = _context()
    source = "{{ nodes.probe.output.enabled }} {{ not nodes.probe.output.enabled }}"
    rendered = render(source, context, where="env.E")
    assert type(rendered) is str and rendered == "false true"
    listed = evaluate_value(
        "{{ [nodes.probe.output.enabled, nodes.p.output, nodes.probe.output.enabled == false] }}",
        context,
        where="for_each",
    )
    # The for_each list as stored: plain JSON values.
    assert json.dumps(listed) == json.dumps(["false", {**STEPS["p"].outputs}, True])
    assert type(listed[0]) is str and type(listed[1]) is dict
    assert type(listed[1]["items"]) is str
    verdict = evaluate_condition("{{ nodes.probe.output.enabled == false }}", context)
    assert verdict.reads == {"nodes.probe.output.enabled": "false"}
    assert type(verdict.reads["nodes.probe.output.enabled"]) is str
    # The rows the context was built from are left as they were.
    assert all(type(v) is str for v in STEPS["probe"].outputs.values())


@pytest.mark.parametrize("operator", [">", "<", ">=", "<="])
def test_comparing_output_text_with_a_number_says_to_convert_it(operator: str) -> None:
    with pytest.raises(TemplateError) as info:
        evaluate_condition(f"{{{{ nodes.p.output.items {operator} 2 }}}}", _context())
    message = info.value.message
    assert f"cannot compare text with a number using '{operator}'" in message, message
    assert "| int or | float" in message
    assert "TypeError" not in message
    assert evaluate_condition("{{ nodes.p.output.items | int > 2 }}", _context()).result


def test_the_whole_of_nodes_or_an_output_is_written_as_json_of_what_is_stored() -> None:
    context = _context()
    written = render("{{ nodes }}", context, where="env.N")
    assert json.loads(written) == {
        sid: {"status": "succeeded", "output": step.outputs, "error": None}
        for sid, step in STEPS.items()
    }
    assert render("{{ nodes | length }} {{ 'probe' in nodes }}", context) == "3 true"
    assert json.loads(render("{{ nodes.probe.output | tojson }}", context)) == {
        "enabled": "false",
        "on": "TRUE",
        "msg": "deploy done",
    }
