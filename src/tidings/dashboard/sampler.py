"""The live figures the charts draw: every `interval` seconds the sampler reads each group's lag
from the broker and each target service's `/metrics` and `/health`, and keeps the last `window`
samples in memory (live charts need no history that survives a restart; ADR 0022).

A target that does not answer is shown as down in that sample; the sampler itself never stops
for it.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from collections.abc import Awaitable, Callable
from typing import Any

import httpx

from tidings.dashboard.config import Targets
from tidings.dashboard.promtext import Scrape, parse, quantile

log = logging.getLogger("tidings.dashboard")

QUANTILES = {"p50": 0.5, "p95": 0.95, "p99": 0.99}


class Sampler:
    """Samples lag, latency, outbox and health; `series()` gives them aligned for the charts."""

    def __init__(
        self,
        backlog: Callable[[], Awaitable[dict[str, int]]],
        targets: Targets,
        *,
        interval: float = 2.0,
        window: int = 300,
    ) -> None:
        self.backlog = backlog
        self.targets = targets
        self.interval = interval
        self.samples: deque[dict[str, Any]] = deque(maxlen=window)
        self.health: dict[str, dict[str, Any]] = {}
        self._last: dict[str, tuple[float, Scrape]] = {}

    async def run(self) -> None:
        """Sample until cancelled (a supervised background task of the dashboard's service)."""
        async with httpx.AsyncClient(timeout=max(3.0, 2 * self.interval)) as client:  # a busy service answers late
            while True:
                started = time.monotonic()
                await self.sample(client)
                await asyncio.sleep(max(0.0, self.interval - (time.monotonic() - started)))

    async def sample(self, client: httpx.AsyncClient) -> dict[str, Any]:
        now = time.time()
        sample: dict[str, Any] = {"time": now, "lag": {}, "outbox": {}, "oldest": {}, "handled": {}, "retried": {}}
        sample.update({name: {} for name in QUANTILES})
        try:
            sample["lag"] = {group: float(count) for group, count in (await self.backlog()).items()}
        except Exception as error:
            log.warning("dashboard: backlog unavailable: %r", error)
        targets = dict(self.targets())
        results = await asyncio.gather(*(self._scrape(client, name, url) for name, url in targets.items()))
        for name, (health, scrape) in zip(targets, results, strict=True):
            self.health[name] = {**health, "url": targets[name], "checked_at": now}
            if scrape is None:
                continue
            previous = self._last.get(name)
            self._last[name] = (now, scrape)
            if scrape.outbox_pending is not None:
                sample["outbox"][name] = scrape.outbox_pending
            if scrape.outbox_oldest_age is not None:
                sample["oldest"][name] = scrape.outbox_oldest_age
            if previous is None:
                continue
            elapsed = max(now - previous[0], 1e-6)
            sample["handled"][name] = max(0.0, scrape.handled - previous[1].handled) / elapsed
            sample["retried"][name] = max(0.0, scrape.retried - previous[1].retried) / elapsed
            for label, q in QUANTILES.items():
                value = quantile(q, previous[1].buckets, scrape.buckets)
                if value is not None:
                    sample[label][name] = value * 1000  # milliseconds
        for gone in set(self.health) - set(targets):
            del self.health[gone]
        self.samples.append(sample)
        return sample

    async def _scrape(self, client: httpx.AsyncClient, name: str, url: str) -> tuple[dict[str, Any], Scrape | None]:
        base = url.rstrip("/")
        try:
            health = await client.get(f"{base}/health")
            report = health.json()
            status = str(report.get("status", "unknown"))
            metrics = await client.get(f"{base}/metrics")
            metrics.raise_for_status()
            return {"status": status, "tasks": report.get("tasks", {}), "stats": report.get("stats", {})}, parse(
                metrics.text
            )
        except Exception as error:
            return {"status": "unreachable", "error": f"{type(error).__name__}: {error}"}, None

    def series(self) -> dict[str, Any]:
        """`{"times": [...], "lag": {group: [...]}, "p95": {service: [...]}, ...}`, None where a
        series has no value in a sample; and the latest health per service."""
        samples = list(self.samples)
        out: dict[str, Any] = {"times": [sample["time"] for sample in samples], "health": self.health}
        for kind in ("lag", "outbox", "oldest", "handled", "retried", *QUANTILES):
            keys = sorted({key for sample in samples for key in sample[kind]})
            out[kind] = {key: [sample[kind].get(key) for sample in samples] for key in keys}
        return out
