"""The transport port: the one interface every broker adapter implements.

Contract, shared by every adapter and checked by `tests/conformance/`:

- `publish(envelopes)` returns only once the broker has durably accepted every envelope
  (SQLite commit, publisher confirms, `acks=all`). If it raises, the caller must assume none
  was accepted and publish again; consumers absorb the duplicates through the inbox.
- `subscribe(group, types)` declares the group durably before it returns: every event of those
  types published afterwards reaches the group, even while no consumer runs. Every group gets
  every matching event (fan-out); consumers of one group share the work (competing consumers).
- A `Delivery` must be settled exactly once: `ack()`, `retry(after)` or `dead_letter(reason)`.
  An unsettled delivery comes back (after its lease expires, or when its consumer's connection
  closes): delivery is at-least-once.
- Where `capabilities.per_key_ordering` is set, events with the same partition key reach a group
  in publish order and the next one is not handed out before the previous one is settled.
- `Subscription.take(limit)` hands out what is ready together (by default one at a time); where
  `deferred_acks` is set, the `ack()` of a delivery taken so returns before it is durable, and
  `flush()` returns once it is (the runtime flushes once per batch).
- Admin calls list, replay and purge a group's dead letters and report each group's backlog.
"""

from __future__ import annotations

import importlib
from abc import ABC, abstractmethod
from collections.abc import AsyncIterator, Collection, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from types import TracebackType
from typing import ClassVar, Self
from urllib.parse import urlsplit

from tidings.envelope import Envelope
from tidings.errors import ConfigurationError, TidingsError
from tidings.legacy import LegacySource
from tidings.transport.urls import redact


@dataclass(frozen=True, slots=True)
class Capabilities:
    """What an adapter promises; the conformance suite selects its tests by these flags alone."""

    durable: bool
    """A publish that returned survives the death of every process, consumers' and publisher's."""
    multi_process: bool
    """Several OS processes can publish to and consume from the same broker and group."""
    per_key_ordering: bool
    """Events with one partition key reach a group in publish order, one at a time."""
    member_types: bool = False
    """Each member of a group is handed only the types it subscribed itself. Without it, members
    share one stream of the group's types (a RabbitMQ queue, a Kafka topic), so during a rolling
    deploy an old member may receive a type, or a version, that only a new member handles; the
    runtime then hands the delivery back for another member instead of dead-lettering it."""


@dataclass(frozen=True, slots=True)
class DeadLetter:
    """A message a group gave up on, kept with why and after how many attempts."""

    id: str
    """The adapter's handle for `replay` and `purge`."""
    group: str
    reason: str
    attempts: int
    headers: Mapping[str, str]
    body: bytes
    event_id: str | None = None
    type: str | None = None
    dead_lettered_at: datetime | None = None


class AlreadySettled(TidingsError):
    """A delivery was settled twice; the second call is a bug in the caller."""


class Delivery(ABC):
    """One message handed to one consumer of a group.

    A `Delivery` must be settled exactly once: `ack()`, `retry(after)` or `dead_letter(reason)`;
    an unsettled delivery is redelivered after its lease expires or its consumer goes away.
    """

    group: str
    attempt: int
    """1 on the first delivery; counts redeliveries and retries."""

    def __init__(self, group: str, attempt: int) -> None:
        self.group = group
        self.attempt = attempt
        self._settled = False

    @abstractmethod
    def envelope(self) -> Envelope:
        """Decode the message; raises `MalformedMessage` naming what is wrong with it."""

    @property
    def settled(self) -> bool:
        return self._settled

    async def ack(self) -> None:
        """The message is done with; it will not be delivered to this group again."""
        self._claim_settlement()
        await self._ack()

    async def retry(self, after: float) -> None:
        """Deliver this message again, to any consumer of the group, no earlier than `after` seconds."""
        self._claim_settlement()
        await self._retry(max(0.0, after))

    async def dead_letter(self, reason: str) -> None:
        """Move the message to the group's dead-letter store with `reason` and the attempt count."""
        self._claim_settlement()
        await self._dead_letter(reason)

    def _claim_settlement(self) -> None:
        if self._settled:
            raise AlreadySettled(f"delivery for group {self.group!r} was already settled")
        self._settled = True

    @abstractmethod
    async def _ack(self) -> None: ...

    @abstractmethod
    async def _retry(self, after: float) -> None: ...

    @abstractmethod
    async def _dead_letter(self, reason: str) -> None: ...


class Subscription(ABC):
    """A stream of deliveries for one consumer of a group; iterate it, then `close()` it.

    A consumer that handles many deliveries at once may instead `take` them in batches and
    `flush()` after acking them: an adapter that can hand out and settle many together (Kafka:
    one commit for a batch of offsets) does so there; the default takes one at a time."""

    deferred_acks: ClassVar[bool] = False
    """True where an `ack()` of a delivery from `take` returns before it is durable (the commit
    covering it is already asked for); `flush()` then waits for it. False: every `ack()` returns
    once it is durable, and `flush()` has nothing to do."""

    @abstractmethod
    def __aiter__(self) -> AsyncIterator[Delivery]: ...

    async def take(self, limit: int) -> list[Delivery]:
        """Wait for the next delivery; return it with the others ready at once, `limit` at most
        (empty once the subscription ends). Never two of one partition key where
        `per_key_ordering` holds: the next of a key is handed out after the previous is settled.
        The default hands out one at a time, from one iterator of this subscription."""
        taking: AsyncIterator[Delivery] | None = getattr(self, "_taking", None)
        if taking is None:
            taking = self._taking = aiter(self)
        try:
            return [await anext(taking)]
        except StopAsyncIteration:
            return []

    async def flush(self) -> None:
        """Return once every `ack()` made so far on this subscription's deliveries is durable;
        raises `TransportError` if it cannot be (those deliveries come back). A no-op unless
        `deferred_acks`."""
        return None

    @abstractmethod
    async def close(self) -> None:
        """Stop receiving. Deliveries not yet settled return to the group (at once or after their lease)."""


class Transport(ABC):
    """A connection to one broker. Safe to share between tasks of one event loop."""

    capabilities: ClassVar[Capabilities]

    @classmethod
    @abstractmethod
    async def open(cls, url: str) -> Self:
        """Connect to the broker named by `url`; raises `ConfigurationError` or `TransportError`."""

    @abstractmethod
    async def publish(self, envelopes: Sequence[Envelope]) -> None:
        """Return once the broker durably accepted all `envelopes`; raise `PublishError` otherwise."""

    @abstractmethod
    async def subscribe(self, group: str, types: Collection[str], *, prefetch: int = 64) -> Subscription:
        """Declare `group` for `types` (durably, before returning) and start consuming."""

    @abstractmethod
    async def dead_letters(self, group: str, *, limit: int = 100) -> list[DeadLetter]:
        """The group's dead letters, oldest first."""

    @abstractmethod
    async def replay(self, group: str, ids: Collection[str] | None = None) -> int:
        """Put dead letters (all, or those with `ids`) back to the group; returns how many."""

    @abstractmethod
    async def purge(self, group: str, ids: Collection[str] | None = None) -> int:
        """Delete dead letters (all, or those with `ids`); returns how many."""

    @abstractmethod
    async def backlog(self) -> dict[str, int]:
        """Messages each declared group has not yet acked (ready, in flight or waiting to retry)."""

    async def ping(self) -> None:
        """Raise unless the broker can be reached now (for readiness probes); by default a backlog
        read, which every adapter answers only from the broker."""
        await self.backlog()

    @abstractmethod
    async def close(self) -> None:
        """Release connections; does not delete anything on the broker."""

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.close()


_ADAPTERS = {
    "memory": ("tidings.transport.memory", "MemoryTransport"),
    "sqlite": ("tidings.transport.sqlite", "SqliteTransport"),
    "amqp": ("tidings.transport.rabbitmq", "RabbitTransport"),
    "amqps": ("tidings.transport.rabbitmq", "RabbitTransport"),
    "kafka": ("tidings.transport.kafka", "KafkaTransport"),
}


async def connect(url: str, *, legacy: Sequence[LegacySource] = ()) -> Transport:
    """Open the adapter the URL's scheme names: `memory://name`, `sqlite:///path/to/broker.db`,
    `amqp://user:pass@host:port/vhost`, `kafka://host:port[,host:port]`.

    `legacy`: sources of plain-JSON messages to translate into events (`tidings.legacy`): queues
    on RabbitMQ, topics on Kafka; any other broker refuses them with `ConfigurationError`."""
    scheme = urlsplit(url).scheme
    if scheme not in _ADAPTERS:
        known = ", ".join(f"{name}://" for name in _ADAPTERS)
        raise ConfigurationError(f"unknown broker URL scheme in {redact(url)!r}; use one of {known}")
    module_name, class_name = _ADAPTERS[scheme]
    module = importlib.import_module(module_name)
    adapter: type[Transport] = getattr(module, class_name)
    if legacy:
        if scheme not in ("amqp", "amqps", "kafka"):
            names = ", ".join(source.name for source in legacy)
            raise ConfigurationError(
                f"legacy sources ({names}) need a RabbitMQ (amqp://) or Kafka (kafka://) broker, not {scheme}://"
            )
        return await adapter.open(url, legacy=legacy)  # type: ignore[call-arg]
    return await adapter.open(url)
