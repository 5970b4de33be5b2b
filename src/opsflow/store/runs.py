"""Executions, their steps, the engine log, events and timers.

Runtime times are float epoch seconds, not timestamps: the engine reasons in seconds, timers
compare due times numerically on both backends, and a float round-trips exactly through SQLite
and PostgreSQL alike. The API turns them into ISO 8601 at its edge.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, cast

from sqlalchemy import (
    BigInteger,
    Boolean,
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
    Table,
    Text,
    UniqueConstraint,
    bindparam,
    delete,
    func,
    insert,
    select,
    update,
)
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Mapped, Session, mapped_column

from opsflow.errors import NotFound
from opsflow.status import ExecutionStatus, StepStatus
from opsflow.store.base import Base, JSONType
from opsflow.store.direct import Direct, DirectByKeys

# Autoincrementing 64-bit ids: SQLite only autoincrements INTEGER PRIMARY KEY.
BigId = BigInteger().with_variant(Integer, "sqlite")


class ExecutionRow(Base):
    __tablename__ = "executions"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    workflow_id: Mapped[str] = mapped_column(String(63), index=True)
    version: Mapped[int | None] = mapped_column(Integer)
    test_run: Mapped[bool] = mapped_column(Boolean, default=False)
    # A copy of the pinned definition: versions are immutable, and a draft test run has none.
    definition: Mapped[dict[str, Any]] = mapped_column(JSONType)
    bundle_digest: Mapped[str | None] = mapped_column(String(64))
    status: Mapped[str] = mapped_column(String(16), index=True)
    status_reason: Mapped[str] = mapped_column(Text, default="")
    trigger_type: Mapped[str] = mapped_column(String(32), default="manual")
    trigger: Mapped[dict[str, Any]] = mapped_column(JSONType, default=dict)
    params: Mapped[dict[str, Any]] = mapped_column(JSONType, default=dict)
    started_by: Mapped[str | None] = mapped_column(String(100), index=True)
    created_at: Mapped[float] = mapped_column(Float, index=True)
    started_at: Mapped[float | None] = mapped_column(Float)
    ended_at: Mapped[float | None] = mapped_column(Float)
    cancel_mode: Mapped[str | None] = mapped_column(String(16))  # graceful | force
    # Undo what the run did once it has ended cancelled (a request, orthogonal to the mode:
    # a cleanup cancel may later be forced and still clean up).
    cancel_cleanup: Mapped[bool] = mapped_column(Boolean, default=False, server_default="0")
    cancel_requested_at: Mapped[float | None] = mapped_column(Float)
    cancel_reason: Mapped[str | None] = mapped_column(Text)
    cancel_by: Mapped[str | None] = mapped_column(String(100))
    # When a person last put the ended run back to running (retry, skip); the workflow
    # timeout counts from here.
    resumed_at: Mapped[float | None] = mapped_column(Float)
    # The workflow's ``outputs``, rendered when the run completed ({} until then).
    outputs: Mapped[dict[str, Any]] = mapped_column(JSONType, default=dict, server_default="{}")
    # A child run of a ``workflow`` step: the parent execution and its step, whose end
    # this run's end decides.
    parent_execution_id: Mapped[str | None] = mapped_column(String(40), index=True)
    parent_step_id: Mapped[str | None] = mapped_column(String(100))
    # The workflows that led to this run, first one first, through workflow triggers and
    # workflow steps ([] for a run nobody's run started); its length is the run's depth.
    chain: Mapped[list[str]] = mapped_column(JSONType, default=list, server_default="[]")
    # Counts over the execution's steps, kept by its reconciles so a job's end need not read
    # every step (``engine.advance.Counts``); NULL until a whole reconcile has counted them.
    steps_active: Mapped[int | None] = mapped_column(Integer)
    approvals_waiting: Mapped[int | None] = mapped_column(Integer)
    steps_failed: Mapped[int | None] = mapped_column(Integer)


class StepRow(Base):
    __tablename__ = "execution_steps"

    execution_id: Mapped[str] = mapped_column(
        ForeignKey("executions.id", ondelete="CASCADE"), primary_key=True
    )
    step_id: Mapped[str] = mapped_column(String(100), primary_key=True)
    position: Mapped[int] = mapped_column(Integer)
    type: Mapped[str] = mapped_column(String(16))
    status: Mapped[str] = mapped_column(String(16))
    entered_at: Mapped[float | None] = mapped_column(Float)
    started_at: Mapped[float | None] = mapped_column(Float)
    ended_at: Mapped[float | None] = mapped_column(Float)
    retry_at: Mapped[float | None] = mapped_column(Float)
    gate_result: Mapped[str | None] = mapped_column(String(16))
    gate_reason: Mapped[str | None] = mapped_column(Text)
    retry_base: Mapped[int] = mapped_column(Integer, default=0)
    user_skipped: Mapped[bool] = mapped_column(Boolean, default=False)
    outputs: Mapped[dict[str, Any]] = mapped_column(JSONType, default=dict)
    error: Mapped[str | None] = mapped_column(Text)
    # While PENDING: how many of its needs come from a step that has not ended (NULL: not
    # counted yet). Kept by the reconciles, see ``engine.advance``.
    needs_open: Mapped[int | None] = mapped_column(Integer)
    # A fanned-out step (for_each/matrix): its list as worked out when it first started
    # (NULL: not yet), how many items it has, and what people did to some of them
    # ({"3": {"retry_base": 1, "skipped": false, "cancelled": false}}).
    items: Mapped[list[Any] | None] = mapped_column(JSONType)
    item_count: Mapped[int | None] = mapped_column(Integer)
    item_marks: Mapped[dict[str, Any] | None] = mapped_column(JSONType)


class EngineLogRow(Base):
    __tablename__ = "engine_log"
    __table_args__ = (Index("ix_engine_log_execution", "execution_id", "id"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    execution_id: Mapped[str] = mapped_column(ForeignKey("executions.id", ondelete="CASCADE"))
    step_id: Mapped[str | None] = mapped_column(String(100))
    at: Mapped[float] = mapped_column(Float)
    message: Mapped[str] = mapped_column(Text)


class EventRow(Base):
    """Everything a live viewer needs, in commit order; SSE resumes from an event id."""

    __tablename__ = "execution_events"
    __table_args__ = (Index("ix_execution_events_execution", "execution_id", "id"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    execution_id: Mapped[str] = mapped_column(ForeignKey("executions.id", ondelete="CASCADE"))
    at: Mapped[float] = mapped_column(Float)
    kind: Mapped[str] = mapped_column(String(32))
    data: Mapped[dict[str, Any]] = mapped_column(JSONType, default=dict)


class TimerRow(Base):
    """A durable timer: ``(kind, key)`` is due at ``due_at``; at most one per pair."""

    __tablename__ = "timers"
    __table_args__ = (UniqueConstraint("kind", "key"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    kind: Mapped[str] = mapped_column(String(32))
    key: Mapped[str] = mapped_column(String(200))
    due_at: Mapped[float] = mapped_column(Float, index=True)


# --------------------------------------------------------------------------- values


@dataclass(frozen=True)
class Execution:
    id: str
    workflow_id: str
    version: int | None
    test_run: bool
    definition: dict[str, Any]
    bundle_digest: str | None
    status: ExecutionStatus
    status_reason: str
    trigger_type: str
    trigger: dict[str, Any]
    params: dict[str, Any]
    started_by: str | None
    created_at: float
    started_at: float | None
    ended_at: float | None
    cancel_mode: str | None
    cancel_requested_at: float | None
    cancel_reason: str | None
    cancel_by: str | None
    resumed_at: float | None = None
    cancel_cleanup: bool = False
    outputs: dict[str, Any] = field(default_factory=dict)
    parent_execution_id: str | None = None
    parent_step_id: str | None = None
    chain: tuple[str, ...] = ()
    # The counts kept with the execution (None: not counted yet); see ``ExecutionRow``.
    steps_active: int | None = None
    approvals_waiting: int | None = None
    steps_failed: int | None = None

    @classmethod
    def from_row(cls, row: Any, definition: dict[str, Any] | None = None) -> Execution:
        """The execution of ``row``; ``definition`` when the row was read without it."""
        return cls.from_mapping(row._mapping, definition)

    @classmethod
    def from_mapping(cls, m: Any, definition: dict[str, Any] | None = None) -> Execution:
        """The execution of a row's values by column name (`from_row`)."""
        return cls(
            id=m["id"],
            workflow_id=m["workflow_id"],
            version=m["version"],
            test_run=bool(m["test_run"]),
            definition=m["definition"] if definition is None else definition,
            bundle_digest=m["bundle_digest"],
            status=ExecutionStatus(m["status"]),
            status_reason=m["status_reason"] or "",
            trigger_type=m["trigger_type"],
            trigger=m["trigger"] or {},
            params=m["params"] or {},
            started_by=m["started_by"],
            created_at=m["created_at"],
            started_at=m["started_at"],
            ended_at=m["ended_at"],
            cancel_mode=m["cancel_mode"],
            cancel_requested_at=m["cancel_requested_at"],
            cancel_reason=m["cancel_reason"],
            cancel_by=m["cancel_by"],
            resumed_at=m["resumed_at"],
            cancel_cleanup=bool(m["cancel_cleanup"]),
            outputs=m["outputs"] or {},
            parent_execution_id=m["parent_execution_id"],
            parent_step_id=m["parent_step_id"],
            chain=tuple(m["chain"] or ()),
            steps_active=m["steps_active"],
            approvals_waiting=m["approvals_waiting"],
            steps_failed=m["steps_failed"],
        )


@dataclass(frozen=True)
class Step:
    execution_id: str
    step_id: str
    position: int
    type: str
    status: StepStatus
    entered_at: float | None
    started_at: float | None
    ended_at: float | None
    retry_at: float | None
    gate_result: str | None
    gate_reason: str | None
    retry_base: int
    user_skipped: bool
    outputs: dict[str, Any] = field(default_factory=dict)
    error: str | None = None
    needs_open: int | None = None
    items: list[Any] | None = None  # read only where asked (``step_items``)
    item_count: int | None = None
    item_marks: dict[str, Any] | None = None

    @classmethod
    def from_row(cls, row: Any) -> Step:
        m = row._mapping
        return cls(
            execution_id=m["execution_id"],
            step_id=m["step_id"],
            position=m["position"],
            type=m["type"],
            status=StepStatus(m["status"]),
            entered_at=m["entered_at"],
            started_at=m["started_at"],
            ended_at=m["ended_at"],
            retry_at=m["retry_at"],
            gate_result=m["gate_result"],
            gate_reason=m["gate_reason"],
            retry_base=m["retry_base"] or 0,
            user_skipped=bool(m["user_skipped"]),
            outputs=m.get("outputs") or {},
            error=m["error"],
            needs_open=m["needs_open"],
            items=m.get("items"),
            item_count=m.get("item_count"),
            item_marks=m.get("item_marks"),
        )


EX: Table = cast(Table, ExecutionRow.__table__)
ST: Table = cast(Table, StepRow.__table__)
ELOG: Table = cast(Table, EngineLogRow.__table__)
EV: Table = cast(Table, EventRow.__table__)
TM: Table = cast(Table, TimerRow.__table__)


# --------------------------------------------------------------------------- queries


def insert_execution(
    session: Session, values: dict[str, Any], steps: Sequence[dict[str, Any]]
) -> None:
    session.connection().execute(insert(EX).values(**values))
    if steps:
        session.connection().execute(
            insert(ST), [dict(s, execution_id=values["id"]) for s in steps]
        )


# The hot path's statements are built once: building a statement costs more than running it.
# ``with_for_update`` renders nothing on SQLite, whose write transaction locks everything. On
# PostgreSQL it is FOR NO KEY UPDATE: reconciles of one execution still take turns, but rows
# that only refer to the execution (log lines, events) are inserted without waiting for it;
# with FOR UPDATE, a log batch holding its job's row deadlocked with a reconcile holding the
# execution and waiting for that job.
#
# The lock reads the row without its definition: a pinned definition never changes, and
# decoding a wide one (100 kB of JSON for 2,000 steps) on every job's end would cost more than
# the rest of the reconcile. It is read once per execution and kept (``_definition``).
_LOCK_EXECUTION = Direct(
    select(*[c for c in EX.c if c.name != "definition"])
    .where(EX.c.id == bindparam("b_id"))
    .with_for_update(key_share=True)
)
_LOCKED_COLUMNS = tuple(c.name for c in EX.c if c.name != "definition")
_DEFINITION = select(EX.c.definition).where(EX.c.id == bindparam("b_id"))
_GET_EXECUTION = select(EX).where(EX.c.id == bindparam("b_id"))
_LIST_STEPS = (
    select(ST).where(ST.c.execution_id == bindparam("b_execution")).order_by(ST.c.position)
)
# A reconcile reads every step each time; outputs are read only when a template needs them,
# and a fanned-out step's list only when one of its jobs is rendered.
_NOT_STATE = ("outputs", "items")
_LIST_STEP_STATES = (
    select(*[c for c in ST.c if c.name not in _NOT_STATE])
    .where(ST.c.execution_id == bindparam("b_execution"))
    .order_by(ST.c.position)
)
_SOME_STEP_STATES = select(*[c for c in ST.c if c.name not in _NOT_STATE]).where(
    ST.c.execution_id == bindparam("b_execution"),
    ST.c.step_id.in_(bindparam("b_steps", expanding=True)),
)
_STEP_ITEMS = select(ST.c["items"]).where(
    ST.c.execution_id == bindparam("b_execution"), ST.c.step_id == bindparam("b_step")
)
_STEP_OUTPUTS = select(ST.c.step_id, ST.c.outputs).where(
    ST.c.execution_id == bindparam("b_execution")
)
# No SET clause: the columns come from the parameters of each call.
_UPDATE_STEP = update(ST).where(
    ST.c.execution_id == bindparam("b_execution"), ST.c.step_id == bindparam("b_step")
)
_UPDATE_EXECUTION = update(EX).where(EX.c.id == bindparam("b_id"))
_DELETE_TIMER = delete(TM).where(TM.c.kind == bindparam("b_kind"), TM.c.key == bindparam("b_key"))
_UPDATES_OF_STEP = DirectByKeys(_UPDATE_STEP)
_INSERT_EVENT = insert(EV)
_INSERT_ENGINE_LOG = insert(ELOG)
_INSERTS_OF_EVENTS = DirectByKeys(_INSERT_EVENT)
_INSERTS_OF_ENGINE_LOG = DirectByKeys(_INSERT_ENGINE_LOG)


def lock_execution(session: Session, execution_id: str) -> Execution:
    """Read the execution holding its row lock for the rest of the transaction.

    The row lock makes the caller the only one changing this execution until it commits. On
    SQLite every write transaction already holds the database's single write lock.
    """
    row = _LOCK_EXECUTION.first(session, {"b_id": execution_id})
    if row is None:
        raise NotFound(f"execution {execution_id!r} not found")
    m = dict(zip(_LOCKED_COLUMNS, row, strict=True))
    return Execution.from_mapping(m, _definition(session, execution_id, m["created_at"]))


_DEFINITIONS: OrderedDict[tuple[str, float], dict[str, Any]] = OrderedDict()
_DEFINITIONS_KEPT = 256
_DEFINITIONS_LOCK = threading.Lock()


def _definition(session: Session, execution_id: str, created_at: float) -> dict[str, Any]:
    """The execution's pinned definition, read once and kept (by id and creation time, for
    ids a test may reuse); callers must not change it (the runtime never does)."""
    key = (execution_id, created_at)
    with _DEFINITIONS_LOCK:
        found = _DEFINITIONS.get(key)
        if found is not None:
            _DEFINITIONS.move_to_end(key)
            return found
    value = session.connection().execute(_DEFINITION, {"b_id": execution_id}).scalar()
    definition: dict[str, Any] = value or {}
    with _DEFINITIONS_LOCK:
        _DEFINITIONS[key] = definition
        if len(_DEFINITIONS) > _DEFINITIONS_KEPT:
            _DEFINITIONS.popitem(last=False)
    return definition


def get_execution(session: Session, execution_id: str) -> Execution:
    row = session.connection().execute(_GET_EXECUTION, {"b_id": execution_id}).first()
    if row is None:
        raise NotFound(f"execution {execution_id!r} not found")
    return Execution.from_row(row)


_EXECUTION_STATUS = Direct(select(EX.c.status).where(EX.c.id == bindparam("b_id")))


def execution_status(session: Session, execution_id: str) -> ExecutionStatus:
    """The execution's status alone (`get_execution` decodes its pinned definition too);
    raises `NotFound`."""
    row = _EXECUTION_STATUS.first(session, {"b_id": execution_id})
    if row is None:
        raise NotFound(f"execution {execution_id!r} not found")
    return ExecutionStatus(row[0])


def update_execution(session: Session, execution_id: str, **values: Any) -> None:
    session.connection().execute(_UPDATE_EXECUTION, {**values, "b_id": execution_id})


def list_steps(session: Session, execution_id: str) -> list[Step]:
    rows = session.connection().execute(_LIST_STEPS, {"b_execution": execution_id})
    return [Step.from_row(r) for r in rows]


def list_step_states(session: Session, execution_id: str) -> list[Step]:
    """Every step without its outputs (``outputs`` is empty): what the engine needs.

    Read on every reconcile, so rows are taken as plain tuples (a row's mapping view costs
    several times more per row, which a wide execution pays on every job's end)."""
    result = session.connection().execute(_LIST_STEP_STATES, {"b_execution": execution_id})
    return _step_states(result)


def step_states_of(session: Session, execution_id: str, step_ids: Iterable[str]) -> list[Step]:
    """``list_step_states`` of the named steps only (what a reconcile of a job's end reads)."""
    result = session.connection().execute(
        _SOME_STEP_STATES, {"b_execution": execution_id, "b_steps": sorted(step_ids)}
    )
    return _step_states(result)


def _step_states(result: Any) -> list[Step]:
    names = tuple(result.keys())
    steps = []
    for values in result:
        m = dict(zip(names, values, strict=True))
        m["status"] = StepStatus(m["status"])
        m["retry_base"] = m["retry_base"] or 0
        m["user_skipped"] = bool(m["user_skipped"])
        steps.append(Step(**m))
    return steps


def step_items(session: Session, execution_id: str, step_id: str) -> list[Any] | None:
    """The recorded list of a fanned-out step (None: not worked out yet)."""
    row = (
        session.connection()
        .execute(_STEP_ITEMS, {"b_execution": execution_id, "b_step": step_id})
        .first()
    )
    value = None if row is None else row[0]
    return None if value is None else list(value)


def step_outputs(session: Session, execution_id: str) -> dict[str, dict[str, Any]]:
    rows = session.connection().execute(_STEP_OUTPUTS, {"b_execution": execution_id})
    return {r.step_id: r.outputs or {} for r in rows}


def update_step(session: Session, execution_id: str, step_id: str, **values: Any) -> None:
    _UPDATES_OF_STEP[tuple(values)].run(
        session, {**values, "b_execution": execution_id, "b_step": step_id}
    )


def cas_step_status(
    session: Session, execution_id: str, step_id: str, expect: StepStatus, **values: Any
) -> bool:
    """Compare-and-set: change the step only if it is still in ``expect``."""
    res = session.connection().execute(
        update(ST)
        .where(
            ST.c.execution_id == execution_id,
            ST.c.step_id == step_id,
            ST.c.status == expect.value,
        )
        .values(**values)
    )
    return bool(res.rowcount)


def add_engine_log(session: Session, entries: Iterable[dict[str, Any]]) -> None:
    rows = list(entries)
    if rows:
        _run_many(_INSERTS_OF_ENGINE_LOG, session, rows)


def engine_log(session: Session, execution_id: str) -> list[dict[str, Any]]:
    rows = session.connection().execute(
        select(ELOG.c.id, ELOG.c.step_id, ELOG.c.at, ELOG.c.message)
        .where(ELOG.c.execution_id == execution_id)
        .order_by(ELOG.c.id)
    )
    return [dict(r._mapping) for r in rows]


def add_events(session: Session, events: Iterable[dict[str, Any]]) -> None:
    rows = [{"data": {}, **row} for row in events]  # the column's default
    if rows:
        _run_many(_INSERTS_OF_EVENTS, session, rows)


def _run_many(inserts: DirectByKeys, session: Session, rows: list[dict[str, Any]]) -> None:
    """Insert ``rows``: one driver call per run of rows setting the same columns."""
    start = 0
    for i in range(1, len(rows) + 1):
        if i == len(rows) or rows[i].keys() != rows[start].keys():
            inserts[tuple(rows[start])].run_many(session, rows[start:i])
            start = i


def events_after(
    session: Session, execution_id: str, after_id: int, limit: int = 500
) -> list[dict[str, Any]]:
    """Up to ``limit`` events of the execution with ids above ``after_id``, in order (what a
    live stream reads on every wake-up: one prebuilt statement)."""
    rows = _EVENTS_AFTER.all(
        session, {"b_execution": execution_id, "b_after": after_id, "b_limit": limit}
    )
    return [dict(zip(_EVENT_NAMES, row, strict=True)) for row in rows]


_EVENT_NAMES = ("id", "at", "kind", "data")
_EVENTS_AFTER = Direct(
    select(*(EV.c[name] for name in _EVENT_NAMES))
    .where(EV.c.execution_id == bindparam("b_execution"), EV.c.id > bindparam("b_after"))
    .order_by(EV.c.id)
    .limit(bindparam("b_limit"))
)
_ID_RANGE_COUNTS: dict[str, Direct] = {}


def count_id_range(
    session: Session, table: Table, execution_id: str, after_id: int, upto_id: int
) -> int:
    """How many rows of ``table`` (one with an ``execution_id`` and an ordering ``id``: events,
    log lines) belong to the execution with ids in ``(after_id, upto_id]`` (an index range
    count: no row is read). The statement is built once per table."""
    statement = _ID_RANGE_COUNTS.get(table.name)
    if statement is None:
        statement = _ID_RANGE_COUNTS[table.name] = Direct(
            select(func.count()).where(
                table.c.execution_id == bindparam("b_execution"),
                table.c.id > bindparam("b_after"),
                table.c.id <= bindparam("b_upto"),
            )
        )
    params = {"b_execution": execution_id, "b_after": after_id, "b_upto": upto_id}
    row = statement.first(session, params)
    assert row is not None
    return int(row[0])


def count_events(session: Session, execution_id: str, after_id: int, upto_id: int) -> int:
    """How many events of the execution have ids in ``(after_id, upto_id]``."""
    return count_id_range(session, EV, execution_id, after_id, upto_id)


_UPSERT_TIMER = {
    name: ins.on_conflict_do_update(
        index_elements=["kind", "key"], set_={"due_at": ins.excluded.due_at}
    )
    for name, ins in (("postgresql", pg_insert(TM)), ("sqlite", sqlite_insert(TM)))
}


def set_timer(session: Session, kind: str, key: str, due_at: float | None) -> None:
    """Upsert (or with ``None`` delete) the one timer of ``(kind, key)``."""
    if due_at is None:
        session.connection().execute(_DELETE_TIMER, {"b_kind": kind, "b_key": key})
        return
    session.connection().execute(
        _UPSERT_TIMER[session.get_bind().dialect.name], {"kind": kind, "key": key, "due_at": due_at}
    )


_LOWER_TIMER = {
    name: ins.on_conflict_do_update(
        index_elements=["kind", "key"],
        set_={"due_at": func.min(TM.c.due_at, ins.excluded.due_at)}
        if name == "sqlite"
        else {"due_at": func.least(TM.c.due_at, ins.excluded.due_at)},
    )
    for name, ins in (("postgresql", pg_insert(TM)), ("sqlite", sqlite_insert(TM)))
}
_TIMER_DUE = select(TM.c.due_at).where(
    TM.c.kind == bindparam("b_kind"), TM.c.key == bindparam("b_key")
)


def lower_timer(session: Session, kind: str, key: str, due_at: float) -> None:
    """Set the timer of ``(kind, key)`` to ``due_at`` unless it is already due earlier."""
    session.connection().execute(
        _LOWER_TIMER[session.get_bind().dialect.name], {"kind": kind, "key": key, "due_at": due_at}
    )


def timer_due(session: Session, kind: str, key: str) -> float | None:
    """When the timer of ``(kind, key)`` is due (None: there is none)."""
    value = session.connection().execute(_TIMER_DUE, {"b_kind": kind, "b_key": key}).scalar()
    return float(value) if value is not None else None


def due_timers(session: Session, now: float, limit: int = 100) -> list[tuple[str, str, float]]:
    rows = session.connection().execute(
        select(TM.c.kind, TM.c.key, TM.c.due_at)
        .where(TM.c.due_at <= now)
        .order_by(TM.c.due_at)
        .limit(limit)
    )
    return [(r.kind, r.key, r.due_at) for r in rows]


def next_timer_due(session: Session) -> float | None:
    value = session.connection().execute(select(func.min(TM.c.due_at))).scalar()
    return float(value) if value is not None else None


def take_timer(session: Session, kind: str, key: str, now: float) -> bool:
    """Delete the timer if it is still due; True when this caller owns the firing."""
    res = session.connection().execute(
        delete(TM).where(TM.c.kind == kind, TM.c.key == key, TM.c.due_at <= now)
    )
    return bool(res.rowcount)


def active_execution_ids(session: Session) -> list[str]:
    rows = session.connection().execute(
        select(EX.c.id).where(
            EX.c.status.in_(
                [
                    ExecutionStatus.RUNNING.value,
                    ExecutionStatus.PAUSED.value,
                    ExecutionStatus.PENDING.value,
                ]
            )
        )
    )
    return [r.id for r in rows]


@dataclass(frozen=True)
class ExecutionFilter:
    workflow_id: str | None = None
    status: list[str] | None = None
    trigger_type: str | None = None
    started_by: str | None = None
    since: float | None = None
    until: float | None = None
    id_prefix: str | None = None


SORTABLE = {"created_at", "started_at", "ended_at", "status", "workflow_id"}


def list_executions(
    session: Session,
    flt: ExecutionFilter,
    *,
    limit: int = 50,
    offset: int = 0,
    sort: str = "-created_at",
) -> tuple[list[Execution], int]:
    """A page of executions, newest first by default; ``sort`` is a column, ``-`` for descending."""
    conds: list[Any] = []
    if flt.workflow_id:
        conds.append(EX.c.workflow_id == flt.workflow_id)
    if flt.status:
        conds.append(EX.c.status.in_(flt.status))
    if flt.trigger_type:
        conds.append(EX.c.trigger_type == flt.trigger_type)
    if flt.started_by:
        conds.append(EX.c.started_by == flt.started_by)
    if flt.since is not None:
        conds.append(EX.c.created_at >= flt.since)
    if flt.until is not None:
        conds.append(EX.c.created_at < flt.until)
    if flt.id_prefix:
        conds.append(EX.c.id.startswith(flt.id_prefix, autoescape=True))
    total = (
        session.connection().execute(select(func.count()).select_from(EX).where(*conds)).scalar()
        or 0
    )
    column = EX.c[sort.lstrip("-")]
    order = column.desc() if sort.startswith("-") else column.asc()
    rows = session.connection().execute(
        select(EX).where(*conds).order_by(order, EX.c.id.desc()).limit(limit).offset(offset)
    )
    return [Execution.from_row(r) for r in rows], int(total)


def active_of_workflow(session: Session, workflow_id: str) -> list[str]:
    """Ids of the workflow's running or paused executions, oldest first."""
    rows = session.connection().execute(
        select(EX.c.id)
        .where(
            EX.c.workflow_id == workflow_id,
            EX.c.status.in_([ExecutionStatus.RUNNING.value, ExecutionStatus.PAUSED.value]),
        )
        .order_by(EX.c.created_at)
    )
    return [r.id for r in rows]


def queued(session: Session, workflow_id: str) -> list[str]:
    """Ids of the workflow's executions waiting for a concurrency slot, in arrival order."""
    rows = session.connection().execute(
        select(EX.c.id)
        .where(EX.c.workflow_id == workflow_id, EX.c.status == ExecutionStatus.PENDING.value)
        .order_by(EX.c.created_at, EX.c.id)
    )
    return [r.id for r in rows]


def lock_workflow(session: Session, workflow_id: str) -> None:
    """Serialize admissions of one workflow's executions (its row lock on PostgreSQL)."""
    from opsflow.store.tables import Workflow as WorkflowTable

    stmt = select(WorkflowTable.__table__.c.id).where(WorkflowTable.__table__.c.id == workflow_id)
    if session.get_bind().dialect.name == "postgresql":
        stmt = stmt.with_for_update()
    session.connection().execute(stmt)


def end_unstarted(
    session: Session, execution_id: str, status: ExecutionStatus, reason: str, now: float
) -> None:
    """End an execution that never started: every step skipped, one engine log line (the
    caller writes its event)."""
    update_execution(session, execution_id, status=status.value, status_reason=reason, ended_at=now)
    session.connection().execute(
        update(ST)
        .where(ST.c.execution_id == execution_id)
        .values(status=StepStatus.SKIPPED.value, entered_at=now, ended_at=now, error=reason)
    )
    add_engine_log(
        session, [{"execution_id": execution_id, "step_id": None, "at": now, "message": reason}]
    )
