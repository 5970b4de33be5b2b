"""Commands that need no server: validate, schema, and apply refusing an invalid file."""

from __future__ import annotations

import json
import re
import socket
import sys
from pathlib import Path

from tests.integration.cli.conftest import Cli, WorkflowDir, simple_workflow
from tests.servers import free_port

LOCATED = re.compile(r"^(?P<file>[^:]+):(?P<line>\d+): (?P<loc>[^:]+): (?P<msg>.+)$")

# Four independent mistakes; the loader must report all of them at once.
BAD_WORKFLOW = """\
id: bad-workflow
steps:
  - id: build
    type: script
    run: make
    timeout: forever
  - id: deploy
    type: script
    needs: [biuld]
    run: ./deploy.sh
  - id: deploy
    type: http
    url: ftp://example.com
"""


def test_validate_accepts_a_good_file_and_says_ok(cli: Cli, workflow_dir: WorkflowDir) -> None:
    directory = workflow_dir("hello", simple_workflow("hello"))

    result = cli("validate", str(directory / "workflow.yaml"))

    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.strip() == f"{directory / 'workflow.yaml'}: ok (hello)"


def test_validate_prints_every_problem_with_file_and_line(
    cli: Cli, workflow_dir: WorkflowDir
) -> None:
    bad = workflow_dir("bad", BAD_WORKFLOW) / "workflow.yaml"

    result = cli("validate", str(bad))

    assert result.returncode == 1
    lines = result.stdout.strip().splitlines()
    # the summary is a line of its own after the problems, never run onto the last one
    parsed = [LOCATED.match(line) for line in lines[:-1]]
    assert all(parsed), lines
    by_loc = {m["loc"]: m for m in parsed if m}
    assert {m["file"] for m in parsed if m} == {str(bad)}
    assert by_loc["steps[0].timeout"]["line"] == "6"
    assert "forever" in by_loc["steps[0].timeout"]["msg"]
    assert by_loc["steps[1].needs[0]"]["line"] == "9"
    assert "biuld" in by_loc["steps[1].needs[0]"]["msg"]
    assert by_loc["steps[2].url"]["line"] == "13"
    assert by_loc["steps[2].id"]["line"] == "11"
    assert "duplicate step id 'deploy'" in by_loc["steps[2].id"]["msg"]
    assert len(lines) == 5
    assert lines[-1] == "4 problems in 1 file"


def test_validate_checks_every_file_and_fails_if_any_is_bad(
    cli: Cli, workflow_dir: WorkflowDir
) -> None:
    good = workflow_dir("good", simple_workflow("good"))
    bad = workflow_dir("bad", BAD_WORKFLOW)

    result = cli("validate", str(good), str(bad))

    assert result.returncode == 1
    assert f"{good / 'workflow.yaml'}: ok (good)" in result.stdout
    assert f"{bad / 'workflow.yaml'}:9: steps[1].needs[0]:" in result.stdout


def test_validate_json_lists_each_file_with_its_errors(cli: Cli, workflow_dir: WorkflowDir) -> None:
    good = workflow_dir("good", simple_workflow("good"))
    bad = workflow_dir("bad", BAD_WORKFLOW)

    result = cli("validate", "--output", "json", str(good), str(bad))

    assert result.returncode == 1
    report = json.loads(result.stdout)
    assert [(r["file"], r["valid"]) for r in report] == [
        (str(good / "workflow.yaml"), True),
        (str(bad / "workflow.yaml"), False),
    ]
    assert report[0]["errors"] == []
    errors = {e["loc"]: e for e in report[1]["errors"]}
    assert errors["steps[1].needs[0]"]["line"] == 9
    assert set(errors["steps[1].needs[0]"]) == {"loc", "msg", "line", "column"}


def test_validate_reports_broken_yaml_with_its_line(cli: Cli, tmp_path: Path) -> None:
    broken = tmp_path / "broken.yaml"
    broken.write_text("id: broken\nsteps:\n  - id: a\n    type: [script\n")

    result = cli("validate", "-o", "json", str(broken))

    assert result.returncode == 1
    (report,) = json.loads(result.stdout)
    assert report["valid"] is False
    assert report["errors"][0]["line"] is not None


def test_validate_of_a_missing_path_is_a_usage_error(cli: Cli, tmp_path: Path) -> None:
    result = cli("validate", str(tmp_path / "nope.yaml"))

    assert result.returncode == 2
    assert f"error: {tmp_path / 'nope.yaml'}: no such file or directory" in result.stderr


def test_schema_prints_the_workflow_json_schema(cli: Cli) -> None:
    result = cli("schema")

    assert result.returncode == 0, result.stderr
    schema = json.loads(result.stdout)
    assert "steps" in schema["properties"]
    assert "id" in schema["required"]


def test_apply_refuses_an_invalid_file_without_contacting_the_server(
    cli: Cli, workflow_dir: WorkflowDir
) -> None:
    bad = workflow_dir("bad", BAD_WORKFLOW)
    with socket.socket() as listener:  # stands where the server would be; must see no connection
        listener.bind(("127.0.0.1", 0))
        listener.listen(1)
        listener.setblocking(False)
        url = f"http://127.0.0.1:{listener.getsockname()[1]}"

        result = cli("--url", url, "apply", "-f", str(bad))

        assert result.returncode == 1
        assert f"{bad / 'workflow.yaml'}:9: steps[1].needs[0]:" in result.stdout
        try:
            listener.accept()
            contacted = True
        except BlockingIOError:
            contacted = False
        assert not contacted


def test_commands_say_when_the_server_cannot_be_reached(cli: Cli) -> None:
    url = f"http://127.0.0.1:{free_port()}"

    result = cli("--url", url, "workflows", "list")

    assert result.returncode == 1
    assert f"error: cannot reach opsflow at {url}: is `opsflow server` running?" in result.stderr
    assert "Traceback" not in result.stderr


def test_a_bad_option_value_is_a_usage_error(cli: Cli) -> None:
    result = cli("tokens", "create", "--expires-in", "soon")

    assert result.returncode == 2
    assert "--expires-in: 'soon' is not a duration" in result.stderr


def test_validate_warns_of_markup_in_a_script_run_and_still_passes(
    cli: Cli, workflow_dir: WorkflowDir
) -> None:
    text = (
        "id: greet\nparams:\n  whom: {type: string, default: world}\nsteps:\n"
        '  - id: greet\n    type: script\n    run: echo "hi {{ params.whom }}"\n'
    )
    file = workflow_dir("greet", text) / "workflow.yaml"

    result = cli("validate", str(file))
    report = cli("validate", "-o", "json", str(file))

    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.splitlines() == [
        f"{file}: ok (greet)",
        f"{file}:7: steps[0].run: warning: run is not templated: {{{{ … }}}} stays as written; "
        'pass values through env: (e.g. env: {WHOM: "{{ params.whom }}"} and use $WHOM)',
    ]
    (checked,) = json.loads(report.stdout)
    assert checked["valid"] is True
    assert [(w["loc"], w["line"]) for w in checked["warnings"]] == [("steps[0].run", 7)]


def test_python_dash_m_opsflow_is_the_opsflow_command(cli: Cli, workflow_dir: WorkflowDir) -> None:
    directory = workflow_dir("hello", simple_workflow("hello"))
    python_m = Cli(sys.executable, cli.cwd, {**cli.env, "COLUMNS": "200"})

    result = python_m("-m", "opsflow", "validate", str(directory / "workflow.yaml"))
    usage = python_m("-m", "opsflow", "--help")

    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.strip() == f"{directory / 'workflow.yaml'}: ok (hello)"
    assert usage.returncode == 0 and "Usage: opsflow " in usage.stdout, usage.stdout
