"""A line in the log every `interval` seconds in which a service did something: what it handled,
retried, dead-lettered and published, so that `tidings run` shows its work without a line per
event (those are at DEBUG, from the settlement middleware)."""

from __future__ import annotations

import asyncio
import logging
from collections import Counter
from collections.abc import Awaitable, Callable

log = logging.getLogger("tidings.service")

INTERVAL = 10.0
SHOWN = ("handled", "duplicates", "retried", "dead_lettered", "outboxed", "published")


def reporter(owner: str, stats: Counter[str], *, interval: float = INTERVAL) -> Callable[[], Awaitable[None]]:
    """The supervised task: compare `stats` every `interval` seconds, log what changed."""

    async def run() -> None:
        before = Counter(stats)
        while True:
            await asyncio.sleep(interval)
            now = Counter(stats)
            change = {name: now[name] - before[name] for name in SHOWN if now[name] != before[name]}
            if change:
                done = ", ".join(f"{count} {name.replace('_', '-')}" for name, count in change.items())
                log.info("%s: %s in the last %gs", owner, done, interval)
            before = now

    return run
