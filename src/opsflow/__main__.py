"""``python -m opsflow``: the ``opsflow`` command (the same entry point as the script)."""

from opsflow.cli.main import app

if __name__ == "__main__":
    app(prog_name="opsflow")
