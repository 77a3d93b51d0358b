"""`SHOP_METRICS_PORT=0`: each service serves `/health` (with its delivery counters) on a free
port and names it in its ready file, which is how the chaos run counts absorbed duplicates."""

from __future__ import annotations

from pathlib import Path

import httpx

from services.settings import Settings
from services.shipping import service as shipping
from services.supervisor import read_ready_file


async def test_the_ready_file_names_the_metrics_endpoint(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path, broker=f"sqlite:///{tmp_path / 'broker.db'}", metrics_port=0)
    service = shipping.build(settings)
    await service.start()
    try:
        info = read_ready_file(settings, "shipping")
        assert info is not None
        assert info["metrics"] == f"http://127.0.0.1:{service.metrics_port}"
        async with httpx.AsyncClient() as client:
            health = (await client.get(f"{info['metrics']}/health")).json()
        assert health["service"] == "shipping"
        assert health["status"] == "up"
        assert "stats" in health
    finally:
        await service.stop()


async def test_without_a_metrics_port_the_ready_file_has_none(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path, broker=f"sqlite:///{tmp_path / 'broker.db'}")
    service = shipping.build(settings)
    await service.start()
    try:
        info = read_ready_file(settings, "shipping")
        assert info is not None
        assert "metrics" not in info
    finally:
        await service.stop()
