"""Private servers of the security tests, one of each per session (start-up is the cost), each
stopped by its fixture's finaliser; and the PKI they share.

Kafka takes longest to start (a JVM formats its storage, another runs the broker), so it is
launched in a thread as soon as the first security test runs, and its tests are put last: the
other servers' tests run while it starts."""

from __future__ import annotations

import asyncio
import contextlib
import shutil
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path

import pytest

from tests.integration.security.pki import Pki, make_pki
from tests.integration.security.private_kafka import PrivateKafka
from tests.integration.security.private_postgres import PrivatePostgres
from tests.integration.security.private_rabbit import SecureRabbit

BASE = Path("/tmp/tidings-security")


@pytest.fixture(scope="session")
def pki() -> Pki:
    shutil.rmtree(BASE, ignore_errors=True)  # what an interrupted earlier session left: certificates and data
    return make_pki(BASE / "pki")


@pytest.fixture(scope="session")
def secure_rabbit(pki: Pki) -> Iterator[SecureRabbit]:
    node = SecureRabbit(
        base=BASE / "rabbitmq",
        node="tidings-security@localhost",
        port=5690,
        dist_port=25690,
        management_port=15690,
        pki=pki,
        tls_port=5691,
    )
    asyncio.run(node.start(fresh=True))
    try:
        yield node
    finally:
        asyncio.run(node.stop())


@pytest.fixture(scope="session")
def secure_postgres(pki: Pki) -> Iterator[PrivatePostgres]:
    server = PrivatePostgres(BASE / "postgres", pki, port=5440)
    server.start()
    try:
        yield server
    finally:
        server.stop()


_kafka_wanted: list[bool] = []


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    here = Path(__file__).parent
    late = [item for item in items if here in item.path.parents and "secure_kafka" in getattr(item, "fixturenames", ())]
    if late:
        _kafka_wanted.append(True)
        items[:] = [item for item in items if item not in late] + late


@pytest.fixture(scope="session")
def _kafka_launch(pki: Pki) -> Iterator[tuple[PrivateKafka, Future[float]]]:
    broker = PrivateKafka(BASE / "kafka", pki)
    with ThreadPoolExecutor(1) as pool:
        starting = pool.submit(broker.start)
        try:
            yield broker, starting
        finally:
            with contextlib.suppress(Exception):
                starting.result()
            broker.stop()


@pytest.fixture(autouse=True)
def _launch_kafka_early(request: pytest.FixtureRequest) -> None:
    """Start the Kafka broker in the background with the first test here that needs any server,
    if this session runs Kafka tests at all."""
    if _kafka_wanted and {"secure_kafka", "secure_rabbit", "secure_postgres"} & set(request.fixturenames):
        request.getfixturevalue("_kafka_launch")


@pytest.fixture
def secure_kafka(_kafka_launch: tuple[PrivateKafka, Future[float]]) -> PrivateKafka:
    broker, starting = _kafka_launch
    starting.result(timeout=300)
    return broker
