"""Fields of the template context's fixed objects are checked when a workflow is validated."""

from __future__ import annotations

import pytest

from opsflow.errors import SpecInvalid
from opsflow.spec.loader import load_workflow


def _problems(text: str) -> list[tuple[str, str]]:
    with pytest.raises(SpecInvalid) as info:
        load_workflow(text)
    return [(p.loc, p.msg) for p in info.value.problems]


def test_unknown_execution_field_is_refused_naming_the_known_ones() -> None:
    problems = _problems(
        """
id: t
steps:
  - {id: a, type: script, env: {U: "{{ execution.urll }}"}, run: "true"}
"""
    )
    assert problems == [
        (
            "steps[0].env.U",
            "unknown field 'execution.urll' in template; execution has: api_url, created_at, "
            "id, started_by, test_run, trigger_type, url",
        )
    ]


def test_unknown_field_of_a_step_points_at_output() -> None:
    problems = _problems(
        """
id: t
steps:
  - {id: a, type: script, run: "true"}
  - {id: b, type: script, needs: [a], env: {X: "{{ nodes.a.exit_code }}"}, run: "true"}
"""
    )
    assert problems == [
        (
            "steps[1].env.X",
            "unknown field 'exit_code' of step 'a' in template; a step has: error, output, "
            "status (outputs are under nodes.a.output)",
        )
    ]


def test_known_fields_pass() -> None:
    load_workflow(
        """
id: t
steps:
  - {id: a, type: script, run: "true"}
  - id: b
    type: script
    needs: [a]
    env:
      U: "{{ execution.url }} {{ workflow.version }} {{ nodes.a.output.x }} {{ nodes.a.status }}"
    run: "true"
"""
    )


def test_unknown_git_and_incident_fields_are_refused() -> None:
    problems = _problems(
        """
id: t
params: {r: {type: string, default: x}}
triggers:
  - {type: git, provider: github, repository: a/b, params: {r: "{{ git.brnch }}"}}
steps:
  - {id: a, type: script, env: {X: "{{ incident.titel }}"}, run: "true"}
"""
    )
    assert [loc for loc, _ in problems] == ["triggers[0].params.r", "steps[0].env.X"]
    assert problems[0][1].startswith("unknown field 'git.brnch' in template; git has: author,")
