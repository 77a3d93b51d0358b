"""Where a statement through SQLAlchemy on a SQLite store runs (`tidings.store.sqlite_cursor`):
on the loop's thread inside a transaction of a store that writes (ADR 0035), else in one trip to
aiosqlite's thread (ADR 0033); and the cursor still answers everything SQLAlchemy asks of it.

SQLAlchemy's own aiosqlite cursor made three or four trips per statement (cursor, execute,
fetch, close). The count is taken on aiosqlite's `Connection._execute`, the one way a call
reaches the driver's thread; `thread()`, a SQL function of the test's, says which thread ran it.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiosqlite
import pytest
from sqlalchemy import Column, Integer, MetaData, String, Table, bindparam, func, insert, select, text, update
from sqlalchemy.exc import IntegrityError, OperationalError
from sqlalchemy.ext.asyncio import AsyncConnection

from tidings.store import Store
from tidings.store.tables import inbox

METADATA = MetaData()
ITEMS = Table("trip_items", METADATA, Column("id", Integer, primary_key=True), Column("name", String, unique=True))


@pytest.fixture
def trips(monkeypatch: pytest.MonkeyPatch) -> list[object]:
    """Every function aiosqlite runs on its thread, from the moment the fixture is entered."""
    seen: list[object] = []
    original = aiosqlite.Connection._execute

    async def counted(self: aiosqlite.Connection, fn: object, *args: object, **kwargs: object) -> object:
        seen.append(fn)
        return await original(self, fn, *args, **kwargs)

    monkeypatch.setattr(aiosqlite.Connection, "_execute", counted)
    return seen


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[Store]:
    opened = await Store.open(f"sqlite:///{tmp_path / 'trips.db'}", metadata=METADATA)
    try:
        yield opened
    finally:
        await opened.close()


async def _name_threads(db: AsyncConnection, log: list[str] | None = None) -> Any:
    """Give `db`'s SQLite connection `thread()` (the name of the thread that runs it, also logged
    in `log`) and `slow()` (sleeps 0.2 s, then logs "slow done"); returns aiosqlite's connection."""
    driver = (await db.get_raw_connection()).driver_connection
    log = log if log is not None else []

    def thread() -> str:
        log.append("statement")
        return threading.current_thread().name

    def slow() -> int:
        time.sleep(0.2)  # sleep-ok: a statement still running on the thread is the scenario
        log.append("slow done")
        return 1

    await driver.create_function("thread", 0, thread)
    await driver.create_function("slow", 0, slow)
    return driver


async def test_in_a_transaction_each_statement_runs_on_the_loop_thread_with_its_rows_count_and_id(
    store: Store, trips: list[object]
) -> None:
    async with store.engine.begin() as db:
        await _name_threads(db)
        trips.clear()
        inserted = await db.execute(insert(ITEMS), {"name": "tea"})
        assert inserted.inserted_primary_key == (1,)  # lastrowid
        await db.execute(insert(ITEMS), [{"name": "coffee"}, {"name": "cocoa"}])  # executemany
        renamed = await db.execute(
            update(ITEMS).where(ITEMS.c.name.in_(bindparam("names", expanding=True))).values(name=ITEMS.c.name + "!"),
            {"names": ["coffee", "cocoa"]},
        )
        assert renamed.rowcount == 2
        named = select(ITEMS.c.id, ITEMS.c.name, func.thread().label("thread")).order_by(ITEMS.c.id)
        rows = (await db.execute(named)).all()
        assert trips == []
    assert len(trips) == 1  # the COMMIT: it waits for the disk, on the driver's thread
    assert [tuple(row) for row in rows] == [(n, name, threading.current_thread().name) for n, name in TEA_COFFEE_COCOA]
    assert list(rows[0]._mapping) == ["id", "name", "thread"]  # the description named the columns


TEA_COFFEE_COCOA = [(1, "tea"), (2, "coffee!"), (3, "cocoa!")]


async def test_begin_commit_and_the_statements_of_a_read_only_store_take_the_driver_thread(
    tmp_path: Path, trips: list[object]
) -> None:
    writer = await Store.open(f"sqlite:///{tmp_path / 'trips.db'}", metadata=METADATA)
    reader = await Store.open(f"sqlite:///{tmp_path / 'trips.db'}", migrate=False, read_only=True)
    try:
        trips.clear()
        async with writer.engine.begin() as db:
            assert len(trips) == 1  # BEGIN IMMEDIATE: it may wait for another process's lock
            await db.execute(insert(ITEMS), [{"name": "tea"}, {"name": "coffee"}])
            assert len(trips) == 1
        assert len(trips) == 2  # COMMIT
        async with reader.engine.connect() as db:
            await _name_threads(db)
            trips.clear()
            found = (await db.execute(select(ITEMS.c.name, func.thread()).order_by(ITEMS.c.id))).all()
            assert len(trips) == 2  # BEGIN (deferred), then the statement
        assert [name for name, _ in found] == ["tea", "coffee"]
        assert {thread for _, thread in found} != {threading.current_thread().name}
    finally:
        await reader.close()
        await writer.close()


async def test_a_statement_after_a_call_that_still_runs_on_the_thread_waits_for_it(store: Store) -> None:
    log: list[str] = []
    async with store.engine.begin() as db:
        driver = await _name_threads(db, log)
        with pytest.raises(TimeoutError):
            async with asyncio.timeout(0.02):  # the caller gives up; the call goes on on the thread
                await driver.execute("SELECT slow()")
        ran_on = (await db.execute(select(func.thread()))).scalar_one()
    assert log == ["slow done", "statement"]  # not beside it, on the same connection
    assert ran_on != threading.current_thread().name


async def test_the_dialect_s_own_statements_run_on_the_loop_thread_in_a_transaction(
    store: Store, trips: list[object]
) -> None:
    async with store.engine.begin() as db:
        trips.clear()
        assert await store.dialect.claim(db, "group", "urn:test", "event-1", 1.0)
        assert not await store.dialect.claim(db, "group", "urn:test", "event-1", 2.0)
        won = await store.dialect.claim_many(db, "group", [("urn:test", "event-1"), ("urn:test", "event-2")], 3.0)
        assert trips == []
    assert won == {("urn:test", "event-2")}
    async with store.engine.connect() as db:
        assert (await db.execute(select(func.count()).select_from(inbox))).scalar_one() == 2  # committed


async def test_the_orm_session_reads_and_writes_through_it(store: Store, trips: list[object]) -> None:
    async with store.session() as session, session.begin():
        await session.execute(insert(ITEMS), {"name": "tea"})
        trips.clear()
        found = (await session.execute(select(ITEMS.c.name))).scalars().all()
        assert trips == []
    assert found == ["tea"]


async def test_errors_are_sqlalchemy_s_and_the_connection_stays_usable(store: Store) -> None:
    async with store.engine.begin() as db:
        await db.execute(insert(ITEMS), {"name": "tea"})
    with pytest.raises(IntegrityError, match="UNIQUE"):
        async with store.engine.begin() as db:
            await db.execute(insert(ITEMS), {"name": "tea"})
    with pytest.raises(OperationalError, match="no such table"):
        async with store.engine.connect() as db:
            await db.execute(text("SELECT * FROM missing"))
    async with store.engine.connect() as db:
        assert (await db.execute(select(ITEMS.c.name))).scalars().all() == ["tea"]


async def test_a_statement_with_no_rows_leaves_an_empty_result(store: Store) -> None:
    async with store.engine.connect() as db:
        result = await db.execute(select(ITEMS.c.id).where(ITEMS.c.name == "nothing"))
        assert result.first() is None
        assert (await db.execute(text("PRAGMA journal_mode"))).scalar_one() == "wal"
