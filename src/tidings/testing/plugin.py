"""The pytest plugin of the test kit (entry point `tidings`): the `tidings_harness` fixture.

    async def test_reserves_stock(tidings_harness):
        harness = await tidings_harness(inventory, faults=Faults(duplicate=True))
        await harness.send(OrderCreated(...))
        await harness.published(StockReserved)

Each harness the factory makes is entered at once and closed after the test, whatever its outcome.
Needs an async test runner (pytest-asyncio or anyio) for the fixture and the test.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest

from tidings.service import Service
from tidings.testing.harness import Harness

HarnessFactory = Callable[..., Awaitable[Harness]]


@pytest.fixture
async def tidings_harness() -> AsyncIterator[HarnessFactory]:
    """`await tidings_harness(*services, broker=None, faults=None)` -> an entered `Harness`."""
    opened: list[Harness] = []

    async def make(*services: Service, **options: Any) -> Harness:
        harness = Harness(*services, **options)
        await harness.__aenter__()
        opened.append(harness)
        return harness

    yield make
    for harness in reversed(opened):
        await harness.__aexit__(None, None, None)
