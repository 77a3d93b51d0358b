"""Cluster tests run against `scripts/cluster.sh`'s loopback clusters, never the shared servers.

They skip when a cluster is not up and fail instead with `TIDINGS_REQUIRE_CLUSTER=1`
(`scripts/ci-cluster.sh`, the CI step, starts both clusters, sets it and stops them after).
"""

from __future__ import annotations

import pytest

from tests.cluster.support import KAFKA_PORTS, RABBIT_PORTS, require_cluster


@pytest.fixture
def rabbit_cluster() -> None:
    require_cluster("rabbitmq", RABBIT_PORTS)


@pytest.fixture
def kafka_cluster() -> None:
    require_cluster("kafka", KAFKA_PORTS)
