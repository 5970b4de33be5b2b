"""The transaction handle every query function takes, named here so that code outside
``store/`` can type it without importing SQLAlchemy."""

from __future__ import annotations

from sqlalchemy.orm import Session

__all__ = ["Session"]
