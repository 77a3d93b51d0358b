"""The AsyncAPI document: every reference resolves, each service's operations match its
handlers and declarations, and payloads are the events' own JSON Schemas."""

from __future__ import annotations

import re
from decimal import Decimal
from typing import Any

from pydantic import BaseModel

from tidings.asyncapi import AMQP_PREFIX, KAFKA_PREFIX, document
from tidings.context import Context
from tidings.events import Event
from tidings.service import Service


class Line(BaseModel):
    sku: str
    price: Decimal


class Placed(Event, type="test.api.order.placed", version=2):
    """An order was placed."""

    order_id: str
    lines: list[Line]


class Reserved(Event, type="test.api.stock.reserved", version=1):
    order_id: str


def services() -> list[Service]:
    orders = Service("orders", broker="memory://asyncapi")
    orders.publishes(Placed)
    inventory = Service("inventory", broker="memory://asyncapi")

    @inventory.on(Placed)
    async def reserve(event: Placed, ctx: Context) -> None: ...

    inventory.publishes(Reserved)
    return [orders, inventory]


def resolve(root: dict[str, Any], reference: str) -> Any:
    assert reference.startswith("#/"), reference
    node: Any = root
    for part in reference[2:].split("/"):
        node = node[part]
    return node


def references(node: Any) -> list[str]:
    if isinstance(node, dict):
        own = [node["$ref"]] if "$ref" in node else []
        return own + [ref for value in node.values() for ref in references(value)]
    if isinstance(node, list):
        return [ref for value in node for ref in references(value)]
    return []


def test_servers_channels_messages_and_operations_per_broker() -> None:
    spec = document(services(), title="Test", version="2.1.0")
    assert spec["asyncapi"] == "3.1.0"
    assert spec["info"]["version"] == "2.1.0"
    servers = spec["servers"]
    assert (servers["rabbitmq"]["protocol"], servers["rabbitmq"]["protocolVersion"]) == ("amqp", "0.9.1")
    assert servers["kafka"]["protocol"] == "kafka"
    assert set(spec["channels"]) == {
        "amqp.test.api.order.placed",
        "amqp.test.api.stock.reserved",
        "amqp.queue.inventory",
        "kafka.events",
    }
    routed = spec["channels"]["amqp.test.api.order.placed"]
    assert routed["address"] == "test.api.order.placed"
    assert routed["bindings"]["amqp"]["is"] == "routingKey"
    assert routed["bindings"]["amqp"]["exchange"]["name"] == "tidings.events"
    queue = spec["channels"]["amqp.queue.inventory"]
    assert queue["address"] == "tidings:inventory"
    assert queue["bindings"]["amqp"]["queue"]["name"] == "tidings:inventory"
    assert spec["channels"]["kafka.events"]["bindings"]["kafka"]["topic"] == "events"
    actions = {
        name: (operation["action"], operation["tags"][0]["name"]) for name, operation in spec["operations"].items()
    }
    assert actions == {
        "orders.send.test.api.order.placed.amqp": ("send", "orders"),
        "orders.send.test.api.order.placed.kafka": ("send", "orders"),
        "inventory.receive.amqp": ("receive", "inventory"),
        "inventory.receive.kafka": ("receive", "inventory"),
        "inventory.send.test.api.stock.reserved.amqp": ("send", "inventory"),
        "inventory.send.test.api.stock.reserved.kafka": ("send", "inventory"),
    }
    kafka_group = spec["operations"]["inventory.receive.kafka"]["bindings"]["kafka"]["groupId"]
    assert kafka_group["enum"] == ["inventory"]
    amqp = spec["components"]["messages"]["test.api.order.placed.v2.amqp"]
    kafka = spec["components"]["messages"]["test.api.order.placed.v2.kafka"]
    assert amqp["name"] == kafka["name"] == "Placed"
    assert amqp["summary"] == "An order was placed."
    assert amqp["headers"]["required"] == [
        "cloudEvents_id",
        "cloudEvents_source",
        "cloudEvents_type",
        "cloudEvents_specversion",
    ]
    assert "content-type" not in amqp["headers"]["properties"], "on AMQP it is a property, not a header"
    assert kafka["headers"]["required"] == ["ce_id", "ce_source", "ce_type", "ce_specversion"]
    assert "content-type" in kafka["headers"]["properties"]
    assert kafka["correlationId"]["location"] == "$message.header#/ce_correlationid"
    assert kafka["bindings"]["kafka"]["key"]["type"] == "string"


def test_examples_come_from_the_models_with_the_headers_to_binary_writes() -> None:
    spec = document(services(), title="Test")
    for name, message in spec["components"]["messages"].items():
        (example,) = message["examples"]
        declared = set(message["headers"]["properties"])
        assert set(example["headers"]) <= declared, name
        assert set(message["headers"]["required"]) <= set(example["headers"]), name
    example = spec["components"]["messages"]["test.api.order.placed.v2.kafka"]["examples"][0]
    assert Placed.model_validate(example["payload"]).lines[0].price >= 0
    assert example["headers"]["ce_type"] == "test.api.order.placed"
    assert example["headers"]["ce_source"] == "urn:tidings:orders", "what Context.publish writes"


def test_the_header_prefixes_are_the_transports() -> None:
    from tidings.transport.kafka.config import CE_PREFIX
    from tidings.transport.rabbitmq.codec import PREFIX

    assert (AMQP_PREFIX, KAFKA_PREFIX) == (PREFIX, CE_PREFIX)


def test_every_reference_resolves_and_keys_are_valid() -> None:
    spec = document(services(), title="Test")
    found = references(spec)
    assert found, "the document refers to its components"
    for reference in found:
        assert resolve(spec, reference) is not None
    valid = re.compile(r"^[A-Za-z0-9.\-_]+$")
    for section in (
        spec["channels"],
        spec["operations"],
        spec["components"]["messages"],
        spec["components"]["schemas"],
    ):
        assert all(valid.match(name) for name in section), list(section)


def test_payload_is_the_wire_schema_of_the_event() -> None:
    spec = document(services(), title="Test")
    payload = resolve(spec, spec["components"]["messages"]["test.api.order.placed.v2.kafka"]["payload"]["$ref"])
    assert payload["required"] == ["order_id", "lines"]
    line = resolve(spec, payload["properties"]["lines"]["items"]["$ref"])
    assert line["properties"]["price"]["type"] == "string", "a Decimal travels as a string"
