"""The asyncio floor under a consumer that handles each delivery in a task awaiting its settlement.

    python bench/task_per_delivery.py --items 200000 --batch 256

Creates a task per item (as `Service` and `bench/tidings_round.py` do), each awaiting a future
that a committer task resolves in batches, as a group commit does. No broker and no decoding:
this is the part of a consume+ack figure that no transport can avoid with that design.
"""

from __future__ import annotations

import argparse
import asyncio
import time


async def measure(items: int, batch: int) -> float:
    """Microseconds per item: create its task, park it on a future, resolve it, finish it."""
    loop = asyncio.get_running_loop()
    waiting: list[asyncio.Future[None]] = []
    running: set[asyncio.Task[None]] = set()

    async def handle() -> None:
        settled = loop.create_future()
        waiting.append(settled)
        await settled

    async def commit_forever() -> None:
        while True:
            await asyncio.sleep(0)
            due, waiting[:] = waiting[:], []
            for future in due:
                future.set_result(None)

    committer = asyncio.create_task(commit_forever())
    started = time.perf_counter()
    for _ in range(items):
        task = asyncio.create_task(handle())
        running.add(task)
        task.add_done_callback(running.discard)
        if len(running) >= batch:
            await asyncio.sleep(0)
    await asyncio.gather(*running)
    elapsed = time.perf_counter() - started
    committer.cancel()
    return elapsed / items * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--items", type=int, default=200_000)
    parser.add_argument("--batch", type=int, default=256, help="items in flight before yielding")
    args = parser.parse_args()
    print(f"{asyncio.run(measure(args.items, args.batch)):.2f} µs per delivery task")


if __name__ == "__main__":
    main()
