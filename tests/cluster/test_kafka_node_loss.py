"""The broker that leads the busiest partition of the events topic is SIGKILLed under load, then
restarted.

A publisher (idempotent, `acks=all`) and two replicas of a service run against a three-broker
KRaft cluster whose topics have three replicas and `min.insync.replicas=2`. Every event whose
publish returned must have its effect exactly once, per-key order must hold in the order the
effects committed, and the consumers must be back within `RESUME_LIMIT` seconds.
"""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient

from tests.cluster.support import KAFKA_BOOTSTRAP, KAFKA_FAST, RESUME_LIMIT, cluster, run_load

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("kafka_cluster")]


@contextlib.asynccontextmanager
async def admin() -> AsyncIterator[AIOKafkaAdminClient]:
    client = AIOKafkaAdminClient(bootstrap_servers=KAFKA_BOOTSTRAP)
    await client.start()
    try:
        yield client
    finally:
        await client.close()


async def partitions(topic: str) -> list[dict[str, object]]:
    async with admin() as client:
        (described,) = await client.describe_topics([topic])
    found: list[dict[str, object]] = described["partitions"]
    return found


async def busiest_partition(topic: str) -> tuple[int, int]:
    """(partition, its leader's node id) of the partition holding the most records."""
    consumer = AIOKafkaConsumer(bootstrap_servers=KAFKA_BOOTSTRAP)
    await consumer.start()
    try:
        described = await partitions(topic)
        ends = await consumer.end_offsets([TopicPartition(topic, int(str(p["partition"]))) for p in described])
    finally:
        await consumer.stop()
    busiest = max(ends, key=lambda tp: ends[tp]).partition
    leader = next(int(str(p["leader"])) for p in described if p["partition"] == busiest)
    return busiest, leader


async def test_killing_the_leader_of_the_busiest_partition_loses_nothing_and_keeps_key_order(tmp_path: Path) -> None:
    prefix = f"cluster-{uuid.uuid4().hex[:10]}."
    url = f"kafka://{KAFKA_BOOTSTRAP}?prefix={prefix}&{KAFKA_FAST}"
    topic = f"{prefix}events"
    killed: dict[str, int] = {}

    async def kill() -> None:
        killed["partition"], killed["broker"] = await busiest_partition(topic)
        await cluster("kill", "kafka", str(killed["broker"]))

    async def restart() -> float:
        return await cluster("up", "kafka")

    try:
        measured = await run_load(url, tmp_path / "effects.db", kill, restart, keys=12)
        described = await partitions(topic)
    finally:
        with contextlib.suppress(Exception):
            async with admin() as client:
                await client.delete_topics([t for t in await client.list_topics() if t.startswith(prefix)])

    print(f"\nKafka cluster, killed broker {killed['broker']} (leader of partition {killed['partition']}): {measured}")
    assert all(len(p["replicas"]) == 3 for p in described), "the events topic is not replicated on three brokers"  # type: ignore[arg-type]
    assert len(measured.published) > 200, "too little load to show anything"
    assert not measured.lost, f"{len(measured.lost)} acknowledged events never had their effect"
    assert not measured.twice, f"effects applied twice: {sorted(measured.twice)[:5]}"
    assert not measured.order_violations, f"per-key order broken: {measured.order_violations[:5]}"
    assert measured.handled_after_kill > 100, "the consumers did not carry on after the kill"
    assert measured.consumer_stall < RESUME_LIMIT, f"consumers stood still {measured.consumer_stall:.1f}s"
