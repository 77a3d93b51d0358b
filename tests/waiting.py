"""Waiting for a condition with a deadline, for tests that have no harness of their own.

A fixed sleep is either too short on a busy machine (a flaky failure) or too long everywhere (a
slow suite). These poll a condition and fail, naming what was awaited, once the deadline passes.
`tests/unit/test_no_sleep_sync.py` keeps sleeps followed by assertions out of the suite.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import TypeVar

T = TypeVar("T")
POLL = 0.01


async def eventually(condition: Callable[[], object], what: str = "the condition", within: float = 10.0) -> None:
    """Return as soon as `condition()` is truthy; fail after `within` seconds."""
    deadline = asyncio.get_running_loop().time() + within
    while not condition():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"{what} did not hold within {within}s")
        await asyncio.sleep(POLL)


async def eventually_async(
    probe: Callable[[], Awaitable[T]], check: Callable[[T], bool], what: str = "the probe", within: float = 10.0
) -> T:
    """Poll `await probe()` until `check` holds on its value; fail with the last value at the deadline."""
    deadline = asyncio.get_running_loop().time() + within
    while True:
        value = await probe()
        if check(value):
            return value
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"{what} was still {value!r} after {within}s")
        await asyncio.sleep(POLL * 2)


def wait_until(condition: Callable[[], object], what: str = "the condition", within: float = 10.0) -> None:
    """`eventually` for synchronous tests (processes, files, HTTP)."""
    deadline = time.monotonic() + within
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} did not hold within {within}s")
        time.sleep(POLL * 5)
