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
from dataclasses import dataclass, field
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


# Module-level aliases for the hot paths: reading an Enum member through its class costs a
# metaclass lookup (tens of ns) and these run several times per delivery.
WAITING = State.WAITING
READY = State.READY
IN_FLIGHT = State.IN_FLIGHT
SETTLED = State.SETTLED


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
    state: State = WAITING
    recorded: Any = None
    """While READY: the future of the commit recording `deliveries`, already raised for the hand-out."""
    ahead: Slot | None = field(default=None, repr=False)
    """The previous unsettled record with the same key; None for the head of its key (or no key)."""
    behind: Slot | None = field(default=None, repr=False)
    """The next unsettled record with the same key."""


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
        self._tails: dict[bytes, Slot] = {}
        """The last unsettled record of each key; each key's records are linked through `ahead`/`behind`."""
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
            tail = self._tails.get(key)
            if tail is not None:
                tail.behind = slot
                slot.ahead = tail
            self._tails[key] = slot
        return slot

    def due(self, slot: Slot, now: float | None = None) -> bool:
        """Whether `slot` may be handed out at `now` (epoch seconds; the clock if None)."""
        if slot.not_before and slot.not_before > (time.time() if now is None else now):
            return False
        return slot.ahead is None

    def heads(self, slot: Slot) -> bool:
        """Whether every earlier record of `slot`'s key is settled (`due` without the retry delay)."""
        return slot.ahead is None

    def settle(self, slot: Slot) -> Slot | None:
        """Forget a settled slot; returns the next slot of the same key, which may now be due."""
        del self._slots[slot.offset]
        slot.state = SETTLED
        if slot.key is None:
            return None
        ahead, behind = slot.ahead, slot.behind
        slot.ahead = slot.behind = None
        if behind is not None:
            behind.ahead = ahead
        elif ahead is None:
            del self._tails[slot.key]
        else:
            self._tails[slot.key] = ahead
        if ahead is None:  # the usual case: only the head of a key is handed out
            return behind
        ahead.behind = behind  # settled out of order (after a rebalance): the head stays
        while ahead.ahead is not None:
            ahead = ahead.ahead
        return ahead

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
        follows, deliveries, ms = -1, -1, -1  # the offset that would extend `run`, and its counts
        for offset, slot in self._slots.items():
            not_before = slot.not_before
            slot_ms = round(not_before * 1000) if not_before else 0
            if offset == follows and slot.deliveries == deliveries and slot_ms == ms:
                run[1] += 1
                follows += 1
                continue
            size += 16 + len(str(slot_ms))  # what a run of small numbers takes at most
            if size > METADATA_LIMIT:  # the rest counts as unread: redelivered after a takeover
                until = offset
                break
            deliveries, ms, follows = slot.deliveries, slot_ms, offset + 1
            run = [offset - first, 1, deliveries, ms]
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
