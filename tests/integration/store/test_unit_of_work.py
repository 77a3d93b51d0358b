"""The runtime's unit of work with a database: inbox claim, handler rows and outbox rows commit
together, nothing leaves before the commit, and a redelivered event does not run the handler."""

from __future__ import annotations

import asyncio

import pytest
from sqlalchemy import func, select

from tests.integration.store.helpers import eventually, receive
from tests.integration.store.shop import Job, JobDone, create_tables, effect_counts, effects, worker
from tidings.envelope import Envelope
from tidings.retry import RetryPolicy
from tidings.store import Store, outbox_status
from tidings.store.tables import inbox as inbox_table
from tidings.transport.base import connect


class Abort(Exception):
    pass


async def _count(database: str, table_name: str) -> int:
    store = await Store.open(database, migrate=False)
    try:
        async with store.session() as session, session.begin():
            table = effects if table_name == "effects" else inbox_table
            return int((await session.execute(select(func.count()).select_from(table))).scalar_one())
    finally:
        await store.close()


async def test_a_handler_that_raises_after_writing_leaves_no_rows_and_no_events(
    database_url: str, reliable_broker_url: str
) -> None:
    await create_tables(database_url)
    transport = await connect(reliable_broker_url)
    downstream = await transport.subscribe("audit", [JobDone.event_type])
    service = worker(reliable_broker_url, database_url, retry=RetryPolicy(max_attempts=2, base=0.01))
    async with service:
        await transport.publish([Envelope.wrap(Job(n=1, fail=True), source="test")])
        await eventually(lambda: _true(service.stats["dead_lettered"] == 1), what="the dead letter")
    assert service.stats["retried"] == 1
    assert await effect_counts(database_url, "worker") == {}
    assert await _count(database_url, "inbox") == 0
    status = await outbox_status(database_url)
    assert (status.pending, status.published) == (0, 0)
    assert (await transport.backlog()).get("audit", 0) == 0
    await downstream.close()
    await transport.close()


async def test_a_redelivered_event_is_acked_without_running_the_handler(
    database_url: str, reliable_broker_url: str
) -> None:
    await create_tables(database_url)
    transport = await connect(reliable_broker_url)
    downstream = await transport.subscribe("audit", [JobDone.event_type])
    service = worker(reliable_broker_url, database_url)
    envelope = Envelope.wrap(Job(n=7), source="test")
    async with service:
        await transport.publish([envelope])
        await transport.publish([envelope])  # the broker delivers it twice
        await eventually(lambda: _true(service.stats["handled"] + service.stats["duplicates"] == 2))
        received = await receive(downstream, 1, quiet=0.3)
    assert (service.stats["handled"], service.stats["duplicates"]) == (1, 1)
    assert await effect_counts(database_url, "worker") == {7: 1}
    assert [JobDone.model_validate_json(e.data).n for e in received] == [7]
    assert received[0].causationid == envelope.id
    await downstream.close()
    await transport.close()


async def test_a_transaction_publishes_only_after_it_committed(database_url: str, reliable_broker_url: str) -> None:
    await create_tables(database_url)
    transport = await connect(reliable_broker_url)
    downstream = await transport.subscribe("audit", [JobDone.event_type])
    service = worker(reliable_broker_url, database_url)
    async with service:
        async with service.transaction() as ctx:
            await ctx.session.execute(effects.insert().values(service="api", job=1))
            ctx.publish(JobDone(n=1))
            await asyncio.sleep(0.2)  # sleep-ok: a window for the relay, which must not see uncommitted rows
            assert (await transport.backlog()).get("audit", 0) == 0
            assert (await outbox_status(database_url)).pending == 0  # not committed: invisible
        received = await receive(downstream, 1)
    assert [JobDone.model_validate_json(e.data).n for e in received] == [1]
    assert await effect_counts(database_url, "api") == {1: 1}
    await downstream.close()
    await transport.close()


async def test_a_transaction_that_raises_leaves_no_rows_and_no_events(
    database_url: str, reliable_broker_url: str
) -> None:
    await create_tables(database_url)
    service = worker(reliable_broker_url, database_url)

    async def write_then_fail() -> None:
        async with service.transaction() as ctx:
            await ctx.session.execute(effects.insert().values(service="api", job=1))
            ctx.publish(JobDone(n=1))
            raise Abort

    async with service:
        with pytest.raises(Abort):
            await write_then_fail()
    assert await effect_counts(database_url, "api") == {}
    status = await outbox_status(database_url)
    assert (status.pending, status.published) == (0, 0)


async def _true(value: bool) -> bool:
    return value
