"""The whole shop on the real Kafka broker (a topic prefix of its own) with SQLite databases:
300 orders through the HTTP API reach every path, and afterwards every invariant holds."""

from __future__ import annotations

import asyncio
import uuid
from pathlib import Path

import pytest

from services.settings import Settings
from tests.integration.kafka_support import delete_topics, kafka_url
from tests.system.harness import Shop, assert_every_path, check, load

pytestmark = [pytest.mark.slow, pytest.mark.kafka]


def test_300_orders_on_kafka_then_check_passes(tmp_path: Path) -> None:
    prefix = f"shop-{uuid.uuid4().hex[:12]}."
    settings = Settings(data_dir=tmp_path / "data", api_port=0, broker=kafka_url(prefix))
    try:
        with Shop(settings) as shop:
            figures = load(settings, shop.api, 300, rate=60)
            assert_every_path(figures)
            assert figures["settled"] == 300
            result = check(settings)
            assert result.returncode == 0, result.stdout + result.stderr
            assert "all invariants hold" in result.stdout
    finally:
        asyncio.run(delete_topics(prefix))
