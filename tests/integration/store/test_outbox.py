"""`outbox.add`, `pending` and `remove` on a real database: atomic with the transaction, in order."""

from __future__ import annotations

import pytest

from tests.integration.store.shop import Job
from tidings.envelope import Envelope
from tidings.store import Store, outbox


class Rollback(Exception):
    pass


def _envelopes(count: int, source: str = "worker") -> list[Envelope]:
    return [Envelope.wrap(Job(n=n, key=f"k{n % 3}"), source=source) for n in range(count)]


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


async def test_remove_deletes_exactly_the_given_rows(store: Store) -> None:
    async with store.session() as session, session.begin():
        await outbox.add(session, _envelopes(4))
    rows = await _pending(store)
    async with store.session() as session, session.begin():
        assert await outbox.remove(session, [rows[0].id, rows[2].id]) == 2
        assert await outbox.remove(session, []) == 0
    assert [row.id for row in await _pending(store)] == [rows[1].id, rows[3].id]
