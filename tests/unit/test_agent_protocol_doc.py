"""The agent protocol reference shows the protocol's models as they are."""

from __future__ import annotations

from pathlib import Path

import pytest

from opsflow.agent.protocol_doc import BEGIN, END, render, update

PAGE = Path(__file__).parents[2] / "docs" / "reference" / "agent-protocol.md"


def test_the_reference_tables_match_the_models() -> None:
    text = PAGE.read_text(encoding="utf-8")
    assert update(text) == text, (
        "docs/reference/agent-protocol.md is stale: run "
        "`python -m opsflow.agent.protocol_doc docs/reference/agent-protocol.md`"
    )


def test_every_field_of_every_message_has_a_meaning() -> None:
    undocumented = [line for line in render().splitlines() if line.endswith("|  |")]
    assert undocumented == []


def test_a_page_without_the_markers_is_refused() -> None:
    with pytest.raises(ValueError, match="markers"):
        update("# no markers here\n")
    assert BEGIN in update(f"x\n{BEGIN}\nold\n{END}\ny\n")
