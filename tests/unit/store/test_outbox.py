"""The outbox row codec (no I/O): a stored envelope comes back exactly."""

from __future__ import annotations

import json
from datetime import UTC, datetime

from tidings.envelope import Envelope
from tidings.events import Event
from tidings.store.outbox import HEADER_PREFIX, decode, encode


class Shipped(Event, type="test.store.shipped", version=3):
    order_id: str
    note: str

    def subject(self) -> str:
        return self.order_id


def test_a_wrapped_event_round_trips_exactly() -> None:
    envelope = Envelope.wrap(
        Shipped(order_id="o-1", note="zürich ✓"), source="shipping", causationid="c-1", traceparent="00-ab-cd-01"
    )
    headers, body = encode(envelope)
    assert decode(headers, body) == envelope


def test_every_attribute_and_extension_round_trips() -> None:
    envelope = Envelope(
        id="e-1",
        source="orders",
        type="x.y",
        data=b'{"a":[1,2]}',
        time=datetime(2025, 1, 2, 3, 4, 5, 678000, tzinfo=UTC),
        subject="s",
        datacontenttype="application/json; charset=utf-8",
        dataschema="urn:tidings:x.y:2",
        correlationid="corr",
        causationid="cause",
        traceparent="00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
        partitionkey="k",
        extensions={"tenant": "acme"},
    )
    headers, body = encode(envelope)
    assert decode(headers, body) == envelope
    assert body == envelope.data
    assert json.loads(headers)[HEADER_PREFIX + "tenant"] == "acme"
