"""`inbox.claim` and `inbox.prune` on a real database."""

from __future__ import annotations

import asyncio
import time

import pytest
from sqlalchemy import event, func, select

from tidings.errors import Malformation, MalformedMessage
from tidings.store import Store, inbox
from tidings.store.tables import inbox as inbox_table


class Rollback(Exception):
    pass


async def _claim(store: Store, group: str, event_id: str, source: str = "test") -> bool:
    async with store.session() as session, session.begin():
        return await inbox.claim(session, group, source, event_id)


async def test_an_id_is_claimed_once_per_group(store: Store) -> None:
    assert await _claim(store, "orders", "e-1")
    assert not await _claim(store, "orders", "e-1")
    assert await _claim(store, "payments", "e-1")  # every group handles every event once
    assert await _claim(store, "orders", "e-2")


async def test_on_a_connection_in_a_transaction_claims_go_through_no_sqlalchemy_statement(store: Store) -> None:
    # The unit of work's path: on the driver, as its handlers' `Prepared` statements are (ADR 0036).
    through_sqlalchemy: list[str] = []

    def executed(_conn: object, _cursor: object, statement: str, *_args: object) -> None:
        through_sqlalchemy.append(statement)

    assert await _claim(store, "orders", "e-0")
    event.listen(store.engine.sync_engine, "before_cursor_execute", executed)
    try:
        async with store.engine.begin() as connection:
            assert await inbox.claim(connection, "orders", "test", "e-1")
            assert not await inbox.claim(connection, "orders", "test", "e-1")
            keys = [("test", "e-0"), ("test", "e-2"), ("other", "e-2")]
            assert await inbox.claim_many(connection, "orders", keys) == {("test", "e-2"), ("other", "e-2")}
            assert through_sqlalchemy == []
    finally:
        event.remove(store.engine.sync_engine, "before_cursor_execute", executed)
    assert not await _claim(store, "orders", "e-2")  # committed


async def test_a_rolled_back_claim_is_not_kept(store: Store) -> None:
    async def claim_then_fail() -> None:
        async with store.session() as session, session.begin():
            assert await inbox.claim(session, "orders", "test", "e-1")
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
            await inbox.claim(session, "orders", "test", f"old-{number}")
    cutoff = time.time()
    await _claim(store, "orders", "new")
    async with store.session() as session, session.begin():
        assert await inbox.prune(session, older_than=cutoff, limit=3) == 3
    async with store.session() as session, session.begin():
        assert await inbox.prune(session, older_than=cutoff) == 2
        assert await inbox.contains(session, "orders", "new")
        assert (await session.execute(select(func.count()).select_from(inbox_table))).scalar() == 1


async def test_an_id_is_claimed_once_per_source(store: Store) -> None:
    """CloudEvents makes (source, id) unique: one id from two producers is two events."""
    assert await _claim(store, "orders", "e-1", source="billing")
    assert await _claim(store, "orders", "e-1", source="shipping")
    assert not await _claim(store, "orders", "e-1", source="billing")
    async with store.session() as session, session.begin():
        assert await inbox.contains(session, "orders", "e-1", source="shipping")
        assert not await inbox.contains(session, "orders", "e-1", source="other")


async def test_a_claim_made_before_the_source_was_recorded_is_still_honoured(store: Store) -> None:
    """Migration 0004 gives earlier claims source '': an event handled just before the upgrade and
    redelivered after it must not run again, whatever its source."""
    async with store.session() as session, session.begin():
        await session.execute(
            inbox_table.insert().values(consumer_group="orders", source="", event_id="e-1", claimed_at=0)
        )
    assert not await _claim(store, "orders", "e-1", source="billing")
    assert await _claim(store, "payments", "e-1", source="billing")  # another group's claim is its own
    assert await _claim(store, "orders", "e-2", source="billing")


async def test_an_id_or_source_longer_than_the_inbox_holds_is_malformed(store: Store) -> None:
    with pytest.raises(MalformedMessage, match="id is 201 characters, the limit is 200") as raised:
        await _claim(store, "orders", "e" * 201)
    assert raised.value.kind is Malformation.INVALID_ATTRIBUTE
    with pytest.raises(MalformedMessage, match="source is 201 characters, the limit is 200"):
        await _claim(store, "orders", "e-1", source="s" * 201)
    assert await _claim(store, "orders", "e" * 200, source="s" * 200)


async def test_contains_answers_for_the_group_and_the_id_asked_about(store: Store) -> None:
    """`contains` is what tests and admin tools ask: a claim of one group is not another's, and a
    claim of one id says nothing about another id."""
    assert await _claim(store, "orders", "e-1", source="billing")
    async with store.session() as session, session.begin():
        assert await inbox.contains(session, "orders", "e-1")
        assert await inbox.contains(session, "orders", "e-1", source="billing")
        assert not await inbox.contains(session, "payments", "e-1")
        assert not await inbox.contains(session, "payments", "e-1", source="billing")
        assert not await inbox.contains(session, "orders", "e-2")


async def _claimed_at(store: Store, claims: list[tuple[str, float]]) -> None:
    async with store.session() as session, session.begin():
        for event_id, claimed_at in claims:
            row = {"consumer_group": "orders", "source": "s", "event_id": event_id, "claimed_at": claimed_at}
            await session.execute(inbox_table.insert().values(**row))


async def _left(store: Store) -> list[str]:
    async with store.session() as session, session.begin():
        return sorted((await session.execute(select(inbox_table.c.event_id))).scalars())


async def test_prune_removes_claims_made_before_the_cutoff_not_at_it(store: Store) -> None:
    await _claimed_at(store, [("e-1", 100.0), ("e-2", 99.5)])
    async with store.session() as session, session.begin():
        assert await inbox.prune(session, older_than=100.0) == 1
    assert await _left(store) == ["e-1"]


async def test_prune_takes_the_oldest_claims_first_when_limited(store: Store) -> None:
    """Ids sort opposite to their age, so neither the key's order nor the insertion order is age."""
    await _claimed_at(store, [("a", 50.0), ("b", 40.0), ("c", 30.0), ("d", 20.0), ("e", 10.0)])
    async with store.session() as session, session.begin():
        assert await inbox.prune(session, older_than=100.0, limit=2) == 2
    assert await _left(store) == ["a", "b", "c"]
