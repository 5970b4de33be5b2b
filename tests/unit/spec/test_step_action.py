"""Every step type names what its jobs do as ``type.verb``."""

from __future__ import annotations

from opsflow.spec.steps import step_action
from opsflow.spec.triggers import RunTrigger, TriggerType
from opsflow.status import StepType


def test_each_step_type_has_an_action_name() -> None:
    assert step_action(StepType.SCRIPT, {}) == "script.bash"
    assert step_action(StepType.SCRIPT, {"shell": "python"}) == "script.python"
    assert step_action(StepType.HTTP, {"url": "http://x"}) == "http.request"
    assert step_action(StepType.TERRAFORM, {"action": "apply"}) == "terraform.apply"
    assert step_action(StepType.ANSIBLE, {}) == "ansible.playbook"
    assert step_action(StepType.NOTIFY, {}) == "notify.send"
    slack = "slack://T1/B2/C3"
    assert step_action(StepType.NOTIFY, {"urls": [slack]}) == "notify.slack"
    assert step_action(StepType.NOTIFY, {"urls": ["mailtos://u:p@x.org"]}) == "notify.email"
    assert step_action(StepType.NOTIFY, {"urls": [slack, "discord://a/b"]}) == "notify.send"
    # A job sending through a notify connection names its services, never its URLs.
    assert step_action(StepType.NOTIFY, {"connection": "ops", "services": ["slack"]}) == (
        "notify.slack"
    )
    assert step_action(StepType.NOTIFY, {"services": ["json", "slack"]}) == "notify.send"
    assert step_action(StepType.SSH, {"command": "uptime"}) == "ssh.command"
    assert step_action(StepType.SSH, {"script": "deploy.sh"}) == "ssh.script"
    names = {step_action(t, {}) for t in StepType}
    assert len(names) == len(StepType) and all("." in n for n in names)


def test_a_run_is_started_by_hand_or_by_any_trigger_type() -> None:
    assert {t.value for t in RunTrigger} == {"manual"} | {t.value for t in TriggerType}
