"""`outbox.add`, `pending` and `remove` on a real database: atomic with the transaction, in order."""

from __future__ import annotations

import time

import pytest
from sqlalchemy import delete, event
from sqlalchemy.ext.asyncio import AsyncSession

from tests.integration.store.shop import Job
from tidings.envelope import Envelope
from tidings.store import Store, outbox
from tidings.store.tables import outbox as outbox_table


class Rollback(Exception):
    pass


def _envelopes(count: int, source: str = "worker") -> list[Envelope]:
    return [Envelope.wrap(Job(n=n, key=f"k{n % 3}"), source=source) for n in range(count)]


async def _delete(session: AsyncSession, ids: list[int]) -> None:
    """What the relay does with published rows."""
    await session.execute(delete(outbox_table).where(outbox_table.c.id.in_(ids)))


async def _pending(store: Store, source: str = "worker") -> list[outbox.OutboxRow]:
    async with store.session() as session, session.begin():
        return await outbox.pending(session, source, limit=1000)


async def test_committed_rows_come_back_exactly_and_in_order(store: Store) -> None:
    first, second = _envelopes(3), _envelopes(2)
    for batch in (first, second):
        async with store.session() as session, session.begin():
            await outbox.add(session, batch)
    rows = await _pending(store)
    assert [row.envelope for row in rows] == first + second
    assert [row.id for row in rows] == sorted(row.id for row in rows)


async def test_on_a_connection_in_a_transaction_the_rows_go_through_no_sqlalchemy_statement(store: Store) -> None:
    # The unit of work's path: on the driver, as its handlers' `Prepared` statements are (ADR 0036).
    through_sqlalchemy: list[str] = []

    def executed(_conn: object, _cursor: object, statement: str, *_args: object) -> None:
        through_sqlalchemy.append(statement)

    batch = _envelopes(3)
    event.listen(store.engine.sync_engine, "before_cursor_execute", executed)
    try:
        async with store.engine.begin() as connection:
            await outbox.add(connection, batch, owner="worker")
            assert through_sqlalchemy == []
    finally:
        event.remove(store.engine.sync_engine, "before_cursor_execute", executed)
    assert [row.envelope for row in await _pending(store)] == batch


async def test_a_rolled_back_transaction_leaves_no_rows(store: Store) -> None:
    async def add_then_fail() -> None:
        async with store.session() as session, session.begin():
            await outbox.add(session, _envelopes(3))
            raise Rollback

    with pytest.raises(Rollback):
        await add_then_fail()
    assert await _pending(store) == []


async def test_an_empty_list_is_a_no_op(store: Store) -> None:
    async with store.session() as session, session.begin():
        await outbox.add(session, [])
    assert await _pending(store) == []


async def test_pending_is_per_source_and_limited(store: Store) -> None:
    async with store.session() as session, session.begin():
        await outbox.add(session, _envelopes(5, "worker") + _envelopes(2, "other"))
    async with store.session() as session, session.begin():
        assert len(await outbox.pending(session, "worker", limit=3)) == 3
        assert len(await outbox.pending(session, "other", limit=10)) == 2


async def test_pending_count_counts_the_committed_rows_of_one_source(store: Store) -> None:
    """What the health gauge and the test kit report as the outbox backlog of a service."""
    async with store.session() as session, session.begin():
        await outbox.add(session, _envelopes(3, "worker") + _envelopes(1, "other"))
    async with store.session() as session, session.begin():
        assert await outbox.pending_count(session, "worker") == 3
        assert await outbox.pending_count(session, "other") == 1
        assert await outbox.pending_count(session, "nobody") == 0
    rows = await _pending(store)
    async with store.session() as session, session.begin():
        await _delete(session, [rows[0].id])
    async with store.session() as session, session.begin():
        assert await outbox.pending_count(session, "worker") == 2


async def test_pending_is_in_id_order_even_where_the_table_reuses_freed_space(store: Store) -> None:
    """On PostgreSQL a row written after a delete and a vacuum can sit before older rows in the
    table; `pending` still returns publication (`id`) order (the relay's read orders by `id` too)."""
    async with store.session() as session, session.begin():
        await outbox.add(session, _envelopes(4))
    rows = await _pending(store)
    async with store.session() as session, session.begin():
        await _delete(session, [rows[0].id, rows[1].id])
    if store.is_postgres:  # SQLite keeps rows in rowid (`id`) order anyway
        async with store.engine.connect() as connection:
            autocommit = await connection.execution_options(isolation_level="AUTOCOMMIT")
            await autocommit.exec_driver_sql("VACUUM tidings_outbox")
    before = time.time()
    later = _envelopes(2)
    async with store.session() as session, session.begin():
        await outbox.add(session, later)
    after = time.time()
    pending = await _pending(store)
    assert [row.envelope for row in pending] == [rows[2].envelope, rows[3].envelope, *later]
    assert [row.id for row in pending] == sorted(row.id for row in pending)
    assert all(before <= row.created_at <= after for row in pending[2:])
