"""Overseeing in the browser: the analytics page shows a seeded history's counts (checked
with SQL), an admin revokes a user's API token and its next call is refused, the audit log
filters by actor, and the agents, users, teams and secrets screens work and pass axe."""

from __future__ import annotations

import re
from datetime import UTC, datetime

import httpx
from playwright.sync_api import Page, expect
from sqlalchemy import text

from opsflow.store.db import Database
from tests.e2e.conftest import UiServer, axe_scan, shot, sign_in
from tests.history import seed_history

END = datetime(2026, 10, 1, tzinfo=UTC).timestamp()  # before every other test's runs


def test_analytics_page_shows_the_seeded_history(
    page: Page, ui_server: UiServer, e2e_db_url: str
) -> None:
    db = Database(e2e_db_url)
    seed_history(db, executions=600, until=END, days=20, workflows=5, seed=11)
    with db.read() as session:
        row = session.execute(
            text(
                "SELECT count(*) AS total,"
                " sum(CASE WHEN status = 'completed' THEN 1 ELSE 0 END) AS completed,"
                " sum(CASE WHEN status IN ('failed', 'error') THEN 1 ELSE 0 END) AS failed,"
                " count(DISTINCT workflow_id) AS workflows"
                " FROM executions WHERE created_at >= :s AND created_at < :u AND NOT test_run"
            ),
            {"s": END - 20 * 86400, "u": END},
        ).one()
    db.dispose()
    sign_in(page)
    page.get_by_role("link", name="Analytics").click()
    expect(page.get_by_role("heading", name="Analytics")).to_be_visible()
    page.get_by_label("Range").select_option("custom")
    page.get_by_label("From").fill("2026-09-11")
    page.get_by_label("To (inclusive)").fill("2026-09-30")
    total = page.locator('[data-kpi="total"]')
    expect(total.locator(".kpi-value")).to_have_text(f"{row.total:,}")
    expect(total.locator(".kpi-note")).to_have_text(
        f"{row.completed} completed · {row.failed} failed · "
        f"{row.total - row.completed - row.failed} other"
    )
    rate = f"{round(row.completed / row.total * 1000) / 10}%"  # every seeded run has ended
    expect(page.locator('[data-kpi="success"] .kpi-value')).to_have_text(rate)
    expect(page.locator('[data-kpi="workflows"] .kpi-value')).to_have_text(str(row.workflows))
    expect(page).to_have_url(re.compile(r"range=custom&from=2026-09-11&to=2026-09-30"))
    for chart in ("trend", "top", "steps", "agents", "waits"):
        expect(page.locator(f'[data-chart="{chart}"] svg').first).to_be_visible()
    # 20 stacked days, each with its three series drawn
    expect(page.locator('[data-chart="trend"] .recharts-bar-rectangle')).not_to_have_count(0)
    expect(page.locator('[data-chart="top"] tbody tr')).to_have_count(5)
    shot(page, "oversee-analytics")
    axe_scan(page, "analytics")

    page.get_by_role("combobox", name=re.compile("^Workflow")).select_option("wf-00")
    expect(page).to_have_url(re.compile(r"workflow=wf-00"))
    expect(page.locator('[data-chart="top"] tbody tr')).to_have_count(1)


def test_admin_revokes_a_token_and_its_next_call_is_refused(
    page: Page, ui_server: UiServer
) -> None:
    created = ui_server.api.post("/tokens", json={"user": "vera", "name": "vera-laptop"})
    assert created.status_code == 201, created.text
    token, token_id = created.json()["token"], created.json()["id"]
    me = httpx.get(f"{ui_server.url}/api/v1/me", headers={"Authorization": f"Bearer {token}"})
    assert me.status_code == 200 and me.json()["name"] == "vera"

    sign_in(page)
    page.goto("/settings/tokens")
    row = page.locator(f'tr[data-token="{token_id}"]')
    expect(row).to_contain_text("vera-laptop")
    expect(row).to_contain_text("active")
    shot(page, "oversee-tokens")
    axe_scan(page, "tokens")
    row.get_by_role("button", name="Revoke").click()
    dialog = page.get_by_role("dialog")
    expect(dialog).to_contain_text("vera's token")
    dialog.get_by_role("button", name="Revoke vera-laptop").click()
    expect(page.get_by_text("Revoked token vera-laptop of vera")).to_be_visible()
    expect(row).to_contain_text("revoked")

    refused = httpx.get(f"{ui_server.url}/api/v1/me", headers={"Authorization": f"Bearer {token}"})
    assert refused.status_code == 401, refused.text


def test_a_new_token_is_shown_once(page: Page, ui_server: UiServer) -> None:
    sign_in(page)
    page.goto("/settings/tokens")
    page.get_by_role("button", name="New token").click()
    dialog = page.get_by_role("dialog")
    dialog.get_by_label("User").select_option("olga")
    dialog.get_by_role("textbox", name=re.compile("^Name")).fill("olga-ci")
    dialog.get_by_role("button", name="Create token").click()
    secret = dialog.locator("[data-token-secret]")
    expect(secret).not_to_be_empty()
    value = secret.inner_text().strip()
    shot(page, "oversee-token-created")
    me = httpx.get(f"{ui_server.url}/api/v1/me", headers={"Authorization": f"Bearer {value}"})
    assert me.status_code == 200 and me.json()["name"] == "olga"
    dialog.get_by_role("button", name="Done").click()
    expect(page.locator("body")).not_to_contain_text(value)


def test_the_audit_page_filters_by_actor(page: Page, ui_server: UiServer) -> None:
    # olga signs in (auth.login by olga); the admin changes things (token.create, secret.create)
    sign_in(page, "olga")
    page.context.clear_cookies()
    ui_server.api.post("/tokens", json={"user": "olga", "name": "for-audit"})
    ui_server.api.put("/secrets/AUDIT_DEMO", json={"value": "s3cr3t-value-for-audit"})
    olga = ui_server.api.get("/audit", params={"actor": "olga", "limit": 1000}).json()

    sign_in(page)
    page.get_by_role("link", name="Audit").click()
    expect(page.get_by_role("heading", name="Audit log")).to_be_visible()
    expect(page.locator("tr[data-action]").first).to_be_visible()
    page.get_by_label("Actor").fill("olga")
    page.get_by_role("button", name="Filter", exact=True).click()
    expect(page).to_have_url(re.compile(r"actor=olga"))
    rows = page.locator("tbody tr[data-action]")
    expect(rows).to_have_count(min(olga["total"], 50))
    for actor in rows.locator("td:nth-child(2)").all_inner_texts():
        assert actor.strip() == "olga"
    expect(page.get_by_text(f"{olga['total']} entr")).to_be_visible()
    expect(rows.first).to_contain_text("signed in")
    shot(page, "oversee-audit")
    axe_scan(page, "audit")

    page.get_by_label("Actor").fill("")
    page.get_by_role("button", name="Filter", exact=True).click()
    expect(page).not_to_have_url(re.compile(r"actor="))
    page.get_by_label("Action").select_option("secret.")
    expect(page.locator('tbody tr[data-action="secret.create"]').first).to_be_visible()
    expect(page.locator("body")).not_to_contain_text("s3cr3t-value-for-audit")


def test_admin_screens_agents_users_teams_secrets(page: Page, ui_server: UiServer) -> None:
    sign_in(page)
    page.get_by_role("link", name="Agents").click()
    local = page.locator('tr[data-agent^="local-"]')
    expect(local).to_contain_text("built-in")
    expect(local).to_contain_text("online")
    shot(page, "oversee-agents")
    axe_scan(page, "agents")

    page.get_by_role("link", name="Settings").click()
    page.get_by_role("link", name="Users").click()
    expect(page.locator('tr[data-user="olga"]')).to_contain_text("operator")
    page.get_by_role("button", name="New user").click()
    dialog = page.get_by_role("dialog")
    dialog.get_by_role("textbox", name=re.compile("^Name")).fill("nina")
    dialog.get_by_label("Role").select_option("editor")
    dialog.get_by_role("button", name="Create user").click()
    expect(page.get_by_text("Created nina (editor)")).to_be_visible()
    expect(page.locator('tr[data-user="nina"]')).to_contain_text("tokens only")
    shot(page, "oversee-users")
    axe_scan(page, "users")

    page.get_by_role("link", name="Teams").click()
    page.get_by_role("button", name="New team").click()
    page.get_by_role("dialog").get_by_role("textbox", name=re.compile("^Name")).fill("platform")
    page.get_by_role("dialog").get_by_role("button", name="Create team").click()
    team = page.locator('tr[data-team="platform"]')
    team.get_by_label("User to add to platform").select_option("nina")
    team.get_by_role("button", name="Add").click()
    expect(team.locator(".member-chip")).to_contain_text("nina")
    shot(page, "oversee-teams")
    axe_scan(page, "teams")

    page.get_by_role("link", name="Secrets").click()
    page.get_by_role("button", name="New secret").click()
    dialog = page.get_by_role("dialog")
    dialog.get_by_role("textbox", name=re.compile("^Name")).fill("DEPLOY_KEY")
    dialog.get_by_label("Value").fill("very-secret-deploy-key-123")
    dialog.get_by_label("Description").fill("Key the deploy step uses")
    dialog.get_by_role("button", name="Create secret").click()
    secret = page.locator('tr[data-secret="DEPLOY_KEY"]')
    expect(secret).to_contain_text("v1")
    expect(page.locator("body")).not_to_contain_text("very-secret-deploy-key-123")
    secret.get_by_role("button", name="Replace value").click()
    page.get_by_role("dialog").get_by_label("Value").fill("another-secret-value-456")
    page.get_by_role("dialog").get_by_role("button", name="Replace value").click()
    expect(secret).to_contain_text("v2")
    shot(page, "oversee-secrets")
    axe_scan(page, "secrets")


def test_admin_creates_an_agent_token_and_revokes_its_agent(
    page: Page, ui_server: UiServer
) -> None:
    sign_in(page)
    page.goto("/agents")
    page.get_by_role("button", name="New agent token").click()
    dialog = page.get_by_role("dialog")
    dialog.get_by_role("textbox", name=re.compile("^Pool")).fill("edge")
    dialog.get_by_role("textbox", name=re.compile("^Name")).fill("edge-hosts")
    dialog.get_by_role("button", name="Create agent token").click()
    secret = dialog.locator("[data-token-secret]").inner_text().strip()
    assert secret.startswith("opfa_")
    dialog.get_by_role("button", name="Done").click()

    def register() -> httpx.Response:
        return httpx.post(
            f"{ui_server.url}/api/v1/agent/register",
            headers={"Authorization": f"Bearer {secret}"},
            json={"agent_id": "agent-e2e-edge1", "hostname": "edge1.example", "version": "0.1.0"},
        )

    assert register().status_code == 200, register().text
    row = page.locator('tr[data-agent="agent-e2e-edge1"]')
    expect(row).to_contain_text("edge1.example")
    expect(row).to_contain_text("edge")
    expect(row).not_to_contain_text("built-in")
    expect(page.locator('tr[data-agent-token] >> text="edge-hosts"')).to_be_visible()
    shot(page, "oversee-agents-remote")
    axe_scan(page, "agents with a remote agent")

    row.get_by_role("button", name="Revoke").click()
    page.get_by_role("dialog").get_by_role("button", name="Revoke agent-e2e-edge1").click()
    expect(page.get_by_text(re.compile("Revoked agent token edge-hosts"))).to_be_visible()
    assert register().status_code == 401
    # Its row now says why it is offline: its agent token was revoked.
    expect(row).to_contain_text("revoked")
    shot(page, "oversee-agents-revoked")
