"""The outbox relay on a real database: order, deletion, outages, replicas, wake-ups, leases."""

from __future__ import annotations

import asyncio
import itertools
import random
import sqlite3
import time
from collections import Counter
from collections.abc import AsyncIterator, Sequence
from pathlib import Path

import pytest
from sqlalchemy import Column, Integer, MetaData, String, Table, select, text, update

from tests.integration.store.conftest import postgres_database
from tests.integration.store.helpers import eventually, receive
from tests.integration.store.shop import JobDone
from tidings.envelope import Envelope
from tidings.errors import ConfigurationError, PublishError
from tidings.retry import RetryPolicy
from tidings.store import Store, lease, outbox, outbox_status
from tidings.store.relay import Relay, RelayConfig
from tidings.store.tables import relay as relay_table
from tidings.transport.base import Transport, connect

FAST = RelayConfig(batch_size=10, poll_interval=0.05, backoff=RetryPolicy(base=0.02, max_delay=0.2))
SOURCE = "worker"


def _done(numbers: Sequence[int], key: str = "k") -> list[Envelope]:
    return [Envelope.wrap(JobDone(n=n, key=key), source=SOURCE) for n in numbers]


async def _add(store: Store, envelopes: Sequence[Envelope]) -> None:
    async with store.session() as session, session.begin():
        await outbox.add(session, envelopes)


def _numbers(envelopes: Sequence[Envelope]) -> list[int]:
    return [JobDone.model_validate_json(envelope.data).n for envelope in envelopes]


@pytest.fixture
async def broker(reliable_broker_url: str) -> AsyncIterator[Transport]:
    transport = await connect(reliable_broker_url)
    try:
        yield transport
    finally:
        await transport.close()


async def test_rows_are_published_in_order_then_deleted_and_counted(store: Store, broker: Transport) -> None:
    audit = await broker.subscribe("audit", [JobDone.event_type])
    envelopes = _done(range(25))
    for start in range(0, 25, 5):
        await _add(store, envelopes[start : start + 5])
    relay = Relay(store, broker, source=SOURCE, config=FAST)
    await relay.start()
    try:
        received = await receive(audit, 25, quiet=0.2)
    finally:
        await relay.stop()
        await audit.close()
    assert received == envelopes  # exactly the envelopes, in commit order, once
    status = await outbox_status(store.engine.url)
    assert (status.pending, status.published) == (0, 25)
    assert relay.stats["batches"] >= 3  # batch_size 10


class Outage(Transport):
    """Wraps a real transport; `publish` fails while `down` is set. This fakes the outage only."""

    def __init__(self, inner: Transport) -> None:
        self.inner = inner
        self.down = True
        self.failures = 0
        self.attempts: list[float] = []  # time.monotonic() of each refused publish

    async def publish(self, envelopes: Sequence[Envelope]) -> None:
        if self.down:
            self.failures += 1
            self.attempts.append(time.monotonic())
            raise PublishError("broker unreachable (simulated outage)")
        await self.inner.publish(envelopes)

    def __getattr__(self, name: str) -> object:
        return getattr(self.inner, name)

    # the remaining abstract methods are not used by the relay
    open = subscribe = dead_letters = replay = purge = backlog = close = None  # type: ignore[assignment]


BACKING_OFF = RelayConfig(
    batch_size=10, poll_interval=0.01, backoff=RetryPolicy(base=0.1, factor=2.0, max_delay=0.4, jitter=0.0)
)
EARLY, LATE = 0.02, 0.5
"""Tolerances on a backoff delay: clock granularity before it, a loaded machine after it."""


async def test_a_failing_broker_keeps_the_rows_and_the_relay_backs_off_then_recovers(
    store: Store, broker: Transport
) -> None:
    """Each failed cycle waits `backoff.delay(n)` for the n-th failure in a row (not `poll_interval`,
    which is ten times shorter here), the rows stay, and they flow once the broker is back."""
    audit = await broker.subscribe("audit", [JobDone.event_type])
    outage = Outage(broker)
    relay = Relay(store, outage, source=SOURCE, config=BACKING_OFF)
    await relay.start()
    try:
        envelopes = _done(range(15))
        await _add(store, envelopes)
        relay.wake()
        await eventually(lambda: _true(outage.failures >= 5), what="five failed attempts")
        assert (await outbox_status(store.engine.url)).pending == 15
        outage.down = False
        started = time.monotonic()
        received = await receive(audit, 15, quiet=0.2)
        assert time.monotonic() - started < BACKING_OFF.backoff.max_delay + 5
    finally:
        await relay.stop()
        await audit.close()
    assert received == envelopes
    assert relay.stats["failures"] == outage.failures
    gaps = [later - earlier for earlier, later in itertools.pairwise(outage.attempts)][:4]
    wanted = [BACKING_OFF.backoff.delay(n) for n in range(1, 5)]
    assert wanted == [0.1, 0.2, 0.4, 0.4]
    for n, (gap, delay) in enumerate(zip(gaps, wanted, strict=True), start=1):
        assert delay - EARLY <= gap <= delay + LATE, f"retried {gap:.3f}s after failure {n}, the backoff is {delay}s"


async def test_a_locked_broker_file_keeps_the_rows_until_it_is_released(store: Store, tmp_path: Path) -> None:
    path = tmp_path / "broker.db"
    broker = await connect(f"sqlite:///{path}?busy_timeout=0.1")
    audit = await broker.subscribe("audit", [JobDone.event_type])
    await audit.close()
    relay = Relay(store, broker, source=SOURCE, config=FAST)
    await relay.start()
    locker = sqlite3.connect(path, isolation_level=None)
    try:
        locker.execute("BEGIN EXCLUSIVE")  # the real lock: no other connection can write the broker file
        envelopes = _done(range(5))
        await _add(store, envelopes)
        relay.wake()
        await eventually(lambda: _true(relay.stats["failures"] >= 2), what="publishes failing on the lock")
        assert (await outbox_status(store.engine.url)).pending == 5
        locker.execute("COMMIT")
        await eventually(lambda: _pending_is(store, 0), what="the outbox to drain")
    finally:
        locker.close()
        await relay.stop()
    audit = await broker.subscribe("audit", [JobDone.event_type])
    try:
        assert await receive(audit, 5, quiet=0.2) == envelopes
    finally:
        await audit.close()
        await broker.close()


async def test_two_relays_of_one_service_publish_each_row_once(database_url: str, broker: Transport) -> None:
    audit = await broker.subscribe("audit", [JobDone.event_type])
    stores = [await Store.open(database_url) for _ in range(2)]
    relays = [Relay(store, broker, source=SOURCE, config=FAST) for store in stores]
    envelopes = _done(range(200))
    try:
        for relay in relays:
            await relay.start()
        for start in range(0, 200, 4):  # 50 commits, alternating between the two "processes"
            store = stores[start // 4 % 2]
            await _add(store, envelopes[start : start + 4])
            for relay in relays:
                relay.wake()
        received = await receive(audit, 200, quiet=0.5)
    finally:
        for relay in relays:
            await relay.stop()
        for store in stores:
            await store.close()
        await audit.close()
    counts = Counter(envelope.id for envelope in received)
    assert len(received) == 200
    assert set(counts.values()) == {1}
    assert received == envelopes  # one key: commit order
    assert sum(relay.stats["published"] for relay in relays) == 200


async def test_wake_starts_a_cycle_at_once(store: Store, broker: Transport) -> None:
    audit = await broker.subscribe("audit", [JobDone.event_type])
    relay = Relay(store, broker, source=SOURCE, config=RelayConfig(poll_interval=30))
    await _add(store, _done([0]))
    await relay.start()
    try:
        await receive(audit, 1, within=5)  # the first cycle is over: the relay waits for 30 s
        await _add(store, _done([1]))
        started = time.monotonic()
        relay.wake()
        await receive(audit, 1, within=2)
        assert time.monotonic() - started < 1
    finally:
        await relay.stop()
        await audit.close()


@pytest.mark.postgres
async def test_a_commit_in_another_process_wakes_the_relay_through_notify(broker: Transport) -> None:
    async with postgres_database() as url:
        relaying, writing = await Store.open(url), await Store.open(url)
        audit = await broker.subscribe("audit", [JobDone.event_type])
        relay = Relay(relaying, broker, source=SOURCE, config=RelayConfig(poll_interval=30))
        await _add(writing, _done([0]))
        await relay.start()
        try:
            await receive(audit, 1, within=5)  # the first cycle is over: the relay waits for 30 s
            started = time.monotonic()
            await _add(writing, _done([1]))  # no wake(): only NOTIFY can tell the relay
            await receive(audit, 1, within=5)
            assert time.monotonic() - started < 1
        finally:
            await relay.stop()
            await audit.close()
            await relaying.close()
            await writing.close()


@pytest.mark.postgres
async def test_the_relay_listens_again_after_its_connection_was_killed(
    broker: Transport, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("tidings.store.notify.RECONNECT_EVERY", 0.05)
    async with postgres_database() as url:
        relaying, writing = await Store.open(url), await Store.open(url)
        audit = await broker.subscribe("audit", [JobDone.event_type])
        relay = Relay(relaying, broker, source=SOURCE, config=RelayConfig(poll_interval=30))
        await relay.start()
        try:
            async with writing.engine.begin() as connection:  # PostgreSQL drops the listening connection
                killed = await connection.execute(
                    text(
                        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
                        " WHERE datname = current_database() AND query LIKE 'LISTEN%'"
                    )
                )
                assert killed.scalars().all() == [True]
            await asyncio.sleep(0.2)  # sleep-ok: the listener's reconnect timer (0.05 s) fires meanwhile
            relay.wake()  # one cycle, then the relay waits again and listens anew first
            await asyncio.sleep(0.3)  # sleep-ok: no public signal says "listening again"; shorter only weakens
            started = time.monotonic()
            await _add(writing, _done([1]))  # only NOTIFY can wake the relay before 30 s
            await receive(audit, 1, within=5)
            assert time.monotonic() - started < 1
        finally:
            await relay.stop()
            await audit.close()
            await relaying.close()
            await writing.close()


async def test_stop_finishes_the_batch_in_flight(store: Store, broker: Transport) -> None:
    class Slow(Outage):
        async def publish(self, envelopes: Sequence[Envelope]) -> None:
            self.failures += 1  # counts calls here
            await asyncio.sleep(0.3)  # sleep-ok: a slow publish is the scenario
            await self.inner.publish(envelopes)

    audit = await broker.subscribe("audit", [JobDone.event_type])
    slow = Slow(broker)
    relay = Relay(store, slow, source=SOURCE, config=FAST)
    await relay.start()
    await _add(store, _done(range(3)))
    relay.wake()
    await eventually(lambda: _true(slow.failures == 1), what="the publish to start")
    await relay.stop()
    assert (await outbox_status(store.engine.url)).pending == 0
    assert len(await receive(audit, 3)) == 3
    await audit.close()


async def test_stop_cancels_a_batch_that_outlasts_the_grace_and_keeps_its_rows(store: Store, broker: Transport) -> None:
    """`stop(grace)` returns once `grace` has passed even if the publish in flight hangs; the batch
    is cancelled, not half-settled: every row stays, and the next relay publishes each once."""

    class Hanging(Outage):
        async def publish(self, envelopes: Sequence[Envelope]) -> None:
            self.failures += 1  # counts calls here
            await asyncio.Event().wait()  # a publish that never returns: stop's grace must bound it

    audit = await broker.subscribe("audit", [JobDone.event_type])
    hanging = Hanging(broker)
    config = RelayConfig(batch_size=10, poll_interval=0.05, publish_timeout=20, lease=30)
    relay = Relay(store, hanging, source=SOURCE, config=config)
    envelopes = _done(range(3))
    await _add(store, envelopes)
    await relay.start()
    await eventually(lambda: _true(hanging.failures == 1), what="the publish to start")
    grace = 0.3
    started = time.monotonic()
    await relay.stop(grace=grace)
    assert grace <= time.monotonic() - started < grace + 2
    assert (await outbox_status(store.engine.url)).pending == 3
    assert relay.stats["published"] == 0

    after = Relay(store, broker, source=SOURCE, config=FAST)
    await after.start()
    try:
        assert await receive(audit, 3, quiet=0.2) == envelopes
    finally:
        await after.stop()
        await audit.close()


async def test_rows_of_one_key_are_published_in_commit_order_under_concurrency(store: Store, broker: Transport) -> None:
    """Each transaction adds its event, then takes a ticket from a counter row: ticket order is
    commit order. Published order must follow the tickets although the ids were drawn earlier."""
    extra = MetaData()
    counter = Table("counter", extra, Column("id", Integer, primary_key=True), Column("n", Integer, nullable=False))
    tickets = Table("tickets", extra, Column("event_id", String(64), primary_key=True), Column("n", Integer))
    await store.run_sync(extra.create_all)
    async with store.session() as session, session.begin():
        await session.execute(counter.insert().values(id=1, n=0))

    async def unit_of_work(number: int) -> None:
        [envelope] = _done([number], key="order-1")
        async with store.session() as session, session.begin():
            await outbox.add(session, [envelope])
            await asyncio.sleep(random.random() / 50)
            result = await session.execute(
                update(counter).where(counter.c.id == 1).values(n=counter.c.n + 1).returning(counter.c.n)
            )
            await session.execute(tickets.insert().values(event_id=envelope.id, n=result.scalar_one()))

    audit = await broker.subscribe("audit", [JobDone.event_type])
    relay = Relay(store, broker, source=SOURCE, config=FAST)
    await relay.start()
    try:
        await asyncio.gather(*(unit_of_work(number) for number in range(40)))
        received = await receive(audit, 40)
    finally:
        await relay.stop()
        await audit.close()
    async with store.session() as session, session.begin():
        ticket = {row.event_id: row.n for row in await session.execute(select(tickets.c.event_id, tickets.c.n))}
    assert [ticket[envelope.id] for envelope in received] == list(range(1, 41))


async def test_sqlite_lease_of_a_dead_relay_is_taken_over_at_once_a_live_one_is_respected(
    tmp_path: Path, broker: Transport
) -> None:
    store = await Store.open(f"sqlite:///{tmp_path / 'service.db'}")
    first = Relay(store, broker, source=SOURCE, config=FAST)
    second = Relay(store, broker, source=SOURCE, config=FAST)
    try:
        await _add(store, _done([1]))
        assert await first.run_once() == 1
        await _add(store, _done([2]))
        assert await second.run_once() == 0  # first holds the lease
        async with store.session() as session, session.begin():  # first "dies": its pid is gone
            dead = first.owner.split(":")[0] + ":999999999:gone"
            await session.execute(update(relay_table).values(owner=dead))
        assert await second.run_once() == 1
    finally:
        await store.close()


async def _pending_is(store: Store, count: int) -> bool:
    return (await outbox_status(store.engine.url)).pending == count


async def _true(value: bool) -> bool:
    return value


async def test_a_relay_that_is_not_the_leader_publishes_nothing_and_counts_it(store: Store, broker: Transport) -> None:
    """Of two relays of one source only the leader publishes: on PostgreSQL the one holding the
    source's row lock for its cycle, on SQLite the one holding the lease."""
    leader = Relay(store, broker, source=SOURCE, config=FAST)
    follower = Relay(store, broker, source=SOURCE, config=FAST)
    await leader.open()
    await follower.open()
    await _add(store, _done(range(3)))
    if store.dialect.concurrent_writers:
        async with store.engine.connect() as connection, store.dialect.relay_transaction(connection):  # a cycle
            view = await store.dialect.relay_read(connection, SOURCE, limit=10, skip=())
            assert view is not None
            assert len(view.rows) == 3
            assert [await follower.run_once(), await follower.run_once()] == [0, 0]
        waiting = 3
    else:
        assert await leader.run_once() == 3  # takes the lease
        await _add(store, _done(range(3, 5)))
        assert [await follower.run_once(), await follower.run_once()] == [0, 0]
        waiting = 2
    assert (follower.stats["not_leader"], follower.stats["published"]) == (2, 0)
    await leader.close()  # the lock ended with its transaction; the lease is released here
    assert await follower.run_once() == waiting
    await follower.close()


async def test_sqlite_relay_publishes_while_the_service_holds_its_write_transaction(
    tmp_path: Path, broker: Transport
) -> None:
    """A SQLite service has one connection, and each of its transactions holds the write lock: a
    relay reading through it waited for every consumer batch and request first. It reads on a
    read-only connection of its own, so a commit is published while a writer holds the lock; the
    deletion then waits for the lock and commits once it is free."""
    store = await Store.open(f"sqlite:///{tmp_path / 'service.db'}")
    audit = await broker.subscribe("audit", [JobDone.event_type])
    relay = Relay(store, broker, source=SOURCE, config=RelayConfig(poll_interval=30))
    try:
        first, envelopes = _done([0]), _done([1, 2])
        await _add(store, first)
        assert await relay.run_once() == 1  # takes the lease
        await _add(store, envelopes)
        await relay.start()
        async with store.session() as writer, writer.begin():
            await writer.connection()  # BEGIN IMMEDIATE: the service's one connection, the write lock
            relay.wake()
            assert await receive(audit, 3, within=5) == first + envelopes
            assert relay.stats["published"] == 3
        await eventually(lambda: _pending_is(store, 0), what="the deletion once the lock is free")
    finally:
        await relay.stop()
        await audit.close()
        await store.close()


async def test_rows_committed_while_a_deletion_runs_are_published_at_once(store: Store, broker: Transport) -> None:
    """On SQLite the deletion of a batch runs while the relay reads the next one, skipping the ids
    being deleted; once they are deleted a new row may take one of them again (no AUTOINCREMENT).
    Every row must still go out on its wake-up, not a minute later at the next poll."""
    audit = await broker.subscribe("audit", [JobDone.event_type])
    relay = Relay(store, broker, source=SOURCE, config=RelayConfig(poll_interval=60))
    await relay.start()
    try:
        for number in range(30):
            envelope = _done([number])
            await _add(store, envelope)
            relay.wake()
            assert await receive(audit, 1, within=5) == envelope
    finally:
        await relay.stop()
        await audit.close()
    assert (await outbox_status(store.engine.url)).pending == 0


@pytest.mark.postgres
async def test_the_relay_read_refuses_to_run_outside_its_transaction() -> None:
    """On PostgreSQL the relay's statements run on the driver, bypassing SQLAlchemy's transaction,
    which would begin only at its own first statement: outside `relay_transaction` the row lock
    would end with the statement, and a second relay could publish the same rows."""
    async with postgres_database() as url:
        store = await Store.open(url)
        try:
            async with store.session() as session, session.begin():
                await lease.ensure(session, SOURCE)
            async with store.engine.connect() as connection, connection.begin():
                with pytest.raises(ConfigurationError, match="relay_transaction"):
                    await store.dialect.relay_read(connection, SOURCE, limit=10, skip=())
            async with store.engine.connect() as connection, store.dialect.relay_transaction(connection):
                assert await store.dialect.relay_read(connection, SOURCE, limit=10, skip=()) is not None
        finally:
            await store.close()


@pytest.mark.postgres
async def test_the_relay_commit_on_postgresql_does_not_wait_for_the_wal_flush() -> None:
    """The settle deletes rows already published: a commit lost to a server crash publishes them
    again, which at-least-once allows, so it need not pay the flush (a disk's fsync per cycle)."""
    async with postgres_database() as url:
        store = await Store.open(url)
        try:
            async with store.session() as session, session.begin():
                await lease.ensure(session, SOURCE)
            async with store.engine.connect() as connection, store.dialect.relay_transaction(connection):
                driver = (await connection.get_raw_connection()).driver_connection
                await driver.execute("SET LOCAL synchronous_commit TO on")  # whatever the server's default
                await store.dialect.relay_settle(connection, SOURCE, [], now=1.0, owner="me", lease_until=0.0)
                assert await driver.fetchval("SHOW synchronous_commit") == "off"
            async with store.engine.connect() as connection, store.dialect.relay_transaction(connection):
                view = await store.dialect.relay_read(connection, SOURCE, limit=1, skip=())
                assert view is not None
                assert view.holder == "me"
        finally:
            await store.close()


@pytest.mark.postgres
async def test_a_relay_whose_connection_was_killed_mid_cycle_goes_on_with_a_new_one(broker: Transport) -> None:
    """The relay's statements bypass SQLAlchemy, and with it the pool's handling of a lost
    connection: without invalidating it, the dead connection went back to the pool, was the next
    cycle's again, and every cycle after failed ("connection is closed"). The relay must publish
    on a fresh one."""

    class Held(Outage):
        def __init__(self, inner: Transport) -> None:
            super().__init__(inner)
            self.down, self.go = False, asyncio.Event()

        async def publish(self, envelopes: Sequence[Envelope]) -> None:
            self.failures += 1  # counts calls here
            await self.go.wait()
            await self.inner.publish(envelopes)

    async with postgres_database() as url:
        store = await Store.open(url, pool_size=1)  # one pooled connection: the relay's
        audit = await broker.subscribe("audit", [JobDone.event_type])
        held = Held(broker)
        relay = Relay(store, held, source=SOURCE, config=FAST)
        envelopes = _done(range(3))
        await _add(store, envelopes)
        await relay.start()
        try:
            await eventually(lambda: _true(held.failures == 1), what="the publish to start")
            admin = await Store.open(url)
            try:
                async with admin.engine.begin() as connection:  # the cycle's connection, idle in its transaction
                    killed = await connection.execute(
                        text(
                            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = current_database()"
                            " AND state = 'idle in transaction' AND pid <> pg_backend_pid()"
                        )
                    )
                    assert killed.scalars().all() == [True]
            finally:
                await admin.close()
            held.go.set()  # the settle now fails: the rows stay and are published again
            received = await receive(audit, 6, within=10)
            await eventually(lambda: _pending_is(store, 0), what="the outbox to drain on a new connection")
        finally:
            await relay.stop()
            await audit.close()
            await store.close()
    assert received == envelopes + envelopes  # at-least-once: the first copies, then the batch again
    assert relay.stats["failures"] >= 1
