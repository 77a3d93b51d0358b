"""Signed events on the real RabbitMQ: what a verifying consumer believes, and what it dead-letters.

The producer `orders` signs with its Ed25519 key through its outbox; the consumer `shipping`
holds the public halves. Forgeries are published raw (aio-pika) to the events exchange, the way
any process that can reach the broker could.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from pathlib import Path

import aio_pika
import pytest

from tests.integration.rabbitmq_support import amqp_url, fresh_vhost
from tidings.context import Context
from tidings.envelope import Envelope, to_binary
from tidings.events import Event
from tidings.security import Key, KeyRing, Signer, Signing
from tidings.security.canonical import KEY_ATTRIBUTE, SIGNATURE_ATTRIBUTE, signed_bytes
from tidings.security.keys import b64encode
from tidings.service import Service
from tidings.transport.rabbitmq.codec import PREFIX

pytestmark = pytest.mark.rabbitmq


class Confirmed(Event, type="test.signed.confirmed", version=1):
    order_id: str


async def _until(condition: object, what: str, within: float = 20.0) -> None:
    deadline = asyncio.get_running_loop().time() + within
    while not condition():  # type: ignore[operator]
        assert asyncio.get_running_loop().time() < deadline, what
        await asyncio.sleep(0.05)


def _consumer(url: str, ring: KeyRing, handled: list[str]) -> Service:
    shipping = Service("shipping", broker=url, signing=Signing(ring=ring))

    @shipping.on(Confirmed)
    async def ship(event: Confirmed, ctx: Context) -> None:
        handled.append(event.order_id)

    return shipping


async def _publish_raw(url: str, envelope: Envelope) -> None:
    headers, body = to_binary(envelope, PREFIX)
    content_type = headers.pop("content-type")
    async with await aio_pika.connect(url) as connection:
        channel = await connection.channel()
        exchange = await channel.get_exchange("tidings.events")
        await exchange.publish(aio_pika.Message(body, headers=headers, content_type=content_type), envelope.type)


def _signed_by(key: Key, envelope: Envelope) -> Envelope:
    """`envelope` signed by `key` whatever its source (what a thief of `key` could do)."""
    signature = b64encode(key.sign(signed_bytes(envelope)))
    return envelope.with_changes(extensions={KEY_ATTRIBUTE: key.id, SIGNATURE_ATTRIBUTE: signature})


async def test_forged_tampered_unknown_and_foreign_key_events_are_dead_lettered(tmp_path: Path) -> None:
    orders_key = Key.generate("orders-1", "orders", "ed25519")
    payments_key = Key.generate("payments-1", "payments", "hmac-sha256")
    unknown_key = Key.generate("orders-9", "orders", "ed25519")
    expired_key = Key("orders-0", "orders", "ed25519", secret=Key.generate("x", "orders", "ed25519").secret)
    ring = KeyRing(
        [
            orders_key.public_only(),
            payments_key,
            Key(
                expired_key.id, "orders", "ed25519", public=expired_key.public, expires=datetime.now(UTC) - timedelta(1)
            ),
        ]
    )
    handled: list[str] = []
    async with fresh_vhost("tidings-signed") as vhost:
        url = amqp_url(vhost)
        orders = Service(
            "orders", broker=url, database=f"sqlite:///{tmp_path / 'orders.db'}", signing=Signing(orders_key)
        )
        orders.publishes(Confirmed)
        shipping = _consumer(url, ring, handled)
        async with shipping, orders:
            await orders.publish(Confirmed(order_id="genuine-1"))
            await _until(lambda: handled == ["genuine-1"], f"the genuine event is handled: {handled}")

            def event(order_id: str) -> Envelope:
                return Envelope.wrap(Confirmed(order_id=order_id), source="orders")

            tampered = Signer(orders_key).sign(event("tampered"))
            forgeries = {
                "forged": event("forged"),
                "tampered": tampered.with_changes(data=b'{"order_id":"tampered-to-free"}'),
                "unknown": Signer(unknown_key).sign(event("unknown")),
                "foreign": _signed_by(payments_key, event("foreign")),
                "expired": Signer(expired_key).sign(event("expired")),
            }
            for envelope in forgeries.values():
                await _publish_raw(url, envelope)
            await orders.publish(Confirmed(order_id="genuine-2"))
            await _until(
                lambda: shipping.stats["dead_lettered"] == len(forgeries) and "genuine-2" in handled,
                f"every forgery dead-lettered: {shipping.stats}",
            )
            letters = {letter.event_id: letter.reason for letter in await shipping.transport.dead_letters("shipping")}
        assert handled == ["genuine-1", "genuine-2"]
        reasons = {name: letters[envelope.id] for name, envelope in forgeries.items()}
        assert reasons["forged"] == "unsigned: event from source 'orders' carries no signature"
        assert reasons["tampered"].startswith("bad-signature: signature by key 'orders-1' does not match")
        assert reasons["unknown"] == "unknown-key: key id 'orders-9' is not in this service's key ring"
        assert reasons["foreign"] == (
            "wrong-source: key 'payments-1' signs for source 'payments', the event claims 'orders'"
        )
        assert reasons["expired"].startswith("expired-key: key 'orders-0' expired at ")
        assert all("free" not in reason for reason in reasons.values())  # reasons never quote the data


async def test_rotation_with_two_valid_keys_keeps_every_event_flowing(tmp_path: Path) -> None:
    """Events signed with the old key wait in the outbox and on the broker while the producer
    switches to the new key; a consumer holding both handles all of them, none dead-lettered."""
    old, new = (
        Key.generate("orders-2026-11", "orders", "hmac-sha256"),
        Key.generate("orders-2026-12", "orders", "hmac-sha256"),
    )
    handled: list[str] = []
    async with fresh_vhost("tidings-rotation") as vhost:
        url = amqp_url(vhost)
        database = f"sqlite:///{tmp_path / 'orders.db'}"
        shipping = _consumer(url, KeyRing([old, new]), handled)
        async with shipping:
            pass  # declares the group, so events published while it is stopped wait for it
        for key, batch in ((old, "old"), (new, "new")):
            orders = Service("orders", broker=url, database=database, signing=Signing(key))
            async with orders:
                await orders.publish(*(Confirmed(order_id=f"{batch}-{n}") for n in range(20)))
                relay = orders.relay
                assert relay is not None
                await _until(lambda relay=relay: relay.stats["published"] >= 20, f"the batch is relayed: {relay.stats}")
        shipping = _consumer(url, KeyRing([old, new]), handled)
        async with shipping:
            await _until(lambda: len(handled) == 40, f"all 40 events handled: {len(handled)}")
            assert shipping.stats["dead_lettered"] == 0
            assert await shipping.transport.dead_letters("shipping") == []
    assert sorted(handled) == sorted([f"old-{n}" for n in range(20)] + [f"new-{n}" for n in range(20)])
