"""The chaos run's fault plan: every service is killed at least `kills_per_service` times, the
broker restart (when there is a private broker) falls in the middle of the kills, and a seed
always draws the same plan."""

from __future__ import annotations

import random
from collections import Counter

import pytest

from services.chaos.faults import Plan
from services.chaos.stats import StatsCollector
from services.settings import SERVICES, Settings


@pytest.mark.parametrize("seed", [1, 2, 3, 1234567])
def test_every_service_is_killed_enough_and_the_broker_restarts_mid_run(seed: int) -> None:
    plan = Plan.draw(random.Random(seed), kills_per_service=3, broker=True, pause=(1.0, 3.0), extra_kills=1)
    kills = Counter(plan.victims)
    assert set(kills) == set(SERVICES)
    assert min(kills.values()) >= 3
    assert len(plan.victims) == 16
    assert plan.broker_restart_after is not None
    assert len(plan.victims) // 3 <= plan.broker_restart_after <= 2 * len(plan.victims) // 3
    assert all(1.0 <= pause <= 3.0 for pause in plan.pauses)


def test_a_seed_draws_one_plan_and_no_broker_means_no_restart() -> None:
    def draw(seed: int, broker: bool = True) -> Plan:
        return Plan.draw(random.Random(seed), kills_per_service=3, broker=broker, pause=(0.5, 1.5), extra_kills=0)

    assert draw(7) == draw(7)
    assert draw(7).victims != draw(8).victims
    assert draw(7, broker=False).broker_restart_after is None


def test_stats_add_up_every_process_a_service_had() -> None:
    collector = StatsCollector(Settings(), services=("orders", "inventory"))
    collector.latest = {
        ("orders", 10): {"handled": 5, "duplicates": 2},
        ("orders", 11): {"handled": 3, "duplicates": 1},  # the process after a SIGKILL
        ("inventory", 12): {"handled": 7},
    }
    assert collector.totals("duplicates") == {"orders": 3, "inventory": 0}
    assert collector.processes() == {"orders": 2, "inventory": 1}
