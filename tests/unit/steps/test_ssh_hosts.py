"""Reading an ssh step's ``hosts`` in each shape it takes (pure: no host is contacted)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from opsflow.steps.config import StepConfig, StepConfigError
from opsflow.steps.ssh_hosts import Host, read_hosts
from opsflow.steps.ssh_login import Target


def hosts(value: Any, workdir: Path = Path("/nonexistent")) -> list[Host]:
    return read_hosts(StepConfig({"hosts": value}), workdir, 22)


def test_a_list_with_ports_and_ipv6_addresses() -> None:
    assert hosts(["web1", "web2:2222", "[2001:db8::5]:2200", "2001:db8::6", "web1"]) == [
        Host("web1", Target("web1", 22)),
        Host("web2:2222", Target("web2", 2222)),
        Host("[2001:db8::5]:2200", Target("2001:db8::5", 2200)),
        Host("2001:db8::6", Target("2001:db8::6", 22)),
    ]  # the repeated web1 runs once


def test_a_rendered_string_splits_on_commas_and_spaces_or_reads_json() -> None:
    assert [h.name for h in hosts(" a, b  c,,d ")] == ["a", "b", "c", "d"]
    assert [h.name for h in hosts('["a", "b:23"]')] == ["a", "b:23"]
    assert [h.target for h in hosts("[::1]:2222")] == [Target("::1", 2222)]
    assert [h.name for h in hosts({"hosts": ["x", "y"]})] == ["x", "y"]


@pytest.mark.parametrize(
    ("value", "field", "message"),
    [
        (None, "hosts", "is required"),
        ([], "hosts", "must list at least one entry"),
        ("  ", "hosts", "names no host"),
        (["web1:99999"], "hosts[0]", "port must be a number from 1 to 65535"),
        (["-oProxyCommand=x"], "hosts[0]", "is not a host name"),
        ("['a', 'b']", "hosts", "is not a JSON list"),
        ({"hosts": ["a"], "pattern": "web"}, "hosts.pattern", "goes with file or script"),
        ({"file": "inv.ini", "hosts": ["a"]}, "hosts", "exactly one of"),
        ({"fiel": "inv.ini"}, "hosts.fiel", "is not a field of hosts"),
        ({"file": "../../etc/hosts"}, "hosts.file", "inside the workflow's files"),
        (7, "hosts", "must be a list of hosts"),
    ],
)
def test_bad_hosts_name_the_field(value: Any, field: str, message: str, tmp_path: Path) -> None:
    with pytest.raises(StepConfigError) as caught:
        hosts(value, tmp_path)
    assert caught.value.field == field and message in caught.value.message, caught.value
