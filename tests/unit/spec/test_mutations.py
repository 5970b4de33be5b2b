"""Property: whatever is done to a valid workflow, the loader answers with located problems.

Mutations of the examples' YAML text (truncation, random characters, deleted and duplicated
lines) and of their data (deleted, renamed, duplicated and retyped keys, changed values) must
never make the loader raise anything but ``SpecInvalid``, and every problem it reports must say
what and where.
"""

from __future__ import annotations

import copy
import json
from typing import Any

import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from opsflow.errors import Problem, SpecInvalid
from opsflow.spec.loader import canonical, load_definition, load_workflow
from tests.unit.spec.support import EXAMPLE_DIRS

TEXTS = [(d / "workflow.yaml").read_text() for d in EXAMPLE_DIRS]
SETTINGS = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])

# Values that hit the interesting rules: templates, needs, durations, ids, statuses.
TRICKY = st.sampled_from(
    [
        "{{ x",
        "{{ params.nope }}",
        "{{ nodes.plan.output }}",
        "a.failed",
        "plan.rejected",
        "1h30m",
        "0",
        "soon",
        "team:",
        "Bad Id",
        "completed",
        "* * * *",
        "Mars/Base",
        "",
        "../x",
        "script",
        "approval",
    ]
)
JSONISH = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-5, 500)
    | st.floats(allow_nan=False)
    | st.text(max_size=12)
    | TRICKY,
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3)
    ),
    max_leaves=6,
)


def assert_located(problems: list[Problem], *, with_lines: bool) -> None:
    assert problems, "SpecInvalid must carry at least one problem"
    for problem in problems:
        assert isinstance(problem.loc, str)
        assert isinstance(problem.msg, str) and problem.msg.strip()
        if with_lines:
            assert isinstance(problem.line, int) and problem.line >= 1, problem


def check_text(text: str) -> None:
    try:
        workflow = load_workflow(text)
    except SpecInvalid as exc:
        assert_located(exc.problems, with_lines=True)
    else:
        json.dumps(canonical(workflow))


def check_data(data: Any) -> None:
    try:
        workflow = load_definition(data)
    except SpecInvalid as exc:
        assert_located(exc.problems, with_lines=False)
    else:
        assert load_definition(canonical(workflow)) == workflow
    check_text(yaml.safe_dump(data, sort_keys=False))


@st.composite
def mutated_text(draw: st.DrawFn) -> str:
    text = draw(st.sampled_from(TEXTS))
    for _ in range(draw(st.integers(1, 3))):
        at = draw(st.integers(0, len(text)))
        kind = draw(st.sampled_from(["truncate", "insert", "delete", "bytes", "dup-line"]))
        if kind == "truncate":
            text = text[:at]
        elif kind == "insert":
            text = text[:at] + draw(st.text(max_size=8)) + text[at:]
        elif kind == "delete":
            text = text[:at] + text[at + draw(st.integers(1, 40)) :]
        elif kind == "bytes":
            noise = draw(st.binary(min_size=1, max_size=6)).decode("latin-1")
            text = text[:at] + noise + text[at:]
        else:
            lines = text.splitlines(keepends=True) or [""]
            i = draw(st.integers(0, len(lines) - 1))
            text = "".join([*lines[: i + 1], lines[i], *lines[i + 1 :]])
    return text


def _places(node: Any) -> list[tuple[Any, Any]]:
    """Every (container, key or index) inside ``node``."""
    out: list[tuple[Any, Any]] = []
    if isinstance(node, dict):
        for key, value in node.items():
            out.append((node, key))
            out.extend(_places(value))
    elif isinstance(node, list):
        for i, value in enumerate(node):
            out.append((node, i))
            out.extend(_places(value))
    return out


@st.composite
def mutated_data(draw: st.DrawFn) -> Any:
    data = copy.deepcopy(yaml.safe_load(draw(st.sampled_from(TEXTS))))
    for _ in range(draw(st.integers(1, 4))):
        places = _places(data)
        if not places:
            break
        container, key = draw(st.sampled_from(places))
        kind = draw(st.sampled_from(["delete", "retype", "rename", "duplicate"]))
        if kind == "delete":
            del container[key]
        elif kind == "retype":
            container[key] = draw(JSONISH)
        elif kind == "rename" and isinstance(container, dict):
            container[draw(st.text(max_size=6) | TRICKY)] = container.pop(key)
        elif kind == "duplicate" and isinstance(container, list):
            container.append(copy.deepcopy(container[key]))
        elif kind == "duplicate":
            container[draw(TRICKY)] = copy.deepcopy(container[key])
    return data


@SETTINGS
@given(mutated_text())
def test_mutated_yaml_text_gets_only_located_problems(text: str) -> None:
    check_text(text)


@SETTINGS
@given(mutated_data())
def test_mutated_definitions_get_only_located_problems(data: Any) -> None:
    check_data(data)
