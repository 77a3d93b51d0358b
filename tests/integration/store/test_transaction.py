"""`Transaction`: Core statements and ORM writes of one unit of work commit together, or not at all,
and the session is made only for code that asks for it."""

from __future__ import annotations

import asyncio
import uuid

import pytest
from sqlalchemy import Integer, MetaData, String, func, insert, select
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from tests.integration.store.helpers import eventually
from tidings.context import Context
from tidings.events import Event
from tidings.retry import RetryPolicy
from tidings.service import Service
from tidings.store import Store
from tidings.store.transaction import Transaction


class Base(DeclarativeBase):
    metadata = MetaData()


class Note(Base):
    __tablename__ = "transaction_notes"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    text: Mapped[str] = mapped_column(String(40))


notes = Note.__table__


async def _texts(store: Store) -> list[str]:
    async with store.engine.connect() as connection:
        return list((await connection.execute(select(notes.c.text).order_by(notes.c.text))).scalars())


@pytest.fixture
async def notes_store(database_url: str) -> Store:
    store = await Store.open(database_url, metadata=Base.metadata)
    yield store  # type: ignore[misc]
    await store.close()


async def test_core_rows_and_pending_orm_objects_commit_together(notes_store: Store) -> None:
    transaction = await Transaction.begin(notes_store.engine)
    await transaction.connection.execute(insert(notes), {"text": "core"})
    transaction.session.add(Note(text="orm"))  # pending: the commit flushes it
    await transaction.commit()
    assert await _texts(notes_store) == ["core", "orm"]


async def test_closing_without_commit_rolls_back_both_kinds_of_write(notes_store: Store) -> None:
    transaction = await Transaction.begin(notes_store.engine)
    await transaction.connection.execute(insert(notes), {"text": "core"})
    transaction.session.add(Note(text="orm"))
    await transaction.flush()
    await transaction.close()
    await transaction.close()  # twice is harmless
    assert await _texts(notes_store) == []


async def test_a_commit_by_user_code_on_the_session_does_not_end_the_transaction(notes_store: Store) -> None:
    transaction = await Transaction.begin(notes_store.engine)
    transaction.session.add(Note(text="orm"))
    await transaction.session.commit()  # the session only joined the transaction
    await transaction.close()
    assert await _texts(notes_store) == []


async def test_the_session_is_made_only_when_asked_for_and_then_kept(notes_store: Store) -> None:
    transaction = await Transaction.begin(notes_store.engine)
    try:
        assert transaction.peek_session() is None
        session = transaction.session
        assert transaction.peek_session() is session is transaction.session
        assert await session.scalar(select(func.count()).select_from(notes)) == 0
    finally:
        await transaction.close()


async def test_a_failing_flush_raises_from_commit_and_leaves_nothing_behind(notes_store: Store) -> None:
    transaction = await Transaction.begin(notes_store.engine)
    await transaction.connection.execute(insert(notes), {"id": 1, "text": "first"})
    transaction.session.add(Note(id=1, text="same key"))
    with pytest.raises(Exception, match=r"(?i)unique|duplicate"):
        await transaction.commit()
    assert await _texts(notes_store) == []
    again = await Transaction.begin(notes_store.engine)  # the connection went back to the pool, usable
    await again.connection.execute(insert(notes), {"id": 1, "text": "after"})
    await again.commit()
    assert await _texts(notes_store) == ["after"]


async def test_a_cancelled_unit_of_work_returns_its_connection(notes_store: Store) -> None:
    started = asyncio.Event()

    async def work() -> None:
        transaction = await Transaction.begin(notes_store.engine)
        try:
            await transaction.connection.execute(insert(notes), {"text": "cancelled"})
            started.set()
            await asyncio.Event().wait()
        finally:
            await transaction.close()

    task = asyncio.create_task(work())
    await started.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert await _texts(notes_store) == []
    assert notes_store.engine.pool.checkedout() == 0  # type: ignore[attr-defined]


class Wrote(Event, type="test.transaction.wrote", version=1):
    n: int


async def test_a_handlers_connection_and_session_writes_commit_once_with_its_claim(
    notes_store: Store, database_url: str
) -> None:
    """A handler writes through `ctx.connection` and `ctx.session` and fails on its first attempt:
    the rolled-back attempt leaves neither row, the retry leaves exactly one of each."""
    attempts: list[int] = []
    service = Service(
        "notes",
        broker=f"memory://transaction-{uuid.uuid4().hex}",
        database=database_url,
        retry=RetryPolicy(max_attempts=3, base=0.01),
    )

    @service.on(Wrote)
    async def write(event: Wrote, ctx: Context) -> None:
        await ctx.connection.execute(insert(notes), {"text": f"core {event.n}"})
        ctx.session.add(Note(text=f"orm {event.n}"))
        attempts.append(ctx.attempt)
        if ctx.attempt == 1:
            raise RuntimeError("first attempt fails after writing")

    async with service:
        await service.publish(Wrote(n=1))

        async def retried() -> bool:
            return attempts == [1, 2] and await _texts(notes_store) == ["core 1", "orm 1"]

        await eventually(retried, what="the retry's rows, and only those")
