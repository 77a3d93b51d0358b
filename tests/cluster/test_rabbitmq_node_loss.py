"""The node that leads a group's quorum queue is SIGKILLed under load, then restarted.

A publisher and two replicas of a service run against a three-node cluster through one URL
naming all three nodes. Every event whose publish returned must have its effect exactly once
(the inbox absorbs what the broker hands out again), the consumers must be back within
`RESUME_LIMIT` seconds, and the restarted node must rejoin with a replica of the queue.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.cluster.support import RESUME_LIMIT, cluster, cluster_vhost, quorum_queue, rabbit_url, run_load
from tidings.transport import connect

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("rabbit_cluster")]
QUEUE = "tidings:cluster-load"


async def test_a_url_naming_three_nodes_declares_quorum_queues_replicated_on_all_three() -> None:
    async with cluster_vhost() as vhost:
        transport = await connect(rabbit_url(vhost))
        try:
            await transport.subscribe("replicated", ["conformance.ping"])
            info = await quorum_queue(vhost, "tidings:replicated")
        finally:
            await transport.close()
    assert info["type"] == "quorum"
    assert sorted(str(member) for member in info["members"]) == [  # type: ignore[attr-defined]
        "tidings-c1@localhost",
        "tidings-c2@localhost",
        "tidings-c3@localhost",
    ]


async def test_killing_the_quorum_leader_under_load_loses_nothing_and_applies_nothing_twice(tmp_path: Path) -> None:
    async with cluster_vhost() as vhost:
        url = rabbit_url(vhost, "reconnect_max=0.5&publish_timeout=15")
        leader: dict[str, str] = {}

        async def kill() -> None:
            info = await quorum_queue(vhost, QUEUE)
            leader["node"] = str(info["leader"])
            number = leader["node"].removeprefix("tidings-c").partition("@")[0]
            await cluster("kill", "rabbitmq", number)

        async def restart() -> float:
            return await cluster("up", "rabbitmq")

        measured = await run_load(url, tmp_path / "effects.db", kill, restart)
        info = await quorum_queue(vhost, QUEUE)

    print(f"\nRabbitMQ cluster, killed the quorum leader {leader['node']}: {measured}")
    print("(the group runs without ?ordering=key, which promises no order: the per-key order is counted, not asserted)")
    assert len(measured.published) > 200, "too little load to show anything"
    assert not measured.lost, f"{len(measured.lost)} confirmed events never had their effect"
    assert not measured.twice, f"effects applied twice: {sorted(measured.twice)[:5]}"
    assert measured.handled_after_kill > 100, "the consumers did not carry on after the kill"
    assert measured.consumer_stall < RESUME_LIMIT, f"consumers stood still {measured.consumer_stall:.1f}s"
    assert len(info["members"]) == 3, "the restarted node is not a member of the queue again"  # type: ignore[arg-type]
