"""Admin calls of the Kafka transport: dead letters (list, replay, purge) and backlog.

Dead letters of a group live in `<prefix>dlq.<group>`, one partition, retained until purged. A
dead letter is the original record (key, body, CloudEvents headers) plus `tidings-reason`,
`tidings-attempts`, `tidings-dead-lettered-at` and `tidings-origin`; its id is its offset.

- **purge** appends a *purge marker* (a record with a `tidings-purge` header listing offsets) and
  then deletes the topic's records below the oldest dead letter still live (Kafka's
  DeleteRecords), so purged data really leaves the broker once nothing older is kept.
- **list** reads the topic from its start, dropping dead letters a marker names.
- **replay** produces the dead letters back to the events topic with a `tidings-group` header,
  so only that group handles them (in key order with later events), then purges them; a dead
  letter of a legacy source (`tidings-legacy-topic`) goes back to that topic instead. A crash
  between the two leaves a replayed dead letter listed: replaying it again makes a duplicate,
  which the consumer's inbox absorbs.

Backlog counts, per declared group, the records from its committed offset to the end of each
partition that it handles (its types, or replays aimed at it) and has not settled (the commit
metadata says which are settled). Exact up to `SCAN_LIMIT` records per group; beyond that it
is an upper bound that also counts records of other types.
"""

from __future__ import annotations

import json
from collections.abc import Collection
from datetime import datetime
from typing import Any

from aiokafka import TopicPartition
from aiokafka.admin import RecordsToDelete

from tidings.attributes import identity
from tidings.transport.base import DeadLetter
from tidings.transport.kafka.cluster import Cluster, Outgoing, record_headers, relevant
from tidings.transport.kafka.config import (
    CE_PREFIX,
    HEADER_ATTEMPTS,
    HEADER_DEAD_AT,
    HEADER_GROUP,
    HEADER_LEGACY,
    HEADER_PURGE,
    HEADER_REASON,
)
from tidings.transport.kafka.ledger import parse_metadata

SCAN_LIMIT = 50_000
"""Records a backlog call reads per group to count exactly."""


class Admin:
    """Dead-letter and backlog operations over a transport's shared `Cluster`."""

    def __init__(self, cluster: Cluster) -> None:
        self._cluster = cluster
        self._config = cluster.config

    async def dead_letters(self, group: str, limit: int) -> list[DeadLetter]:
        live, _, _ = await self._read(group)
        return [_dead_letter(group, record) for record in live[:limit]]

    async def replay(self, group: str, ids: Collection[str] | None) -> int:
        live, first, end = await self._read(group)
        chosen = [record for record in live if ids is None or str(record.offset) in ids]
        if not chosen:
            return 0
        back = []
        for record in chosen:
            headers = [(key, value) for key, value in record.headers or () if not key.startswith("tidings-")]
            legacy = record_headers(record).get(HEADER_LEGACY)
            if legacy is not None:  # back to its legacy topic, through the translation again
                back.append(Outgoing(legacy.decode(), record.key, record.value or b"", headers))
                continue
            back.append(
                Outgoing(
                    self._config.events_topic,
                    record.key,
                    record.value or b"",
                    [*headers, (HEADER_GROUP, group.encode())],
                )
            )
        await self._cluster.send(back)
        await self._purge(group, live, chosen, first, end)
        return len(chosen)

    async def purge(self, group: str, ids: Collection[str] | None) -> int:
        live, first, end = await self._read(group)
        chosen = [record for record in live if ids is None or str(record.offset) in ids]
        if chosen:
            await self._purge(group, live, chosen, first, end)
        return len(chosen)

    async def backlog(self) -> dict[str, int]:
        """Unsettled records each declared group handles (see the module docstring)."""
        partitions = self._cluster.partitions(self._config.events_topic)
        first, end = await self._cluster.bounds(partitions)
        counts: dict[str, int] = {}
        for group, types in sorted((await self._cluster.groups()).items()):
            committed = await self._cluster.committed(self._config.group_id(group), partitions)
            ranges: dict[Any, tuple[int, int]] = {}
            known: dict[Any, tuple[dict[int, Any], int]] = {}
            settled = 0
            for tp in partitions:
                offset, metadata = committed.get(tp, (first[tp], ""))
                start = max(offset, first[tp])
                ranges[tp] = (start, end[tp])
                carried, until = known[tp] = parse_metadata(offset, metadata)
                until = min(until, end[tp])
                settled += max(0, until - start) - sum(1 for n in carried if start <= n < until)
            unread = sum(stop - start for start, stop in ranges.values())
            if unread > SCAN_LIMIT:
                counts[group] = unread - settled
                continue
            found = await self._cluster.read(ranges)
            counts[group] = sum(
                1
                for tp, records in found.items()
                for record in records
                if _unsettled(record.offset, *known[tp]) and relevant(record, group, types)
            )
        return counts

    # -- the dead-letter topic --------------------------------------------------------------------

    async def _read(self, group: str) -> tuple[list[Any], int, int]:
        """Live dead letters (oldest first), and the topic's first and next offsets when read."""
        topic = self._config.dlq_topic(group)
        if not await self._cluster.topic_exists(topic):
            return [], 0, 0
        tp = TopicPartition(topic, 0)
        first, end = await self._cluster.bounds([tp])
        records = (await self._cluster.read({tp: (first[tp], end[tp])}))[tp]
        purged: set[int] = set()
        letters = []
        for record in records:
            marker = record_headers(record).get(HEADER_PURGE)
            if marker is None:
                letters.append(record)
            else:
                purged.update(json.loads(marker))
        return [record for record in letters if record.offset not in purged], first[tp], end[tp]

    async def _purge(self, group: str, live: list[Any], chosen: list[Any], first: int, end: int) -> None:
        """Mark `chosen` purged, then delete every record older than the oldest live dead letter.

        `end` is where the topic ended when `live` was read: nothing at or after it is deleted,
        so a dead letter written meanwhile survives.
        """
        topic = self._config.dlq_topic(group)
        offsets = sorted(record.offset for record in chosen)
        await self._cluster.send([Outgoing(topic, None, b"", [(HEADER_PURGE, json.dumps(offsets).encode())])])
        gone = set(offsets)
        keep = [record.offset for record in live if record.offset not in gone]
        low = min(keep, default=end)
        if low > first:
            await self._cluster.admin.delete_records({TopicPartition(topic, 0): RecordsToDelete(low)})


def _unsettled(offset: int, carried: dict[int, Any], until: int) -> bool:
    """Whether the commit metadata leaves `offset` unsettled (anything it does not cover is)."""
    return offset >= until or offset in carried


def _dead_letter(group: str, record: Any) -> DeadLetter:
    raw = record_headers(record)
    text = {key: value.decode(errors="replace") for key, value in raw.items()}
    when = text.get(HEADER_DEAD_AT)
    try:
        attempts = int(text.get(HEADER_ATTEMPTS, "0"))
    except ValueError:
        attempts = 0
    attributes = {key[len(CE_PREFIX) :]: value for key, value in text.items() if key.startswith(CE_PREFIX)}
    event_id, event_type = identity(attributes, record.value or b"")  # structured records too
    return DeadLetter(
        id=str(record.offset),
        group=group,
        reason=text.get(HEADER_REASON, ""),
        attempts=attempts,
        headers={key: value for key, value in text.items() if not key.startswith("tidings-")},
        body=record.value or b"",
        event_id=event_id,
        type=event_type,
        dead_lettered_at=datetime.fromisoformat(when) if when else None,
    )
