"""The run dialog follows a short run to its end: a run that ends while the dialog's first read
is in flight, or right after a gate is approved in the dialog, shows its final status at once
(well before the 10 s fallback poll), and the dialog does not reopen the stream of an ended run.
"""

from __future__ import annotations

import re

from playwright.sync_api import Page, Request, expect

from tests.e2e.conftest import UiServer, sign_in

GATED = """
id: e2e-rd-gated
name: Quick gate
steps:
  - id: build
    type: script
    shell: sh
    run: echo built
  - id: approval
    type: approval
    needs: [build]
    message: Ship it?
  - id: ship
    type: script
    shell: sh
    needs: [approval.approved]
    run: echo shipped
"""

QUICK = """
id: e2e-rd-quick
name: Quick one
steps:
  - id: only
    type: script
    shell: sh
    run: echo done
"""

ROUNDS = 3
# Under the 10 s poll that covers a stream that cannot connect: the stream's end must do it.
PROMPT_MS = 6_000


def _streams(page: Page) -> dict[str, int]:
    """Counts of `GET .../executions/<id>/events` requests the page makes, by execution id."""
    counts: dict[str, int] = {}

    def seen(request: Request) -> None:
        match = re.search(r"/api/v1/executions/([^/]+)/events", request.url)
        if match:
            counts[match.group(1)] = counts.get(match.group(1), 0) + 1

    page.on("request", seen)
    return counts


def _run_rounds(page: Page, name: str, approve: bool) -> None:
    streams = _streams(page)
    dialog = page.get_by_role("dialog", name=f"Run {name}")
    for _ in range(ROUNDS):
        dialog.get_by_role("button", name="▶ Start").click()
        link = dialog.locator(".run-status a")
        expect(link).to_have_text(re.compile(r"^[0-9a-f]+$"))
        execution_id = link.inner_text()
        if approve:
            dialog.get_by_role("button", name="Approve").click()
            page.get_by_role("dialog", name="Approve approval").get_by_role(
                "button", name="Approve"
            ).click()
        expect(dialog.locator(".run-status .badge")).to_have_attribute(
            "data-status", "completed", timeout=PROMPT_MS
        )
        expect(dialog.get_by_text("100% of steps finished")).to_be_visible()
        # One stream per run: an ended run's stream is not opened again. (Before the fix the
        # dialog reopened it over and over, up to 40 times a run; the half second is the window
        # in which a wrong reopen, which follows the end within milliseconds, would show.)
        page.wait_for_timeout(500)
        assert streams.get(execution_id) == 1, streams
        dialog.get_by_role("button", name="Run again").click()


def test_a_gate_approved_in_the_run_dialog_shows_completed_at_once(
    page: Page, ui_server: UiServer
) -> None:
    ui_server.put_workflow(GATED, "e2e-rd-gated")
    sign_in(page)
    page.goto("/workflows/e2e-rd-gated")
    page.get_by_role("button", name="▶ Run", exact=True).click()
    _run_rounds(page, "Quick gate", approve=True)


def test_a_run_that_ends_at_once_shows_completed_in_the_run_dialog(
    page: Page, ui_server: UiServer
) -> None:
    ui_server.put_workflow(QUICK, "e2e-rd-quick")
    sign_in(page)
    page.goto("/workflows/e2e-rd-quick")
    page.get_by_role("button", name="▶ Run", exact=True).click()
    _run_rounds(page, "Quick one", approve=False)
