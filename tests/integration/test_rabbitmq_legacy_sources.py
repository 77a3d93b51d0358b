"""Legacy sources on the real RabbitMQ: a translation in Python (a function or an event class)
turns plain JSON into the service's events, ignores it or refuses it, the same for messages that
waited in the queue before the service started as for those that arrive while it runs; refused
messages are dead letters that keep their origin, and replay returns them there."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import aio_pika
import pytest

from tests.conformance.harness import until
from tests.integration.legacy_billing import PaymentDue, billing_service, to_payment
from tests.integration.rabbitmq_support import amqp_url
from tidings.envelope import Envelope
from tidings.errors import ConfigurationError
from tidings.legacy import Binding, LegacySource, Translation
from tidings.service import Service
from tidings.transport import connect

pytestmark = pytest.mark.rabbitmq


async def put(vhost: str, *bodies: dict[str, Any], exchange: str = "", routing_key: str = "billing") -> None:
    """Publish plain JSON the way a legacy publisher does (durable queue, default exchange)."""
    async with await aio_pika.connect(amqp_url(vhost)) as connection:
        channel = await connection.channel()
        if not exchange:
            await channel.declare_queue("billing", durable=True)
        target = await channel.get_exchange(exchange) if exchange else channel.default_exchange
        for body in bodies:
            await target.publish(aio_pika.Message(json.dumps(body).encode()), routing_key)


def billing(vhost: str, source: LegacySource) -> tuple[Service, list[tuple[PaymentDue, Envelope]]]:
    return billing_service(amqp_url(vhost), source)


async def test_messages_waiting_before_the_service_starts_are_translated(vhost: str) -> None:
    """Regression: waiting messages arrive right behind consume-ok; they were taken for messages
    of the group's own queue and dead-lettered as "not a CloudEvents message"."""
    source = LegacySource("billing", translate=to_payment, source="urn:legacy:billing")
    async with await connect(amqp_url(vhost), legacy=[source]) as transport:  # declare the queues once
        await (await transport.subscribe("billing", [PaymentDue.event_type])).close()
    await put(vhost, *({"kind": "invoice", "invoice_no": n, "total": "12.50"} for n in range(5)))
    service, handled = billing(vhost, source)
    async with service:
        await until(lambda: asyncio.sleep(0, len(handled)), lambda count: count == 5)
        await put(vhost, {"kind": "invoice", "invoice_no": 99, "total": "1.00"})  # and one while it runs
        await until(lambda: asyncio.sleep(0, len(handled)), lambda count: count == 6)
        assert await service.transport.dead_letters("billing") == []
    assert sorted(event.invoice for event, _ in handled) == sorted([*(f"inv-{n}" for n in range(5)), "inv-99"])
    event, envelope = handled[0]
    assert event.cents == 1250
    assert (envelope.type, envelope.source, envelope.subject) == (PaymentDue.event_type, "urn:legacy:billing", "inv-0")


async def test_a_refused_message_keeps_its_origin_and_replay_translates_it_again(vhost: str) -> None:
    source = LegacySource("billing", translate=to_payment)
    async with await connect(amqp_url(vhost), legacy=[source]) as transport:
        await (await transport.subscribe("billing", [PaymentDue.event_type])).close()
    await put(vhost, {"kind": "credit-note", "invoice_no": 1, "total": "3.00"}, {"kind": "heartbeat"})
    service, handled = billing(vhost, source)
    async with service:
        (letter,) = await until(lambda: service.transport.dead_letters("billing"), lambda found: len(found) == 1)
    assert "legacy message refused: kind 'credit-note' is not an invoice" in letter.reason
    assert "the legacy source 'billing' translates with to_payment" in letter.reason
    assert json.loads(letter.body)["kind"] == "credit-note"
    assert handled == []  # the heartbeat was ignored: acked, no event, no dead letter

    def fixed(document: Any) -> Translation:  # the fix: credit notes are negative payments
        translated = to_payment({**document, "kind": "invoice"})
        assert isinstance(translated, PaymentDue)
        return translated.model_copy(update={"cents": -translated.cents})

    service, handled = billing(vhost, LegacySource("billing", translate=fixed))
    async with service:
        assert await service.transport.replay("billing", [letter.id]) == 1  # back to `billing`, not the group
        await until(lambda: asyncio.sleep(0, len(handled)), lambda count: count == 1)
        assert await service.transport.dead_letters("billing") == []
    assert handled[0][0] == PaymentDue(invoice="inv-1", cents=-300)


async def test_an_event_class_translates_and_its_validation_errors_are_the_reason(vhost: str) -> None:
    source = LegacySource("billing", translate=PaymentDue)
    async with await connect(amqp_url(vhost), legacy=[source]) as transport:
        await (await transport.subscribe("billing", [PaymentDue.event_type])).close()
    await put(vhost, {"invoice": "inv-5", "cents": 500}, {"invoice": "inv-6", "cents": "lots"})
    service, handled = billing(vhost, source)
    async with service:
        (letter,) = await until(lambda: service.transport.dead_letters("billing"), lambda found: len(found) == 1)
        await until(lambda: asyncio.sleep(0, len(handled)), lambda count: count == 1)
    assert handled[0][0] == PaymentDue(invoice="inv-5", cents=500)
    assert "does not match PaymentDue: cents: Input should be a valid integer" in letter.reason


async def test_a_source_bound_to_an_exchange(vhost: str) -> None:
    source = LegacySource("billing", translate=to_payment, bindings=(Binding("erp", "invoices.#"),))
    async with await connect(amqp_url(vhost), legacy=[source]) as transport:
        await (await transport.subscribe("billing", [PaymentDue.event_type])).close()
    await put(vhost, {"kind": "invoice", "invoice_no": 3, "total": "2.00"}, exchange="erp", routing_key="invoices.eu")
    service, handled = billing(vhost, source)
    async with service:
        await until(lambda: asyncio.sleep(0, len(handled)), lambda count: count == 1)
    assert handled[0][0] == PaymentDue(invoice="inv-3", cents=200)


async def test_legacy_sources_on_a_broker_without_them_are_refused_at_connect(tmp_path: Any) -> None:
    with pytest.raises(ConfigurationError, match=r"legacy sources \(billing\) need a RabbitMQ \(amqp://\) or Kafka"):
        await connect(f"sqlite:///{tmp_path}/broker.db", legacy=[LegacySource("billing", translate=to_payment)])
