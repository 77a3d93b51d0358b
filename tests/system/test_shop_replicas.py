"""`shop up --replicas`: two processes of a service compete for its group's deliveries, share its
database, and the shop stays correct (every order settles, `shop check` passes)."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from services.settings import Settings
from services.supervisor import Supervisor, read_ready_file
from tests.system.harness import Shop, check, load
from tidings.errors import ConfigurationError

pytestmark = pytest.mark.slow


def test_two_replicas_of_payments_and_inventory_share_the_work_and_the_shop_checks(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path / "data", api_port=0, metrics_port=0)
    with Shop(settings, replicas={"payments": 2, "inventory": 2}) as shop:
        figures = load(settings, shop.api, 120, rate=40)
        handled = {}
        for instance in ("payments", "payments-2", "inventory", "inventory-2"):
            info = read_ready_file(settings, instance)
            assert info is not None, f"{instance} is not running"
            handled[instance] = httpx.get(f"{info['metrics']}/health", timeout=5).json()["stats"].get("handled", 0)
        pids = {instance: read_ready_file(settings, instance)["pid"] for instance in handled}  # type: ignore[index]
        result = check(settings)
    print(f"handled per replica: {handled}")
    assert figures["settled"] == 120
    assert len(set(pids.values())) == 4, f"the replicas are not four processes: {pids}"
    assert all(count > 0 for count in handled.values()), f"a replica got no work: {handled}"
    assert result.returncode == 0, result.stdout + result.stderr
    assert "all invariants hold" in result.stdout


def test_replicas_of_a_service_that_does_not_run_are_refused(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path)
    with pytest.raises(ConfigurationError, match="--replicas"):
        Supervisor(settings, services=["orders"], replicas={"payments": 2})
    with pytest.raises(ConfigurationError, match="--replicas"):
        Supervisor(settings, services=["payments"], replicas={"payments": 0})
    names = list(Supervisor(settings, services=["payments"], replicas={"payments": 3}).children)
    assert names == ["payments", "payments-2", "payments-3"]
