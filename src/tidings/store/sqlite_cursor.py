"""SQLAlchemy's aiosqlite cursor, and which thread runs each SQLite statement.

Through SQLAlchemy's aiosqlite adapter a statement makes three or four trips to aiosqlite's
thread: create the cursor, execute, fetch the rows, close the cursor. Each trip waits for that
thread and then for a turn of the event loop. SQLite runs a statement on its page cache in
microseconds, so in a busy service the trips cost more than the statements. They also hold the
process's one connection (`tidings.store.sqlite`) for that whole time, and every transaction of
the process waits for that connection.

`OneTripCursor` runs the four steps in one function and keeps what the caller reads afterwards:
the rows, `description`, `rowcount` and `lastrowid` (ADR 0033). It reads all rows at once, as
SQLAlchemy's buffered cursor already did. Server-side (streaming) cursors keep SQLAlchemy's own
class.

That function runs on the loop's own thread, with no trip at all, when nothing can make it wait
(ADR 0035): the store writes, so its transactions began with `BEGIN IMMEDIATE` and hold the
write lock (no busy handler), the connection is in such a transaction (nothing is synced before
`COMMIT`), and nothing of the connection is still running on aiosqlite's thread
(`LoopSideConnection` counts what it queued there and what finished). `BEGIN`, `COMMIT`,
`ROLLBACK` and the statements of a read-only store still take the thread. `run` gives the
dialect's own statements the same choice.

`use_one_trip_cursors` installs both on a connection as it connects. This relies on private
names: aiosqlite's `Connection._execute` and `_connection`, and SQLAlchemy's adapter classes.
The SQLite store's tests catch a change in any of them.
"""

from __future__ import annotations

import sqlite3
from collections import deque
from collections.abc import Callable
from typing import Any, TypeVar, cast

import aiosqlite
from sqlalchemy.connectors.asyncio import AsyncAdapt_dbapi_connection
from sqlalchemy.dialects.sqlite.aiosqlite import AsyncAdapt_aiosqlite_connection, AsyncAdapt_aiosqlite_cursor
from sqlalchemy.util import EMPTY_DICT, await_only

T = TypeVar("T")


class LoopSideConnection(aiosqlite.Connection):
    """aiosqlite's connection, counting the calls it queued for its thread and those that finished there.

    `statements_here`: whether a statement in a transaction may run on the loop's thread (a store
    that writes, on a connection usable from another thread than the one that opened it).
    """

    _queued: int
    _finished: int
    statements_here: bool

    @classmethod
    def adopt(cls, driver: aiosqlite.Connection, *, statements_here: bool) -> None:
        """Make `driver`, just connected and with nothing queued, one of these."""
        driver.__class__ = cls
        adopted = cast(LoopSideConnection, driver)
        adopted._queued = adopted._finished = 0
        adopted.statements_here = statements_here

    async def _execute(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        if not self._running or self._connection is None:
            return await super()._execute(fn, *args, **kwargs)  # type: ignore[no-untyped-call]  # raises: closed
        self._queued += 1

        def counted() -> Any:  # on the driver's thread
            try:
                return fn(*args, **kwargs)
            finally:
                self._finished += 1

        return await super()._execute(counted)  # type: ignore[no-untyped-call]


def runs_here(driver: Any) -> bool:
    """Whether a statement on `driver` may run on the loop's thread now (the module docstring)."""
    return (
        type(driver) is LoopSideConnection
        and driver.statements_here
        and driver._queued == driver._finished
        and driver._connection is not None
        and driver._connection.in_transaction
    )


async def run(driver: Any, fn: Callable[..., T], *args: Any) -> T:
    """`fn(sqlite3_connection, *args)` on the loop's thread when `runs_here`, else on the driver's."""
    if runs_here(driver):
        return fn(driver._connection, *args)
    result: T = await driver._execute(fn, driver._conn, *args)
    return result


def rows_of(connection: sqlite3.Connection, operation: str, parameters: Any, many: bool = False) -> list[Any]:
    """The rows of one statement (none for a write), for `run`: the dialect's own statements."""
    rows: list[Any] = run_statement(connection, operation, parameters, many)[1]
    return rows


def run_statement(connection: sqlite3.Connection, operation: str, parameters: Any, many: bool) -> tuple[Any, ...]:
    """Execute, read every row, close (on whichever thread `run` chose); what the cursor must remember."""
    cursor = connection.cursor()
    try:
        if many:
            cursor.executemany(operation, parameters)
        elif parameters is None:
            cursor.execute(operation)
        else:
            cursor.execute(operation, parameters)
        description = cursor.description
        rows = cursor.fetchall() if description else []
        return description, rows, cursor.rowcount, cursor.lastrowid
    finally:
        cursor.close()


class OneTripCursor(AsyncAdapt_aiosqlite_cursor):
    """A buffered cursor whose `execute` and `executemany` are one trip to the driver's thread."""

    __slots__ = ("_description", "_lastrowid", "_rowcount")
    _awaitable_cursor_close = False  # nothing stays open on the thread to close

    def __init__(self, adapt_connection: AsyncAdapt_dbapi_connection) -> None:
        # No driver cursor is created here (that was a trip of its own); `run_statement` makes one per statement.
        self._adapt_connection = adapt_connection
        self._connection = adapt_connection._connection
        self._cursor = None  # type: ignore[assignment]  # every method that used it is overridden
        self._soft_closed_memoized = EMPTY_DICT
        self._rows = deque()
        self._description: Any = None
        self._rowcount = -1
        self._lastrowid: int | None = None

    @property
    def description(self) -> Any:
        return self._description

    @property
    def rowcount(self) -> int:
        return self._rowcount

    @property
    def lastrowid(self) -> Any:
        return self._lastrowid

    def execute(self, operation: Any, parameters: Any = None) -> Any:
        self._trip(operation, parameters, many=False)

    def executemany(self, operation: Any, seq_of_parameters: Any) -> Any:
        self._trip(operation, seq_of_parameters, many=True)

    def close(self) -> None:
        self._rows.clear()

    def _trip(self, operation: Any, parameters: Any, *, many: bool) -> None:
        try:
            # Through the greenlet even when the statement runs here: SQLAlchemy's AsyncConnection
            # requires each execution to have awaited something.
            found = await_only(self._execute_once(operation, parameters, many))
        except Exception as error:
            self._adapt_connection._handle_exception(error)
            raise  # not reached: the adapter raises SQLAlchemy's form of the error
        self._description, rows, self._rowcount, self._lastrowid = found
        self._rows = deque(rows)

    async def _execute_once(self, operation: Any, parameters: Any, many: bool) -> tuple[Any, ...]:
        async with self._adapt_connection._execute_mutex:
            return await run(self._connection, run_statement, operation, parameters, many)


class OneTripConnection(AsyncAdapt_aiosqlite_connection):
    """SQLAlchemy's aiosqlite connection adapter, handing out `OneTripCursor`s."""

    __slots__ = ()
    _cursor_cls = OneTripCursor


def use_one_trip_cursors(dbapi_connection: Any, *, writes: bool) -> None:
    """Make a freshly connected aiosqlite adapter hand out `OneTripCursor`s, and count its driver's
    trips (same layouts: only the classes differ, so the instances can change class). `writes`:
    the store's transactions begin with `BEGIN IMMEDIATE`, so their statements may run here."""
    if type(dbapi_connection) is AsyncAdapt_aiosqlite_connection:
        dbapi_connection.__class__ = OneTripConnection
    driver: Any = dbapi_connection.driver_connection
    if type(driver) is aiosqlite.Connection:
        LoopSideConnection.adopt(driver, statements_here=writes and _usable_here(driver._conn))


def _usable_here(connection: sqlite3.Connection) -> bool:
    """Whether the loop's thread may use `connection` (opened with `check_same_thread=False`, as
    SQLAlchemy's aiosqlite dialect opens a file database)."""
    try:
        connection.cursor().close()  # refused from another thread unless it was opened so
    except sqlite3.ProgrammingError:
        return False
    return True
