"""Password hashing with argon2id; the hash string carries its own parameters and salt."""

from __future__ import annotations

import secrets

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from opsflow.errors import InvalidInput

MIN_PASSWORD_LENGTH = 8
# OWASP's recommended argon2id settings (19 MiB, 2 passes, 1 lane): strong against offline
# guessing, yet cheap enough that HTTP Basic auth on every CLI request stays fast. The hash
# string records its parameters, so changing them later still verifies old hashes.
_hasher = PasswordHasher(time_cost=2, memory_cost=19 * 1024, parallelism=1)


def hash_password(password: str) -> str:
    """The argon2id hash to store; refuses passwords too short to be worth hashing."""
    if len(password) < MIN_PASSWORD_LENGTH:
        raise InvalidInput(f"password is too short: use at least {MIN_PASSWORD_LENGTH} characters")
    return _hasher.hash(password)


def verify_password(password_hash: str, password: str) -> bool:
    """Whether ``password`` matches; a malformed stored hash counts as no match."""
    try:
        return _hasher.verify(password_hash, password)
    except (VerificationError, InvalidHashError):
        return False


def generate_password() -> str:
    """A random password for the first admin when none was given (~128 bits)."""
    return secrets.token_urlsafe(16)
