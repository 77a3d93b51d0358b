"""Upgrading to absolute sources: the store keeps keying a service's rows by its name, so rows
written before the upgrade (whose envelopes carry the bare name) still relay, unchanged, next to
new ones carrying `urn:tidings:<service>`; and an event keeps the source it was published with,
so a consumer that claimed it under the bare name before the upgrade does not handle it again."""

from __future__ import annotations

import asyncio

from sqlalchemy import select

from tests.integration.store.helpers import eventually, receive
from tests.integration.store.shop import JobDone
from tidings.context import Context
from tidings.envelope import Envelope
from tidings.service import Service
from tidings.store import Store, inbox, outbox
from tidings.store.tables import outbox as outbox_table
from tidings.transport.base import connect


async def test_a_row_written_with_the_bare_name_relays_after_the_upgrade(database_url: str, broker_url: str) -> None:
    old = Envelope.wrap(JobDone(n=1), source="worker")  # what `Context.publish` wrote before
    store = await Store.open(database_url)
    try:
        async with store.session() as session, session.begin():
            await outbox.add(session, [old])  # no owner: keyed by the envelope's source, as then
    finally:
        await store.close()
    async with await connect(broker_url) as observer:
        audit = await observer.subscribe("audit", [JobDone.event_type])
        service = Service("worker", broker=broker_url, database=database_url)
        service.publishes(JobDone)
        async with service:
            (new,) = await service.publish(JobDone(n=2))
            received = await receive(audit, 2)
            await eventually(lambda: _empty(service.store), what="the outbox to empty")
        await audit.close()
    assert [(envelope.id, envelope.source) for envelope in received] == [
        (old.id, "worker"),
        (new.id, "urn:tidings:worker"),
    ]


async def _empty(store: Store) -> bool:
    async with store.session() as session:
        return (await session.execute(select(outbox_table.c.id))).first() is None


async def test_an_event_claimed_under_the_bare_name_is_not_handled_again(database_url: str, broker_url: str) -> None:
    before = Envelope.wrap(JobDone(n=1), source="worker")  # handled by `audit` before the upgrade
    after = Envelope.wrap(JobDone(n=2), source="urn:tidings:worker")
    audit = Service("audit", broker=broker_url, database=database_url)
    handled: list[int] = []

    @audit.on(JobDone)
    async def record(event: JobDone, context: Context) -> None:
        handled.append(event.n)

    async with audit:
        async with audit.store.session() as session, session.begin():
            assert await inbox.claim(session, "audit", "worker", before.id)
        async with await connect(broker_url) as publisher:
            await publisher.publish([before])  # redelivered, or published again, after the upgrade
            await publisher.publish([after])
        await eventually(lambda: asyncio.sleep(0, audit.stats["handled"] + audit.stats["duplicates"] == 2))
    assert handled == [2]
    assert audit.stats["duplicates"] == 1
