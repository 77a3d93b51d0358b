"""Per-test isolation on the real servers: a RabbitMQ vhost and a set of PostgreSQL databases
of its own for each test, removed afterwards (STYLE.md, convention 6)."""

from __future__ import annotations

import asyncio
import importlib.util
import itertools
import os
from collections.abc import Iterator

import httpx
import pytest

from services.kit.db import drop_databases
from services.settings import SERVICES
from tests.system.harness import MANAGEMENT, POSTGRES, RABBITMQ

_names = itertools.count()


@pytest.fixture
def rabbitmq_vhost() -> Iterator[str]:
    """The broker URL of a fresh vhost, deleted after the test."""
    if importlib.util.find_spec("tidings.transport.rabbitmq") is None:
        pytest.skip("the RabbitMQ adapter (tidings.transport.rabbitmq) is not there yet")
    vhost = f"shop-{os.getpid()}-{next(_names)}"
    with httpx.Client(base_url=MANAGEMENT, auth=("guest", "guest"), timeout=10) as api:
        api.put(f"/vhosts/{vhost}").raise_for_status()
        api.put(f"/permissions/{vhost}/guest", json={"configure": ".*", "write": ".*", "read": ".*"}).raise_for_status()
        try:
            yield f"{RABBITMQ}/{vhost}"
        finally:
            api.delete(f"/vhosts/{vhost}")


@pytest.fixture
def postgres_prefix() -> Iterator[str]:
    """A database name prefix of this test's own; its databases are dropped afterwards."""
    prefix = f"shop_t{os.getpid()}_{next(_names)}_"
    yield prefix
    asyncio.run(drop_databases(POSTGRES, prefix, SERVICES))
