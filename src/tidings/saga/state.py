"""Saga instances in the `tidings_sagas` table: read (locked where the database can), write, inspect.
Every function runs inside the caller's transaction."""

from __future__ import annotations

import json
import time
from typing import Any

from sqlalchemy import Select, bindparam, insert, select, update
from sqlalchemy.engine import Row

from tidings.context import Context
from tidings.errors import PermanentError
from tidings.events import Registry
from tidings.saga.model import S, Saga, SagaContext
from tidings.store.dialect import StoreDialect, dialect_for
from tidings.store.tables import sagas
from tidings.store.transaction import Executor

MAX_CORRELATION_LENGTH: int = sagas.c.correlation.type.length  # type: ignore[attr-defined]

# The statements of a step, built once: building `select`/`update` with their `WHERE` per call cost
# about 85 µs per step, and a new statement object computes its cache key again at every execution.
_ONE = (sagas.c.saga == bindparam("one_saga")) & (sagas.c.correlation == bindparam("one_correlation"))
_READ = select(sagas).where(_ONE)
_INSERT = insert(sagas)
_UPDATE = update(sagas).where(_ONE)
_locked_reads: dict[tuple[type[StoreDialect], bool], Select[Any]] = {}


def check_correlation(name: str, correlation: str) -> None:
    """`PermanentError` if `correlation` is longer than `tidings_sagas` holds: refused alike on every
    database (SQLite would store it, PostgreSQL would fail the transaction on every retry)."""
    if len(correlation) > MAX_CORRELATION_LENGTH:
        raise PermanentError(
            f"saga {name!r}: the correlation id is {len(correlation)} characters, the limit is {MAX_CORRELATION_LENGTH}"
        )


async def load(executor: Executor, name: str, correlation: str, *, skip_locked: bool = False) -> Row[Any] | None:
    """The instance row, locked until the caller's transaction ends (SQLite: its write lock already
    serialises every writer); `skip_locked`: None if another transaction holds it."""
    dialect = dialect_for(executor)
    statement = _locked_reads.get((type(dialect), skip_locked))
    if statement is None:
        statement = _locked_reads[type(dialect), skip_locked] = dialect.for_update(_READ, skip_locked=skip_locked)
    row: Row[Any] | None = (
        await executor.execute(statement, {"one_saga": name, "one_correlation": correlation})
    ).first()
    return row


async def save(executor: Executor, name: str, saga: Saga, ctx: SagaContext, *, new: bool) -> None:
    now = time.time()
    values = {
        "status": ctx.status,
        "state": saga.model_dump_json(),
        "compensations": json.dumps(ctx.compensations),
        "deadline": ctx.deadline,
        "updated_at": now,
        "traceparent": ctx.trace_context,
    }
    if new:
        await executor.execute(_INSERT, {"saga": name, "correlation": ctx.correlation, "started_at": now, **values})
    else:
        await executor.execute(_UPDATE, {"one_saga": name, "one_correlation": ctx.correlation, **values})


async def begin(ctx: Context, saga: Saga, *, correlation: str, times_out_in: float | None = None) -> None:
    """Start an instance of `saga` (its initial state) for `correlation` in the caller's unit of
    work, `ctx` (`service.transaction()`): it exists exactly when that transaction commits, so the
    events published in it find it. It times out `times_out_in` seconds from now (default: the
    class's `timeout`). `PermanentError` for a correlation longer than the store holds."""
    check_correlation(type(saga).saga_name, correlation)
    seconds = type(saga).saga_timeout if times_out_in is None else times_out_in
    deadline = None if seconds is None else time.time() + seconds
    started = SagaContext(ctx, Registry(), correlation, [], deadline)
    await save(ctx.connection, type(saga).saga_name, saga, started, new=True)


def compensations_of(row: Row[Any]) -> list[dict[str, Any]]:
    loaded: list[dict[str, Any]] = json.loads(row.compensations)
    return loaded


async def instance(session: Executor, saga_class: type[S], correlation: str) -> tuple[str, S] | None:
    """(status, state) of one saga instance, or None; for admin tools and tests."""
    statement = select(sagas.c.status, sagas.c.state).where(
        sagas.c.saga == saga_class.saga_name, sagas.c.correlation == correlation
    )
    row = (await session.execute(statement)).first()
    return None if row is None else (row.status, saga_class.model_validate_json(row.state))
