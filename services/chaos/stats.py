"""What the services counted while the chaos run went on: each service process's `stats` (handled,
duplicates, retried, dead_lettered), read once a second from its `/health` (`SHOP_METRICS_PORT=0`
gives each a free port, named in its ready file as `metrics`).

A process's counters live as long as it does, so every (service, pid) is kept with the last
figures read from it and the totals add them up. What a process counted between its last reading
and a SIGKILL is lost: the totals are a lower bound (by at most a second of work per kill).
"""

from __future__ import annotations

import asyncio
import contextlib
import re
from collections import Counter
from collections.abc import Sequence
from pathlib import Path

import httpx

from services.settings import SERVICES, Settings
from services.supervisor import read_ready_file


class StatsCollector:
    def __init__(self, settings: Settings, services: Sequence[str] = SERVICES, *, every: float = 1.0) -> None:
        self.settings = settings
        self.services = services
        self.every = every
        self.latest: dict[tuple[str, int], dict[str, int]] = {}

    async def run(self) -> None:
        async with httpx.AsyncClient(timeout=1.0) as client:
            while True:
                await self.read(client)
                await asyncio.sleep(self.every)

    async def read(self, client: httpx.AsyncClient) -> None:
        """One reading of every running service (one that is down or starting is skipped)."""
        for service in self.services:
            info = read_ready_file(self.settings, service)
            if info is None or "metrics" not in info:
                continue
            with contextlib.suppress(httpx.HTTPError, ValueError):
                report = (await client.get(f"{info['metrics']}/health")).json()
                self.latest[(service, int(info["pid"]))] = {k: int(v) for k, v in report.get("stats", {}).items()}

    async def final(self) -> None:
        async with httpx.AsyncClient(timeout=2.0) as client:
            await self.read(client)

    def totals(self, name: str) -> dict[str, int]:
        """`name` (e.g. "duplicates") per service, over every process that service had."""
        by_service: Counter[str] = Counter({service: 0 for service in self.services})
        for (service, _), stats in self.latest.items():
            by_service[service] += stats.get(name, 0)
        return dict(by_service)

    def processes(self) -> dict[str, int]:
        """How many processes of each service were seen."""
        seen: Counter[str] = Counter(service for service, _ in self.latest)
        return {service: seen[service] for service in self.services}


_LOGGED = re.compile(r" (WARNING|ERROR|CRITICAL) ([\w.]+)\[\d+\]: ")


def logged_problems(log_dir: Path, services: Sequence[str] = SERVICES, *, top: int = 4) -> dict[str, dict[str, int]]:
    """Per service, its loggers with the most WARNING-or-worse lines (a reconnect loop shows here)."""
    found: dict[str, dict[str, int]] = {}
    for service in services:
        counts: Counter[str] = Counter()
        path = log_dir / f"{service}.log"
        if path.exists():
            with path.open(encoding="utf-8", errors="replace") as lines:
                for line in lines:
                    if match := _LOGGED.search(line):
                        counts[f"{match.group(1)} {match.group(2)}"] += 1
        found[service] = dict(counts.most_common(top))
    return found
