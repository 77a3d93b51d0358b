"""The cyclic garbage collector's time in this process, read through `gc.callbacks`, for the
benchmarks to report beside their CPU figures (ADR 0038)."""

from __future__ import annotations

import gc
import time


class CollectorClock:
    """Seconds the collector has run in this process (`total`), its longest single pause
    (`longest`, which `reset_longest` starts again), and how many full collections it made."""

    def __init__(self) -> None:
        self.total = 0.0
        self.longest = 0.0
        self.full_collections = 0
        self._started = 0.0
        gc.callbacks.append(self._observe)

    def reset_longest(self) -> None:
        self.longest = 0.0

    def _observe(self, phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            self._started = time.perf_counter()
            return
        pause = time.perf_counter() - self._started
        self.total += pause
        self.longest = max(self.longest, pause)
        self.full_collections += info["generation"] == 2


COLLECTOR = CollectorClock()
