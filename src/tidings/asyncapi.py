"""An AsyncAPI 3.1 document of a system's services, built from their registries, that says what
travels on each broker.

Two servers, one per broker Tidings speaks: RabbitMQ (`amqp`, 0-9-1) and Kafka. On RabbitMQ an
event is published to the topic exchange `<namespace>.events` with its type as the routing key
(a channel per type, AMQP binding `is: routingKey`) and consumed from the group's queue
`<namespace>:<group>` (a channel per group, `is: queue`). On Kafka every event goes to the one
topic `<prefix>events`, keyed by its partition key (one channel, Kafka bindings for the topic
and the key). Each event class is a message per broker, since the headers differ: the
CloudEvents binary mode puts the attributes in `cloudEvents_<name>` application properties on
AMQP (`datacontenttype` is the `content-type` property) and in `ce_<name>` headers on Kafka
(`datacontenttype` is the `content-type` header). Payloads are the classes' JSON Schemas as
serialized; each message has an example made from its model, with the headers
`to_binary` really writes for it.

    tidings asyncapi services.orders.service:service services.inventory.service:service -o shop.json
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from pydantic import ValidationError
from pydantic.json_schema import models_json_schema

from tidings.asyncapi_examples import example_of
from tidings.envelope import Envelope, to_binary
from tidings.events import Event
from tidings.service import Service

VERSION = "3.1.0"
AMQP_PREFIX = "cloudEvents_"
KAFKA_PREFIX = "ce_"
"""The binary-mode prefixes of the transports (`rabbitmq.codec.PREFIX`, `kafka.config.CE_PREFIX`;
a test holds them equal, without this module importing the broker clients)."""
_KEY = re.compile(r"[^A-Za-z0-9.\-_]")
_ATTRIBUTES: dict[str, dict[str, Any]] = {
    "id": {"type": "string", "description": "Unique, time-ordered event id (UUIDv7)."},
    "source": {
        "type": "string",
        "format": "uri",
        "description": "Absolute URI of the publisher: urn:tidings:<service> unless the service configures its own.",
    },
    "type": {"type": "string", "description": "The event type (on RabbitMQ also the routing key)."},
    "specversion": {"type": "string", "const": "1.0"},
    "time": {"type": "string", "format": "date-time"},
    "subject": {"type": "string", "description": "The aggregate the event is about."},
    "dataschema": {"type": "string", "description": "urn:tidings:<type>:<version>."},
    "correlationid": {"type": "string", "description": "The business transaction."},
    "causationid": {"type": "string", "description": "The id of the event that caused this one."},
    "traceparent": {"type": "string", "description": "W3C trace context of the message's creation."},
    "partitionkey": {"type": "string", "description": "Events with one key keep their order."},
}
_REQUIRED = ("id", "source", "type", "specversion")
_AMQP_BINDING = "0.3.0"
_KAFKA_BINDING = "0.5.0"


@dataclass(frozen=True, slots=True)
class Brokers:
    """Where the servers of the document are and how their names are prefixed (the transports'
    `namespace` and `prefix` options)."""

    amqp_host: str = "localhost:5672"
    vhost: str = "/"
    namespace: str = "tidings"
    kafka_host: str = "localhost:9092"
    kafka_prefix: str = ""


def key(text: str) -> str:
    """`text` as an AsyncAPI component or operation key (letters, digits, `.`, `-`, `_`)."""
    return _KEY.sub("_", text)


def headers(prefix: str, *, content_type_header: bool) -> dict[str, Any]:
    """The JSON Schema of the binary-mode headers under `prefix` (what `to_binary` writes)."""
    properties = {prefix + name: schema for name, schema in _ATTRIBUTES.items()}
    if content_type_header:
        properties["content-type"] = {"type": "string", "const": "application/json"}
    where = "AMQP application properties" if prefix == AMQP_PREFIX else "Kafka record headers"
    return {
        "type": "object",
        "description": f"CloudEvents 1.0 attributes in binary mode, as {where} named `{prefix}<attribute>`.",
        "properties": properties,
        "required": [prefix + name for name in _REQUIRED],
    }


def document(
    services: Sequence[Service], *, title: str, version: str = "1.0.0", brokers: Brokers | None = None
) -> dict[str, Any]:
    """The AsyncAPI 3.1 document of `services` as a JSON-ready dict."""
    brokers = brokers or Brokers()
    classes: dict[str, type[Event]] = {}
    publishers: dict[str, str] = {}
    for service in services:
        for event_type in (*service.handled_types, *service.published_types):
            classes.setdefault(event_type, service.registry.event_class(event_type))
        for event_type in service.published_types:
            publishers.setdefault(event_type, service.source)
    ordered = [classes[name] for name in sorted(classes)]
    references, definitions = models_json_schema(
        [(cls, "serialization") for cls in ordered], ref_template="#/components/schemas/{model}"
    )
    exchange = f"{brokers.namespace}.events"
    topic = f"{brokers.kafka_prefix}events"
    messages: dict[str, Any] = {}
    channels: dict[str, Any] = {}
    kafka_messages: dict[str, Any] = {}
    for cls in ordered:
        base = key(f"{cls.event_type}.v{cls.event_version}")
        payload = references[(cls, "serialization")]
        source = publishers.get(cls.event_type, "urn:tidings:publisher")
        for broker, prefix in (("amqp", AMQP_PREFIX), ("kafka", KAFKA_PREFIX)):
            messages[f"{base}.{broker}"] = _message(cls, broker, prefix, payload, source)
        channels[key(f"amqp.{cls.event_type}")] = {
            "address": cls.event_type,
            "title": f"{cls.event_type} on {exchange}",
            "description": f"Published to the topic exchange `{exchange}` with routing key `{cls.event_type}`.",
            "servers": [{"$ref": "#/servers/rabbitmq"}],
            "messages": {base: {"$ref": f"#/components/messages/{base}.amqp"}},
            "bindings": {"amqp": _exchange_binding(exchange, brokers.vhost)},
        }
        kafka_messages[base] = {"$ref": f"#/components/messages/{base}.kafka"}
    channels["kafka.events"] = {
        "address": topic,
        "title": f"the topic {topic}",
        "description": "Every event type, partitioned by the record key (the partition key).",
        "servers": [{"$ref": "#/servers/kafka"}],
        "messages": kafka_messages,
        "bindings": {"kafka": {"topic": topic, "bindingVersion": _KAFKA_BINDING}},
    }
    operations: dict[str, Any] = {}
    for service in services:
        _operations(service, brokers, channels, operations)
    return {
        "asyncapi": VERSION,
        "info": {
            "title": title,
            "version": version,
            "description": "Generated by `tidings asyncapi` from the services' event registries.",
        },
        "defaultContentType": "application/json",
        "servers": _servers(brokers),
        "channels": channels,
        "operations": operations,
        "components": {"messages": messages, "schemas": definitions.get("$defs", {})},
    }


def _servers(brokers: Brokers) -> dict[str, Any]:
    return {
        "rabbitmq": {
            "host": brokers.amqp_host,
            "pathname": brokers.vhost,
            "protocol": "amqp",
            "protocolVersion": "0.9.1",
            "description": "RabbitMQ: `amqp://user:pass@host:port/vhost`. Content type: the `content-type` property.",
        },
        "kafka": {
            "host": brokers.kafka_host,
            "protocol": "kafka",
            "description": "Kafka: `kafka://host:port`. Content type: the `content-type` record header.",
        },
    }


def _exchange_binding(exchange: str, vhost: str) -> dict[str, Any]:
    return {
        "is": "routingKey",
        "exchange": {"name": exchange, "type": "topic", "durable": True, "autoDelete": False, "vhost": vhost},
        "bindingVersion": _AMQP_BINDING,
    }


def _message(cls: type[Event], broker: str, prefix: str, payload: dict[str, Any], source: str) -> dict[str, Any]:
    message: dict[str, Any] = {
        "name": cls.__name__,
        "title": f"{cls.event_type} v{cls.event_version} on {'RabbitMQ' if broker == 'amqp' else 'Kafka'}",
        "summary": (cls.__doc__ or "").strip().split("\n\n")[0],
        "contentType": "application/json",
        "headers": headers(prefix, content_type_header=broker == "kafka"),
        "payload": payload,
        "correlationId": {"location": f"$message.header#/{prefix}correlationid"},
    }
    if broker == "kafka":
        message["bindings"] = {
            "kafka": {
                "key": {"type": "string", "description": "The partition key (also `ce_partitionkey`)."},
                "bindingVersion": _KAFKA_BINDING,
            }
        }
    else:
        message["bindings"] = {"amqp": {"messageType": cls.event_type, "bindingVersion": _AMQP_BINDING}}
    example = _example(cls, prefix, source, content_type_header=broker == "kafka")
    if example is not None:
        message["examples"] = [example]
    return message


def _example(cls: type[Event], prefix: str, source: str, *, content_type_header: bool) -> dict[str, Any] | None:
    """One message as `to_binary` writes it, its data made from the model's schema (None if the
    schema alone cannot make a valid instance)."""
    try:
        event = cls.model_validate(example_of(cls.model_json_schema(mode="validation")))
    except ValidationError:
        return None
    envelope = Envelope.wrap(event, source=source).with_changes(
        id="0193a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5b",
        correlationid="0193a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5b",
        time=datetime(2026, 1, 1, tzinfo=UTC),
    )
    written, _ = to_binary(envelope, prefix)
    if not content_type_header:
        written.pop("content-type")  # on AMQP it is the message's property
    return {
        "name": "example",
        "summary": f"A {cls.__name__} as published",
        "headers": written,
        "payload": event.model_dump(mode="json"),
    }


def _operations(service: Service, brokers: Brokers, channels: dict[str, Any], operations: dict[str, Any]) -> None:
    """A service's send operations (to the exchange with a routing key; to the topic) and its
    receive operations (from its group's queue; from the topic as its consumer group)."""
    name = service.name
    for event_type in service.published_types:
        message = key(next(iter(channels[key(f"amqp.{event_type}")]["messages"])))
        operations[key(f"{name}.send.{event_type}.amqp")] = {
            "action": "send",
            "channel": {"$ref": f"#/channels/{key(f'amqp.{event_type}')}"},
            "messages": [{"$ref": f"#/channels/{key(f'amqp.{event_type}')}/messages/{message}"}],
            "bindings": {"amqp": {"deliveryMode": 2, "mandatory": False, "bindingVersion": _AMQP_BINDING}},
            "tags": [{"name": name}],
        }
        operations[key(f"{name}.send.{event_type}.kafka")] = {
            "action": "send",
            "channel": {"$ref": "#/channels/kafka.events"},
            "messages": [{"$ref": f"#/channels/kafka.events/messages/{message}"}],
            "tags": [{"name": name}],
        }
    if not service.handled_types:
        return
    queue = f"{brokers.namespace}:{service.group}"
    channel = key(f"amqp.queue.{service.group}")
    received = {key(next(iter(channels[key(f"amqp.{t}")]["messages"]))): t for t in sorted(service.handled_types)}
    channels[channel] = {
        "address": queue,
        "title": f"the queue of group {service.group}",
        "description": f"Bound to `{brokers.namespace}.events` with routing keys {', '.join(received.values())}.",
        "servers": [{"$ref": "#/servers/rabbitmq"}],
        "messages": {m: {"$ref": f"#/components/messages/{m}.amqp"} for m in received},
        "bindings": {
            "amqp": {
                "is": "queue",
                "queue": {
                    "name": queue,
                    "durable": True,
                    "exclusive": False,
                    "autoDelete": False,
                    "vhost": brokers.vhost,
                },
                "bindingVersion": _AMQP_BINDING,
            }
        },
    }
    operations[key(f"{name}.receive.amqp")] = {
        "action": "receive",
        "channel": {"$ref": f"#/channels/{channel}"},
        "messages": [{"$ref": f"#/channels/{channel}/messages/{m}"} for m in received],
        "bindings": {"amqp": {"ack": True, "bindingVersion": _AMQP_BINDING}},
        "tags": [{"name": name}],
    }
    operations[key(f"{name}.receive.kafka")] = {
        "action": "receive",
        "channel": {"$ref": "#/channels/kafka.events"},
        "messages": [{"$ref": f"#/channels/kafka.events/messages/{m}"} for m in received],
        "bindings": {
            "kafka": {
                "groupId": {"type": "string", "enum": [f"{brokers.kafka_prefix}{service.group}"]},
                "bindingVersion": _KAFKA_BINDING,
            }
        },
        "tags": [{"name": name}],
    }
