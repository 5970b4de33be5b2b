"""Helpers for the spec tests: load YAML written inline and get its problems."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from opsflow.errors import Problem, SpecInvalid
from opsflow.spec.loader import load_workflow
from opsflow.spec.models import Workflow

EXAMPLES = Path(__file__).resolve().parents[3] / "examples"
EXAMPLE_DIRS = sorted(p.parent for p in EXAMPLES.glob("*/workflow.yaml"))


def load(text: str) -> Workflow:
    return load_workflow(textwrap.dedent(text).lstrip("\n"))


def problems(text: str) -> list[Problem]:
    with pytest.raises(SpecInvalid) as info:
        load(text)
    return info.value.problems


def only_problem(text: str) -> Problem:
    found = problems(text)
    assert len(found) == 1, [p.format() for p in found]
    return found[0]
