"""In-process transport for unit tests of handlers and the runtime: no broker, no durability.

`memory://name` names a broker inside this process; transports opened with the same name share
it. It honours the whole port contract except durability and multi-process use, including
leases (`memory://name?lease=2`, seconds) and per-key ordering, so the conformance suite runs
against it unchanged.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import time
from collections.abc import Collection, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import ClassVar, Self

from tidings.envelope import MAX_MESSAGE_BYTES, Envelope, to_binary
from tidings.errors import EnvelopeRefused
from tidings.transport import urls
from tidings.transport.base import Capabilities, DeadLetter, Delivery, Subscription, Transport
from tidings.transport.keys import KeyGate

DEFAULT_LEASE = 30.0
_POLL = 0.05


@dataclass(eq=False)
class _Entry:
    seq: int
    envelope: Envelope
    deliveries: int = 0
    available_at: float = 0.0
    leased_by: object | None = None
    lease_until: float = 0.0
    held: bool = False
    """An earlier entry with the same partition key is not settled yet (the group's gate holds it)."""


@dataclass(eq=False)
class _Group:
    types: set[str] = field(default_factory=set)
    pending: list[_Entry] = field(default_factory=list)
    dead: dict[str, tuple[_Entry, str, datetime]] = field(default_factory=dict)
    wakeup: asyncio.Event = field(default_factory=asyncio.Event)
    gate: KeyGate[_Entry] = field(default_factory=KeyGate)

    def add(self, entry: _Entry) -> None:
        """Queue a published (or replayed) entry behind the unsettled ones of its key."""
        entry.held = not self.gate.admit(entry.envelope.partitionkey, entry)
        self.pending.append(entry)
        self.wakeup.set()

    def remove(self, entry: _Entry) -> None:
        """A settled entry leaves; the next entry of its key, if any, may be claimed."""
        if entry in self.pending:
            self.pending.remove(entry)
            following = self.gate.release(entry.envelope.partitionkey)
            if following is not None:
                following.held = False
        self.wakeup.set()

    def claim(self, owner: object, now: float, lease: float) -> _Entry | None:
        """The oldest claimable entry, skipping those whose key's earlier entry is not yet settled."""
        for entry in self.pending:
            free = entry.leased_by is None or entry.lease_until <= now
            if free and not entry.held and entry.available_at <= now:
                entry.leased_by, entry.lease_until = owner, now + lease
                entry.deliveries += 1
                return entry
        return None

    def next_change(self, now: float) -> float:
        """Seconds until a delayed entry becomes available or a lease expires (capped)."""
        times = [e.available_at for e in self.pending if e.leased_by is None and e.available_at > now]
        times += [e.lease_until for e in self.pending if e.leased_by is not None]
        return max(0.0, min([_POLL, *(t - now for t in times)]))


class _Broker:
    def __init__(self) -> None:
        self.groups: dict[str, _Group] = {}
        self.sequence = itertools.count(1)


_brokers: dict[str, _Broker] = {}


class MemoryDelivery(Delivery):
    def __init__(self, group: _Group, name: str, entry: _Entry) -> None:
        super().__init__(name, entry.deliveries)
        self._group = group
        self._entry = entry

    def envelope(self) -> Envelope:
        return self._entry.envelope

    async def _ack(self) -> None:
        self._remove()

    async def _retry(self, after: float) -> None:
        self._entry.leased_by = None
        self._entry.available_at = time.monotonic() + after
        self._group.wakeup.set()

    async def _dead_letter(self, reason: str) -> None:
        self._remove()
        self._group.dead[str(self._entry.seq)] = (self._entry, reason, datetime.now(UTC))

    def _remove(self) -> None:
        self._group.remove(self._entry)


class MemorySubscription(Subscription):
    """Its own iterator (not an async generator), so a cancelled wait for the next delivery
    loses nothing and the subscription stays usable."""

    def __init__(self, name: str, group: _Group, lease: float) -> None:
        self._name = name
        self._group = group
        self._lease = lease
        self._closed = False

    def __aiter__(self) -> MemorySubscription:
        return self

    async def __anext__(self) -> Delivery:
        while not self._closed:
            now = time.monotonic()
            entry = self._group.claim(self, now, self._lease)
            if entry is not None:
                return MemoryDelivery(self._group, self._name, entry)
            self._group.wakeup.clear()
            # asyncio.timeout, not wait_for: on 3.11 wait_for can swallow a cancellation.
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self._group.next_change(now) or _POLL):
                    await self._group.wakeup.wait()
        raise StopAsyncIteration

    async def close(self) -> None:
        self._closed = True
        for entry in self._group.pending:
            if entry.leased_by is self:
                entry.leased_by = None
        self._group.wakeup.set()


class MemoryTransport(Transport):
    """Transport over a named in-process broker (see module docstring)."""

    capabilities: ClassVar[Capabilities] = Capabilities(durable=False, multi_process=False, per_key_ordering=True)

    def __init__(self, broker: _Broker, *, lease: float = DEFAULT_LEASE) -> None:
        self._broker = broker
        self._lease = lease

    @classmethod
    async def open(cls, url: str) -> Self:
        parts = urls.split(url, ("memory",), "memory", "memory://name[?lease=seconds]")
        name = parts.netloc or parts.path or "default"
        # Other options are ignored; a blank one counts as absent. The first `lease` wins.
        given = next((value for option, value in urls.query(parts) if option == "lease" and value), None)
        lease = DEFAULT_LEASE if given is None else urls.number(url, "lease", given, "memory")
        return cls(_brokers.setdefault(name, _Broker()), lease=lease)

    async def publish(self, envelopes: Sequence[Envelope]) -> None:
        """Hand each envelope to its groups in turn; one over the size limit is refused for good
        (`EnvelopeRefused`), the envelopes before it are published and those after it are not."""
        for envelope in envelopes:
            if len(envelope.data) > MAX_MESSAGE_BYTES:
                detail = f"event data is {len(envelope.data)} bytes, the limit is {MAX_MESSAGE_BYTES}"
                raise EnvelopeRefused(envelope.id, detail)
            for group in self._broker.groups.values():
                if envelope.type in group.types:
                    group.add(_Entry(next(self._broker.sequence), envelope))

    async def subscribe(self, group: str, types: Collection[str], *, prefetch: int = 64) -> Subscription:
        state = self._broker.groups.setdefault(group, _Group())
        state.types.update(types)
        return MemorySubscription(group, state, self._lease)

    async def dead_letters(self, group: str, *, limit: int = 100) -> list[DeadLetter]:
        state = self._broker.groups.get(group)
        if state is None:
            return []
        letters = []
        for handle, (entry, reason, when) in list(state.dead.items())[:limit]:
            headers, body = to_binary(entry.envelope, "ce_")
            letters.append(
                DeadLetter(
                    id=handle,
                    group=group,
                    reason=reason,
                    attempts=entry.deliveries,
                    headers=headers,
                    body=body,
                    event_id=entry.envelope.id,
                    type=entry.envelope.type,
                    dead_lettered_at=when,
                )
            )
        return letters

    async def replay(self, group: str, ids: Collection[str] | None = None) -> int:
        state = self._broker.groups.get(group)
        if state is None:
            return 0
        chosen = [handle for handle in state.dead if ids is None or handle in ids]
        for handle in chosen:
            entry, _, _ = state.dead.pop(handle)
            state.add(_Entry(next(self._broker.sequence), entry.envelope))
        state.wakeup.set()
        return len(chosen)

    async def purge(self, group: str, ids: Collection[str] | None = None) -> int:
        state = self._broker.groups.get(group)
        if state is None:
            return 0
        chosen = [handle for handle in state.dead if ids is None or handle in ids]
        for handle in chosen:
            del state.dead[handle]
        return len(chosen)

    async def backlog(self) -> dict[str, int]:
        return {name: len(state.pending) for name, state in self._broker.groups.items()}

    async def close(self) -> None:
        """Nothing to release: the named broker lives as long as the process."""
