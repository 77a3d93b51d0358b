"""Crash windows of the reliable path, each with a real service process killed by SIGKILL at that
point (see `crash_child.py`), on the SQLite broker, RabbitMQ and Kafka; the end state is checked.

(a) after the handler's commit, before the ack: the event comes back, the handler does not run
    again, the effect and the follow-up event happen once.
(b) after the relay published, before it deleted the rows: the events are published again and
    the downstream inbox absorbs the duplicates.
(c) in a group commit, once every member of a batch did its work and before the commit: nothing of
    the batch is applied, every delivery comes back, and each is handled exactly once.
(d) broker unreachable while events are committed, and the process killed meanwhile: the rows
    stay, the restarted relay publishes every event (`Outage` says how each broker is made
    unreachable).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import sqlite3
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import ClassVar

import pytest

from tests.conformance.harness import until
from tests.integration import brokers
from tests.integration.kafka_support import fresh_prefix, kafka_url
from tests.integration.rabbitmq_support import AMQP_PORT, HOST, amqp_url, fresh_vhost
from tests.integration.store.helpers import eventually, receive
from tests.integration.store.shop import Job, JobDone, auditor, create_tables, effect_counts
from tests.integration.tcp_proxy import TcpProxy
from tidings.envelope import Envelope
from tidings.store import Store, inbox, outbox_status
from tidings.transport.base import Transport, connect

ROOT = Path(__file__).resolve().parents[3]


class Child:
    """One run of `crash_child.py`."""

    started: ClassVar[list[Child]] = []
    """Every child of the running test; `_no_orphans` kills those still alive after it."""

    def __init__(self, process: asyncio.subprocess.Process) -> None:
        self.process = process
        Child.started.append(self)

    @classmethod
    async def start(cls, role: str, broker: str, database: str, **extra: str) -> Child:
        env = {
            **os.environ,
            "TIDINGS_TEST_ROLE": role,
            "TIDINGS_TEST_BROKER": broker,
            "TIDINGS_TEST_DATABASE": database,
        }
        env.update({f"TIDINGS_TEST_{name.upper()}": value for name, value in extra.items()})
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "tests.integration.store.crash_child",
            cwd=ROOT,
            env=env,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
        )
        return cls(process)

    async def expect(self, line: str) -> None:
        assert self.process.stdout is not None
        async with asyncio.timeout(20):
            got = (await self.process.stdout.readline()).decode().strip()
        assert got == line, f"child said {got!r}, expected {line!r}"

    async def go(self) -> None:
        assert self.process.stdin is not None
        self.process.stdin.write(b"go\n")
        await self.process.stdin.drain()

    async def killed(self) -> None:
        """Wait for the child to die by SIGKILL (its crash point or ours)."""
        async with asyncio.timeout(20):
            assert await self.process.wait() == -signal.SIGKILL
        if self.process.stdin is not None:
            self.process.stdin.close()

    async def kill(self) -> None:
        self.process.kill()
        await self.killed()

    async def stop(self) -> dict[str, int]:
        """SIGTERM, wait for a clean exit, return the service's stats."""
        self.process.terminate()
        async with asyncio.timeout(20):
            out, _ = await self.process.communicate()
        assert self.process.returncode == 0
        stats: dict[str, int] = json.loads(out.decode().strip().splitlines()[-1])
        return stats


@pytest.fixture(autouse=True)
async def _no_orphans() -> AsyncIterator[None]:
    """A test that fails half-way leaves no child process behind (SIGKILL, then reap)."""
    Child.started.clear()
    yield
    for child in Child.started:
        if child.process.returncode is None:
            child.process.kill()
        with contextlib.suppress(Exception):
            await child.process.communicate()
    Child.started.clear()


@pytest.fixture(params=brokers.MULTI_PROCESS)
async def crash_broker(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[str]:
    """A fresh namespace on each broker (the SQLite file, a vhost, a topic prefix) with short leases
    and session timeouts, so a killed consumer's deliveries come back within seconds."""
    async with request.param.target(tmp_path) as target:
        yield target.url


def _broker(tmp_path: Path, **options: str) -> str:
    query = "&".join(f"{name}={value}" for name, value in {"lease": "1", **options}.items())
    return f"sqlite:///{tmp_path / 'broker.db'}?{query}"


async def _declare(transport: Transport, group: str, event_type: str) -> None:
    """Declare a group durably before anything is published to it."""
    await (await transport.subscribe(group, [event_type])).close()


async def _backlog(transport: Transport, group: str) -> int:
    return (await transport.backlog()).get(group, 0)


async def test_a_crash_after_commit_before_ack_redelivers_without_running_the_handler_again(
    database_url: str, crash_broker: str, tmp_path: Path
) -> None:
    broker = crash_broker
    await create_tables(database_url)
    transport = await connect(broker)
    await _declare(transport, "worker", Job.event_type)
    audit = await transport.subscribe("audit", [JobDone.event_type])
    job = Envelope.wrap(Job(n=1), source="test")
    await transport.publish([job])

    crashing = await Child.start("worker", broker, database_url, crash="after-commit")
    await crashing.expect("ready")
    await crashing.killed()
    assert await effect_counts(database_url, "worker") == {1: 1}  # committed ...
    assert await _claimed(database_url, "worker", job.id)
    # ... but not acked (RabbitMQ's management API counts the requeued message some seconds later)
    await eventually(lambda: _backlog_is(transport, "worker", 1), within=20, what="the unacked job back in the queue")

    restarted = await Child.start("worker", broker, database_url)
    await restarted.expect("ready")
    await eventually(lambda: _backlog_is(transport, "worker", 0), what="the redelivery to be acked", within=40)
    received = await receive(audit, 1, quiet=0.5)
    stats = await restarted.stop()
    assert stats.get("handled", 0) == 0
    assert stats["duplicates"] >= 1  # absorbed by the inbox (more than once if a lease ran out under load)
    assert await effect_counts(database_url, "worker") == {1: 1}
    # The follow-up, once: one envelope, caused by the job. The crashed process's relay may have
    # published it in the instant before the kill without deleting its row; the restarted relay then
    # publishes the same envelope (same id) again, as at-least-once allows and a downstream inbox
    # absorbs. A second run of the handler would make a second envelope with an id of its own.
    assert {envelope.id for envelope in received} == {received[0].id}
    assert {envelope.causationid for envelope in received} == {job.id}
    await audit.close()
    await transport.close()


async def test_a_crash_after_publish_before_mark_sent_republishes_and_the_inbox_absorbs_it(
    database_url: str, crash_broker: str, tmp_path: Path
) -> None:
    broker = crash_broker
    await create_tables(database_url)
    audit_database = f"sqlite:///{tmp_path / 'audit.db'}"
    await create_tables(audit_database)
    transport = await connect(broker)
    await _declare(transport, "worker", Job.event_type)
    await _declare(transport, "audit", JobDone.event_type)
    await transport.publish([Envelope.wrap(Job(n=n), source="test") for n in range(5)])

    crashing = await Child.start("worker", broker, database_url, crash="after-publish")
    await crashing.expect("ready")
    await crashing.killed()
    # The crashed batch was published but not deleted. Rows the worker committed after that
    # batch was taken are pending too, so pending and the batch size need not be equal.
    assert (await outbox_status(database_url)).pending >= 1
    # the broker's count may lag its confirm (RabbitMQ's is sampled): wait for it, with a deadline
    await until(lambda: _backlog(transport, "audit"), lambda published: published >= 1, within=20)

    restarted = await Child.start("worker", broker, database_url)
    await restarted.expect("ready")
    downstream = auditor(broker, audit_database)
    async with downstream:
        await eventually(lambda: _audited(audit_database, 5), what="every job to be audited", within=40)
        await eventually(lambda: _backlog_is(transport, "audit", 0), what="the duplicates to be acked", within=40)
    await restarted.stop()
    assert downstream.stats["duplicates"] >= 1  # the crashed batch, published a second time
    assert await effect_counts(audit_database, "audit") == dict.fromkeys(range(5), 1)
    assert await effect_counts(database_url, "worker") == dict.fromkeys(range(5), 1)
    assert (await outbox_status(database_url)).pending == 0
    await transport.close()


async def test_a_crash_in_a_batch_before_its_commit_loses_nothing_and_applies_nothing_twice(
    database_url: str, crash_broker: str
) -> None:
    broker = crash_broker
    await create_tables(database_url)
    transport = await connect(broker)
    await _declare(transport, "worker", Job.event_type)
    audit = await transport.subscribe("audit", [JobDone.event_type])
    jobs = [Envelope.wrap(Job(n=n, key=f"k{n}"), source="test") for n in range(12)]
    await transport.publish(jobs)  # waiting before the worker starts: handed out together, batched

    crashing = await Child.start("worker", broker, database_url, crash="mid-batch")
    await crashing.expect("ready")
    await crashing.killed()
    assert await effect_counts(database_url, "worker") == {}  # the batch did its work, then died
    assert not await _claimed(database_url, "worker", jobs[0].id)
    await eventually(lambda: _backlog_is(transport, "worker", 12), within=20, what="the whole batch back in the queue")

    restarted = await Child.start("worker", broker, database_url)
    await restarted.expect("ready")
    await eventually(lambda: _backlog_is(transport, "worker", 0), what="every job to be acked")
    received = await receive(audit, 12, quiet=0.5)
    stats = await restarted.stop()
    # Every job handled by the restarted worker: none of the crashed batch had been applied. (Its
    # redeliveries may come back once more if a loaded machine lets the SQLite broker's 1 s lease
    # run out before the ack; the inbox absorbs them, which `duplicates` counts, not `handled`.)
    assert stats["handled"] == 12
    assert await effect_counts(database_url, "worker") == dict.fromkeys(range(12), 1)
    assert sorted(envelope.causationid or "" for envelope in received) == sorted(job.id for job in jobs)
    await audit.close()
    await transport.close()


class Outage:
    """A broker the crashing publisher loses: `down()` cuts it off, `up()` brings it back.

    SQLite: the test holds the broker file's exclusive lock (the real lock). RabbitMQ: the child
    reaches the broker through a TCP proxy that the test makes refuse and cut connections. Kafka: a
    proxy cannot stand between a client and the broker (clients connect to the address the broker
    advertises), so the child runs with the test kit's `refuse_publishes` fault instead.
    """

    def __init__(self, url: str, child_url: str, child_extra: dict[str, str] | None = None) -> None:
        self.url, self.child_url, self.child_extra = url, child_url, child_extra or {}
        self.locker: sqlite3.Connection | None = None
        self.proxy: TcpProxy | None = None
        self.path: Path | None = None

    async def down(self) -> None:
        if self.path is not None:
            self.locker = sqlite3.connect(self.path, isolation_level=None)
            self.locker.execute("BEGIN EXCLUSIVE")  # no other connection can write the broker file
        if self.proxy is not None:
            self.proxy.refuse()
            self.proxy.cut()

    async def up(self) -> None:
        if self.locker is not None:
            self.locker.close()
        if self.proxy is not None:
            self.proxy.accept()


@pytest.fixture(
    params=[
        "sqlite",
        pytest.param("rabbitmq", marks=pytest.mark.rabbitmq),
        pytest.param("kafka", marks=pytest.mark.kafka),
    ]
)
async def outage(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Outage]:
    if request.param == "sqlite":
        url = _broker(tmp_path, busy_timeout="0.2")
        away = Outage(url, url)
        away.path = tmp_path / "broker.db"
        yield away
        await away.up()
    elif request.param == "rabbitmq":
        async with fresh_vhost("tidings-crash") as vhost, TcpProxy(HOST, AMQP_PORT) as proxy:
            away = Outage(amqp_url(vhost), amqp_url(vhost, "publish_timeout=1&reconnect_max=0.2", port=proxy.port))
            away.proxy = proxy
            yield away
            await away.up()
    else:
        async with fresh_prefix("crash") as prefix:
            yield Outage(kafka_url(prefix), kafka_url(prefix), {"refuse": "1"})


async def test_rows_committed_while_the_broker_is_unreachable_survive_a_crash_and_all_arrive(
    database_url: str, outage: Outage
) -> None:
    transport = await connect(outage.url)
    await _declare(transport, "audit", JobDone.event_type)
    publisher = await Child.start("publisher", outage.child_url, database_url, publish="20", **outage.child_extra)
    await publisher.expect("ready")
    await outage.down()
    await publisher.go()
    await publisher.expect("published")
    await asyncio.sleep(1.0)  # sleep-ok: a window in which the relay keeps failing; the rows must stay
    assert (await outbox_status(database_url)).pending == 20
    await publisher.kill()
    await outage.up()
    assert (await outbox_status(database_url)).pending == 20
    assert await _backlog(transport, "audit") == 0  # nothing got through while the broker was away

    restarted = await Child.start("publisher", outage.url, database_url)
    await restarted.expect("ready")
    audit = await transport.subscribe("audit", [JobDone.event_type])
    received = await receive(audit, 20, quiet=0.3, within=30)
    await restarted.stop()
    assert [JobDone.model_validate_json(envelope.data).n for envelope in received] == list(range(20))
    assert (await outbox_status(database_url)).pending == 0
    await audit.close()
    await transport.close()


async def _claimed(database: str, group: str, event_id: str) -> bool:
    store = await Store.open(database, migrate=False)
    try:
        async with store.session() as session, session.begin():
            return await inbox.contains(session, group, event_id)
    finally:
        await store.close()


async def _backlog_is(transport: Transport, group: str, count: int) -> bool:
    return await _backlog(transport, group) == count


async def _audited(database: str, count: int) -> bool:
    return len(await effect_counts(database, "audit")) == count
