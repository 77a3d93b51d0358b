"""`KafkaTransport`: the port over a Kafka cluster (see the package docstring)."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Collection, Sequence
from typing import ClassVar, Self, TypeVar

from aiokafka.errors import KafkaError

from tidings.envelope import Envelope
from tidings.errors import ConfigurationError, EnvelopeRefused, TransportError
from tidings.legacy import LegacySource
from tidings.transport.base import Capabilities, DeadLetter, Subscription, Transport
from tidings.transport.kafka.admin import Admin
from tidings.transport.kafka.cluster import Cluster, Outgoing
from tidings.transport.kafka.config import KafkaConfig, check_group
from tidings.transport.kafka.encoding import record_parts
from tidings.transport.kafka.legacy import LegacyReader, WithLegacy
from tidings.transport.kafka.refusal import RecordRefused
from tidings.transport.kafka.retrying import retrying
from tidings.transport.kafka.subscription import KafkaSubscription

log = logging.getLogger("tidings.transport.kafka")
T = TypeVar("T")


class KafkaTransport(Transport):
    """A connection to a Kafka cluster (see the module docstring); one per process is plenty."""

    capabilities: ClassVar[Capabilities] = Capabilities(durable=True, multi_process=True, per_key_ordering=True)

    def __init__(self, cluster: Cluster, legacy: Sequence[LegacySource] = ()) -> None:
        self.config = cluster.config
        self._cluster = cluster
        self._admin = Admin(cluster)
        self._legacy = tuple(legacy)
        self._subscriptions: set[KafkaSubscription] = set()
        self._readers: set[LegacyReader] = set()
        self._closed = False

    @classmethod
    async def open(cls, url: str, *, legacy: Sequence[LegacySource] = ()) -> Self:
        """Connect and create the events and registry topics; `ConfigurationError` for a bad URL.
        `legacy`: topics of plain-JSON records the subscribing groups translate (`kafka.legacy`)."""
        config = KafkaConfig.from_url(url)
        names = [source.name for source in legacy]
        if len(set(names)) != len(names):
            raise ConfigurationError(f"two legacy sources for one topic: {names}")
        cluster = Cluster(config)
        await cluster.start()
        return cls(cluster, legacy)

    async def publish(self, envelopes: Sequence[Envelope]) -> None:
        """Produce every envelope, then return once Kafka acknowledged all (`acks=all`).

        Raises `PublishError` if any was not acknowledged; the caller publishes the batch again.
        """
        self._check_open()
        topic = self.config.events_topic
        records = []
        for envelope in envelopes:
            key, body, headers = record_parts(envelope)
            records.append(Outgoing(topic, key, body, headers))
        if records:
            try:
                await self._cluster.send(records)
            except RecordRefused as refused:
                raise EnvelopeRefused(envelopes[refused.index].id, refused.reason) from refused

    async def subscribe(self, group: str, types: Collection[str], *, prefetch: int = 64) -> Subscription:
        """Declare `group` for `types` durably, join its consumer group and return a member of it.

        Retriable errors while declaring (a coordinator not available yet...) are retried with
        backoff for up to `declare_timeout` seconds; then, or for any other error, `TransportError`.

        `prefetch` bounds the records this member holds unsettled (read ahead, in flight, or
        waiting for a retry).
        """
        self._check_open()
        check_group(group)
        if prefetch < 1:
            raise ConfigurationError(f"prefetch must be at least 1, got {prefetch}")

        async def declare() -> None:  # every step is idempotent, so a retry starts it over
            await self._cluster.ensure_topic(self.config.dlq_topic(group), 1, {"retention.ms": "-1"})
            await self._cluster.register(group, types)
            await self._cluster.declare(group)

        try:
            await retrying(declare, f"declaring group {group!r}", self.config.declare_timeout)
        except KafkaError as error:
            raise TransportError(f"cannot declare group {group!r} on Kafka: {error!r}") from error
        subscription = KafkaSubscription(self._cluster, group, types, prefetch, self._subscriptions.discard)
        try:
            await subscription.start()
        except BaseException as error:
            await subscription.close()
            if isinstance(error, KafkaError):
                raise TransportError(f"cannot join group {group!r} on Kafka: {error!r}") from error
            raise
        self._subscriptions.add(subscription)
        sources = [source for source in self._legacy if source.consumed_by(group)]
        if not sources:
            return subscription
        reader = LegacyReader(self._cluster, group, sources)
        try:
            await reader.start()
        except BaseException as error:
            await reader.close()
            await subscription.close()
            if isinstance(error, KafkaError):
                raise TransportError(f"cannot read the legacy topics of group {group!r}: {error!r}") from error
            raise
        self._readers.add(reader)
        return WithLegacy(subscription, reader, self._readers.discard)

    async def dead_letters(self, group: str, *, limit: int = 100) -> list[DeadLetter]:
        """The group's dead letters, oldest first; `DeadLetter.id` is the dead-letter offset."""
        return await self._admin_call(lambda: self._admin.dead_letters(check_group(group), limit))

    async def replay(self, group: str, ids: Collection[str] | None = None) -> int:
        """Send dead letters back to `group` alone, then purge them; returns how many."""
        return await self._admin_call(lambda: self._admin.replay(check_group(group), ids))

    async def purge(self, group: str, ids: Collection[str] | None = None) -> int:
        return await self._admin_call(lambda: self._admin.purge(check_group(group), ids))

    async def backlog(self) -> dict[str, int]:
        """Per declared group: records of its types it has not settled (see `admin`)."""
        return await self._admin_call(self._admin.backlog)

    async def close(self) -> None:
        """Close this transport's subscriptions and clients; topics and offsets stay on the broker."""
        if self._closed:
            return
        self._closed = True
        for reader in list(self._readers):
            await reader.close()
        for subscription in list(self._subscriptions):
            await subscription.close()
        await self._cluster.stop()

    def _check_open(self) -> None:
        if self._closed:
            raise TransportError("the Kafka transport is closed")

    async def _admin_call(self, call: Callable[[], Awaitable[T]]) -> T:
        self._check_open()
        try:
            return await call()
        except KafkaError as error:
            raise TransportError(f"Kafka admin call failed: {error!r}") from error
