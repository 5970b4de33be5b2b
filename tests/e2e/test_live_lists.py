"""Lists follow the global event stream (``GET /api/v1/events``) with no reload: a run started
through the API appears on an open, empty Executions page and ends there; a workflow paused
through the API shows as Paused on an open Workflows page.

Both pages poll on a timer only while they show an active run, so an empty Executions page and
a Workflows page whose runs have ended can only change through the stream. A marker set in
``window`` when the page loads must survive to the end: a reload would wipe it.
"""

from __future__ import annotations

import re
import time
from pathlib import Path

from playwright.sync_api import Page, expect

from tests.e2e.conftest import UiServer, shot, sign_in

PROBE = """
id: e2e-live
name: Live list probe
steps:
  - id: hold
    type: script
    shell: sh
    env: {GO: "GO_PATH"}
    run: |
      n=0
      while [ ! -e "$GO" ] && [ $n -lt 600 ]; do sleep 0.1; n=$((n+1)); done
      echo "released"
"""

# The Executions page polls every 5 s while it shows an active run, on an interval that starts
# when the first active row arrives. A change seen sooner than this after the row appeared came
# through the stream.
SOONER_THAN_POLL_MS = 4_000


def mark_page(page: Page) -> None:
    """Set a marker in ``window`` that only a reload or navigation away could remove."""
    page.evaluate("() => { window.__liveMarker = 'no-reload'; }")


def assert_not_reloaded(page: Page) -> None:
    assert page.evaluate("() => window.__liveMarker") == "no-reload", "the page was reloaded"


def test_lists_update_live_from_the_event_stream(
    page: Page, ui_server: UiServer, tmp_path: Path
) -> None:
    go = tmp_path / "go"
    workflow_id = "e2e-live"
    ui_server.put_workflow(PROBE.replace("GO_PATH", str(go)), workflow_id)
    sign_in(page, "olga")

    # An empty list of this workflow's runs: nothing active, so no timer polls it.
    with page.expect_response(lambda r: r.url.endswith("/api/v1/events") and r.ok):
        page.goto(f"/executions?workflow={workflow_id}")
    expect(page.get_by_text("0 executions")).to_be_visible()
    rows = page.locator(".grid-body [role=row]")
    expect(rows).to_have_count(0)
    mark_page(page)

    execution_id = ui_server.run(workflow_id)
    row = rows.filter(has=page.locator(f'a[href="/executions/{execution_id}"]'))
    expect(row).to_be_visible(timeout=5_000)
    badge = row.locator(".badge")
    expect(badge).to_have_attribute("data-status", re.compile("^(pending|running)$"))
    go.touch()  # the run ends now, while the page is open
    started = time.monotonic()
    expect(badge).to_have_attribute("data-status", "completed", timeout=SOONER_THAN_POLL_MS)
    waited_ms = (time.monotonic() - started) * 1000
    assert waited_ms < SOONER_THAN_POLL_MS, f"completed after {waited_ms:.0f} ms"
    expect(page.get_by_text("1 execution", exact=True)).to_be_visible()
    assert_not_reloaded(page)
    shot(page, "live-executions-completed")

    # The Workflows page narrowed to this workflow, whose only run has ended: no timer polls.
    with page.expect_response(lambda r: r.url.endswith("/api/v1/events") and r.ok):
        page.goto("/workflows?q=Live+list+probe")
    wf_row = page.get_by_role("row").filter(has_text="Live list probe")
    expect(wf_row.get_by_text("Active", exact=True)).to_be_visible()
    mark_page(page)
    paused = ui_server.api.post(f"/workflows/{workflow_id}/pause")
    assert paused.status_code == 200, paused.text
    expect(wf_row.get_by_text("Paused", exact=True)).to_be_visible(timeout=5_000)
    expect(wf_row.get_by_text("Active", exact=True)).to_have_count(0)
    assert_not_reloaded(page)
    shot(page, "live-workflows-paused")
