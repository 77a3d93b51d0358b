"""A service process for the crash tests, configured by environment variables.

    TIDINGS_TEST_ROLE      worker (handles Job, see shop.worker) | publisher (publishes JobDone)
    TIDINGS_TEST_BROKER    broker URL (the SQLite broker file shared with the test)
    TIDINGS_TEST_DATABASE  the service's database URL
    TIDINGS_TEST_CRASH     "" | after-commit (SIGKILL in the first ack, i.e. after the handler's
                           commit) | after-publish (SIGKILL after the relay's first confirmed
                           publish, before it deletes the rows) | mid-batch (SIGKILL when a group
                           commit of more than one delivery is about to commit)
    TIDINGS_TEST_PUBLISH   publisher: how many JobDone events to publish, one transaction each,
                           once a line arrives on stdin
    TIDINGS_TEST_REFUSE    "1": the broker refuses every publish (the test kit's `refuse_publishes`
                           fault), for a broker the test cannot cut off from outside (Kafka)

Prints "ready" once started, "published" after publishing, and its stats as JSON after SIGTERM.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
from typing import Any

from tests.integration.store.shop import JobDone, worker
from tidings.runtime.group_commit import GroupCommit
from tidings.service import Service
from tidings.store.relay import Relay
from tidings.testing import Faults
from tidings.transport.base import Delivery


def _die(*_args: object, **_kwargs: object) -> None:
    os.kill(os.getpid(), signal.SIGKILL)


def install_crash_point(point: str) -> None:
    if point == "mid-batch":
        commit = GroupCommit._commit

        async def commit_or_die(self: GroupCommit, batch: Any) -> None:
            if batch.members > 1:
                _die()
            await commit(self, batch)

        GroupCommit._commit = commit_or_die  # type: ignore[method-assign]
    elif point == "after-commit":
        Delivery.ack = _die  # type: ignore[assignment, method-assign]
    elif point == "after-publish":
        Relay._settle = _die  # type: ignore[assignment, method-assign]
    elif point:
        raise SystemExit(f"unknown crash point {point!r}")


async def main() -> None:
    env = os.environ
    broker, database = env["TIDINGS_TEST_BROKER"], env["TIDINGS_TEST_DATABASE"]
    install_crash_point(env.get("TIDINGS_TEST_CRASH", ""))
    if env["TIDINGS_TEST_ROLE"] == "worker":
        service = worker(broker, database)
    else:
        service = Service("worker", broker=broker, database=database)
    if env.get("TIDINGS_TEST_REFUSE") == "1":
        service.connector = Faults(refuse_publishes=3600).connector()
    stop = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
    await service.start()
    print("ready", flush=True)
    count = int(env.get("TIDINGS_TEST_PUBLISH", "0"))
    if count:
        await asyncio.get_running_loop().run_in_executor(None, sys.stdin.readline)
        for number in range(count):
            await service.publish(JobDone(n=number))
        print("published", flush=True)
    await stop.wait()
    await service.stop()
    print(json.dumps(dict(service.stats)), flush=True)


if __name__ == "__main__":
    asyncio.run(main())
