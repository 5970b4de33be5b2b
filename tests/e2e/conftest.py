"""The web UI in a real browser: Debian's Chromium driven by Playwright against a real
``opsflow server`` (SQLite, temp data dir) that serves the production build at ``/``.

One server and one browser for the package (a start costs seconds); each test gets its own
browser context (fresh cookies) and its own workflows, and leaves a screenshot in
``tests/e2e/artifacts/``. `axe_scan` injects axe-core (from ``web/node_modules``) and fails on
serious or critical violations.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from playwright.sync_api import Browser, Page, Playwright, expect, sync_playwright

import opsflow
from opsflow.cli.bundle import pack_bundle
from tests.conftest import BACKENDS
from tests.servers import clean_env, fresh_database, run_server

ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = Path(__file__).resolve().parent / "artifacts"
CHROMIUM = "/usr/bin/chromium"
AXE = ROOT / "web" / "node_modules" / "axe-core" / "axe.min.js"
BUILD = Path(opsflow.__file__).parent / "web_dist"
ADMIN_PASSWORD = "admin-pw-for-e2e"
PASSWORDS = {"admin": ADMIN_PASSWORD, "olga": "operator-pw-123", "vera": "viewer-pw-123"}

expect.set_options(timeout=30_000)


@dataclass
class UiServer:
    url: str
    api: httpx.Client
    data_dir: Path

    def put_workflow(self, yaml_text: str, workflow_id: str) -> None:
        """Create (or replace) a workflow from YAML (its ``id:`` set to ``workflow_id``) and
        publish it."""
        yaml_text = re.sub(r"(?m)^id: .*$", f"id: {workflow_id}", yaml_text, count=1)
        response = self.api.put(
            f"/workflows/{workflow_id}",
            params={"publish": "true"},
            content=yaml_text.encode(),
            headers={"Content-Type": "application/yaml"},
        )
        assert response.status_code in (200, 201), response.text

    def put_bundle(self, workflow_dir: Path, workflow_id: str) -> None:
        """Create and publish a workflow from a directory: its ``workflow.yaml`` and the files
        beside it (a Terraform module, scripts) as the workflow's bundle."""
        files: dict[str, tuple[str | None, str | bytes] | tuple[str | None, bytes, str]] = {
            "definition": (None, (workflow_dir / "workflow.yaml").read_text()),
            "bundle": ("bundle.tar.gz", pack_bundle(workflow_dir), "application/gzip"),
        }
        response = self.api.put(
            f"/workflows/{workflow_id}", params={"publish": "true"}, files=files
        )
        assert response.status_code in (200, 201), response.text

    def run(self, workflow_id: str, params: dict[str, object] | None = None) -> str:
        response = self.api.post(f"/workflows/{workflow_id}/runs", json={"params": params or {}})
        assert response.status_code == 201, response.text
        return str(response.json()["id"])

    def execution(self, execution_id: str) -> dict[str, object]:
        response = self.api.get(f"/executions/{execution_id}")
        assert response.status_code == 200, response.text
        data: dict[str, object] = response.json()
        return data


@pytest.fixture(scope="package", params=["sqlite"])
def e2e_db_url(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[str]:
    yield from fresh_database(request, tmp_path_factory, "e2e")


@pytest.fixture(scope="package")
def ui_server(e2e_db_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[UiServer]:
    """``opsflow server`` on SQLite with its local agent, an admin, an operator and a viewer."""
    yield from serve(e2e_db_url, tmp_path_factory)


@pytest.fixture(scope="package", params=[b for b in BACKENDS if b == "postgresql"])
def pg_ui_server(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[UiServer]:
    """The same on PostgreSQL (for one smoke test)."""
    for url in fresh_database(request, tmp_path_factory, "e2epg"):
        yield from serve(url, tmp_path_factory)


def serve(db_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[UiServer]:
    """Start ``opsflow server`` on ``db_url`` with the users of `PASSWORDS`; stop it after."""
    if not (BUILD / "index.html").is_file():
        pytest.fail(f"the web UI is not built in {BUILD}: run `make web` (or `make test`)")
    data_dir = tmp_path_factory.mktemp("e2e-data")
    env = {**clean_env(), "OPSFLOW_ADMIN_PASSWORD": ADMIN_PASSWORD}
    with (
        run_server(db_url, data_dir, "--concurrency", "4", env=env) as running,
        httpx.Client(
            base_url=f"{running.url}/api/v1",
            headers={"Authorization": f"Bearer {running.token}"},
            timeout=30,
        ) as api,
    ):
        for name, role in (("olga", "operator"), ("vera", "viewer")):
            created = api.post(
                "/users", json={"name": name, "role": role, "password": PASSWORDS[name]}
            )
            assert created.status_code == 201, created.text
        yield UiServer(running.url, api, data_dir)


@pytest.fixture(scope="package")
def playwright() -> Iterator[Playwright]:
    with sync_playwright() as pw:
        yield pw


@pytest.fixture(scope="package")
def browser(playwright: Playwright) -> Iterator[Browser]:
    if not Path(CHROMIUM).exists():
        pytest.fail(f"{CHROMIUM} is missing: `apt-get install chromium` (.ci/run does it)")
    browser = playwright.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
    yield browser
    browser.close()


@pytest.fixture
def page(browser: Browser, request: pytest.FixtureRequest) -> Iterator[Page]:
    """A fresh browser context at 1280x860 on the test's server (``pg_ui_server`` when the test
    asks for it, else ``ui_server``); a screenshot of the last screen when the test ends."""
    fixture = "pg_ui_server" if "pg_ui_server" in request.fixturenames else "ui_server"
    server: UiServer = request.getfixturevalue(fixture)
    context = browser.new_context(viewport={"width": 1280, "height": 860}, base_url=server.url)
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    yield page
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / f"{request.node.name}.png"), full_page=True)
    context.close()
    assert not errors, f"uncaught errors in the page: {errors}"


def shot(page: Page, name: str) -> None:
    """A screenshot of the current screen as an artifact (beside the one taken at the end)."""
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)


def sign_in(page: Page, user: str = "admin") -> None:
    """Log in through the form, as a person does."""
    page.goto("/login")
    page.get_by_label("Username").fill(user)
    page.get_by_label("Password").fill(PASSWORDS[user])
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("heading", name="Workflows")).to_be_visible()


def wait_status(server: UiServer, execution_id: str, *wanted: str, timeout: float = 60) -> None:
    """Wait until the execution's status is one of ``wanted`` (read from the API)."""
    deadline = time.monotonic() + timeout
    status = None
    while time.monotonic() < deadline:
        status = server.execution(execution_id)["status"]
        if status in wanted:
            return
        time.sleep(0.2)  # polling the API is the only signal a test process has here
    raise AssertionError(f"{execution_id} is {status}, not {wanted}")


def axe_scan(page: Page, screen: str) -> None:
    """No serious or critical accessibility violation on the current screen."""
    page.add_script_tag(path=str(AXE))
    result = page.evaluate(
        "async () => (await axe.run(document, {resultTypes: ['violations']})).violations"
        ".map(v => ({id: v.id, impact: v.impact, help: v.help,"
        " nodes: v.nodes.slice(0, 3).map(n => n.target.join(' '))}))"
    )
    bad = [v for v in result if v["impact"] in ("serious", "critical")]
    assert not bad, f"axe on {screen}:\n{json.dumps(bad, indent=2)}"
