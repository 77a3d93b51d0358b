"""The load mix reaches every path of the flow, and its percentiles are nearest-rank."""

from __future__ import annotations

import random
from collections import Counter

from services.load import percentiles, plan
from services.seed import CATALOG


def test_every_path_is_planned_in_each_block_of_twenty() -> None:
    rng = random.Random(7)
    paths = Counter(plan(index, rng)[0] for index in range(20))
    assert paths == {"confirm": 14, "out-of-stock": 3, "insufficient-funds": 2, "no-account": 1}


def test_planned_orders_use_catalog_skus_once_each() -> None:
    rng = random.Random(3)
    for index in range(200):
        skus = [line["sku"] for line in plan(index, rng)[1]["lines"]]
        assert set(skus) <= CATALOG.keys()
        assert len(set(skus)) == len(skus)


def test_percentiles() -> None:
    assert percentiles([float(n) for n in range(1, 101)]) == {"p50": 50.0, "p95": 95.0, "p99": 99.0, "max": 100.0}
    assert percentiles([]) == {}
