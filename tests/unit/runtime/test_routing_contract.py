"""`Routes`: one handler per event type, and what decoding a delivery decides: the typed event, a
dead letter for a type nobody here routes, or "another member may handle it" during a rolling
deploy. Pure logic: the delivery is a stand-in that only holds an envelope."""

from __future__ import annotations

import dataclasses
import re
from typing import Any, cast

import pytest

from tidings.context import Context
from tidings.envelope import Envelope
from tidings.errors import ConfigurationError, Malformation, MalformedMessage
from tidings.events import Event, Registry
from tidings.runtime.routing import HandledElsewhere, Routes
from tidings.transport.base import Delivery


class Shipped(Event, type="test.routing.shipped", version=2):
    order_id: str


class Billed(Event, type="test.routing.billed", version=1):
    order_id: str


class Held:
    """A delivery reduced to what `Routes.decode` reads from it."""

    def __init__(self, envelope: Envelope) -> None:
        self._envelope = envelope

    def envelope(self) -> Envelope:
        return self._envelope


def held(envelope: Envelope) -> Delivery:
    return cast(Delivery, Held(envelope))


async def on_shipped(event: Any, ctx: Context) -> None: ...


async def on_billed(event: Any, ctx: Context) -> None: ...


def routes() -> Routes:
    table = Routes("orders", Registry())
    table.add(Shipped, on_shipped)
    return table


def test_a_routed_type_has_its_handler_and_its_class_in_the_registry() -> None:
    table = Routes("orders", Registry())
    assert not table
    table.add(Shipped, on_shipped)
    table.add(Billed, on_billed)
    assert table
    assert table.types == ["test.routing.billed", "test.routing.shipped"]
    assert table.handler("test.routing.shipped") is on_shipped
    assert table.handler("test.routing.billed") is on_billed
    assert table.registry.event_class("test.routing.billed") is Billed


def test_a_second_handler_for_one_type_is_refused_naming_the_service_and_type() -> None:
    table = routes()
    with pytest.raises(ConfigurationError, match=re.escape("orders already handles 'test.routing.shipped'")):
        table.add(Shipped, on_billed)
    assert table.handler("test.routing.shipped") is on_shipped


def test_a_routed_delivery_decodes_into_its_envelope_and_typed_event() -> None:
    envelope = Envelope.wrap(Shipped(order_id="o-1"), source="test")
    decoded, event = routes().decode(held(envelope), members_share_types=False)
    assert decoded == envelope
    assert event == Shipped(order_id="o-1")


@pytest.mark.parametrize("shared", [False, True])
def test_an_unrouted_type_is_malformed_unless_another_member_may_route_it(shared: bool) -> None:
    """Where every member receives all of the group's types, an unknown one may be a newer
    member's (a rolling deploy): it goes back for them. Otherwise it can never be handled."""
    envelope = Envelope.wrap(Billed(order_id="o-1"), source="test")
    expected = HandledElsewhere if shared else MalformedMessage
    unrouted = re.escape("service 'orders' has no handler for 'test.routing.billed'")
    with pytest.raises(expected, match=unrouted) as raised:
        routes().decode(held(envelope), members_share_types=shared)
    if not shared:
        assert cast(MalformedMessage, raised.value).args[0].startswith(Malformation.UNKNOWN_TYPE.value)


@pytest.mark.parametrize("shared", [False, True])
def test_a_version_newer_than_known_goes_to_another_member(shared: bool) -> None:
    envelope = Envelope.wrap(Shipped(order_id="o-1"), source="test")
    newer = dataclasses.replace(envelope, dataschema="urn:tidings:test.routing.shipped:3")
    assert newer.version == 3
    with pytest.raises(HandledElsewhere, match="version 3 is newer than the known version 2"):
        routes().decode(held(newer), members_share_types=shared)


def test_the_known_version_is_decoded() -> None:
    envelope = Envelope.wrap(Shipped(order_id="o-1"), source="test")
    assert envelope.version == 2
    _, event = routes().decode(held(envelope), members_share_types=True)
    assert event == Shipped(order_id="o-1")
