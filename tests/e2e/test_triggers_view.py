"""What a user sees of triggers: a workflow's triggers with hook URL, schedule fires and last
deliveries; an execution's trigger source, its parent step (a link) and the workflow's outputs;
the executions list naming each run's trigger source."""

from __future__ import annotations

import re

import httpx
from playwright.sync_api import Page, expect

from tests.e2e.conftest import UiServer, axe_scan, shot, sign_in, wait_status

CHILD = """
id: e2e-tr-child
name: Child greets
params:
  who: {type: string, default: nobody}
outputs:
  greeting: "hello {{ params.who }}"
steps:
  - {id: say, type: script, shell: sh, run: "echo hi"}
"""

PARENT = """
id: e2e-tr-parent
name: Parent calls the child
triggers:
  - {type: webhook, key: e2e-tr-hook}
  - {type: schedule, cron: "0 3 * * *", timezone: Europe/Berlin}
steps:
  - id: call
    type: workflow
    workflow: e2e-tr-child
    params: {who: world}
"""

FOLLOWER = """
id: e2e-tr-follower
name: Follows the parent
triggers:
  - {type: workflow, workflow: e2e-tr-parent, statuses: [completed]}
steps:
  - {id: after, type: script, shell: sh, run: "echo after"}
"""


def _only_run(server: UiServer, workflow_id: str) -> str:
    items = server.api.get("/executions", params={"workflow": workflow_id}).json()["items"]
    assert len(items) == 1, items
    return str(items[0]["id"])


def test_triggers_sources_parent_and_workflow_outputs(page: Page, ui_server: UiServer) -> None:
    ui_server.put_workflow(CHILD, "e2e-tr-child")
    ui_server.put_workflow(FOLLOWER, "e2e-tr-follower")
    ui_server.put_workflow(PARENT, "e2e-tr-parent")
    parent_id = ui_server.run("e2e-tr-parent")
    wait_status(ui_server, parent_id, "completed")
    child_id = _only_run(ui_server, "e2e-tr-child")
    follower_id = _only_run(ui_server, "e2e-tr-follower")
    wait_status(ui_server, follower_id, "completed")
    # An unsigned POST is refused, and the delivery log says so.
    refused = httpx.post(f"{ui_server.url}/hooks/e2e-tr-hook", json={"x": 1}, timeout=30)
    assert refused.status_code in (401, 403), refused.text

    sign_in(page, "vera")
    page.goto("/workflows/e2e-tr-parent")
    triggers = page.get_by_role("list", name="Triggers")
    hook = triggers.locator("[data-trigger=e2e-tr-hook]")
    expect(hook.get_by_test_id("hook-url")).to_have_text(f"{ui_server.url}/hooks/e2e-tr-hook")
    expect(hook.get_by_role("button", name=re.compile("^Copy"))).to_be_visible()
    expect(hook).to_contain_text("enabled")
    deliveries = hook.get_by_role("table", name="Last deliveries")
    expect(deliveries).to_contain_text("refused")
    schedule = triggers.locator("[data-trigger=schedule-1]")
    expect(schedule).to_contain_text("0 3 * * * (Europe/Berlin)")
    expect(schedule).to_contain_text(re.compile(r"Next: \d{4}-\d\d-\d\d"))
    expect(schedule).to_contain_text("never fired")
    expect(triggers.get_by_role("button", name="Disable schedule-1")).to_have_count(0)  # viewer
    shot(page, "workflow-triggers")

    page.goto(f"/executions/{child_id}")
    parent = page.get_by_test_id("parent")
    expect(parent).to_contain_text("step call")
    page.get_by_role("tab", name="Outputs").click()
    expect(page.get_by_label("Workflow outputs")).to_contain_text('"greeting": "hello world"')
    shot(page, "execution-child-parent-and-outputs")
    axe_scan(page, "child execution")
    parent.get_by_role("link", name=parent_id).click()
    expect(page).to_have_url(re.compile(rf"/executions/{parent_id}\?step=call"))

    page.goto(f"/executions/{follower_id}")
    upstream = page.get_by_role("link", name=parent_id)
    expect(upstream).to_be_visible()
    shot(page, "execution-follower-upstream")

    page.goto("/executions?workflow=e2e-tr-follower")
    row = page.get_by_role("row").filter(has=page.get_by_role("link", name="e2e-tr-follower"))
    expect(row.get_by_test_id("trigger-source")).to_have_text(parent_id[:8])
    shot(page, "executions-trigger-source")

    # An admin disables the schedule from the workflow page and it says so.
    page.context.clear_cookies()
    sign_in(page, "admin")
    page.goto("/workflows/e2e-tr-parent")
    schedule = page.get_by_role("list", name="Triggers").locator("[data-trigger=schedule-1]")
    schedule.get_by_role("button", name="Disable schedule-1").click()
    expect(schedule).to_contain_text("disabled")
    expect(schedule).to_contain_text("not while paused or disabled")
    assert ui_server.api.get("/workflows/e2e-tr-parent/triggers").json()[1]["enabled"] is False
    shot(page, "workflow-trigger-disabled")
    axe_scan(page, "workflow page with triggers")
