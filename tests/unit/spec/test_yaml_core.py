"""Unquoted YAML scalars: read by the YAML 1.2 core schema, and never changed on their way
from the file to what a step sees. A value either arrives exactly as written or is refused
with an error at its line that quotes it."""

from __future__ import annotations

import math
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from opsflow.spec.loader import canonical, validate_text
from opsflow.spec.yaml_source import dump_yaml, read_yaml

SETTINGS = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])

# (written, value read by the YAML 1.2 core schema)
CORE: list[tuple[str, Any]] = [
    ("no", "no"),
    ("yes", "yes"),
    ("on", "on"),
    ("off", "off"),
    ("y", "y"),
    ("n", "n"),
    ("No", "No"),
    ("true", True),
    ("True", True),
    ("FALSE", False),
    ("0755", 755),
    ("0o755", 0o755),
    ("0x1F", 31),
    ("+5", 5),
    ("1e3", 1000.0),
    ("1.10", 1.1),
    (".5", 0.5),
    ("1_000", "1_000"),
    ("0b101", "0b101"),
    ("~", None),
    ("null", None),
    ("NULL", None),
    ("", None),
    ("2024-01-02", "2024-01-02"),
    ("2024-01-02T10:00:00Z", "2024-01-02T10:00:00Z"),
    ("=", "="),
    ("-.Inf", -math.inf),
]


@pytest.mark.parametrize(("written", "value"), CORE)
def test_plain_scalars_follow_the_yaml_1_2_core_schema(written: str, value: Any) -> None:
    parsed = read_yaml(f"a: {written}\n")
    assert parsed.findings == []
    assert parsed.data == {"a": value}
    assert type(parsed.data["a"]) is type(value)


def test_dot_nan_is_a_float_nan() -> None:
    assert math.isnan(read_yaml("a: .nan\n").data["a"])


def _workflow(value: str) -> str:
    return (
        "id: core\n"
        f"labels: {{country: {value}}}\n"
        "params:\n"
        f"  c: {{type: choice, choices: [{value}, se, dk]}}\n"
        "steps:\n"
        f"  - {{id: a, type: script, run: 'true', env: {{V: {value}}}}}\n"
    )


@pytest.mark.parametrize(
    "written",
    ["no", "yes", "on", "off", "y", "n", "TRUE", "False", "1e3", "1.10", "+5", "0x1F", "0o755"],
)
def test_text_fields_keep_the_text_as_written(written: str) -> None:
    workflow, problems = validate_text(_workflow(written))
    assert problems == []
    assert workflow is not None
    assert workflow.labels == {"country": written}
    assert workflow.steps[0].env == {"V": written}  # type: ignore[union-attr]
    assert canonical(workflow)["labels"] == {"country": written}


def test_the_issue_inputs_no_longer_change() -> None:
    workflow, problems = validate_text(_workflow("no"))
    assert problems == []
    assert workflow is not None
    assert workflow.params["c"].choices == ["no", "se", "dk"]


@pytest.mark.parametrize("written", ["0755", "-012", "00"])
def test_a_leading_zero_number_is_refused_where_it_would_stay_a_number(written: str) -> None:
    text = (
        "id: modes\nparams:\n"
        f"  mode: {{type: integer, default: {written}}}\n"
        "steps:\n  - {id: a, type: script, run: 'true'}\n"
    )
    workflow, problems = validate_text(text)
    assert workflow is None
    [problem] = problems
    assert problem.loc == "params.mode.default" and problem.line == 3
    assert problem.msg.startswith(f"{written} has a leading zero")
    assert f"'{written}'" in problem.msg and "0o" in problem.msg


def test_a_leading_zero_in_a_text_field_is_kept_as_text() -> None:
    workflow, problems = validate_text(_workflow("0755").replace("choices: [0755", "choices: [x"))
    assert problems == []
    assert workflow is not None
    assert workflow.labels == {"country": "0755"}


def test_infinity_where_a_number_stays_is_refused_quoting_it() -> None:
    text = (
        "id: inf\nparams:\n  n: {type: choice, choices: [.inf, 1]}\n"
        "steps:\n  - {id: a, type: script, run: 'true'}\n"
    )
    workflow, problems = validate_text(text)
    assert workflow is None
    assert [(p.loc, p.line) for p in problems] == [("params.n.choices[0]", 3)]
    assert "quote it ('.inf')" in problems[0].msg


def test_null_where_text_belongs_is_refused_at_its_line_quoting_it() -> None:
    workflow, problems = validate_text(_workflow("~").replace("choices: [~", "choices: [x"))
    assert workflow is None
    assert {(p.loc, p.line) for p in problems} == {("labels.country", 2), ("steps[0].env.V", 6)}
    assert all("the unquoted ~ is not text in YAML: quote it, '~'" in p.msg for p in problems)


def test_a_boolean_param_written_yes_is_refused_not_guessed() -> None:
    text = (
        "id: flags\nparams:\n  go: {type: boolean, default: yes}\n"
        "steps:\n  - {id: a, type: script, run: 'true'}\n"
    )
    workflow, problems = validate_text(text)
    assert workflow is None
    assert [(p.loc, p.line) for p in problems] == [("params.go.default", 3)]


PLAINISH = st.text(alphabet="0123456789+-.eEoOxXabfilnrstuyTFN_~:", min_size=1, max_size=8)


@SETTINGS
@given(PLAINISH)
def test_an_unquoted_value_reaches_a_text_field_as_written_or_is_refused_at_its_line(
    written: str,
) -> None:
    text = (
        "id: prop\nsteps:\n  - id: a\n    type: script\n    run: 'true'\n"
        f"    env: {{V: {written}}}\n"
    )
    workflow, problems = validate_text(text)
    if workflow is not None:
        assert workflow.steps[0].env == {"V": written}  # type: ignore[union-attr]
    else:
        assert problems and all(p.line == 6 for p in problems), problems


# PyYAML folds the odd line breaks (NEL, LS, PS, CR) however they are written: not ours to test.
TEXT = st.text(
    st.characters(exclude_characters="\x85\u2028\u2029\r", exclude_categories=["Cs"]),
    max_size=12,
)
JSONISH = st.recursive(
    st.none() | st.booleans() | st.integers() | TEXT,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(TEXT, inner, max_size=4),
    max_leaves=12,
)


@SETTINGS
@given(JSONISH)
def test_yaml_we_write_reads_back_the_same_under_yaml_1_2_and_1_1(data: Any) -> None:
    text = dump_yaml({"v": data})
    parsed = read_yaml(text)
    if not parsed.findings:  # a key like '<<' is refused as a merge key, never misread
        assert parsed.data == {"v": data}
    assert yaml.safe_load(text) == {"v": data}


@pytest.mark.parametrize(
    ("written", "kind"), [("0644", "string"), (".inf", "string"), (".inf", "number")]
)
def test_a_refused_default_is_named_as_written_with_a_hint_to_quote_it(
    written: str, kind: str
) -> None:
    text = (
        f"id: m\nparams:\n  mode: {{type: {kind}, default: {written}}}\n"
        "steps:\n  - {id: a, type: script, run: 'true'}\n"
    )
    workflow, problems = validate_text(text)
    assert workflow is None
    [problem] = problems
    assert problem.loc == "params.mode.default"
    assert problem.msg.startswith(f"default {written} is not a {kind} (the unquoted {written} ")
    assert f"quote it, '{written}', for text" in problem.msg


def test_ambiguous_numbers_are_listed_with_the_other_problems() -> None:
    text = (
        "id: m\nparams:\n  mode: {type: string, default: 0644}\n"
        "  n: {type: integer, default: 0755}\n"
        "steps:\n  - {id: a, type: script, run: 'true', retries: 03, needs: [nosuch]}\n"
        "  - {id: b, type: script, run: 'true', env: {MODE: 0600}}\n"
    )
    workflow, problems = validate_text(text)
    assert workflow is None
    by_loc = {p.loc: p.msg for p in problems}
    assert set(by_loc) == {
        "params.mode.default",
        "params.n.default",
        "steps[0].retries",
        "steps[0].needs[0]",
    }  # env takes text: MODE stays '0600', no problem
    assert by_loc["params.mode.default"].startswith("default 0644 is not a string")
    assert by_loc["params.n.default"].startswith("0755 has a leading zero")
    assert by_loc["steps[0].retries"].startswith("03 has a leading zero")
    assert [p.line for p in problems] == sorted(p.line or 0 for p in problems)
