"""Fixtures shared by the RabbitMQ integration tests: a vhost of the test's own, and a TCP proxy
in front of the broker that a test can cut, slow and restore."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from tests.integration.rabbitmq_support import AMQP_PORT, HOST, fresh_vhost
from tests.integration.tcp_proxy import TcpProxy


@pytest.fixture
async def vhost() -> AsyncIterator[str]:
    """A fresh RabbitMQ vhost, deleted after the test."""
    async with fresh_vhost() as name:
        yield name


@pytest.fixture
async def proxy() -> AsyncIterator[TcpProxy]:
    """A TCP proxy to the RabbitMQ broker (`proxy.port`)."""
    async with TcpProxy(HOST, AMQP_PORT) as running:
        yield running
