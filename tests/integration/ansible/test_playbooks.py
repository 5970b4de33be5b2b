"""Real ansible-playbook runs against localhost: changes, check and diff modes, selection."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from opsflow.status import JobStatus, LogStream

from ..steps.support import RecordingSink
from .support import LOCAL, ansible_job, run, write

pytestmark = pytest.mark.anyio

CONFIG_PLAYBOOK = """
- hosts: all
  gather_facts: false
  tasks:
    - name: Create config directory
      file: {path: "{{ target_dir }}", state: directory, mode: "0755"}
    - name: Create config
      template: {src: app.conf.j2, dest: "{{ target_dir }}/app.conf", mode: "0644"}
"""
TEMPLATE = """
greeting={{ greeting }}
port={{ port }}
mode={{ lookup('env', 'APP_MODE') }}
"""


@pytest.fixture
def config_playbook(workdir: Path) -> Path:
    write(workdir, "app.conf.j2", TEMPLATE)
    return write(workdir, "site.yml", CONFIG_PLAYBOOK)


async def test_playbook_creates_the_file_then_a_second_run_changes_nothing(
    workdir: Path, out: Path, config_playbook: Path, sink: RecordingSink
) -> None:
    target = out / "app"
    spec = ansible_job(
        workdir,
        {
            "playbook": "site.yml",
            # Already rendered by the server; Ansible must not template it a second time.
            "extra_vars": {
                "greeting": "hello {{ 6 * 7 }}",
                "port": 8080,
                "target_dir": str(target),
            },
            "env": {"APP_MODE": "blue"},
        },
    )
    first = await run(spec, sink)
    assert first.status is JobStatus.COMPLETED, first
    assert first.outputs["stats"]["localhost"]["changed"] == 2
    assert first.outputs["stats"]["localhost"]["failed"] == 0
    assert first.outputs["failed_tasks"] == []
    assert first.outputs["rc"] == 0
    content = (target / "app.conf").read_text()
    assert content == "greeting=hello {{ 6 * 7 }}\nport=8080\nmode=blue\n"
    stdout = sink.text(LogStream.STDOUT)
    assert "TASK [Create config]" in stdout
    assert "changed: [localhost]" in stdout
    assert "localhost : ok=2 changed=2 failed=0 unreachable=0 skipped=0" in stdout

    again = RecordingSink()
    second = await run(spec, again)
    assert second.status is JobStatus.COMPLETED, second
    assert second.outputs["stats"]["localhost"] == {
        "ok": 2,
        "changed": 0,
        "failed": 0,
        "unreachable": 0,
        "skipped": 0,
    }
    assert "ok: [localhost]" in again.text(LogStream.STDOUT)
    assert (target / "app.conf").read_text() == content


async def test_check_mode_reports_changes_without_making_them(
    workdir: Path, out: Path, config_playbook: Path, sink: RecordingSink
) -> None:
    target = out / "app"
    spec = ansible_job(
        workdir,
        {
            "playbook": "site.yml",
            "extra_vars": {"greeting": "hi", "port": 1, "target_dir": str(target)},
            "check": True,
        },
    )
    result = await run(spec, sink)
    assert result.status is JobStatus.COMPLETED, result
    assert result.outputs["stats"]["localhost"]["changed"] >= 1  # would change
    assert not target.exists()
    assert "changed: [localhost]" in sink.text(LogStream.STDOUT)


async def test_diff_mode_prints_the_difference(
    workdir: Path, out: Path, config_playbook: Path, sink: RecordingSink
) -> None:
    target = out / "app"
    target.mkdir()
    (target / "app.conf").write_text("greeting=old\nport=1\nmode=\n")
    spec = ansible_job(
        workdir,
        {
            "playbook": "site.yml",
            "extra_vars": {"greeting": "new", "port": 1, "target_dir": str(target)},
            "diff": True,
        },
    )
    result = await run(spec, sink)
    assert result.status is JobStatus.COMPLETED, result
    logged = [text for _, text in sink.lines]
    assert "-greeting=old" in logged
    assert "+greeting=new" in logged
    assert (target / "app.conf").read_text() == "greeting=new\nport=1\nmode=\n"


async def test_tags_skip_tags_and_limit_select_what_runs(
    workdir: Path, out: Path, sink: RecordingSink
) -> None:
    write(workdir, "hosts.ini", f"alpha {LOCAL}\nbeta {LOCAL}\n")
    write(
        workdir,
        "site.yml",
        """
        - hosts: all
          gather_facts: false
          tasks:
            - {name: one, tags: [one], copy: {dest: "{{ out }}/{{ inventory_hostname }}-one", content: x}}
            - {name: two, tags: [two], copy: {dest: "{{ out }}/{{ inventory_hostname }}-two", content: x}}
            - name: three
              tags: [one, three]
              copy: {dest: "{{ out }}/{{ inventory_hostname }}-three", content: x}
        """,  # noqa: E501
    )
    spec = ansible_job(
        workdir,
        {
            "playbook": "site.yml",
            "inventory": "hosts.ini",
            "extra_vars": {"out": str(out)},
            "tags": ["one"],
            "skip_tags": ["three"],
            "limit": "alpha",
            "forks": 2,
        },
    )
    result = await run(spec, sink)
    assert result.status is JobStatus.COMPLETED, result
    assert sorted(p.name for p in out.iterdir()) == ["alpha-one"]
    assert list(result.outputs["stats"]) == ["alpha"]
    assert "TASK [two]" not in sink.text(LogStream.STDOUT)


async def test_dynamic_inventory_script_supplies_hosts_and_their_variables(
    workdir: Path, out: Path, sink: RecordingSink
) -> None:
    inventory = {
        "web": {"hosts": ["scripted"]},
        "_meta": {
            "hostvars": {
                "scripted": {
                    "ansible_connection": "local",
                    "ansible_python_interpreter": "{{ ansible_playbook_python }}",
                    "color": "blue",
                }
            }
        },
    }
    script = write(
        workdir,
        "inventory/dynamic.py",
        f"""
        #!/usr/bin/env python3
        import json
        print(json.dumps({inventory!r}))
        """,
    )
    script.chmod(0o644)  # as an upload may leave it: the executor makes its copy executable
    write(
        workdir,
        "site.yml",
        """
        - hosts: web
          gather_facts: false
          tasks:
            - copy: {dest: "{{ out }}/color", content: "{{ color }}"}
        """,
    )
    spec = ansible_job(
        workdir,
        {
            "playbook": "site.yml",
            "inventory": {"script": "inventory/dynamic.py"},
            "extra_vars": {"out": str(out)},
        },
    )
    result = await run(spec, sink)
    assert result.status is JobStatus.COMPLETED, result
    assert (out / "color").read_text() == "blue"
    assert result.outputs["stats"]["scripted"]["changed"] == 1


async def test_become_runs_tasks_through_the_become_method(
    workdir: Path, out: Path, sink: RecordingSink
) -> None:
    # This machine has no sudo; a stand-in on PATH records how Ansible called it and runs the
    # command, which shows that `become: true` made Ansible escalate each task.
    fake_sudo = write(
        workdir,
        "bin/sudo",
        """
        #!/bin/sh
        echo "$@" >> "$SUDO_CALLS"
        while [ $# -gt 0 ]; do
          case "$1" in -u|-p) shift 2;; -*) shift;; *) break;; esac
        done
        exec "$@"
        """,
    )
    fake_sudo.chmod(0o755)
    write(
        workdir,
        "site.yml",
        """
        - hosts: all
          gather_facts: false
          become_user: nobody
          tasks:
            - command: "true"
        """,
    )
    calls = out / "sudo-calls"
    env = {
        "PATH": f"{fake_sudo.parent}:/usr/bin:/bin",
        "SUDO_CALLS": str(calls),
        # Modules go through stdin, so no temporary files need handing to the other user.
        "ANSIBLE_PIPELINING": "True",
    }
    spec = ansible_job(workdir, {"playbook": "site.yml", "become": True, "env": env})
    result = await run(spec, sink)
    assert result.status is JobStatus.COMPLETED, result
    assert "-u nobody" in calls.read_text()


async def test_debug_messages_and_loop_items_are_readable_lines(
    workdir: Path, sink: RecordingSink
) -> None:
    write(
        workdir,
        "site.yml",
        """
        - hosts: all
          gather_facts: false
          tasks:
            - debug: {msg: "deploying {{ version }}"}
            - {name: each, debug: {msg: "{{ item }}"}, loop: [a, b]}
        """,
    )
    spec = ansible_job(workdir, {"playbook": "site.yml", "extra_vars": {"version": "1.4.2"}})
    result = await run(spec, sink)
    assert result.status is JobStatus.COMPLETED, result
    stdout = sink.text(LogStream.STDOUT)
    assert "ok: [localhost] => deploying 1.4.2" in stdout
    assert "ok: [localhost] (item=b) => b" in stdout
    json.dumps(result.outputs)  # outputs are plain JSON for the server
