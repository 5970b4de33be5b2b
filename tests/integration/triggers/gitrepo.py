"""A real git remote for the git trigger tests: a bare repository and a clone that pushes to
it, with a fixed author and no user configuration."""

from __future__ import annotations

import subprocess
from pathlib import Path


def git(*args: str, cwd: Path) -> str:
    env = {
        "GIT_AUTHOR_NAME": "Ada",
        "GIT_AUTHOR_EMAIL": "ada@example.com",
        "GIT_COMMITTER_NAME": "Ada",
        "GIT_COMMITTER_EMAIL": "ada@example.com",
        "HOME": str(cwd),
        "PATH": "/usr/bin:/bin",
    }
    done = subprocess.run(
        ["git", *args], cwd=cwd, env=env, check=True, capture_output=True, text=True
    )
    return done.stdout.strip()


class Remote:
    """A bare repository and a clone that pushes to it."""

    def __init__(self, root: Path) -> None:
        self.bare = root / "remote.git"
        self.work = root / "work"
        git("init", "--bare", "--initial-branch=main", str(self.bare), cwd=root)
        git("clone", str(self.bare), str(self.work), cwd=root)
        git("checkout", "-b", "main", cwd=self.work)
        self.commit("first")

    def commit(self, message: str, branch: str = "main") -> str:
        git("checkout", "-B", branch, cwd=self.work)
        (self.work / "file.txt").write_text(message)
        git("add", "file.txt", cwd=self.work)
        git("commit", "-m", message, cwd=self.work)
        git("push", "-f", "origin", branch, cwd=self.work)
        return git("rev-parse", "HEAD", cwd=self.work)
