"""The AsyncAPI document: every reference resolves, each service's operations match its
handlers and declarations, and payloads are the events' own JSON Schemas."""

from __future__ import annotations

import re
from decimal import Decimal
from typing import Any

from pydantic import BaseModel

from tidings.asyncapi import document
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


def test_channels_messages_and_operations() -> None:
    spec = document(services(), title="Test", version="2.1.0")
    assert spec["asyncapi"] == "3.0.0"
    assert spec["info"]["version"] == "2.1.0"
    assert set(spec["channels"]) == {"test.api.order.placed", "test.api.stock.reserved"}
    assert spec["channels"]["test.api.order.placed"]["address"] == "test.api.order.placed"
    actions = {
        name: (operation["action"], operation["tags"][0]["name"]) for name, operation in spec["operations"].items()
    }
    assert actions == {
        "orders.send.test.api.order.placed": ("send", "orders"),
        "inventory.receive.test.api.order.placed": ("receive", "inventory"),
        "inventory.send.test.api.stock.reserved": ("send", "inventory"),
    }
    message = spec["components"]["messages"]["test.api.order.placed.v2"]
    assert message["name"] == "Placed"
    assert message["summary"] == "An order was placed."
    assert message["headers"]["required"] == ["ce_id", "ce_source", "ce_type", "ce_specversion"]


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
    payload = resolve(spec, spec["components"]["messages"]["test.api.order.placed.v2"]["payload"]["$ref"])
    assert payload["required"] == ["order_id", "lines"]
    line = resolve(spec, payload["properties"]["lines"]["items"]["$ref"])
    assert line["properties"]["price"]["type"] == "string", "a Decimal travels as a string"
