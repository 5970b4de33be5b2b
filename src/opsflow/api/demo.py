"""The demo: apply and publish every example workflow that validates, at server start."""

from __future__ import annotations

import logging
import os
from pathlib import Path

from opsflow.api.definitions import from_yaml
from opsflow.errors import OpsflowError
from opsflow.store import audit, bundles
from opsflow.store import workflows as store
from opsflow.store.db import Database

log = logging.getLogger(__name__)

WORKFLOW_FILE = "workflow.yaml"
SKIPPED_DIRS = frozenset({".git", "__pycache__"})
DEMO_ACTOR = "system"


def find_examples_dir() -> Path | None:
    """``./examples`` in the working directory, else the one beside the source checkout."""
    for candidate in (Path.cwd() / "examples", Path(__file__).resolve().parents[3] / "examples"):
        if candidate.is_dir():
            return candidate
    return None


def _files(directory: Path) -> dict[str, tuple[bytes, int]]:
    files: dict[str, tuple[bytes, int]] = {}
    for root, dirs, names in os.walk(directory):
        dirs[:] = sorted(d for d in dirs if d not in SKIPPED_DIRS)
        for name in names:
            path = Path(root) / name
            if path.is_file():
                rel = path.relative_to(directory).as_posix()
                files[rel] = (path.read_bytes(), path.stat().st_mode)
    return files


def _sources(examples: Path) -> list[tuple[Path, Path | None]]:
    """(YAML file, directory of its files or None) for each example."""
    found: list[tuple[Path, Path | None]] = []
    for child in sorted(examples.iterdir()):
        if child.is_dir() and (child / WORKFLOW_FILE).is_file():
            found.append((child / WORKFLOW_FILE, child))
        elif child.is_file() and child.suffix in {".yaml", ".yml"}:
            found.append((child, None))
    return found


def load_examples(db: Database, examples: Path) -> list[str]:
    """Apply and publish each example; returns the ids loaded. Invalid ones are logged, skipped."""
    loaded: list[str] = []
    for yaml_file, directory in _sources(examples):
        try:
            submission = from_yaml(yaml_file.read_text(encoding="utf-8"))
            with db.session() as session:
                digest = bundles.store_bundle(session, _files(directory)) if directory else None
                wf, created = store.save_draft(
                    session,
                    definition=submission.definition,
                    yaml_text=submission.yaml_text,
                    bundle_digest=digest,
                    actor=DEMO_ACTOR,
                )
                version, new = store.publish(session, wf.id, DEMO_ACTOR)
                if created or new:
                    audit.record(
                        session, DEMO_ACTOR, "workflow.publish", wf.id, {"version": version.number}
                    )
        except OpsflowError as exc:
            details = "; ".join(p.format(str(yaml_file)) for p in exc.problems) or exc.message
            log.warning("demo: skipped %s: %s", yaml_file, details)
            continue
        loaded.append(wf.id)
    log.info("demo: loaded %d example workflows from %s", len(loaded), examples)
    return loaded
