"""``opsflow apply`` and ``opsflow workflows ...`` against a real server, on both databases."""

from __future__ import annotations

import json
import re
import subprocess

from tests.integration.cli.conftest import Server, WorkflowDir, simple_workflow


def said(result: subprocess.CompletedProcess[str]) -> str:
    """The first line `apply` prints: what happened (the files it sent follow)."""
    return result.stdout.splitlines()[0] if result.stdout else ""


def test_apply_creates_a_version_then_reports_unchanged_then_a_new_version(
    server: Server, workflow_dir: WorkflowDir
) -> None:
    cli = server.cli
    directory = workflow_dir("deploy", simple_workflow("deploy"))

    first = cli("apply", "-f", str(directory))
    again = cli("apply", "-f", str(directory / "workflow.yaml"))
    (directory / "finish.sh").write_text("echo finished, differently\n")  # only a file changes
    changed = cli("apply", "-f", str(directory))

    assert (first.returncode, said(first)) == (0, "deploy: created version 1"), first.stderr
    assert (again.returncode, said(again)) == (0, "deploy: unchanged (version 1)"), again.stderr
    assert (changed.returncode, said(changed)) == (0, "deploy: created version 2"), changed.stderr
    # Each apply lists what it sent.
    assert "  sent workflow.yaml with 2 files" in first.stdout
    versions = cli("workflows", "versions", "deploy")
    assert [row.split()[0] for row in versions.stdout.splitlines()] == ["VERSION", "2", "1"]
    shown = json.loads(cli("workflows", "show", "deploy", "--version", "2", "-o", "json").stdout)
    assert {f["path"] for f in shown["files"]} == {"finish.sh", "workflow.yaml"}


def test_apply_leaves_ignored_files_out_of_the_bundle(
    server: Server, workflow_dir: WorkflowDir
) -> None:
    directory = workflow_dir(
        "ignoring",
        simple_workflow("ignoring"),
        {
            "finish.sh": "echo done\n",
            ".opsflowignore": "*.tfstate\nscratch/\n",
            "terraform.tfstate": "{}",
            "scratch/notes.txt": "mine",
        },
    )

    result = server.cli("apply", "-f", str(directory))

    assert result.returncode == 0, result.stderr
    shown = server.api.get("/workflows/ignoring/versions/1").json()
    assert {f["path"] for f in shown["files"]} == {".opsflowignore", "finish.sh", "workflow.yaml"}


def test_apply_draft_saves_without_publishing_until_publish(
    server: Server, workflow_dir: WorkflowDir
) -> None:
    cli = server.cli
    directory = workflow_dir("drafty", simple_workflow("drafty"))

    saved = cli("apply", "-f", str(directory), "--draft")
    draft = json.loads(cli("workflows", "show", "drafty", "-o", "json").stdout)
    published = cli("workflows", "publish", "drafty")

    assert (saved.returncode, said(saved)) == (0, "drafty: saved draft")
    assert (draft["status"], draft["latest_version"]) == ("draft", None)
    assert published.stdout == "drafty: published version 1\n"


def test_apply_of_a_directory_of_workflows_applies_each_and_prints_json(
    server: Server, workflow_dir: WorkflowDir
) -> None:
    first = workflow_dir("team/billing-sync", simple_workflow("billing-sync", label="payments"))
    workflow_dir("team/ledger-close", simple_workflow("ledger-close", label="payments"))

    result = server.cli("apply", "-f", str(first.parent), "-o", "json")

    assert result.returncode == 0, result.stderr
    results = json.loads(result.stdout)
    assert [(r["workflow"]["id"], r["version"], r["created_version"]) for r in results] == [
        ("billing-sync", 1, True),
        ("ledger-close", 1, True),
    ]


def test_workflows_list_filters_by_label_and_search(server: Server) -> None:
    for wid, label in [("pay-in", "payments"), ("pay-out", "payments"), ("dns-sync", "infra")]:
        server.put_workflow(wid, label=label)

    by_label = server.cli(
        "workflows", "list", "--label", "team=payments", "-s", "pay", "-o", "json"
    )
    text = server.cli("workflows", "list", "--label", "team=infra")

    page = json.loads(by_label.stdout)
    assert sorted(w["id"] for w in page["items"]) == ["pay-in", "pay-out"]
    assert page["total"] == 2
    assert text.returncode == 0
    header, *rows = text.stdout.strip().splitlines()
    assert header.split() == ["ID", "NAME", "STATUS", "VERSION", "LABELS", "UPDATED"]
    assert [row.split()[:3] for row in rows] == [["dns-sync", "Dns", "Sync"]]
    assert "active" in rows[0]


def test_pause_and_resume_change_the_status(server: Server) -> None:
    server.put_workflow("nightly")

    paused = server.cli("workflows", "pause", "nightly")
    shown = server.cli("workflows", "show", "nightly")
    resumed = server.cli("workflows", "resume", "nightly", "-o", "json")

    assert (paused.returncode, paused.stdout) == (0, "nightly: paused\n")
    assert "status:         paused" in shown.stdout.splitlines()
    assert "  done (script)  <- greet" in shown.stdout.splitlines()
    created = next(x for x in shown.stdout.splitlines() if x.startswith("created:"))
    assert re.fullmatch(r"created: +(just now|\d+ s ago)", created), created
    assert json.loads(resumed.stdout)["status"] == "active"


def test_duplicate_then_delete(server: Server) -> None:
    cli = server.cli
    server.put_workflow("origin")

    copied = cli(
        "workflows", "duplicate", "origin", "origin-copy", "--name", "The copy", "-o", "json"
    )
    unconfirmed = cli("workflows", "delete", "origin-copy")
    deleted = cli("workflows", "delete", "origin-copy", "--yes")
    gone = cli("workflows", "show", "origin-copy")

    copy = json.loads(copied.stdout)
    assert (copy["id"], copy["name"], copy["status"]) == ("origin-copy", "The copy", "draft")
    assert unconfirmed.returncode == 2
    assert "pass --yes" in unconfirmed.stderr
    assert (deleted.returncode, deleted.stdout) == (0, "origin-copy: deleted\n")
    assert gone.returncode == 1
    assert gone.stderr.startswith("error: Not found: ")
    assert "origin-copy" in gone.stderr


def test_api_validation_errors_are_listed_by_location(server: Server) -> None:
    result = server.cli("workflows", "duplicate", "nightly", "Not Valid", "--name", "x")

    assert result.returncode == 1
    assert result.stderr.startswith("error: The request is invalid: ")
    assert "  body.new_id: " in result.stderr


def test_apply_says_where_a_new_hook_trigger_is_reached_and_how_to_get_its_secret(
    server: Server, workflow_dir: WorkflowDir
) -> None:
    definition = (
        "id: hooked\n"
        "triggers:\n"
        "  - {type: webhook}\n"
        "  - {type: webhook, key: hooked-signed, secret: HOOKED_SECRET}\n"
        "  - {type: schedule, cron: '0 3 * * *'}\n"
        "steps:\n"
        "  - {id: hello, type: script, run: echo hello}\n"
    )
    directory = workflow_dir("hooked", definition)

    first = server.cli("apply", "-f", str(directory))

    assert first.returncode == 0, first.stderr
    lines = first.stdout.splitlines()
    (generated,) = [i for i, line in enumerate(lines) if "trigger webhook-1 (webhook)" in line]
    assert lines[generated].split("POST ")[1].startswith(f"{server.url}/hooks/")
    assert lines[generated + 1].strip() == (
        "its secret: opsflow triggers rotate-secret hooked webhook-1 (shows a new one once)"
    )
    assert f"  trigger hooked-signed (webhook): POST {server.url}/hooks/hooked-signed" in lines
    assert "    its secret HOOKED_SECRET signs or authorizes deliveries" in lines
    assert "schedule-1" not in first.stdout  # no URL: nothing for a sender to set up
    (directory / "workflow.yaml").write_text(definition.replace("echo hello", "echo hi"))
    # A trigger that has taken deliveries is set up already; one without is listed again.
    second = server.cli("apply", "-f", str(directory))
    assert "trigger webhook-1 (webhook)" in second.stdout


def test_apply_warns_of_workflows_and_secrets_the_definition_names_that_do_not_exist(
    server: Server, workflow_dir: WorkflowDir
) -> None:
    definition = (
        "id: dangling\n"
        "triggers:\n"
        "  - {type: workflow, workflow: no-such-upstream}\n"
        "  - {type: webhook, secret: DANGLING_HOOK_SECRET}\n"
        "steps:\n"
        "  - {id: child, type: workflow, workflow: no-such-child}\n"
    )
    directory = workflow_dir("dangling", definition)

    first = server.cli("apply", "-f", str(directory))

    assert first.returncode == 0, first.stderr  # saved all the same: they may come later
    file = directory / "workflow.yaml"
    warnings = [line.strip() for line in first.stdout.splitlines() if "warning:" in line]
    assert len(warnings) == 3, first.stdout
    assert warnings[0].startswith(f"warning: {file}: triggers[0].workflow: ")
    assert "no-such-upstream" in warnings[0] and "starts nothing until" in warnings[0]
    assert warnings[1] == (
        f"warning: {file}: triggers[1].secret: secret DANGLING_HOOK_SECRET is not set: "
        "deliveries are refused until an admin sets it "
        "(opsflow secrets set DANGLING_HOOK_SECRET)"
    )
    assert warnings[2].startswith(f"warning: {file}: steps[0].workflow: ")
    assert "no-such-child" in warnings[2]

    # Once they exist, the same definition applies without a warning.
    server.api.put("/secrets/DANGLING_HOOK_SECRET", json={"value": "s3cret-value-1234"})
    for other in ("no-such-upstream", "no-such-child"):
        made = server.cli("apply", "-f", str(workflow_dir(other, simple_workflow(other))))
        assert made.returncode == 0, made.stderr
    (directory / "workflow.yaml").write_text(definition + "description: now complete\n")
    second = server.cli("apply", "-f", str(directory))
    assert second.returncode == 0 and "warning:" not in second.stdout, second.stdout


def test_validate_asks_the_server_for_the_run_end_channels_it_lacks(
    server: Server, workflow_dir: WorkflowDir
) -> None:
    definition = (
        "id: told-cli\n"
        "notify:\n"
        "  - {on: [failed], channel: no-such-room}\n"
        "steps:\n"
        '  - {id: build, type: script, run: "true"}\n'
    )
    file = workflow_dir("told-cli", definition) / "workflow.yaml"

    checked = server.cli("validate", str(file))
    offline = server.cli("validate", "--offline", str(file))

    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert checked.stdout.splitlines() == [
        f"{file}: ok (told-cli)",
        f"{file}:3: notify[0].channel: warning: connection 'no-such-room' does not exist; an "
        "admin creates it with opsflow connections set no-such-room --type notify; run-end "
        "messages to it fail (shown in the run's engine log) until then",
    ]
    assert offline.returncode == 0 and offline.stdout.strip() == f"{file}: ok (told-cli)"
