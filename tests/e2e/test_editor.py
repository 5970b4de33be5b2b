"""The workflow editor in a real browser against a real server: the server's findings at their
lines as you type, publish and the new version number; a workflow built in the visual builder
alone, published and run to completion; the diff of two versions and restoring one."""

from __future__ import annotations

import re

from playwright.sync_api import FloatRect, Locator, Page, expect

from tests.e2e.conftest import UiServer, axe_scan, shot, sign_in, wait_status

V1 = """# Says hello; edited in the e2e test of the editor.
id: e2e-ed-hello
name: Editor hello
steps:
  - id: say
    type: script # the greeting
    shell: sh
    run: echo hi
"""

# Line 11 asks for an outcome a script step cannot have.
BROKEN = """# Says hello; edited in the e2e test of the editor.
id: e2e-ed-hello
name: Editor hello
steps:
  - id: say
    type: script # the greeting
    shell: sh
    run: echo hi
  - id: after
    type: script
    needs: [say.approved]
    shell: sh
    run: echo after
"""

FIXED = BROKEN.replace("needs: [say.approved]", "needs: [say]")

# Valid, with two warnings: line 8 names a connection that does not exist, line 9 has markup in
# a script body, which is never templated.
WARNED = V1.replace(
    "    run: echo hi\n", '    connection: nope-ssh\n    run: echo "hi {{ params.whom }}"\n'
)


def editor(page: Page) -> Locator:
    return page.get_by_test_id("yaml-editor").locator(".cm-content")


def replace_text(page: Page, text: str) -> None:
    """Select all in the editor and put ``text`` in its place (as a paste does)."""
    editor(page).click()
    page.keyboard.press("Control+a")
    page.keyboard.insert_text(text)


def test_an_error_shows_at_its_line_and_the_fix_publishes_version_2(
    page: Page, ui_server: UiServer
) -> None:
    ui_server.put_workflow(V1, "e2e-ed-hello")
    sign_in(page)
    page.get_by_role("link", name="Edit Editor hello").click()
    expect(page.get_by_role("heading", name="Edit Editor hello")).to_be_visible()
    expect(editor(page)).to_contain_text("# the greeting")
    expect(page.get_by_text("✓ Valid")).to_be_visible()
    expect(page.get_by_test_id("dag-preview").locator(".flow-node")).to_have_count(1)

    # Completion from the JSON Schema: keys of a script step, with their docs.
    editor(page).click()
    page.keyboard.press("Control+End")
    page.keyboard.insert_text("    she")
    page.keyboard.type("l")
    completions = page.locator(".cm-tooltip-autocomplete")
    expect(completions).to_contain_text("shell")
    shot(page, "editor_completion")
    page.keyboard.press("Escape")
    # Hover docs: what `shell` means.
    page.locator(".cm-line", has_text="shell: sh").first.get_by_text("shell").hover()
    expect(page.locator(".cm-schema-doc")).to_contain_text("Interpreter")
    shot(page, "editor_hover_docs")

    replace_text(page, BROKEN)
    problems = page.get_by_test_id("problems")
    expect(problems).to_contain_text("line 11")
    expect(problems).to_contain_text("has no outcome 'approved'")
    # Drawn in the text at that line, and in the gutter.
    expect(page.locator(".cm-lintRange-error")).to_contain_text("say.approved")
    expect(page.locator(".cm-lint-marker-error")).to_have_count(1)
    expect(page.get_by_text("✕ 1 problem")).to_be_visible()
    expect(page.get_by_text("● Unsaved changes")).to_be_visible()
    shot(page, "editor_error_at_line")

    # Warnings come from the same validation as you type (not only after a publish), at the
    # lines they are about; the definition is valid all the same.
    replace_text(page, WARNED)
    expect(problems).to_contain_text("line 8 warning steps[0].connection")
    expect(problems).to_contain_text("connection 'nope-ssh' does not exist")
    expect(problems).to_contain_text("line 9 warning steps[0].run")
    expect(problems).to_contain_text("run is not templated")
    expect(page.locator(".cm-lintRange-warning").first).to_contain_text("nope-ssh")
    expect(page.get_by_text("✓ Valid")).to_be_visible()

    replace_text(page, FIXED)
    expect(page.get_by_text("✓ Valid")).to_be_visible()
    expect(page.locator(".cm-lintRange-error")).to_have_count(0)
    expect(page.get_by_test_id("dag-preview").locator(".flow-node")).to_have_count(2)
    page.get_by_role("button", name="Publish").click()
    expect(page.get_by_test_id("latest-version")).to_have_text("Version 2 published")
    expect(page.get_by_text("Published version 2")).to_be_visible()
    expect(page.locator(".save-state")).to_have_text("Draft saved")
    version = ui_server.api.get("/workflows/e2e-ed-hello/versions/2").json()
    assert version["yaml"] == FIXED  # the text as written, comments included
    shot(page, "editor_published_v2")
    axe_scan(page, "workflow editor")

    # Run test: a run of the draft in the run dialog.
    replace_text(page, FIXED.replace("echo after", "echo tested"))
    page.get_by_role("button", name="▶ Run test").click()
    dialog = page.get_by_role("dialog", name="Test run of Editor hello (draft)")
    dialog.get_by_role("button", name="▶ Start").click()
    expect(dialog.get_by_text("Completed").first).to_be_visible()
    runs = ui_server.api.get("/executions", params={"workflow": "e2e-ed-hello"}).json()["items"]
    assert [r["test_run"] for r in runs] == [True]
    dialog.get_by_role("button", name="Close").first.click()

    # Leaving with unsaved changes asks first.
    replace_text(page, FIXED.replace("echo after", "echo unsaved"))
    page.get_by_role("link", name="Executions").click()
    guard = page.get_by_role("dialog", name="Leave without saving?")
    expect(guard).to_be_visible()
    guard.get_by_role("button", name="Keep it").click()
    expect(page).to_have_url(re.compile(r"/workflows/e2e-ed-hello/edit$"))
    # The back button cannot be held: coming back offers the unsaved text again.
    page.go_back()
    expect(page.get_by_role("heading", name="Workflows")).to_be_visible()
    page.go_forward()
    page.get_by_role("button", name="Bring them back").click()
    expect(editor(page)).to_contain_text("echo unsaved")
    expect(page.get_by_text("● Unsaved changes")).to_be_visible()

    # Someone else saves the draft meanwhile: saving mine is refused, nothing is overwritten.
    theirs = "# changed elsewhere\n" + FIXED
    response = ui_server.api.put(
        "/workflows/e2e-ed-hello",
        content=theirs.encode(),
        headers={"Content-Type": "application/yaml"},
    )
    assert response.status_code == 200, response.text
    page.get_by_role("button", name="Save draft").click()
    conflict = page.get_by_role("alert").filter(has_text="someone else saved this draft")
    expect(conflict).to_be_visible()
    assert ui_server.api.get("/workflows/e2e-ed-hello").json()["draft_yaml"] == theirs
    shot(page, "editor_conflict")
    conflict.get_by_role("button", name="Load their draft (drops my changes)").click()
    expect(editor(page)).to_contain_text("# changed elsewhere")
    # Only a comment differs from version 2: nothing to publish.
    expect(page.locator(".save-state")).to_have_text("Draft saved")


def settled_box(handle: Locator) -> FloatRect:
    """The handle's box once the canvas stopped moving it (a change lays the graph out again
    and fits it to the pane)."""
    last = None
    for _ in range(50):
        box = handle.bounding_box()
        if box is not None and box == last:
            return box
        last = box
        handle.page.wait_for_timeout(100)  # the layout gives no event to wait for
    raise AssertionError(f"{handle} never stopped moving")


def drag_need(page: Page, source: str, target: str) -> None:
    """Drag from the source step's right handle to the target step's left handle."""
    canvas = page.get_by_test_id("builder-canvas")
    start = canvas.locator(f'.react-flow__node[data-id="{source}"] .react-flow__handle.source')
    end = canvas.locator(f'.react-flow__node[data-id="{target}"] .react-flow__handle.target')
    a = settled_box(start)
    b = settled_box(end)
    page.mouse.move(a["x"] + a["width"] / 2, a["y"] + a["height"] / 2)
    page.mouse.down()
    page.mouse.move(b["x"] + b["width"] / 2, b["y"] + b["height"] / 2, steps=12)
    page.mouse.up()


def test_a_workflow_built_in_the_visual_builder_alone_publishes_and_runs(
    page: Page, ui_server: UiServer
) -> None:
    sign_in(page)
    page.get_by_role("link", name="＋ New workflow").click()
    expect(page.get_by_role("heading", name="New workflow")).to_be_visible()
    page.get_by_role("tab", name="Visual builder").click()
    page.get_by_label("Id").fill("e2e-ed-built")
    page.get_by_label("Name").fill("Built by clicking")
    page.get_by_label("Name").press("Tab")

    palette = page.get_by_role("complementary", name="Step types")
    canvas = page.get_by_test_id("builder-canvas")
    props = page.get_by_role("complementary", name="Properties")
    palette.get_by_role("button", name="script").click()
    expect(canvas.locator(".flow-node")).to_have_count(1)
    props.get_by_label(re.compile("^id")).fill("build")
    props.get_by_label(re.compile("^id")).press("Enter")
    expect(canvas.locator('.react-flow__node[data-id="build"]')).to_be_visible()
    props.get_by_label(re.compile("^run")).fill('echo "built=yes" >> "$OPSFLOW_OUTPUT"')
    props.get_by_label(re.compile("^run")).blur()

    palette.get_by_role("button", name="approval").click()
    expect(canvas.locator(".flow-node")).to_have_count(2)
    palette.get_by_role("button", name="script").click()
    expect(canvas.locator(".flow-node")).to_have_count(3)
    props.get_by_label(re.compile("^run")).fill("echo shipped")
    props.get_by_label(re.compile("^run")).blur()
    # A step added by mistake goes with the Delete key (it is selected once added), another
    # with the form's button.
    palette.get_by_role("button", name="http").click()
    expect(canvas.locator(".flow-node")).to_have_count(4)
    page.keyboard.press("Delete")
    expect(canvas.locator(".flow-node")).to_have_count(3)
    palette.get_by_role("button", name="notify").click()
    expect(canvas.locator(".flow-node")).to_have_count(4)
    props.get_by_role("button", name="Delete step").click()
    expect(canvas.locator(".flow-node")).to_have_count(3)
    page.get_by_role("button", name="Auto-layout").click()

    # build -> approval (its success) by dragging; approval -> script (approved) the same way.
    drag_need(page, "build", "approval")
    choose = page.get_by_role("dialog", name="approval waits for build")
    expect(choose.get_by_role("button")).to_have_count(4)  # success, failed, always + Close
    choose.get_by_role("button", name=re.compile("^success")).click()
    expect(canvas.locator(".react-flow__edge")).to_have_count(1)
    drag_need(page, "approval", "script")
    choose = page.get_by_role("dialog", name="script waits for approval")
    expect(choose).to_contain_text("rejected")
    expect(choose).not_to_contain_text("failed")
    choose.get_by_role("button", name=re.compile("^approved")).click()
    expect(canvas.locator(".react-flow__edge")).to_have_count(2)

    # A circle is refused with the validator's words, and nothing is written.
    drag_need(page, "script", "build")
    page.get_by_role("dialog", name="build waits for script").get_by_role(
        "button", name=re.compile("^success")
    ).click()
    expect(page.get_by_role("alert")).to_contain_text("needs form a cycle")
    expect(canvas.locator(".react-flow__edge")).to_have_count(2)
    expect(page.get_by_text("✓ Valid")).to_be_visible()
    shot(page, "builder_three_steps")
    axe_scan(page, "visual builder")

    page.get_by_role("tab", name="YAML").click()
    expect(editor(page)).to_contain_text("needs: [approval.approved]")
    page.get_by_role("button", name="Publish").click()
    expect(page.get_by_test_id("latest-version")).to_have_text("Version 1 published")
    expect(page).to_have_url(re.compile(r"/workflows/e2e-ed-built/edit"))
    published = ui_server.api.get("/workflows/e2e-ed-built/versions/1").json()
    assert [s["id"] for s in published["definition"]["steps"]] == ["build", "approval", "script"]
    assert published["definition"]["steps"][2]["needs"] == ["approval.approved"]

    page.get_by_role("link", name="Workflow page").click()
    expect(page.get_by_role("heading", name="Built by clicking", exact=True)).to_be_visible()
    page.get_by_role("button", name="▶ Run", exact=True).click()
    dialog = page.get_by_role("dialog", name="Run Built by clicking")
    dialog.get_by_role("button", name="▶ Start").click()
    dialog.get_by_role("button", name="Approve").click()
    page.get_by_role("dialog").last.get_by_role("button", name="Approve").click()
    items = ui_server.api.get("/executions", params={"workflow": "e2e-ed-built"}).json()["items"]
    wait_status(ui_server, items[0]["id"], "completed")
    execution = ui_server.execution(items[0]["id"])
    steps = execution["steps"]
    assert isinstance(steps, list)
    assert [(s["id"], s["status"]) for s in steps] == [
        ("build", "succeeded"),
        ("approval", "approved"),
        ("script", "succeeded"),
    ]
    dialog.get_by_role("button", name="View details").click()
    expect(page).to_have_url(re.compile(f"/executions/{items[0]['id']}"))
    expect(page.get_by_test_id("dag").locator(".dag-node")).to_have_count(3)
    expect(page.get_by_text("Completed").first).to_be_visible()
    shot(page, "builder_run_completed")


V_OLD = """# Version one: check, then deploy.
id: e2e-ed-diff
name: Diffed
steps:
  - id: check
    type: script
    run: echo check
  - id: deploy
    type: script
    needs: [check]
    run: echo deploy v1
  - id: old-notify
    type: notify
    needs: [deploy]
    channel: ops
    message: deployed
"""

V_NEW = """id: e2e-ed-diff
name: Diffed
steps:
  - id: check
    type: script
    run: echo check
  - id: deploy
    type: script
    needs: [check]
    run: echo deploy v2
  - id: smoke
    type: http
    needs: [deploy]
    url: https://example.com/health
"""


def test_two_versions_diff_and_one_is_restored_as_the_draft(
    page: Page, ui_server: UiServer
) -> None:
    ui_server.put_workflow(V_OLD, "e2e-ed-diff")
    ui_server.put_workflow(V_NEW, "e2e-ed-diff")
    sign_in(page)
    page.goto("/workflows/e2e-ed-diff/edit?tab=versions")
    rows = page.get_by_role("table").get_by_role("row")
    expect(rows).to_have_count(3)
    expect(rows.nth(1)).to_contain_text("v2")
    expect(rows.nth(1)).to_contain_text("admin")
    expect(page.get_by_role("heading", name="Changes from v1 to v2")).to_be_visible()
    graph = page.get_by_test_id("diff-graph")
    expect(graph.locator('.flow-node.mark-added[data-step="smoke"]')).to_be_visible()
    expect(graph.locator('.flow-node.mark-removed[data-step="old-notify"]')).to_be_visible()
    expect(graph.locator('.flow-node.mark-changed[data-step="deploy"]')).to_be_visible()
    expect(graph.locator('.flow-node[data-step="check"]')).not_to_have_class(re.compile("mark-"))
    diff = page.get_by_test_id("text-diff")
    expect(diff.locator(".diff-add", has_text="echo deploy v2")).to_have_count(1)
    expect(diff.locator(".diff-del", has_text="# Version one")).to_have_count(1)
    expect(page.get_by_text("+ 1 step added")).to_be_visible()
    expect(page.get_by_text("− 1 step removed")).to_be_visible()
    shot(page, "versions_diff")
    axe_scan(page, "version diff")

    page.get_by_role("button", name="View v1").click()
    expect(page).to_have_url(re.compile(r"v=1"))
    view = page.get_by_test_id("yaml-editor")
    expect(view).to_contain_text("# Version one: check, then deploy.")
    expect(view.locator(".cm-content")).to_have_attribute("contenteditable", "false")
    shot(page, "versions_view_v1")

    page.get_by_role("button", name="Restore v1 as draft").click()
    page.get_by_role("dialog", name="Restore version 1?").get_by_role(
        "button", name="Restore v1 as draft"
    ).click()
    expect(page.get_by_text("Version 1 is the draft now")).to_be_visible()
    expect(page.locator(".save-state")).to_have_text("Draft saved, not published")
    expect(editor(page)).to_contain_text("# Version one: check, then deploy.")
    detail = ui_server.api.get("/workflows/e2e-ed-diff").json()
    assert detail["draft_yaml"].startswith("# Version one")
    assert detail["has_unpublished_changes"] is True
