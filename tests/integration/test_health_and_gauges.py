"""Health that means ready, and the gauges an on-call engineer alerts on, against the real
servers: PostgreSQL and RabbitMQ each behind a private TCP proxy (the shared servers are never
stopped). `/health/ready` turns unready within seconds when the database or the broker goes away
or the relay task dies, and ready again when they return; the outbox's oldest age grows while the
broker is away, the dead-letter gauge counts a poisoned event, retries start at 0, and
`promtool check metrics` accepts the text."""

from __future__ import annotations

import asyncio
import shutil
import subprocess
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.integration.rabbitmq_support import amqp_url
from tests.integration.store.conftest import postgres_database
from tests.integration.tcp_proxy import TcpProxy
from tests.waiting import eventually_async
from tidings.context import Context
from tidings.errors import PermanentError
from tidings.events import Event
from tidings.runtime.health import GAUGE_TIMEOUT
from tidings.service import Service

pytestmark = [pytest.mark.rabbitmq, pytest.mark.postgres]


class Probe(Event, type="test.health.probe", version=1):
    n: int
    poison: bool = False


class Noted(Event, type="test.health.noted", version=1):
    n: int


def service_on(broker: str, database: str) -> Service:
    service = Service("health-probe", broker=broker, database=database, metrics_port=0)

    @service.on(Probe)
    async def handle(event: Probe, ctx: Context) -> None:
        if event.poison:
            raise PermanentError("this probe is poisoned")

    return service


@pytest.fixture
async def database_proxy() -> AsyncIterator[tuple[TcpProxy, str]]:
    """A fresh PostgreSQL database reached through a proxy of the test's own: (proxy, URL)."""
    async with TcpProxy("127.0.0.1", 5432, name="postgres") as proxy, postgres_database() as url:
        yield proxy, url.replace("postgresql://", "postgresql+asyncpg://").replace(":5432/", f":{proxy.port}/")


async def readiness(client: httpx.AsyncClient) -> tuple[int, dict[str, Any]]:
    response = await client.get("/health/ready")
    return response.status_code, response.json()


async def until_ready(client: httpx.AsyncClient, ready: bool, *, within: float) -> dict[str, Any]:
    """Poll `/health/ready` until it says `ready` (or not); the body that said so."""
    deadline = time.monotonic() + within
    while True:
        status, body = await readiness(client)
        if (status == 200) == ready:
            assert body["status"] == ("ready" if ready else "unready")
            return body
        assert time.monotonic() < deadline, f"/health/ready still {status} after {within}s: {body}"
        await asyncio.sleep(0.02)


def failing(body: dict[str, Any]) -> set[str]:
    return {name for name, check in body["checks"].items() if not check["ok"]}


async def test_ready_follows_the_database_the_broker_and_the_relay(
    vhost: str, proxy: TcpProxy, database_proxy: tuple[TcpProxy, str]
) -> None:
    database, url = database_proxy
    service = service_on(amqp_url(vhost, "reconnect_max=0.5", port=proxy.port), url)
    async with service, httpx.AsyncClient(base_url=f"http://127.0.0.1:{service.metrics_port}") as client:
        body = await until_ready(client, True, within=10)
        assert {"database", "migrations", "broker", "tasks", "running"} <= set(body["checks"])
        assert body["tasks"]["relay"] == body["tasks"]["consumer"] == "running"
        assert (await client.get("/health/live")).status_code == 200

        database.refuse()
        database.cut()
        started = time.monotonic()
        body = await until_ready(client, False, within=5)
        assert "database" in failing(body), body
        assert "does not answer" in body["checks"]["database"]["reason"]
        assert time.monotonic() - started < 5
        assert (await client.get("/health")).status_code == 200, "/health answers as before"
        database.accept()
        await until_ready(client, True, within=15)

        proxy.refuse()
        proxy.cut()
        body = await until_ready(client, False, within=5)
        assert failing(body) == {"broker"}, body
        proxy.accept()
        await until_ready(client, True, within=20)

        [relay] = [task for task in asyncio.all_tasks() if task.get_name() == "health-probe-relay"]
        relay.cancel()  # killed from outside: the supervisor restarts it after a backoff
        body = await until_ready(client, False, within=5)
        assert failing(body) == {"tasks"}, body
        assert body["tasks"]["relay"].startswith("restarting"), body
        assert "relay is restarting" in body["checks"]["tasks"]["reason"]
        await until_ready(client, True, within=10)


def samples(text: str) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    return {
        (sample.name, frozenset((k, v) for k, v in sample.labels.items() if k != "service")): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def promtool(text: str) -> None:
    binary = shutil.which("promtool")
    assert binary is not None, "promtool is missing: apt-get install prometheus (scripts/promtool.sh)"
    result = subprocess.run([binary, "check", "metrics"], input=text, capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stdout + result.stderr


async def test_the_alert_gauges_move(vhost: str, proxy: TcpProxy, tmp_path: Path) -> None:
    service = service_on(amqp_url(vhost, "reconnect_max=0.5", port=proxy.port), f"sqlite:///{tmp_path / 'g.db'}")
    service.publishes(Noted)
    group = {("group", "health-probe")}
    async with service, httpx.AsyncClient(base_url=f"http://127.0.0.1:{service.metrics_port}") as client:
        first = (await client.get("/metrics")).text
        promtool(first)
        values = samples(first)
        for outcome in ("handled", "retried", "dead_lettered", "duplicate"):
            key = frozenset({("type", Probe.event_type), ("outcome", outcome)})
            assert values[("tidings_messages_handled_total", key)] == 0, f"{outcome} does not start at 0"
        assert values[("tidings_dead_letters", frozenset(group))] == 0
        assert values[("tidings_outbox_oldest_age_seconds", frozenset())] == 0
        assert values[("tidings_background_task_up", frozenset({("task", "relay")}))] == 1
        assert values[("tidings_background_task_up", frozenset({("task", "consumer")}))] == 1

        await service.publish(Probe(n=1, poison=True))
        deadline = time.monotonic() + 15
        while samples((await client.get("/metrics")).text).get(("tidings_dead_letters", frozenset(group))) != 1:
            assert time.monotonic() < deadline, "the dead-letter gauge did not count the poisoned event"
            await asyncio.sleep(0.1)
        values = samples((await client.get("/metrics")).text)
        poisoned = frozenset({("type", Probe.event_type), ("outcome", "dead_lettered")})
        assert values[("tidings_messages_handled_total", poisoned)] == 1

        proxy.refuse()
        proxy.cut()  # the broker is away: the relay cannot publish
        await service.publish(Noted(n=2))
        ages = []
        for _ in range(2):
            await asyncio.sleep(0.6)
            values = samples((await client.get("/metrics")).text)
            assert values[("tidings_outbox_pending", frozenset())] == 1
            ages.append(values[("tidings_outbox_oldest_age_seconds", frozenset())])
        assert 0.5 <= ages[0] < ages[1], f"the outbox age does not grow while the broker is away: {ages}"
        proxy.accept()
        deadline = time.monotonic() + 20
        while samples((await client.get("/metrics")).text)[("tidings_outbox_oldest_age_seconds", frozenset())] > 0:
            assert time.monotonic() < deadline, "the outbox did not drain once the broker was back"
            await asyncio.sleep(0.1)
        promtool((await client.get("/metrics")).text)


OUTBOX_GAUGES = ("tidings_outbox_pending", "tidings_outbox_parked", "tidings_outbox_oldest_age_seconds")
CONSUMER_GAUGES = ("tidings_consumer_backlog", "tidings_dead_letters")


async def test_gauges_of_an_unreadable_database_or_broker_are_left_out_not_reported_as_zero(
    vhost: str, proxy: TcpProxy, database_proxy: tuple[TcpProxy, str]
) -> None:
    """While the database (or the broker: AMQP and its management API) cannot be read, `/metrics`
    still answers, within the gauges' time limit, with the counters; the gauges read from what is
    away are missing, so no alert sees a false 0; they come back with it."""
    database, url = database_proxy
    async with TcpProxy("127.0.0.1", 15672, name="management") as management:
        query = f"reconnect_max=0.5&management_url=http://127.0.0.1:{management.port}"
        service = service_on(amqp_url(vhost, query, port=proxy.port), url)
        async with service, httpx.AsyncClient(base_url=f"http://127.0.0.1:{service.metrics_port}") as client:

            async def names() -> set[str]:
                started = time.monotonic()
                response = await client.get("/metrics", timeout=30)
                assert response.status_code == 200
                assert time.monotonic() - started < GAUGE_TIMEOUT * 2 + 3, "an unreadable source hung the scrape"
                return {name for name, _ in samples(response.text)}

            every = await names()
            assert set(OUTBOX_GAUGES + CONSUMER_GAUGES) <= every
            assert "tidings_messages_handled_total" in every

            database.refuse()
            database.cut()
            shown = await names()
            assert not shown & set(OUTBOX_GAUGES), shown
            assert set(CONSUMER_GAUGES) <= shown
            assert "tidings_messages_handled_total" in shown
            database.accept()
            await eventually_async(names, lambda shown: set(OUTBOX_GAUGES) <= shown, "the outbox gauges", within=20)

            for away in (proxy, management):
                away.refuse()
                away.cut()
            shown = await names()
            assert not shown & set(CONSUMER_GAUGES), shown
            assert set(OUTBOX_GAUGES) <= shown
            assert "tidings_messages_handled_total" in shown
            for away in (proxy, management):
                away.accept()
            await eventually_async(names, lambda shown: set(CONSUMER_GAUGES) <= shown, "the consumer gauges", within=20)
