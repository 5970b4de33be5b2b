"""An operator's day in the browser: log in, run with params and watch the log, approve,
cancel, retry, filter the history; a viewer cannot run; a 100,000-line log stays usable."""

from __future__ import annotations

import re
from pathlib import Path

from playwright.sync_api import Page, expect

from tests.e2e.conftest import UiServer, axe_scan, shot, sign_in, wait_status

GREET = """
id: e2e-greet
name: Greeting with a gate
description: Prints a greeting line by line, asks for approval, then finishes.
labels: {suite: e2e}
params:
  who: {type: string, required: true, description: Who to greet.}
  lines: {type: integer, default: 5, minimum: 1, maximum: 50, description: Lines to print.}
steps:
  - id: greet
    type: script
    shell: sh
    env: {WHO: "{{ params.who }}", LINES: "{{ params.lines }}", GO: "GO_PATH"}
    run: |
      i=1
      while [ $i -le "$LINES" ]; do echo "hello $WHO line $i"; i=$((i+1)); done
      n=0
      while [ ! -e "$GO" ] && [ $n -lt 600 ]; do sleep 0.1; n=$((n+1)); done
      echo "released"
  - id: gate
    type: approval
    needs: [greet]
    message: "Send the greeting to {{ params.who }}?"
  - id: finish
    type: script
    shell: sh
    needs: [gate]
    run: echo "all done"
"""

SLOW = """
id: e2e-slow
name: Slow job
steps:
  - id: wait
    type: script
    shell: sh
    run: |
      echo "waiting for a long time"
      sleep 300
"""

FLAKY = """
id: e2e-flaky
name: Fails once
steps:
  - id: flaky
    type: script
    shell: sh
    env: {MARK: "MARK_PATH"}
    run: |
      if [ -f "$MARK" ]; then echo "second try works"; exit 0; fi
      touch "$MARK"
      echo "first try fails" >&2
      exit 3
"""

FLOOD = """
id: e2e-flood
name: Long log
steps:
  - id: flood
    type: script
    shell: sh
    run: seq 1 100000 | sed 's/^/row /'
"""


def greet(go: Path) -> str:
    """The gated greeting; its first step ends once the file ``go`` exists."""
    return GREET.replace("GO_PATH", str(go))


def banner(page: Page):  # type: ignore[no-untyped-def]
    return page.locator("header.banner .badge").first


def test_login_shows_errors_then_the_workflows(
    page: Page, ui_server: UiServer, tmp_path: Path
) -> None:
    ui_server.put_workflow(greet(tmp_path), "e2e-greet")
    page.goto("/workflows")
    expect(page).to_have_url(re.compile(r"/login\?next="))
    axe_scan(page, "login")
    page.get_by_label("Username").fill("admin")
    page.get_by_label("Password").fill("wrong password")
    page.get_by_role("button", name="Sign in").click()
    alert = page.get_by_role("alert")
    expect(alert).to_be_visible()
    expect(alert).not_to_contain_text("{")
    expect(alert).to_have_text("Wrong user name or password.")  # one message, not two
    expect(page.get_by_text("Authentication required")).to_have_count(0)
    shot(page, "login-wrong-password")
    sign_in(page, "admin")
    row = page.get_by_role("row").filter(has_text="Greeting with a gate")
    expect(row.get_by_text("Active")).to_be_visible()
    expect(row.get_by_role("img", name="Manual")).to_be_visible()
    page.keyboard.press("/")
    expect(page.get_by_role("searchbox", name="Search workflows")).to_be_focused()
    page.keyboard.type("suite=e2e")
    expect(page).to_have_url(re.compile(r"q=suite"))
    expect(page.get_by_role("row")).to_have_count(2)
    axe_scan(page, "workflows")
    page.reload()  # the session is a cookie: a reload stays signed in, the search stays
    expect(page.get_by_role("searchbox", name="Search workflows")).to_have_value("suite=e2e")


def test_the_workflows_list_fits_a_420px_window(
    page: Page, ui_server: UiServer, tmp_path: Path
) -> None:
    ui_server.put_workflow(greet(tmp_path), "e2e-greet")
    page.set_viewport_size({"width": 420, "height": 900})
    sign_in(page, "admin")
    run = page.get_by_role("button", name="Run Greeting with a gate")
    expect(run).to_be_visible()
    assert page.evaluate("document.documentElement.scrollWidth") <= 420
    box = run.bounding_box()
    assert box is not None and box["x"] >= 0 and box["x"] + box["width"] <= 420, box
    shot(page, "workflows-420")
    run.click()
    dialog = page.get_by_role("dialog")
    expect(dialog.get_by_role("textbox").first).to_be_visible()
    assert page.evaluate("document.documentElement.scrollWidth") <= 420
    assert page.evaluate("window.scrollX") == 0
    shot(page, "workflows-420-run")


def layered(count: int, width: int = 8) -> str:
    """A workflow of ``count`` quick script steps in ranks of ``width``, each needing the step
    one rank before it."""
    steps = [
        f"  - id: s{i}\n    type: script\n    shell: sh\n    run: 'true'\n"
        + (f"    needs: [s{i - width}]\n" if i > width else "")
        for i in range(1, count + 1)
    ]
    return f"id: e2e-graph-{count}\nname: Graph of {count}\nsteps:\n" + "".join(steps)


NO_NODE_UNDER_THE_MAP = """() => {
  const map = document.querySelector('.react-flow__minimap');
  if (!map) return false;
  const m = map.getBoundingClientRect();
  const nodes = [...document.querySelectorAll('.react-flow__node')];
  return nodes.length > 0 && nodes.every((n) => {
    const r = n.getBoundingClientRect();
    return r.right <= m.left || r.left >= m.right || r.bottom <= m.top || r.top >= m.bottom;
  });
}"""


def test_the_graph_overview_map_only_for_large_graphs_in_wide_panes(
    page: Page, ui_server: UiServer
) -> None:
    ui_server.put_workflow(layered(40, width=4), "e2e-graph-40")  # wide: it fills the pane
    ui_server.put_workflow(layered(5), "e2e-graph-5")
    large = ui_server.run("e2e-graph-40")
    small = ui_server.run("e2e-graph-5")
    sign_in(page, "admin")
    page.goto(f"/executions/{small}")
    expect(page.get_by_role("group", name="Step s5")).to_be_visible()
    expect(page.locator(".react-flow__minimap")).to_have_count(0)
    page.goto(f"/executions/{large}")
    minimap_nodes = page.locator(".react-flow__minimap-node")
    expect(minimap_nodes).to_have_count(40)  # node shapes, not an empty box
    fill = minimap_nodes.first.evaluate("n => getComputedStyle(n).fill")
    assert fill not in ("", "none", "rgb(226, 226, 226)"), fill  # a status colour, not the grey
    shot(page, "graph-minimap-wide")
    # At 1600 px the fitted graph is wide enough to reach the map's corner: the fit leaves the
    # map a gutter, so no node lies under it (waits for the refit that follows the resize).
    viewport = page.locator(".react-flow__viewport")
    fitted_at_1280 = viewport.evaluate("v => v.style.transform")
    page.set_viewport_size({"width": 1600, "height": 900})
    page.wait_for_function(
        "t => document.querySelector('.react-flow__viewport').style.transform !== t",
        arg=fitted_at_1280,
    )
    assert page.evaluate(NO_NODE_UNDER_THE_MAP), "a node lies under the overview map"
    shot(page, "graph-minimap-1600")
    page.set_viewport_size({"width": 420, "height": 900})
    expect(page.locator(".react-flow__minimap")).to_have_count(0)
    shot(page, "graph-minimap-narrow")


def test_run_from_the_dialog_watch_logs_approve_and_complete(
    page: Page, ui_server: UiServer, tmp_path: Path
) -> None:
    go = tmp_path / "go"
    ui_server.put_workflow(greet(go), "e2e-greet")
    sign_in(page, "olga")
    page.get_by_role("button", name="Run Greeting with a gate").click()
    dialog = page.get_by_role("dialog")
    expect(dialog.get_by_label("lines")).to_have_value("5")
    dialog.get_by_label("lines").fill("99")
    dialog.get_by_role("button", name="Start").click()
    expect(dialog.get_by_text("Required: enter a value.")).to_be_visible()
    expect(dialog.get_by_text("Must be at most 50.")).to_be_visible()
    axe_scan(page, "run dialog")
    shot(page, "run-dialog-field-errors")
    dialog.get_by_label("who").fill("Ada")
    dialog.get_by_label("lines").fill("6")
    dialog.get_by_role("button", name="Start").click()
    expect(dialog.get_by_role("progressbar")).to_be_visible()
    expect(dialog.locator(".run-status .badge")).to_have_attribute("data-status", "running")
    expect(
        dialog.locator(".run-steps li").filter(has_text="greet").locator(".badge")
    ).to_have_attribute("data-status", "running")
    shot(page, "run-dialog-live")
    dialog.get_by_role("button", name="View details").click()

    expect(page).to_have_url(re.compile(r"/executions/[0-9a-f]+"))
    log = page.get_by_test_id("log-lines")
    expect(log).to_contain_text("hello Ada line 6")
    expect(log).not_to_contain_text("released")
    go.touch()  # the step prints its last line now, while the page is open: it streams in
    expect(log).to_contain_text("released")
    gate = page.locator(".step-item").filter(has=page.locator('[data-step="gate"]'))
    expect(gate.get_by_text("Waiting", exact=True)).to_be_visible()
    expect(banner(page)).to_have_attribute("data-status", re.compile("running|paused"))
    axe_scan(page, "execution detail")
    shot(page, "execution-waiting-at-gate")
    gate.get_by_role("button", name="Approve").click()
    page.get_by_role("dialog").get_by_label("Note (optional)").fill("fine by me")
    page.get_by_role("dialog").get_by_role("button", name="Approve").click()
    expect(banner(page)).to_have_attribute("data-status", "completed")
    expect(page.get_by_test_id("log-lines")).to_contain_text("all done")
    page.get_by_role("tab", name="Engine log").click()
    expect(page.get_by_role("tabpanel")).to_contain_text("gate")
    page.get_by_role("tab", name="Timeline").click()
    expect(page.get_by_role("tabpanel").get_by_role("listitem")).to_have_count(2)


def test_approve_in_place_on_the_approvals_page(
    page: Page, ui_server: UiServer, tmp_path: Path
) -> None:
    ui_server.put_workflow(greet(tmp_path), "e2e-greet")
    execution_id = ui_server.run("e2e-greet", {"who": "Grace", "lines": 1})
    sign_in(page, "olga")
    page.get_by_role("link", name="Approvals").click()
    card = page.locator("li.approval").filter(has_text="Send the greeting to Grace?")
    expect(card).to_be_visible()
    axe_scan(page, "approvals")
    shot(page, "approvals")
    card.get_by_role("button", name="Approve").click()
    page.get_by_role("dialog").get_by_role("button", name="Approve").click()
    expect(card).to_have_count(0)
    wait_status(ui_server, execution_id, "completed")


def test_cancel_a_running_execution(page: Page, ui_server: UiServer) -> None:
    ui_server.put_workflow(SLOW, "e2e-slow")
    execution_id = ui_server.run("e2e-slow")
    sign_in(page, "olga")
    page.goto(f"/executions/{execution_id}")
    expect(page.get_by_test_id("log-lines")).to_contain_text("waiting for a long time")
    page.get_by_role("button", name="Cancel…").click()
    dialog = page.get_by_role("dialog", name="Cancel this execution?")
    expect(dialog.get_by_role("button", name="Keep running")).to_be_focused()
    page.keyboard.press("Escape")
    expect(dialog).to_have_count(0)
    page.get_by_role("button", name="Cancel…").click()
    dialog.get_by_label(re.compile("^Force")).check()
    dialog.get_by_role("button", name="Cancel execution").click()
    expect(banner(page)).to_have_attribute("data-status", "cancelled")
    page.set_viewport_size({"width": 420, "height": 900})  # a narrow window stacks the panes
    expect(page.get_by_role("heading", name="Steps")).to_be_visible()


def test_retry_a_failed_step_and_see_it_succeed(
    page: Page, ui_server: UiServer, tmp_path: Path
) -> None:
    ui_server.put_workflow(FLAKY.replace("MARK_PATH", str(tmp_path / "mark")), "e2e-flaky")
    execution_id = ui_server.run("e2e-flaky")
    wait_status(ui_server, execution_id, "failed")
    sign_in(page, "olga")
    page.goto(f"/executions/{execution_id}")
    expect(banner(page)).to_have_attribute("data-status", "failed")
    page.get_by_role("radio", name="Errors").click()
    expect(page.get_by_test_id("log-lines")).to_contain_text("first try fails")
    page.get_by_role("button", name="Retry step").click()
    page.get_by_role("dialog").get_by_role("button", name="Retry").click()
    expect(banner(page)).to_have_attribute("data-status", "completed")
    page.get_by_role("radio", name="All").click()
    expect(page.get_by_test_id("log-lines")).to_contain_text("second try works")


HANDLED = """
id: e2e-handled
name: A failure handled by a step after it
steps:
  - id: breaks
    type: script
    shell: sh
    allow_skip: true
    run: echo "it broke" >&2; exit 4
  - id: tidy
    type: script
    shell: sh
    needs: [breaks.always]
    run: echo tidied
"""


def test_an_ended_completed_run_offers_no_retry_or_skip(page: Page, ui_server: UiServer) -> None:
    # the server refuses them ('the execution is completed; start a new run instead')
    ui_server.put_workflow(HANDLED, "e2e-handled")
    execution_id = ui_server.run("e2e-handled")
    wait_status(ui_server, execution_id, "completed")
    sign_in(page, "olga")
    page.goto(f"/executions/{execution_id}")
    expect(banner(page)).to_have_attribute("data-status", "completed")
    expect(page.locator('[data-step="breaks"]')).to_contain_text("Failed")
    for name in ("Retry step", "Retry from here", "Skip"):
        expect(page.get_by_role("button", name=name, exact=True)).to_have_count(0)


UNRESOLVED = """
id: e2e-unresolved
name: Calls a host that does not exist
steps:
  - id: call
    type: http
    url: http://api.example.invalid/health
"""


def test_errors_filter_shows_the_executors_failure_line(page: Page, ui_server: UiServer) -> None:
    ui_server.put_workflow(UNRESOLVED, "e2e-unresolved")
    execution_id = ui_server.run("e2e-unresolved")
    wait_status(ui_server, execution_id, "failed")
    sign_in(page, "olga")
    page.goto(f"/executions/{execution_id}")
    lines = page.get_by_test_id("log-lines")
    expect(lines).to_contain_text("GET http://api.example.invalid/health")
    page.get_by_role("radio", name="Errors").click()
    expect(lines).to_contain_text("name not resolved (api.example.invalid)")
    expect(lines).not_to_contain_text("GET http://")  # the request line is progress, not an error
    # the server says the line's level (error), and the panel marks it as such
    expect(lines.locator(".log-line.level-error")).to_contain_text("name not resolved")
    expect(lines).not_to_contain_text("No line matches this filter")
    shot(page, "logs-errors-filter")


def test_filter_history_by_status_and_date(page: Page, ui_server: UiServer, tmp_path: Path) -> None:
    ui_server.put_workflow(FLAKY.replace("MARK_PATH", str(tmp_path / "never")), "e2e-fails")
    failed = ui_server.run("e2e-fails")
    wait_status(ui_server, failed, "failed")
    sign_in(page, "olga")
    page.get_by_role("link", name="Executions").click()
    page.get_by_role("checkbox", name="Failed").click()
    expect(page.get_by_role("checkbox", name="Failed")).to_be_checked()
    expect(page).to_have_url(re.compile(r"status=failed"))
    page.get_by_label("Since").select_option("24h")
    expect(page).to_have_url(re.compile(r"since=24h"))
    rows = page.locator(".grid-body [role=row]")
    expect(rows.first).to_be_visible()
    for status in rows.locator(".badge").all():
        expect(status).to_have_attribute("data-status", "failed")
    axe_scan(page, "executions")
    shot(page, "executions-filtered")
    page.reload()  # the filters live in the URL
    expect(page.get_by_role("checkbox", name="Failed")).to_be_checked()
    expect(page.get_by_label("Since")).to_have_value("24h")
    rows.filter(has_text="e2e-fails").first.get_by_role("link").click()
    expect(page).to_have_url(re.compile(rf"/executions/{failed}"))
    page.go_back()
    expect(page.get_by_role("checkbox", name="Failed")).to_be_checked()


def test_a_viewer_cannot_run_or_change_anything(
    page: Page, ui_server: UiServer, tmp_path: Path
) -> None:
    ui_server.put_workflow(FLAKY.replace("MARK_PATH", str(tmp_path / "none")), "e2e-viewer")
    failed = ui_server.run("e2e-viewer")
    wait_status(ui_server, failed, "failed")
    sign_in(page, "vera")
    expect(page.get_by_role("row").filter(has_text="Fails once").first).to_be_visible()
    expect(page.get_by_role("button", name=re.compile("^Run "))).to_have_count(0)
    expect(page.get_by_role("button", name=re.compile("^Delete "))).to_have_count(0)
    page.goto(f"/executions/{failed}")
    expect(banner(page)).to_have_attribute("data-status", "failed")
    expect(page.get_by_role("button", name="Retry step")).to_have_count(0)
    expect(page.get_by_role("button", name="Cancel…")).to_have_count(0)


def test_a_100000_line_log_scrolls_and_searches(page: Page, ui_server: UiServer) -> None:
    ui_server.put_workflow(FLOOD, "e2e-flood")
    execution_id = ui_server.run("e2e-flood")
    wait_status(ui_server, execution_id, "completed", timeout=120)
    sign_in(page, "olga")
    page.goto(f"/executions/{execution_id}")
    log = page.get_by_test_id("log-lines")
    expect(log).to_contain_text("row 100000", timeout=90_000)
    expect(page.get_by_text(re.compile(r"^100,00\d lines"))).to_be_visible()
    assert log.locator(".log-line").count() < 300  # only what is on screen is in the DOM
    page.get_by_role("searchbox", name="Search the log").fill("row 77777")
    expect(page.get_by_test_id("search-count")).to_have_text("1 of 1")
    expect(log.locator(".current-hit")).to_contain_text("row 77777")
    page.get_by_role("searchbox", name="Search the log").fill("row 5000")
    expect(page.get_by_test_id("search-count")).to_have_text("1 of 11")
    page.get_by_role("button", name="Next match").click()
    expect(page.get_by_test_id("search-count")).to_have_text("2 of 11")
    expect(log.locator(".current-hit")).to_contain_text("row 50000")
    log.evaluate("el => { el.scrollTop = 0; }")
    expect(log).to_contain_text("row 1")
