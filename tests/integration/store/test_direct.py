"""`store.direct.Direct` gives the same rows and writes the same values as SQLAlchemy's own
execution, on both backends: JSON (nested, empty, JSON null and SQL NULL), booleans, floats,
expanded ``IN`` lists, a ``LIMIT`` parameter, ``RETURNING``, an ``UPDATE`` whose columns
come from its parameters (``column_keys``), many rows in one call, and the driver's errors
raised as SQLAlchemy raises them."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from sqlalchemy import (
    Boolean,
    Column,
    Float,
    Integer,
    MetaData,
    String,
    Table,
    bindparam,
    event,
    insert,
    select,
    update,
)
from sqlalchemy.exc import IntegrityError

from opsflow.store.base import JSONType
from opsflow.store.db import Database
from opsflow.store.direct import Direct, DirectByKeys

META = MetaData()
ROWS = Table(
    "direct_rows",
    META,
    Column("id", Integer, primary_key=True),
    Column("name", String(20)),
    Column("doc", JSONType),
    Column("flag", Boolean),
    Column("at", Float),
    Column("tags", JSONType, default=dict),
)
VALUES: list[dict[str, Any]] = [
    {"id": 1, "name": "a", "doc": {"k": [1, 2, {"x": None}], "s": "é"}, "flag": True, "at": 1.5},
    {"id": 2, "name": "b", "doc": {}, "flag": False, "at": None},
    {"id": 3, "name": "c", "doc": None, "flag": None, "at": 2.0},
    {"id": 4, "name": "d", "doc": [1, "two"], "flag": True, "at": 1e9 + 0.25},
]
SELECTED = (
    select(ROWS)
    .where(ROWS.c.name.in_(bindparam("b_names", expanding=True)))
    .order_by(ROWS.c.id)
    .limit(bindparam("b_limit"))
)
CHANGE = update(ROWS).where(ROWS.c.id == bindparam("b_id")).returning(ROWS.c.id, ROWS.c.doc)


@pytest.fixture
def rows(database: Database) -> Iterator[Database]:
    META.create_all(database.engine)
    with database.session() as session:
        session.connection().execute(ROWS.insert(), VALUES)
    try:
        yield database
    finally:
        META.drop_all(database.engine)


def test_direct_reads_what_sqlalchemy_reads(rows: Database) -> None:
    direct = Direct(SELECTED)
    for names, limit in ((["a", "b", "c", "d"], 10), (["d", "a"], 10), (["b", "c", "d"], 2)):
        params = {"b_names": names, "b_limit": limit}
        with rows.session() as session:
            expected = [tuple(r) for r in session.connection().execute(SELECTED, params)]
            got = direct.all(session, params)
            first = direct.first(session, params)
        assert got == expected
        assert first == expected[0]
    assert [r[0] for r in got] == [2, 3]
    with rows.session() as session:
        assert direct.first(session, {"b_names": ["nobody"], "b_limit": 5}) is None


@pytest.mark.parametrize("doc", [{"n": [1, {"deep": True}]}, {}, None, [None, "x"]])
def test_direct_writes_what_sqlalchemy_writes(rows: Database, doc: Any) -> None:
    direct = Direct(CHANGE, column_keys=("doc", "flag", "at"))
    with rows.session() as session:
        mine = direct.first(session, {"b_id": 1, "doc": doc, "flag": False, "at": 3.25})
        theirs = session.connection().execute(
            CHANGE, {"b_id": 2, "doc": doc, "flag": False, "at": 3.25}
        )
        assert mine == (1, doc)
        assert [tuple(r) for r in theirs] == [(2, doc)]
    with rows.session() as session:
        stored = session.connection().execute(
            select(ROWS.c.doc, ROWS.c.flag, ROWS.c.at, ROWS.c.doc.is_(None)).where(
                ROWS.c.id.in_([1, 2])
            )
        )
        first, second = (tuple(r) for r in stored)
    # JSON null and SQL NULL alike: a Python None is stored as SQLAlchemy stores it.
    assert first == second
    assert first[:3] == (doc, False, 3.25)


def test_direct_counts_rows_changed_and_is_seen_by_statement_listeners(rows: Database) -> None:
    seen: list[str] = []

    def on_statement(_conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
        seen.append(statement.split()[0].upper())

    flag = Direct(
        update(ROWS).where(ROWS.c.flag.is_(True)).values(flag=bindparam("b_flag", type_=Boolean))
    )
    event.listen(rows.engine, "before_cursor_execute", on_statement)
    try:
        with rows.session() as session:
            assert flag.run(session, {"b_flag": False}) == 2
            assert flag.run(session, {"b_flag": False}) == 0
    finally:
        event.remove(rows.engine, "before_cursor_execute", on_statement)
    assert seen.count("UPDATE") == 2


def test_direct_inserts_many_rows_as_sqlalchemy_does(rows: Database) -> None:
    docs: list[Any] = [{"a": [1]}, None, [], "text"]
    many: list[dict[str, Any]] = [
        {"id": 10 + i, "name": f"n{i}", "doc": doc, "flag": i % 2 == 0, "at": i / 4, "tags": {}}
        for i, doc in enumerate(docs)
    ]
    inserts = DirectByKeys(insert(ROWS))
    with rows.session() as session:
        inserts[tuple(many[0])].run_many(session, many)
        session.connection().execute(insert(ROWS), [{**row, "id": row["id"] + 10} for row in many])
    with rows.session() as session:
        stored = [tuple(r) for r in session.connection().execute(select(ROWS).order_by(ROWS.c.id))]
    mine, theirs = stored[4:8], stored[8:12]
    assert [r[1:] for r in mine] == [r[1:] for r in theirs]
    assert [r[2] for r in mine] == docs


def test_direct_insert_must_set_columns_with_a_python_default() -> None:
    with pytest.raises(ValueError, match="tags"):
        Direct(insert(ROWS), column_keys=("id", "name"))


def test_direct_raises_the_drivers_errors_as_sqlalchemy_does(rows: Database) -> None:
    duplicate = {"id": 1, "name": "again", "doc": None, "flag": None, "at": None, "tags": {}}
    with pytest.raises(IntegrityError), rows.session() as session:
        DirectByKeys(insert(ROWS))[tuple(duplicate)].run(session, duplicate)
    with rows.session() as session:  # the session and its connection are usable again
        assert Direct(SELECTED).all(session, {"b_names": ["again"], "b_limit": 1}) == []
