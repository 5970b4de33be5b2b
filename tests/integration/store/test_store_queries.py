"""The store below the API: file dedup, conflicts, aware timestamps, concurrent publishes."""

from __future__ import annotations

import threading
from datetime import UTC
from pathlib import Path

import pytest
from sqlalchemy import func, select

from opsflow.auth.permissions import Role
from opsflow.errors import Conflict, NotFound
from opsflow.store import bundles, users, workflows
from opsflow.store import tables as t
from opsflow.store.db import Database

DEFINITION = {"id": "wf", "steps": [{"id": "a", "type": "script", "shell": "sh", "run": "true"}]}


def test_bundles_and_blobs_are_stored_once(database: Database, tmp_path: Path) -> None:
    files = {"run.sh": (b"echo hi\n", 0o775), "lib/common.sh": (b"x=1\n", 0o600)}
    with database.session() as session:
        first = bundles.store_bundle(session, files)
    with database.session() as session:
        again = bundles.store_bundle(session, dict(files))
        other = bundles.store_bundle(session, {"copy.sh": (b"echo hi\n", 0o755)})
        blob_count = session.scalar(select(func.count()).select_from(t.Blob))
        manifest = bundles.bundle_manifest(session, first)
    assert first == again != other
    assert blob_count == 2  # "echo hi" is one blob shared by both bundles
    assert [(e.path, e.mode, e.size) for e in manifest] == [
        ("lib/common.sh", 0o644, 4),
        ("run.sh", 0o755, 8),
    ]
    with database.session() as session:
        bundles.materialize_bundle(session, first, tmp_path / "job")
        assert bundles.read_bundle_file(session, first, "run.sh") == b"echo hi\n"
        with pytest.raises(NotFound):
            bundles.read_bundle_file(session, first, "missing.sh")
    assert (tmp_path / "job" / "lib" / "common.sh").read_text() == "x=1\n"
    assert (tmp_path / "job" / "run.sh").stat().st_mode & 0o777 == 0o755


def test_bundle_paths_must_stay_inside(database: Database) -> None:
    from opsflow.errors import InvalidInput

    with database.session() as session, pytest.raises(InvalidInput, match=r"'\.\.'"):
        bundles.store_bundle(session, {"../x": (b"", 0o644)})


def test_a_duplicate_name_is_a_conflict_and_timestamps_are_aware(database: Database) -> None:
    with database.session() as session:
        user = users.create_user(session, name="ana", role=Role.VIEWER)
    assert user.created_at.tzinfo is not None and user.created_at.utcoffset() == UTC.utcoffset(None)
    with pytest.raises(Conflict, match="already exists"), database.session() as session:
        users.create_user(session, name="ana", role=Role.ADMIN)
    with database.session() as session:
        assert users.get_user(session, "ana").role == Role.VIEWER


def test_concurrent_publishes_create_one_version(database: Database) -> None:
    with database.session() as session:
        workflows.save_draft(
            session, definition=DEFINITION, yaml_text="", bundle_digest=None, actor="t"
        )
    created: list[bool] = []
    errors: list[BaseException] = []
    barrier = threading.Barrier(4)

    def publish() -> None:
        barrier.wait()
        try:
            with database.session() as session:
                created.append(workflows.publish(session, "wf", "t")[1])
        except BaseException as exc:  # collected and asserted below
            errors.append(exc)

    threads = [threading.Thread(target=publish) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert sorted(created) == [False, False, False, True]
    with database.session() as session:
        assert [v.number for v in workflows.list_versions(session, "wf")] == [1]
