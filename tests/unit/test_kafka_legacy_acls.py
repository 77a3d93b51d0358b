"""The Kafka ACLs of a service with legacy sources: it may read those topics and the consumer
group its legacy reader joins, and nothing more than a service without them otherwise."""

from __future__ import annotations

from tidings.security.identities import Identity
from tidings.transport.kafka.config import KafkaConfig
from tidings.transport.kafka.identities import acls


def test_legacy_topics_and_the_legacy_group_are_readable_only_with_legacy_sources() -> None:
    config = KafkaConfig.from_url("kafka://127.0.0.1:9092?prefix=shop.")
    plain = Identity(service="orders", user="shop-orders", password="x", group="orders")
    legacy = Identity(service="orders", user="shop-orders", password="x", group="orders", queues=("order_events",))
    added = set(acls(config, legacy)) - set(acls(config, plain))
    assert added == {
        ("topic", "order_events", "read"),
        ("topic", "order_events", "describe"),
        ("group", "shop.orders.legacy", "read"),
        ("group", "shop.orders.legacy", "describe"),
    }
    assert set(acls(config, plain)) <= set(acls(config, legacy))
