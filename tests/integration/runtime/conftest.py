"""Runtime tests over every adapter: the conformance suite's fresh namespaces, one per test."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from tests.conformance.conftest import ADAPTERS
from tests.conformance.harness import AdapterFactory


@pytest.fixture(params=[pytest.param(adapter, marks=adapter.marks, id=adapter.name) for adapter in ADAPTERS])
async def broker_url(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[str]:
    """The URL of a fresh namespace on one adapter (memory, SQLite, RabbitMQ, Kafka)."""
    factory: AdapterFactory = request.param
    async with factory.target(tmp_path) as target:
        yield target.url
