"""The depth limit of runs started by runs, and the loop its error names."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from opsflow.engine.chains import depth_problem, loop_in


def test_a_path_within_the_limit_may_start() -> None:
    assert depth_problem(["a", "b", "a"], limit=2) is None


def test_past_the_limit_the_error_names_the_path_and_the_loop() -> None:
    problem = depth_problem(["a", "b", "a", "b"], limit=2)
    assert problem is not None
    assert "stop at depth 2" in problem
    assert "a -> b -> a -> b" in problem
    assert "the loop a -> b -> a would never end" in problem


def test_a_deep_chain_without_a_loop_names_no_loop() -> None:
    problem = depth_problem(["a", "b", "c", "d"], limit=2)
    assert problem is not None and "loop" not in problem


def test_the_first_loop_is_named() -> None:
    assert loop_in(["x", "a", "b", "c", "b", "a"]) == ["b", "c", "b"]
    assert loop_in(["a", "b"]) is None


@given(st.lists(st.sampled_from("abcd"), min_size=1, max_size=30), st.integers(1, 12))
def test_a_path_may_start_iff_its_links_are_within_the_limit(path: list[str], limit: int) -> None:
    problem = depth_problem(path, limit)
    assert (problem is None) == (len(path) - 1 <= limit)
    loop = loop_in(path)
    if loop is not None:
        assert loop[0] == loop[-1] and len(set(loop)) == len(loop) - 1
