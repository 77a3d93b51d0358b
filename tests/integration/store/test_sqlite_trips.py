"""A statement through SQLAlchemy on a SQLite store is one trip to aiosqlite's thread, and the
cursor still answers everything SQLAlchemy asks of it (`tidings.store.sqlite_cursor`).

SQLAlchemy's own aiosqlite cursor made three or four trips per statement (cursor, execute,
fetch, close). The count is taken on aiosqlite's `Connection._execute`, the one way a call
reaches the driver's thread.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import aiosqlite
import pytest
from sqlalchemy import Column, Integer, MetaData, String, Table, bindparam, insert, select, text, update
from sqlalchemy.exc import IntegrityError, OperationalError

from tidings.store import Store

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


async def test_each_statement_is_one_trip_with_its_rows_count_and_id(store: Store, trips: list[object]) -> None:
    async with store.engine.begin() as db:
        trips.clear()
        inserted = await db.execute(insert(ITEMS), {"name": "tea"})
        assert len(trips) == 1
        assert inserted.inserted_primary_key == (1,)  # lastrowid
        await db.execute(insert(ITEMS), [{"name": "coffee"}, {"name": "cocoa"}])  # executemany
        assert len(trips) == 2
        renamed = await db.execute(
            update(ITEMS).where(ITEMS.c.name.in_(bindparam("names", expanding=True))).values(name=ITEMS.c.name + "!"),
            {"names": ["coffee", "cocoa"]},
        )
        assert renamed.rowcount == 2
        rows = (await db.execute(select(ITEMS.c.id, ITEMS.c.name).order_by(ITEMS.c.id))).all()
        assert len(trips) == 4
    assert [tuple(row) for row in rows] == [(1, "tea"), (2, "coffee!"), (3, "cocoa!")]
    assert list(rows[0]._mapping) == ["id", "name"]  # the description named the columns


async def test_the_orm_session_reads_and_writes_through_it(store: Store, trips: list[object]) -> None:
    async with store.session() as session, session.begin():
        await session.execute(insert(ITEMS), {"name": "tea"})
        trips.clear()
        found = (await session.execute(select(ITEMS.c.name))).scalars().all()
        assert len(trips) == 1
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
