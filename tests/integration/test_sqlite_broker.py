"""What the SQLite broker promises beyond the conformance suite: lease renewal, hand-back on
close, garbage collection of settled messages, schema versioning and URL options."""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path

import pytest

from tests.conformance.events import PING, PONG, event_id, ping
from tests.conformance.harness import Consumer
from tidings.errors import ConfigurationError
from tidings.transport import connect
from tidings.transport.sqlite import SqliteConfig, SqliteTransport, members


@pytest.fixture
def path(tmp_path: Path) -> Path:
    return tmp_path / "broker.db"


def rows(path: Path, sql: str) -> list[tuple[object, ...]]:
    with sqlite3.connect(path) as db:
        found = db.execute(sql).fetchall()
    db.close()
    return found


async def _a_slow_delivery_stays_with_its_consumer(path: Path) -> None:
    """A delivery held four leases long by one consumer is not handed to another of its group:
    the holder's heartbeat keeps renewing the lease."""
    holder = await SqliteTransport.open(f"sqlite:///{path}", lease=0.3)
    other = await SqliteTransport.open(f"sqlite:///{path}", lease=0.3)
    try:
        slow = Consumer(await holder.subscribe("g", [PING]))
        waiting = Consumer(await other.subscribe("g", [PING]))
        await holder.publish([ping(1)])
        (delivery,) = await slow.take(1)
        await waiting.assert_idle(1.2)  # four leases long
        await delivery.ack()
        assert delivery.attempt == 1
        assert (await other.backlog())["g"] == 0
        await slow.close()
        await waiting.close()
    finally:
        await holder.close()
        await other.close()


async def test_a_slow_handler_keeps_its_delivery_past_the_lease(path: Path) -> None:
    await _a_slow_delivery_stays_with_its_consumer(path)


async def test_a_heartbeat_that_fails_in_an_unexpected_way_says_so_and_keeps_renewing(
    path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """A bug in one beat (here the look for dead consumers raises what no SQLite call raises)
    used to end the heartbeat task silently: the leases lapsed and a neighbour took the delivery."""

    def broken(*args: object) -> int:
        raise ValueError("a bug in the reaper")

    monkeypatch.setattr(members, "reap", broken)
    await _a_slow_delivery_stays_with_its_consumer(path)
    failures = [r for r in caplog.records if r.name == "tidings.transport.sqlite" and r.levelname == "ERROR"]
    assert failures, "the failed beats were not logged as errors"
    assert "a bug in the reaper" in failures[0].getMessage()


async def test_close_hands_deliveries_back_at_once(path: Path) -> None:
    """With a 60 s lease, only the hand-back on close can make them claimable within the test."""
    first = await connect(f"sqlite:///{path}?lease=60")
    second = await connect(f"sqlite:///{path}?lease=60")
    try:
        leaving = Consumer(await first.subscribe("g", [PING], prefetch=4))
        envelopes = [ping(n) for n in range(3)]
        await first.publish(envelopes)
        (handed_out,) = await leaving.take(1)  # the other two were claimed too, but never handed out
        await leaving.close()

        staying = Consumer(await second.subscribe("g", [PING]))
        again = {event_id(d): d.attempt for d in await staying.take(3, within=2)}
        assert set(again) == {e.id for e in envelopes}
        assert again.pop(event_id(handed_out)) == 2
        assert set(again.values()) == {1}  # claimed but never handed out: not an attempt
        await staying.close()
    finally:
        await first.close()
        await second.close()


async def test_settled_messages_are_deleted_and_unrouted_ones_never_stored(path: Path) -> None:
    transport = await connect(f"sqlite:///{path}")
    try:
        one, two = (
            Consumer(await transport.subscribe("one", [PING])),
            Consumer(await transport.subscribe("two", [PING])),
        )
        await transport.publish([ping(1), ping(2)])
        await transport.publish([ping(3).with_changes(type=PONG)])  # nobody subscribes to pongs
        assert rows(path, "SELECT count(*) FROM messages") == [(2,)]
        for delivery in await one.take(2):
            await delivery.ack()
        assert rows(path, "SELECT count(*) FROM messages") == [(2,)]  # group two still needs them
        first, second = await two.take(2)
        await first.ack()
        await second.dead_letter("kept as a copy")
        assert rows(path, "SELECT count(*) FROM messages") == [(0,)]
        assert await transport.replay("two") == 1
        (replayed,) = await two.take(1)
        assert event_id(replayed) == event_id(second)
        await replayed.ack()
        assert rows(path, "SELECT count(*) FROM messages UNION ALL SELECT count(*) FROM deliveries") == [(0,), (0,)]
        await one.close()
        await two.close()
    finally:
        await transport.close()


async def test_settling_after_close_is_a_no_op_and_the_delivery_returns(path: Path) -> None:
    transport = await connect(f"sqlite:///{path}")
    try:
        consumer = Consumer(await transport.subscribe("g", [PING]))
        await transport.publish([ping(1)])
        (late,) = await consumer.take(1)
        await consumer.close()
        await late.ack()  # its lease was handed back: this ack must not delete the row
        again = Consumer(await transport.subscribe("g", [PING]))
        (delivery,) = await again.take(1)
        assert delivery.attempt == 2
        await delivery.ack()
        await again.close()
    finally:
        await transport.close()


async def test_a_file_from_a_newer_version_is_refused(path: Path) -> None:
    await (await connect(f"sqlite:///{path}")).close()
    with sqlite3.connect(path) as db:
        db.execute("PRAGMA user_version = 99")
    db.close()
    with pytest.raises(ConfigurationError, match="schema 99"):
        await connect(f"sqlite:///{path}")


async def test_reopening_keeps_everything(path: Path) -> None:
    transport = await connect(f"sqlite:///{path}")
    await transport.subscribe("g", [PING])
    await transport.publish([ping(1)])
    await transport.close()
    await transport.close()  # idempotent
    reopened = await connect(f"sqlite:///{path}")
    try:
        assert await reopened.backlog() == {"g": 1}
        assert rows(path, "PRAGMA journal_mode") == [("wal",)]
    finally:
        await reopened.close()


@pytest.mark.parametrize(
    ("url", "path", "lease"),
    [
        ("sqlite:///data/broker.db", "data/broker.db", 30.0),
        ("sqlite:////var/tmp/broker.db?lease=2.5", "/var/tmp/broker.db", 2.5),
    ],
)
def test_url(url: str, path: str, lease: float) -> None:
    config = SqliteConfig.from_url(url)
    assert (config.path, config.lease) == (path, lease)


@pytest.mark.parametrize(
    "url",
    ["sqlite://host/broker.db", "sqlite:///", "sqlite:///b.db?lease=0", "sqlite:///b.db?lease=x", "sqlite:///b.db?x=1"],
)
def test_bad_url(url: str) -> None:
    with pytest.raises(ConfigurationError):
        SqliteConfig.from_url(url)


async def test_subscribe_checks_its_arguments(path: Path) -> None:
    transport = await connect(f"sqlite:///{path}")
    try:
        for group, types, prefetch in [("", [PING], 1), ("g", PING, 1), ("g", [], 1), ("g", [PING], 0)]:
            with pytest.raises(ConfigurationError):
                await transport.subscribe(group, types, prefetch=prefetch)
    finally:
        await transport.close()


async def test_concurrent_publishers_and_consumers_in_one_process(path: Path) -> None:
    transports = [await connect(f"sqlite:///{path}") for _ in range(3)]
    try:
        consumers = [Consumer(await t.subscribe("g", [PING], prefetch=16)) for t in transports]
        batches = [[ping(n * 100 + i) for i in range(50)] for n in range(6)]
        await asyncio.gather(*(transports[n % 3].publish(batch) for n, batch in enumerate(batches)))
        seen: list[str] = []

        async def drain(consumer: Consumer) -> None:
            while len(seen) < 300:
                delivery = await consumer.poll(0.2)
                if delivery is not None:
                    seen.append(event_id(delivery))
                    await delivery.ack()

        async with asyncio.timeout(20):
            await asyncio.gather(*(drain(c) for c in consumers))
        assert sorted(seen) == sorted(e.id for batch in batches for e in batch)
        for consumer in consumers:
            await consumer.close()
    finally:
        for transport in transports:
            await transport.close()
