"""A SQLAlchemy Core statement compiled once and run on the driver: a handler's hot path.

Through SQLAlchemy a statement from its compiled cache still costs 55-80 microseconds of CPU on
this project's machines (the greenlet bridge, the execution context, the result object), against
3-5 for the same statement on the driver; a shop handler runs several per event (ADR 0036).
`Prepared` keeps the statement as SQLAlchemy Core, so it is written and typed as usual, and
compiles it once per dialect: its SQL, the order of its parameters and the type conversions of
its parameters and columns, which are SQLAlchemy's own (its dialect types' `bind_processor` and
`result_processor`).
Inside a transaction it then runs on the driver: on SQLite through `sqlite_cursor.run` (on the
loop's thread when nothing can make it wait, ADR 0035); on PostgreSQL as a prepared statement
from the cache of SQLAlchemy's asyncpg adapter, under the adapter's lock, in the transaction the
adapter began (or begins now, as its own first statement would). Outside a transaction it runs
through `AsyncConnection.execute`, with the same results.

What it leaves out, refused when it compiles rather than silently wrong: parameters rendered
per call (an `expanding` IN list, `literal_execute`) and Python-side column defaults or
`onupdate` values, which SQLAlchemy computes per execution: pass those values explicitly.
SQLAlchemy's execution events do not fire for a statement that runs on the driver, and an
error there does not invalidate the connection as SQLAlchemy would on a lost one: the
transaction's end, which goes through SQLAlchemy, does that.
"""

from __future__ import annotations

import copy
import re
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

try:
    from sqlalchemy.dialects.postgresql.asyncpg import AsyncAdapt_asyncpg_connection as _AsyncpgAdapter
    from sqlalchemy.dialects.postgresql.asyncpg import AsyncAdapt_asyncpg_dbapi

    _AsyncpgAdapterError: type[Exception] = AsyncAdapt_asyncpg_dbapi.Error
except ImportError:  # pragma: no cover - SQLAlchemy imports it without asyncpg installed
    _AsyncpgAdapter = _AsyncpgAdapterError = type("_Absent", (Exception,), {})  # type: ignore[assignment,misc]
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
    """Per result column; None when no column needs converting (SQLite's: no type codes)."""
    result_types: tuple[Any, ...]
    """Per result column, its type for the dialect, whose `result_processor` may depend on the
    type code the database reports (PostgreSQL's: `converters`)."""
    by_type_codes: dict[tuple[int, ...], tuple[Callable[[Any], Any] | None, ...] | None]

    def parameters(self, given: Parameters) -> list[Any]:
        values = []
        for name, fixed, bind in zip(self.names, self.fixed, self.binds, strict=True):
            value = given[name] if fixed is _GIVEN or name in given else fixed
            values.append(value if bind is None else bind(value))
        return values

    def converters(self, dialect: Dialect, type_codes: tuple[int, ...]) -> Any:
        """`results` for columns of these database type codes (computed once per set)."""
        if type_codes not in self.by_type_codes:
            found = tuple(
                kind.result_processor(dialect, code) for kind, code in zip(self.result_types, type_codes, strict=True)
            )
            self.by_type_codes[type_codes] = found if any(convert is not None for convert in found) else None
        return self.by_type_codes[type_codes]

    def rows(self, raw: Sequence[Any], make: Callable[..., Row], converters: Any) -> list[Row]:
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
        sqlite_driver = _sqlite_driver_in_transaction(connection)
        asyncpg_adapter = None if sqlite_driver is not None else _asyncpg_adapter_in_transaction(connection)
        if sqlite_driver is None and asyncpg_adapter is None:
            result = await connection.execute(self.statement, list(given) if many else given)
            rows = [self._row(*row) for row in result] if result.returns_rows else []
            return rows, result.rowcount
        dialect = connection.dialect
        compiled = self._compile(dialect, (given[0] if many else given).keys())
        values: Any = [compiled.parameters(each) for each in given] if many else compiled.parameters(given)
        try:
            if sqlite_driver is not None:
                _, raw, rowcount, _ = await run(sqlite_driver, run_statement, compiled.sql, values, many)
                return compiled.rows(raw, self._row, compiled.results), rowcount
            raw, rowcount, type_codes = await _on_asyncpg(asyncpg_adapter, compiled.sql, values, many)
            return compiled.rows(raw, self._row, compiled.converters(dialect, type_codes)), rowcount
        except (sqlite3.Error, _AsyncpgAdapterError) as error:  # SQLAlchemy's form of it, as `execute` raises
            dbapi_error = dialect.loaded_dbapi.Error
            raise exc.DBAPIError.instance(compiled.sql, values, error, dbapi_error, dialect=dialect) from error

    def _compile(self, dialect: Dialect, keys: Any) -> _Compiled:
        columns = frozenset(keys) if getattr(self.statement, "is_insert", False) else None
        found = self._compiled.get((dialect.name, columns))
        if found is None:
            found = self._compiled[(dialect.name, columns)] = _compile(self.statement, dialect, columns)
        return found


def _compile(statement: Executable, dialect: Dialect, columns: frozenset[str] | None) -> _Compiled:
    compilable: Any = statement  # every Core statement compiles; `Executable` does not say so
    if getattr(statement, "is_insert", False):
        # No implicit `RETURNING` of a generated key (SQLAlchemy's, on PostgreSQL): nothing here
        # reads it, and its rows would not match the statement's declared columns.
        compilable = compilable.inline()
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
    result_types = tuple(column.type.dialect_impl(dialect) for column in _columns_of(statement))
    # SQLite reports no type codes; PostgreSQL's processors need them (`_Compiled.converters`).
    results = tuple(kind.result_processor(dialect, None) for kind in result_types) if dialect.name == "sqlite" else ()
    return _Compiled(
        sql=compiled.string,
        names=names,
        fixed=tuple(_GIVEN if bind.required else bind.effective_value for bind in binds),
        binds=tuple(bind.type.dialect_impl(dialect).bind_processor(dialect) for bind in binds),
        results=results if any(convert is not None for convert in results) else None,
        result_types=result_types,
        by_type_codes={},
    )


def _columns_of(statement: Executable) -> list[Any]:
    """The statement's result columns, read off a shallow copy: SQLAlchemy memoizes them on the
    statement it reads and `.returning()` copies the memo, so a RETURNING statement derived from
    one read here would otherwise have no columns."""
    return list(getattr(copy.copy(statement), "exported_columns", ()))


_ROWCOUNT = re.compile(r"(?:SELECT|UPDATE|DELETE|INSERT \d+) (\d+)")
"""A command tag's row count, as SQLAlchemy's asyncpg cursor reads it."""


async def _on_asyncpg(adapter: Any, sql: str, values: Any, many: bool) -> tuple[Sequence[Any], int, tuple[int, ...]]:
    """Rows, row count and column type codes of `sql` on the adapter's connection, as its cursor
    runs it: under its lock, in its transaction (begun here if it has not begun), prepared from
    its statement cache; a driver error raised as the adapter's (DB-API) form of it."""
    async with adapter._execute_mutex:
        try:
            if adapter._transaction is None:
                await adapter._start_transaction()
            if many:
                await adapter._connection.executemany(sql, values)
                return [], -1, ()
            statement, attributes = await adapter._prepare(sql, 0)
            raw = await statement.fetch(*values)
        except Exception as error:  # the adapter translates it and raises
            adapter._handle_exception(error)
        counted = _ROWCOUNT.match(statement.get_statusmsg() or "")
        return (
            raw,
            int(counted.group(1)) if counted else -1,
            tuple(attribute.type.oid for attribute in attributes or ()),
        )


def _asyncpg_adapter_in_transaction(connection: AsyncConnection) -> Any:
    """SQLAlchemy's asyncpg adapter under `connection` when it is in a transaction, not autocommit."""
    sync = connection.sync_connection
    if sync is None or sync.closed or sync.invalidated or not sync.in_transaction():
        return None
    adapter: Any = sync.connection.dbapi_connection
    if type(adapter) is not _AsyncpgAdapter or adapter.autocommit:
        return None
    return adapter


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
