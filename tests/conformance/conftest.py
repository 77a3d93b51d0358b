"""The adapters the conformance suite runs against: append a factory to `ADAPTERS` to add one.

`TIDINGS_CONFORMANCE=clusters` runs the unchanged suite against the three-node RabbitMQ and Kafka
clusters of `scripts/cluster.sh` instead (`scripts/ci-cluster.sh` does, in CI).

A factory gives each test a fresh namespace and the URL that reaches it, from this process and
from child processes. Tests choose what applies by `transport.capabilities` alone.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.cluster.support import KafkaClusterAdapter, RabbitClusterAdapter
from tests.conformance.harness import AdapterFactory, Broker, BrokerTarget
from tests.integration.kafka_support import KafkaAdapter
from tests.integration.rabbitmq_support import RabbitAdapter


@dataclass(frozen=True)
class MemoryAdapter:
    name: str = "memory"
    marks: Sequence[pytest.MarkDecorator] = ()

    @asynccontextmanager
    async def target(self, tmp_path: Path) -> AsyncIterator[BrokerTarget]:
        yield BrokerTarget(f"memory://conformance-{uuid.uuid4().hex}?lease=1")


@dataclass(frozen=True)
class SqliteAdapter:
    name: str = "sqlite"
    marks: Sequence[pytest.MarkDecorator] = ()

    @asynccontextmanager
    async def target(self, tmp_path: Path) -> AsyncIterator[BrokerTarget]:
        yield BrokerTarget(f"sqlite:///{tmp_path / 'broker.db'}?lease=1")


ADAPTERS: list[AdapterFactory] = [MemoryAdapter(), SqliteAdapter(), RabbitAdapter(), KafkaAdapter()]
if os.environ.get("TIDINGS_CONFORMANCE") == "clusters":
    # the same tests against scripts/cluster.sh's three-node RabbitMQ and Kafka clusters
    ADAPTERS = [RabbitClusterAdapter(), KafkaClusterAdapter()]


@pytest.fixture(params=[pytest.param(adapter, marks=adapter.marks, id=adapter.name) for adapter in ADAPTERS])
async def broker(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Broker]:
    """A fresh namespace on one adapter; every transport and consumer opened through it is closed after the test."""
    factory: AdapterFactory = request.param
    async with factory.target(tmp_path) as target:
        broker = Broker(target)
        try:
            yield broker
        finally:
            await broker.aclose()
