"""``/`` and ``/api/v1/docs`` in a real browser with no network beyond the server: the web UI
answers at ``/`` and Swagger UI renders the API from assets served by the package (issue 13,
item 17: it loaded from a CDN and was blank offline)."""

from __future__ import annotations

from urllib.parse import urlsplit

from playwright.sync_api import Page, Route, expect

from tests.e2e.conftest import UiServer, shot


def _offline(page: Page, server: UiServer) -> list[str]:
    """Abort every request that leaves the server (as on a machine without internet); the
    aborted URLs are returned for the test to assert on."""
    own = urlsplit(server.url).netloc
    left: list[str] = []

    def route(route: Route) -> None:
        url = route.request.url
        if urlsplit(url).netloc == own or url.startswith(("data:", "blob:")):
            route.continue_()
        else:
            left.append(url)
            route.abort("internetdisconnected")

    page.route("**/*", route)
    return left


def _docs_and_root_work_offline(page: Page, server: UiServer) -> None:
    left = _offline(page, server)
    page.goto("/api/v1/docs")
    # Swagger UI drew the API: its title and an operation of ours, expandable.
    expect(page.locator(".swagger-ui .info .title")).to_contain_text("opsflow")
    operation = page.locator(".opblock-summary-path", has_text="/api/v1/workflows").first
    expect(operation).to_be_visible()
    shot(page, "api-docs-offline")
    page.goto("/")
    expect(page.get_by_label("Username")).to_be_visible()
    assert left == [], f"pages asked for assets outside the server: {left}"


def test_root_and_api_docs_work_offline(page: Page, ui_server: UiServer) -> None:
    _docs_and_root_work_offline(page, ui_server)


def test_root_and_api_docs_work_offline_on_postgresql(page: Page, pg_ui_server: UiServer) -> None:
    _docs_and_root_work_offline(page, pg_ui_server)
