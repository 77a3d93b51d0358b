"""The brokers the reliable-path tests run over, as pytest parameters: the SQLite broker, RabbitMQ
and Kafka (the multi-process ones), each through the conformance suite's adapter factory, so each
test gets a fresh namespace (a file, a vhost, a topic prefix) with short leases and session timeouts."""

from __future__ import annotations

import pytest

from tests.conformance.conftest import MemoryAdapter, SqliteAdapter
from tests.integration.kafka_support import KafkaAdapter
from tests.integration.rabbitmq_support import RabbitAdapter

MULTI_PROCESS = [
    pytest.param(SqliteAdapter(), id="sqlite"),
    pytest.param(RabbitAdapter(), id="rabbitmq", marks=pytest.mark.rabbitmq),
    pytest.param(KafkaAdapter(), id="kafka", marks=pytest.mark.kafka),
]
"""Brokers a child process can share with the test."""
EVERY = [pytest.param(MemoryAdapter(), id="memory"), *MULTI_PROCESS]
"""The multi-process brokers and the in-process memory broker."""
