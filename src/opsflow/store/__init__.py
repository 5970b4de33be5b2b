"""The database: the schema (SQLAlchemy models, Alembic migrations) and every query.

Nothing outside this package imports SQLAlchemy. Query modules take a ``Session`` (one
transaction, from ``Database.session()``) and return frozen dataclasses, never ORM rows.
"""
