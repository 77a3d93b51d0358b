"""What a Kafka subscription does when its group rebalances.

On revocation it stops handing out records of the partitions it loses, waits up to
`revoke_grace` for those in flight to be settled, commits, and forgets them (settling one of
them afterwards raises `TransportError`). On assignment it pauses the new partitions, reads
their committed offsets and commit metadata into fresh ledgers (so settled records are
skipped and attempt counts continue), learns the types other members registered, and resumes.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Collection
from typing import Any

from aiokafka.abc import ConsumerRebalanceListener

from tidings.transport.kafka.cluster import Cluster
from tidings.transport.kafka.commits import Committer
from tidings.transport.kafka.fetch import Fetcher
from tidings.transport.kafka.handout import HandOut, in_flight, stop_handing_out
from tidings.transport.kafka.ledger import Ledger

log = logging.getLogger("tidings.transport.kafka")


class Rebalancer(ConsumerRebalanceListener):  # type: ignore[misc]
    """aiokafka's rebalance callbacks (run in its coordination task) for one subscription."""

    def __init__(
        self,
        cluster: Cluster,
        group: str,
        ledgers: dict[Any, Ledger],
        fetcher: Fetcher,
        hand_out: HandOut,
        committer: Committer,
    ) -> None:
        self.assigned = asyncio.Event()
        """Set after the first assignment."""
        self._cluster = cluster
        self._group = group
        self._ledgers = ledgers
        self._fetcher = fetcher
        self._hand_out = hand_out
        self._committer = committer
        self._grace = cluster.config.revoke_grace

    async def on_partitions_revoked(self, revoked: Collection[Any]) -> None:
        hand_out = self._hand_out
        ledgers = [self._ledgers[tp] for tp in revoked if tp in self._ledgers]
        stop_handing_out(ledgers)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self._grace
        while not hand_out.closed and in_flight(ledgers) and loop.time() < deadline:
            hand_out.settling.clear()
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(deadline - loop.time()):
                    await hand_out.settling.wait()
        with contextlib.suppress(Exception):  # a failed commit means redeliveries, logged by the committer
            await self._committer.commit()
        for tp in revoked:
            if tp in self._ledgers:
                hand_out.forget(self._ledgers.pop(tp))
        hand_out.room.set()

    async def on_partitions_assigned(self, assigned: Collection[Any]) -> None:
        fetcher, cluster = self._fetcher, self._cluster
        partitions = set(assigned)
        fetcher.loading |= partitions
        fetcher.sync_pause(fetcher.room())  # before any await: no record slips past
        committed: dict[Any, tuple[int, str]] = {}
        try:
            committed = await cluster.committed(cluster.config.group_id(self._group), partitions)
            fetcher.types.update((await cluster.groups()).get(self._group, set()))
        except Exception as error:  # start from the committed offsets, without what their metadata said
            log.warning("group %s: could not read commit metadata: %r", self._group, error)
        for tp in partitions:
            if tp in self._ledgers:
                self._hand_out.forget(self._ledgers.pop(tp))
            offset, metadata = committed.get(tp, (None, ""))
            self._ledgers[tp] = Ledger(offset, metadata)
        fetcher.loading -= partitions
        fetcher.sync_pause(fetcher.room())
        self.assigned.set()
