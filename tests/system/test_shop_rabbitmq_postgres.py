"""The whole shop on RabbitMQ and one PostgreSQL database per service: orders through the HTTP
API reach every path, and afterwards every invariant holds."""

from __future__ import annotations

from pathlib import Path

import pytest

from services.settings import Settings
from tests.system.harness import POSTGRES, Shop, assert_every_path, check, load

pytestmark = [pytest.mark.slow, pytest.mark.postgres]


@pytest.mark.rabbitmq
def test_300_orders_on_rabbitmq_and_postgres_then_check_passes(
    tmp_path: Path, rabbitmq_vhost: str, postgres_prefix: str
) -> None:
    settings = Settings(
        data_dir=tmp_path / "data", api_port=0, broker=rabbitmq_vhost, database=POSTGRES, db_prefix=postgres_prefix
    )
    with Shop(settings) as shop:
        figures = load(settings, shop.api, 300, rate=60)
        assert_every_path(figures)
        result = check(settings)
        assert result.returncode == 0, result.stdout + result.stderr
        assert "all invariants hold" in result.stdout


def test_300_orders_on_postgres_with_the_embedded_broker(tmp_path: Path, postgres_prefix: str) -> None:
    """PostgreSQL databases with the SQLite broker: the database side alone, whatever the broker."""
    settings = Settings(data_dir=tmp_path / "data", api_port=0, database=POSTGRES, db_prefix=postgres_prefix)
    with Shop(settings) as shop:
        assert_every_path(load(settings, shop.api, 300, rate=60))
        result = check(settings)
        assert result.returncode == 0, result.stdout + result.stderr
