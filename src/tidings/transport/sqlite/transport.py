"""`SqliteTransport`: the port over a SQLite broker file (see the package docstring)."""

from __future__ import annotations

import time
from collections.abc import Collection, Sequence
from dataclasses import replace
from functools import partial
from typing import ClassVar, Self

from tidings.envelope import Envelope
from tidings.errors import ConfigurationError, EnvelopeRefused, MalformedMessage, PublishError, TransportError
from tidings.transport.base import Capabilities, DeadLetter, Transport
from tidings.transport.sqlite import admin, members
from tidings.transport.sqlite.codec import encode
from tidings.transport.sqlite.config import SqliteConfig
from tidings.transport.sqlite.consumer import SqliteSubscription
from tidings.transport.sqlite.worker import Worker


class SqliteTransport(Transport):
    """A connection to a SQLite broker file. Safe to share between tasks of one event loop."""

    capabilities: ClassVar[Capabilities] = Capabilities(
        durable=True, multi_process=True, per_key_ordering=True, member_types=True
    )

    def __init__(self, config: SqliteConfig) -> None:
        """Prefer `await SqliteTransport.open(url)` or `await connect(url)`, which also open the file."""
        self.config = config
        self._worker = Worker(config)

    @classmethod
    async def open(cls, url: str, *, lease: float | None = None) -> Self:
        """Open (creating if needed) the broker file; `lease` overrides the URL's `?lease=`."""
        config = SqliteConfig.from_url(url)
        config.check_folder()
        transport = cls(config if lease is None else replace(config, lease=lease))
        await transport._worker.open()
        return transport

    # -- the port ----------------------------------------------------------------------------

    async def publish(self, envelopes: Sequence[Envelope]) -> None:
        """Store all `envelopes` and their fan-out in one transaction (shared with concurrent
        publishes and settlements: group commit); return after the commit. An
        envelope over the size limit is refused for good (`EnvelopeRefused`) and nothing is stored."""
        if not envelopes:
            return
        rows = []
        for envelope in envelopes:
            try:
                rows.append(encode(envelope))
            except MalformedMessage as error:
                raise EnvelopeRefused(envelope.id, error.detail) from error
        worker = self._worker
        try:
            await worker.publish(rows)  # the writer wakes this file's idle consumers after its commit
        except TransportError as error:
            raise PublishError(f"nothing was published: {error}") from error

    async def subscribe(self, group: str, types: Collection[str], *, prefetch: int = 64) -> SqliteSubscription:
        """Record (group, type) rows durably and join the group as a member subscribing `types`,
        then return a consumer holding at most `prefetch` deliveries.

        The consumer gets deliveries of `types`, and of any type no live member of the group
        subscribes any more (a handler a deploy removed): the runtime dead-letters those at once
        (`capabilities.member_types`), so they never hold back their partition key."""
        if not group or isinstance(types, str) or not types or prefetch < 1:
            raise ConfigurationError(
                f"subscribe needs a group name, a collection of type names and prefetch >= 1; "
                f"got {group!r}, {types!r}, {prefetch!r}"
            )
        worker = self._worker
        subscription = SqliteSubscription(worker, group, tuple(sorted(set(types))), prefetch)
        now = time.time()
        await worker.run(partial(members.join, worker.store, subscription.member, now, now + self.config.lease))
        worker.watch(subscription)
        return subscription

    async def dead_letters(self, group: str, *, limit: int = 100) -> list[DeadLetter]:
        return await self._worker.run(partial(admin.dead_letters, self._worker.store, group, limit))

    async def replay(self, group: str, ids: Collection[str] | None = None) -> int:
        worker = self._worker
        count = await worker.run(partial(admin.replay, worker.store, group, admin.row_ids(ids), time.time()))
        worker.poke()
        return count

    async def purge(self, group: str, ids: Collection[str] | None = None) -> int:
        return await self._worker.run(partial(admin.purge, self._worker.store, group, admin.row_ids(ids)))

    async def backlog(self) -> dict[str, int]:
        return await self._worker.run(partial(admin.backlog, self._worker.store))

    async def close(self) -> None:
        """Hand back unsettled deliveries, commit pending settlements, close the file. Idempotent."""
        await self._worker.close()
