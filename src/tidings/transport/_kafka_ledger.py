"""Per-partition bookkeeping of a Kafka subscription: what is unsettled, which key waits for
which record, and what to commit. Pure logic without I/O, unit-tested without a broker.

Kafka keeps one committed offset per partition and group, meaning "everything before it is
done". Tidings settles records out of order (different keys run concurrently, a retry waits in
place), so a ledger commits its first unsettled offset and records the rest of what it knows in
the commit's metadata string::

    {"h": 12, "p": [[0, 3, 1, 0], [5, 1, 2, 1718000000000]]}

`h` is how far past the committed offset the ledger had read; `p` lists the records in that
range that are not settled, as runs of consecutive offsets that share their counts:
`[first offset - committed, length, deliveries so far, not-before in epoch ms]`.
Every other record in the range is settled. Whoever owns the partition next (after a
rebalance, a crash or a restart) skips the settled records, continues the attempt counts and
honours pending retry delays, so only unsettled work is delivered again.
"""

from __future__ import annotations

import json
import time
from collections import deque
from dataclasses import dataclass
from enum import Enum
from typing import Any

METADATA_LIMIT = 3_000
"""Characters of commit metadata; brokers refuse more than offset.metadata.max.bytes (4096)."""


class State(Enum):
    WAITING = "waiting"
    """Admitted, but an earlier record of its key is unsettled or its retry is not due yet."""
    READY = "ready"
    """Queued to be handed out; `deliveries` already counts that hand-out."""
    IN_FLIGHT = "in-flight"
    """Handed out; waiting for ack, retry or dead_letter."""
    SETTLED = "settled"


@dataclass(eq=False, slots=True)
class Slot:
    """One unsettled record of a partition."""

    ledger: Ledger
    offset: int
    key: bytes | None
    record: Any
    """The aiokafka `ConsumerRecord`."""
    deliveries: int = 0
    """How many times it was handed out, including earlier owners of the partition."""
    not_before: float = 0.0
    """Epoch seconds before which it must not be handed out (a retry's delay)."""
    state: State = State.WAITING
    recorded: Any = None
    """While READY: the future of the commit recording `deliveries`, already raised for the hand-out."""


class Ledger:
    """One assigned partition of one subscription, from assignment until revocation.

    Records are admitted in offset order. A keyed record is *due* when it heads its key's
    queue (every earlier record with that key is settled) and its retry delay has passed;
    keyless records only wait for their delay.
    """

    def __init__(self, committed: int | None = None, metadata: str = "") -> None:
        self.active = True
        """False once the partition was revoked; settling its slots no longer commits."""
        self.handing_out = True
        """False from the start of a revocation: nothing more is handed out."""
        self.committed: tuple[int, str] | None = (committed, metadata) if committed is not None else None
        """What is known to be committed for this partition (the last successful commit)."""
        self._next = committed
        self._slots: dict[int, Slot] = {}
        self._keys: dict[bytes, deque[Slot]] = {}
        self._presettled: set[int] = set()
        self._carried, self._carried_until = parse_metadata(committed, metadata)

    def __len__(self) -> int:
        """Records admitted and not settled."""
        return len(self._slots)

    def slots(self) -> list[Slot]:
        return list(self._slots.values())

    def admit(self, offset: int, key: bytes | None, record: Any, *, relevant: bool = True) -> Slot | None:
        """Take the next record read from the partition; None if it needs no delivery.

        A record needs none when it is not for this group (`relevant=False`), or when the
        previous owner's commit metadata says it was settled already.
        """
        self._next = offset + 1
        if not relevant or offset in self._presettled:
            self._presettled.discard(offset)
            return None
        deliveries, not_before = 0, 0.0
        if offset < self._carried_until:
            carried = self._carried.pop(offset, None)
            if carried is None:
                return None
            deliveries, not_before = carried
        slot = Slot(self, offset, key, record, deliveries, not_before)
        self._slots[offset] = slot
        if key is not None:
            self._keys.setdefault(key, deque()).append(slot)
        return slot

    def due(self, slot: Slot, now: float | None = None) -> bool:
        """Whether `slot` may be handed out at `now` (epoch seconds; the clock if None)."""
        if slot.not_before and slot.not_before > (time.time() if now is None else now):
            return False
        return slot.key is None or self._keys[slot.key][0] is slot

    def settle(self, slot: Slot) -> Slot | None:
        """Forget a settled slot; returns the next slot of the same key, which may now be due."""
        del self._slots[slot.offset]
        slot.state = State.SETTLED
        if slot.key is None:
            return None
        queue = self._keys[slot.key]
        queue.remove(slot)
        if not queue:
            del self._keys[slot.key]
            return None
        return queue[0]

    def slot_at(self, offset: int) -> Slot | None:
        return self._slots.get(offset)

    def presettle(self, offset: int) -> None:
        """Remember that `offset`, not admitted yet, was settled through an earlier assignment."""
        if self._next is None or offset >= self._next:
            self._presettled.add(offset)

    def checkpoint(self) -> tuple[int, str] | None:
        """The (offset, metadata) to commit now, or None before anything was read."""
        if self._next is None:
            return None
        if not self._slots:
            return self._next, ""
        first = next(iter(self._slots))
        runs: list[list[int]] = []  # [start - first, length, deliveries, not-before ms]
        until = self._next
        size = 20  # the braces, keys and `h`
        run: list[int] = []
        for offset, slot in self._slots.items():
            ms = round(slot.not_before * 1000) if slot.not_before else 0
            if run and offset == first + run[0] + run[1] and slot.deliveries == run[2] and ms == run[3]:
                run[1] += 1
                continue
            size += 16 + len(str(ms))  # what a run of small numbers takes at most
            if size > METADATA_LIMIT:  # the rest counts as unread: redelivered after a takeover
                until = offset
                break
            run = [offset - first, 1, slot.deliveries, ms]
            runs.append(run)
        return first, json.dumps({"h": until - first, "p": runs}, separators=(",", ":"))


def parse_metadata(committed: int | None, metadata: str) -> tuple[dict[int, tuple[int, float]], int]:
    """Unsettled records a previous owner left in the metadata, and the end of its range."""
    if committed is None or not metadata:
        return {}, -1
    try:
        document = json.loads(metadata)
        until = committed + int(document["h"])
        carried = {
            committed + int(start) + step: (int(deliveries), int(ms) / 1000)
            for start, length, deliveries, ms in document["p"]
            for step in range(int(length))
        }
    except (ValueError, KeyError, TypeError):
        return {}, -1  # not ours, or damaged: redeliver everything from the committed offset
    return carried, until
