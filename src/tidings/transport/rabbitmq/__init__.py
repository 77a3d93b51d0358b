"""RabbitMQ transport on aio-pika: the production default.

`amqp://user:pass@host:5672/vhost` (`amqps://` with `cafile`, `certfile`, `keyfile`,
`no_verify_ssl` in the query). Options, all in the query: `queue_type=quorum|classic`,
`ordering=none|key`, `namespace=tidings`, `publish_timeout=30`, `reconnect_max=1`,
`connect_timeout=60`, `delivery_limit=N`, `management_url=http://host:15672`, and one legacy mapping with
`legacy_queue=order_events&legacy_types=OrderCreated:shop.order.created`; legacy sources with a
Python translation are given to `open(url, legacy=[...])` (`LegacyMapping` = `tidings.legacy.LegacySource`).

What it promises, on top of the port's contract (`tidings.transport.base`):

- `publish` returns once every message is confirmed by the broker, persistent, in durable
  queues; an event no group subscribes to is confirmed and dropped (pub/sub, no `mandatory`).
- Each group is a durable quorum queue bound to the events exchange by event type; consumers
  of a group compete for its messages. Topology is declared idempotently at `subscribe`, and
  again after every reconnect.
- `open` waits for a broker that is not reachable yet (backoff, up to `connect_timeout`).
- The connection comes back by itself (backoff with jitter up to `reconnect_max`); publishers
  waiting meanwhile are woken when it is up, subscriptions consume again, and deliveries taken
  over the lost connection are redelivered by the broker.
- Order: a group's queue is FIFO, but competing consumers, prefetch and retries reorder what
  handlers see, so `per_key_ordering` is off. `ordering=key` opens a `KeyOrderedRabbitTransport`:
  one active consumer per group (single-active-consumer queues) and per-key hold-back, which
  does promise per-key order, at the price of one working consumer per group.

The topology, retry, dead-letter and interop designs are in `docs/rabbitmq.md` and ADR 0004.

Modules: `config` (URL, options, legacy mappings), `link` (connection, reconnection, confirmed
publishing), `topology` (names, arguments, delay buckets, declarations), `codec` (CloudEvents
AMQP binding), `translate` (a legacy message through its source's translation), `consumer`
(subscription), `delivery`, `settlement` (acks, requeues, retry and dead-letter copies),
`acks` (a channel's acks coalesced per loop turn, ADR 0037), `legacy` (forwarding legacy
queues), `admin` (dead letters, backlog), `transport` (the port).
Only the names below are public.
"""

from __future__ import annotations

try:
    import aio_pika  # noqa: F401
except ImportError as error:  # pragma: no cover - depends on the installed extras
    raise ImportError("the RabbitMQ transport needs aio-pika: pip install 'tidings[rabbitmq]'") from error

from tidings.transport.rabbitmq.config import LegacyMapping, RabbitConfig
from tidings.transport.rabbitmq.consumer import RabbitSubscription
from tidings.transport.rabbitmq.delivery import RabbitDelivery
from tidings.transport.rabbitmq.transport import KeyOrderedRabbitTransport, RabbitTransport

__all__ = [
    "KeyOrderedRabbitTransport",
    "LegacyMapping",
    "RabbitConfig",
    "RabbitDelivery",
    "RabbitSubscription",
    "RabbitTransport",
]
