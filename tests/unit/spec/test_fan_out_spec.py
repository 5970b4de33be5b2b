"""``for_each`` and ``matrix`` in workflow definitions, and working out their lists."""

from __future__ import annotations

import pytest

from opsflow.spec.fan_out import MAX_ITEMS, FanOutError, items_from_value, matrix_items
from opsflow.spec.graph import to_graph
from opsflow.spec.schema import workflow_json_schema
from tests.unit.spec.support import load, only_problem


def test_a_for_each_step_compiles_to_a_fanned_out_node() -> None:
    workflow = load(
        """
        id: fan
        params: {regions: {type: string, default: "eu\\nus"}}
        steps:
          - id: deploy
            type: script
            for_each: "{{ params.regions }}"
            max_parallel: 2
            fail_fast: true
            env: {REGION: "{{ item }}", N: "{{ index }}"}
            run: echo "$REGION"
          - id: grid
            type: script
            matrix: {region: [eu, us], tier: [api, worker], exclude: [{region: us, tier: worker}]}
            env: {WHERE: "{{ matrix.region }}-{{ matrix.tier }}"}
            run: "true"
        """
    )
    node = to_graph(workflow).step("deploy")
    assert node.fan_out is not None
    assert (node.fan_out.max_parallel, node.fan_out.fail_fast) == (2, True)
    assert to_graph(workflow).step("grid").fan_out is not None


@pytest.mark.parametrize("kind", ["approval", "condition"])
def test_gates_cannot_fan_out(kind: str) -> None:
    extra = "if: '{{ true }}'" if kind == "condition" else "message: ok"
    problem = only_problem(
        f"""
        id: gate
        steps:
          - id: g
            type: {kind}
            for_each: [a, b]
            {extra}
        """
    )
    assert problem.loc == "steps[0].for_each"
    assert problem.msg.startswith(f"{'an' if kind == 'approval' else 'a'} {kind} step cannot")


def test_item_is_unknown_outside_a_fanned_out_step() -> None:
    problem = only_problem(
        """
        id: plain
        steps:
          - {id: a, type: script, run: "true", env: {X: "{{ item }}"}}
        """
    )
    assert "unknown name 'item'" in problem.msg


def test_max_parallel_without_a_list_is_refused_at_its_field() -> None:
    problem = only_problem(
        """
        id: plain
        steps:
          - {id: a, type: script, run: "true", max_parallel: 3}
        """
    )
    assert problem.loc == "steps[0].max_parallel"


def test_a_rendered_list_is_a_json_list_or_lines_of_text() -> None:
    assert items_from_value('["eu", {"r": 1}]') == ["eu", {"r": 1}]
    assert items_from_value(" eu\n\n us \n") == ["eu", "us"]
    assert items_from_value(["a", 1]) == ["a", 1]
    with pytest.raises(FanOutError, match="must give a list"):
        items_from_value(5)
    with pytest.raises(FanOutError, match=f"at most {MAX_ITEMS}"):
        items_from_value(list(range(MAX_ITEMS + 1)))


def test_a_matrix_is_the_cross_product_without_excludes_plus_includes() -> None:
    dims = {"tier": ["api", "worker"], "region": ["eu", "us"]}  # keys sorted: region first
    extras = {"exclude": [{"region": "us", "tier": "worker"}], "include": [{"region": "ap"}]}
    assert matrix_items(dims, extras) == [
        {"region": "eu", "tier": "api"},
        {"region": "eu", "tier": "worker"},
        {"region": "us", "tier": "api"},
        {"region": "ap"},
    ]
    with pytest.raises(FanOutError, match="combinations"):
        matrix_items({"a": list(range(40)), "b": list(range(40))}, {})


def test_the_schema_offers_the_fan_out_fields() -> None:
    text = str(workflow_json_schema())
    for name in ("for_each", "matrix", "max_parallel", "fail_fast", "min_success"):
        assert name in text


def test_min_success_above_a_literal_lists_length_is_refused_at_the_field() -> None:
    # Trial 2, M6: it validated and failed only when the run started.
    problem = only_problem(
        """
        id: many
        steps:
          - {id: each, type: script, for_each: [x, y], min_success: 5, run: "true"}
        """
    )
    assert problem.loc == "steps[0].min_success"
    assert problem.msg == (
        "min_success is 5 but its for_each list gives only 2 items, so the step could never "
        "succeed; make it at most 2"
    )


def test_min_success_above_a_static_matrixs_combinations_is_refused() -> None:
    problem = only_problem(
        """
        id: grid
        steps:
          - id: m
            type: script
            matrix: {a: [1, 2], b: [x, y], exclude: [{a: 2, b: y}]}
            min_success: 4
            run: "true"
        """
    )
    assert problem.loc == "steps[0].min_success"
    assert "its matrix gives only 3 items" in problem.msg and "at most 3" in problem.msg


def test_min_success_is_not_judged_against_a_list_known_only_at_run_time() -> None:
    load(
        """
        id: later
        params: {n: {type: string, default: "a"}}
        steps:
          - {id: each, type: script, for_each: "{{ params.n }}", min_success: 5, run: "true"}
          - id: m
            type: script
            matrix: {a: "{{ params.n }}"}
            min_success: 5
            run: "true"
          - {id: ok, type: script, for_each: [x, y], min_success: 2, run: "true"}
        """
    )


@pytest.mark.parametrize("extra", ["exclude", "include"])
def test_a_matrix_entry_naming_a_key_the_matrix_lacks_is_refused_at_the_entry(
    extra: str,
) -> None:
    problem = only_problem(
        f"""
        id: grid
        steps:
          - id: m
            type: script
            matrix: {{region: [eu, us], tier: [api], {extra}: [{{tier: api}}, {{regoin: us}}]}}
            min_success: 0
            run: "true"
        """
    )
    assert problem.loc == f"steps[0].matrix.{extra}[1]"
    assert problem.msg == (
        f"{extra} entry names key 'regoin', which the matrix lacks (did you mean 'region'?); "
        "its keys are region, tier"
    )
    assert problem.line == 5
