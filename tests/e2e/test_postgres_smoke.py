"""The web UI on a server whose database is PostgreSQL: log in, run from the dialog, see the
run complete with its log; watch a run live in the execution view and approve its gate."""

from __future__ import annotations

import re
from pathlib import Path

from playwright.sync_api import Page, expect

from tests.e2e.conftest import UiServer, shot, sign_in

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


HELD = """
id: e2e-pg-gate
name: Gate on PostgreSQL
steps:
  - id: talk
    type: script
    shell: sh
    env: {GO: "GO_PATH"}
    run: |
      echo "before the hold"
      n=0
      while [ ! -e "$GO" ] && [ $n -lt 600 ]; do sleep 0.1; n=$((n+1)); done
      echo "after the hold"
  - id: gate
    type: approval
    needs: [talk]
    message: "Carry on on PostgreSQL?"
  - id: finish
    type: script
    shell: sh
    needs: [gate]
    run: echo "finished on postgres"
"""


def test_live_execution_view_with_an_approval_on_postgresql(
    page: Page, pg_ui_server: UiServer, tmp_path: Path
) -> None:
    go = tmp_path / "go"
    pg_ui_server.put_workflow(HELD.replace("GO_PATH", str(go)), "e2e-pg-gate")
    execution_id = pg_ui_server.run("e2e-pg-gate")
    sign_in(page, "olga")
    page.goto(f"/executions/{execution_id}")
    log = page.get_by_test_id("log-lines")
    expect(log).to_contain_text("before the hold")
    banner = page.locator("header.banner .badge").first
    expect(banner).to_have_attribute("data-status", "running")
    go.touch()  # the rest happens while the page is open: it arrives by the stream
    expect(log).to_contain_text("after the hold")
    expect(banner).to_have_attribute("data-status", "paused")
    gate = page.locator(".step-item").filter(has=page.locator('[data-step="gate"]'))
    gate.get_by_role("button", name="Approve").click()
    answer = page.get_by_role("dialog", name="Approve gate")
    expect(answer).to_contain_text("Carry on on PostgreSQL?")
    answer.get_by_role("button", name="Approve").click()
    expect(banner).to_have_attribute("data-status", "completed")
    expect(log).to_contain_text("finished on postgres")
    expect(page.get_by_test_id("steps-done")).to_have_text("3/3")
    shot(page, "postgres-live-approval-completed")
