"""`lock_agent_dir`: one process per agent directory, released when the holder goes."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from opsflow.agent.identity import LOCK_FILE, AgentDirInUse, lock_agent_dir


def test_a_held_directory_is_refused_naming_the_holder(tmp_path: Path) -> None:
    held = lock_agent_dir(tmp_path / "work")
    try:
        with pytest.raises(AgentDirInUse) as refused:
            lock_agent_dir(tmp_path / "work")
        assert refused.value.holder == os.getpid()
        assert f"in use by another agent (pid {os.getpid()})" in refused.value.message
    finally:
        held.release()
    lock_agent_dir(tmp_path / "work").release()  # free again once released


def test_a_killed_holder_frees_the_directory(tmp_path: Path) -> None:
    code = (
        "import sys, time\n"
        "from pathlib import Path\n"
        "from opsflow.agent.identity import lock_agent_dir\n"
        "lock_agent_dir(Path(sys.argv[1]))\n"
        "print('held', flush=True)\n"
        "time.sleep(60)\n"
    )
    holder = subprocess.Popen(
        [sys.executable, "-c", code, str(tmp_path)], stdout=subprocess.PIPE, text=True
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline() == "held\n"
        with pytest.raises(AgentDirInUse) as refused:
            lock_agent_dir(tmp_path)
        assert refused.value.holder == holder.pid
    finally:
        holder.send_signal(signal.SIGKILL)
        holder.wait()
    lock_agent_dir(tmp_path).release()
    assert (tmp_path / LOCK_FILE).read_text() == f"{os.getpid()}\n"
