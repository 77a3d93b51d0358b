"""`RabbitTransport` and `KeyOrderedRabbitTransport`: the port over RabbitMQ (see the package docstring)."""

from __future__ import annotations

from collections.abc import Collection, Sequence
from typing import ClassVar, Self, cast

from tidings.envelope import Envelope
from tidings.errors import ConfigurationError, TransportError
from tidings.transport.base import Capabilities, DeadLetter, Subscription, Transport
from tidings.transport.rabbitmq.admin import Admin
from tidings.transport.rabbitmq.codec import encode
from tidings.transport.rabbitmq.config import LegacyMapping, RabbitConfig, check_group
from tidings.transport.rabbitmq.consumer import RabbitSubscription
from tidings.transport.rabbitmq.link import BROKER_ERRORS, Link, Outgoing
from tidings.transport.rabbitmq.topology import Declarer, events_exchange


class RabbitTransport(Transport):
    """A connection to one RabbitMQ vhost (see the module docstring). Open it with `open(url)`."""

    capabilities: ClassVar[Capabilities] = Capabilities(durable=True, multi_process=True, per_key_ordering=False)

    def __init__(self, config: RabbitConfig) -> None:
        if (config.ordering == "key") != isinstance(self, KeyOrderedRabbitTransport):
            raise ConfigurationError("ordering=key needs KeyOrderedRabbitTransport; RabbitTransport.open picks it")
        self.config = config
        self._link = Link(config)
        self._declarer = Declarer(self._link)
        self._admin = Admin(self._link)
        self._exchange = events_exchange(config)
        self._subscriptions: list[RabbitSubscription] = []
        self._link.add_hook(self._declarer.redeclare)

    @classmethod
    async def open(cls, url: str, *, legacy: Sequence[LegacyMapping] = ()) -> Self:
        """Connect to the broker `url` names and declare the events exchange; `legacy` adds
        mappings to those the URL's `legacy_*` options define."""
        config = RabbitConfig.from_url(url, legacy=tuple(legacy))
        kind: type[RabbitTransport] = cls
        if config.ordering == "key" and not issubclass(cls, KeyOrderedRabbitTransport):
            kind = KeyOrderedRabbitTransport
        transport = kind(config)
        await transport._link.start()
        return cast(Self, transport)

    async def publish(self, envelopes: Sequence[Envelope]) -> None:
        """Return once the broker confirmed every envelope; raise `PublishError` otherwise."""
        messages: list[Outgoing] = []
        for envelope in envelopes:
            properties, body = encode(envelope)
            messages.append((self._exchange, envelope.type, properties, body))
        await self._link.send(messages)

    async def subscribe(self, group: str, types: Collection[str], *, prefetch: int = 64) -> Subscription:
        """Declare the group's queues and bindings for `types`, then consume with `prefetch`
        unacked deliveries at most (plus the legacy queues mapped to the group, if any)."""
        check_group(group)
        legacy = [mapping for mapping in self.config.legacy if mapping.consumed_by(group)]
        await self._declarer.group(group, types, legacy)
        subscription = RabbitSubscription(self._link, self._declarer, group, prefetch=prefetch, legacy=legacy)
        try:
            await subscription.start()
        except BROKER_ERRORS as error:
            await subscription.close()
            raise TransportError(f"consuming group {group!r} failed: {error!r}") from error
        self._subscriptions = [*(s for s in self._subscriptions if not s.closed), subscription]
        return subscription

    async def dead_letters(self, group: str, *, limit: int = 100) -> list[DeadLetter]:
        return await self._admin.dead_letters(check_group(group), limit)

    async def replay(self, group: str, ids: Collection[str] | None = None) -> int:
        return await self._admin.replay(check_group(group), ids)

    async def purge(self, group: str, ids: Collection[str] | None = None) -> int:
        return await self._admin.purge(check_group(group), ids)

    async def backlog(self) -> dict[str, int]:
        """Ready + unacked messages of every group's queue and delay queues in this namespace,
        from the management API (as fresh as the broker's statistics, 5 s by default)."""
        return await self._admin.backlog()

    async def ping(self) -> None:
        """Raise unless the AMQP connection is open (the backlog comes from the management API,
        which may answer while AMQP does not)."""
        if not self._link.up:
            raise ConnectionError("the AMQP connection is down; reconnecting")

    async def close(self) -> None:
        """Close the subscriptions (their unsettled deliveries return to the queues) and the connection."""
        for subscription in self._subscriptions:
            await subscription.close()
        self._subscriptions.clear()
        await self._link.close()


class KeyOrderedRabbitTransport(RabbitTransport):
    """`ordering=key`: per-key order, one active consumer per group (the others stand by)."""

    capabilities: ClassVar[Capabilities] = Capabilities(durable=True, multi_process=True, per_key_ordering=True)
