"""The ssh step's declaration: hosts in every accepted shape, one program, bounded fields."""

from __future__ import annotations

from pathlib import Path

import pytest

from opsflow.errors import SpecInvalid
from opsflow.spec.loader import load_workflow_file
from opsflow.spec.ssh_step import FailOn, SshInventory, SshStep

from .support import load, problems


def test_hosts_may_be_a_list_a_template_or_an_inventory() -> None:
    workflow = load(
        """
        id: w
        params: {targets: {type: string, default: "a,b"}}
        steps:
          - {id: a, type: ssh, connection: prod, hosts: [web1, "web2:2222"], command: uptime}
          - {id: b, type: ssh, connection: prod, hosts: "{{ params.targets }}", command: uptime}
          - id: c
            type: ssh
            connection: prod
            hosts: {file: inventory.ini, pattern: web}
            command: uptime
            parallel: 5
            fail_on: all
            host_timeout: 2m
            sudo: true
            env: {VERSION: "{{ params.targets }}"}
        """
    )
    a, b, c = workflow.steps
    assert isinstance(a, SshStep) and a.hosts == ["web1", "web2:2222"] and a.parallel == 10
    assert isinstance(b, SshStep) and b.hosts == "{{ params.targets }}"
    assert isinstance(c, SshStep) and isinstance(c.hosts, SshInventory)
    assert c.hosts.pattern == "web" and c.fail_on is FailOn.ALL and c.host_timeout == 120


def test_exactly_one_of_command_or_script() -> None:
    found = problems(
        """
        id: w
        steps:
          - {id: a, type: ssh, connection: prod, hosts: [h], command: x, script: x.sh}
          - {id: b, type: ssh, connection: prod, hosts: [h]}
        """
    )
    assert [p.loc for p in found] == ["steps[0]", "steps[1]"]
    assert all("exactly one of 'command'" in p.msg for p in found)


@pytest.mark.parametrize(
    ("field", "loc"),
    [
        ("parallel: 0", "steps[0].parallel"),
        ("fail_on: some", "steps[0].fail_on"),
        ("port: 70000", "steps[0].port"),
        ("host_timeout: 0s", "steps[0].host_timeout"),
        ("hosts: {hosts: [h], pattern: web}", "steps[0].hosts.pattern"),
    ],
)
def test_bad_fields_are_located(field: str, loc: str) -> None:
    found = problems(
        f"""
        id: w
        steps:
          - id: a
            type: ssh
            connection: prod
            command: uptime
            {field}
        """.replace(
            "command: uptime\n",
            "command: uptime\n" + ("" if "hosts" in field else "            hosts: [h]\n"),
        )
    )
    assert [p.loc for p in found] == [loc], [p.format() for p in found]


def test_a_missing_script_or_inventory_file_is_reported(tmp_path: Path) -> None:
    (tmp_path / "workflow.yaml").write_text(
        "id: w\n"
        "steps:\n"
        "  - {id: a, type: ssh, connection: c, hosts: {file: inv.ini}, script: go.sh}\n"
    )
    with pytest.raises(SpecInvalid) as info:
        load_workflow_file(tmp_path)
    assert sorted(p.loc for p in info.value.problems) == ["steps[0].hosts.file", "steps[0].script"]
