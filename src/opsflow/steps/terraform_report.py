"""What a terraform step reports: its changes, outputs, plan text and error, read from
Terraform's own machine-readable output.

``changes`` counts like Terraform's "Plan: N to add, N to change, N to destroy" line (a
replacement counts as one add and one destroy). Sensitive outputs never leave the agent: their
values become ``"(sensitive)"``. An error is Terraform's own diagnostic (summary and detail),
without the source snippet, so the step's error reads like what a person running Terraform
would see.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import Any

SENSITIVE = "(sensitive)"
PLAN_TEXT_LIMIT = 200 * 1024
ERROR_LIMIT = 2000
_MAX_ERRORS = 3

# Terraform's plan JSON "actions" lists, and how each reads in one word.
_ACTIONS: dict[tuple[str, ...], str] = {
    ("create",): "create",
    ("update",): "update",
    ("delete",): "delete",
    ("delete", "create"): "replace",
    ("create", "delete"): "replace",
    ("read",): "read",
    ("forget",): "forget",
}
_COUNTS: dict[str, tuple[str, ...]] = {
    "create": ("add",),
    "update": ("change",),
    "delete": ("destroy",),
    "replace": ("add", "destroy"),
}
_SUMMARY = re.compile(r"^(?:Apply|Destroy) complete! Resources: (?P<counts>.*)$")
_COUNT = re.compile(r"(\d+) (added|changed|destroyed)")
_SUMMARY_KEYS = {"added": "add", "changed": "change", "destroyed": "destroy"}
_DIAGNOSTIC_BOX = re.compile(r"^[│╷╵] ?")


def no_changes() -> dict[str, int]:
    """``{add: 0, change: 0, destroy: 0}``."""
    return {"add": 0, "change": 0, "destroy": 0}


def plan_changes(plan: Mapping[str, Any]) -> tuple[dict[str, int], list[dict[str, str]]]:
    """``changes`` and ``resource_changes`` [{address, action}] of ``terraform show -json``.

    Resources whose action is "no-op" are left out of the list, like Terraform's plan text.
    """
    changes = no_changes()
    listed: list[dict[str, str]] = []
    for item in plan.get("resource_changes") or []:
        actions = tuple((item.get("change") or {}).get("actions") or ())
        action = _ACTIONS.get(actions)
        if action is None:
            continue  # no-op
        for key in _COUNTS.get(action, ()):
            changes[key] += 1
        listed.append({"address": str(item.get("address", "")), "action": action})
    return changes, listed


def applied_changes(stdout_lines: Iterable[str]) -> dict[str, int]:
    """``changes`` from the "Apply complete! Resources: ..." line of an apply or destroy."""
    changes = no_changes()
    for line in stdout_lines:
        found = _SUMMARY.match(line.strip())
        if found:
            for count, word in _COUNT.findall(found.group("counts")):
                changes[_SUMMARY_KEYS[word]] = int(count)
    return changes


def masked_outputs(document: Mapping[str, Any]) -> dict[str, Any]:
    """``terraform output -json`` as ``{name: value}``, sensitive values replaced."""
    outputs: dict[str, Any] = {}
    for name, item in document.items():
        if not isinstance(item, Mapping):
            continue
        outputs[name] = SENSITIVE if item.get("sensitive") else item.get("value")
    return outputs


def capped_plan_text(text: str) -> str:
    """The readable plan, cut at ``PLAN_TEXT_LIMIT`` bytes with a note saying so."""
    data = text.encode("utf-8")
    if len(data) <= PLAN_TEXT_LIMIT:
        return text
    cut = data[:PLAN_TEXT_LIMIT].decode("utf-8", errors="ignore")
    return cut + "\n... (plan text cut at 200 KB; the whole plan is in the step's log)\n"


def terraform_errors(lines: Iterable[str]) -> str | None:
    """Terraform's "Error:" diagnostics in ``lines`` (stderr), each as summary and detail.

    The "on main.tf line 3" source snippet is dropped; what remains is what Terraform says is
    wrong and, usually, how to fix it. None when the output holds no diagnostic.
    """
    errors: list[list[str]] = []
    current: list[str] | None = None
    in_snippet = False
    for raw in lines:
        line = _DIAGNOSTIC_BOX.sub("", raw.rstrip())
        if line.startswith("Error: "):
            current = [line[len("Error: ") :].strip()]
            errors.append(current)
            in_snippet = False
            continue
        if current is None:
            continue
        if line.startswith("Warning: "):
            current = None
            continue
        stripped = line.strip()
        if not stripped:
            in_snippet = False
            continue
        if line.startswith("  on ") and " line " in line:
            in_snippet = True  # the source snippet runs until the next blank line
            continue
        if not in_snippet:
            current.append(" ".join(stripped.split()))  # "ID:        x" reads "ID: x"
    # The same diagnostic repeats once per instance (count/for_each): say it once.
    unique = list(dict.fromkeys(_join(block) for block in errors))
    if not unique:
        return None
    parts = unique[:_MAX_ERRORS]
    if len(unique) > _MAX_ERRORS:
        parts.append(f"(and {len(unique) - _MAX_ERRORS} more errors; see the step's log)")
    text = "\n".join(parts)
    return text if len(text) <= ERROR_LIMIT else text[: ERROR_LIMIT - 3] + "..."


def _join(block: list[str]) -> str:
    summary, *detail = block
    if not detail:
        return summary
    return f"{summary}: {' '.join(detail)}"
