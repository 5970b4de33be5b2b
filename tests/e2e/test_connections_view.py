"""The Connections page in a real browser: an admin creates an http connection with a
write-only token, tests it against a real local HTTP server (passed, then failed with the
reason once the token is wrong), edits it keeping the token, disables it; a viewer has no
Connections tab. The screen passes axe."""

from __future__ import annotations

import re

from playwright.sync_api import Page, expect

from tests.e2e.conftest import UiServer, axe_scan, shot, sign_in
from tests.integration.connections.conftest import BEARER, ApiServer


def test_an_admin_creates_tests_edits_and_disables_a_connection(
    page: Page, ui_server: UiServer
) -> None:
    with ApiServer() as api_server:
        sign_in(page)
        page.get_by_role("link", name="Settings").click()
        page.get_by_role("link", name="Connections").click()
        expect(page.get_by_role("heading", name="Connections")).to_be_visible()

        page.get_by_role("button", name="New connection").click()
        dialog = page.get_by_role("dialog")
        dialog.get_by_label("Name").fill("e2e-api")
        dialog.get_by_label("Type").select_option("http")
        dialog.get_by_label("Base URL").fill(api_server.url)
        dialog.get_by_label("Auth").select_option("bearer")
        dialog.get_by_label("Bearer token").fill(BEARER)
        dialog.get_by_label("Description").fill("the local API")
        dialog.get_by_role("button", name="Create connection").click()

        row = page.locator('tr[data-connection="e2e-api"]')
        expect(row).to_contain_text("the local API")
        expect(row).to_contain_text("auth, base_url, token")
        expect(row).to_contain_text("never tested")
        row.get_by_role("button", name="Test e2e-api").click()
        expect(row.locator("[data-test-result]")).to_have_attribute("data-test-result", "passed")
        expect(page.get_by_text(re.compile(r"e2e-api: test passed"))).to_be_visible()

        # A wrong token, set through the API: the test fails and says why.
        ui_server.api.put(
            "/connections/e2e-api",
            json={
                "type": "http",
                "values": {"token": "wrong-token-x"},
                "keep": ["base_url", "auth"],
            },
        ).raise_for_status()
        page.reload()
        row.get_by_role("button", name="Test e2e-api").click()
        expect(row.locator("[data-test-result]")).to_have_attribute("data-test-result", "failed")
        expect(row).to_contain_text("the server refused the credentials")
        expect(page.get_by_text(re.compile(r"Test of e2e-api failed"))).to_be_visible()
        shot(page, "connections-failed-test")

        # Edit: a new token, the other fields left empty keep their values.
        row.get_by_role("button", name="Edit e2e-api").click()
        dialog = page.get_by_role("dialog")
        expect(dialog.get_by_label("Base URL")).to_have_attribute(
            "placeholder", "set — leave empty to keep"
        )
        dialog.get_by_label("Bearer token").fill(BEARER)
        shot(page, "connections-edit")
        dialog.get_by_role("button", name="Save").click()
        expect(dialog).to_be_hidden()
        expect(row).to_contain_text("never tested")  # new values: the old result is cleared
        row.get_by_role("button", name="Test e2e-api").click()
        expect(row.locator("[data-test-result]")).to_have_attribute("data-test-result", "passed")

        row.get_by_role("button", name="Disable").click()
        expect(row).to_contain_text("disabled")
        assert BEARER not in page.content()
        axe_scan(page, "connections")
        shot(page, "connections")


def test_a_viewer_sees_no_connections_tab(page: Page, ui_server: UiServer) -> None:
    sign_in(page, "vera")
    page.goto("/settings/tokens")
    expect(page.get_by_role("navigation", name="Settings")).to_be_visible()
    expect(page.get_by_role("link", name="Connections")).to_have_count(0)
