"""First start: create the ``admin`` user and leave its credentials in the data dir.

The password comes from ``OPSFLOW_ADMIN_PASSWORD`` or is generated and written to
``<data_dir>/admin-password``; an admin API token is written to ``<data_dir>/admin-token``,
which the CLI on the same machine finds by itself. Both files are mode 0600. A later start
keeps a valid token file and replaces one whose token no longer works.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path

from opsflow.auth.credentials import authenticate_token, issue_token
from opsflow.auth.passwords import generate_password, hash_password
from opsflow.auth.permissions import Role
from opsflow.config import Settings
from opsflow.errors import Conflict, Unauthorized
from opsflow.store import audit
from opsflow.store import users as user_store
from opsflow.store.base import utcnow
from opsflow.store.db import Database

log = logging.getLogger(__name__)

ADMIN_USER = "admin"
PASSWORD_FILE = "admin-password"
TOKEN_FILE = "admin-token"
SYSTEM_ACTOR = "system"


@dataclass(frozen=True)
class Bootstrap:
    """What the first start left behind, for the start-up banner."""

    password_file: Path | None  # None: the password came from OPSFLOW_ADMIN_PASSWORD
    token_file: Path | None  # None: no active admin user to issue a token for
    created_admin: bool


def write_secret_file(path: Path, secret: str) -> None:
    """Write ``secret`` readable by the owner only (0600, also when the file existed)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as out:
        out.write(secret + "\n")
    os.chmod(path, 0o600)


def bootstrap(db: Database, settings: Settings) -> Bootstrap:
    """Create the first admin if there are no users; make sure the token file works."""
    data_dir = settings.data_dir
    data_dir.mkdir(parents=True, exist_ok=True)
    password_file = data_dir / PASSWORD_FILE
    created_admin = False
    generated: str | None = None
    with db.session() as session:
        if user_store.count_users(session) == 0:
            password = settings.admin_password or generate_password()
            generated = None if settings.admin_password else password
            try:
                with session.begin_nested():
                    user_store.create_user(
                        session,
                        name=ADMIN_USER,
                        role=Role.ADMIN,
                        password_hash=hash_password(password),
                        display_name="Administrator",
                    )
                    audit.record(
                        session, SYSTEM_ACTOR, "user.create", ADMIN_USER, {"role": "admin"}
                    )
                created_admin = True
            except Conflict:  # another replica created it first
                generated = None
    if generated is not None:
        write_secret_file(password_file, generated)
        log.warning("created user %r; its password is in %s (mode 0600)", ADMIN_USER, password_file)
    elif created_admin:
        log.warning("created user %r with the password from OPSFLOW_ADMIN_PASSWORD", ADMIN_USER)
    token_file = _ensure_token_file(db, data_dir / TOKEN_FILE)
    return Bootstrap(
        password_file=password_file if password_file.exists() else None,
        token_file=token_file,
        created_admin=created_admin,
    )


def _ensure_token_file(db: Database, path: Path) -> Path | None:
    with db.session() as session:
        if path.is_file():
            try:
                principal = authenticate_token(session, path.read_text().strip(), utcnow())
                if principal.role == Role.ADMIN:
                    return path
            except Unauthorized:
                pass
        admin = user_store.find_user(session, ADMIN_USER)
        if admin is None or not admin.active or admin.role != Role.ADMIN:
            log.warning("no active %r user: not writing %s", ADMIN_USER, path)
            return None
        token, secret = issue_token(session, ADMIN_USER, f"admin token in {path}", None)
        audit.record(session, SYSTEM_ACTOR, "token.create", token.id, {"user": ADMIN_USER})
    write_secret_file(path, secret)
    log.warning("wrote an API token for %r to %s (mode 0600)", ADMIN_USER, path)
    return path
