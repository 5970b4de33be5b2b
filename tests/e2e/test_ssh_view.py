"""An ssh step's job in the execution view: its action and the table of its hosts, from a run
on two real sshd "hosts" through the real server."""

from __future__ import annotations

from contextlib import ExitStack
from pathlib import Path

from playwright.sync_api import Page, expect

from tests.e2e.conftest import UiServer, axe_scan, shot, sign_in, wait_status
from tests.sshd import make_user_key, running_sshd

FLEET = """
id: e2e-ssh
name: Restart the API on the fleet
steps:
  - id: restart
    type: ssh
    connection: e2e-ssh
    hosts: [{hosts}]
    fail_on: all
    env: {{BAD_PORT: "{bad_port}"}}
    command: |
      echo "stopping api"
      echo "api is active (pid $$)"
      if [ "${{SSH_CONNECTION##* }}" = "$BAD_PORT" ]; then echo "disk full" >&2; exit 3; fi
"""


def test_an_ssh_job_shows_its_action_and_each_host(
    page: Page, ui_server: UiServer, tmp_path: Path
) -> None:
    key = make_user_key(tmp_path / "key")
    with ExitStack() as stack:
        first, second = (
            stack.enter_context(running_sshd(tmp_path / f"sshd-{n}", key)) for n in (1, 2)
        )
        values = first.connection_values(key)
        values["known_hosts"] = first.known_hosts() + second.known_hosts()
        put = ui_server.api.put("/connections/e2e-ssh", json={"type": "ssh", "values": values})
        assert put.status_code in (200, 201), put.text
        hosts = f'"{first.target}", "{second.target}"'
        ui_server.put_workflow(FLEET.format(hosts=hosts, bad_port=second.port), "e2e-ssh")
        execution_id = ui_server.run("e2e-ssh")
        wait_status(ui_server, execution_id, "completed", "failed")

    sign_in(page, "olga")
    page.goto(f"/executions/{execution_id}?step=restart")
    page.get_by_role("button", name="Details of restart").click()
    job = page.locator(".job").first
    expect(job.locator("code")).to_have_text("ssh.command")
    table = page.get_by_role("table", name="Hosts of attempt 1")
    expect(table).to_contain_text("2 hosts, 1 failed")
    good = table.get_by_role("rowheader", name=first.target).locator("xpath=..")
    expect(good.locator(".badge")).to_have_attribute("data-status", "completed")
    expect(good).to_contain_text("0")
    bad = table.get_by_role("rowheader", name=second.target).locator("xpath=..")
    expect(bad.locator(".badge")).to_have_attribute("data-status", "failed")
    expect(bad).to_contain_text("3")
    expect(page.get_by_label(f"Output tail of {first.target}")).to_contain_text("api is active")
    expect(table).to_contain_text("exit code 3")
    expect(page.get_by_test_id("log-lines")).to_contain_text(f"[{second.target}] disk full")
    axe_scan(page, "ssh hosts in the job detail")
    shot(page, "execution-ssh-hosts")
