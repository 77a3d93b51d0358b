"""What the conformance tests stand on: adapter factories, a per-test broker, and bounded waits.

Every wait here has a deadline and fails with a message when it passes; nothing relies on a
sleep being long enough. To run the suite against a new adapter, append an `AdapterFactory`
to `ADAPTERS` in `conftest.py`.
"""

from __future__ import annotations

import asyncio
import os
import sys
from collections.abc import Awaitable, Callable, Collection, Mapping, Sequence
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol, TypeVar

import pytest

from tidings.transport import Delivery, Subscription, Transport, connect

ROOT = Path(__file__).resolve().parents[2]
TIMEOUT = 10.0
"""Deadline for anything that should happen promptly (a published event arriving)."""
BACKLOG_TIMEOUT = 30.0
"""Deadline for a backlog figure to catch up: RabbitMQ's comes from the statistics its queues
emit every 5 s, and a queue made during the test (a delay queue) first shows a count a whole
interval later, longer when other tests keep the broker busy (one CI run saw more than 10 s)."""
REDELIVERY_TIMEOUT = 20.0
"""Deadline for a delivery to come back after its consumer died (lease or session timeout)."""
T = TypeVar("T")


@dataclass(frozen=True)
class BrokerTarget:
    """One test's isolated broker namespace (a file, a vhost, a topic prefix...)."""

    url: str
    """What `connect()` opens, in this process and in child processes alike."""
    child_env: Mapping[str, str] = field(default_factory=dict)
    """Extra environment a child process needs to reach the same namespace."""


class AdapterFactory(Protocol):
    """Makes a fresh, isolated namespace on one kind of broker for each test.

    URLs should set short leases / session timeouts so crash tests run in seconds.
    """

    name: str
    marks: Sequence[pytest.MarkDecorator]

    def target(self, tmp_path: Path) -> AbstractAsyncContextManager[BrokerTarget]: ...


class Consumer:
    """A subscription driven from one background task that pulls only what the test asks for.

    The adapter's iterator is never cancelled mid-`__anext__` (a timeout only abandons the
    wait), and no more deliveries are pulled than requested, so two consumers share work the
    way two real handlers would.
    """

    def __init__(self, subscription: Subscription) -> None:
        self.subscription = subscription
        self._iterator = aiter(subscription)
        self._ready: asyncio.Queue[Delivery] = asyncio.Queue()
        self._wanted = 0
        self._demand = asyncio.Event()
        self._ended: BaseException | None = None
        self._task = asyncio.create_task(self._pull())

    async def _pull(self) -> None:
        try:
            while True:
                while self._wanted <= 0:
                    self._demand.clear()
                    await self._demand.wait()
                delivery = await anext(self._iterator)
                self._wanted -= 1
                self._ready.put_nowait(delivery)
        except StopAsyncIteration as end:
            self._ended = end
        except Exception as error:  # surfaced by take()
            self._ended = error

    async def take(self, n: int = 1, within: float = TIMEOUT) -> list[Delivery]:
        """Exactly `n` deliveries, or fail when `within` seconds pass first."""
        got: list[Delivery] = []
        try:
            async with asyncio.timeout(within):
                while len(got) < n:
                    got.append(await self._next())
        except TimeoutError:
            pytest.fail(f"received {len(got)} of {n} deliveries within {within}s")
        return got

    async def poll(self, within: float) -> Delivery | None:
        """One delivery, or None when none arrives within `within` seconds."""
        try:
            async with asyncio.timeout(within):
                return await self._next()
        except TimeoutError:
            return None

    async def assert_idle(self, within: float = 0.5) -> None:
        """Nothing more arrives within `within` seconds (use after a positive check, not instead)."""
        extra = await self.poll(within)
        assert extra is None, f"unexpected delivery of {extra.envelope().type} (attempt {extra.attempt})"

    async def _next(self) -> Delivery:
        if self._ready.empty():
            if self._ended is not None:
                raise AssertionError(f"the subscription stopped: {self._ended!r}")
            if self._wanted < 1:
                self._wanted = 1
                self._demand.set()
        return await self._ready.get()

    async def close(self) -> None:
        """Close the subscription; its iterator must then end promptly."""
        await self.subscription.close()
        if self._wanted <= 0:
            self._task.cancel()  # idle, not inside the adapter's iterator
        done, _ = await asyncio.wait([self._task], timeout=5)
        if not done:
            self._task.cancel()
            await asyncio.wait([self._task])
        aclose = getattr(self._iterator, "aclose", None)
        if aclose is not None:
            await aclose()
        if not done:
            pytest.fail("the subscription's iterator did not end within 5s of close()")


class Broker:
    """One test's namespace: opens transports and consumers and closes them all at teardown."""

    def __init__(self, target: BrokerTarget) -> None:
        self.target = target
        self.url = target.url
        self._transports: list[Transport] = []
        self._consumers: list[Consumer] = []

    async def connect(self) -> Transport:
        transport = await connect(self.url)
        self._transports.append(transport)
        return transport

    async def consumer(self, transport: Transport, group: str, types: Collection[str], prefetch: int = 8) -> Consumer:
        consumer = Consumer(await transport.subscribe(group, types, prefetch=prefetch))
        self._consumers.append(consumer)
        return consumer

    async def spawn(self, *args: str) -> asyncio.subprocess.Process:
        """Run `python -m tests.conformance.child <args>` against this namespace."""
        return await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "tests.conformance.child",
            *args,
            cwd=ROOT,
            env={**os.environ, **self.target.child_env},
            stdout=asyncio.subprocess.PIPE,
        )

    async def aclose(self) -> None:
        for consumer in self._consumers:
            await consumer.close()
        for transport in self._transports:
            await transport.close()


async def read_line(process: asyncio.subprocess.Process, within: float = 30.0) -> list[str]:
    """The next line the child prints, split into words; fail if it prints none in time."""
    assert process.stdout is not None
    try:
        async with asyncio.timeout(within):
            line = await process.stdout.readline()
    except TimeoutError:
        pytest.fail(f"the child process printed nothing within {within}s")
    assert line, f"the child process exited with {await process.wait()} before printing"
    return line.decode().split()


async def kill(process: asyncio.subprocess.Process) -> None:
    """SIGKILL: no handler, no cleanup, no goodbye to the broker."""
    if process.returncode is None:
        process.kill()
    await process.communicate()


async def until(probe: Callable[[], Awaitable[T]], check: Callable[[T], bool], within: float = TIMEOUT) -> T:
    """Poll `probe()` until `check` holds on its result; fail with the last result at the deadline."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    while True:
        value = await probe()
        if check(value):
            return value
        if loop.time() > deadline:
            pytest.fail(f"still {value!r} after {within}s")
        await asyncio.sleep(0.02)


async def settle_all(deliveries: Sequence[Delivery]) -> None:
    await asyncio.gather(*(delivery.ack() for delivery in deliveries))
