"""Uploading a workflow's directory: stored content-addressed, limits and escapes refused."""

from __future__ import annotations

import io
import tarfile
from pathlib import Path

from fastapi.testclient import TestClient
from httpx2 import Response

from opsflow.config import Settings
from opsflow.store import bundles
from opsflow.store.db import Database
from tests.integration.api.conftest import MAX_BUNDLE_BYTES

SCRIPT_WORKFLOW = """id: with-files
steps:
  - id: run
    type: script
    shell: sh
    file: scripts/run.sh
"""


def make_tar(entries: list[tarfile.TarInfo | tuple[str, bytes, int]]) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        for entry in entries:
            if isinstance(entry, tarfile.TarInfo):
                tar.addfile(entry)
                continue
            name, data, mode = entry
            info = tarfile.TarInfo(name)
            info.size, info.mode = len(data), mode
            tar.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


def link(name: str, target: str) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type, info.linkname = tarfile.SYMTYPE, target
    return info


def put(client: TestClient, archive: bytes, definition: str = SCRIPT_WORKFLOW) -> Response:
    return client.put(
        "/api/v1/workflows/with-files?publish=true",
        data={"definition": definition},
        files={"bundle": ("with-files.tar.gz", archive, "application/gzip")},
    )


def test_files_are_stored_with_the_version_and_materialize_with_modes(
    client: TestClient, settings: Settings, tmp_path: Path
) -> None:
    archive = make_tar(
        [
            ("workflow.yaml", SCRIPT_WORKFLOW.encode(), 0o644),
            ("scripts/run.sh", b"#!/bin/sh\necho run\n", 0o755),
            link("scripts/again.sh", "run.sh"),
        ]
    )
    response = put(client, archive)
    assert response.status_code == 201, response.text
    version = client.get("/api/v1/workflows/with-files/versions/1").json()
    files = {f["path"]: f["mode"] for f in version["files"]}
    assert files == {"scripts/again.sh": "755", "scripts/run.sh": "755", "workflow.yaml": "644"}

    db = Database(settings.db_url)
    try:
        with db.session() as session:
            bundles.materialize_bundle(session, version["bundle_digest"], tmp_path / "work")
    finally:
        db.dispose()
    script = tmp_path / "work" / "scripts" / "run.sh"
    assert script.read_bytes() == b"#!/bin/sh\necho run\n"
    assert script.stat().st_mode & 0o777 == 0o755
    assert (tmp_path / "work" / "scripts" / "again.sh").read_bytes() == script.read_bytes()

    # The same directory again is the same bundle: no new version.
    again = put(client, archive)
    assert again.json()["created_version"] is False
    # A changed file is a new version, even with the same YAML.
    changed = put(client, make_tar([("scripts/run.sh", b"echo v2\n", 0o755)]))
    assert changed.json()["created_version"] is True and changed.json()["version"] == 2


def test_a_step_file_missing_from_the_bundle_is_located(client: TestClient) -> None:
    response = put(client, make_tar([("scripts/other.sh", b"true\n", 0o755)]))
    assert response.status_code == 422
    (error,) = response.json()["errors"]
    assert error["loc"] == "steps[0].file" and error["line"] == 6


def test_paths_escaping_the_directory_are_refused(client: TestClient) -> None:
    archive = make_tar(
        [
            ("scripts/run.sh", b"true\n", 0o755),
            ("../outside.sh", b"x", 0o644),
            ("/etc/passwd", b"x", 0o644),
            link("scripts/evil", "../../etc/shadow"),
            link("abs", "/etc/hosts"),
        ]
    )
    response = put(client, archive)
    assert response.status_code == 422
    locs = sorted(e["loc"] for e in response.json()["errors"])
    assert locs == [
        "bundle:../outside.sh",
        "bundle:/etc/passwd",
        "bundle:abs",
        "bundle:scripts/evil",
    ]
    assert client.get("/api/v1/workflows/with-files").status_code == 404


def test_a_bundle_over_the_limit_is_refused_with_413_naming_the_limit(client: TestClient) -> None:
    big = bytes(
        MAX_BUNDLE_BYTES + 1
    )  # zeros: compresses to almost nothing, inflates past the limit
    response = put(
        client, make_tar([("scripts/run.sh", b"true\n", 0o755), ("big.bin", big, 0o644)])
    )
    assert response.status_code == 413
    assert str(MAX_BUNDLE_BYTES) in response.json()["detail"]
    assert "max_bundle_bytes" in response.json()["detail"]
    assert client.get("/api/v1/workflows/with-files").status_code == 404


def test_a_file_that_is_not_an_archive_is_refused(client: TestClient) -> None:
    response = put(client, b"this is not a tarball")
    assert response.status_code == 422
    assert "tar.gz" in response.json()["detail"]
