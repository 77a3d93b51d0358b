"""The messaging conventions' values for each broker URL, and that the destination names the
observe layer derives agree with the adapters' own (it may not import them)."""

from __future__ import annotations

import pytest

from tidings.observe.conventions import REQUIRED, broker_of
from tidings.transport.kafka.config import KafkaConfig
from tidings.transport.rabbitmq.config import RabbitConfig
from tidings.transport.rabbitmq.topology import events_exchange


@pytest.mark.parametrize(
    ("url", "system", "destination", "server"),
    [
        ("amqp://guest:guest@127.0.0.1:5672/vh", "rabbitmq", "tidings.events", ("127.0.0.1", 5672)),
        ("amqps://u:p@broker.example/vh?namespace=shop", "rabbitmq", "shop.events", ("broker.example", 5671)),
        ("kafka://127.0.0.1:9092", "kafka", "events", ("127.0.0.1", 9092)),
        ("kafka://u:p@k1:19092,k2:19092?prefix=t.", "kafka", "t.events", ("k1", 19092)),
        ("kafka://[::1]:9093", "kafka", "events", ("::1", 9093)),
        ("sqlite:///data/broker.db", "tidings.sqlite", "messages", (None, None)),
        ("memory://bus", "tidings.memory", "bus", (None, None)),
    ],
)
def test_each_broker_is_described_by_the_conventions(
    url: str, system: str, destination: str, server: tuple[str | None, int | None]
) -> None:
    broker = broker_of(url)
    assert (broker.system, broker.destination, (broker.address, broker.port)) == (system, destination, server)
    attributes = broker.attributes("process")
    assert all(name in attributes for name in REQUIRED)
    assert attributes["messaging.operation.name"] == attributes["messaging.operation.type"] == "process"
    assert ("server.address" in attributes) == (server[0] is not None)


@pytest.mark.parametrize("query", ["", "?namespace=shop"])
def test_the_rabbitmq_destination_is_the_adapters_events_exchange(query: str) -> None:
    url = f"amqp://guest:guest@127.0.0.1:5672/vh{query}"
    assert broker_of(url).destination == events_exchange(RabbitConfig.from_url(url))


@pytest.mark.parametrize("query", ["", "?prefix=team."])
def test_the_kafka_destination_is_the_adapters_events_topic(query: str) -> None:
    url = f"kafka://127.0.0.1:9092{query}"
    assert broker_of(url).destination == KafkaConfig.from_url(url).events_topic
