"""`Prepared` statements (`tidings.store.prepared`, ADR 0036): the same rows, counts, types and
errors as SQLAlchemy's own execution: inside a transaction on the driver (on SQLite with no trip
to aiosqlite's thread, on PostgreSQL on SQLAlchemy's asyncpg adapter), through SQLAlchemy outside
one; refused at compile time where it would be wrong."""

from __future__ import annotations

import threading
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import aiosqlite
import pytest
from sqlalchemy import (
    Column,
    DateTime,
    Integer,
    MetaData,
    Numeric,
    String,
    Table,
    TypeDecorator,
    bindparam,
    event,
    func,
    insert,
    literal,
    select,
    update,
)
from sqlalchemy.exc import IntegrityError, NotSupportedError
from sqlalchemy.ext.asyncio import AsyncConnection

from tidings.errors import ConfigurationError
from tidings.store import Prepared, Store


class Utc(TypeDecorator[datetime]):
    """Aware datetimes in, aware datetimes out (SQLite stores them naive): a bind and a result processor."""

    impl = DateTime
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Any) -> datetime | None:
        return None if value is None else value.astimezone(UTC).replace(tzinfo=None)

    def process_result_value(self, value: datetime | None, dialect: Any) -> datetime | None:
        return None if value is None else value.replace(tzinfo=UTC)


METADATA = MetaData()
ITEMS = Table(
    "prepared_items",
    METADATA,
    Column("sku", String(20), primary_key=True),
    Column("price", Numeric(10, 2), nullable=False),
    Column("quantity", Integer, nullable=False),
    Column("updated_at", Utc, nullable=False),
)
STAMPED = Table(
    "prepared_stamped",
    METADATA,
    Column("id", Integer, primary_key=True),
    Column("at", Utc, nullable=False, default=lambda: datetime.now(UTC)),
)

ADD = Prepared(insert(ITEMS))
BY_SKU = Prepared(select(ITEMS).where(ITEMS.c.sku == bindparam("sku")))
TAKE = Prepared(
    update(ITEMS)
    .where(ITEMS.c.sku == bindparam("the_sku"), ITEMS.c.quantity >= bindparam("n"))
    .values(quantity=ITEMS.c.quantity - bindparam("n"))
)
CHEAPEST = Prepared(select(ITEMS.c.sku, literal("tag").label("tag")).order_by(ITEMS.c.price).limit(2))
THREAD = Prepared(select(func.thread()))
NOON = datetime(2026, 12, 6, 12, 0, tzinfo=UTC)
ROWS = [
    {"sku": "tea", "price": Decimal("3.50"), "quantity": 10, "updated_at": NOON},
    {"sku": "coffee", "price": Decimal("4.25"), "quantity": 1, "updated_at": NOON + timedelta(hours=1)},
    {"sku": "cocoa", "price": Decimal("2.10"), "quantity": 0, "updated_at": NOON - timedelta(hours=1)},
]


@pytest.fixture
async def store(database_url: str) -> AsyncIterator[Store]:
    opened = await Store.open(database_url, metadata=METADATA)
    try:
        yield opened
    finally:
        async with opened.engine.begin() as db:
            await db.run_sync(METADATA.drop_all)
        await opened.close()


async def _same_as_core(db: AsyncConnection) -> None:
    await ADD.executemany(db, ROWS)
    found = await BY_SKU.first(db, {"sku": "coffee"})
    core = (await db.execute(BY_SKU.statement, {"sku": "coffee"})).one()
    assert found == tuple(core) == ("coffee", Decimal("4.25"), 1, NOON + timedelta(hours=1))
    assert found is not None
    assert found.updated_at.tzinfo is UTC  # the result processor ran; fields by name
    assert await BY_SKU.first(db, {"sku": "nothing"}) is None
    assert await TAKE.execute(db, {"the_sku": "coffee", "n": 1}) == 1
    assert await TAKE.execute(db, {"the_sku": "coffee", "n": 1}) == 0  # matched no row
    assert await BY_SKU.scalar(db, {"sku": "coffee"}) == "coffee"
    assert await CHEAPEST.rows(db) == [("cocoa", "tag"), ("tea", "tag")]  # a literal and a LIMIT it carries


async def test_the_results_are_sqlalchemy_s_on_every_database(store: Store) -> None:
    async with store.engine.begin() as db:
        await _same_as_core(db)


async def test_outside_a_transaction_it_runs_through_sqlalchemy(store: Store) -> None:
    async with store.engine.connect() as db:
        assert await BY_SKU.rows(db, {"sku": "tea"}) == []  # it began the transaction, as execute does
        await ADD.executemany(db, ROWS[:1])
        await db.commit()
    async with store.engine.connect() as db:
        assert await BY_SKU.scalar(db, {"sku": "tea"}) == "tea"


async def test_on_sqlite_in_a_transaction_it_runs_on_the_driver_on_the_loop_thread_without_a_trip(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = await Store.open(f"sqlite:///{tmp_path / 'prepared.db'}", metadata=METADATA)
    trips: list[object] = []
    through_sqlalchemy: list[str] = []
    original = aiosqlite.Connection._execute

    async def counted(self: aiosqlite.Connection, fn: object, *args: object, **kwargs: object) -> object:
        trips.append(fn)
        return await original(self, fn, *args, **kwargs)

    def executed(_conn: object, _cursor: object, statement: str, *_args: object) -> None:
        through_sqlalchemy.append(statement)

    try:
        async with store.engine.begin() as db:
            driver: Any = (await db.get_raw_connection()).driver_connection
            await driver.create_function("thread", 0, lambda: threading.current_thread().name)
            monkeypatch.setattr(aiosqlite.Connection, "_execute", counted)
            event.listen(store.engine.sync_engine, "before_cursor_execute", executed)
            await ADD.executemany(db, ROWS)
            assert await TAKE.execute(db, {"the_sku": "tea", "n": 4}) == 1
            assert await THREAD.scalar(db) == threading.current_thread().name
            assert trips == []
            assert through_sqlalchemy == []  # on the driver, not through SQLAlchemy's execution
        async with store.engine.connect() as db:
            assert await BY_SKU.rows(db, {"sku": "tea"}) == [("tea", Decimal("3.50"), 6, NOON)]
    finally:
        await store.close()


async def test_an_error_is_sqlalchemy_s_and_the_transaction_goes_on(store: Store) -> None:
    async with store.engine.begin() as db:
        await ADD.executemany(db, ROWS[:1])
        with pytest.raises(IntegrityError, match=r"(?i)unique|duplicate"):
            async with db.begin_nested():
                await ADD.execute(db, ROWS[0])
        assert await BY_SKU.scalar(db, {"sku": "tea"}) == "tea"


async def test_what_it_would_get_wrong_is_refused_when_it_compiles(tmp_path: Path) -> None:
    store = await Store.open(f"sqlite:///{tmp_path / 'prepared.db'}", metadata=METADATA)
    try:
        async with store.engine.begin() as db:
            with pytest.raises(ConfigurationError, match="no Python-side defaults: give a value for at"):
                await Prepared(insert(STAMPED)).execute(db, {"id": 1})
            await Prepared(insert(STAMPED)).execute(db, {"id": 1, "at": NOON})  # given: fine
            in_list = Prepared(select(ITEMS.c.sku).where(ITEMS.c.sku.in_(bindparam("skus", expanding=True))))
            with pytest.raises(ConfigurationError, match="expanding IN"):
                await in_list.rows(db, {"skus": ["tea"]})
    finally:
        await store.close()


async def test_a_returning_statement_derived_from_a_prepared_one_names_its_columns(store: Store) -> None:
    # SQLAlchemy memoizes a statement's columns and `.returning()` copies the memo: reading the
    # columns of TAKE's statement must not leave its RETURNING copy with none.
    taking = TAKE.statement.returning(ITEMS.c.sku, ITEMS.c.quantity)  # type: ignore[attr-defined]
    async with store.engine.begin() as db:
        await ADD.executemany(db, ROWS)
        row = await Prepared(taking).first(db, {"the_sku": "tea", "n": 3})
        assert row is not None
        assert (row.sku, row.quantity) == ("tea", 7)


async def test_in_a_transaction_no_statement_goes_through_sqlalchemy_on_any_database(store: Store) -> None:
    through_sqlalchemy: list[str] = []

    def executed(_conn: object, _cursor: object, statement: str, *_args: object) -> None:
        through_sqlalchemy.append(statement)

    event.listen(store.engine.sync_engine, "before_cursor_execute", executed)
    try:
        async with store.engine.begin() as db:
            await ADD.executemany(db, ROWS)  # the first statement: on PostgreSQL it begins the transaction
            assert await TAKE.execute(db, {"the_sku": "tea", "n": 4}) == 1
            assert await BY_SKU.first(db, {"sku": "tea"}) == ("tea", Decimal("3.50"), 6, NOON)
            assert through_sqlalchemy == []
        async with store.engine.connect() as db:  # committed: what ran on the driver was the transaction's
            assert await BY_SKU.scalar(db, {"sku": "coffee"}) == "coffee"
    finally:
        event.remove(store.engine.sync_engine, "before_cursor_execute", executed)


async def test_an_insert_whose_key_the_database_generates_runs_and_counts_its_row(store: Store) -> None:
    # SQLAlchemy would add `RETURNING id` for PostgreSQL, to learn the generated key: the
    # statement's rows and its declared columns must still agree.
    stamp = Prepared(insert(STAMPED))
    async with store.engine.begin() as db:
        assert await stamp.execute(db, {"at": NOON}) == 1
        await stamp.executemany(db, [{"at": NOON}, {"at": NOON + timedelta(hours=1)}])
    async with store.engine.connect() as db:
        assert await Prepared(select(func.count()).select_from(STAMPED)).scalar(db) == 3


async def test_after_a_schema_change_the_statement_is_prepared_again(store: Store) -> None:
    # On PostgreSQL a prepared statement goes stale when a column's type changes; SQLAlchemy then
    # prepares its cached statements again, and so must a Prepared one on the same connection.
    if store.engine.dialect.name != "postgresql":
        pytest.skip("SQLite keeps no prepared statements across transactions, nor ALTER COLUMN TYPE")
    async with store.engine.connect() as db:
        await ADD.executemany(db, ROWS)
        assert await BY_SKU.first(db, {"sku": "tea"}) == ("tea", Decimal("3.50"), 10, NOON)
        await db.commit()
        await db.exec_driver_sql("ALTER TABLE prepared_items ALTER COLUMN quantity TYPE bigint")
        await db.commit()
        with pytest.raises(NotSupportedError, match="cached statement plan is invalid"):
            await BY_SKU.first(db, {"sku": "tea"})  # as SQLAlchemy's own execution raises, once
        await db.rollback()
        assert await BY_SKU.first(db, {"sku": "tea"}) == ("tea", Decimal("3.50"), 10, NOON)
        await db.commit()
