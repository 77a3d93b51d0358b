"""The activity line: what changed since the last one, nothing when nothing did."""

from __future__ import annotations

import asyncio
import logging
from collections import Counter

import pytest

from tidings.runtime.activity import reporter


async def test_the_activity_line_names_what_changed_and_stays_quiet_otherwise(caplog: pytest.LogCaptureFixture) -> None:
    stats: Counter[str] = Counter(handled=5)
    caplog.set_level(logging.INFO, logger="tidings.service")
    task = asyncio.create_task(reporter("inventory", stats, interval=0.02)())
    await asyncio.sleep(0)  # the reporter took its first reading
    stats["handled"] += 3
    stats["dead_lettered"] += 1
    deadline = asyncio.get_running_loop().time() + 5
    while not caplog.records:
        assert asyncio.get_running_loop().time() < deadline
        await asyncio.sleep(0.005)
    await asyncio.sleep(0.1)  # sleep-ok: a bounded nothing-more window after the positive check
    task.cancel()
    assert [record.getMessage() for record in caplog.records] == [
        "inventory: 3 handled, 1 dead-lettered in the last 0.02s"
    ]
