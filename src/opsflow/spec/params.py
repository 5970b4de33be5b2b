"""Workflow parameters: declaration, value checks, and resolving the values of one run.

A param's declaration drives the run form in the UI and ``-p k=v`` in the CLI. The same
``Param.problem`` check refuses a bad default at load time and a bad value at run time, so the
rules cannot drift apart.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping
from enum import StrEnum
from typing import Annotated, Any, Self

from pydantic import AfterValidator, Field, WithJsonSchema, field_validator, model_validator

from opsflow.errors import InvalidInput, Problem
from opsflow.spec.fields import FieldProblem, SpecModel
from opsflow.words import did_you_mean


class ParamType(StrEnum):
    STRING = "string"
    INTEGER = "integer"
    NUMBER = "number"
    BOOLEAN = "boolean"
    CHOICE = "choice"


Scalar = str | int | float | bool

# What one run's params may hold, as JSON: a run form's values, not a data transfer.
MAX_PARAMS_BYTES = 256 * 1024
# Every integer opsflow accepts lies in the range I-JSON (RFC 7493) names: numbers every JSON
# client, JavaScript included, keeps exactly, and that fit every database column.
INT_MAX = 2**53 - 1
INT_MIN = -INT_MAX


# How many located problems an invalid params error spells out in its message.
MESSAGE_PROBLEMS = 5


def _scalar(value: Any) -> Any:
    if value is not None and not isinstance(value, Scalar):
        raise ValueError(f"expected a single text, number or boolean value, got {value!r}")
    return value


# ``Any`` checked by hand rather than a Union, so a bad value gets one error, not one per member.
ScalarValue = Annotated[
    Any, AfterValidator(_scalar), WithJsonSchema({"type": ["string", "number", "boolean"]})
]


def _type_problem(kind: ParamType, value: Any) -> str | None:
    """Why ``value`` is not of ``kind`` (None when it is); booleans are never numbers."""
    ok = {
        ParamType.STRING: isinstance(value, str),
        ParamType.INTEGER: isinstance(value, int) and not isinstance(value, bool),
        ParamType.NUMBER: isinstance(value, int | float)
        and not isinstance(value, bool)
        and math.isfinite(value),
        ParamType.BOOLEAN: isinstance(value, bool),
        ParamType.CHOICE: isinstance(value, Scalar),
    }[kind]
    if ok and kind == ParamType.INTEGER and not INT_MIN <= value <= INT_MAX:
        return f"{value} is out of range: an integer lies between {INT_MIN} and {INT_MAX}"
    if ok:
        return None
    return f"{_shown(value)} is not {_a(kind)}"


def _shown(value: Any) -> str:
    """``repr(value)``, cut to a readable length (a refused value may be megabytes long)."""
    text = repr(value)
    return text if len(text) <= 80 else f"{text[:77]}..."


def _a(kind: ParamType) -> str:
    return f"an {kind.value}" if kind == ParamType.INTEGER else f"a {kind.value}"


class Param(SpecModel):
    """One declared parameter; its value reaches templates as ``params.<name>``."""

    type: ParamType = Field(ParamType.STRING, description="Value type; 'choice' needs choices.")
    description: str | None = Field(None, description="Help shown on the run form.")
    default: ScalarValue = Field(None, description="Value used when a run does not set one.")
    required: bool = Field(False, description="A run must set it when there is no default.")
    choices: list[ScalarValue] | None = Field(
        None, description="Allowed values; required for type 'choice'.", min_length=1
    )
    minimum: float | None = Field(None, description="Smallest allowed number.")
    maximum: float | None = Field(None, description="Largest allowed number.")
    pattern: str | None = Field(
        None, description="Regular expression the whole string value must match."
    )
    secret: bool = Field(False, description="Mask the value in logs and the UI.")

    @field_validator("pattern")
    @classmethod
    def _pattern_compiles(cls, value: str | None) -> str | None:
        if value is not None:
            try:
                re.compile(value)
            except re.error as exc:
                raise ValueError(f"{value!r} is not a valid regular expression: {exc}") from exc
        return value

    @model_validator(mode="after")
    def _consistent(self) -> Self:
        numeric = self.type in (ParamType.INTEGER, ParamType.NUMBER)
        if self.type == ParamType.CHOICE and not self.choices:
            raise FieldProblem(
                "choices", "a choice param needs 'choices', the list of allowed values"
            )
        if not numeric and (self.minimum is not None or self.maximum is not None):
            raise FieldProblem(
                "minimum" if self.minimum is not None else "maximum",
                f"minimum and maximum apply to integer and number params, not {self.type.value}",
            )
        if self.pattern is not None and self.type != ParamType.STRING:
            raise FieldProblem(
                "pattern", f"pattern applies to string params, not {self.type.value}"
            )
        if self.minimum is not None and self.maximum is not None and self.minimum > self.maximum:
            raise FieldProblem(
                "maximum", f"maximum {self.maximum:g} is below minimum {self.minimum:g}"
            )
        if self.choices is not None and self.type != ParamType.CHOICE:
            for choice in self.choices:
                wrong = _type_problem(self.type, choice)
                if wrong:
                    raise FieldProblem(
                        "choices", f"choice {wrong}: every choice must be {_a(self.type)}"
                    )
        if self.default is not None:
            wrong = self.problem(self.default)
            if wrong:
                raise FieldProblem("default", f"default {wrong}")
        return self

    def problem(self, value: Any) -> str | None:
        """Why ``value`` is not acceptable for this param, or None when it is."""
        wrong = _type_problem(self.type, value)
        if wrong:
            return wrong
        if self.choices is not None and value not in self.choices:
            listed = ", ".join(str(c) for c in self.choices)
            return f"{_shown(value)} is not one of the choices: {listed}"
        if self.minimum is not None and value < self.minimum:
            return f"{value!r} is below the minimum {self.minimum:g}"
        if self.maximum is not None and value > self.maximum:
            return f"{value!r} is above the maximum {self.maximum:g}"
        if self.pattern is not None and not re.fullmatch(self.pattern, value):
            return f"{_shown(value)} does not match the pattern {self.pattern!r}"
        return None

    def from_text(self, text: str) -> Any:
        """Read a value typed as text (``-p replicas=3``, a form field) as this param's type."""
        kind = self.type
        if kind == ParamType.CHOICE and self.choices:
            for choice in self.choices:
                if str(choice) == text or (
                    isinstance(choice, bool) and text.lower() == str(choice).lower()
                ):
                    return choice
            return text
        try:
            if kind == ParamType.INTEGER:
                return int(text)
            if kind == ParamType.NUMBER:
                return float(text)
        except ValueError:
            return text
        if kind == ParamType.BOOLEAN:
            word = text.strip().lower()
            if word in ("true", "yes", "1", "on"):
                return True
            if word in ("false", "no", "0", "off"):
                return False
        return text


def resolve_params(
    declared: Mapping[str, Param], given: Mapping[str, Any], *, from_text: bool = False
) -> dict[str, Any]:
    """The params of one run: ``given`` checked against ``declared``, defaults filled in.

    Raises InvalidInput listing every problem (unknown names, bad values, missing required
    values) at once. With ``from_text`` string values are read as the declared type first, as
    the CLI and HTML forms send everything as text.
    """
    size = len(json.dumps(dict(given), default=str, ensure_ascii=False).encode())
    if size > MAX_PARAMS_BYTES:
        msg = (
            f"the params take {size} bytes as JSON; a run's params may take at most "
            f"{MAX_PARAMS_BYTES} bytes: pass large data as a file or a URL instead"
        )
        raise InvalidInput(msg, problems=[Problem("params", msg)])
    problems: list[Problem] = []
    out: dict[str, Any] = {}
    for name in given:
        if name not in declared:
            known = ", ".join(sorted(declared)) or "none"
            guess = did_you_mean(name, declared)
            problems.append(
                Problem(f"params.{name}", f"unknown param '{name}'; declared: {known}{guess}")
            )
    for name, param in declared.items():
        if name in given:
            value = given[name]
            if from_text and isinstance(value, str):
                value = param.from_text(value)
            wrong = param.problem(value)
            if wrong:
                problems.append(Problem(f"params.{name}", wrong))
            out[name] = value
        elif param.default is not None:
            out[name] = param.default
        elif param.required:
            problems.append(Problem(f"params.{name}", f"param '{name}' is required: set a value"))
        else:
            out[name] = None
    if problems:
        # The message names each problem too: the delivery log, an upstream run's engine log
        # and the CLI keep only the message, and "invalid" alone does not say what to fix.
        shown = "; ".join(f"{p.loc}: {p.msg}" for p in problems[:MESSAGE_PROBLEMS])
        more = len(problems) - MESSAGE_PROBLEMS
        if more > 0:
            shown += f"; and {more} more"
        raise InvalidInput(f"the run's params are invalid: {shown}", problems=problems)
    return out
