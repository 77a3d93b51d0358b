"""Faults of the SQLite broker's consumers: a type a group stopped handling must not hold its key
back, and the deliveries of a killed consumer must not wait out their lease."""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path

from tests.conformance.events import PING, PONG, Ping, event_id, ping
from tests.conformance.harness import Broker, BrokerTarget, Consumer, kill, read_line
from tidings.context import Context
from tidings.service import Service
from tidings.transport import connect


def rows(path: Path, sql: str) -> list[tuple[object, ...]]:
    with sqlite3.connect(path) as db:
        found = db.execute(sql).fetchall()
    db.close()
    return found


async def test_a_type_the_group_no_longer_handles_does_not_block_its_key(tmp_path: Path) -> None:
    """Version 1 of `billing` handled pings and pongs, version 2 handles pings only: a keyed pong
    published after the upgrade is dead-lettered as unknown-type, and the ping behind it on the
    same key is handled (before the fix the pong was never claimed and the ping waited forever)."""
    url = f"sqlite:///{tmp_path / 'broker.db'}"
    old = await connect(url)
    await (await old.subscribe("billing", [PING, PONG])).close()  # version 1 ran once, then left
    await old.close()

    service = Service("billing", broker=url)
    handled: list[int] = []

    @service.on(Ping)
    async def handle(event: Ping, ctx: Context) -> None:
        handled.append(event.n)

    async with service:
        dropped = ping(1, key="order-7").with_changes(type=PONG)
        await service.transport.publish([dropped, ping(2, key="order-7")])
        deadline = asyncio.get_running_loop().time() + 10
        while handled != [2]:
            assert asyncio.get_running_loop().time() < deadline, f"handled {handled}, stats {service.stats}"
            await asyncio.sleep(0.02)
        [letter] = await service.transport.dead_letters("billing")
    assert letter.event_id == dropped.id
    assert letter.reason.startswith("unknown-type"), letter.reason


async def test_rolling_deploy_old_members_leave_a_new_type_to_the_new_member(tmp_path: Path) -> None:
    """While a live member subscribes a type, members without it never claim it; once that
    member is gone, the type is nobody's and the old members get it (to dead-letter it)."""
    url = f"sqlite:///{tmp_path / 'broker.db'}"
    broker = Broker(BrokerTarget(url))
    try:
        transport = await broker.connect()
        old = await broker.consumer(transport, "g", [PING], prefetch=16)
        new = await broker.consumer(await broker.connect(), "g", [PING, PONG], prefetch=16)
        pongs = [ping(n, key=f"k{n}").with_changes(type=PONG) for n in range(5)]
        await transport.publish(pongs)
        got = await new.take(5)
        assert sorted(event_id(d) for d in got) == sorted(e.id for e in pongs)
        await old.assert_idle(0.5)
        for delivery in got:
            await delivery.ack()

        late = ping(9, key="k9").with_changes(type=PONG)
        await new.close()  # the only member that handles pongs leaves
        await transport.publish([late])
        (orphan,) = await old.take(1, within=5)
        assert (event_id(orphan), orphan.envelope().type) == (late.id, PONG)
        await orphan.dead_letter("unknown-type: no handler")
    finally:
        await broker.aclose()


async def test_the_deliveries_of_a_killed_consumer_are_claimable_at_once(tmp_path: Path) -> None:
    """A child claims 16 deliveries under a 30 s lease and is SIGKILLed: another consumer gets all
    of them within a few seconds, long before the lease would have run out."""
    path = tmp_path / "broker.db"
    url = f"sqlite:///{path}?lease=30"
    broker = Broker(BrokerTarget(url))
    try:
        transport = await broker.connect()
        child = await broker.spawn("consume", url, "crashy", "16")
        try:
            assert await read_line(child) == ["ready"]
            envelopes = [ping(n) for n in range(16)]
            await transport.publish(envelopes)
            word, _, attempt = await read_line(child)
            assert (word, attempt) == ("received", "1")
            assert rows(path, "SELECT count(*) FROM deliveries WHERE state = 'leased'") == [(16,)]
        finally:
            await kill(child)

        survivor = Consumer(await transport.subscribe("crashy", [PING], prefetch=16))
        loop = asyncio.get_running_loop()
        started = loop.time()
        again = await survivor.take(16, within=5)
        assert loop.time() - started < 5
        assert sorted(event_id(d) for d in again) == sorted(e.id for e in envelopes)
        assert all(d.attempt == 2 for d in again), [d.attempt for d in again]
        for delivery in again:
            await delivery.ack()
        await survivor.close()
    finally:
        await broker.aclose()


async def test_a_version_1_file_gains_the_member_tables_and_keeps_its_messages(tmp_path: Path) -> None:
    path = tmp_path / "broker.db"
    transport = await connect(f"sqlite:///{path}")
    await transport.subscribe("g", [PING])
    await transport.publish([ping(1)])
    await transport.close()
    with sqlite3.connect(path) as db:  # what a file written by schema 1 looks like
        db.execute("DROP TABLE members")
        db.execute("DROP TABLE member_types")
        db.execute("PRAGMA user_version = 1")
    db.close()

    reopened = await connect(f"sqlite:///{path}")
    try:
        consumer = Consumer(await reopened.subscribe("g", [PING]))
        (delivery,) = await consumer.take(1)
        await delivery.ack()
        assert rows(path, "PRAGMA user_version") == [(2,)]
        assert rows(path, "SELECT grp, type FROM member_types") == [("g", PING)]
        await consumer.close()
        assert rows(path, "SELECT count(*) FROM members") == [(0,)], "a closed subscription leaves its group"
    finally:
        await reopened.close()
