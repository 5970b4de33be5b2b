"""How ansible steps fail: task failures, unreachable hosts, bad playbooks, bad fields."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import pytest

from opsflow.status import JobStatus, LogStream

from ..steps.support import RecordingSink
from .support import ansible_job, run, write

pytestmark = pytest.mark.anyio


async def test_failing_task_fails_the_step_naming_task_and_host(
    workdir: Path, out: Path, sink: RecordingSink
) -> None:
    write(
        workdir,
        "site.yml",
        """
        - hosts: all
          gather_facts: false
          tasks:
            - name: Check disk
              command: "{{ item }}"
              loop: ["true", /bin/false]
              ignore_errors: true
            - name: Create config
              fail: {msg: "disk full on {{ inventory_hostname }}"}
            - name: Never reached
              copy: {dest: "{{ out }}/reached", content: x}
        """,
    )
    spec = ansible_job(workdir, {"playbook": "site.yml", "extra_vars": {"out": str(out)}})
    result = await run(spec, sink)
    assert result.status is JobStatus.FAILED, result
    assert result.error == "task 'Create config' failed on localhost: disk full on localhost"
    assert result.outputs["failed_tasks"] == [
        {"host": "localhost", "task": "Create config", "msg": "disk full on localhost"}
    ]
    assert result.outputs["stats"]["localhost"]["failed"] == 1
    assert result.outputs["rc"] == 2
    assert result.retryable
    stdout = sink.text(LogStream.STDOUT)
    assert "failed: [localhost] (item=/bin/false): non-zero return code (rc=1)" in stdout
    assert (
        "failed (ignored): [localhost]: One or more items failed "
        "(item=/bin/false: non-zero return code (rc=1))"
    ) in stdout
    assert "failed: [localhost]: disk full on localhost" in stdout
    assert not (out / "reached").exists()


async def test_unreachable_host_fails_the_step_naming_the_host(
    workdir: Path, sink: RecordingSink
) -> None:
    # Port 1 on loopback refuses connections at once: a real, fast unreachable host.
    write(
        workdir, "hosts.ini", "far ansible_host=127.0.0.1 ansible_port=1 ansible_connection=ssh\n"
    )
    write(
        workdir,
        "site.yml",
        """
        - hosts: all
          gather_facts: false
          tasks:
            - name: Ping it
              ping:
        """,
    )
    result = await run(
        ansible_job(workdir, {"playbook": "site.yml", "inventory": "hosts.ini"}), sink
    )
    assert result.status is JobStatus.FAILED, result
    assert result.error is not None
    assert result.error.startswith("host far unreachable (task 'Ping it'): ")
    assert "Connection refused" in result.error
    assert result.outputs["stats"]["far"]["unreachable"] == 1
    assert result.outputs["failed_tasks"][0]["host"] == "far"


async def test_playbook_that_does_not_parse_fails_with_ansibles_reason(
    workdir: Path, sink: RecordingSink
) -> None:
    write(
        workdir,
        "site.yml",
        """
        - hosts: all
          tasks:
            - name: typo
              no_such_module: {a: 1}
        """,
    )
    result = await run(ansible_job(workdir, {"playbook": "site.yml"}), sink)
    assert result.status is JobStatus.FAILED, result
    assert result.error is not None
    assert "no_such_module" in result.error
    assert not result.retryable
    assert any("no_such_module" in text for text in sink.text(LogStream.STDERR))


@pytest.mark.parametrize(
    ("fields", "error"),
    [
        ({"playbook": "../outside.yml"}, "playbook: '../outside.yml' points outside"),
        ({"playbook": "/etc/site.yml"}, "playbook: '/etc/site.yml' must be relative"),
        ({"playbook": "missing.yml"}, "playbook: missing.yml does not exist"),
        ({"inventory": {"script": "../inv.py"}}, "inventory.script: '../inv.py' points outside"),
        ({"inventory": "nope.ini"}, "inventory.file: 'nope.ini' does not exist"),
        ({"inventory": {"hosts": ["a b"]}}, "inventory.hosts[0]: 'a b' is not a host"),
        ({"inventory": {"file": "x", "hosts": ["a"]}}, "inventory: give exactly one"),
        ({"inventory": {"hosts": []}}, "inventory.hosts: must list at least one"),
        ({"extra_vars": {"bad-name": 1}}, "extra_vars.bad-name: is not a valid Ansible variable"),
        ({"forks": 0}, "forks: must be a whole number from 1 to 1000"),
        ({"limit": "--help"}, "limit: must be a host pattern"),
        ({"tags": ["a,b"]}, "tags[0]: one tag per entry"),
        ({"check": "yes"}, "check: must be true or false"),
    ],
)
async def test_bad_fields_fail_naming_the_field_without_running(
    workdir: Path, sink: RecordingSink, fields: dict[str, Any], error: str
) -> None:
    write(workdir, "site.yml", "- hosts: all\n  tasks: []\n")
    result = await run(ansible_job(workdir, {"playbook": "site.yml", **fields}), sink)
    assert result.status is JobStatus.FAILED
    assert result.error is not None
    assert result.error.startswith(error), result.error
    assert not result.retryable
    assert not sink.text(LogStream.STDOUT)


async def test_missing_ansible_runner_says_how_to_install_it(
    workdir: Path, sink: RecordingSink, monkeypatch: pytest.MonkeyPatch
) -> None:
    write(workdir, "site.yml", "- hosts: all\n  tasks: []\n")
    monkeypatch.setitem(sys.modules, "ansible_runner", None)  # makes the import fail
    result = await run(ansible_job(workdir, {"playbook": "site.yml"}), sink)
    assert result.status is JobStatus.FAILED
    assert result.error is not None
    assert "install opsflow[ansible]" in result.error
    assert not result.retryable


async def test_inventory_that_does_not_parse_fails_the_step(
    workdir: Path, sink: RecordingSink
) -> None:
    write(workdir, "hosts.ini", "[web\nalpha ansible_connection\n")
    write(workdir, "site.yml", "- hosts: all\n  tasks: []\n")
    spec = ansible_job(workdir, {"playbook": "site.yml", "inventory": "hosts.ini"})
    result = await run(spec, sink)
    assert result.status is JobStatus.FAILED, result
    assert result.error is not None
    assert "inventory" in result.error
