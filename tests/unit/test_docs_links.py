"""The documentation's relative links lead to files that exist, and docs/README.md's list of
what is missing does not name what this version has (it once said there was no web UI)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

DOCS = Path(__file__).parents[2] / "docs"
LINK = re.compile(r"\]\(([^)\s#]+)(?:#[^)]*)?\)")


@pytest.mark.parametrize("page", sorted(DOCS.rglob("*.md")), ids=lambda p: str(p.relative_to(DOCS)))
def test_relative_links_lead_to_files(page: Path) -> None:
    broken = [
        target
        for target in LINK.findall(page.read_text())
        if "://" not in target
        and not target.startswith("mailto:")
        and not (page.parent / target).exists()
    ]
    assert broken == [], f"{page.relative_to(DOCS)} links to missing files: {broken}"


def test_the_missing_list_does_not_deny_the_web_ui_or_metrics() -> None:
    text = (DOCS / "README.md").read_text()
    missing = text.split("## What is not available yet", 1)[1].split("\n## ", 1)[0]
    assert "no web interface" not in missing
    assert "/metrics" in missing and "Prometheus metrics, analytics" not in missing


def _missing_bullets() -> str:
    text = (DOCS / "README.md").read_text()
    missing = text.split("## What is not available yet", 1)[1].split("\n## ", 1)[0]
    return missing.split("not here yet:", 1)[1]


def test_the_missing_list_does_not_deny_fan_out_or_run_end_messages() -> None:
    bullets = _missing_bullets()
    for word in ("for_each", "matrix", "notify"):
        assert word not in bullets, f"docs/README.md lists {word} as missing, but it exists"


@pytest.mark.parametrize(
    ("page", "stale"),
    [
        ("concepts/workflows.md", "triggers do not start runs"),
        ("concepts/execution.md", "LISTEN/NOTIFY) are not implemented"),
    ],
)
def test_concept_pages_do_not_deny_what_exists(page: str, stale: str) -> None:
    text = " ".join((DOCS / page).read_text().split())
    assert stale not in text


def test_the_needs_table_offers_a_condition_only_outcomes_the_loader_accepts() -> None:
    from opsflow.spec.checks import outcomes_of
    from opsflow.status import StepType

    accepted = {o.value for o in outcomes_of(StepType.CONDITION)}
    text = (DOCS / "concepts" / "execution.md").read_text()
    table = text.split("## Needs and outcomes", 1)[1].split("\n## ", 1)[0]
    for row in (line for line in table.splitlines() if line.startswith("| `build.")):
        outcome = row.split("`")[1].split(".", 1)[1]
        if outcome not in accepted and "condition" in row:
            # The row may name a condition only to say the loader refuses this outcome on it.
            assert "refused" in row, f"{row!r}: the loader refuses {outcome} on a condition"
    line = next(x for x in table.splitlines() if "for conditions" in x)
    listed = line.split("for conditions")[0].rsplit(";", 1)[-1]
    assert {w.strip("` ") for w in listed.split("/")} == accepted - {"always"}
