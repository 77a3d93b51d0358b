"""RabbitMQ transport pieces that need no broker: URL options, delay buckets, attempt counting,
and the CloudEvents / legacy decoding rules."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any, cast

import pytest
from aiormq.abc import AbstractChannel, DeliveredMessage
from pamqp.commands import Basic
from pamqp.header import ContentHeader

from tidings.envelope import Envelope
from tidings.errors import ConfigurationError, Malformation, MalformedMessage
from tidings.transport.rabbitmq.codec import attempt_of, encode, from_legacy, to_envelope
from tidings.transport.rabbitmq.config import LegacyMapping, RabbitConfig, check_group
from tidings.transport.rabbitmq.topology import MAX_BUCKET_MS, bucket_for, parse_queue


def message(body: bytes, headers: dict[str, Any] | None = None, **properties: Any) -> DeliveredMessage:
    header = ContentHeader(properties=Basic.Properties(headers=headers, **properties), body_size=len(body))
    delivery = Basic.Deliver(consumer_tag="c", delivery_tag=1, routing_key="r")
    return DeliveredMessage(delivery=delivery, header=header, body=body, channel=cast(AbstractChannel, None))


# -- configuration -------------------------------------------------------------------------------


def test_options_are_split_from_the_connection_url() -> None:
    config = RabbitConfig.from_url(
        "amqps://u:p%40ss@broker:5671/shop%2Fprod?queue_type=classic&heartbeat=15&cafile=/ca.pem"
        "&ordering=key&publish_timeout=2.5&namespace=svc"
    )
    assert config.url == "amqps://u:p%40ss@broker:5671/shop%2Fprod?heartbeat=15&cafile=%2Fca.pem"
    assert (config.queue_type, config.ordering, config.publish_timeout, config.namespace) == (
        "classic",
        "key",
        2.5,
        "svc",
    )
    assert config.vhost == "shop/prod"
    assert config.management() == ("https://broker:15671", "u", "p@ss")
    assert "p%40ss" not in config.redacted()


def test_defaults() -> None:
    config = RabbitConfig.from_url("amqp://guest:guest@127.0.0.1/")
    assert (config.queue_type, config.ordering, config.namespace, config.legacy) == ("quorum", "none", "tidings", ())
    assert config.vhost == "/"
    assert config.management() == ("http://127.0.0.1:15672", "guest", "guest")
    explicit = RabbitConfig.from_url("amqp://h/?management_url=http://admin:8080/")
    assert explicit.management()[0] == "http://admin:8080"
    assert (config.connect_timeout, config.reconnect_max) == (60.0, 1.0)
    waiting = RabbitConfig.from_url("amqp://h/?connect_timeout=0&reconnect_max=3")
    assert (waiting.connect_timeout, waiting.reconnect_max, waiting.url) == (0.0, 3.0, "amqp://h/")


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("amqp://h/?prefetch=3", "unknown option 'prefetch'"),
        ("amqp://h/?queue_type=stream", "queue_type must be quorum or classic"),
        ("amqp://h/?ordering=global", "ordering must be none or key"),
        ("amqp://h/?publish_timeout=soon", "must be a number"),
        ("amqp://h/?connect_timeout=-1", "connect_timeout must be >= 0"),
        ("amqp://h/?delivery_limit=5&queue_type=classic", "needs queue_type=quorum"),
        ("amqp://h/?namespace=a:b", "namespace"),
        ("amqp://h/?legacy_types=A:b", "need legacy_queue"),
        ("amqp://h/?legacy_queue=q&legacy_types=A", "Name:event.type pairs"),
        ("amqp://h/?legacy_queue=q&legacy_colour=red", "unknown legacy option"),
        ("http://h/", "not a RabbitMQ URL"),
    ],
)
def test_bad_options_are_configuration_errors(url: str, message: str) -> None:
    with pytest.raises(ConfigurationError, match=message):
        RabbitConfig.from_url(url)


def test_legacy_mapping_from_the_url() -> None:
    config = RabbitConfig.from_url(
        "amqp://h/?legacy_queue=order_events&legacy_types=OrderCreated:shop.order.created,OrderPaid:shop.order.paid"
        "&legacy_group=orders&legacy_subject_field=order_id"
    )
    (mapping,) = config.legacy
    assert mapping.types == {"OrderCreated": "shop.order.created", "OrderPaid": "shop.order.paid"}
    assert (mapping.group, mapping.subject_field, mapping.type_field) == ("orders", "order_id", "event_type")
    assert mapping.event_source == "urn:tidings:legacy:order_events"
    assert mapping.consumed_by("orders")
    assert not mapping.consumed_by("billing")


def test_group_names_become_queue_names() -> None:
    assert check_group("billing.v2-eu_1") == "billing.v2-eu_1"
    for bad in ("", "a:dlq", "with space", "x" * 201):
        with pytest.raises(ConfigurationError):
            check_group(bad)
    config = RabbitConfig.from_url("amqp://h/")
    assert parse_queue(config, "tidings:billing") == ("billing", "group")
    assert parse_queue(config, "tidings:billing:dlq") == ("billing", "dlq")
    assert parse_queue(config, "tidings:billing:delay:640") == ("billing", "delay")
    assert parse_queue(config, "order_events") is None


# -- delays and attempts -------------------------------------------------------------------------


@pytest.mark.parametrize("delay_ms", [1, 9, 10, 11, 199, 200, 201, 500, 999, 30_000, 3_600_000, MAX_BUCKET_MS])
def test_a_delay_rounds_up_to_a_bucket_less_than_twice_as_long(delay_ms: int) -> None:
    bucket, left = bucket_for(delay_ms)
    assert left == 0
    assert delay_ms <= bucket < max(2 * delay_ms, 20)


def test_a_delay_beyond_the_largest_bucket_carries_the_rest() -> None:
    assert bucket_for(MAX_BUCKET_MS + 5) == (MAX_BUCKET_MS, 5)


def test_attempts_count_retries_and_broker_returns() -> None:
    assert attempt_of({}, False) == 1
    assert attempt_of({}, True) == 2  # classic: redelivered, count unknown
    assert attempt_of({"x-delivery-count": 3}, True) == 4  # quorum
    assert attempt_of({"x-tidings-attempts": 2}, False) == 3  # a retried copy, first delivery
    assert attempt_of({"x-tidings-attempts": 2, "x-delivery-count": 1}, True) == 4


# -- decoding ------------------------------------------------------------------------------------


def test_binary_mode_round_trip_and_the_old_prefix() -> None:
    envelope = Envelope(id="e-1", source="s", type="t.x", data=b'{"a":1}', time=datetime(2024, 1, 2, tzinfo=UTC))
    properties, body = encode(envelope)
    assert properties.content_type == "application/json"
    assert properties.delivery_mode == 2
    assert properties.headers is not None
    assert properties.headers["cloudEvents_id"] == "e-1"
    assert to_envelope(message(body, properties.headers, content_type="application/json")) == envelope

    old = {key.replace("cloudEvents_", "cloudEvents:"): value for key, value in properties.headers.items()}
    old["cloudEvents:time"] = datetime(2024, 1, 2, tzinfo=UTC)  # an AMQP timestamp, as the binding allows
    assert to_envelope(message(body, old, content_type="application/json")) == envelope


def test_plain_json_is_not_a_cloudevents_message() -> None:
    with pytest.raises(MalformedMessage, match="not a CloudEvents message: missing CloudEvents attribute") as error:
        to_envelope(message(b'{"event_type": "OrderCreated"}'))
    assert error.value.kind == Malformation.MISSING_ATTRIBUTE
    with pytest.raises(MalformedMessage, match="not a CloudEvents message: body is not valid JSON"):
        to_envelope(message(b"\x00binary"))


LEGACY = LegacyMapping(
    queue="order_events", types={"OrderCreated": "shop.order.created"}, subject_field="order_id", id_field="ref"
)


def test_a_mapped_legacy_message_becomes_an_envelope() -> None:
    body = json.dumps({"event_type": "OrderCreated", "order_id": 123, "amount": 250}).encode()
    envelope = from_legacy(LEGACY, message(body))
    assert (envelope.type, envelope.source, envelope.subject, envelope.partitionkey) == (
        "shop.order.created",
        "urn:tidings:legacy:order_events",
        "123",
        "123",
    )
    assert json.loads(envelope.data) == {"order_id": 123, "amount": 250}
    assert from_legacy(LEGACY, message(body)).id == envelope.id  # redelivered: the same id
    other = json.dumps({"event_type": "OrderCreated", "order_id": 124, "amount": 250}).encode()
    assert from_legacy(LEGACY, message(other)).id != envelope.id
    assert from_legacy(LEGACY, message(body, message_id="m-9")).id == "m-9"
    with_ref = json.dumps({"event_type": "OrderCreated", "ref": "r-7"}).encode()
    assert from_legacy(LEGACY, message(with_ref)).id == "r-7"


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        (b'{"event_type": "OrderShipped"}', "event_type='OrderShipped' has no mapping"),
        (b'{"order_id": 1}', "event_type=None has no mapping"),
        (b"[1, 2]", "not a JSON object"),
        (b"hello", "body is not JSON"),
    ],
)
def test_an_unmapped_legacy_message_says_why(body: bytes, reason: str) -> None:
    with pytest.raises(MalformedMessage) as error:
        from_legacy(LEGACY, message(body))
    assert str(error.value.detail).startswith("not a CloudEvents message: ")
    assert reason in error.value.detail
    assert "the legacy rule for queue 'order_events' maps 'event_type' values ['OrderCreated']" in error.value.detail


def test_a_url_naming_several_nodes_gives_one_endpoint_per_node_in_order() -> None:
    config = RabbitConfig.from_url("amqp://u:p%40ss@h1:5701,h2,[::1]:5703/shop?heartbeat=5&namespace=n")
    assert config.endpoints == (
        "amqp://u:p%40ss@h1:5701/shop?heartbeat=5",
        "amqp://u:p%40ss@h2:5672/shop?heartbeat=5",
        "amqp://u:p%40ss@[::1]:5703/shop?heartbeat=5",
    )
    assert config.vhost == "shop"
    assert config.managements() == (("http://h1:15672", "http://h2:15672", "http://[::1]:15672"), "u", "p@ss")
    assert "p@ss" not in config.redacted()


def test_management_urls_of_a_cluster_are_listed_comma_separated() -> None:
    config = RabbitConfig.from_url("amqp://h1:1,h2:2/?management_url=http://h1:15701/,http://h2:15702")
    assert config.managements()[0] == ("http://h1:15701", "http://h2:15702")
    assert config.management()[0] == "http://h1:15701"


@pytest.mark.parametrize("url", ["amqp://h1:5672,,h3:5672/", "amqp://h1:x/", "amqp://h1:5672,h2:99999/"])
def test_a_malformed_host_list_is_refused_naming_the_url(url: str) -> None:
    with pytest.raises(ConfigurationError, match="bad host"):
        RabbitConfig.from_url(url)
