"""RabbitMQ unreachable, made without touching the shared server: the transport goes through a
`TcpProxy` that cuts its connections and turns new ones away. Reconnecting backs off instead of
spinning, publishing resumes promptly once the broker is back, and `connect()` waits for a
broker that is not there yet."""

from __future__ import annotations

import asyncio
import logging
import re

import pytest
import uvloop

from tests.conformance.events import PING, ping
from tests.integration.rabbitmq_support import AMQP_PORT, HOST, amqp_url, fresh_vhost
from tests.integration.tcp_proxy import ProxyThread, TcpProxy
from tidings.errors import PublishError, TransportError
from tidings.transport import Transport, connect
from tidings.transport.rabbitmq import link, nodes

pytestmark = pytest.mark.rabbitmq
LOGGER = "tidings.transport.rabbitmq"


async def wait_for(check: object, within: float, what: str) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    while not check():  # type: ignore[operator]
        assert loop.time() < deadline, f"{what} not within {within}s"
        await asyncio.sleep(0.01)


class Publisher:
    """Publishes one ping after another, as a relay does, noting when each publish returned."""

    def __init__(self, transport: Transport) -> None:
        self.transport = transport
        self.confirmed: list[float] = []
        self.failures = 0
        self._task = asyncio.create_task(self._run())

    async def _run(self) -> None:
        n = 0
        while True:
            n += 1
            try:
                await self.transport.publish([ping(n)])
            except PublishError:
                self.failures += 1
            else:
                self.confirmed.append(asyncio.get_running_loop().time())
            await asyncio.sleep(0.01)

    async def stop(self) -> None:
        self._task.cancel()
        await asyncio.gather(self._task, return_exceptions=True)


async def publishing(transport: Transport) -> Publisher:
    """A `Publisher` on `transport` (with a group subscribed, so pings are routed), once its first
    ping is confirmed."""
    await transport.subscribe("g", [PING])
    publisher = Publisher(transport)
    await wait_for(lambda: publisher.confirmed, 10, "a first publish")
    return publisher


async def test_an_unreachable_broker_is_retried_with_backoff_not_in_a_spin(
    vhost: str, proxy: TcpProxy, caplog: pytest.LogCaptureFixture
) -> None:
    """Before: every publish attempt on the dead connection logged 'connection lost' in a busy
    loop (about 10,000 warnings in 5 s); now the link logs a few numbered attempts."""
    caplog.set_level(logging.DEBUG, logger=LOGGER)
    transport = await connect(amqp_url(vhost, "publish_timeout=1", port=proxy.port))
    try:
        subscription = await transport.subscribe("g", [PING])
        publisher = Publisher(transport)
        await wait_for(lambda: publisher.confirmed, 10, "a first publish")
        caplog.clear()
        proxy.refuse()
        proxy.cut()
        await asyncio.sleep(3)  # sleep-ok: an outage of a fixed length is the scenario
        warnings = [r.getMessage() for r in caplog.records if r.name == LOGGER and r.levelno >= logging.WARNING]
        attempts = proxy.refused
        proxy.accept()
        await publisher.stop()
        await subscription.close()
    finally:
        await transport.close()
    assert 2 <= attempts <= 20, f"{attempts} connection attempts in 3 s"
    assert len(warnings) <= 8, warnings[:20]
    reconnecting = [w for w in warnings if w.startswith("reconnecting to")]
    assert reconnecting, warnings
    assert all(re.search(r"\(attempt \d+: ", w) for w in reconnecting), reconnecting


async def test_publishing_resumes_within_a_second_of_the_broker_coming_back(vhost: str, proxy: TcpProxy) -> None:
    """With the default backoff cap, a publisher blocked in `publish` during a 6 s outage gets
    its confirm within about a second of the broker being reachable again."""
    transport = await connect(amqp_url(vhost, port=proxy.port))
    try:
        publisher = await publishing(transport)
        proxy.refuse()
        proxy.cut()
        await asyncio.sleep(6)  # sleep-ok: the 6 s outage is the scenario
        before = len(publisher.confirmed)
        loop = asyncio.get_running_loop()
        back = loop.time()
        proxy.accept()
        await wait_for(lambda: len(publisher.confirmed) > before, 10, "a publish after the outage")
        resumed = publisher.confirmed[before] - back
        await publisher.stop()
    finally:
        await transport.close()
    assert resumed < 1.5, f"publishing resumed {resumed:.2f}s after the broker came back"


async def test_open_waits_for_a_broker_that_is_not_reachable_yet(vhost: str, proxy: TcpProxy) -> None:
    """Before: `connect()` raised `TransportError` at once, so a service started during an outage
    exited 1. Now it keeps trying (with backoff) and returns once the broker is reachable."""
    proxy.refuse()
    opening = asyncio.ensure_future(connect(amqp_url(vhost, port=proxy.port)))
    try:
        await wait_for(lambda: proxy.refused >= 3 or opening.done(), 10, "three connection attempts")
        assert not opening.done(), f"connect() gave up: {opening.exception()!r}"
        proxy.accept()
        transport = await asyncio.wait_for(opening, 5)
    finally:
        if not opening.done():
            opening.cancel()
            await asyncio.gather(opening, return_exceptions=True)
    try:
        await transport.subscribe("g", [PING])
        await transport.publish([ping(1)])
    finally:
        await transport.close()


async def test_open_gives_up_after_connect_timeout(vhost: str, proxy: TcpProxy) -> None:
    proxy.refuse()
    loop = asyncio.get_running_loop()
    started = loop.time()
    with pytest.raises(TransportError, match=r"after \d+ attempt\(s\) in 1s"):
        await connect(amqp_url(vhost, "connect_timeout=1", port=proxy.port))
    elapsed = loop.time() - started
    assert 0.9 <= elapsed < 3, elapsed
    assert proxy.refused >= 2


async def test_open_fails_at_once_on_refused_credentials(vhost: str) -> None:
    """Waiting does not fix a wrong password: no 60 s of retries for that."""
    url = amqp_url(vhost).replace("guest:guest@", "guest:wrong@")
    loop = asyncio.get_running_loop()
    started = loop.time()
    with pytest.raises(TransportError, match="refused"):
        await connect(url)
    assert loop.time() - started < 5


async def test_a_reconnection_attempt_nobody_answers_is_given_up_and_tried_again(
    vhost: str, proxy: TcpProxy, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Before: after a broker restart in the chaos run, a service's first reconnection attempt
    reached a listener that took the TCP connection and never answered. The attempt had no
    time limit, so it waited forever: the service stayed up, consumed nothing more, and 176
    orders were never notified. Now every attempt, the AMQP handshake included, has one."""
    monkeypatch.setattr(nodes, "NODE_TIMEOUT", 1.0)  # the attempt's limit; 10 s by default
    transport = await connect(amqp_url(vhost, port=proxy.port))
    try:
        publisher = await publishing(transport)
        proxy.stall()
        proxy.cut()
        await wait_for(lambda: proxy.stalled >= 1, 10, "a reconnection attempt taken and not answered")
        proxy.accept()  # the stalled attempt stays unanswered; only a new one can get through
        before = len(publisher.confirmed)
        await wait_for(lambda: len(publisher.confirmed) > before, 15, "a publish after the unanswered attempt")
        await publisher.stop()
    finally:
        await transport.close()
    assert proxy.connections >= 2, "the transport never connected again"


async def test_a_reconnection_whose_set_up_never_finishes_is_given_up_and_tried_again(
    vhost: str, proxy: TcpProxy, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The same for what follows the handshake: a reconnection hook (declaring the topology,
    consuming again) that never returns fails its attempt after `SETUP_TIMEOUT`, and the next
    attempt connects."""
    monkeypatch.setattr(link, "SETUP_TIMEOUT", 1.0)  # 60 s by default
    transport = await connect(amqp_url(vhost, port=proxy.port))
    hung = 0

    async def hangs_once() -> None:
        nonlocal hung
        hung += 1
        if hung == 1:
            await asyncio.Event().wait()  # the first reconnection's set-up never finishes

    try:
        publisher = await publishing(transport)
        transport._link.add_hook(hangs_once)  # type: ignore[attr-defined]
        proxy.cut()
        await wait_for(lambda: hung >= 1, 10, "a reconnection reaching its set-up")
        before = len(publisher.confirmed)
        await wait_for(lambda: len(publisher.confirmed) > before, 15, "a publish after the hung set-up")
        await publisher.stop()
    finally:
        await transport.close()
    assert hung >= 2, "the reconnection was not tried again"


def test_a_broker_that_hangs_up_as_it_takes_a_connection_is_tried_again_until_it_answers() -> None:
    """Found by the chaos run on uvloop: a node shutting down takes a connection and closes it at
    once. A client whose loop reads that end before aiormq's first read (uvloop, with the proxy in
    another process) gets `StopAsyncIteration` from `aio_pika.connect`; the reconnection loop did
    not count it as a failed attempt, so it ended there, and the service never consumed again."""
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        runner.run(_hang_up_then_answer())


async def _hang_up_then_answer() -> None:
    proxy = ProxyThread(HOST, AMQP_PORT)
    try:
        async with fresh_vhost() as vhost:
            transport = await connect(amqp_url(vhost, "reconnect_max=0.05", port=proxy.port))
            try:
                publisher = await publishing(transport)
                proxy.call(lambda running: (running.hang_up(), running.cut()))
                await wait_for(lambda: proxy.proxy.hung_up >= 20, 15, "20 reconnection attempts hung up on")
                proxy.call(lambda running: running.accept())
                before = len(publisher.confirmed)
                await wait_for(lambda: len(publisher.confirmed) > before, 15, "a publish after the hang-ups")
                await publisher.stop()
            finally:
                await transport.close()
    finally:
        proxy.close()


async def test_reconnecting_that_ends_without_close_says_so_at_error_level(
    vhost: str, caplog: pytest.LogCaptureFixture
) -> None:
    """The link's reconnecting ends only with `close()`; if anything else ever ends it (as the
    uncaught `StopAsyncIteration` did), the transport cannot recover, and the log says so
    instead of leaving a service silently consuming nothing. `close()` itself says nothing."""

    def stopped() -> list[str]:
        return [r.getMessage() for r in caplog.records if r.levelno == logging.ERROR and "stopped" in r.getMessage()]

    transport = await connect(amqp_url(vhost))
    try:
        supervisor = transport._link._supervisor  # type: ignore[attr-defined]
        supervisor.cancel()
        await asyncio.gather(supervisor, return_exceptions=True)
        assert len(stopped()) == 1, "the end of reconnecting was not logged"
        assert "will not recover" in stopped()[0]
    finally:
        await transport.close()
    quiet = await connect(amqp_url(vhost))
    await quiet.close()
    assert len(stopped()) == 1, "a transport's close() was logged as reconnecting that stopped"
