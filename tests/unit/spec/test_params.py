"""Param values of a run: checked with the same rules as defaults, read from text."""

from __future__ import annotations

import pytest

from opsflow.errors import InvalidInput
from opsflow.spec.params import Param, ParamType, resolve_params

DECLARED = {
    "env": Param(type=ParamType.CHOICE, choices=["dev", "prod"], default="dev"),
    "replicas": Param(type=ParamType.INTEGER, minimum=1, maximum=5, default=2),
    "ratio": Param(type=ParamType.NUMBER),
    "dry_run": Param(type=ParamType.BOOLEAN, default=False),
    "version": Param(pattern=r"\d+\.\d+", required=True),
}


def test_given_values_and_defaults_make_the_run_params() -> None:
    assert resolve_params(DECLARED, {"version": "1.2", "replicas": 4}) == {
        "env": "dev",
        "replicas": 4,
        "ratio": None,
        "dry_run": False,
        "version": "1.2",
    }


def test_text_values_are_read_as_the_declared_type() -> None:
    given = {"version": "1.2", "replicas": "3", "ratio": "0.5", "dry_run": "yes", "env": "prod"}
    resolved = resolve_params(DECLARED, given, from_text=True)
    assert (resolved["replicas"], resolved["ratio"], resolved["dry_run"]) == (3, 0.5, True)


def test_every_bad_value_is_reported_at_once() -> None:
    with pytest.raises(InvalidInput) as info:
        resolve_params(DECLARED, {"env": "qa", "replicas": 9, "colour": "red", "dry_run": 1})
    assert sorted((p.loc, p.msg) for p in info.value.problems) == [
        (
            "params.colour",
            "unknown param 'colour'; declared: dry_run, env, ratio, replicas, version",
        ),
        ("params.dry_run", "1 is not a boolean"),
        ("params.env", "'qa' is not one of the choices: dev, prod"),
        ("params.replicas", "9 is above the maximum 5"),
        ("params.version", "param 'version' is required: set a value"),
    ]


def test_an_unknown_param_close_to_a_declared_one_gets_a_did_you_mean() -> None:
    with pytest.raises(InvalidInput) as info:
        resolve_params(DECLARED, {"version": "1.2", "replcas": "3"}, from_text=True)
    assert [(p.loc, p.msg) for p in info.value.problems] == [
        (
            "params.replcas",
            "unknown param 'replcas'; declared: dry_run, env, ratio, replicas, version; "
            "did you mean 'replicas'?",
        )
    ]
