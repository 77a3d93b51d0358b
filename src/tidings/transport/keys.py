"""Per-key hold-back done in process, for adapters whose broker does not order by key itself.

A `KeyGate` lets at most one item per partition key be out (handed to a consumer and not yet
settled); later items of that key wait in the gate, in arrival order, until the one out is
settled. Items without a key pass at once. The memory transport keeps one gate per group;
RabbitMQ's `ordering=key` subscription keeps one per consumer. (Kafka's ledger keeps its own
per-key links: they are tied to offsets and commit metadata, see ADR 0013.)
"""

from __future__ import annotations

from collections import deque
from typing import Generic, TypeVar

T = TypeVar("T")


class KeyGate(Generic[T]):
    """At most one item per partition key out at a time; the others wait here, in arrival order.

    `admit` says whether an item may go out now (if not, the gate keeps it); `release` is called
    once the key's item is settled and returns the next item of that key, if any, which then
    holds the key in turn.
    """

    def __init__(self) -> None:
        self._busy: set[str] = set()
        self._waiting: dict[str, deque[T]] = {}

    def admit(self, key: str | None, item: T) -> bool:
        if key is None:
            return True
        if key in self._busy:
            self._waiting.setdefault(key, deque()).append(item)
            return False
        self._busy.add(key)
        return True

    def release(self, key: str | None) -> T | None:
        if key is None:
            return None
        waiting = self._waiting.get(key)
        if not waiting:
            self._busy.discard(key)
            return None
        following = waiting.popleft()
        if not waiting:
            del self._waiting[key]
        return following

    def clear(self) -> None:
        """Forget every key and every waiting item (their messages are back at the broker)."""
        self._busy.clear()
        self._waiting.clear()
