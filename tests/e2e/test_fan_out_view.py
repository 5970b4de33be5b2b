"""A fanned-out step (for_each) in the execution view: its items' progress in the step list and
on its graph node, its items as children with per-item retry, the log filtered by item, and the
items' gathered outputs; all live over the page's event stream, never a reload."""

from __future__ import annotations

import re
from pathlib import Path

from playwright.sync_api import Page, expect

from tests.e2e.conftest import UiServer, axe_scan, shot, sign_in, wait_status

ONE_FAILS = """
id: e2e-fan-out
name: Deploy to every region
params:
  marker: {type: string}
steps:
  - id: deploy
    type: script
    shell: sh
    for_each: [eu, us, ap]
    max_parallel: 2
    env: {REGION: "{{ item }}", MARKER: "{{ params.marker }}"}
    run: |
      echo "deploying $REGION"
      if [ "$REGION" = us ] && [ ! -e "$MARKER" ]; then
        touch "$MARKER"
        echo "us-east is down" >&2
        exit 3
      fi
      echo "where=$REGION-ok" >> "$OPSFLOW_OUTPUT"
  - id: report
    type: script
    shell: sh
    needs: [deploy]
    run: echo "all regions deployed"
"""

SLOW = """
id: e2e-fan-out-slow
name: Twelve hosts, three at a time
steps:
  - id: patch
    type: script
    shell: sh
    for_each: [h00, h01, h02, h03, h04, h05, h06, h07, h08, h09, h10, h11]
    max_parallel: 3
    env: {HOST: "{{ item }}"}
    run: |
      echo "patching $HOST"
      sleep 1
"""


def step_item(page: Page, step: str):  # type: ignore[no-untyped-def]
    return page.locator(".step-item").filter(has=page.locator(f'[data-step="{step}"]'))


def test_retry_a_failed_item_and_read_its_log(
    page: Page, ui_server: UiServer, tmp_path: Path
) -> None:
    ui_server.put_workflow(ONE_FAILS, "e2e-fan-out")
    execution_id = ui_server.run("e2e-fan-out", {"marker": str(tmp_path / "us-tried")})
    wait_status(ui_server, execution_id, "failed")
    sign_in(page, "olga")
    page.goto(f"/executions/{execution_id}")

    deploy = step_item(page, "deploy")
    progress = page.locator('[data-fanout-progress="deploy"]')
    expect(progress).to_contain_text("3 of 3 ended · 1 failed")
    expect(progress).to_contain_text("at most 2 at once")
    expect(page.locator('[data-node-items="deploy"]')).to_contain_text("3 of 3 ended · 1 failed")

    deploy.get_by_role("button", name="Items of deploy").click()
    items = page.get_by_test_id("items-deploy")
    expect(items.locator("[data-item]")).to_have_count(3)
    us = items.locator('[data-item="1"]')
    expect(us).to_contain_text("us")
    expect(us.locator(".badge")).to_have_attribute("data-status", "failed")
    expect(us).to_contain_text("exit code 3")
    expect(items.locator('[data-item="0"] .badge')).to_have_attribute("data-status", "succeeded")
    expect(items.get_by_role("button", name="Retry item #0")).to_have_count(0)
    shot(page, "execution-fan-out-failed-item")

    us.get_by_role("button", name="Retry item #1").click()
    confirm = page.get_by_role("dialog", name="Retry item #1 (us) of deploy?")
    confirm.get_by_role("button", name="Retry item").click()
    expect(
        page.get_by_role("status").filter(has_text="Retrying item #1 (us) of deploy")
    ).to_be_visible()
    # live: the item, the step and the run move on without a reload
    expect(us.locator(".badge")).to_have_attribute("data-status", "succeeded")
    expect(us).to_contain_text("×2")
    expect(progress).to_contain_text("3 of 3 ended")
    expect(progress).not_to_contain_text("failed")
    expect(page.locator("header.banner .badge").first).to_have_attribute("data-status", "completed")

    # the log of one item: chosen from its row, then from the selector beside the step filter
    us.get_by_role("button", name="#1 us: show its log").click()
    expect(page).to_have_url(f"/executions/{execution_id}?step=deploy&item=1")
    attempts = page.get_by_role("region", name="Attempts of item #1 of deploy")
    expect(attempts.locator("dl.job")).to_have_count(2)
    expect(attempts.locator("dl.job").first).to_contain_text("1 Failed")
    expect(attempts.locator("dl.job").first).to_contain_text("exit code 3")
    expect(attempts.locator("dl.job").nth(1)).to_contain_text("2 Completed")
    shot(page, "execution-fan-out-item-attempts")
    lines = page.get_by_test_id("log-lines")
    expect(lines).to_contain_text("deploying us")
    expect(lines).to_contain_text("us-east is down")
    expect(lines).not_to_contain_text("deploying eu")
    download = page.get_by_role("link", name="Download")
    expect(download).to_have_attribute("href", re.compile(r"logs/download\?step=deploy&item=1$"))
    body = ui_server.api.get(
        f"/executions/{execution_id}/logs/download", params={"step": "deploy", "item": 1}
    ).text
    assert "deploying us" in body and "deploying eu" not in body, body
    item_filter = page.get_by_role("combobox", name="Item of deploy whose log shows")
    item_filter.select_option(label="#2 ap")
    expect(lines).to_contain_text("deploying ap")
    expect(lines).not_to_contain_text("deploying us")
    item_filter.select_option(label="All items")
    expect(lines).to_contain_text("deploying eu")
    # every line names its item while all items show
    expect(
        lines.locator(".log-line").filter(has_text="deploying eu").locator(".log-item")
    ).to_have_text("#0")
    expect(
        lines.locator(".log-line").filter(has_text="us-east is down").first.locator(".log-item")
    ).to_have_text("#1")
    shot(page, "execution-fan-out-log-by-item")
    axe_scan(page, "execution view with a fanned-out step")

    page.get_by_role("tab", name="Outputs").click()
    table = page.get_by_role("table", name="Outputs of the items of deploy")
    expect(table.locator("tbody tr")).to_have_count(3)
    expect(table.locator('[data-item-outputs="1"]')).to_contain_text('"where":"us-ok"')
    expect(page.get_by_label("Outputs of deploy")).to_contain_text('"succeeded": 3')
    # with one item chosen, the Outputs tab shows that item, as the header above it says
    page.goto(f"/executions/{execution_id}?step=deploy&item=1&tab=outputs")
    expect(page.locator(".tab-step")).to_contain_text("Step deploy item #1")
    one = page.get_by_role("table", name="Outputs of the items of deploy")
    expect(one.locator("tbody tr")).to_have_count(1)
    expect(one.locator('[data-item-outputs="1"]')).to_contain_text('"where":"us-ok"')
    # a tab that shows the whole step does not name the item
    page.get_by_role("tab", name="Engine log").click()
    expect(page.locator(".tab-step")).to_contain_text("Step deploy")
    expect(page.locator(".tab-step")).not_to_contain_text("item #1")

    # each item's attempts are numbered on their own in the timeline
    page.get_by_role("tab", name="Timeline").click()
    timeline = page.get_by_role("list", name="Attempts over time")
    expect(timeline.get_by_role("button", name="deploy item 1 #2")).to_be_visible()
    expect(timeline.get_by_role("button", name="deploy item 2 #1")).to_be_visible()


def test_items_progress_live_while_they_run(page: Page, ui_server: UiServer) -> None:
    ui_server.put_workflow(SLOW, "e2e-fan-out-slow")
    sign_in(page)
    execution_id = ui_server.run("e2e-fan-out-slow")
    page.goto(f"/executions/{execution_id}?step=patch")
    progress = page.locator('[data-fanout-progress="patch"]')
    expect(progress).to_contain_text("running")
    expect(progress).to_contain_text("at most 3 at once")
    step_item(page, "patch").get_by_role("button", name="Items of patch").click()
    expect(
        page.get_by_test_id("items-patch").locator('[data-item-status="running"]').first
    ).to_be_visible()
    shot(page, "execution-fan-out-running")
    expect(progress).to_contain_text("12 of 12 ended", timeout=60_000)
    expect(page.locator('[data-node-items="patch"]')).to_contain_text("12 of 12 ended")
    expect(page.get_by_test_id("log-lines")).to_contain_text("patching h11")
    wait_status(ui_server, execution_id, "completed")


STUCK = """
id: e2e-fan-out-stuck
name: Hosts that hang
steps:
  - id: drain
    type: script
    shell: sh
    for_each: [a, b, c, d]
    max_parallel: 1
    run: sleep 60
"""


def test_cancel_one_item_then_the_rest(page: Page, ui_server: UiServer) -> None:
    ui_server.put_workflow(STUCK, "e2e-fan-out-stuck")
    execution_id = ui_server.run("e2e-fan-out-stuck")
    sign_in(page, "olga")
    page.goto(f"/executions/{execution_id}")
    drain = step_item(page, "drain")
    drain.get_by_role("button", name="Items of drain").click()
    items = page.get_by_test_id("items-drain")
    first = items.locator('[data-item="0"]')
    expect(first).to_have_attribute("data-item-status", "running")
    first.get_by_role("button", name="Cancel item #0").click()
    page.get_by_role("dialog", name="Cancel item #0 (a) of drain?").get_by_role(
        "button", name="Cancel item"
    ).click()
    expect(
        page.get_by_role("status").filter(has_text="Cancelled item #0 (a) of drain")
    ).to_be_visible()
    expect(first).to_have_attribute("data-item-status", "cancelled")
    # the next item starts in its place (one at a time); then every item left is cancelled
    expect(items.locator('[data-item="1"]')).to_have_attribute("data-item-status", "running")
    drain.get_by_role("button", name="Cancel items").click()
    confirm = page.get_by_role("dialog", name="Cancel the items of drain that have not ended?")
    confirm.get_by_role("button", name="Cancel items").click()
    progress = page.locator('[data-fanout-progress="drain"]')
    expect(progress).to_contain_text("4 of 4 ended · 4 cancelled")
    expect(items.locator('[data-item-status="cancelled"]')).to_have_count(4)
    expect(drain.get_by_role("button", name="Cancel items")).to_have_count(0)
    # cancelled items may be retried one by one
    expect(first.get_by_role("button", name="Retry item #0")).to_be_visible()
    shot(page, "execution-fan-out-cancelled")


SKIPPABLE = """
id: e2e-fan-out-skippable
name: Canaries that may be skipped
params:
  marker: {type: string}
steps:
  - id: canary
    type: script
    shell: sh
    allow_skip: true
    for_each: [x, y, z]
    env: {HOST: "{{ item }}", MARKER: "{{ params.marker }}"}
    run: |
      if [ "$HOST" = x ]; then echo "x is gone for good" >&2; exit 4; fi
      if [ "$HOST" = y ] && [ ! -e "$MARKER" ]; then touch "$MARKER"; exit 5; fi
      echo "$HOST fine"
"""


def test_skip_an_item_and_retry_the_step(page: Page, ui_server: UiServer, tmp_path: Path) -> None:
    ui_server.put_workflow(SKIPPABLE, "e2e-fan-out-skippable")
    execution_id = ui_server.run("e2e-fan-out-skippable", {"marker": str(tmp_path / "y-tried")})
    wait_status(ui_server, execution_id, "failed")
    sign_in(page, "olga")
    page.goto(f"/executions/{execution_id}")
    canary = step_item(page, "canary")
    progress = page.locator('[data-fanout-progress="canary"]')
    expect(progress).to_contain_text("3 of 3 ended · 2 failed")
    canary.get_by_role("button", name="Items of canary").click()
    items = page.get_by_test_id("items-canary")
    items.get_by_role("button", name="Skip item #0").click()
    page.get_by_role("dialog", name="Skip item #0 (x) of canary?").get_by_role(
        "button", name="Skip item"
    ).click()
    expect(items.locator('[data-item="0"]')).to_have_attribute("data-item-status", "skipped")
    expect(progress).to_contain_text("3 of 3 ended · 1 failed · 1 skipped")
    # the step re-runs its items that did not succeed: y only (x was skipped)
    canary.get_by_role("button", name="Retry step").click()
    confirm = page.get_by_role("dialog", name="Retry canary?")
    expect(confirm).to_contain_text("Its items that did not succeed run again")
    confirm.get_by_role("button", name="Retry").click()
    expect(items.locator('[data-item="1"]')).to_have_attribute("data-item-status", "succeeded")
    expect(items.locator('[data-item="0"]')).to_have_attribute("data-item-status", "skipped")
    expect(canary.locator(".step-row .badge")).to_have_attribute("data-status", "succeeded")
    expect(page.locator("header.banner .badge").first).to_have_attribute("data-status", "completed")
    shot(page, "execution-fan-out-skipped-item")
