"""Kafka, private broker with SCRAM and ACLs: per-service users limited to their own group and
topics, and SASL_SSL with the test's CA."""

from __future__ import annotations

import asyncio
import uuid
from pathlib import Path

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.errors import GroupAuthorizationFailedError, TopicAuthorizationFailedError

from tests.integration.security.pki import Pki
from tests.integration.security.private_kafka import ADMIN, PrivateKafka
from tests.integration.security.test_rabbitmq_security import Placed, _shop
from tidings.envelope import Envelope
from tidings.errors import TransportError
from tidings.security import identities
from tidings.transport.base import connect
from tidings.transport.kafka import identities as kafka_identities
from tidings.transport.kafka.config import KafkaConfig

pytestmark = pytest.mark.kafka


async def test_each_service_may_use_only_its_own_group_and_topics(secure_kafka: PrivateKafka) -> None:
    prefix = f"acl{uuid.uuid4().hex[:6]}."
    orders, shipping, seen = _shop(secure_kafka.admin_url(prefix))
    plan = identities.plan([orders, shipping], prefix=prefix)
    await kafka_identities.apply(secure_kafka.admin_url(prefix), plan)
    by_service = {identity.service: identity for identity in plan}
    for service in (orders, shipping):
        identity = by_service[service.name]
        service.broker_url = secure_kafka.url(identity.user, identity.password, prefix)
    async with orders, shipping:  # each as itself: the whole flow works
        await orders.publish(Placed(order_id="o-1"))
        deadline = asyncio.get_running_loop().time() + 60
        while seen != ["o-1", "shipped o-1"]:
            assert asyncio.get_running_loop().time() < deadline, seen
            await asyncio.sleep(0.05)

    shipping_config = KafkaConfig.from_url(shipping.broker_url)
    options = shipping_config.client_options()
    # another group's offsets
    thief = AIOKafkaConsumer(**options, group_id=f"{prefix}orders", enable_auto_commit=False)
    await thief.start()
    try:
        with pytest.raises(GroupAuthorizationFailedError):
            await thief.committed(TopicPartition(f"{prefix}events", 0))
    finally:
        await thief.stop()
    # a topic it was not given: orders' dead letters, or one of its own invention
    producer = AIOKafkaProducer(**options)
    await producer.start()
    try:
        for topic in (f"{prefix}dlq.orders", f"{prefix}undeclared"):
            with pytest.raises(TopicAuthorizationFailedError):
                await producer.send_and_wait(topic, b"{}")
    finally:
        await producer.stop()
    transport = await connect(shipping.broker_url)
    try:
        with pytest.raises(TransportError, match=r"cannot create Kafka topic .*dlq\.orders.*Authorization failed"):
            await transport.subscribe("orders", [Placed.event_type])
    finally:
        await transport.close()


async def test_sasl_ssl_connects_with_the_right_ca_and_refuses_a_wrong_host_or_unknown_ca(
    secure_kafka: PrivateKafka, pki: Pki
) -> None:
    prefix = f"tls{uuid.uuid4().hex[:6]}."
    user, password = ADMIN
    transport = await connect(secure_kafka.url(user, password, prefix, tls=True))
    try:
        await transport.publish([Envelope.wrap(Placed(order_id="tls"), source="orders")])
    finally:
        await transport.close()
    cases: list[tuple[str, Path, str]] = [
        ("127.0.0.1", pki.ca, "IP address mismatch"),
        ("localhost", pki.other_ca, "verify failed"),
    ]
    for host, ca, why in cases:
        with pytest.raises(TransportError) as refused:
            await connect(secure_kafka.url(user, password, prefix, tls=True, host=host, ca=ca))
        message = str(refused.value)
        assert why in message, message
        assert "\n" not in message
        assert password not in message
