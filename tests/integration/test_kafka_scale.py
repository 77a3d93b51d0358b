"""Scale-out on the real Kafka: three consumer processes share one group over six partitions;
one is SIGKILLed mid-stream, its partitions move to the others, and nothing is lost or reordered.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import sys
import time
from collections import Counter, defaultdict
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import pytest

from tests.conformance.events import ping
from tests.conformance.harness import ROOT
from tests.integration.kafka_support import fresh_prefix, kafka_url
from tidings.transport import Transport, connect

pytestmark = pytest.mark.kafka

KEYS = [f"account-{n}" for n in range(30)]
PER_KEY = 20
GROUP = "scale"
PREFETCH = 8
DEADLINE = 60.0


@dataclass
class Worker:
    """One consumer process and what it printed."""

    process: asyncio.subprocess.Process
    ready: asyncio.Event = field(default_factory=asyncio.Event)
    handled: list[tuple[str, str, int, int, float]] = field(default_factory=list)
    """(event id, key, n, attempt, time) per `handled` line."""
    settling: set[str] = field(default_factory=set)
    """Events whose handler had finished and called `ack()` (it returns once a commit covers them)."""
    acked: set[str] = field(default_factory=set)
    unacked: list[str] = field(default_factory=list)
    """Events whose ack raised (the partition moved; they are delivered again elsewhere)."""
    reader: asyncio.Task[None] | None = None
    news: asyncio.Event = field(default_factory=asyncio.Event)
    """Set on every line any worker prints."""

    async def read(self) -> None:
        assert self.process.stdout is not None
        async for line in self.process.stdout:
            if not line.endswith(b"\n"):
                break  # the last line of a killed process may be cut short
            word, *rest = line.decode().split()
            if word == "ready":
                self.ready.set()
            elif word == "handled":
                event_id, key, n, attempt, when = rest
                self.handled.append((event_id, key, int(n), int(attempt), float(when)))
            elif word == "settling":
                self.settling.add(rest[0])
            elif word == "acked":
                self.acked.add(rest[0])
            elif word == "unacked":
                self.unacked.append(rest[0])
            self.news.set()


async def spawn(url: str, news: asyncio.Event) -> Worker:
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "tests.integration.kafka_worker",
        url,
        GROUP,
        str(PREFETCH),
        cwd=ROOT,
        env=dict(os.environ),
        stdin=asyncio.subprocess.PIPE,  # the worker exits when this closes: no orphans if the test dies
        stdout=asyncio.subprocess.PIPE,
    )
    worker = Worker(process, news=news)
    worker.reader = asyncio.create_task(worker.read())
    return worker


@pytest.fixture
async def url() -> AsyncIterator[str]:
    async with fresh_prefix("scale") as prefix:
        yield kafka_url(prefix)


async def test_three_processes_share_a_group_and_survive_a_sigkill(url: str) -> None:
    transport = await connect(url)
    news = asyncio.Event()
    workers = [await spawn(url, news) for _ in range(3)]
    published: set[str] = set()
    try:
        async with asyncio.timeout(DEADLINE):
            await asyncio.gather(*(worker.ready.wait() for worker in workers))
            published, kill_time = await publish_and_kill(transport, workers)
            backlog = await until_done(news, transport, workers, published)
    except TimeoutError:
        settled = set().union(*(worker.acked for worker in workers))
        missing = published - settled
        handlings = {
            event_id: [
                (index, entry[1:4]) for index, w in enumerate(workers) for entry in w.handled if entry[0] == event_id
            ]
            for event_id in sorted(missing)[:5]
        }
        pytest.fail(
            f"{len(missing)} of {len(published)} events not acked within {DEADLINE}s (or backlog left); "
            f"handled per worker: {[len(worker.handled) for worker in workers]}; "
            f"handlings (worker, (key, n, attempt)) of the missing: {handlings}; "
            f"unacked: {[w.unacked for w in workers]}"
        )
    finally:
        for worker in workers:
            if worker.process.returncode is None:
                worker.process.kill()
        for worker in workers:
            await worker.process.wait()
        await asyncio.gather(*(worker.reader for worker in workers if worker.reader is not None))
        await transport.close()

    killed, survivors = workers[0], workers[1:]
    # Shared: every process worked before the kill, and the survivors took the killed one's keys.
    assert all(worker.handled for worker in workers)
    killed_keys = {key for _, key, *_ in killed.handled}
    after_kill = {key for worker in survivors for _, key, _, _, when in worker.handled if when > kill_time}
    assert killed_keys <= after_kill, f"keys never taken over: {sorted(killed_keys - after_kill)}"

    # Nothing lost.
    everything = [entry for worker in workers for entry in worker.handled]
    assert {event_id for event_id, *_ in everything} == set(published)

    # Per key, first-time handling follows publish order.
    first: dict[str, tuple[float, str, int]] = {}
    for event_id, key, n, _, when in everything:
        if event_id not in first or when < first[event_id][0]:
            first[event_id] = (when, key, n)
    by_key: dict[str, list[int]] = defaultdict(list)
    for _, key, n in sorted(first.values()):
        by_key[key].append(n)
    for key in KEYS:
        assert by_key[key] == list(range(PER_KEY)), f"{key} was first handled as {by_key[key]}"

    # Duplicates only for what the killed process had not seen acked (handling, or settled while
    # its commit was still to come); the survivors' own work, interrupted by two rebalances, is
    # never repeated. At most PREFETCH were being handled at once: the window bounds hand-outs.
    counts = Counter(event_id for event_id, *_ in everything)
    duplicates = {event_id for event_id, count in counts.items() if count > 1}
    unsettled = {event_id for event_id, *_ in killed.handled} - killed.acked
    handling = {event_id for event_id, *_ in killed.handled} - killed.settling
    assert len(handling) <= PREFETCH, f"{len(handling)} handled at once with a window of {PREFETCH}"
    assert duplicates <= unsettled, f"duplicates of settled work: {sorted(duplicates - unsettled)}"
    for worker in survivors:
        handled = [event_id for event_id, *_ in worker.handled]
        assert len(handled) == len(set(handled)), "a survivor handled an event twice"
    print(
        f"\nkilled process: {len(killed.handled)} handled, {len(unsettled)} handling unacked at the kill; "
        f"{len(duplicates)} duplicates in all; survivors: {[len(w.handled) for w in survivors]}"
    )
    assert backlog[GROUP] == 0


async def publish_and_kill(transport: Transport, workers: list[Worker]) -> tuple[set[str], float]:
    """Publish every key's events in rounds; SIGKILL the first worker a third of the way in,
    while it is handling something. Returns the published event ids and the time of the kill.
    """
    published: set[str] = set()
    third = asyncio.Event()

    async def publish() -> None:
        for n in range(PER_KEY):
            envelopes = [ping(n, key=key) for key in KEYS]
            await transport.publish(envelopes)
            published.update(envelope.id for envelope in envelopes)
            if n == PER_KEY // 3:
                third.set()
            await asyncio.sleep(0.05)

    async def kill() -> float:
        await third.wait()
        victim = workers[0]
        while len(victim.handled) == len(victim.acked):
            victim.news.clear()
            await victim.news.wait()
        victim.process.kill()
        return time.time()

    _, killed_at = await asyncio.gather(publish(), kill())
    return published, killed_at


async def until_done(
    news: asyncio.Event, transport: Transport, workers: list[Worker], published: set[str]
) -> dict[str, int]:
    """Wait until every event was handled, the survivors settled all they took, and the group's
    backlog is 0. (The killed process's last acks may have reached Kafka unreported.)"""
    while True:
        handled = {event_id for worker in workers for event_id, *_ in worker.handled}
        settled = all(
            {event_id for event_id, *_ in worker.handled} <= worker.acked | set(worker.unacked)
            for worker in workers[1:]
        )
        if published <= handled and settled:
            backlog = await transport.backlog()
            if backlog.get(GROUP) == 0:
                return backlog
        news.clear()
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(0.2):
                await news.wait()
