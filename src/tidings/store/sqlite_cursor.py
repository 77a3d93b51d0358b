"""SQLAlchemy's aiosqlite cursor, with one hand-off to the driver's thread per statement.

Through SQLAlchemy's aiosqlite adapter a statement makes three or four trips to aiosqlite's
thread: create the cursor, execute, fetch the rows, close the cursor. Each trip waits for that
thread and then for a turn of the event loop. SQLite runs a statement on its page cache in
microseconds, so in a busy service the trips cost more than the statements. They also hold the
process's one connection (`tidings.store.sqlite`) for that whole time, and every transaction of
the process waits for that connection.

`OneTripCursor` runs the four steps in one function on the thread and keeps what the caller
reads afterwards: the rows, `description`, `rowcount` and `lastrowid`. It reads all rows at
once, as SQLAlchemy's buffered cursor already did. Server-side (streaming) cursors keep
SQLAlchemy's own class. `use_one_trip_cursors` installs it on a connection as it connects. This
relies on two private names: aiosqlite's `Connection._execute` (run a function on its thread) and
SQLAlchemy's adapter classes. Both tests of the SQLite store catch a change in either.
"""

from __future__ import annotations

import sqlite3
from collections import deque
from typing import Any

from sqlalchemy.connectors.asyncio import AsyncAdapt_dbapi_connection
from sqlalchemy.dialects.sqlite.aiosqlite import AsyncAdapt_aiosqlite_connection, AsyncAdapt_aiosqlite_cursor
from sqlalchemy.util import EMPTY_DICT, await_only


def _run(connection: sqlite3.Connection, operation: str, parameters: Any, many: bool) -> tuple[Any, ...]:
    """On the driver's thread: execute, read every row, close; what the cursor must remember."""
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
        # No driver cursor is created here (that was a trip of its own); `_run` makes one per statement.
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
            await_only(self._execute_once(operation, parameters, many))
        except Exception as error:
            self._adapt_connection._handle_exception(error)

    async def _execute_once(self, operation: Any, parameters: Any, many: bool) -> None:
        async with self._adapt_connection._execute_mutex:
            driver: Any = self._connection
            found = await driver._execute(_run, driver._conn, operation, parameters, many)
        self._description, rows, self._rowcount, self._lastrowid = found
        self._rows = deque(rows)


class OneTripConnection(AsyncAdapt_aiosqlite_connection):
    """SQLAlchemy's aiosqlite connection adapter, handing out `OneTripCursor`s."""

    __slots__ = ()
    _cursor_cls = OneTripCursor


def use_one_trip_cursors(dbapi_connection: Any) -> None:
    """Make a freshly connected aiosqlite adapter hand out `OneTripCursor`s (same layout: only
    the cursor class differs, so the instance can change class)."""
    if type(dbapi_connection) is AsyncAdapt_aiosqlite_connection:
        dbapi_connection.__class__ = OneTripConnection
