"""The orders API in-process: a started orders service (memory broker, a SQLite file) and an
httpx client on its ASGI app."""

from __future__ import annotations

import itertools
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI

from services.orders.api import create_app
from services.orders.service import build
from services.settings import Settings
from tidings.service import Service

_names = itertools.count()


@pytest.fixture
def broker() -> str:
    return f"memory://orders-api-{next(_names)}"


@pytest.fixture
def settings(tmp_path: Path, broker: str) -> Settings:
    return Settings(data_dir=tmp_path, broker=broker)


@pytest.fixture
async def orders(settings: Settings) -> AsyncIterator[Service]:
    service = build(settings, serve_http=False)
    await service.start()
    try:
        yield service
    finally:
        await service.stop()


@pytest.fixture
def app(orders: Service, settings: Settings) -> FastAPI:
    return create_app(orders, settings)


@pytest.fixture
async def client(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://shop") as client:
        yield client
