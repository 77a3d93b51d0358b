"""What an operator reads and repairs with the console script, on every multi-process broker:
`tidings backlog` counts what a group has not acked, `tidings dead-letters list` shows the dead
letter with its reason, and `tidings dead-letters replay --id` hands exactly that event back to its
group. The commands run as child processes, as a person at a terminal would run them."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from tests.conformance.events import PING, ping
from tests.conformance.harness import Broker, BrokerTarget
from tests.integration import brokers
from tests.waiting import eventually_async
from tidings.transport import Delivery

ROOT = Path(__file__).resolve().parents[2]
TIDINGS = str(Path(sys.executable).with_name("tidings"))
REASON = "refused by the operator test"


async def tidings(*argv: str) -> subprocess.CompletedProcess[str]:
    """`tidings <argv>` as a child process; exit status 0 is required."""
    done = await asyncio.to_thread(
        subprocess.run, [TIDINGS, *argv], cwd=ROOT, capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == 0, f"tidings {' '.join(argv)} exited {done.returncode}: {done.stderr}"
    return done


async def as_json(*argv: str) -> Any:
    return json.loads((await tidings(*argv, "--json")).stdout)


@pytest.fixture(params=brokers.MULTI_PROCESS)
async def broker(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Broker]:
    target: BrokerTarget
    async with request.param.target(tmp_path) as target:
        opened = Broker(target)
        try:
            yield opened
        finally:
            await opened.aclose()


async def test_backlog_and_dead_letters_list_and_replay_through_the_cli(broker: Broker) -> None:
    transport = await broker.connect()
    consumer = await broker.consumer(transport, "audit", [PING], prefetch=1)
    sent = [ping(n, key="k") for n in range(3)]  # one key: handed out one at a time, in order
    await transport.publish(sent)
    [first] = await consumer.take(1)
    await first.ack()
    [second] = await consumer.take(1)
    await second.dead_letter(REASON)
    url = broker.url

    # one acked, one dead-lettered, one still waiting (RabbitMQ's count is sampled: poll it)
    backlog = await eventually_async(
        lambda: as_json("backlog", "--broker", url), lambda rows: rows == [{"group": "audit", "backlog": 1}],
        "the backlog the CLI reports", within=30,
    )  # fmt: skip
    assert backlog == [{"group": "audit", "backlog": 1}]

    [letter] = await as_json("dead-letters", "list", "--group", "audit", "--broker", url)
    assert (letter["type"], letter["event_id"], letter["attempts"]) == (PING, second.envelope().id, 1)
    assert REASON in letter["reason"]
    table = (await tidings("dead-letters", "list", "--group", "audit", "--broker", url)).stdout
    assert "1 dead letter(s) in group audit" in table
    assert second.envelope().id in table

    replayed = await tidings("dead-letters", "replay", "--group", "audit", "--broker", url, "--id", str(letter["id"]))
    assert replayed.stdout.strip() == "replayed 1 dead letter(s)"
    assert await as_json("dead-letters", "list", "--group", "audit", "--broker", url) == []
    again: list[Delivery] = []
    for _ in range(2):  # the waiting event and the replayed one, in either order
        again.extend(await consumer.take(1, within=30))
        await again[-1].ack()
    assert sorted(delivery.envelope().id for delivery in again) == sorted([sent[2].id, second.envelope().id])
    await eventually_async(
        lambda: as_json("backlog", "--broker", url), lambda rows: rows == [{"group": "audit", "backlog": 0}],
        "the backlog after the replay was acked", within=30,
    )  # fmt: skip
