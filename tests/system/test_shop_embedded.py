"""The whole shop as processes on the embedded broker and SQLite files: orders through the HTTP
API reach every path, and afterwards every invariant holds."""

from __future__ import annotations

from pathlib import Path

import pytest

from services.settings import Settings
from tests.system.harness import Shop, assert_every_path, check, load

pytestmark = pytest.mark.slow


def test_300_orders_every_path_then_check_passes(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path / "data", api_port=0)
    with Shop(settings) as shop:
        figures = load(settings, shop.api, 300, rate=60)
        assert_every_path(figures)
        assert figures["settled"] == 300
        result = check(settings)
        assert result.returncode == 0, result.stdout + result.stderr
        assert "all invariants hold" in result.stdout
        assert "confirmed" in result.stdout
