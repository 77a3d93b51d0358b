"""RabbitMQ transport on aio-pika: the production default.

`amqp://user:pass@host:5672/vhost` (`amqps://` with `cafile`, `certfile`, `keyfile`,
`no_verify_ssl` in the query). Options, all in the query: `queue_type=quorum|classic`,
`ordering=none|key`, `namespace=tidings`, `publish_timeout=30`, `reconnect_max=5`,
`delivery_limit=N`, `management_url=http://host:15672`, and one legacy mapping with
`legacy_queue=order_events&legacy_types=OrderCreated:shop.order.created` (see `LegacyMapping`).

What it promises, on top of the port's contract (`tidings.transport.base`):

- `publish` returns once every message is confirmed by the broker, persistent, in durable
  queues; an event no group subscribes to is confirmed and dropped (pub/sub, no `mandatory`).
- Each group is a durable quorum queue bound to the events exchange by event type; consumers
  of a group compete for its messages. Topology is declared idempotently at `subscribe`, and
  again after every reconnect.
- The connection comes back by itself (backoff up to `reconnect_max`); subscriptions consume
  again, and deliveries taken over the lost connection are redelivered by the broker.
- Order: a group's queue is FIFO, but competing consumers, prefetch and retries reorder what
  handlers see, so `per_key_ordering` is off. `ordering=key` opens a `KeyOrderedRabbitTransport`:
  one active consumer per group (single-active-consumer queues) and per-key hold-back, which
  does promise per-key order, at the price of one working consumer per group.

The topology, retry, dead-letter and interop designs are in `docs/rabbitmq.md` and ADR 0004.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from typing import ClassVar, Self, cast

try:
    import aio_pika  # noqa: F401
except ImportError as error:  # pragma: no cover - depends on the installed extras
    raise ImportError("the RabbitMQ transport needs aio-pika: pip install 'tidings[rabbitmq]'") from error

from tidings.envelope import Envelope
from tidings.errors import ConfigurationError, TransportError
from tidings.transport._rabbitmq_admin import Admin
from tidings.transport._rabbitmq_codec import encode
from tidings.transport._rabbitmq_config import LegacyMapping, RabbitConfig, check_group
from tidings.transport._rabbitmq_consume import RabbitSubscription
from tidings.transport._rabbitmq_delivery import RabbitDelivery
from tidings.transport._rabbitmq_link import BROKER_ERRORS, Link, Outgoing
from tidings.transport._rabbitmq_topology import Declarer, events_exchange
from tidings.transport.base import Capabilities, DeadLetter, Subscription, Transport

__all__ = [
    "KeyOrderedRabbitTransport",
    "LegacyMapping",
    "RabbitConfig",
    "RabbitDelivery",
    "RabbitSubscription",
    "RabbitTransport",
]


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
        await self._declarer.group(group, types, [mapping.queue for mapping in legacy])
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

    async def close(self) -> None:
        """Close the subscriptions (their unsettled deliveries return to the queues) and the connection."""
        for subscription in self._subscriptions:
            await subscription.close()
        self._subscriptions.clear()
        await self._link.close()


class KeyOrderedRabbitTransport(RabbitTransport):
    """`ordering=key`: per-key order, one active consumer per group (the others stand by)."""

    capabilities: ClassVar[Capabilities] = Capabilities(durable=True, multi_process=True, per_key_ordering=True)
