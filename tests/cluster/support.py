"""The loopback clusters of `scripts/cluster.sh` as the cluster tests see them, and the load they run.

`Load` drives a publisher and two replicas of one service (competing consumers of its group,
each with its own broker connection, sharing the service's SQLite database and so its inbox)
while something is done to the cluster. Every handled event writes one row to `effects` in the
handler's transaction, so a row counted twice would be an effect applied twice. What it measured
comes back as `Measured`: the tests assert on it and print it.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import os
import socket
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import quote

import httpx
import pytest
import sqlalchemy as sa

from tests.conformance.events import Ping, ping
from tests.conformance.harness import BrokerTarget
from tidings.context import Context
from tidings.errors import PublishError
from tidings.service import Service
from tidings.transport import Transport, connect

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "scripts" / "cluster.sh"
RABBIT_PORTS = (5701, 5702, 5703)
RABBIT_MANAGEMENT = tuple(f"http://127.0.0.1:{port}" for port in (15701, 15702, 15703))
RABBIT_HOSTS = ",".join(f"127.0.0.1:{port}" for port in RABBIT_PORTS)
KAFKA_PORTS = (19291, 19292, 19293)
KAFKA_BOOTSTRAP = ",".join(f"127.0.0.1:{port}" for port in KAFKA_PORTS)
AUTH = ("guest", "guest")
KAFKA_FAST = "session_timeout_ms=6000&heartbeat_interval_ms=500&revoke_grace=2&request_timeout_ms=10000"
"""Consumer settings that make crash tests take seconds (Kafka's minimum session timeout is 6 s)."""
RESUME_LIMIT = 20.0
"""Seconds the consumers may stand still after a node is killed (the tests print the real figure)."""


def reachable(port: int) -> bool:
    with socket.socket() as probe:
        probe.settimeout(1)
        return probe.connect_ex(("127.0.0.1", port)) == 0


def require_cluster(name: str, ports: tuple[int, ...]) -> None:
    """Skip (locally) or fail (`TIDINGS_REQUIRE_CLUSTER=1`, as the CI step sets) unless every node answers."""
    down = [port for port in ports if not reachable(port)]
    if not down:
        return
    message = f"the {name} cluster is not up (ports {down} closed); start it with `scripts/cluster.sh up {name}`"
    if os.environ.get("TIDINGS_REQUIRE_CLUSTER") == "1":
        pytest.fail(message, pytrace=False)
    pytest.skip(message)


async def cluster(*args: str) -> float:
    """Run `scripts/cluster.sh ARGS`; returns the seconds it took; fails the test if it fails."""
    began = time.monotonic()
    process = await asyncio.create_subprocess_exec(
        "bash", str(SCRIPT), *args, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT
    )
    output, _ = await process.communicate()
    assert process.returncode == 0, f"scripts/cluster.sh {' '.join(args)}: {output.decode()[-800:]}"
    return time.monotonic() - began


# -- RabbitMQ ---------------------------------------------------------------------------------------


def rabbit_url(vhost: str, query: str = "") -> str:
    url = f"amqp://guest:guest@{RABBIT_HOSTS}/{quote(vhost, safe='')}?management_url={','.join(RABBIT_MANAGEMENT)}"
    return f"{url}&{query}" if query else url


async def management_get(path: str) -> httpx.Response:
    """GET from the first node whose management API answers."""
    async with httpx.AsyncClient(auth=AUTH, timeout=10) as client:
        for base in RABBIT_MANAGEMENT:
            with contextlib.suppress(httpx.HTTPError):
                return await client.get(base + path)
    raise AssertionError("no node of the RabbitMQ cluster answers on its management API")


@contextlib.asynccontextmanager
async def cluster_vhost(prefix: str = "tidings-cluster") -> AsyncIterator[str]:
    """A vhost of the RabbitMQ cluster for the block, with full rights for guest."""
    vhost = f"{prefix}-{uuid.uuid4().hex[:12]}"
    path = quote(vhost, safe="")
    async with httpx.AsyncClient(base_url=RABBIT_MANAGEMENT[0], auth=AUTH, timeout=30) as client:
        (await client.put(f"/api/vhosts/{path}")).raise_for_status()
        permissions = {"configure": ".*", "write": ".*", "read": ".*"}
        (await client.put(f"/api/permissions/{path}/guest", json=permissions)).raise_for_status()
        try:
            yield vhost
        finally:
            for base in RABBIT_MANAGEMENT:  # node 1 may be the one a test killed
                with contextlib.suppress(httpx.HTTPError):
                    await client.delete(f"{base}/api/vhosts/{path}")
                    break


async def quorum_queue(vhost: str, queue: str) -> dict[str, object]:
    response = await management_get(f"/api/queues/{quote(vhost, safe='')}/{quote(queue, safe='')}")
    response.raise_for_status()
    info: dict[str, object] = response.json()
    return info


# -- the load ---------------------------------------------------------------------------------------

metadata = sa.MetaData()
effects = sa.Table(
    "effects",
    metadata,
    sa.Column("seq", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("event_id", sa.String, nullable=False),
    sa.Column("key", sa.String, nullable=False),
    sa.Column("n", sa.Integer, nullable=False),
    sa.Column("at", sa.Float, nullable=False),
)


@dataclass
class Measured:
    """What one run under a node loss saw; `print(measured)` is the report line."""

    published: list[str] = field(default_factory=list)
    publish_failures: int = 0
    effects: dict[str, int] = field(default_factory=dict)
    """event id -> rows in `effects` (1 = applied once)."""
    order_violations: list[str] = field(default_factory=list)
    duplicates_absorbed: int = 0
    killed_at: float = 0.0
    consumer_stall: float = 0.0
    """Longest gap between two handled events from the kill on (seconds)."""
    publish_stall: float = 0.0
    """Longest gap between two returned publishes from the kill on (seconds)."""
    restarted_in: float = 0.0
    handled_after_kill: int = 0

    @property
    def lost(self) -> set[str]:
        return set(self.published) - set(self.effects)

    @property
    def twice(self) -> dict[str, int]:
        return {event_id: rows for event_id, rows in self.effects.items() if rows > 1}

    def __str__(self) -> str:
        return (
            f"published {len(self.published)} ({self.publish_failures} publish calls failed), "
            f"effects {sum(self.effects.values())} of {len(self.effects)} ids, lost {len(self.lost)}, "
            f"applied twice {len(self.twice)}, duplicates absorbed by the inbox {self.duplicates_absorbed}, "
            f"handled after the kill {self.handled_after_kill}; consumers stalled at most {self.consumer_stall:.2f}s "
            f"and publishers {self.publish_stall:.2f}s after the kill; killed node back in {self.restarted_in:.1f}s; "
            f"per-key order violations {len(self.order_violations)}"
        )


def longest_gap(times: list[float], since: float) -> float:
    points = sorted(t for t in times if t >= since)
    points = [since, *points]
    return max((b - a for a, b in itertools.pairwise(points)), default=0.0)


async def run_load(
    broker_url: str,
    database: Path,
    kill: Callable[[], Awaitable[None]],
    restart: Callable[[], Awaitable[float]],
    *,
    keys: int = 8,
    before: float = 3.0,
    after_kill: float = 8.0,
    backlog: int = 400,
    stuck_after: float = 30.0,
    drain_within: float = 150.0,
) -> Measured:
    """Publish keyed pings in batches of 10 while two replicas consume them; `kill()` after
    `before` seconds, keep going `after_kill` seconds, `restart()`, then stop publishing and wait
    until every event whose publish returned has its effect. The publisher holds back while more
    than `backlog` events wait (consumers on a busy machine are slower than one publisher); the
    wait fails when no effect is added for `stuck_after` seconds or after `drain_within`."""
    measured = Measured()
    handled_at: list[float] = []
    published_at: list[float] = []
    progress = asyncio.Event()
    replicas = [_replica(broker_url, database, handled_at, progress) for _ in range(2)]
    for replica in replicas:
        await replica.start()
    publisher: Transport = await connect(broker_url)
    stop = asyncio.Event()

    async def produce() -> None:
        n = 0
        while not stop.is_set():
            if len(measured.published) - len(handled_at) > backlog:
                progress.clear()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(progress.wait(), 0.5)
                continue
            batch = [ping(n + i, key=f"key-{(n + i) % keys}") for i in range(10)]
            n += len(batch)
            try:
                await publisher.publish(batch)
            except PublishError:
                measured.publish_failures += 1
                await asyncio.sleep(0.1)  # sleep-ok: back off while the queue has no leader
                continue
            measured.published.extend(envelope.id for envelope in batch)
            published_at.append(time.monotonic())
            await asyncio.sleep(0.02)

    producer = asyncio.create_task(produce())
    try:
        await asyncio.sleep(before)
        measured.killed_at = time.monotonic()
        await kill()
        await asyncio.sleep(after_kill)
        measured.restarted_in = await restart()
        await asyncio.sleep(1.0)  # sleep-ok: keep publishing for a second against the restarted node
        stop.set()
        await producer
        deadline = time.monotonic() + drain_within
        seen, last_progress = -1, time.monotonic()
        while time.monotonic() < deadline and time.monotonic() - last_progress < stuck_after:
            measured.effects = await _effects_from(database)
            if not measured.lost:
                break
            if len(measured.effects) > seen:
                seen, last_progress = len(measured.effects), time.monotonic()
            await asyncio.sleep(0.5)
        await asyncio.sleep(1.0)  # sleep-ok: a bounded window for in-flight redeliveries to show as second effects
    finally:
        stop.set()
        producer.cancel()
        await asyncio.gather(producer, return_exceptions=True)
        for replica in replicas:
            await replica.stop()
        await publisher.close()
    measured.effects = await _effects_from(database)
    measured.order_violations = await _order_violations(database)
    measured.duplicates_absorbed = sum(replica.stats["duplicates"] for replica in replicas)
    measured.consumer_stall = longest_gap(handled_at, measured.killed_at)
    measured.publish_stall = longest_gap(published_at, measured.killed_at)
    measured.handled_after_kill = sum(1 for t in handled_at if t > measured.killed_at)
    return measured


def _replica(broker_url: str, database: Path, handled_at: list[float], progress: asyncio.Event) -> Service:
    service = Service(
        "cluster-load", broker=broker_url, database=f"sqlite+aiosqlite:///{database}", tables=metadata, concurrency=8
    )

    @service.on(Ping)
    async def apply(event: Ping, ctx: Context) -> None:
        now = time.monotonic()
        await ctx.session.execute(
            effects.insert().values(
                event_id=ctx.incoming.id if ctx.incoming else "", key=event.key or "", n=event.n, at=now
            )
        )
        handled_at.append(now)
        progress.set()

    return service


def _engine(database: Path) -> sa.Engine:
    return sa.create_engine(f"sqlite:///{database}")


async def _effects_from(database: Path) -> dict[str, int]:
    def read() -> dict[str, int]:
        engine = _engine(database)
        try:
            with engine.connect() as connection:
                rows = connection.execute(sa.select(effects.c.event_id, sa.func.count()).group_by(effects.c.event_id))
                return {event_id: count for event_id, count in rows.all()}
        finally:
            engine.dispose()

    return await asyncio.to_thread(read)


async def _order_violations(database: Path) -> list[str]:
    """Per key, events whose effect committed after the effect of a later event of that key."""

    def read() -> list[str]:
        engine = _engine(database)
        try:
            with engine.connect() as connection:
                rows = connection.execute(sa.select(effects.c.key, effects.c.n).order_by(effects.c.seq)).all()
        finally:
            engine.dispose()
        highest: dict[str, int] = {}
        violations = []
        for key, n in rows:
            if n < highest.get(key, -1):
                violations.append(f"{key}: {n} after {highest[key]}")
            highest[key] = max(n, highest.get(key, -1))
        return violations

    return await asyncio.to_thread(read)


# -- the conformance suite's adapters for the clusters (TIDINGS_CONFORMANCE=clusters) ---------------


@dataclass(frozen=True)
class RabbitClusterAdapter:
    """Each conformance test gets its own vhost on the RabbitMQ cluster, reached through all three nodes."""

    name: str = "rabbitmq-cluster"
    marks: Sequence[pytest.MarkDecorator] = ()

    @contextlib.asynccontextmanager
    async def target(self, tmp_path: Path) -> AsyncIterator[BrokerTarget]:
        require_cluster("rabbitmq", RABBIT_PORTS)
        async with cluster_vhost("tidings-conformance") as vhost:
            yield BrokerTarget(rabbit_url(vhost))


@dataclass(frozen=True)
class KafkaClusterAdapter:
    """Each conformance test gets its own topic prefix on the Kafka cluster (three replicas per topic)."""

    name: str = "kafka-cluster"
    marks: Sequence[pytest.MarkDecorator] = ()

    @contextlib.asynccontextmanager
    async def target(self, tmp_path: Path) -> AsyncIterator[BrokerTarget]:
        from aiokafka.admin import AIOKafkaAdminClient

        require_cluster("kafka", KAFKA_PORTS)
        prefix = f"conformance-{uuid.uuid4().hex[:12]}."
        try:
            yield BrokerTarget(f"kafka://{KAFKA_BOOTSTRAP}?prefix={prefix}&{KAFKA_FAST}")
        finally:
            with contextlib.suppress(Exception):  # cleaning up must not hide the test's own failure
                admin = AIOKafkaAdminClient(bootstrap_servers=KAFKA_BOOTSTRAP)
                await admin.start()
                try:
                    topics = [topic for topic in await admin.list_topics() if topic.startswith(prefix)]
                    if topics:
                        await admin.delete_topics(topics)
                finally:
                    await admin.close()
