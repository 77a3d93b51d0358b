"""A service killed with SIGKILL in the middle of a load run is restarted by the supervisor; the
deliveries it held come back after their lease, the inbox absorbs the duplicates, and the run
completes with every invariant holding."""

from __future__ import annotations

import os
import signal
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from services.settings import Settings
from tests.system.harness import Shop, assert_every_path, check, load

pytestmark = pytest.mark.slow


def test_services_killed_during_a_load_run_are_restarted_and_nothing_is_lost(tmp_path: Path) -> None:
    data = tmp_path / "data"
    settings = Settings(data_dir=data, api_port=0, broker=f"sqlite:///{data / 'broker.db'}?lease=3")
    with Shop(settings) as shop:
        with ThreadPoolExecutor(1) as pool:
            run = pool.submit(load, settings, shop.api, 400, 60)
            for victim in ("inventory", "payments"):
                time.sleep(2)
                pid = shop.pid(victim)
                os.kill(pid, signal.SIGKILL)
                assert shop.wait_ready(victim, not_pid=pid, within=30) != pid
            figures = run.result(timeout=180)
        assert_every_path(figures)
        result = check(settings)
        assert result.returncode == 0, result.stdout + result.stderr
        said = shop.output.read_text()
        assert "inventory exited with status -9" in said
        assert "payments exited with status -9" in said
