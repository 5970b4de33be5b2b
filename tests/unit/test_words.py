"""Counts in messages read as English: "1 line", "2 lines"."""

from __future__ import annotations

from opsflow.words import counted, did_you_mean


def test_one_is_singular_and_every_other_count_plural() -> None:
    assert counted(1, "line") == "1 line"
    assert [counted(n, "line") for n in (0, 2, 10)] == ["0 lines", "2 lines", "10 lines"]
    assert counted(1, "entry", "entries") == "1 entry"
    assert counted(3, "entry", "entries") == "3 entries"
    assert counted(1, "pending approval") == "1 pending approval"


def test_a_typo_gets_the_close_names_and_a_stranger_gets_none() -> None:
    known = ["hello", "api-deploy", "nightly-db-backup", "help-desk"]
    assert did_you_mean("helo", known) == "; did you mean 'hello'?"
    assert did_you_mean("api-deplyo", known) == "; did you mean 'api-deploy'?"
    assert did_you_mean("zzz", known) == ""
    assert did_you_mean("x", []) == ""


def test_no_message_in_the_source_writes_a_count_as_noun_s() -> None:
    """Every count goes through ``counted``: no string in opsflow's source says "item(s)"
    ("http(s)" is a URL scheme pattern, not a count)."""
    import ast
    import re
    from pathlib import Path

    import opsflow

    root = Path(opsflow.__file__).parent
    pattern = re.compile(r"\w\(s\)")
    found = []
    for path in sorted(root.rglob("*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        docstrings = {id(n.value) for n in ast.walk(tree) if isinstance(n, ast.Expr)}
        for node in ast.walk(tree):
            if id(node) in docstrings:
                continue
            if isinstance(node, ast.Constant) and isinstance(node.value, str):
                text = node.value.replace("http(s)", "")
                if pattern.search(text):
                    found.append(f"{path.relative_to(root)}:{node.lineno}: {node.value!r}")
    assert found == [], "\n".join(found)
