"""`inbox.claim` and `inbox.prune` on a real database."""

from __future__ import annotations

import asyncio
import time

import pytest
from sqlalchemy import func, select

from tidings.store import Store, inbox
from tidings.store.tables import inbox as inbox_table


class Rollback(Exception):
    pass


async def _claim(store: Store, group: str, event_id: str) -> bool:
    async with store.session() as session, session.begin():
        return await inbox.claim(session, group, event_id)


async def test_an_id_is_claimed_once_per_group(store: Store) -> None:
    assert await _claim(store, "orders", "e-1")
    assert not await _claim(store, "orders", "e-1")
    assert await _claim(store, "payments", "e-1")  # every group handles every event once
    assert await _claim(store, "orders", "e-2")


async def test_a_rolled_back_claim_is_not_kept(store: Store) -> None:
    async def claim_then_fail() -> None:
        async with store.session() as session, session.begin():
            assert await inbox.claim(session, "orders", "e-1")
            raise Rollback

    with pytest.raises(Rollback):
        await claim_then_fail()
    assert await _claim(store, "orders", "e-1")


async def test_concurrent_claims_of_one_id_have_one_winner(database_url: str) -> None:
    stores = [await Store.open(database_url) for _ in range(3)]
    try:
        results = await asyncio.gather(*(_claim(store, "orders", "e-1") for store in stores for _ in range(3)))
    finally:
        for store in stores:
            await store.close()
    assert sorted(results) == [False] * 8 + [True]


async def test_prune_removes_only_claims_older_than_the_cutoff(store: Store) -> None:
    async with store.session() as session, session.begin():
        for number in range(5):
            await inbox.claim(session, "orders", f"old-{number}")
    cutoff = time.time()
    await _claim(store, "orders", "new")
    async with store.session() as session, session.begin():
        assert await inbox.prune(session, older_than=cutoff, limit=3) == 3
    async with store.session() as session, session.begin():
        assert await inbox.prune(session, older_than=cutoff) == 2
        assert await inbox.contains(session, "orders", "new")
        assert (await session.execute(select(func.count()).select_from(inbox_table))).scalar() == 1
