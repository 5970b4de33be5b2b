"""The demo: apply and publish every example workflow that validates and that the local agent
can run, at server start. Examples whose steps need another pool (regional agents, database
hosts) are left out with a line saying why, rather than loaded to hang with queued jobs.

Each notify channel the examples name and the server lacks becomes a stand-in the demo owns:
``opsflowlog://NAME``, which writes the message to the server's log. What else an example
needs (a CDN, Prometheus, hosts to deploy to, secrets) its description says."""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from opsflow.api.definitions import from_yaml
from opsflow.auth.bootstrap import ADMIN_USER
from opsflow.auth.secrets import SecretBox
from opsflow.errors import OpsflowError
from opsflow.runtime.context import agent_placement
from opsflow.runtime.roster import AgentPresence
from opsflow.status import GATE_TYPES
from opsflow.store import audit, bundles, users
from opsflow.store import workflows as store
from opsflow.store.db import Database
from opsflow.triggers import sync as triggers_sync

log = logging.getLogger(__name__)

WORKFLOW_FILE = "workflow.yaml"
SKIPPED_DIRS = frozenset({".git", "__pycache__"})
DEMO_ACTOR = "system"
# steps.notify's own Apprise scheme; not imported from there, since the server imports Apprise
# only in the agent's worker thread (it is slow to import), and the demo's test runs it.
LOG_CHANNEL = "opsflowlog://{name}"


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


def unserved(definition: dict[str, Any], agents: list[AgentPresence]) -> list[str]:
    """Why ``definition`` cannot run on ``agents``: one line per step no agent would take."""
    out: list[str] = []
    for raw in definition.get("steps") or []:
        if raw.get("type") in GATE_TYPES:
            continue
        pool, labels = agent_placement(definition, raw)
        if not any(a.serves(pool, labels) for a in agents):
            wanted = "".join(f" {k}={v}" for k, v in sorted(labels.items()))
            out.append(f"step {raw.get('id')} needs an agent of pool {pool}{wanted}")
    return out


def stand_in_channels(examples: Path, configured: Mapping[str, list[str]]) -> dict[str, list[str]]:
    """A log-writing stand-in (``opsflowlog://NAME``) for each notify channel the examples
    name (the workflow's ``notify.channel``, a step's ``channel``) that is not ``configured``."""
    named: set[str] = set()
    for yaml_file, _ in _sources(examples):
        try:
            definition = from_yaml(yaml_file.read_text(encoding="utf-8")).definition
        except OpsflowError:
            continue  # load_examples says why it skips this one
        named.add(str((definition.get("notify") or {}).get("channel") or ""))
        named |= {str(raw.get("channel") or "") for raw in definition.get("steps") or []}
    missing = sorted(name for name in named if name and name not in configured)
    return {name: [LOG_CHANNEL.format(name=name)] for name in missing}


def load_examples(
    db: Database, examples: Path, box: SecretBox, agents: list[AgentPresence] | None = None
) -> list[str]:
    """Apply and publish each example that ``agents`` can run (all when None); returns the ids
    loaded. Invalid ones and ones no agent could run are logged and left out."""
    loaded: list[str] = []
    for yaml_file, directory in _sources(examples):
        try:
            submission = from_yaml(yaml_file.read_text(encoding="utf-8"))
            missing = unserved(submission.definition, agents) if agents is not None else []
            if missing:
                log.warning(
                    "demo: left out %s: no agent of this server can run it (%s)",
                    submission.definition.get("id"),
                    "; ".join(missing),
                )
                continue
            with db.session() as session:
                digest = bundles.store_bundle(session, _files(directory)) if directory else None
                wf, created = store.save_draft(
                    session,
                    definition=submission.definition,
                    yaml_text=submission.yaml_text,
                    bundle_digest=digest,
                    actor=DEMO_ACTOR,
                )
                version, new = triggers_sync.publish(session, wf.id, DEMO_ACTOR, box, time.time())
                if created or new:
                    audit.record(
                        session, DEMO_ACTOR, "workflow.publish", wf.id, {"version": version.number}
                    )
        except OpsflowError as exc:
            details = "; ".join(p.format(str(yaml_file)) for p in exc.problems) or exc.message
            log.warning("demo: skipped %s: %s", yaml_file, details)
            continue
        loaded.append(wf.id)
        _admin_joins_approver_teams(db, submission.definition)
    log.info("demo: loaded %d example workflows from %s", len(loaded), examples)
    return loaded


def _admin_joins_approver_teams(db: Database, definition: dict[str, Any]) -> None:
    """Create each team a demo gate names (``team:NAME`` approvers) and put the bootstrap
    ``admin`` in it, so that whoever tries the demo can answer its approvals. Only the demo does
    this: a real installation decides its teams itself."""
    teams = {
        approver[5:]
        for raw in definition.get("steps") or []
        for approver in raw.get("approvers") or []
        if isinstance(approver, str) and approver.startswith("team:")
    }
    for team in sorted(teams):
        with db.session() as session:
            if users.find_user(session, ADMIN_USER) is None:
                return
            if team not in {t.name for t in users.list_teams(session)}:
                users.create_team(session, team)
                audit.record(session, DEMO_ACTOR, "team.create", team, {"members": []})
            if users.add_member(session, team, ADMIN_USER):
                audit.record(session, DEMO_ACTOR, "team.member.add", team, {"user": ADMIN_USER})
                log.info("demo: %s joins team %s to answer the demo's approvals", ADMIN_USER, team)
