"""The hot path's statements sent straight to the driver's cursor, past SQLAlchemy's result
layer.

Every step's report and claim run a handful of prebuilt Core statements. Through
``Connection.execute`` each costs about 200 µs of Python on top of its round trip, much of it
for what the hot path never reads: the execution context, the result's metadata and, on
psycopg, the cursor's ``description`` (a ``Column`` object per column, rebuilt for every
result; the 42 columns of ``jobs.steps_and_attempts`` were 15 % of a report's CPU in a
profile, ``benchmarks/README.md``). `Direct` keeps SQLAlchemy for what it is good at (the
statement, compiled once per dialect; the expansion of ``IN`` lists, the literal parameters and
the bind processors through the public ``SQLCompiler.construct_expanded_state``; the result
processors of the columns' types, built once from the first result's column types) and hands
the SQL and parameters to the DBAPI cursor of the session's own connection, in its
transaction. Rows come back as plain tuples, in the statement's column order.

SQLAlchemy's ``before_cursor_execute`` event still fires (with no execution context), so what
counts or logs statements (``tests/.../test_statements_per_step.py``) sees these too.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy.engine import Connection, Dialect
from sqlalchemy.exc import DBAPIError
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.sql.dml import Insert
from sqlalchemy.sql.expression import ClauseElement

from opsflow.store.session import Session

Row = tuple[Any, ...]
_Processor = Callable[[Any], Any] | None


@dataclass
class _Form:
    """A statement compiled for one dialect, and its result processors once known."""

    compiled: SQLCompiler
    # Per bind parameter, its type's bind processor, where it has one (JSON, and float on
    # SQLite); ``construct_expanded_state`` gives those of the expanded ``IN`` lists only.
    binds: dict[str, Callable[[Any], Any]]
    # Per result column, its type's result processor (None: the driver's value as is);
    # None until the first result told the columns' driver types.
    processors: tuple[_Processor, ...] | None = None


class Direct:
    """A prebuilt Core statement (``select``, ``update``/``insert`` with or without
    ``RETURNING``) run on the session's DBAPI cursor. Thread-safe: one object serves every
    session of the process.

    ``column_keys``: the columns an ``insert``/``update`` without ``.values()`` sets, each from
    the parameter of its name (what ``Connection.execute`` infers from the first parameter
    set; here fixed, so the statement compiles once)."""

    def __init__(
        self, statement: ClauseElement, *, column_keys: Sequence[str] | None = None
    ) -> None:
        self.statement = statement
        self.column_keys = list(column_keys) if column_keys is not None else None
        if isinstance(statement, Insert) and statement.select is None:
            # SQLAlchemy fills a column's Python-side default in its execution context, which
            # is not run here: such a column must be given (an ``INSERT ... SELECT`` renders
            # them in its statement).
            given = set(self.column_keys or ())
            missing = [c.name for c in statement.table.c if c.default is not None]
            missing = [name for name in missing if name not in given]
            if missing:
                raise ValueError(f"Direct insert must set the columns with defaults: {missing}")
        self._forms: dict[str, _Form] = {}
        self._lock = threading.Lock()

    def all(self, session: Session, params: Mapping[str, Any]) -> list[Row]:
        """Every row, each a tuple in the statement's column order."""
        cursor, form = self._execute(session, params)
        try:
            rows = cursor.fetchall()
            return self._processed(form, cursor, rows)
        finally:
            cursor.close()

    def first(self, session: Session, params: Mapping[str, Any]) -> Row | None:
        """The first row (or None); the rest are discarded."""
        cursor, form = self._execute(session, params)
        try:
            row = cursor.fetchone()
            if row is None:
                return None
            return self._processed(form, cursor, [row])[0]
        finally:
            cursor.close()

    def run(self, session: Session, params: Mapping[str, Any]) -> int:
        """Run a statement returning no rows; the number of rows it changed."""
        cursor, _form = self._execute(session, params)
        try:
            return int(cursor.rowcount)
        finally:
            cursor.close()

    def run_many(self, session: Session, rows: Sequence[Mapping[str, Any]]) -> None:
        """Run a statement returning no rows once per parameter set, in one driver call
        (``executemany``: pipelined by psycopg, a prepared loop in sqlite3)."""
        if not rows:
            return
        connection, form = self._connection(session)
        bound = [self._bound(form, params)[1] for params in rows]
        statement = self._bound(form, rows[0])[0]
        cursor = self._cursor(connection)
        try:
            connection.dispatch.before_cursor_execute(
                connection, cursor, statement, bound, None, True
            )
            cursor.executemany(statement, bound)
        except BaseException as exc:
            wrapped = _wrapped(connection, exc, statement, bound, cursor)
            if wrapped is exc:
                raise
            raise wrapped from exc
        finally:
            cursor.close()

    def _form(self, dialect: Dialect) -> _Form:
        key = f"{dialect.name}+{dialect.driver}"
        form = self._forms.get(key)
        if form is None:
            compiled = self.statement.compile(dialect=dialect, column_keys=self.column_keys)
            assert isinstance(compiled, SQLCompiler)
            binds: dict[str, Callable[[Any], Any]] = {}
            for name, bind in compiled.binds.items():
                process = bind.type.dialect_impl(dialect).bind_processor(dialect)
                if process is not None:
                    binds[name] = process
            with self._lock:
                form = self._forms.setdefault(key, _Form(compiled, binds))
        return form

    def _connection(self, session: Session) -> tuple[Connection, _Form]:
        connection = session.connection()
        return connection, self._form(connection.dialect)

    def _bound(
        self, form: _Form, params: Mapping[str, Any]
    ) -> tuple[str, Sequence[Any] | Mapping[str, Any]]:
        """The SQL and the driver's parameters for ``params`` (``IN`` lists expanded, bind
        processors applied, in the dialect's paramstyle)."""
        state = form.compiled.construct_expanded_state(params)
        values = state.parameters
        processors = {**form.binds, **state.processors} if state.processors else form.binds
        if processors:
            values = {
                name: processors[name](value) if name in processors else value
                for name, value in values.items()
            }
        if state.positiontup is not None:
            return state.statement, tuple(values[name] for name in state.positiontup)
        return state.statement, values

    @staticmethod
    def _cursor(connection: Connection) -> Any:
        dbapi_connection = connection.connection.dbapi_connection
        assert dbapi_connection is not None
        return dbapi_connection.cursor()

    def _execute(self, session: Session, params: Mapping[str, Any]) -> tuple[Any, _Form]:
        connection, form = self._connection(session)
        statement, bound = self._bound(form, params)
        cursor = self._cursor(connection)
        connection.dispatch.before_cursor_execute(connection, cursor, statement, bound, None, False)
        try:
            cursor.execute(statement, bound)
        except BaseException as exc:
            cursor.close()
            wrapped = _wrapped(connection, exc, statement, bound, cursor)
            if wrapped is exc:
                raise
            raise wrapped from exc
        return cursor, form

    def _processed(self, form: _Form, cursor: Any, rows: list[Any]) -> list[Row]:
        processors = form.processors
        if processors is None:
            processors = self._processors(form, cursor)
        if not any(processors):
            return [tuple(row) for row in rows]
        return [
            tuple(
                value if process is None else process(value)
                for process, value in zip(processors, row, strict=True)
            )
            for row in rows
        ]

    def _processors(self, form: _Form, cursor: Any) -> tuple[_Processor, ...]:
        """The result processors of the statement's columns, as SQLAlchemy's result would
        apply them (a type's processor may depend on the driver's type code: PostgreSQL's
        numeric types)."""
        dialect = form.compiled.dialect
        columns = list(getattr(self.statement, "exported_columns", ()))
        described = cursor.description
        assert len(columns) == len(described), "a Direct statement's columns are its result's"
        processors = tuple(
            column.type.dialect_impl(dialect).result_processor(dialect, described[i][1])
            for i, column in enumerate(columns)
        )
        form.processors = processors
        return processors


def _wrapped(
    connection: Connection, exc: BaseException, statement: str, bound: Any, cursor: Any
) -> BaseException:
    """The driver's error as SQLAlchemy raises it from ``Connection.execute`` (an
    ``OperationalError``, ``IntegrityError``, ... wrapping it: what callers and
    ``Database.is_transient`` look at); a lost connection is invalidated first, so the pool
    does not hand it out again."""
    dialect = connection.dialect
    error = dialect.loaded_dbapi.Error
    if not isinstance(exc, error):
        return exc
    dbapi_connection = connection.connection.dbapi_connection
    lost = dialect.is_disconnect(exc, dbapi_connection, cursor)
    if lost:
        connection.invalidate(exc)
    return DBAPIError.instance(
        statement, bound, exc, error, connection_invalidated=lost, dialect=dialect
    )


class DirectByKeys:
    """One `Direct` per set of columns an ``insert``/``update`` without ``.values()`` sets
    (``column_keys``), made on first use: for statements whose callers set varying columns
    (a step's update). The sets are few: each is a code path's."""

    def __init__(self, statement: ClauseElement) -> None:
        self.statement = statement
        self._made: dict[tuple[str, ...], Direct] = {}
        self._lock = threading.Lock()

    def __getitem__(self, keys: tuple[str, ...]) -> Direct:
        direct = self._made.get(keys)
        if direct is None:
            with self._lock:
                direct = self._made.setdefault(keys, Direct(self.statement, column_keys=keys))
        return direct
