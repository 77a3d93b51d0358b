"""Private servers of the security tests, one of each per session (start-up is the cost), each
stopped by its fixture's finaliser; and the PKI they share."""

from __future__ import annotations

import asyncio
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.integration.security.pki import Pki, make_pki
from tests.integration.security.private_postgres import PrivatePostgres
from tests.integration.security.private_rabbit import SecureRabbit

BASE = Path("/tmp/tidings-security")


@pytest.fixture(scope="session")
def pki() -> Pki:
    shutil.rmtree(BASE / "pki", ignore_errors=True)
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
