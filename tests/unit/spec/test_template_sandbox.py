"""The renderer's sandbox: every failure is a TemplateError naming the field, bounds refuse
costly operations before they run, values are written with JSON's spellings, conditions read
text by the documented words, and secrets are refused where they would be a placeholder."""

from __future__ import annotations

import time
from typing import Any

import pytest

from opsflow.errors import TemplateError
from opsflow.runtime.context import render_step_config
from opsflow.spec.sandbox import MAX_CPU_SECONDS, MAX_ITEMS, MAX_TEXT
from opsflow.spec.template import evaluate_condition, render, secret_problem, truth
from opsflow.status import StepType

CONTEXT: dict[str, Any] = {
    "params": {"n": 3, "word": "false"},
    "nodes": {"x": {"output": {"flag": True, "none": None, "d": {"k": [1, None]}}}},
}


def _failure(source: str) -> tuple[str, float]:
    """The TemplateError's message for ``source`` rendered as ``env.X``, and the CPU seconds
    this thread spent on it."""
    start = time.thread_time()
    with pytest.raises(TemplateError) as info:
        render(source, CONTEXT, where="env.X")
    return info.value.message, time.thread_time() - start


@pytest.mark.parametrize(
    ("source", "says"),
    [
        ("{{ 1/0 }}", "division by zero (ZeroDivisionError)"),
        ("{{ 'a' + 1 }}", "(TypeError)"),
        ("{{ [1][5] }}", ""),
        ("{{ '%d' % 'x' }}", "(TypeError)"),
        ("{% macro f(n) %}{{ f(n) }}{% endmacro %}{{ f(1) }}", "recurses too deeply"),
        ("{{ params.missing }}", "undefined name 'params.missing'"),
    ],
)
def test_any_exception_while_rendering_is_a_template_error_naming_the_field(
    source: str, says: str
) -> None:
    message, _ = _failure(source)
    assert message.startswith("env.X: ") and says in message, message
    assert message.endswith(f"in template {source!r}")


@pytest.mark.parametrize(
    ("source", "says"),
    [
        ("{{ (10**(10**7)) > 1 }}", "an integer would have 30,000,001 bits"),
        ("{{ 10**(10**100) }}", "more than the limit of 4,096"),
        ("{{ (2**4000) * (2**4000) }}", "an integer would have 8,001 bits"),
        ("{{ 'x' * (2**21) }}", "a text would have 2,097,152 characters"),
        ("{{ [0] * (MAX + 1) }}".replace("MAX", str(MAX_ITEMS)), "a list would have 100,001"),
        ("{{ range(MAX + 1) | list }}".replace("MAX", str(MAX_ITEMS)), "MAX_RANGE"),
        ("{{ 'a' | center(10**9) }}", "1,000,000,001 characters"),
        ("{{ 'a' | indent(10**9, true) }}", "more than the limit of 1,048,576"),
        ("{{ 'a'.ljust(10**9) }}", "1,000,000,000 characters"),
        ("{{ 'a'.zfill(10**9) }}", "1,000,000,000 characters"),
        ("{{ 'ab'.replace('', 'x' * 10**6) }}", "3,000,002 characters"),
        ("{{ 'a' | replace('a', 'x' * 10**6) | replace('x', 'yy') }}", "3,000,000 characters"),
        ("{{ '%1000000000d' % 1 }}", "more than the limit of 1,048,576"),
        ("{{ '%*d' % (10**9, 1) }}", "'*' widths are not allowed"),
        ("{{ '{:>1000000000}'.format(1) }}", "a formatted field would have"),
        ("{{ (1).to_bytes(10**9, 'big') }}", "1,000,000,000 characters"),
        ("{{ ['x' * 10**6] * 100 }}", "more than the limit of 1,048,576"),
        ("{{ (['x' * 10**6] * 100) | join }}", "100,000,000 characters"),
        ("{{ (['x' * 10**6] * 100) | tojson }}", "more than the limit of 1,048,576"),
        ("{{ (['x' * 10**6] * 100) | string }}", "more than the limit of 1,048,576"),
        ("{{ (['x' * 10**6] * 100) | upper }}", "the value given to 'upper'"),
        ("{{ (['x' * 10**6] * 100) | pprint }}", "the value given to 'pprint'"),
        ("{{ '%s' % ((['x' * 10**6] * 100),) }}", "more than the limit of 1,048,576"),
        ("{{ ([[1] * 1000] * 1000) | sum(start=[]) }}", "a list would have 101,000 items"),
        ("{{ [1] | batch(10**9, 0) | list }}", "a list would have 1,000,000,000 items"),
        (
            "{% set ns = namespace(s='x') %}{% for i in range(40) %}"
            "{% set ns.s = ns.s ~ ns.s %}{% endfor %}",
            "a text would have 2,097,152 characters",
        ),
        (
            "{% set s = 'x' * 10**6 %}{% set t = [s, s, s, s, s, s, s, s, s, s] %}"
            "{% set u = [t, t, t, t, t, t, t, t, t, t] %}{{ u }}",
            "more than the limit of 1,048,576",
        ),
        ("{% for i in range(10**5) %}{{ 'x' * 100 }}{% endfor %}", "the rendered value"),
        ("{{ lipsum(10**6) }}", "lipsum text"),
    ],
)
def test_bounds_refuse_costly_operations_before_they_run(source: str, says: str) -> None:
    message, cpu = _failure(source)
    assert message.startswith("env.X: ") and says in message, message
    assert cpu < 0.5, f"took {cpu:.2f}s of CPU to refuse"


@pytest.mark.parametrize(
    "source",
    [
        "{% for i in range(10**5) %}{% for j in range(10**5) %}{% endfor %}{% endfor %}",
        "{% for i in range(10**5) %}{% for j in range(10**5) if j < 0 %}{% endfor %}{% endfor %}",
        "{% for i in [40] recursive %}{% if i %}{{ loop([i - 1, i - 1]) }}{% endif %}{% endfor %}",
        "{% macro f(n) %}{% if n %}{{ f(n - 1) }}{{ f(n - 1) }}{% endif %}{% endmacro %}"
        "{{ f(60) }}",
    ],
)
def test_a_render_stops_after_its_cpu_time(source: str) -> None:
    message, cpu = _failure(source)
    assert f"more than {MAX_CPU_SECONDS:g} s of CPU time" in message, message
    assert cpu < MAX_CPU_SECONDS + 0.5


def _loops(outer: int) -> str:
    inner = "{% for j in range(1000) %}{% endfor %}"
    return f"{{% for i in range({outer}) %}}{inner}{{% endfor %}}"


def test_all_fields_of_a_step_share_one_cpu_budget() -> None:
    # Calibrate a field that costs about 60% of the budget on this machine: alone it renders,
    # but three of them in one step go past the budget together.
    outer, spent = 1, 0.0
    while spent < 0.05:
        outer *= 2
        start = time.thread_time()
        render(_loops(outer), {})
        spent = time.thread_time() - start
    field = _loops(max(1, int(outer * 0.6 * MAX_CPU_SECONDS / spent)))
    render(field, {})
    raw = {"env": {"A": field, "B": field, "C": field}, "run": "true"}
    start = time.thread_time()
    with pytest.raises(TemplateError) as info:
        render_step_config(StepType.SCRIPT, raw, {})
    assert info.value.message.startswith(("env.B: ", "env.C: ")), info.value.message[:80]
    assert "CPU time" in info.value.message
    assert time.thread_time() - start < MAX_CPU_SECONDS + 0.5


@pytest.mark.parametrize(
    ("source", "text"),
    [
        ("{{ 2**4095 > 2**4094 }}", "true"),
        ("{{ ('x' * MAX) | length }}".replace("MAX", str(MAX_TEXT)), str(MAX_TEXT)),
        ("{{ range(MAX) | list | length }}".replace("MAX", str(MAX_ITEMS)), str(MAX_ITEMS)),
        ("{% for i in range(1000) %}{{ i % 10 }}{% endfor %}", "0123456789" * 100),
        ("{{ '%05.1f|%-4s|' % (3.14159, 'ab') }}", "003.1|ab  |"),
        ("{{ '{:>5}'.format('ab') }}", "   ab"),
        ("{{ [1, 2] | sum }} {{ [[1], [2]] | sum(start=[]) }}", "3 [1, 2]"),
        ("{{ 'a-b' | replace('-', '+') | upper }}", "A+B"),
    ],
)
def test_work_within_the_bounds_still_renders(source: str, text: str) -> None:
    assert render(source, CONTEXT) == text


@pytest.mark.parametrize(
    ("source", "text"),
    [
        ("{{ nodes.x.output.flag }}", "true"),
        ("{{ nodes.x.output.none }}", "null"),
        ("{{ nodes.x.output.d }}", '{"k": [1, null]}'),
        ("{{ nodes.x.output }}", '{"flag": true, "none": null, "d": {"k": [1, null]}}'),
        ("{{ false }}-{{ none }}-{{ 1.5 }}-{{ 7 }}", "false-null-1.5-7"),
        ("{{ 'on=' ~ true }}", "on=true"),
        ("{{ params.n ~ nodes.x.output.none }}", "3null"),
        ("{{ [true, none, 'a'] | join(',') }}", "true,null,a"),
        ("{{ nodes.x.output.flag | string }}", "true"),
        ("{{ nodes.x.output.d | tojson }}", '{"k": [1, null]}'),
        ("{{ 'é' }}{{ ['é'] }}", 'é["é"]'),
    ],
)
def test_values_are_written_with_json_spellings(source: str, text: str) -> None:
    assert render(source, CONTEXT) == text


@pytest.mark.parametrize(
    ("value", "answer"),
    [(w, True) for w in ("true", "TRUE", "Yes", "on", "1", " true\n")]
    + [(w, False) for w in ("false", "False", "NO", "off", "0", "", "  ", "none", "null")]
    + [(True, True), (False, False), (None, False), (1, True), (0, False), (0.0, False)]
    + [([], False), ({}, False)],
)
def test_truth_follows_the_documented_words(value: Any, answer: bool) -> None:
    assert truth(value) is answer


@pytest.mark.parametrize(
    ("value", "says"),
    [
        ("maybe", "the text 'maybe' is not a truth word"),
        ("enabled", "the text 'enabled' is not a truth word"),
        (5, "the number 5 is neither 0 nor 1"),
        ([0], "a list with 1 item is not a truth value"),
        ({"a": 1}, "a dict with 1 item "),
    ],
)
def test_truth_refuses_anything_else_saying_why(value: Any, says: str) -> None:
    with pytest.raises(ValueError) as info:
        truth(value)
    assert says in str(info.value)


def test_a_condition_on_the_text_false_is_false() -> None:
    context = {"nodes": {"probe": {"output": {"enabled": "false"}}}}
    assert evaluate_condition("{{ nodes.probe.output.enabled }}", context).result is False
    assert evaluate_condition("{{ 'OFF' }}", context).result is False


@pytest.mark.parametrize(
    ("source", "says"),
    [
        ("{{ params.word ~ 'x' }}", "the text 'falsex' is not a truth word"),
        ("{{ 1/0 }}", "if: division by zero (ZeroDivisionError)"),
        ("{{ 10**(10**7) }}", "an integer would have"),
        ("it is {{ params.word }}", "the text 'it is false' is not a truth word"),
    ],
)
def test_a_condition_without_a_clear_answer_fails_naming_the_value(source: str, says: str) -> None:
    with pytest.raises(TemplateError) as info:
        evaluate_condition(source, CONTEXT)
    assert says in info.value.message, info.value.message


@pytest.mark.parametrize(
    "source",
    [
        "{{ secrets.TOKEN }}",
        "Bearer {{ secrets.TOKEN }}",
        "{{ 'a' ~ secrets.TOKEN ~ 'b' }}",
        "{{ secrets.A if params.n else secrets.B }}",
        "{{ secrets['TOKEN'] }}",
        "{% if params.n %}{{ secrets.TOKEN }}{% endif %}",
    ],
)
def test_a_secret_written_out_whole_is_allowed_in_a_job_field(source: str) -> None:
    assert secret_problem(source, allowed=True) is None
    assert "cannot be used here" in (secret_problem(source, allowed=False) or "")


@pytest.mark.parametrize(
    "source",
    [
        "{{ secrets.TOKEN == 'value' }}",
        "{{ secrets.TOKEN | lower }}",
        "{{ secrets.TOKEN[:4] }}",
        "{{ secrets.TOKEN.upper() }}",
        "{% if secrets.TOKEN %}x{% endif %}",
        "{% set t = secrets.TOKEN %}{{ t }}",
        "{{ 'y' if secrets.TOKEN else 'n' }}",
        "{{ secrets }}",
        "{{ secrets[params.name] }}",
        "{{ secrets.TOKEN is defined }}",
    ],
)
def test_any_other_use_of_a_secret_is_refused(source: str) -> None:
    assert "can only be written out whole" in (secret_problem(source, allowed=True) or "")


@pytest.mark.parametrize(
    ("source", "says"),
    [
        (
            "{{ nodes.p.output.items | map(attribute='outputs.out') | join(',') }}",
            "undefined name 'out': no 'out' in a mapping that has 'err'",
        ),
        (
            "{{ [nodes.q.output] | map(attribute='nope') | join }}",
            "undefined name 'nope': no 'nope' in a mapping that has 'a', 'b'",
        ),
        ("{{ [nodes.e.output] | map(attribute='x') | join }}", "no 'x' in an empty mapping"),
        ("{{ nodes.q.output.a.foo }}", "undefined name 'nodes.q.output.a.foo'"),
        ("{{ [nodes.q.output.b] | map(attribute='up') | join }}", "a text has no attribute 'up'"),
        ("{{ [1][5] }}", "undefined name [5]: a list has no element 5"),
    ],
)
def test_a_name_missing_inside_outputs_is_named_with_what_is_there_never_a_class(
    source: str, says: str
) -> None:
    # map(attribute=...) over step outputs: the missing key, and the keys the item has
    context = {
        "nodes": {
            "p": {"output": {"items": [{"outputs": {"out": "1"}}, {"outputs": {"err": "x"}}]}},
            "q": {"output": {"a": 1, "b": "t"}},
            "e": {"output": {}},
        }
    }
    with pytest.raises(TemplateError) as info:
        render(source, context, where="env.A")
    message = info.value.message
    assert message.startswith("env.A: ") and says in message, message
    assert "opsflow." not in message and "object" not in message, message
    assert message.endswith(f"in template {source!r}")
