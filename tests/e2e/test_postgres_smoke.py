"""The web UI on a server whose database is PostgreSQL: log in, run from the dialog, see the
run complete with its log."""

from __future__ import annotations

import re

from playwright.sync_api import Page, expect

from tests.e2e.conftest import UiServer, sign_in

ECHO = """
id: e2e-pg
name: Echo on PostgreSQL
params:
  word: {type: string, default: hello}
steps:
  - id: say
    type: script
    shell: sh
    env: {WORD: "{{ params.word }}"}
    run: echo "said $WORD"
"""


def test_run_from_the_dialog_on_postgresql(page: Page, pg_ui_server: UiServer) -> None:
    pg_ui_server.put_workflow(ECHO, "e2e-pg")
    sign_in(page, "olga")
    page.get_by_role("button", name="Run Echo on PostgreSQL").click()
    dialog = page.get_by_role("dialog")
    dialog.get_by_label("word").fill("postgres")
    dialog.get_by_role("button", name="Start").click()
    expect(dialog.locator(".run-status .badge")).to_have_attribute("data-status", "completed")
    expect(dialog.get_by_label("Results")).to_contain_text("exit_code")
    dialog.get_by_role("button", name="View details").click()
    expect(page).to_have_url(re.compile(r"/executions/[0-9a-f]+"))
    expect(page.get_by_test_id("log-lines")).to_contain_text("said postgres")
