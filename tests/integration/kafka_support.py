"""Per-test isolation on the real Kafka: a fresh topic prefix, whose topics are deleted after
the test, and the conformance suite's adapter factory built on it."""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.conformance.events import Ping
from tests.conformance.harness import BrokerTarget

BOOTSTRAP = "127.0.0.1:9092"
FAST = "session_timeout_ms=6000&heartbeat_interval_ms=500&revoke_grace=2"
"""Consumer settings that make crash tests take seconds: Kafka's minimum session timeout is 6 s."""


def kafka_url(prefix: str, query: str = FAST) -> str:
    return f"kafka://{BOOTSTRAP}?prefix={prefix}" + (f"&{query}" if query else "")


async def delete_topics(prefix: str) -> None:
    """Delete every topic under `prefix` (consumer groups expire on their own)."""
    from aiokafka.admin import AIOKafkaAdminClient

    admin = AIOKafkaAdminClient(bootstrap_servers=BOOTSTRAP)
    await admin.start()
    try:
        topics = [topic for topic in await admin.list_topics() if topic.startswith(prefix)]
        if topics:
            await admin.delete_topics(topics)
    finally:
        await admin.close()


@asynccontextmanager
async def fresh_prefix(name: str = "tidings-test") -> AsyncIterator[str]:
    """A topic prefix nobody used before; its topics are deleted after the block."""
    prefix = f"{name}-{uuid.uuid4().hex[:12]}."
    try:
        yield prefix
    finally:
        with contextlib.suppress(Exception):  # cleaning up must not hide the test's own failure
            await delete_topics(prefix)


@dataclass(frozen=True)
class KafkaAdapter:
    """Conformance factory: each test gets its own topic prefix on the real broker."""

    name: str = "kafka"
    marks: Sequence[pytest.MarkDecorator] = (pytest.mark.kafka,)
    query: str = FAST

    @asynccontextmanager
    async def target(self, tmp_path: Path) -> AsyncIterator[BrokerTarget]:
        async with fresh_prefix("conformance") as prefix:
            yield BrokerTarget(kafka_url(prefix, self.query))


def assert_each_key_in_order(seen: Sequence[Ping], expected: int) -> None:
    """Every one of `expected` pings arrived once, and each key's in publish (`n`) order."""
    assert sorted(event.n for event in seen) == list(range(expected))
    for key in {event.key for event in seen}:
        numbers = [event.n for event in seen if event.key == key]
        assert numbers == sorted(numbers), f"{key} out of order: {numbers}"
