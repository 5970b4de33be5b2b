"""What an operator does with one execution and one workflow beyond the happy path: answer a gate
from the run dialog or reject it from the execution view, skip a failed step, read the Outputs,
Variables and a Terraform plan, download the log; duplicate and delete a workflow."""

from __future__ import annotations

import re
from pathlib import Path

from playwright.sync_api import Page, expect

from tests.e2e.conftest import UiServer, axe_scan, shot, sign_in, wait_status

GATED = """
id: e2e-gated
name: Gated deploy
params:
  target: {type: string, default: staging}
steps:
  - id: prepare
    type: script
    shell: sh
    run: echo "prepared"
  - id: gate
    type: approval
    needs: [prepare]
    message: "Deploy to {{ params.target }}?"
  - id: deploy
    type: script
    shell: sh
    needs: [gate]
    run: echo "deployed"
"""

STRANDED = """
id: e2e-stranded
name: Waits for an agent that never comes
steps:
  - {id: first, type: script, shell: sh, agent: {pool: nowhere}, run: "true"}
  - {id: second, type: script, shell: sh, needs: [first], run: "true"}
  - {id: third, type: script, shell: sh, needs: [second], run: "true"}
"""

SKIPPABLE = """
id: e2e-skippable
name: Smoke test may be skipped
steps:
  - id: smoke
    type: script
    shell: sh
    allow_skip: true
    run: |
      echo "smoke test cannot reach the host" >&2
      exit 7
  - id: after
    type: script
    shell: sh
    needs: [smoke]
    run: echo "went on after the skip"
"""

OUTPUTS = """
id: e2e-outputs
name: Build with outputs
params:
  region: {type: string, default: eu-west-1}
steps:
  - id: build
    type: script
    shell: sh
    run: |
      echo "building"
      echo '{"version": "1.4.2", "replicas": 3}' > "$OPSFLOW_OUTPUT"
"""

TERRAFORM_MAIN = """
resource "terraform_data" "web" {
  input = "web"
}
resource "terraform_data" "db" {
  input = "db"
}
"""

TERRAFORM_PLAN = """
id: e2e-terraform
name: Terraform plan behind a gate
steps:
  - id: plan
    type: terraform
    action: plan
    source: {dir: infra}
  - id: approve
    type: approval
    needs: [plan]
    message: "Add {{ nodes.plan.output.changes.add }} resources?"
"""


def step_item(page: Page, step: str):  # type: ignore[no-untyped-def]
    return page.locator(".step-item").filter(has=page.locator(f'[data-step="{step}"]'))


def banner(page: Page):  # type: ignore[no-untyped-def]
    return page.locator("header.banner .badge").first


def test_approve_a_gate_inside_the_run_dialog(page: Page, ui_server: UiServer) -> None:
    ui_server.put_workflow(GATED, "e2e-gated")
    sign_in(page, "olga")
    page.get_by_role("button", name="Run Gated deploy").click()
    run_dialog = page.get_by_role("dialog", name="Run Gated deploy")
    run_dialog.get_by_label("target").fill("production")
    run_dialog.get_by_role("button", name="Start").click()
    gate = run_dialog.locator(".run-steps li").filter(has_text="gate")
    expect(gate).to_contain_text("Deploy to production?")
    expect(gate.locator(".badge")).to_have_attribute("data-status", "waiting")
    shot(page, "run-dialog-waiting-at-gate")
    gate.get_by_role("button", name="Approve").click()
    answer = page.get_by_role("dialog", name="Approve gate")
    expect(answer).to_contain_text("Deploy to production?")
    answer.get_by_label("Note (optional)").fill("go ahead")
    axe_scan(page, "approve dialog over the run dialog")
    shot(page, "run-dialog-approve-note")
    answer.get_by_role("button", name="Approve").click()
    expect(answer).to_have_count(0)
    expect(page.get_by_role("status").filter(has_text="Approved gate")).to_be_visible()
    expect(run_dialog.locator(".run-status .badge")).to_have_attribute("data-status", "completed")
    expect(gate.locator(".badge")).to_have_attribute("data-status", "approved")
    expect(run_dialog.get_by_role("progressbar")).to_have_attribute("aria-valuenow", "100")
    shot(page, "run-dialog-approved-completed")


def test_reject_a_gate_from_the_execution_view(page: Page, ui_server: UiServer) -> None:
    ui_server.put_workflow(GATED, "e2e-gated")
    execution_id = ui_server.run("e2e-gated", {"target": "production"})
    wait_status(ui_server, execution_id, "paused")
    sign_in(page, "olga")
    # On the list, the run paused at the gate says so in words beside the "Active" workflow.
    row = page.get_by_role("row").filter(has_text="Gated deploy")
    expect(row.get_by_text("Active", exact=True)).to_be_visible()
    last_run = row.get_by_role("link", name=re.compile("^Last run: Paused waiting for approval"))
    expect(last_run).to_contain_text("waiting for approval")
    shot(page, "workflows-run-waiting-for-approval")
    last_run.click()
    expect(page).to_have_url(re.compile(f"/executions/{execution_id}"))
    gate = step_item(page, "gate")
    expect(gate.get_by_text("Waiting", exact=True)).to_be_visible()
    gate.get_by_role("button", name="Reject").click()
    answer = page.get_by_role("dialog", name="Reject gate")
    expect(answer).to_contain_text("Deploy to production?")
    answer.get_by_label("Note (optional)").fill("not on a Friday")
    answer.get_by_role("button", name="Reject").click()
    expect(banner(page)).to_have_attribute("data-status", "rejected")
    expect(gate.locator(".badge")).to_have_attribute("data-status", "rejected")
    # deploy never ran: it ended cancelled, and the banner does not count it as done
    expect(step_item(page, "deploy").locator(".badge")).to_have_attribute(
        "data-status", re.compile("cancelled|skipped")
    )
    expect(page.get_by_test_id("steps-done")).to_contain_text("2/3")
    expect(gate.get_by_role("button", name="Approve")).to_have_count(0)
    page.get_by_role("tab", name="Engine log").click()
    expect(page.get_by_role("tabpanel")).to_contain_text("olga")
    shot(page, "execution-rejected")


def test_a_run_cancelled_before_any_step_ran_counts_no_step_as_done(
    page: Page, ui_server: UiServer
) -> None:
    ui_server.put_workflow(STRANDED, "e2e-stranded")
    execution_id = ui_server.run("e2e-stranded")
    sign_in(page, "olga")
    page.goto(f"/executions/{execution_id}")
    expect(page.get_by_text("no agent serves pool nowhere")).to_be_visible()
    cancelled = ui_server.api.post(f"/executions/{execution_id}/cancel", json={"mode": "force"})
    assert cancelled.status_code in (200, 202), cancelled.text
    expect(banner(page)).to_have_attribute("data-status", "cancelled")
    steps_done = page.get_by_test_id("steps-done")
    expect(steps_done).to_have_text("0/3 · 3 cancelled")
    shot(page, "execution-cancelled-before-any-step")
    page.goto("/executions?workflow=e2e-stranded")
    row = page.locator(".grid-body [role=row]").filter(has_text="e2e-stranded").first
    expect(row).to_contain_text("0/3 · 3 cancelled")
    shot(page, "executions-cancelled-before-any-step")


def test_skip_a_failed_step_and_the_run_goes_on(page: Page, ui_server: UiServer) -> None:
    ui_server.put_workflow(SKIPPABLE, "e2e-skippable")
    execution_id = ui_server.run("e2e-skippable")
    wait_status(ui_server, execution_id, "failed")
    sign_in(page, "olga")
    page.goto(f"/executions/{execution_id}")
    smoke = step_item(page, "smoke")
    expect(smoke.locator(".badge")).to_have_attribute("data-status", "failed")
    smoke.get_by_role("button", name="Skip", exact=True).click()
    confirm = page.get_by_role("dialog", name="Skip smoke?")
    expect(confirm).to_contain_text("the steps after it go on")
    confirm.get_by_role("button", name="Skip step").click()
    expect(page.get_by_role("status").filter(has_text="Skipped smoke")).to_be_visible()
    expect(smoke.locator(".badge")).to_have_attribute("data-status", "skipped")
    expect(banner(page)).to_have_attribute("data-status", "completed")
    expect(page.get_by_test_id("log-lines")).to_contain_text("went on after the skip")
    expect(smoke.get_by_role("button", name="Skip", exact=True)).to_have_count(0)
    shot(page, "execution-step-skipped")


def test_outputs_and_variables_tabs(page: Page, ui_server: UiServer) -> None:
    ui_server.put_workflow(OUTPUTS, "e2e-outputs")
    execution_id = ui_server.run("e2e-outputs", {"region": "ap-south-2"})
    wait_status(ui_server, execution_id, "completed")
    sign_in(page, "olga")
    page.goto(f"/executions/{execution_id}")
    page.get_by_role("tab", name="Outputs").click()
    expect(page).to_have_url(re.compile(r"tab=outputs"))
    panel = page.get_by_role("tabpanel")
    expect(panel.get_by_role("heading", name="build")).to_be_visible()
    outputs = panel.get_by_label("Outputs of build")
    expect(outputs).to_contain_text('"version": "1.4.2"')
    expect(outputs).to_contain_text('"replicas": 3')
    shot(page, "execution-outputs-tab")
    page.get_by_role("tab", name="Variables").click()
    expect(panel.get_by_label("Params")).to_contain_text('"region": "ap-south-2"')
    trigger = panel.get_by_label("Trigger data")
    expect(trigger).to_contain_text('"type": "manual"')
    expect(trigger).to_contain_text('"actor": "admin"')
    shot(page, "execution-variables-tab")
    page.reload()  # the tab is in the URL
    expect(page.get_by_role("tab", name="Variables")).to_have_attribute("aria-selected", "true")


def test_terraform_plan_counts_and_text(page: Page, ui_server: UiServer, tmp_path: Path) -> None:
    (tmp_path / "infra").mkdir()
    (tmp_path / "infra" / "main.tf").write_text(TERRAFORM_MAIN)
    (tmp_path / "workflow.yaml").write_text(TERRAFORM_PLAN)
    ui_server.put_bundle(tmp_path, "e2e-terraform")
    execution_id = ui_server.run("e2e-terraform")
    wait_status(ui_server, execution_id, "paused", "failed", timeout=120)
    sign_in(page, "olga")
    page.goto(f"/executions/{execution_id}")
    expect(banner(page)).to_have_attribute("data-status", "paused")
    step_item(page, "plan").get_by_role("button", name="View plan").click()
    expect(page).to_have_url(re.compile(r"step=plan.*tab=outputs|tab=outputs.*step=plan"))
    counts = page.get_by_role("tabpanel").locator(".plan-counts")
    expect(counts).to_have_text("+2 to add ~0 to change −0 to destroy")
    page.get_by_role("tabpanel").get_by_text("Plan", exact=True).click()
    plan_text = page.get_by_role("tabpanel").locator(".plan pre")
    expect(plan_text).to_contain_text("terraform_data.web will be created")
    expect(plan_text).to_contain_text("Plan: 2 to add, 0 to change, 0 to destroy.")
    axe_scan(page, "terraform plan in the outputs tab")
    shot(page, "execution-terraform-plan")


def test_download_the_log(page: Page, ui_server: UiServer) -> None:
    ui_server.put_workflow(OUTPUTS, "e2e-outputs")
    execution_id = ui_server.run("e2e-outputs")
    wait_status(ui_server, execution_id, "completed")
    sign_in(page, "olga")
    page.goto(f"/executions/{execution_id}?step=build")
    expect(page.get_by_test_id("log-lines")).to_contain_text("building")
    with page.expect_download() as info:
        page.get_by_role("link", name="Download").click()
    download = info.value
    assert download.suggested_filename == f"{execution_id}.log"
    text = Path(download.path()).read_text()
    assert "[build] stdout: building\n" in text, text
    assert "[build] system info: exit code 0\n" in text, text


def test_duplicate_a_workflow(page: Page, ui_server: UiServer) -> None:
    ui_server.put_workflow(OUTPUTS, "e2e-dup-source")
    ui_server.api.delete("/workflows/e2e-dup-source-copy")  # a rerun starts clean
    sign_in(page, "admin")
    page.get_by_role("searchbox", name="Search workflows").fill("Build with outputs")
    page.get_by_role("button", name="Duplicate Build with outputs").first.click()
    dialog = page.get_by_role("dialog", name="Duplicate Build with outputs")
    expect(dialog.get_by_label("New id")).to_have_value("e2e-dup-source-copy")
    dialog.get_by_label("Name").fill("Build with outputs, second")
    axe_scan(page, "duplicate dialog")
    shot(page, "workflow-duplicate-dialog")
    dialog.get_by_role("button", name="Duplicate").click()
    expect(dialog).to_have_count(0)
    expect(page.get_by_role("status")).to_contain_text("Created e2e-dup-source-copy as a draft")
    row = page.get_by_role("row").filter(has_text="Build with outputs, second")
    expect(row.locator(".badge")).to_have_attribute("data-status", "draft")
    expect(row).to_contain_text("Never run")
    shot(page, "workflow-duplicated")


def test_delete_a_workflow(page: Page, ui_server: UiServer) -> None:
    ui_server.put_workflow(OUTPUTS.replace("Build with outputs", "Doomed build"), "e2e-doomed")
    sign_in(page, "admin")
    row = page.get_by_role("row").filter(has_text="Doomed build")
    row.get_by_role("button", name="Delete Doomed build").click()
    confirm = page.get_by_role("dialog", name="Delete Doomed build?")
    expect(confirm).to_contain_text("e2e-doomed")
    shot(page, "workflow-delete-confirm")
    confirm.get_by_role("button", name="Delete workflow").click()
    expect(page.get_by_role("status")).to_contain_text("Deleted Doomed build")
    expect(row).to_have_count(0)
    assert ui_server.api.get("/workflows/e2e-doomed").status_code == 404
