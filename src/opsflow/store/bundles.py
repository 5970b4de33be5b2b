"""Workflow files, content-addressed: a bundle is a set of (path, mode, blob) and a blob is bytes.

The same file in many versions is stored once (its blob), and the same directory uploaded twice
is one bundle, so publishing an unchanged workflow costs nothing. The agent calls
`materialize_bundle` to give every job a fresh copy of its version's files.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from sqlalchemy import select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Session

from opsflow.errors import InvalidInput, NotFound
from opsflow.store import tables as t

EXECUTABLE = 0o755
REGULAR = 0o644


@dataclass(frozen=True)
class BundleEntry:
    path: str
    size: int
    mode: int
    digest: str  # SHA-256 of the content


def normalize_mode(mode: int) -> int:
    """Only "executable or not" survives, so the same tree from two umasks is one bundle."""
    return EXECUTABLE if mode & 0o111 else REGULAR


def check_path(path: str) -> str:
    """A relative POSIX path inside the bundle, or `InvalidInput` naming the path."""
    pure = PurePosixPath(path)
    if not path or pure.is_absolute() or path.startswith("/"):
        raise InvalidInput(f"bundle path {path!r} must be relative to the workflow directory")
    if any(part in {"..", ""} for part in path.split("/")) or "\\" in path or "\0" in path:
        raise InvalidInput(f"bundle path {path!r} must not contain '..', empty parts or '\\'")
    return str(pure)


def bundle_digest(files: Mapping[str, tuple[bytes, int]]) -> str:
    """The digest of a file set: SHA-256 over sorted ``path\\0mode\\0content-digest`` lines."""
    h = hashlib.sha256()
    for path in sorted(files):
        data, mode = files[path]
        line = f"{path}\0{normalize_mode(mode):o}\0{hashlib.sha256(data).hexdigest()}\n"
        h.update(line.encode())
    return h.hexdigest()


def _insert_ignoring_duplicates(
    session: Session, table: object, rows: list[dict[str, object]]
) -> None:
    """INSERT ... ON CONFLICT DO NOTHING: a concurrent upload of equal content is no error."""
    if not rows:
        return
    dialect = session.get_bind().dialect.name
    insert = pg_insert if dialect == "postgresql" else sqlite_insert
    session.execute(insert(table).on_conflict_do_nothing(), rows)  # type: ignore[arg-type]


def store_bundle(session: Session, files: Mapping[str, tuple[bytes, int]]) -> str:
    """Store ``{path: (content, mode)}`` and return the bundle's digest (deduplicated)."""
    checked = {check_path(p): (data, mode) for p, (data, mode) in files.items()}
    digest = bundle_digest(checked)
    if session.get(t.Bundle, digest) is not None:
        return digest
    blobs: dict[str, bytes] = {}
    entries: list[dict[str, object]] = []
    for path, (data, mode) in sorted(checked.items()):
        blob = hashlib.sha256(data).hexdigest()
        blobs[blob] = data
        entries.append(
            {
                "bundle_digest": digest,
                "path": path,
                "blob_digest": blob,
                "mode": normalize_mode(mode),
            }
        )
    existing = set(session.scalars(select(t.Blob.digest).where(t.Blob.digest.in_(list(blobs)))))
    new_blobs = [
        {"digest": d, "size": len(data), "data": data}
        for d, data in blobs.items()
        if d not in existing
    ]
    _insert_ignoring_duplicates(session, t.Blob.__table__, new_blobs)
    total = sum(len(data) for data, _ in checked.values())
    _insert_ignoring_duplicates(
        session,
        t.Bundle.__table__,
        [{"digest": digest, "file_count": len(checked), "total_size": total}],
    )
    _insert_ignoring_duplicates(session, t.BundleFile.__table__, entries)
    return digest


def bundle_manifest(session: Session, digest: str) -> list[BundleEntry]:
    """Every file of the bundle, by path."""
    if session.get(t.Bundle, digest) is None:
        raise NotFound(f"bundle {digest} not found")
    query = (
        select(t.BundleFile.path, t.Blob.size, t.BundleFile.mode, t.Blob.digest)
        .join(t.Blob, t.Blob.digest == t.BundleFile.blob_digest)
        .where(t.BundleFile.bundle_digest == digest)
        .order_by(t.BundleFile.path)
    )
    return [BundleEntry(path=p, size=s, mode=m, digest=d) for p, s, m, d in session.execute(query)]


def read_bundle_file(session: Session, digest: str, path: str) -> bytes:
    """One file's content, for a step that names a ``file`` of its workflow."""
    query = (
        select(t.Blob.data)
        .join(t.BundleFile, t.BundleFile.blob_digest == t.Blob.digest)
        .where(t.BundleFile.bundle_digest == digest, t.BundleFile.path == path)
    )
    data = session.scalar(query)
    if data is None:
        raise NotFound(f"file {path!r} is not in the workflow's files")
    return data


def materialize_bundle(session: Session, digest: str, dest_dir: Path) -> None:
    """Write every file of the bundle under ``dest_dir`` with its mode (dirs are created)."""
    dest_dir.mkdir(parents=True, exist_ok=True)
    root = dest_dir.resolve()
    query = (
        select(t.BundleFile.path, t.BundleFile.mode, t.Blob.data)
        .join(t.Blob, t.Blob.digest == t.BundleFile.blob_digest)
        .where(t.BundleFile.bundle_digest == digest)
    )
    rows = session.execute(query).all()
    if not rows and session.get(t.Bundle, digest) is None:
        raise NotFound(f"bundle {digest} not found")
    for path, mode, data in rows:
        target = root / check_path(path)
        target.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, mode)
        with os.fdopen(fd, "wb") as out:
            out.write(data)
        os.chmod(target, mode)


def store_blob(session: Session, data: bytes) -> str:
    """Keep one piece of content (an artifact such as a saved plan); returns its digest."""
    digest = hashlib.sha256(data).hexdigest()
    _insert_ignoring_duplicates(
        session, t.Blob.__table__, [{"digest": digest, "size": len(data), "data": data}]
    )
    return digest


def read_blob(session: Session, digest: str) -> bytes:
    row = session.get(t.Blob, digest)
    if row is None:
        raise NotFound(f"content {digest[:12]} is not stored")
    return bytes(row.data)
