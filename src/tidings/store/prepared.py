"""A SQLAlchemy Core statement compiled once and run on the SQLite driver: a handler's hot path.

Through SQLAlchemy a statement from its compiled cache still costs 55-80 microseconds of CPU on
this project's machines (the greenlet bridge, the execution context, the result object), against
3-5 for the same statement on the driver; a shop handler runs several per event (ADR 0036).
`Prepared` keeps the statement as SQLAlchemy Core, so it is written and typed as usual, and
compiles it once per dialect: its SQL, the order of its parameters and the type conversions of
its parameters and columns, which are SQLAlchemy's own (its dialect types' `bind_processor` and
`result_processor`).
Inside a transaction on a SQLite store it then runs on the driver through `sqlite_cursor.run`
(on the loop's thread when nothing can make it wait, ADR 0035). Anywhere else (PostgreSQL, or
outside a transaction) it runs through `AsyncConnection.execute`, with the same results.

What it leaves out, refused when it compiles rather than silently wrong: parameters rendered
per call (an `expanding` IN list, `literal_execute`) and Python-side column defaults or
`onupdate` values, which SQLAlchemy computes per execution: pass those values explicitly.
SQLAlchemy's execution events do not fire for a statement that runs on the driver.
"""

from __future__ import annotations

import copy
import sqlite3
from collections import namedtuple
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import exc
from sqlalchemy.engine import Dialect
from sqlalchemy.ext.asyncio import AsyncConnection
from sqlalchemy.sql import Executable

from tidings.errors import ConfigurationError
from tidings.store.sqlite_cursor import LoopSideConnection, run, run_statement

Row = Any
"""A named tuple of the statement's columns (typed `Any`: its fields depend on the statement)."""
Parameters = Mapping[str, Any]
_GIVEN = object()
"""In `_Compiled.fixed`: the caller gives this parameter."""


@dataclass(frozen=True, slots=True)
class _Compiled:
    sql: str
    names: tuple[str, ...]
    """Parameter names in the order of the SQL's placeholders."""
    fixed: tuple[Any, ...]
    """Per placeholder: a value the statement carries (a literal, a LIMIT), or `_GIVEN`."""
    binds: tuple[Callable[[Any], Any] | None, ...]
    results: tuple[Callable[[Any], Any] | None, ...] | None
    """Per result column; None when no column needs converting."""

    def parameters(self, given: Parameters) -> list[Any]:
        values = []
        for name, fixed, bind in zip(self.names, self.fixed, self.binds, strict=True):
            value = given[name] if fixed is _GIVEN or name in given else fixed
            values.append(value if bind is None else bind(value))
        return values

    def rows(self, raw: list[Row], make: Callable[..., Row]) -> list[Row]:
        converters = self.results
        if converters is None:
            return [make(*row) for row in raw]
        return [
            make(
                *(value if convert is None else convert(value) for value, convert in zip(row, converters, strict=True))
            )
            for row in raw
        ]


class Prepared:
    """`statement`, compiled once per dialect (and, for an INSERT, per set of columns given).

    Rows come back as named tuples, their fields named after the statement's columns (as
    SQLAlchemy's `Row` allows `row.sku`), whichever way the statement ran.
    """

    __slots__ = ("_compiled", "_row", "statement")

    def __init__(self, statement: Executable) -> None:
        self.statement = statement
        self._compiled: dict[tuple[str, frozenset[str] | None], _Compiled] = {}
        columns = [column.key for column in _columns_of(statement)]
        self._row: Callable[..., Row] = namedtuple("Row", columns, rename=True)  # type: ignore[misc]

    async def rows(self, connection: AsyncConnection, parameters: Parameters | None = None) -> list[Row]:
        """Every row the statement returns, in the order of its columns."""
        return (await self._run(connection, parameters or {}, many=False))[0]

    async def first(self, connection: AsyncConnection, parameters: Parameters | None = None) -> Row | None:
        """The first row, or None."""
        found = await self.rows(connection, parameters)
        return found[0] if found else None

    async def scalar(self, connection: AsyncConnection, parameters: Parameters | None = None) -> Any:
        """The first column of the first row, or None when there is no row."""
        found = await self.rows(connection, parameters)
        return found[0][0] if found else None

    async def execute(self, connection: AsyncConnection, parameters: Parameters | None = None) -> int:
        """Run a write; the number of rows it matched."""
        return (await self._run(connection, parameters or {}, many=False))[1]

    async def executemany(self, connection: AsyncConnection, parameters: Sequence[Parameters]) -> None:
        """Run a write once per mapping of `parameters` (one call to the driver)."""
        if parameters:
            await self._run(connection, parameters, many=True)

    async def _run(self, connection: AsyncConnection, given: Any, *, many: bool) -> tuple[list[Row], int]:
        driver = _sqlite_driver_in_transaction(connection)
        if driver is None:
            result = await connection.execute(self.statement, list(given) if many else given)
            rows = [self._row(*row) for row in result] if result.returns_rows else []
            return rows, result.rowcount
        first = given[0] if many else given
        compiled = self._compile(connection.dialect, first.keys())
        values: Any = [compiled.parameters(each) for each in given] if many else compiled.parameters(given)
        try:
            _, raw, rowcount, _ = await run(driver, run_statement, compiled.sql, values, many)
        except sqlite3.Error as error:  # SQLAlchemy's form of it, as `execute` would raise
            raise exc.DBAPIError.instance(
                compiled.sql, values, error, sqlite3.Error, dialect=connection.dialect
            ) from error
        return compiled.rows(raw, self._row), rowcount

    def _compile(self, dialect: Dialect, keys: Any) -> _Compiled:
        columns = frozenset(keys) if getattr(self.statement, "is_insert", False) else None
        found = self._compiled.get((dialect.name, columns))
        if found is None:
            found = self._compiled[(dialect.name, columns)] = _compile(self.statement, dialect, columns)
        return found


def _compile(statement: Executable, dialect: Dialect, columns: frozenset[str] | None) -> _Compiled:
    compilable: Any = statement  # every Core statement compiles; `Executable` does not say so
    compiled: Any = compilable.compile(dialect=dialect, column_keys=sorted(columns) if columns is not None else None)
    defaulted = [column.key for column in (*compiled.insert_prefetch, *compiled.update_prefetch)]
    if defaulted:
        raise ConfigurationError(
            f"a prepared statement applies no Python-side defaults: give a value for {', '.join(defaulted)}"
        )
    if compiled.post_compile_params or compiled.literal_execute_params:
        raise ConfigurationError(
            "a prepared statement cannot render parameters per call (expanding IN, literal_execute)"
        )
    names = tuple(compiled.positiontup or ())
    binds = [compiled.binds[name] for name in names]
    converters = (
        column.type.dialect_impl(dialect).result_processor(dialect, None) for column in _columns_of(statement)
    )
    results = tuple(converters)
    return _Compiled(
        sql=compiled.string,
        names=names,
        fixed=tuple(_GIVEN if bind.required else bind.effective_value for bind in binds),
        binds=tuple(bind.type.dialect_impl(dialect).bind_processor(dialect) for bind in binds),
        results=results if any(convert is not None for convert in results) else None,
    )


def _columns_of(statement: Executable) -> list[Any]:
    """The statement's result columns, read off a shallow copy: SQLAlchemy memoizes them on the
    statement it reads and `.returning()` copies the memo, so a RETURNING statement derived from
    one read here would otherwise have no columns."""
    return list(getattr(copy.copy(statement), "exported_columns", ()))


def _sqlite_driver_in_transaction(connection: AsyncConnection) -> LoopSideConnection | None:
    """The SQLite driver under `connection` when the statement may go to it directly: a store's
    connection in a transaction (begun with `BEGIN IMMEDIATE`, or deferred on a read-only store)."""
    sync = connection.sync_connection
    if sync is None or sync.closed or sync.invalidated or not sync.in_transaction():
        return None
    driver = sync.connection.driver_connection
    if type(driver) is not LoopSideConnection or driver._connection is None:
        return None
    return driver if driver._connection.in_transaction else None
