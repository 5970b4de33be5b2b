"""Reading an uploaded workflow directory (``.tar.gz``) into ``{path: (content, mode)}``.

The archive is untrusted: absolute paths, ``..``, links that leave the directory, device files
and oversized content are refused before anything is stored. Members are read as a stream and
counted as they come, so a small archive that inflates to gigabytes stops at the limit.
"""

from __future__ import annotations

import posixpath
import tarfile
from io import BytesIO

from opsflow.errors import InvalidInput, PayloadTooLarge, Problem
from opsflow.words import counted

MAX_FILES = 10_000


def _too_large(limit: int, what: str) -> PayloadTooLarge:
    return PayloadTooLarge(
        f"the workflow files are too large: {what}; the limit is {limit} bytes "
        f"({limit / 1024 / 1024:g} MB, server setting max_bundle_bytes). Leave large files out "
        "with .opsflowignore, or fetch them in the step"
    )


def _member_path(name: str) -> str | None:
    """The member's path relative to the root, or None if it is absolute or escapes."""
    if name.startswith("/") or "\\" in name:
        return None
    parts = [p for p in name.split("/") if p not in ("", ".")]
    if not parts or ".." in parts:
        return None
    return "/".join(parts)


def read_bundle_archive(data: bytes, max_bytes: int) -> dict[str, tuple[bytes, int]]:
    """The regular files of a gzipped (or plain) tar; links inside the tree become copies."""
    if len(data) > max_bytes:
        raise _too_large(max_bytes, f"the upload is {len(data)} bytes")
    files: dict[str, tuple[bytes, int]] = {}
    links: dict[str, str] = {}  # path -> target path inside the bundle
    problems: list[Problem] = []
    total = 0
    try:
        with tarfile.open(fileobj=BytesIO(data), mode="r|*") as tar:
            for member in tar:
                path = _member_path(member.name)
                if path is None:
                    problems.append(
                        Problem(
                            f"bundle:{member.name}",
                            "paths must be relative and stay inside the workflow directory "
                            "(no leading '/', no '..')",
                        )
                    )
                    continue
                if member.isdir():
                    continue
                if member.issym() or member.islnk():
                    base = posixpath.dirname(path) if member.issym() else ""
                    target = _member_path(posixpath.normpath(posixpath.join(base, member.linkname)))
                    if member.linkname.startswith("/") or target is None:
                        problems.append(
                            Problem(
                                f"bundle:{path}",
                                f"link to {member.linkname!r} points outside the workflow "
                                "directory; copy the file into the directory instead",
                            )
                        )
                    else:
                        links[path] = target
                    continue
                if not member.isfile():
                    problems.append(
                        Problem(f"bundle:{path}", "only regular files, directories and links")
                    )
                    continue
                total += member.size
                if total > max_bytes:
                    raise _too_large(max_bytes, f"more than {max_bytes} bytes uncompressed")
                if len(files) >= MAX_FILES:
                    raise InvalidInput(f"the workflow files hold more than {MAX_FILES} files")
                extracted = tar.extractfile(member)
                assert extracted is not None  # a regular file always has content
                files[path] = (extracted.read(), member.mode)
    except (tarfile.TarError, EOFError, OSError) as exc:
        raise InvalidInput(
            f"bundle is not a readable .tar.gz archive: {exc}",
            problems=[Problem("bundle", "upload the workflow directory as a gzipped tar")],
        ) from None
    for path, target in sorted(links.items()):
        seen = {path}
        while target in links and target not in seen:  # a link to a link
            seen.add(target)
            target = links[target]
        if target not in files:
            problems.append(
                Problem(f"bundle:{path}", f"link target {target!r} is not a file in the bundle")
            )
            continue
        files[path] = files[target]
    if problems:
        raise InvalidInput(
            f"the workflow files are refused: {counted(len(problems), 'problem')}",
            problems=problems,
        )
    return files
