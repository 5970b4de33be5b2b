"""Typed reading of a step's rendered configuration, with errors that name the field.

The server validates workflow YAML before a run starts, but an executor still receives plain
mappings (templates may render to anything), so each field is checked where it is used. A bad
field fails the attempt as not retryable: running it again cannot fix the configuration.
"""

from __future__ import annotations

import re
from collections.abc import Collection, Mapping
from typing import Any

from opsflow.status import JobStatus

from .base import Connection, JobSpec, StepResult

_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")


class StepConfigError(Exception):
    """A step field has a value the executor cannot use; the message names the field and fix."""

    def __init__(self, field: str, message: str) -> None:
        self.field = field
        self.message = message
        super().__init__(f"{field}: {message}")

    def result(self) -> StepResult:
        """The attempt's outcome: FAILED and not retryable."""
        return StepResult(JobStatus.FAILED, error=str(self), retryable=False)


class StepConfig:
    """Read fields of one step's ``config`` mapping, raising ``StepConfigError`` on bad values.

    Unknown fields are ignored: the mapping also carries the common fields (``id``, ``needs``,
    ``retries``...) that the engine, not the executor, acts on.
    """

    def __init__(self, config: Mapping[str, Any]) -> None:
        self._config = config

    def has(self, name: str) -> bool:
        """Whether the field is present with a value other than null."""
        return self._config.get(name) is not None

    def raw(self, name: str) -> Any:
        """The field's value as given (None when absent)."""
        return self._config.get(name)

    def text(self, name: str, *, default: str | None = None, required: bool = False) -> str | None:
        """A string field; numbers are accepted and converted, other types are refused."""
        value = self._config.get(name)
        if value is None:
            if required:
                raise StepConfigError(name, "is required")
            return default
        if isinstance(value, bool) or not isinstance(value, str | int | float):
            raise StepConfigError(name, f"must be a string, got {_kind(value)}")
        return str(value)

    def required_text(self, name: str) -> str:
        """A string field that must be present and non-empty."""
        value = self.text(name, required=True)
        assert value is not None
        if not value.strip():
            raise StepConfigError(name, "must not be empty")
        return value

    def choice(self, name: str, choices: Collection[str], *, default: str) -> str:
        """A string field restricted to ``choices``."""
        value = self.text(name, default=default)
        assert value is not None
        if value not in choices:
            options = ", ".join(choices)
            raise StepConfigError(name, f"{value!r} is not supported; use one of {options}")
        return value

    def flag(self, name: str, *, default: bool) -> bool:
        """A boolean field (YAML true/false)."""
        value = self._config.get(name)
        if value is None:
            return default
        if not isinstance(value, bool):
            raise StepConfigError(name, f"must be true or false, got {value!r}")
        return value

    def string_map(self, name: str) -> dict[str, str]:
        """A mapping of names to scalar values, converted to strings (booleans as true/false)."""
        value = self._config.get(name)
        if value is None:
            return {}
        if not isinstance(value, Mapping):
            raise StepConfigError(name, f"must be a mapping of names to values, got {_kind(value)}")
        out: dict[str, str] = {}
        for key, item in value.items():
            if not isinstance(key, str) or not key:
                raise StepConfigError(name, f"has an invalid name {key!r}")
            out[key] = _scalar_text(f"{name}.{key}", item)
        return out

    def env_map(self, name: str) -> dict[str, str]:
        """Environment variables: names must be valid shell names, values must not contain NUL."""
        env = self.string_map(name)
        for key, value in env.items():
            if not _ENV_NAME.match(key):
                raise StepConfigError(
                    f"{name}.{key}",
                    "is not a valid variable name; use letters, digits and _ (not first a digit)",
                )
            if "\0" in value:
                raise StepConfigError(f"{name}.{key}", "must not contain a NUL character")
        return env

    def status_list(self, name: str) -> tuple[int, ...]:
        """HTTP status codes: one integer or a list of them, each 100-599."""
        value = self._config.get(name)
        if value is None:
            return ()
        items = value if isinstance(value, list | tuple) else [value]
        codes: list[int] = []
        for index, item in enumerate(items):
            code = _int_or_none(item)
            if code is None or not 100 <= code <= 599:
                raise StepConfigError(
                    f"{name}[{index}]", f"must be an HTTP status code (100-599), got {item!r}"
                )
            codes.append(code)
        return tuple(codes)

    def string_list(self, name: str, *, required: bool = False) -> list[str]:
        """A list of non-empty strings (a single string counts as a one-item list)."""
        value = self._config.get(name)
        if value is None:
            if required:
                raise StepConfigError(name, "is required")
            return []
        items = [value] if isinstance(value, str) else value
        if not isinstance(items, list | tuple):
            raise StepConfigError(name, f"must be a list of strings, got {_kind(value)}")
        out: list[str] = []
        for index, item in enumerate(items):
            if not isinstance(item, str) or not item.strip():
                raise StepConfigError(f"{name}[{index}]", "must be a non-empty string")
            out.append(item.strip())
        if required and not out:
            raise StepConfigError(name, "must list at least one entry")
        return out


def _scalar_text(field: str, value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str | int | float):
        return str(value)
    raise StepConfigError(field, f"must be a string or number, got {_kind(value)}")


def _int_or_none(value: Any) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, str) and value.strip().isdigit():
        return int(value)
    return None


def _kind(value: Any) -> str:
    """The YAML-ish name of a value's type, for error messages."""
    if isinstance(value, Mapping):
        return "a mapping"
    if isinstance(value, list | tuple):
        return "a list"
    if isinstance(value, bool):
        return "a boolean"
    if value is None:
        return "null"
    return type(value).__name__


def connection_of(spec: JobSpec, *types: str) -> Connection | None:
    """The connection the step names (``connection:``), as its claim delivered it; None when
    it names none. Raises `StepConfigError` at ``connection`` when it was not delivered (it
    was deleted or disabled after the job was queued) or is not of one of ``types``."""
    name = spec.config.get("connection")
    if not name:
        return None
    found = spec.connection
    if found is None or found.name != name:
        raise StepConfigError(
            "connection",
            f"connection {name!r} was not delivered with the job: it was deleted or disabled "
            "after the job was queued; an admin restores it, then retry the step",
        )
    if types and found.type not in types:
        raise StepConfigError(
            "connection", f"connection {name!r} is of type {found.type}; use {' or '.join(types)}"
        )
    return found


def connection_env(connection: Connection) -> dict[str, str]:
    """A connection as environment variables for a script: ``CONNECTION_<FIELD>`` per field
    (``CONNECTION_PRIVATE_KEY``), except a terraform connection, whose values already are
    variables and are given as they are."""
    if connection.type == "terraform":
        return dict(connection.values)
    return {f"CONNECTION_{name.upper()}": value for name, value in connection.values.items()}
