"""The workflow's ``notify``: both shapes load; run-end entries are checked and located."""

from __future__ import annotations

from opsflow.spec.loader import canonical
from opsflow.spec.models import NotifyDefaults, RunNotification
from opsflow.spec.notifications import default_channel, run_notifications
from opsflow.spec.schema import workflow_json_schema
from opsflow.status import ExecutionStatus
from tests.unit.spec.support import load, only_problem, problems

RUN_ENDS = """
id: told
notify:
  - on: [failed, rejected]
    channel: ops
    message: "{{ execution.failed_step }}: {{ execution.error }}"
  - {on: [completed], connection: audit}
  - {channel: ops}
steps:
  - {id: build, type: script, run: make}
"""


def test_run_end_entries_load_with_failed_rejected_error_as_the_default_on() -> None:
    workflow = load(RUN_ENDS)

    assert isinstance(workflow.notify, list)
    first, second, third = workflow.notify
    assert isinstance(first, RunNotification)
    assert first.on == [ExecutionStatus.FAILED, ExecutionStatus.REJECTED]
    assert second.connection == "audit" and second.message is None
    assert third.on == [ExecutionStatus.FAILED, ExecutionStatus.REJECTED, ExecutionStatus.ERROR]
    stored = canonical(workflow)
    assert run_notifications(stored)[0]["on"] == ["failed", "rejected"]
    assert default_channel(stored) is None
    assert load(RUN_ENDS.replace("notify:", "notify: # list")).notify == workflow.notify


def test_the_mapping_form_still_sets_the_default_channel_of_steps() -> None:
    workflow = load(
        """
        id: told
        notify: {channel: ops}
        steps:
          - {id: say, type: notify, message: hi}
        """
    )
    assert workflow.notify == NotifyDefaults(channel="ops")
    assert default_channel(canonical(workflow)) == "ops"
    assert run_notifications(canonical(workflow)) == []


def test_an_unknown_run_end_is_located_with_a_suggestion() -> None:
    found = only_problem(
        """
        id: told
        notify:
          - {on: [completed, faild], channel: ops}
        steps:
          - {id: build, type: script, run: make}
        """
    )
    assert found.loc == "notify[0].on" and found.line == 3
    assert "on[1]: 'faild' is not a status a run ends with (did you mean 'failed'?)" in found.msg
    assert "use: completed, failed, rejected, cancelled, error" in found.msg


def test_every_unknown_run_end_is_named_at_once() -> None:
    found = only_problem(
        """
        id: told
        notify:
          - {on: [failure, complete], channel: ops}
        steps:
          - {id: build, type: script, run: make}
        """
    )
    assert found.loc == "notify[0].on"
    assert "on[0]: 'failure' is not a status a run ends with (did you mean 'failed'?)" in found.msg
    assert "on[1]: 'complete' is not a status a run ends with (did you mean 'completed'?)" in (
        found.msg
    )


def test_a_status_that_is_not_an_end_is_refused() -> None:
    found = only_problem(
        """
        id: told
        notify: [{on: [running], channel: ops}]
        steps: [{id: build, type: script, run: make}]
        """
    )
    assert found.loc == "notify[0].on" and "'running' is not a status a run ends with" in found.msg


def test_an_entry_needs_one_channel_and_knows_its_fields() -> None:
    found = problems(
        """
        id: told
        notify:
          - {on: [failed]}
          - {on: [failed], channel: ops, connection: ops}
          - {on: [failed], channel: ops, chanel: x}
        steps: [{id: build, type: script, run: make}]
        """
    )
    assert [(p.loc, p.line) for p in found] == [
        ("notify[0].channel", 3),
        ("notify[1].connection", 4),
        ("notify[2].chanel", 5),
    ]
    assert found[0].msg == "'channel' is required: the notify connection to send to"
    assert "not both" in found[1].msg
    assert "did you mean 'channel'?" in found[2].msg
    assert "allowed here: on, channel, connection, message, title" in found[2].msg


def test_bad_message_templates_are_located() -> None:
    found = problems(
        """
        id: told
        notify:
          - on: [failed]
            channel: ops
            message: "{{ execution.durration }} {{ nodes.biuld.error }} {{ secrets.TOKEN }}"
            title: "{{ workflow.id"
        steps: [{id: build, type: script, run: make}]
        """
    )
    assert [p.loc for p in found] == [
        "notify[0].message",
        "notify[0].message",
        "notify[0].message",
        "notify[0].title",
    ]
    assert "unknown field 'execution.durration'" in found[0].msg
    assert "duration" in found[0].msg and "failed_step" in found[0].msg
    assert "unknown step 'biuld'" in found[1].msg
    assert "'secrets.TOKEN' cannot be used here" in found[2].msg
    assert found[3].msg.startswith("template syntax error")


def test_the_run_summary_fields_are_only_for_run_end_messages() -> None:
    found = only_problem(
        """
        id: told
        steps:
          - {id: say, type: notify, channel: ops, message: "{{ execution.status }}"}
        """
    )
    assert found.loc == "steps[0].message" and "unknown field 'execution.status'" in found.msg


def test_the_json_schema_offers_both_shapes_and_only_run_ends() -> None:
    schema = workflow_json_schema()
    shapes = schema["properties"]["notify"]["anyOf"][0]["oneOf"]
    assert {"$ref": "#/$defs/NotifyDefaults"} in shapes
    assert {"type": "array", "items": {"$ref": "#/$defs/RunNotification"}} in shapes
    on = schema["$defs"]["RunNotification"]["properties"]["on"]
    assert on["items"]["enum"] == ["completed", "failed", "rejected", "cancelled", "error"]


def test_a_notify_step_is_told_that_the_list_form_sets_no_default_channel() -> None:
    found = only_problem(
        """
        id: told
        notify: [{on: [failed], channel: ops}]
        steps:
          - {id: say, type: notify, message: hi}
        """
    )
    assert found.loc == "steps[0].channel"
    assert "notify is a list of run-end messages, which sets no default channel" in found.msg


def test_a_secret_in_a_run_end_message_is_refused_naming_that_place() -> None:
    problem = only_problem(
        """
        id: t
        notify:
          - {on: [failed], channel: ops, message: "token {{ secrets.TOKEN }}"}
        steps: [{id: a, type: script, run: "true"}]
        """
    )
    assert problem.loc == "notify[0].message"
    assert "'secrets.TOKEN' cannot be used here, in a run-end message:" in problem.msg
    # The places a secret may go name only steps' fields; a run-end message is not among them.
    allowed = problem.msg.split("use them (", 1)[1].split(")", 1)[0]
    refused = problem.msg.split("never in", 1)[1]
    assert "notify step's message/title" in allowed and "run-end" not in allowed
    assert "run-end messages" in refused
